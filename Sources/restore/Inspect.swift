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
        let model = try ModelCatalog.describe(path: file, selection: stateDict.map(StateDictSelection.init(parsing:)) ?? .auto)
        for warning in model.checkpoint.warnings { FileHandle.standardError.write(Data("restore: warning: \(warning)\n".utf8)) }
        model.summaryLines.forEach { print($0) }
        guard !summary else { return }
        print("")
        model.tensorTable(all: all).forEach { print($0) }
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
        let start = Date()
        let (model, size) = try ModelCatalog.convert(input, to: output, half: half, selection: stateDict.map(StateDictSelection.init(parsing:)) ?? .auto,
                                                     overwrite: overwrite, tool: "restore \(BuildInfo.version)")
        for warning in model.checkpoint.warnings { FileHandle.standardError.write(Data("restore: warning: \(warning)\n".utf8)) }
        print("wrote \(output): \(model.stateDict.tensors.count) tensors, \(Formatting.grouped(model.stateDict.parameterCount)) parameters, \(Formatting.bytes(size)) (\(String(format: "%.1f", Date().timeIntervalSince(start))) s)")
    }
}
