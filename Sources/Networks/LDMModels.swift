import Checkpoints
import Engine
import Foundation

/// What a latent-diffusion model restores with its condition: LDM concatenates it to the latent (`concat_mode`).
public enum LDMConditioning: String, Codable, Sendable {
    /// ×4 super-resolution (`bsr_sr`): the LR image itself in [−1, 1], as pixels, beside a latent of the LR's size.
    case superResolution = "sr4"
    /// Inpainting (`inpainting_big`): the first-stage encoding of the masked image and the mask (±1) at latent size.
    case inpainting = "inpaint"

    /// Channels the condition adds to the UNet's input.
    func conditionChannels(imageChannels: Int, latentChannels: Int) -> Int {
        self == .superResolution ? imageChannels : latentChannels + 1
    }
}

/// What the UNet predicts (`parameterization` of LDM's `DDPM`): the noise ε (every released model) or the clean latent x0.
public enum LDMParameterization: String, Codable, Sendable {
    case epsilon = "eps"
    case x0
}

/// One latent-diffusion restoration model (CompVis `LatentDiffusion` with `concat_mode`), with the official names:
/// the openaimodel `UNetModel` (the same code as guided-diffusion's, so our ADM UNet), the first stage, the
/// diffusion's `timesteps` / `linear_start` / `linear_end` and `scale_factor`.
public struct LDMConfiguration: Codable, Sendable, Equatable {
    public var unet: ADMConfiguration
    /// The autoencoder; nil when `pixelUnshuffle` is the first stage.
    public var firstStage: AutoencoderConfiguration?
    /// Our own models' lossless first stage: space-to-depth by this factor (a latent of 3·f² channels at 1/f size), no weights.
    public var pixelUnshuffle: Int?
    public var conditioning: LDMConditioning
    public var timesteps = 1000
    public var linearStart: Double
    public var linearEnd: Double
    /// Latents are multiplied by this after encoding and divided by it before decoding (1 for the VQ models).
    public var scaleFactor: Float = 1
    /// ε (the default, every released model) or x0 (ddpm.py's other option; our own model, see LDMDDIM).
    public var parameterization: LDMParameterization = .epsilon

    public init(unet: ADMConfiguration, firstStage: AutoencoderConfiguration, conditioning: LDMConditioning, timesteps: Int = 1000,
                linearStart: Double, linearEnd: Double, scaleFactor: Float = 1) {
        self.unet = unet
        self.firstStage = firstStage
        self.conditioning = conditioning
        self.timesteps = timesteps
        self.linearStart = linearStart
        self.linearEnd = linearEnd
        self.scaleFactor = scaleFactor
    }

    enum CodingKeys: String, CodingKey {
        case unet = "unet_config", firstStage = "first_stage_config", pixelUnshuffle = "pixel_unshuffle", conditioning, timesteps
        case linearStart = "linear_start", linearEnd = "linear_end", scaleFactor = "scale_factor", parameterization
    }

