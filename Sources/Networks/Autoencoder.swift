import Checkpoints
import Engine
import Foundation

/// What latent-space samplers see of an autoencoder ("first stage"): images ([-1, 1], NHWC) to latents and back.
public protocol FirstStage: AnyObject {
    /// Latents are this many times smaller than images in height and width.
    var downFactor: Int { get }
    var imageChannels: Int { get }
    var latentChannels: Int { get }
    func encode(_ image: Tensor) throws -> Tensor
    func decode(_ latent: Tensor) throws -> Tensor
}

/// A lossless, parameter-free first stage: pixel-unshuffle by `factor` (space-to-depth), so a network runs at
/// 1/factor of the image's resolution on factor² × channels. Our own ResShift model works this way.
public final class PixelUnshuffleStage: FirstStage {
    public let downFactor: Int
    public let imageChannels: Int
    public init(factor: Int, imageChannels: Int = 3) {
        downFactor = factor
        self.imageChannels = imageChannels
    }
    public var latentChannels: Int { imageChannels * downFactor * downFactor }
    public func encode(_ image: Tensor) throws -> Tensor { try pixelUnshuffle(image, factor: downFactor) }
    public func decode(_ latent: Tensor) throws -> Tensor { try pixelShuffle(latent, factor: downFactor) }
}

/// The `ddconfig` of the LDM / taming autoencoders (`ldm/modules/diffusionmodules/model.py` Encoder and Decoder),
/// plus the quantiser size, with the official names.
public struct AutoencoderConfiguration: Codable, Sendable, Equatable {
    public var ch: Int
    public var outCh = 3
    public var chMult: [Int]
    /// Per level (an integer in a config applies to every level).
    public var numResBlocks: [Int]
    public var attnResolutions: [Int] = []
    public var inChannels = 3
    public var resolution: Int
    public var zChannels: Int
    public var doubleZ = false
    /// VQ models: codebook size (0 for KL models, which have none); every model: the latent width (`embed_dim`).
    public var nEmbed: Int
    public var embedDim: Int
    /// `attn_type`: "vanilla" (every attention block, the middle one included) or "none" (LDM's
    /// `vq-f4-noattn` of the inpainting model: `make_attn` returns an Identity, so no attention parameters at all).
    public var attnType = "vanilla"

    public init(ch: Int, outCh: Int = 3, chMult: [Int], numResBlocks: [Int], attnResolutions: [Int] = [], inChannels: Int = 3,
                resolution: Int, zChannels: Int, doubleZ: Bool = false, nEmbed: Int, embedDim: Int, attnType: String = "vanilla") {
        self.ch = ch
        self.outCh = outCh
        self.chMult = chMult
        self.numResBlocks = numResBlocks
        self.attnResolutions = attnResolutions
        self.inChannels = inChannels
        self.resolution = resolution
        self.zChannels = zChannels
        self.doubleZ = doubleZ
        self.nEmbed = nEmbed
        self.embedDim = embedDim
        self.attnType = attnType
    }

    /// ResShift's `autoencoder_vq_f4.pth` (the LDM VQ-f4, d = 3, 8192 entries): 55.3 M parameters.
    public static let vqF4 = AutoencoderConfiguration(ch: 128, chMult: [1, 2, 4], numResBlocks: [2, 2, 2], resolution: 256,
                                                      zChannels: 3, nEmbed: 8192, embedDim: 3)

    /// LDM's `vq-f4-noattn` (the inpainting model's first stage): the VQ-f4 without any attention.
    public static let vqF4NoAttention = AutoencoderConfiguration(ch: 128, chMult: [1, 2, 4], numResBlocks: [2, 2, 2], resolution: 256,
                                                                 zChannels: 3, nEmbed: 8192, embedDim: 3, attnType: "none")

    /// LDM's KL autoencoders (`models/first_stage_models/kl-f{4,8,16}/config.yaml`): double_z, no codebook.
    public static let klF4 = AutoencoderConfiguration(ch: 128, chMult: [1, 2, 4], numResBlocks: [2, 2, 2], resolution: 256,
                                                      zChannels: 3, doubleZ: true, nEmbed: 0, embedDim: 3)
    public static let klF8 = AutoencoderConfiguration(ch: 128, chMult: [1, 2, 4, 4], numResBlocks: [2, 2, 2, 2], resolution: 256,
                                                      zChannels: 4, doubleZ: true, nEmbed: 0, embedDim: 4)
    public static let klF16 = AutoencoderConfiguration(ch: 128, chMult: [1, 1, 2, 2, 4], numResBlocks: [2, 2, 2, 2, 2], attnResolutions: [16],
                                                       resolution: 256, zChannels: 16, doubleZ: true, nEmbed: 0, embedDim: 16)

