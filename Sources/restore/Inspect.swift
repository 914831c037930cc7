import ArgumentParser
import Checkpoints
import Foundation
import Networks
import Restoration

/// `restore inspect FILE`: what a checkpoint holds, read without executing anything.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List a checkpoint's tensors (name, dtype, shape, bytes), its parameter count and model family.",
        discussion: """
            Reads PyTorch .pt/.pth/.ckpt (zip or legacy) and .safetensors files with our own pickle reader: \
            nothing in the file is ever executed, and files that name code-running globals (os.system, eval, …) \
            are refused. By default the state dict is found inside the usual wrappers (state_dict, params_ema, \
            params, model, ema, RDDM's ema_model. prefix, module./_orig_mod. prefixes).
            """
    )

    @Argument(help: "The checkpoint file.")
    var file: String

    @Option(help: "Which weights: ENTRY (dotted key path, '' = root), ENTRY:PREFIX, or :PREFIX (e.g. ema:ema_model.). Default: auto.")
    var stateDict: String?

    @Flag(help: "List every tensor in the file (optimizer state included), by dotted path.")
    var all = false

    @Flag(help: "Print the summary only, without the tensor table.")
    var summary = false

    func run() throws {
        try failingCleanly {
            let model = try ModelCatalog.describe(path: file, selection: stateDict.map(StateDictSelection.init(parsing:)) ?? .auto)
            let (checkpoint, state) = (model.checkpoint, model.stateDict)
            for warning in checkpoint.warnings { FileHandle.standardError.write(Data("restore: warning: \(warning)\n".utf8)) }
            let types = Dictionary(grouping: state.tensors, by: { $0.tensor.elementType.rawValue }).mapValues(\.count)
            print("file: \(file) (\(checkpoint.format.rawValue), \(Self.bytes(checkpoint.file.count)))")
            print("state dict: \(state.source), \(state.tensors.count) tensors, \(Self.grouped(state.parameterCount)) parameters (\(types.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")))")
            print("family: \(model.family.map(\.description) ?? "not recognised")")
            if let preset = model.preset { print("preset: \(preset.name) — \(preset.summary) (official file: \(preset.officialFile))") }
            if model.otherTensorCount > 0 { print("other tensors: \(model.otherTensorCount) outside the state dict (--all lists them)") }
            if !checkpoint.topLevelKeys.isEmpty { print("top-level keys: " + CheckpointError.printable(checkpoint.topLevelKeys.prefix(20).joined(separator: ", "))) }
            if !checkpoint.metadata.isEmpty {
                print("metadata: " + CheckpointError.printable(checkpoint.metadata.keys.sorted().map { "\($0)=\(checkpoint.metadata[$0]!.prefix(80))" }.joined(separator: "; ")))
            }
            guard !summary else { return }
            // Names come from the file: control characters are escaped so they cannot drive the terminal.
            let rows = (all ? checkpoint.allTensors().map { ($0.path, $0.tensor) } : state.tensors.map { ($0.name, $0.tensor) })
                .map { (CheckpointError.printable($0.0), $0.1) }
            let width = min(90, max(4, rows.map(\.0.count).max() ?? 4))
            print("")
            print("name".padding(toLength: width, withPad: " ", startingAt: 0) + "  dtype     shape                 bytes")
            for (name, tensor) in rows {
                let shape = "[" + tensor.shape.map(String.init).joined(separator: ", ") + "]"
                print(name.padding(toLength: max(width, name.count), withPad: " ", startingAt: 0) + "  "
                      + tensor.elementType.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0) + "  "
                      + shape.padding(toLength: max(20, shape.count), withPad: " ", startingAt: 0) + "  " + String(tensor.byteCount))
            }
        }
    }

    static func bytes(_ n: Int) -> String {
        n >= 1 << 20 ? String(format: "%.1f MiB", Double(n) / 1_048_576) : n >= 1024 ? String(format: "%.1f KiB", Double(n) / 1024) : "\(n) bytes"
    }

    static func grouped(_ n: Int) -> String {
        let digits = Array(String(n))
        var out = ""
        for (i, d) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(d)
        }
        return out
    }
}

/// `restore convert IN OUT.safetensors`: a checkpoint's state dict as safetensors (our shipping format).
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a checkpoint's state dict to .safetensors (Float32, or Float16 with --half).",
        discussion: "Integer and boolean tensors keep their type. The output is written to a temporary file and renamed; the input is never touched."
    )

    @Argument(help: "The checkpoint to read (.pt, .pth, .ckpt, .safetensors).")
    var input: String

    @Argument(help: "The .safetensors file to write.")
    var output: String

    @Flag(help: "Store floating-point tensors as Float16 (half the size).")
    var half = false

    @Option(help: "Which weights: ENTRY, ENTRY:PREFIX or :PREFIX (see `restore inspect --help`). Default: auto.")
    var stateDict: String?

    @Flag(help: "Replace an existing output file.")
    var overwrite = false

    func validate() throws {
        guard (output as NSString).pathExtension.lowercased() == "safetensors" else { throw ValidationError("the output must end in .safetensors") }
    }

    func run() throws {
        try failingCleanly {
            let inputURL = URL(fileURLWithPath: input).standardizedFileURL.resolvingSymlinksInPath()
            let outputURL = URL(fileURLWithPath: output).standardizedFileURL.resolvingSymlinksInPath()
            guard inputURL.path != outputURL.path else { throw CommandFailure("the output would overwrite the input (\(output))") }
            let start = Date()
            let model = try ModelCatalog.describe(path: input, selection: stateDict.map(StateDictSelection.init(parsing:)) ?? .auto)
            for warning in model.checkpoint.warnings { FileHandle.standardError.write(Data("restore: warning: \(warning)\n".utf8)) }
            let state = model.stateDict
            let metadata = ModelCatalog.conversionMetadata(model, tool: "restore \(BuildInfo.version)")
            try SafetensorsWriter.write(state.tensors, to: output, half: half, metadata: metadata, overwrite: overwrite)
            let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
            print("wrote \(output): \(state.tensors.count) tensors, \(Inspect.grouped(state.parameterCount)) parameters, \(Inspect.bytes(size)) (\(String(format: "%.1f", Date().timeIntervalSince(start))) s)")
        }
    }
}
