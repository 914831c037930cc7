import ArgumentParser
import Engine
import Foundation
import Networks
import Restoration

/// The diffusion prior flags every method shares (`--model`, `--preset`, `--model-config`, `--class`) and
/// their loading: the bundled prior by default, presets detected from keys and shapes, one-line errors.
struct PriorOptions: ParsableArguments {
    @Option(help: "A diffusion prior: an official checkpoint (.pt/.ckpt) or a .safetensors (default: the bundled Models/adm64-prior.safetensors, 64² natural-photo patches).")
    var model: String?

    @Option(help: "Force the architecture of --model: \(NetworkPreset.all.map(\.name).joined(separator: ", ")) (default: detected).")
    var preset: String?

    @Option(help: "A JSON file with the architecture of a custom prior: guided-diffusion UNetModel arguments (image_size, model_channels, …) or the DDPM model section (ch, ch_mult, …, with resolution).")
    var modelConfig: String?

    @Option(name: .customLong("class"), help: "Class id for a class-conditional prior (ImageNet: 0–999).")
    var classID: Int?

    struct Loaded {
        let network: any DiffusionNetwork
        let architecture: NetworkArchitecture
        let preset: NetworkPreset?
        let path: String
        let sha256: String
        var name: String { (path as NSString).lastPathComponent }
        var nativeSize: Int { architecture.nativeSize }
    }

    /// Loads the prior (or `standIn`, a network of that native size, for measurements) and checks --class.
    func load(command: String, quiet: Bool, standIn: (any DiffusionNetwork, Int)? = nil) throws -> Loaded {
        let started = Date()
        let loaded: Loaded
        if let (network, native) = standIn {
            loaded = Loaded(network: network, architecture: .adm(ADMConfiguration(imageSize: native, modelChannels: 8, outChannels: 3, numResBlocks: 1,
                                                                                  attentionResolutions: [], channelMult: [1, 1, 1, 1])),
                            preset: nil, path: "stand-in", sha256: "stand-in")
        } else {
            let path = try model ?? BundledModels.locate(BundledModels.defaultPrior)
            var forced = try preset.map { name -> NetworkArchitecture in
                guard let p = NetworkPreset.named(name) else { throw CommandFailure("unknown preset \(name); known: \(NetworkPreset.all.map(\.name).joined(separator: ", "))") }
                return p.architecture
            }
            if let modelConfig { forced = try NetworkArchitecture.decode(jsonFile: modelConfig) }
            let l = try NetworkLoader.load(path: path, architecture: forced)
            loaded = Loaded(network: l.network, architecture: l.architecture, preset: l.preset, path: path, sha256: try SHA256.hex(ofFile: path))
        }
        let count = loaded.network.classCount
        if count != nil, classID == nil { throw CommandFailure("this prior is class-conditional: pass --class ID (0–\(count! - 1))") }
        if let classID, let count, !(0..<count).contains(classID) { throw CommandFailure("--class \(classID) is outside 0–\(count - 1)") }
        if count == nil, classID != nil { throw CommandFailure("--class needs a class-conditional prior") }
        if !quiet {
            FileHandle.standardError.write(Data("\(command): prior \(loaded.name) (\(loaded.preset?.name ?? "custom architecture"), native \(loaded.nativeSize)²) loaded in \(String(format: "%.1f", Date().timeIntervalSince(started))) s\n".utf8))
        }
        return loaded
    }

    /// The prior as a sampler's ε-function (class labels repeated per sample).
    func predictor(_ network: any DiffusionNetwork) -> (Engine.Tensor, Int) throws -> Engine.Tensor {
        let classID = classID
        return { x, t in
            try network(x, timesteps: Array(repeating: Float(t), count: x.shape[0]), classLabels: classID.map { Array(repeating: $0, count: x.shape[0]) })
        }
    }
}
