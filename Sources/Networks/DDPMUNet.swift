import Checkpoints
import Engine
import Foundation

/// The options of the DDPM "simple" UNet (Ho et al. 2020, as ported in DDNM's `guided_diffusion/models.py`
/// for SDEdit's CelebA-HQ and the LSUN checkpoints), with the official names.
public struct DDPMConfiguration: Codable, Sendable, Equatable {
    public var resolution: Int
    public var inChannels = 3
    public var outChannels = 3
    public var ch: Int
    public var chMult: [Int]
    public var numResBlocks: Int
    /// Pixel resolutions (not factors) that get self-attention, e.g. [16].
    public var attnResolutions: [Int]
    public var resampWithConv = true

    public init(resolution: Int, inChannels: Int = 3, outChannels: Int = 3, ch: Int, chMult: [Int], numResBlocks: Int,
                attnResolutions: [Int], resampWithConv: Bool = true) {
        self.resolution = resolution
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.ch = ch
        self.chMult = chMult
        self.numResBlocks = numResBlocks
        self.attnResolutions = attnResolutions
        self.resampWithConv = resampWithConv
    }

    /// Decodes the DDPM config's model section (plus `resolution`); in/out channels and resampling may be absent.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        resolution = try c.decode(Int.self, forKey: .resolution)
        inChannels = try c.decodeIfPresent(Int.self, forKey: .inChannels) ?? 3
        outChannels = try c.decodeIfPresent(Int.self, forKey: .outChannels) ?? 3
        ch = try c.decode(Int.self, forKey: .ch)
        chMult = try c.decode([Int].self, forKey: .chMult)
        numResBlocks = try c.decode(Int.self, forKey: .numResBlocks)
        attnResolutions = try c.decode([Int].self, forKey: .attnResolutions)
        resampWithConv = try c.decodeIfPresent(Bool.self, forKey: .resampWithConv) ?? true
    }

    enum CodingKeys: String, CodingKey {
        case resolution, inChannels = "in_channels", outChannels = "out_ch", ch, chMult = "ch_mult"
        case numResBlocks = "num_res_blocks", attnResolutions = "attn_resolutions", resampWithConv = "resamp_with_conv"
    }
}

/// GroupNorm(32, C, eps 1e-6), the DDPM convention.
private func ddpmNorm(_ p: ParameterSource, _ prefix: String, _ channels: Int) throws -> ADMNorm {
    try ADMNorm(p, prefix, channels: channels, epsilon: 1e-6)
}

/// `ResnetBlock`: GN, swish, conv1, + temb_proj(swish(temb)), GN, swish, conv2, + (nin_shortcut) x.
/// Without a timestep embedding (`embeddingChannels` 0: the LDM autoencoders) there is no temb_proj.
struct DDPMResnetBlock {
    let norm1: ADMNorm, conv1: Conv2D, timeProjection: Linear?, norm2: ADMNorm, conv2: Conv2D
    let shortcut: Linear?

    init(_ p: ParameterSource, _ prefix: String, in c: Int, out: Int, embeddingChannels: Int) throws {
        norm1 = try ddpmNorm(p, prefix + ".norm1", c)
        conv1 = try loadConv(p, prefix + ".conv1", in: c, out: out)
        timeProjection = embeddingChannels > 0 ? try loadLinear(p, prefix + ".temb_proj", in: embeddingChannels, out: out) : nil
        norm2 = try ddpmNorm(p, prefix + ".norm2", out)
        conv2 = try loadConv(p, prefix + ".conv2", in: out, out: out, postOps: [.sum()])
        shortcut = c == out ? nil : try loadLinear(p, prefix + ".nin_shortcut", in: c, out: out, kernelDims: [1, 1])
    }

    func callAsFunction(_ x: Tensor, _ swishEmbedding: Tensor?, consuming: Bool) throws -> Tensor {
        let h = try conv1(try norm1(x, silu: true))
        if let timeProjection, let swishEmbedding { try addPerSampleChannels(h, try timeProjection(swishEmbedding)) }
        let residual = try shortcut.map { try $0(x) } ?? (consuming ? x : try x.copy())
        return try conv2(try norm2(h, silu: true), residual: residual)
    }
}