    /// `timesteps` (1000), `scale_factor` (1) and `parameterization` ("eps") may be left out, as in the official YAML files.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        unet = try c.decode(ADMConfiguration.self, forKey: .unet)
        firstStage = try c.decodeIfPresent(AutoencoderConfiguration.self, forKey: .firstStage)
        pixelUnshuffle = try c.decodeIfPresent(Int.self, forKey: .pixelUnshuffle)
        conditioning = try c.decode(LDMConditioning.self, forKey: .conditioning)
        timesteps = try c.decodeIfPresent(Int.self, forKey: .timesteps) ?? 1000
        linearStart = try c.decode(Double.self, forKey: .linearStart)
        linearEnd = try c.decode(Double.self, forKey: .linearEnd)
        scaleFactor = try c.decodeIfPresent(Float.self, forKey: .scaleFactor) ?? 1
        parameterization = try c.decodeIfPresent(LDMParameterization.self, forKey: .parameterization) ?? .epsilon
    }

    /// `models/ldm/bsr_sr/config.yaml`: the OpenImages ×4 SR model (`bsr_sr` / `ldm-super-resolution-4x-openimages`).
    public static let bsrSR = LDMConfiguration(
        unet: ADMConfiguration(imageSize: 64, inChannels: 6, modelChannels: 160, outChannels: 3, numResBlocks: 2,
                               attentionResolutions: [16, 8], channelMult: [1, 2, 2, 4], numHeadChannels: 32),
        firstStage: .vqF4, conditioning: .superResolution, linearStart: 0.0015, linearEnd: 0.0155)

    /// `models/ldm/inpainting_big/config.yaml`: the inpainting model over the VQ-f4 without attention.
    public static let inpaintingBig = LDMConfiguration(
        unet: ADMConfiguration(imageSize: 64, inChannels: 7, modelChannels: 256, outChannels: 3, numResBlocks: 2,
                               attentionResolutions: [8, 4, 2], channelMult: [1, 2, 3, 4], numHeads: 8, resblockUpdown: true),
        firstStage: .vqF4NoAttention, conditioning: .inpainting, linearStart: 0.0015, linearEnd: 0.0205)

    public static let presets: [(name: String, configuration: LDMConfiguration)] = [("bsr_sr", .bsrSR), ("inpainting_big", .inpaintingBig)]

    /// VQ first stages quantise on decoding; KL ones (`double_z`) sample or take the mode on encoding.
    public var isVQ: Bool { firstStage.map { !$0.doubleZ } ?? false }

    /// The latent's channels: the autoencoder's `embed_dim`, or 3·f² for the pixel-unshuffle stage.
    public var latentChannels: Int { firstStage?.embedDim ?? 3 * (pixelUnshuffle ?? 1) * (pixelUnshuffle ?? 1) }

    /// Checks that the pieces fit together: one first stage; the UNet takes latent + condition channels and returns the latent.
    public func validate() throws {
        guard (firstStage == nil) != (pixelUnshuffle == nil), (pixelUnshuffle ?? 2) >= 2 else {
            throw CheckpointError.stateDictNotFound(reason: "LDM: give exactly one first stage, first_stage_config or pixel_unshuffle (a factor ≥ 2)")
        }
        let latent = latentChannels
        let expected = latent + conditioning.conditionChannels(imageChannels: firstStage?.inChannels ?? 3, latentChannels: latent)
        guard unet.inChannels == expected, unet.outChannels == latent else {
            throw CheckpointError.stateDictNotFound(reason: "LDM \(conditioning.rawValue): the UNet takes \(unet.inChannels) channels and returns \(unet.outChannels), but a latent of \(latent) channels with its condition needs \(expected) in and \(latent) out")
        }
        guard timesteps > 1, linearStart > 0, linearEnd > linearStart, scaleFactor.isFinite, scaleFactor > 0 else {
            throw CheckpointError.stateDictNotFound(reason: "LDM: timesteps \(timesteps), linear_start \(linearStart), linear_end \(linearEnd), scale_factor \(scaleFactor) make no schedule")
        }
    }
}

/// Loads latent-diffusion models from CompVis Lightning `.ckpt` files (`{'state_dict': …}`) or our `.safetensors`
/// exports (the same names, the configuration in the metadata "config"), and first stages from their own files.
///
/// In a `.ckpt` the UNet sits under `model.diffusion_model.`, its EMA copy under `model_ema.` with the dots of the
/// name removed (`model_ema.diffusion_modelinput_blocks00weight`, `ldm/modules/ema.py`), the first stage under
/// `first_stage_model.` (the inpainting model's condition stage `cond_stage_model.` is the same module again),
/// and the schedule buffers (`betas`, `alphas_cumprod`, …, `scale_factor` when `scale_by_std`) at the top. The official
/// samplers run inside `ema_scope`, so the EMA copy is preferred when the file has it whole.
public enum LDMLoader {
    public enum Weights: String, Sendable, CaseIterable {
        /// The EMA copy when the file has it, else the online weights.
        case auto
        case ema
        case online
    }

    public struct Loaded {
        public let unet: ADMUNet
        public let firstStage: FirstStage
        public let configuration: LDMConfiguration
        /// ᾱ of every timestep: the file's `alphas_cumprod` buffer when it has one (what the official sampler reads),
        /// else computed from the configuration.
        public let alphasCumprod: [Float]
        /// "ema" or "online".
        public let weights: String
        /// The configuration's origin: a preset name, "metadata", "given", "diffusers".
        public let configurationSource: String
        /// The file's safetensors metadata (our exports: "family", "config", "sampling").
        public var metadata: [String: String] = [:]
    }

