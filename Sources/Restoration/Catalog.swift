import Checkpoints
import Foundation
import Networks

/// What a model file is: its container, the weights found in it, the family and preset they match, and our
/// own card (the metadata our exports carry). The one answer to "what model is this file", for `inspect`,
/// `convert` and the loaders.
public struct ModelDescription {
    public let path: String
    public let checkpoint: Checkpoint
    public let stateDict: StateDict
    /// The network family recognised from key names and shapes (nil: none of ours).
    public let family: ModelFamily?
    /// The preset whose declared keys and shapes the weights match exactly.
    public let preset: NetworkPreset?
    /// Our own exports name their family in the metadata ("resshift-swin", "adm", …).
    public var ownFamily: String? { checkpoint.metadata["family"] }
    /// Our model card (recipe, data, training curve, measured quality): the Markdown file beside the weights.
    public var cardPath: String? {
        let card = (path as NSString).deletingPathExtension + ".md"
        return ownFamily != nil && FileManager.default.isReadableFile(atPath: card) ? card : nil
    }
    /// The family by our card, else as recognised from the weights ("unknown" when neither).
    public var familyName: String { ownFamily ?? family?.name ?? "unknown" }

    /// The tasks a model of this family serves (for `restore models` and the service's GET /models).
    public var servedTasks: String {
        switch familyName {
        case ModelCatalog.ownResShiftFamily, "swin-unet": "upscale -s 4"
        case ModelCatalog.ownDiffIRFamily, "diffir": "upscale -s 4 -n NAME, diffir (official ×2, ×1 and deblurring files: diffir --model)"
        case "adm", "adm-unet", "ddpm-unet": "denoise, dejpeg, deblur, inpaint, colorize, upscale -s 2|3"
        case ModelCatalog.ownRDDMFamily, "rddm": "rddm (same-size blind restoration: noise, blur, JPEG, low light)"
        case "ldm", ModelCatalog.ownLDMFamily: "ldm (×4 SR or inpainting, whichever the model does), upscale -s 4 -n NAME, inpaint -n NAME"
        default: "none of the tasks (\(usage))"
        }
    }

    /// Which commands take a model of this family, for messages when a file is given to the wrong one.
    public var usage: String {
        switch ownFamily ?? family?.name {
        case ModelCatalog.ownResShiftFamily?, "swin-unet"?: "a ResShift network: use `restore upscale -s 4 -n FILE` or `restore resshift --model FILE`"
        case "adm"?, "adm-unet"?, "ddpm-unet"?: "a diffusion prior: use `restore ddnm`/`dreamclean --model FILE` or a task with -n FILE (denoise, dejpeg, deblur, inpaint, colorize, upscale -s 2|3)"
        case ModelCatalog.ownDiffIRFamily?, "diffir"?: "a DiffIR network: use `restore diffir --model FILE`"
        case ModelCatalog.ownRDDMFamily?, "rddm"?: "an RDDM network: use `restore rddm --model FILE`"
        case "vq-autoencoder"?: "an autoencoder: give it to `restore resshift --autoencoder FILE` with an official ResShift network, or to `restore ldm --autoencoder FILE`"
        case "kl-autoencoder"?: "a KL autoencoder: give it to `restore ldm --autoencoder FILE` with a latent-diffusion UNet"
        case "ldm"?, ModelCatalog.ownLDMFamily?: "a latent-diffusion model: use `restore ldm --model FILE` (or upscale -s 4 / inpaint -n FILE)"
        default: "not a model this version recognises (`restore inspect FILE` shows what it holds)"
        }
    }

    /// The architecture to build a diffusion prior with: `forced`, else the matching preset, else what our own
    /// export describes of itself; otherwise an error naming the family the weights look like.
    public func priorArchitecture(forced: NetworkArchitecture? = nil) throws -> NetworkArchitecture {
        if let chosen = try forced ?? preset?.architecture ?? NetworkLoader.describedArchitecture(of: checkpoint, path: path) { return chosen }
        guard ["adm-unet", "ddpm-unet"].contains(family?.name ?? "") else {
            throw RestorationError("\((path as NSString).lastPathComponent) is \(usage)")
        }
        throw CheckpointError.stateDictNotFound(reason: "the weights (\(family.map(\.description) ?? "")) match none of the presets; known: \(NetworkPreset.all.map(\.name).joined(separator: ", ")); pass --preset or --model-config (\(path))")
    }

    /// Sampling settings our model card recommends for this model (the sidecar JSON's "defaults" object, e.g.
    /// {"eta": 1.0}): what the front ends use where the user gives nothing.
    public var recommendedDefaults: [String: Double] {
        let sidecar = (path as NSString).deletingPathExtension + ".json"
        guard let data = FileManager.default.contents(atPath: sidecar),
              let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let defaults = object["defaults"] as? [String: Any] else { return [:] }
        return defaults.compactMapValues { ($0 as? NSNumber)?.doubleValue }
    }

    /// Tensors in the file outside the chosen state dict (optimizer state, EMA copies).
    public var otherTensorCount: Int { checkpoint.tensorCount - stateDict.tensors.count }