/// `AttnBlock`: single-head attention with q, k, v and proj_out as 1×1 convolutions, scale C^(-1/2).
struct DDPMAttentionBlock {
    let norm: ADMNorm
    let qkv: Linear  // q, k and v stacked into one product: [3C, C]
    let projection: Linear
    let attention = Attention()

    init(_ p: ParameterSource, _ prefix: String, channels c: Int) throws {
        norm = try ddpmNorm(p, prefix + ".norm", c)
        let parts = try ["q", "k", "v"].map { (try p.tensor("\(prefix).\($0).weight", [c, c, 1, 1]), try p.tensor("\(prefix).\($0).bias", [c])) }
        let weight = try Tensor(uninitializedShape: [3 * c, c]), bias = try Tensor(uninitializedShape: [3 * c])
        for (i, part) in parts.enumerated() {
            (weight.data + i * c * c).update(from: part.0.data, count: c * c)
            (bias.data + i * c).update(from: part.1.data, count: c)
        }
        qkv = try Linear(weight: weight, bias: bias)
        projection = try loadLinear(p, prefix + ".proj_out", in: c, out: c, kernelDims: [1, 1], postOps: [.sum()])
    }

    func callAsFunction(_ x: Tensor, consuming: Bool) throws -> Tensor {
        let (n, h, w, c) = try x.nhwc("AttnBlock")
        let tokens = try qkv(try norm(x, silu: false)).view(as: [n, h * w, 3 * c])
        let attended = try attention(q: tokens, HeadLayout(offset: 0, headStride: c), k: tokens, HeadLayout(offset: c, headStride: c),
                                     v: tokens, HeadLayout(offset: 2 * c, headStride: c), heads: 1, headDim: c, scale: 1 / Float(c).squareRoot())
        return try projection(try attended.view(as: [n, h, w, c]), residual: consuming ? x : try x.copy())
    }
}

/// The DDPM "simple" UNet: ε from x_t and t. NHWC in and out, [-1, 1] images.
///
/// The official `forward` asserts H = W = resolution; this one accepts any size divisible by
/// `sizeMultiple` (attention placement follows the configured resolution), which tiling relies on.
public final class DDPMUNet: ParameterDeclaring, DiffusionNetwork {
    public let configuration: DDPMConfiguration
    let dense0: Linear, dense1: Linear
    let convIn: Conv2D
    struct Level {
        var blocks: [DDPMResnetBlock] = []
        var attentions: [DDPMAttentionBlock] = []
        var resample: Conv2D?
        var hasResample = false
    }
    let down: [Level]
    let middle: (DDPMResnetBlock, DDPMAttentionBlock, DDPMResnetBlock)
    let up: [Level]  // indexed by level, as the official `self.up`
    let normOut: ADMNorm, convOut: Conv2D