    /// ResShift's face autoencoder `ffhq512_vq_f8_dim8_face.pth` (f8, d = 8, 4096 entries; faceir).
    public static let vqF8Face = AutoencoderConfiguration(ch: 64, chMult: [1, 2, 4, 8], numResBlocks: [1, 2, 3, 4], resolution: 512,
                                                          zChannels: 8, nEmbed: 4096, embedDim: 8)

    enum CodingKeys: String, CodingKey {
        case ch, outCh = "out_ch", chMult = "ch_mult", numResBlocks = "num_res_blocks", attnResolutions = "attn_resolutions"
        case inChannels = "in_channels", resolution, zChannels = "z_channels", doubleZ = "double_z", nEmbed = "n_embed", embedDim = "embed_dim"
        case attnType = "attn_type"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        ch = try c.decode(Int.self, forKey: .ch)
        outCh = try c.decodeIfPresent(Int.self, forKey: .outCh) ?? 3
        chMult = try c.decode([Int].self, forKey: .chMult)
        if let perLevel = try? c.decode([Int].self, forKey: .numResBlocks) {
            numResBlocks = perLevel
        } else {
            numResBlocks = Array(repeating: try c.decode(Int.self, forKey: .numResBlocks), count: chMult.count)
        }
        attnResolutions = try c.decodeIfPresent([Int].self, forKey: .attnResolutions) ?? []
        inChannels = try c.decodeIfPresent(Int.self, forKey: .inChannels) ?? 3
        resolution = try c.decode(Int.self, forKey: .resolution)
        zChannels = try c.decode(Int.self, forKey: .zChannels)
        doubleZ = try c.decodeIfPresent(Bool.self, forKey: .doubleZ) ?? false
        nEmbed = try c.decodeIfPresent(Int.self, forKey: .nEmbed) ?? 0
        embedDim = try c.decode(Int.self, forKey: .embedDim)
        attnType = try c.decodeIfPresent(String.self, forKey: .attnType) ?? "vanilla"
        guard ["vanilla", "none"].contains(attnType) else {
            throw DecodingError.dataCorruptedError(forKey: .attnType, in: c, debugDescription: "attn_type \(attnType): only vanilla and none are supported")
        }
    }

    /// False for `attn_type: none`.
    public var hasAttention: Bool { attnType != "none" }

    public var downFactor: Int { 1 << (chMult.count - 1) }

    var isBuildable: Bool { ch % 32 == 0 && !chMult.isEmpty && numResBlocks.count == chMult.count && embedDim > 0 && zChannels > 0 }
}

/// The VQ autoencoder ResShift uses (`VQModelTorch`): `encode = quant_conv(encoder(x))` with no quantisation,
/// `decode = decoder(post_quant_conv(nearest codebook entry of h))`.
public final class VQAutoencoder: ParameterDeclaring, FirstStage {
    public let configuration: AutoencoderConfiguration
    let encoder: AutoencoderEncoder, decoder: AutoencoderDecoder
    let quantConv: Linear, postQuantConv: Linear
    /// [nEmbed, embedDim] and each entry's squared norm.
    let codebook: Tensor
    let codebookNorms: [Float]

    public init(_ c: AutoencoderConfiguration, parameters p: ParameterSource) throws {
        guard !c.doubleZ, c.isBuildable, c.nEmbed > 0 else {
            throw EngineError.invalidArgument(op: "VQAutoencoder", reason: "unsupported configuration: needs double_z false, ch a multiple of 32, one num_res_blocks per level, a codebook")
        }
        configuration = c
        encoder = try AutoencoderEncoder(c, p)
        decoder = try AutoencoderDecoder(c, p)
        quantConv = try loadLinear(p, "quant_conv", in: c.zChannels, out: c.embedDim, kernelDims: [1, 1])
        let entries = try p.tensor("quantize.embedding.weight", [c.nEmbed, c.embedDim])
        codebook = entries
        postQuantConv = try loadLinear(p, "post_quant_conv", in: c.embedDim, out: c.zChannels, kernelDims: [1, 1])
        let d = c.embedDim
        codebookNorms = (0..<c.nEmbed).map { e in (0..<d).reduce(Float(0)) { $0 + entries.data[e * d + $1] * entries.data[e * d + $1] } }
    }


