import Checkpoints
import Engine
import Foundation

/// A network architecture with its configuration: what a preset names and what detection finds.
public enum NetworkArchitecture: Sendable, Equatable {
    case adm(ADMConfiguration)
    case ddpm(DDPMConfiguration)

    /// The parameter names and shapes the architecture declares.
    public func parameterDeclarations() throws -> [ParameterDeclaration] {
        switch self {
        case .adm(let c): return try ADMUNet.parameterDeclarations(c)
        case .ddpm(let c): return try DDPMUNet.parameterDeclarations(c)
        }
    }

    /// Builds the network from a parameter source.
    public func build(_ parameters: ParameterSource) throws -> any DiffusionNetwork {
        switch self {
        case .adm(let c): return try ADMUNet(c, parameters: parameters)
        case .ddpm(let c): return try DDPMUNet(c, parameters: parameters)
        }
    }

    /// Reads an architecture from JSON: guided-diffusion `UNetModel` arguments (`model_channels`, …) for
    /// ADM, or the DDPM model section (`ch`, `ch_mult`, …, plus `resolution`); `"family": "adm" | "ddpm"`
    /// may say which. Unknown keys are ignored.
    public static func decode(jsonFile path: String) throws -> NetworkArchitecture {
        guard let data = FileManager.default.contents(atPath: path) else { throw CheckpointError.io(path: path, reason: "cannot read the model config") }
        return try decode(json: data, origin: path)
    }

    /// The same from JSON bytes; `origin` names where they came from in errors.
    public static func decode(json data: Data, origin path: String) throws -> NetworkArchitecture {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CheckpointError.io(path: path, reason: "the model config is not a JSON object")
        }
        let cleaned = object.filter { !($0.value is NSNull) }
        let family = (object["family"] as? String) ?? (object["ch_mult"] != nil ? "ddpm" : "adm")
        let json = try JSONSerialization.data(withJSONObject: cleaned)
        do {
            switch family {
            case "ddpm": return .ddpm(try JSONDecoder().decode(DDPMConfiguration.self, from: json))
            case "adm": return .adm(try JSONDecoder().decode(ADMConfiguration.self, from: json))
            default: throw CheckpointError.io(path: path, reason: "unknown family \(family.debugDescription) (adm or ddpm)")
            }
        } catch let error as DecodingError {
            let detail: String
            switch error {
            case .keyNotFound(let key, _): detail = "missing key \(key.stringValue)"
            case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
                detail = "bad value at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
            @unknown default: detail = "\(error)"
            }
            throw CheckpointError.io(path: path, reason: "the model config does not describe an \(family) network: \(detail)")
        }
    }

    /// The image size the network was trained at.
    public var nativeSize: Int {
        switch self {
        case .adm(let c): return c.imageSize
        case .ddpm(let c): return c.resolution
        }
    }
}

/// The official checkpoints' configurations, by name (`--model PRESET` or detected from a file).
public struct NetworkPreset: Sendable {
    public let name: String
    /// The official file this preset describes.
    public let officialFile: String
    public let summary: String
    public let architecture: NetworkArchitecture

    /// guided-diffusion's ImageNet 256 models as DDNM and hq_demo configure them (anchors §2.1).
    static func imagenet256(classes: Int?) -> ADMConfiguration {
        ADMConfiguration(imageSize: 256, modelChannels: 256, outChannels: 6, numResBlocks: 2, attentionResolutions: [8, 16, 32],
                         channelMult: [1, 1, 2, 2, 4, 4], numHeads: 4, numHeadChannels: 64, useScaleShiftNorm: true,
                         resblockUpdown: true, numClasses: classes)
    }

    /// The DDPM configuration shared by SDEdit's CelebA-HQ and the LSUN bedroom / church checkpoints.
    static let ddpm256 = DDPMConfiguration(resolution: 256, ch: 128, chMult: [1, 1, 2, 2, 4, 4], numResBlocks: 2, attnResolutions: [16])