    /// For a person: the container, the weights with their dtypes, the family, preset, other tensors, top-level
    /// keys and metadata — names from the file escaped so that they cannot drive a terminal.
    public var summaryLines: [String] {
        let state = stateDict
        let types = Dictionary(grouping: state.tensors, by: { $0.tensor.elementType.rawValue }).mapValues(\.count)
        var lines = ["file: \(path) (\(checkpoint.format.rawValue), \(Formatting.bytes(checkpoint.file.count)))",
                     "state dict: \(state.source), \(state.tensors.count) tensors, \(Formatting.grouped(state.parameterCount)) parameters (\(types.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")))",
                     "family: \(family.map(\.description) ?? ownFamily.map { "\($0) (by the file's metadata)" } ?? "not recognised")"]
        if let preset { lines.append("preset: \(preset.name) — \(preset.summary) (official file: \(preset.officialFile))") }
        if let cardPath { lines.append("card: \(cardPath)") }
        if otherTensorCount > 0 { lines.append("other tensors: \(otherTensorCount) outside the state dict (--all lists them)") }
        if !checkpoint.topLevelKeys.isEmpty { lines.append("top-level keys: " + CheckpointError.printable(checkpoint.topLevelKeys.prefix(20).joined(separator: ", "))) }
        if !checkpoint.metadata.isEmpty {
            lines.append("metadata: " + CheckpointError.printable(checkpoint.metadata.keys.sorted().map { "\($0)=\(checkpoint.metadata[$0]!.prefix(80))" }.joined(separator: "; ")))
        }
        return lines
    }

    /// A table of the state dict's tensors (or of every tensor in the file): name, dtype, shape, bytes.
    public func tensorTable(all: Bool) -> [String] {
        let rows = (all ? checkpoint.allTensors().map { ($0.path, $0.tensor) } : stateDict.tensors.map { ($0.name, $0.tensor) })
            .map { (CheckpointError.printable($0.0), $0.1) }
        let width = min(90, max(4, rows.map(\.0.count).max() ?? 4))
        return ["name".padding(toLength: width, withPad: " ", startingAt: 0) + "  dtype     shape                 bytes"] + rows.map { name, tensor in
            let shape = "[" + tensor.shape.map(String.init).joined(separator: ", ") + "]"
            return name.padding(toLength: max(width, name.count), withPad: " ", startingAt: 0) + "  "
                + tensor.elementType.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0) + "  "
                + shape.padding(toLength: max(20, shape.count), withPad: " ", startingAt: 0) + "  " + String(tensor.byteCount)
        }
    }
}

/// Numbers as people read them.
public enum Formatting {
    /// 1.5 MiB, 2.0 KiB, 12 bytes.
    public static func bytes(_ n: Int) -> String {
        n >= 1 << 20 ? String(format: "%.1f MiB", Double(n) / 1_048_576) : n >= 1024 ? String(format: "%.1f KiB", Double(n) / 1024) : "\(n) bytes"
    }

    /// 552,814,086.
    public static func grouped(_ n: Int) -> String {
        let digits = Array(String(n))
        var out = ""
        for (i, d) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(d)
        }
        return out
    }
}

public enum ModelCatalog {
    /// The family our ResShift exports declare (Tools/train/train_resshift.py): configuration, diffusion and first
    /// stage in the metadata.
    public static let ownResShiftFamily = "resshift-swin"
    /// The family our DiffIR exports declare (Tools/train/train_diffir.py): the configuration in the metadata.
    public static let ownDiffIRFamily = "diffir-own"
    /// The family our RDDM exports declare (Tools/train/train_rddm.py): configuration and sampling settings in the metadata.
    public static let ownRDDMFamily = "rddm-own"
    /// The family our LDM exports declare (Tools/train/train_ldm.py): pixel-unshuffle first stage, UNet in diffusers names.
    public static let ownLDMFamily = "ldm-own"

    /// Reads `path` (nothing in it is executed) and describes it; `selection` picks the weights (default: the
    /// usual wrappers, see `StateDictSelection`).
    public static func describe(path: String, selection: StateDictSelection = .auto) throws -> ModelDescription {
        let checkpoint = try Checkpoint(path: path)
        let state = try checkpoint.stateDict(selection)
        return ModelDescription(path: path, checkpoint: checkpoint, stateDict: state, family: ModelFamily.recognise(state),
                                preset: try NetworkPreset.detect(state))
    }

    /// Writes the weights of `input` to `output` as safetensors (Float16 with `half`), with where they came from
    /// and their family in the metadata; refuses to write over the input. Returns the description and the size written.
    public static func convert(_ input: String, to output: String, half: Bool, selection: StateDictSelection = .auto, overwrite: Bool,
                               tool: String) throws -> (model: ModelDescription, bytes: Int) {
        let inputURL = URL(fileURLWithPath: input).standardizedFileURL.resolvingSymlinksInPath()
        let outputURL = URL(fileURLWithPath: output).standardizedFileURL.resolvingSymlinksInPath()
        guard inputURL.path != outputURL.path else { throw RestorationError("the output would overwrite the input (\(output))") }
        let model = try describe(path: input, selection: selection)
        try SafetensorsWriter.write(model.stateDict.tensors, to: output, half: half, metadata: conversionMetadata(model, tool: tool), overwrite: overwrite)
        return (model, (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0)
    }

    /// The metadata a converted file carries: where it came from and, when recognised, its family.
    public static func conversionMetadata(_ description: ModelDescription, tool: String) -> [String: String] {
        var metadata = ["source": (description.path as NSString).lastPathComponent, "source_format": description.checkpoint.format.rawValue,
                        "state_dict": description.stateDict.source, "converted_by": tool]
        if let family = description.family { metadata["family"] = family.name }
        return metadata
    }
}