    public var downFactor: Int { configuration.downFactor }
    public var imageChannels: Int { configuration.inChannels }
    public var latentChannels: Int { configuration.embedDim }

    public func encode(_ image: Tensor) throws -> Tensor {
        let (_, h, w, c) = try image.nhwc("VQAutoencoder.encode")
        guard c == imageChannels, h % downFactor == 0, w % downFactor == 0 else {
            throw EngineError.invalidArgument(op: "VQAutoencoder.encode", reason: "needs \(imageChannels) channels and a size divisible by \(downFactor), got \(image.shape)")
        }
        return try quantConv(try encoder(image))
    }

    /// The codebook index of each latent vector: argmin_e ‖z‖² + ‖e‖² − 2 z·e (the official distance, same order).
    public func indices(_ latent: Tensor) throws -> [Int] {
        let d = configuration.embedDim, entries = configuration.nEmbed
        guard latent.shape.last == d else { throw EngineError.shapeMismatch(op: "VQAutoencoder.quantize", expected: "\(d) latent channels", found: "\(latent.shape)") }
        let count = latent.count / d
        var result = [Int](repeating: 0, count: count)
        result.withUnsafeMutableBufferPointer { out in
            let out = out.baseAddress!
            Parallel.forRanges(count, grain: 64) { begin, end in
                for i in begin..<end {
                    let z = latent.data + i * d
                    var zz: Float = 0
                    for k in 0..<d { zz += z[k] * z[k] }
                    var best = Float.infinity, bestIndex = 0
                    for e in 0..<entries {
                        let entry = codebook.data + e * d
                        var dot: Float = 0
                        for k in 0..<d { dot += z[k] * entry[k] }
                        let distance = zz + codebookNorms[e] - 2 * dot
                        if distance < best { best = distance; bestIndex = e }
                    }
                    out[i] = bestIndex
                }
            }
        }
        return result
    }

    /// The latent with each vector replaced by its nearest codebook entry.
    public func quantize(_ latent: Tensor) throws -> Tensor {
        let d = configuration.embedDim
        let chosen = try indices(latent)
        let out = try Tensor(uninitializedShape: latent.shape)
        for (i, e) in chosen.enumerated() { (out.data + i * d).update(from: codebook.data + e * d, count: d) }
        return out
    }

    public func decode(_ latent: Tensor) throws -> Tensor {
        _ = try latent.nhwc("VQAutoencoder.decode")
        return try decoder(try postQuantConv(try quantize(latent)))
    }
}

/// LDM's `AutoencoderKL`: `encode` gives the moments `quant_conv(encoder(x))` (mean, then log-variance, each
/// `embed_dim` channels) of `DiagonalGaussianDistribution`; `decode = decoder(post_quant_conv(z))`. The latent a
/// sampler sees is the distribution's `mode()` (the mean) or a sample `mean + exp(logvar/2)·n` with logvar clamped
/// to [−30, 20] (`ldm/modules/distributions/distributions.py:27-37`). `scale_factor` belongs to the latent-diffusion
/// model, not to the autoencoder, and is applied by the caller.
public final class KLAutoencoder: ParameterDeclaring, FirstStage {
    public let configuration: AutoencoderConfiguration
    let encoder: AutoencoderEncoder, decoder: AutoencoderDecoder
    let quantConv: Linear, postQuantConv: Linear

    public init(_ c: AutoencoderConfiguration, parameters p: ParameterSource) throws {
        guard c.doubleZ, c.isBuildable else {
            throw EngineError.invalidArgument(op: "KLAutoencoder", reason: "unsupported configuration: needs double_z true, ch a multiple of 32, one num_res_blocks per level, embed_dim > 0")
        }
        configuration = c
        encoder = try AutoencoderEncoder(c, p)
        decoder = try AutoencoderDecoder(c, p)
        quantConv = try loadLinear(p, "quant_conv", in: 2 * c.zChannels, out: 2 * c.embedDim, kernelDims: [1, 1])
        postQuantConv = try loadLinear(p, "post_quant_conv", in: c.embedDim, out: c.zChannels, kernelDims: [1, 1])
    }

    public var downFactor: Int { configuration.downFactor }
    public var imageChannels: Int { configuration.inChannels }
    public var latentChannels: Int { configuration.embedDim }