    public init(_ c: DDPMConfiguration, parameters p: ParameterSource) throws {
        configuration = c
        guard c.ch % 32 == 0, !c.chMult.isEmpty, c.numResBlocks >= 1 else {
            throw EngineError.invalidArgument(op: "DDPMUNet", reason: "ch must be a multiple of 32, ch_mult non-empty, num_res_blocks ≥ 1")
        }
        let embeddingChannels = 4 * c.ch
        dense0 = try loadLinear(p, "temb.dense.0", in: c.ch, out: embeddingChannels, postOps: [.silu])
        dense1 = try loadLinear(p, "temb.dense.1", in: embeddingChannels, out: embeddingChannels)
        convIn = try loadConv(p, "conv_in", in: c.inChannels, out: c.ch)
        let inMult = [1] + c.chMult
        var resolution = c.resolution
        var blockIn = c.ch
        var down: [Level] = []
        for level in c.chMult.indices {
            var stage = Level()
            blockIn = c.ch * inMult[level]
            let blockOut = c.ch * c.chMult[level]
            for i in 0..<c.numResBlocks {
                stage.blocks.append(try DDPMResnetBlock(p, "down.\(level).block.\(i)", in: blockIn, out: blockOut, embeddingChannels: embeddingChannels))
                blockIn = blockOut
                if c.attnResolutions.contains(resolution) {
                    stage.attentions.append(try DDPMAttentionBlock(p, "down.\(level).attn.\(stage.attentions.count)", channels: blockIn))
                }
            }
            if level != c.chMult.count - 1 {
                stage.hasResample = true
                // Downsample with conv: pad (0, 1, 0, 1), then a 3×3 stride-2 convolution without padding.
                stage.resample = c.resampWithConv ? try loadConv(p, "down.\(level).downsample.conv", in: blockIn, out: blockIn, stride: 2,
                                                                padding: .zeros(top: 0, left: 0, bottom: 1, right: 1)) : nil
                resolution /= 2
            }
            down.append(stage)
        }
        self.down = down
        middle = (try DDPMResnetBlock(p, "mid.block_1", in: blockIn, out: blockIn, embeddingChannels: embeddingChannels),
                  try DDPMAttentionBlock(p, "mid.attn_1", channels: blockIn),
                  try DDPMResnetBlock(p, "mid.block_2", in: blockIn, out: blockIn, embeddingChannels: embeddingChannels))
        var up = [Level](repeating: Level(), count: c.chMult.count)
        for level in c.chMult.indices.reversed() {
            var stage = Level()
            let blockOut = c.ch * c.chMult[level]
            var skipIn = c.ch * c.chMult[level]
            for i in 0...c.numResBlocks {
                if i == c.numResBlocks { skipIn = c.ch * inMult[level] }
                stage.blocks.append(try DDPMResnetBlock(p, "up.\(level).block.\(i)", in: blockIn + skipIn, out: blockOut, embeddingChannels: embeddingChannels))
                blockIn = blockOut
                if c.attnResolutions.contains(resolution) {
                    stage.attentions.append(try DDPMAttentionBlock(p, "up.\(level).attn.\(stage.attentions.count)", channels: blockIn))
                }
            }
            if level != 0 {
                stage.hasResample = true
                stage.resample = c.resampWithConv ? try loadConv(p, "up.\(level).upsample.conv", in: blockIn, out: blockIn) : nil
                resolution *= 2
            }
            up[level] = stage
        }
        self.up = up
        normOut = try ddpmNorm(p, "norm_out", blockIn)
        convOut = try loadConv(p, "conv_out", in: blockIn, out: c.outChannels)
    }


    public var inputChannels: Int { configuration.inChannels }
    public var outputChannels: Int { configuration.outChannels }
    public var sizeMultiple: Int { 1 << (configuration.chMult.count - 1) }
    public var classCount: Int? { nil }

    public func callAsFunction(_ x: Tensor, timesteps: [Float], classLabels: [Int]? = nil) throws -> Tensor {
        let (n, height, width, channels) = try x.nhwc("DDPMUNet")
        try checkInput(n: n, height: height, width: width, channels: channels, timesteps: timesteps, classLabels: classLabels)
        // temb = dense1(swish(dense0(emb))); each block then applies swish before its projection.
        let embedding = try dense1(try dense0(try timestepEmbedding(timesteps, dimension: configuration.ch, style: .ddpm)))
        let swishEmbedding = try silu(embedding)

        var skips = [try convIn(x)]
        for stage in down {
            for (i, block) in stage.blocks.enumerated() {
                var h = try block(skips.last!, swishEmbedding, consuming: false)
                if !stage.attentions.isEmpty { h = try stage.attentions[i](h, consuming: true) }
                skips.append(h)
            }
            if stage.hasResample { skips.append(try stage.resample.map { try $0(skips.last!) } ?? averagePool(skips.last!, kernel: 2)) }
        }
        var h = try middle.0(skips.last!, swishEmbedding, consuming: false)
        h = try middle.1(h, consuming: true)
        h = try middle.2(h, swishEmbedding, consuming: true)
        for stage in up.reversed() {
            for (i, block) in stage.blocks.enumerated() {
                h = try block(try concatenateChannels([h, skips.removeLast()]), swishEmbedding, consuming: true)
                if !stage.attentions.isEmpty { h = try stage.attentions[i](h, consuming: true) }
            }
            if stage.hasResample {
                h = try upsampleNearest2x(h)
                if let conv = stage.resample { h = try conv(h) }
            }
        }
        return try convOut(try normOut(h, silu: true))
    }
}