    static let unetPrefix = "model.diffusion_model."
    static let emaPrefix = "model_ema.diffusion_model"
    static let firstStagePrefix = "first_stage_model."

    /// True for a state dict holding a latent-diffusion UNet (with or without its first stage).
    public static func recognises(_ state: StateDict) -> Bool { state[unetPrefix + "input_blocks.0.0.weight"] != nil }

    /// The configuration of the first stage under `prefix`, read from names and shapes: `ch`, `ch_mult` and
    /// `num_res_blocks` from the encoder's blocks, attention from the `attn` modules (their levels given as
    /// resolutions of a nominal 256), `z_channels`, `double_z`, `embed_dim` and the codebook from the convolutions.
    public static func detectFirstStage(_ state: StateDict, prefix: String = "") throws -> AutoencoderConfiguration {
        func shape(_ name: String) -> [Int]? { state[prefix + name]?.shape }
        guard let convIn = shape("encoder.conv_in.weight"), convIn.count == 4, let convOut = shape("encoder.conv_out.weight"),
              let decoderIn = shape("decoder.conv_in.weight"), decoderIn.count == 4, let decoderOut = shape("decoder.conv_out.weight"),
              let post = shape("post_quant_conv.weight"), post.count >= 2 else {
            throw CheckpointError.stateDictNotFound(reason: "no LDM first stage (encoder.conv_in, decoder.conv_in, post_quant_conv) under \"\(prefix)\"")
        }
        let ch = convIn[0]
        var mults: [Int] = [], blocks: [Int] = [], attentionLevels: [Int] = []
        while let first = shape("encoder.down.\(mults.count).block.0.conv1.weight") {
            let level = mults.count
            guard ch > 0, first[0] % ch == 0 else { throw CheckpointError.stateDictNotFound(reason: "first stage level \(level): \(first[0]) channels, not a multiple of ch \(ch)") }
            mults.append(first[0] / ch)
            var count = 0
            while shape("encoder.down.\(level).block.\(count).conv1.weight") != nil { count += 1 }
            blocks.append(count)
            if shape("encoder.down.\(level).attn.0.q.weight") != nil { attentionLevels.append(level) }
        }
        guard !mults.isEmpty else { throw CheckpointError.stateDictNotFound(reason: "first stage without encoder.down.* levels") }
        let z = decoderIn[1], doubleZ = convOut[0] == 2 * z
        let nEmbed = shape("quantize.embedding.weight")?.first ?? 0
        return AutoencoderConfiguration(ch: ch, outCh: decoderOut[0], chMult: mults, numResBlocks: blocks,
                                        attnResolutions: attentionLevels.map { 256 >> $0 }, inChannels: convIn[1], resolution: 256,
                                        zChannels: z, doubleZ: doubleZ, nEmbed: nEmbed, embedDim: post[1],
                                        attnType: shape("encoder.mid.attn_1.q.weight") == nil ? "none" : "vanilla")
    }

    /// Builds the first stage of `configuration` from the tensors under `prefix`.
    public static func firstStage(_ configuration: AutoencoderConfiguration, state: StateDict, prefix: String) throws -> FirstStage {
        let ignore: (String) -> Bool = { !$0.hasPrefix(prefix) || $0.hasPrefix(prefix + "loss.") || $0.hasSuffix("num_batches_tracked") }
        if configuration.doubleZ {
            let bound = try state.bind(try KLAutoencoder.parameterDeclarations(configuration), mapping: .prefixed(prefix), ignoreUnexpected: ignore)
            return try KLAutoencoder(configuration, parameters: .bound(bound))
        }
        let bound = try state.bind(try VQAutoencoder.parameterDeclarations(configuration), mapping: .prefixed(prefix), ignoreUnexpected: ignore)
        return try VQAutoencoder(configuration, parameters: .bound(bound))
    }