    /// The posterior's mean and (clamped) log-variance, each [N, h, w, embed_dim].
    public func moments(_ image: Tensor) throws -> (mean: Tensor, logVariance: Tensor) {
        let (n, h, w, c) = try image.nhwc("KLAutoencoder.encode")
        guard c == imageChannels, h % downFactor == 0, w % downFactor == 0 else {
            throw EngineError.invalidArgument(op: "KLAutoencoder.encode", reason: "needs \(imageChannels) channels and a size divisible by \(downFactor), got \(image.shape)")
        }
        let both = try quantConv(try encoder(image))
        let d = configuration.embedDim, pixels = n * (h / downFactor) * (w / downFactor)
        let mean = try Tensor(uninitializedShape: [n, h / downFactor, w / downFactor, d])
        let logVariance = try Tensor(uninitializedShape: mean.shape)
        for i in 0..<pixels {
            (mean.data + i * d).update(from: both.data + i * 2 * d, count: d)
            for k in 0..<d { logVariance.data[i * d + k] = min(max(both.data[i * 2 * d + d + k], -30), 20) }
        }
        return (mean, logVariance)
    }

    /// The posterior's mode (its mean), as LDM's `encode(x).mode()`.
    public func encode(_ image: Tensor) throws -> Tensor { try moments(image).mean }

    /// A posterior sample `mean + exp(logvar/2)·noise` with the caller's standard-normal `noise` (latent-shaped).
    public func encode(_ image: Tensor, noise: Tensor) throws -> Tensor {
        let (mean, logVariance) = try moments(image)
        guard noise.shape == mean.shape else { throw EngineError.shapeMismatch(op: "KLAutoencoder.sample", expected: "\(mean.shape)", found: "\(noise.shape)") }
        for i in 0..<mean.count { mean.data[i] += exp(0.5 * logVariance.data[i]) * noise.data[i] }
        return mean
    }

    public func decode(_ latent: Tensor) throws -> Tensor {
        let (_, _, _, c) = try latent.nhwc("KLAutoencoder.decode")
        guard c == latentChannels else { throw EngineError.shapeMismatch(op: "KLAutoencoder.decode", expected: "\(latentChannels) latent channels", found: "\(latent.shape)") }
        return try decoder(try postQuantConv(latent))
    }
}

/// LDM `Encoder`: conv_in, per level res blocks (+ attention at the listed resolutions) and a stride-2 conv
/// after zero padding (0, 1, 0, 1); middle res–attention–res; GN, swish, conv_out.
struct AutoencoderEncoder {
    let convIn: Conv2D
    let levels: [(blocks: [DDPMResnetBlock], attentions: [DDPMAttentionBlock], downsample: Conv2D?)]
    let middle: (DDPMResnetBlock, DDPMAttentionBlock?, DDPMResnetBlock)
    let normOut: ADMNorm, convOut: Conv2D

    init(_ c: AutoencoderConfiguration, _ p: ParameterSource) throws {
        convIn = try loadConv(p, "encoder.conv_in", in: c.inChannels, out: c.ch)
        var resolution = c.resolution, blockIn = c.ch
        var levels: [(blocks: [DDPMResnetBlock], attentions: [DDPMAttentionBlock], downsample: Conv2D?)] = []
        for (level, mult) in c.chMult.enumerated() {
            var blocks: [DDPMResnetBlock] = [], attentions: [DDPMAttentionBlock] = []
            for i in 0..<c.numResBlocks[level] {
                blocks.append(try DDPMResnetBlock(p, "encoder.down.\(level).block.\(i)", in: blockIn, out: c.ch * mult, embeddingChannels: 0))
                blockIn = c.ch * mult
                if c.hasAttention, c.attnResolutions.contains(resolution) {
                    attentions.append(try DDPMAttentionBlock(p, "encoder.down.\(level).attn.\(i)", channels: blockIn))
                }
            }
            var downsample: Conv2D?
            if level != c.chMult.count - 1 {
                downsample = try loadConv(p, "encoder.down.\(level).downsample.conv", in: blockIn, out: blockIn, stride: 2,
                                          padding: .zeros(top: 0, left: 0, bottom: 1, right: 1))
                resolution /= 2
            }
            levels.append((blocks, attentions, downsample))
        }
        self.levels = levels
        middle = (try DDPMResnetBlock(p, "encoder.mid.block_1", in: blockIn, out: blockIn, embeddingChannels: 0),
                  c.hasAttention ? try DDPMAttentionBlock(p, "encoder.mid.attn_1", channels: blockIn) : nil,
                  try DDPMResnetBlock(p, "encoder.mid.block_2", in: blockIn, out: blockIn, embeddingChannels: 0))
        normOut = try ADMNorm(p, "encoder.norm_out", channels: blockIn, epsilon: 1e-6)
        convOut = try loadConv(p, "encoder.conv_out", in: blockIn, out: c.doubleZ ? 2 * c.zChannels : c.zChannels)
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        var h = try convIn(x)
        for level in levels {
            for (i, block) in level.blocks.enumerated() {
                h = try block(h, nil, consuming: true)
                if !level.attentions.isEmpty { h = try level.attentions[i](h, consuming: true) }
            }
            if let down = level.downsample { h = try down(h) }
        }
        h = try middle.0(h, nil, consuming: true)
        if let attention = middle.1 { h = try attention(h, consuming: true) }
        h = try middle.2(h, nil, consuming: true)
        return try convOut(try normOut(h, silu: true))
    }
}