    public static let all: [NetworkPreset] = [
        NetworkPreset(name: "adm-imagenet256-uncond", officialFile: "256x256_diffusion_uncond.pt",
                      summary: "guided-diffusion ImageNet 256², unconditional (DDNM's default prior)", architecture: .adm(imagenet256(classes: nil))),
        NetworkPreset(name: "adm-imagenet256-cond", officialFile: "256x256_diffusion.pt",
                      summary: "guided-diffusion ImageNet 256², class-conditional (--class ID)", architecture: .adm(imagenet256(classes: 1000))),
        NetworkPreset(name: "adm-imagenet512-cond", officialFile: "512x512_diffusion.pt",
                      summary: "guided-diffusion ImageNet 512², class-conditional (--class ID)",
                      architecture: .adm(ADMConfiguration(imageSize: 512, modelChannels: 256, outChannels: 6, numResBlocks: 2,
                                                          attentionResolutions: [16, 32, 64], channelMult: [0.5, 1, 1, 2, 2, 4, 4],
                                                          numHeads: 4, numHeadChannels: 64, useScaleShiftNorm: true, resblockUpdown: true,
                                                          numClasses: 1000))),
        NetworkPreset(name: "ddpm-celebahq256", officialFile: "celeba_hq.ckpt",
                      summary: "DDPM CelebA-HQ 256² (SDEdit weights, as DDNM uses them)", architecture: .ddpm(ddpm256)),
        NetworkPreset(name: "ddpm-lsun-bedroom", officialFile: "model-2388000.ckpt (LSUN bedroom EMA)",
                      summary: "DDPM LSUN bedroom 256²", architecture: .ddpm(ddpm256)),
        NetworkPreset(name: "ddpm-lsun-church", officialFile: "model-4432000.ckpt (LSUN church EMA)",
                      summary: "DDPM LSUN church 256²", architecture: .ddpm(ddpm256)),
    ]

    /// The preset named `name`, if any.
    public static func named(_ name: String) -> NetworkPreset? { all.first { $0.name == name } }

    /// The first preset whose declared names and shapes equal the state dict's exactly (presets that
    /// share an architecture, such as the LSUN ones, resolve to the first of them).
    public static func detect(_ state: StateDict) throws -> NetworkPreset? {
        let stored = Dictionary(state.tensors.map { ($0.name, $0.tensor.shape) }, uniquingKeysWith: { a, _ in a })
        for preset in all {
            let declared = try preset.architecture.parameterDeclarations()
            if declared.count == stored.count, declared.allSatisfy({ d in stored[d.name].map { StateDict.shapesMatch(d.shape, $0) } ?? false }) {
                return preset
            }
        }
        return nil
    }
}

/// Loads a diffusion network from a checkpoint: finds the state dict, picks the architecture (the one
/// given, else detection among the presets), binds every parameter with a full report on mismatch.
/// Builds networks from weights. Which architecture a file holds (presets, families, our cards) is the model
/// catalog's question (Restoration.ModelCatalog); this only reads what our own exports say of themselves.
public enum NetworkLoader {
    /// The architecture our own exports carry: the safetensors metadata key "unet" (Tools/train/train_prior.py),
    /// or a sidecar <name>.json next to the weights; nil when neither is there.
    public static func describedArchitecture(of checkpoint: Checkpoint, path: String) throws -> NetworkArchitecture? {
        if let unet = checkpoint.metadata["unet"] {
            var object = (try? JSONSerialization.jsonObject(with: Data(unet.utf8))) as? [String: Any] ?? [:]
            if object["family"] == nil, let family = checkpoint.metadata["family"] { object["family"] = family }
            return try NetworkArchitecture.decode(json: try JSONSerialization.data(withJSONObject: object), origin: "\(path) metadata")
        }
        let sidecar = (path as NSString).deletingPathExtension + ".json"
        return FileManager.default.fileExists(atPath: sidecar) ? try NetworkArchitecture.decode(jsonFile: sidecar) : nil
    }

    /// `architecture` with the weights of `state` bound to its declarations (every key and shape checked).
    public static func build(_ architecture: NetworkArchitecture, state: StateDict) throws -> any DiffusionNetwork {
        try architecture.build(.bound(try state.bind(try architecture.parameterDeclarations())))
    }

    /// The network in `path` with `architecture`, or the one the file describes (our exports).
    public static func load(path: String, architecture: NetworkArchitecture? = nil) throws -> (network: any DiffusionNetwork, architecture: NetworkArchitecture) {
        let checkpoint = try Checkpoint(path: path)
        guard let chosen = try architecture ?? describedArchitecture(of: checkpoint, path: path) else {
            throw CheckpointError.stateDictNotFound(reason: "no architecture given and none described in the file (\(path))")
        }
        return (try build(chosen, state: try checkpoint.stateDict(.auto)), chosen)
    }
}
