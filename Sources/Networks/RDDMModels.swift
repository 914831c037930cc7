import Checkpoints
import Engine
import Foundation

/// Loads RDDM networks from the official trainer's `model-*.pt` files or our own `.safetensors` exports.
///
/// `Trainer.save` writes `{'step', 'model', 'opt', 'ema', 'scaler'}`; `ema` (ema-pytorch 0.0.10) holds the EMA copy
/// under `ema_model.` beside a duplicate of the online model under `online_model.` and the `initted` / `step`
/// counters. The EMA copy is what the official test loads and what this loader reads (`Checkpoint.stateDict`
/// picks `ema` and strips `ema_model.`); inside it the network sits under `model.` (`ResidualDiffusion.model`)
/// beside the schedule buffers (`alphas`, `betas2_cumsum`, …), which are handed back for checking, not bound.
public enum RDDMLoader {
    public struct Loaded {
        public let network: RDDMUNet
        public let configuration: RDDMConfiguration
        /// The schedule buffers by official name (empty when the file has none).
        public let scheduleBuffers: [String: [Float]]
        /// AOSA's learned `alpha_res` (experiments/3_AOSA…: the official sampler reads the one output as the residual
        /// when it is above 0.5, else as the noise), if the file has it.
        public let alphaRes: Float?
        /// The diffusion settings of our exports' metadata "diffusion" (JSON), if any.
        public let diffusionMetadata: String?
        public let checkpoint: Checkpoint
        public let source: String
    }

    static let bufferNames: Set<String> = ["alphas", "alphas_cumsum", "one_minus_alphas_cumsum", "betas2", "betas", "betas2_cumsum",
                                           "betas_cumsum", "posterior_mean_coef1", "posterior_mean_coef2", "posterior_mean_coef3",
                                           "posterior_variance", "posterior_log_variance_clipped"]

    /// The prefix under which a state dict holds `UnetRes` (`model.` in the official files, none in a bare
    /// network), or nil when it holds none.
    public static func networkPrefix(_ state: StateDict) -> String? {
        ["model.", ""].first { p in
            state[p + "unet0.init_conv.weight"] != nil || (state[p + "init_conv.weight"] != nil && state[p + "ups_no_skip.0.0.mlp.1.weight"] != nil)
        }
    }

    /// True for a state dict of RDDM's `UnetRes` (any `share_encoder`), with or without the diffusion around it.
    public static func recognises(_ state: StateDict) -> Bool { networkPrefix(state) != nil }

    /// The configuration read from names and shapes: `share_encoder` from the module names, `dim` and the input
    /// channels from `init_conv`, the image channels from the final convolution, `dim_mults` from each level's
    /// down-sampling width. `resnet_block_groups` leaves no trace in the weights: `groups` (default 8, as every
    /// official experiment) is taken as given.
    public static func detect(_ state: StateDict, groups: Int = 8) throws -> RDDMConfiguration {
        guard let prefix = networkPrefix(state) else {
            throw CheckpointError.stateDictNotFound(reason: "not an RDDM UnetRes (unet0.* or init_conv.* with ups_no_skip.* expected)")
        }
        let share = state[prefix + "unet0.init_conv.weight"] == nil ? 1 : state[prefix + "unet1.init_conv.weight"] == nil ? -1 : 0
        let net = share == 1 ? prefix : prefix + "unet0."
        guard let initial = state[net + "init_conv.weight"]?.shape, initial.count == 4,
              let final = state[net + (share == 1 ? "final_conv_1.weight" : "final_conv.weight")]?.shape, final.count == 4 else {
            throw CheckpointError.stateDictNotFound(reason: "an RDDM UnetRes without init_conv / final_conv weights of 4 dimensions")
        }
        let (dim, inputs, channels) = (initial[0], initial[1], final[0])
        var mults: [Int] = []
        while let s = state[net + "downs.\(mults.count).3.weight"]?.shape, s.count == 4 {
            guard dim > 0, s[0] % dim == 0 else {
                throw CheckpointError.stateDictNotFound(reason: "RDDM level \(mults.count) has \(s[0]) channels, not a multiple of dim \(dim)")
            }
            mults.append(s[0] / dim)
        }
        guard !mults.isEmpty, channels > 0, inputs % channels == 0, (1...3).contains(inputs / channels) else {
            throw CheckpointError.stateDictNotFound(reason: "an RDDM UnetRes with \(inputs) input and \(channels) output channels and \(mults.count) levels fits no known layout")
        }
        return RDDMConfiguration(dim: dim, dimMults: mults, channels: channels, conditionImages: inputs / channels - 1, shareEncoder: share, groups: groups)
    }

    /// Loads `path`: the configuration given, else the metadata "config" (our exports), else detected.
    public static func load(path: String, configuration given: RDDMConfiguration? = nil, groups: Int = 8) throws -> Loaded {
        let checkpoint = try Checkpoint(path: path)
        let state = try checkpoint.stateDict()
        var configuration = given
        if configuration == nil, let json = checkpoint.metadata["config"] {
            do {
                configuration = try JSONDecoder().decode(RDDMConfiguration.self, from: Data(json.utf8))
            } catch {
                throw CheckpointError.stateDictNotFound(reason: "\(path): metadata \"config\" is not an RDDM configuration (\(error))")
            }
        }
        guard let prefix = networkPrefix(state) else {
            let family = ModelFamily.recognise(state).map { " (it looks like \($0))" } ?? ""
            throw CheckpointError.stateDictNotFound(reason: "\(path) is not an RDDM network (found \(state.source))\(family)")
        }
        let chosen = try configuration ?? detect(state, groups: groups)
        let bound = try state.bind(try RDDMUNet.parameterDeclarations(chosen), mapping: .prefixed(prefix),
                                   ignoreUnexpected: { bufferNames.contains($0) || $0 == "alpha_res" || $0.hasSuffix("num_batches_tracked") })
        var buffers: [String: [Float]] = [:]
        for name in bufferNames { if let stored = state[name] { buffers[name] = try stored.floatTensor().values } }
        let alphaRes = try state["alpha_res"].map { try $0.floatTensor().values.first ?? .nan }
        return Loaded(network: try RDDMUNet(chosen, parameters: .bound(bound)), configuration: chosen, scheduleBuffers: buffers,
                      alphaRes: alphaRes, diffusionMetadata: checkpoint.metadata["diffusion"], checkpoint: checkpoint, source: state.source)
    }
}