/// LDM `Decoder`: conv_in, middle res–attention–res, per level (deepest first) num_res_blocks + 1 res blocks
/// (+ attention) and nearest ×2 + conv; GN, swish, conv_out.
struct AutoencoderDecoder {
    let convIn: Conv2D
    let middle: (DDPMResnetBlock, DDPMAttentionBlock?, DDPMResnetBlock)
    /// Deepest level first, as they run.
    let levels: [(blocks: [DDPMResnetBlock], attentions: [DDPMAttentionBlock], upsample: Conv2D?)]
    let normOut: ADMNorm, convOut: Conv2D

    init(_ c: AutoencoderConfiguration, _ p: ParameterSource) throws {
        var blockIn = c.ch * c.chMult[c.chMult.count - 1]
        var resolution = c.resolution >> (c.chMult.count - 1)
        convIn = try loadConv(p, "decoder.conv_in", in: c.zChannels, out: blockIn)
        middle = (try DDPMResnetBlock(p, "decoder.mid.block_1", in: blockIn, out: blockIn, embeddingChannels: 0),
                  c.hasAttention ? try DDPMAttentionBlock(p, "decoder.mid.attn_1", channels: blockIn) : nil,
                  try DDPMResnetBlock(p, "decoder.mid.block_2", in: blockIn, out: blockIn, embeddingChannels: 0))
        var levels: [(blocks: [DDPMResnetBlock], attentions: [DDPMAttentionBlock], upsample: Conv2D?)] = []
        for level in (0..<c.chMult.count).reversed() {
            var blocks: [DDPMResnetBlock] = [], attentions: [DDPMAttentionBlock] = []
            for i in 0...c.numResBlocks[level] {
                blocks.append(try DDPMResnetBlock(p, "decoder.up.\(level).block.\(i)", in: blockIn, out: c.ch * c.chMult[level], embeddingChannels: 0))
                blockIn = c.ch * c.chMult[level]
                if c.hasAttention, c.attnResolutions.contains(resolution) {
                    attentions.append(try DDPMAttentionBlock(p, "decoder.up.\(level).attn.\(i)", channels: blockIn))
                }
            }
            var upsample: Conv2D?
            if level != 0 {
                upsample = try loadConv(p, "decoder.up.\(level).upsample.conv", in: blockIn, out: blockIn)
                resolution *= 2
            }
            levels.append((blocks, attentions, upsample))
        }
        self.levels = levels
        normOut = try ADMNorm(p, "decoder.norm_out", channels: blockIn, epsilon: 1e-6)
        convOut = try loadConv(p, "decoder.conv_out", in: blockIn, out: c.outCh)
    }

    func callAsFunction(_ z: Tensor) throws -> Tensor {
        var h = try convIn(z)
        h = try middle.0(h, nil, consuming: true)
        if let attention = middle.1 { h = try attention(h, consuming: true) }
        h = try middle.2(h, nil, consuming: true)
        for level in levels {
            for (i, block) in level.blocks.enumerated() {
                h = try block(h, nil, consuming: true)
                if !level.attentions.isEmpty { h = try level.attentions[i](h, consuming: true) }
            }
            if let up = level.upsample { h = try up(try upsampleNearest2x(h)) }
        }
        return try convOut(try normOut(h, silu: true))
    }
}