    /// A stand-alone first stage (a CompVis `first_stage_models/*/model.ckpt`, with its `loss.*` entries, or a bare
    /// state dict), configuration read from its shapes unless given.
    public static func loadFirstStage(path: String, configuration: AutoencoderConfiguration? = nil) throws -> FirstStage {
        let state = try Checkpoint(path: path).stateDict()
        let prefix = state["first_stage_model.encoder.conv_in.weight"] != nil ? firstStagePrefix : ""
        return try firstStage(configuration ?? detectFirstStage(state, prefix: prefix), state: state, prefix: prefix)
    }

    /// Loads `path`. The configuration: the one given, else the metadata "config" (our exports), else the released
    /// preset whose every UNet name and shape the file matches (the first stage's shapes are read from the file).
    /// `firstStagePath` takes the first stage from another file (files holding only the UNet need one).
    public static func load(path: String, configuration given: LDMConfiguration? = nil, firstStagePath: String? = nil,
                            weights: Weights = .auto) throws -> Loaded {
        if DiffusersLDM.isFolder(path) {
            guard given == nil, firstStagePath == nil else {
                throw CheckpointError.stateDictNotFound(reason: "\(path) is a diffusers folder: its configuration and autoencoder come from its own config.json files")
            }
            let (unet, stage, configuration) = try DiffusersLDM.load(folder: path)
            return Loaded(unet: unet, firstStage: stage, configuration: configuration,
                          alphasCumprod: LDMConfiguration.linearAlphasCumprod(timesteps: configuration.timesteps, start: configuration.linearStart,
                                                                              end: configuration.linearEnd),
                          weights: "as stored", configurationSource: "diffusers")
        }
        let checkpoint = try Checkpoint(path: path)
        let state = try checkpoint.stateDict()
        let diffusersNames = checkpoint.metadata["unet_layout"] == "diffusers"
        guard recognises(state) || diffusersNames else {
            let family = ModelFamily.recognise(state).map { " (it looks like \($0))" } ?? ""
            throw CheckpointError.stateDictNotFound(reason: "\(path) is not a latent-diffusion model: no \(unetPrefix)* weights (found \(state.source))\(family)")
        }
        var configuration = given
        var origin = "given"
        if configuration == nil, let json = checkpoint.metadata["config"] {
            do {
                configuration = try JSONDecoder().decode(LDMConfiguration.self, from: Data(json.utf8))
                origin = "metadata"
            } catch {
                throw CheckpointError.stateDictNotFound(reason: "\(path): metadata \"config\" is not an LDM configuration (\(error))")
            }
        }
        if configuration == nil {
            let stored = Dictionary(state.tensors.map { ($0.name, $0.tensor.shape) }, uniquingKeysWith: { a, _ in a })
            for preset in LDMConfiguration.presets {
                let declared = try ADMUNet.parameterDeclarations(preset.configuration.unet)
                if declared.allSatisfy({ d in stored[unetPrefix + d.name].map { StateDict.shapesMatch(d.shape, $0) } ?? false }) {
                    configuration = preset.configuration
                    origin = preset.name
                    break
                }
            }
        }
        if configuration == nil, diffusersNames {
            throw CheckpointError.stateDictNotFound(reason: "\(path): a UNet in diffusers names without a metadata \"config\"")
        }
        guard var chosen = configuration else {
            let input = state[unetPrefix + "input_blocks.0.0.weight"]?.shape ?? []
            throw CheckpointError.stateDictNotFound(reason: "\(path): an LDM UNet (input_blocks.0.0 \(input)) that matches neither bsr_sr nor inpainting_big and carries no configuration; give one with --config FILE (JSON: unet_config, first_stage_config, conditioning, linear_start, linear_end)")
        }
        if let factor = chosen.pixelUnshuffle {
            // Our own models: no autoencoder, the UNet stored under diffusers' names (Tools/train/train_ldm.py).
            try chosen.validate()
            let tensors = diffusersNames ? try DiffusersLDM.unetTensors(state, chosen.unet)
                : try state.bind(try ADMUNet.parameterDeclarations(chosen.unet), mapping: .prefixed(unetPrefix),
                                 ignoreUnexpected: { !$0.hasPrefix(unetPrefix) })
            return Loaded(unet: try ADMUNet(chosen.unet, parameters: .bound(tensors)), firstStage: PixelUnshuffleStage(factor: factor),
                          configuration: chosen,
                          alphasCumprod: LDMConfiguration.linearAlphasCumprod(timesteps: chosen.timesteps, start: chosen.linearStart, end: chosen.linearEnd),
                          weights: "as stored", configurationSource: origin, metadata: checkpoint.metadata)
        }
        // The first stage: from the other file, else from this one; its configuration read from the shapes when
        // the chosen one does not fit them (a preset's UNet over another autoencoder).
        let firstStageState = try firstStagePath.map { try Checkpoint(path: $0).stateDict() } ?? state
        let firstStagePrefix = firstStageState[self.firstStagePrefix + "encoder.conv_in.weight"] != nil ? self.firstStagePrefix : ""
        guard firstStageState[firstStagePrefix + "encoder.conv_in.weight"] != nil else {
            throw CheckpointError.stateDictNotFound(reason: "\(firstStagePath ?? path) holds no first stage (first_stage_model.encoder.* or encoder.*); give the autoencoder with --autoencoder FILE")
        }
        if origin != "given" && origin != "metadata" {
            chosen.firstStage = try detectFirstStage(firstStageState, prefix: firstStagePrefix)
        }
        if let stored = state["scale_factor"], origin != "given" {
            chosen.scaleFactor = try stored.floatTensor().values.first ?? chosen.scaleFactor
        }
        try chosen.validate()

        let declarations = try ADMUNet.parameterDeclarations(chosen.unet)
        let emaWhole = declarations.allSatisfy { state[KeyMapping.dotsStripped(prefix: emaPrefix).storedName($0.name)] != nil }
        let useEMA: Bool
        switch weights {
        case .auto: useEMA = emaWhole
        case .online: useEMA = false
        case .ema:
            guard emaWhole else { throw CheckpointError.stateDictNotFound(reason: "\(path) has no complete EMA copy (model_ema.*); use the online weights") }
            useEMA = true
        }
        let mapping: KeyMapping = useEMA ? .dotsStripped(prefix: emaPrefix) : .prefixed(unetPrefix)
        let ownPrefix = useEMA ? "model_ema." : unetPrefix
        let bound = try state.bind(declarations, mapping: mapping,
                                   ignoreUnexpected: { !$0.hasPrefix(ownPrefix) || $0 == "model_ema.decay" || $0 == "model_ema.num_updates" })
        let unet = try ADMUNet(chosen.unet, parameters: .bound(bound))
        guard let stageConfiguration = chosen.firstStage else { throw CheckpointError.stateDictNotFound(reason: "LDM: no first stage configuration") }
        let stage = try firstStage(stageConfiguration, state: firstStageState, prefix: firstStagePrefix)

        var alphas = try state["alphas_cumprod"].map { try $0.floatTensor().values } ?? []
        if alphas.count != chosen.timesteps {
            alphas = LDMConfiguration.linearAlphasCumprod(timesteps: chosen.timesteps, start: chosen.linearStart, end: chosen.linearEnd)
        }
        guard alphas.allSatisfy({ $0.isFinite && $0 > 0 && $0 <= 1 }) else {
            throw CheckpointError.stateDictNotFound(reason: "\(path): alphas_cumprod holds values outside (0, 1]")
        }
        return Loaded(unet: unet, firstStage: stage, configuration: chosen, alphasCumprod: alphas, weights: useEMA ? "ema" : "online",
                      configurationSource: origin, metadata: checkpoint.metadata)
    }
}

extension LDMConfiguration {
    /// LDM's "linear" schedule: β = linspace(√start, √end, T)² in float64 (`make_beta_schedule`), ᾱ = cumprod(1 − β)
    /// in float64, stored as float32 buffers.
    public static func linearAlphasCumprod(timesteps: Int, start: Double, end: Double) -> [Float] {
        let a = start.squareRoot(), b = end.squareRoot()
        var product = 1.0
        return (0..<timesteps).map { i in
            // torch.linspace: start + i·step for the first half, end − (T−1−i)·step for the second.
            let step = (b - a) / Double(timesteps - 1)
            let root = i < timesteps / 2 ? a + Double(i) * step : b - Double(timesteps - 1 - i) * step
            product *= 1 - root * root
            return Float(product)
        }
    }
}
