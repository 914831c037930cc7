import Checkpoints
import Engine
import Foundation

// RDDM's `UnetRes` (Liu et al., CVPR 2024; nachifur/RDDM, experiments/2_Image_Restoration_deraing_raindrop_noise1,
// src/residual_denoising_diffusion_pytorch.py): lucidrains' denoising-diffusion-pytorch UNet (0.29–0.31 blocks:
// weight-standardised 3×3 convolutions, GroupNorm(8), scale-shift time conditioning, linear attention at every
// level, full attention in the middle, two concatenated skips per level, the initial convolution's output
// concatenated before the last block) as two UNets (`share_encoder` 0), one UNet (−1), or one encoder with two
// decoders (1; the residual decoder without skips). NHWC in and out; parameter names are the official ones.

/// The options of `UnetRes` that shape its parameters, with the official names in the JSON form.
public struct RDDMConfiguration: Codable, Sendable, Equatable {
    /// Base width (`dim`); `init_dim` equals it (the official code needs that for its last block).
    public var dim: Int
    public var dimMults: [Int]
    /// Image channels: x_t, I_in, the optional condition image and each prediction have this many.
    public var channels: Int
    /// Images concatenated after x_t: 0 (generation), 1 (`condition`: I_in), 2 (`input_condition`: I_in and a
    /// third image such as a shadow mask).
    public var conditionImages: Int
    /// 0: two UNets (`unet0` → residual, `unet1` → noise); 1: one encoder, two decoders; −1: one UNet, one output.
    public var shareEncoder: Int
    /// `resnet_block_groups`.
    public var groups: Int

    public init(dim: Int, dimMults: [Int] = [1, 2, 4, 8], channels: Int = 3, conditionImages: Int = 1,
                shareEncoder: Int = 0, groups: Int = 8) {
        self.dim = dim
        self.dimMults = dimMults
        self.channels = channels
        self.conditionImages = conditionImages
        self.shareEncoder = shareEncoder
        self.groups = groups
    }

    enum CodingKeys: String, CodingKey {
        case dim, dimMults = "dim_mults", channels, conditionImages = "condition_images", shareEncoder = "share_encoder", groups
    }

    /// The official restoration network of `train.py`: `UnetRes(dim=64, dim_mults=(1,2,4,8), share_encoder=0,
    /// condition=True)`.
    public static let deraining = RDDMConfiguration(dim: 64)

    public var inputChannels: Int { channels * (1 + conditionImages) }
    /// 2 (residual and noise, or residual and residual+noise for `share_encoder` 1), or 1 for −1.
    public var outputCount: Int { shareEncoder == -1 ? 1 : 2 }
    /// Height and width must be multiples of this (one stride-2 convolution per level but the last).
    public var sizeMultiple: Int { 1 << max(0, dimMults.count - 1) }

    func validate() throws {
        let reason: String? =
            dim <= 0 || dimMults.isEmpty || dimMults.contains(where: { $0 <= 0 }) ? "dim and dim_mults must be positive" :
            channels <= 0 ? "channels must be positive" :
            !(0...2).contains(conditionImages) ? "condition images must be 0, 1 or 2" :
            !(-1...1).contains(shareEncoder) ? "share_encoder must be −1, 0 or 1" :
            groups <= 0 || ([dim] + dimMults.map { dim * $0 }).contains(where: { $0 % groups != 0 }) ? "\(groups) groups must divide every width" :
            dim % 2 != 0 || dim < 4 ? "dim must be even and at least 4 (sinusoidal embedding)" : nil
        if let reason { throw EngineError.invalidArgument(op: "RDDM UnetRes", reason: reason) }
    }
}

// MARK: - Blocks

/// `WeightStandardizedConv2d`: each output filter standardised over (in, kh, kw) with its biased variance and
/// ε 1e-5 (float32) before the convolution. The weights are constant at inference, so this happens once, here.
func standardizedConv(_ p: ParameterSource, _ prefix: String, in c: Int, out: Int) throws -> Conv2D {
    let weight = try p.tensor(prefix + ".weight", [out, c, 3, 3])
    let standardized = try Tensor(uninitializedShape: weight.shape)
    let fan = c * 9
    for o in 0..<out {
        let w = weight.data + o * fan, s = standardized.data + o * fan
        var mean = 0.0
        for i in 0..<fan { mean += Double(w[i]) }
        mean /= Double(fan)
        var variance = 0.0
        for i in 0..<fan { let d = Double(w[i]) - mean; variance += d * d }
        let rstd = 1 / (variance / Double(fan) + 1e-5).squareRoot()
        for i in 0..<fan { s[i] = Float((Double(w[i]) - mean) * rstd) }
    }
    return try Conv2D(weight: standardized, bias: try p.tensor(prefix + ".bias", [out]), padding: .same(1))
}

/// `Block`: WS conv 3×3, GroupNorm(groups), then `x·(scale+1) + shift` when given, then SiLU.
private struct RDDMBlock {
    let conv: Conv2D
    let normWeight: Tensor, normBias: Tensor
    let groups: Int

    init(_ p: ParameterSource, _ prefix: String, in c: Int, out: Int, groups: Int) throws {
        conv = try standardizedConv(p, prefix + ".proj", in: c, out: out)
        normWeight = try p.tensor(prefix + ".norm.weight", [out])
        normBias = try p.tensor(prefix + ".norm.bias", [out])
        self.groups = groups
    }

    func callAsFunction(_ x: Tensor, scale: Tensor? = nil, shift: Tensor? = nil) throws -> Tensor {
        try groupNorm(try conv(x), groups: groups, weight: normWeight, bias: normBias, epsilon: 1e-5,
                      scale: scale, shift: shift, silu: true)
    }
}

/// `ResnetBlock`: block1 with the time embedding's scale and shift (`mlp` = SiLU, Linear → 2C, chunked),
/// block2, plus the input (through a 1×1 `res_conv` when the width changes).
private struct RDDMResnetBlock {
    let mlp: Linear
    let block1: RDDMBlock, block2: RDDMBlock
    let residual: Linear?
    let outChannels: Int

    init(_ p: ParameterSource, _ prefix: String, in c: Int, out: Int, timeChannels: Int, groups: Int) throws {
        mlp = try loadLinear(p, prefix + ".mlp.1", in: timeChannels, out: 2 * out)
        block1 = try RDDMBlock(p, prefix + ".block1", in: c, out: out, groups: groups)
        block2 = try RDDMBlock(p, prefix + ".block2", in: out, out: out, groups: groups)
        residual = c == out ? nil : try loadLinear(p, prefix + ".res_conv", in: c, out: out, kernelDims: [1, 1])
        outChannels = out
    }

    /// `siluTime` is SiLU of the time MLP's output, shared by every block.
    func callAsFunction(_ x: Tensor, _ siluTime: Tensor) throws -> Tensor {
        let ss = try mlp(siluTime)
        let h = try block2(try block1(x, scale: try columns(ss, 0..<outChannels), shift: try columns(ss, outChannels..<(2 * outChannels))))
        try addInPlace(h, try residual.map { try $0(x) } ?? x)
        return h
    }
}

/// The gain-only channel `LayerNorm` of the official file (centred, biased variance, ε 1e-5).
private struct RDDMLayerNorm {
    let gain: Tensor
    init(_ p: ParameterSource, _ name: String, channels: Int) throws { gain = try p.tensor(name, [1, channels, 1, 1]) }
    func callAsFunction(_ x: Tensor) throws -> Tensor { try layerNorm(x, weight: gain, epsilon: 1e-5) }
}

private let attentionHeads = 4, attentionHeadDim = 32

/// `Residual(PreNorm(dim, LinearAttention(dim)))`: 4 heads of 32; q softmaxed over its 32 channels, k over the
/// positions; `context = k·vᵀ`, `out = contextᵀ·q`, with q·d^(−1/2) and v/(h·w); `to_out` = 1×1 conv then the
/// gain-only LayerNorm; plus the input.
private struct RDDMLinearAttention {
    let norm: RDDMLayerNorm
    let qkv: Linear
    let output: Linear
    let outputNorm: RDDMLayerNorm
    let matmul = BatchedMatMul()

    init(_ p: ParameterSource, _ prefix: String, channels c: Int) throws {
        let hidden = attentionHeads * attentionHeadDim
        norm = try RDDMLayerNorm(p, prefix + ".fn.norm.g", channels: c)
        qkv = try Linear(weight: try p.tensor(prefix + ".fn.fn.to_qkv.weight", [3 * hidden, c, 1, 1]))
        output = try loadLinear(p, prefix + ".fn.fn.to_out.0", in: hidden, out: c, kernelDims: [1, 1])
        outputNorm = try RDDMLayerNorm(p, prefix + ".fn.fn.to_out.1.g", channels: c)
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let (n, h, w, _) = try x.nhwc("RDDM LinearAttention")
        let (heads, d) = (attentionHeads, attentionHeadDim)
        let hidden = heads * d, width = 3 * hidden, positions = h * w
        let tokens = try qkv(try norm(x))  // [n, h, w, 3·hidden]: q heads, k heads, v heads
        let attended = try Tensor(uninitializedShape: [n, h, w, hidden])
        let context = try Tensor(uninitializedShape: [heads, d, d])
        for sample in 0..<n {
            let base = tokens.data + sample * positions * width
            // q: softmax over each head's d channels, per position.
            Parallel.forRanges(positions, grain: 256) { begin, end in
                for head in 0..<heads {
                    softmaxRows(base + head * d, rows: begin..<end, columns: d, rowStride: width)
                }
            }
            // k: softmax over the positions, per channel.
            softmaxOverPositions(base + hidden, positions: positions, channels: hidden, rowStride: width)
            // context[head] = k·vᵀ (d × d), scaled here by d^(−1/2) / (h·w) — the official q·scale and v/(h·w).
            let keys = MatrixView(batch: heads, rows: d, cols: positions, batchStride: d, rowStride: 1, colStride: width)
            let values = MatrixView(batch: heads, rows: positions, cols: d, batchStride: d, rowStride: width, colStride: 1)
            try matmul.multiply(base + hidden, keys, base + 2 * hidden, values, into: context.data, .dense(batch: heads, rows: d, cols: d),
                                scale: 1 / (Float(d).squareRoot() * Float(positions)))
            // out[position, e] = Σ_d q[position, d]·context[d, e], head-major channels.
            let queries = MatrixView(batch: heads, rows: positions, cols: d, batchStride: d, rowStride: width, colStride: 1)
            try matmul.multiply(base, queries, context.data, .dense(batch: heads, rows: d, cols: d),
                                into: attended.data + sample * positions * hidden,
                                MatrixView(batch: heads, rows: positions, cols: d, batchStride: d, rowStride: hidden, colStride: 1))
        }
        let result = try outputNorm(try output(attended))
        try addInPlace(result, x)
        return result
    }
}

/// Softmax over positions (rows) for each of `channels` columns of a row-major [positions, rowStride] block, in place.
private func softmaxOverPositions(_ data: UnsafeMutablePointer<Float>, positions: Int, channels: Int, rowStride: Int) {
    let blocks = (channels + 7) / 8
    Parallel.forEach(blocks) { block in
        let c0 = block * 8, count = min(8, channels - c0)
        var top = [Float](repeating: -.infinity, count: count), sum = [Float](repeating: 0, count: count)
        for p in 0..<positions {
            let row = data + p &* rowStride + c0
            for j in 0..<count { top[j] = max(top[j], row[j]) }
        }
        for p in 0..<positions {
            let row = data + p &* rowStride + c0
            for j in 0..<count { let e = Foundation.exp(row[j] - top[j]); row[j] = e; sum[j] += e }
        }
        let inverse = sum.map { 1 / $0 }
        for p in 0..<positions {
            let row = data + p &* rowStride + c0
            for j in 0..<count { row[j] *= inverse[j] }
        }
    }
}

/// `Residual(PreNorm(dim, Attention(dim)))` of the middle: softmax attention, 4 heads of 32, q·d^(−1/2).
private struct RDDMAttention {
    let norm: RDDMLayerNorm
    let qkv: Linear, output: Linear
    let attention = Attention()

    init(_ p: ParameterSource, _ prefix: String, channels c: Int) throws {
        let hidden = attentionHeads * attentionHeadDim
        norm = try RDDMLayerNorm(p, prefix + ".fn.norm.g", channels: c)
        qkv = try Linear(weight: try p.tensor(prefix + ".fn.fn.to_qkv.weight", [3 * hidden, c, 1, 1]))
        output = try loadLinear(p, prefix + ".fn.fn.to_out", in: hidden, out: c, kernelDims: [1, 1], postOps: [.sum()])
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let (n, h, w, _) = try x.nhwc("RDDM Attention")
        let (heads, d) = (attentionHeads, attentionHeadDim)
        let tokens = try qkv(try norm(x)).view(as: [n, h * w, 3 * heads * d])
        let layout = { (part: Int) in HeadLayout.splitQKV(part: part, heads: heads, headDim: d) }
        let attended = try attention(q: tokens, layout(0), k: tokens, layout(1), v: tokens, layout(2),
                                     heads: heads, headDim: d, scale: 1 / Float(d).squareRoot())
        return try output(try attended.view(as: [n, h, w, heads * d]), residual: try x.copy())
    }
}

/// One level of a decoder or encoder: two ResnetBlocks, linear attention, and the resampling convolution
/// (4×4 stride 2 down, nearest ×2 + 3×3 up, or a plain 3×3 at the innermost / outermost level).
private struct RDDMLevel {
    let block1: RDDMResnetBlock, block2: RDDMResnetBlock
    let attention: RDDMLinearAttention
    let resample: Conv2D
    let upsample: Bool

    /// Encoder level `index` of `prefix` (`downs.i`), `in` → `out` channels at the resampling.
    init(down p: ParameterSource, _ prefix: String, in c: Int, out: Int, last: Bool, timeChannels t: Int, groups g: Int) throws {
        block1 = try RDDMResnetBlock(p, prefix + ".0", in: c, out: c, timeChannels: t, groups: g)
        block2 = try RDDMResnetBlock(p, prefix + ".1", in: c, out: c, timeChannels: t, groups: g)
        attention = try RDDMLinearAttention(p, prefix + ".2", channels: c)
        resample = last ? try loadConv(p, prefix + ".3", in: c, out: out)
                        : try loadConv(p, prefix + ".3", in: c, out: out, kernel: 4, stride: 2, padding: .same(1))
        upsample = false
    }

    /// Decoder level (`ups.i` or `ups_no_skip.i`): blocks take `c + skip` channels, the width is `c`, the
    /// resampling goes to `out`.
    init(up p: ParameterSource, _ prefix: String, channels c: Int, skip: Int, out: Int, last: Bool, timeChannels t: Int, groups g: Int) throws {
        block1 = try RDDMResnetBlock(p, prefix + ".0", in: c + skip, out: c, timeChannels: t, groups: g)
        block2 = try RDDMResnetBlock(p, prefix + ".1", in: c + skip, out: c, timeChannels: t, groups: g)
        attention = try RDDMLinearAttention(p, prefix + ".2", channels: c)
        resample = last ? try loadConv(p, prefix + ".3", in: c, out: out) : try loadConv(p, prefix + ".3.1", in: c, out: out)
        upsample = !last
    }

    func resampled(_ x: Tensor) throws -> Tensor { try resample(upsample ? try upsampleNearest2x(x) : x) }
}

/// The widths of each level: (dim_in, dim_out) pairs, as the official `in_out`.
private func levelWidths(_ c: RDDMConfiguration) -> [(Int, Int)] {
    let dims = [c.dim] + c.dimMults.map { c.dim * $0 }
    return Array(zip(dims.dropLast(), dims.dropFirst()))
}

/// The encoder half (time MLP, `init_conv`, `downs`, the middle) of `Unet` or of the shared-encoder `UnetRes`.
private struct RDDMEncoder {
    let time0: Linear, time1: Linear
    let initial: Conv2D
    let levels: [RDDMLevel]
    let middle1: RDDMResnetBlock, middleAttention: RDDMAttention, middle2: RDDMResnetBlock

    init(_ p: ParameterSource, _ prefix: String, _ c: RDDMConfiguration) throws {
        let timeChannels = 4 * c.dim, widths = levelWidths(c)
        time0 = try loadLinear(p, prefix + "time_mlp.1", in: c.dim, out: timeChannels, postOps: [.geluErf])
        time1 = try loadLinear(p, prefix + "time_mlp.3", in: timeChannels, out: timeChannels)
        initial = try loadConv(p, prefix + "init_conv", in: c.inputChannels, out: c.dim, kernel: 7)
        levels = try widths.enumerated().map { i, w in
            try RDDMLevel(down: p, prefix + "downs.\(i)", in: w.0, out: w.1, last: i == widths.count - 1, timeChannels: timeChannels, groups: c.groups)
        }
        let mid = widths.last!.1
        middle1 = try RDDMResnetBlock(p, prefix + "mid_block1", in: mid, out: mid, timeChannels: timeChannels, groups: c.groups)
        middleAttention = try RDDMAttention(p, prefix + "mid_attn", channels: mid)
        middle2 = try RDDMResnetBlock(p, prefix + "mid_block2", in: mid, out: mid, timeChannels: timeChannels, groups: c.groups)
    }

    struct Features { let middle: Tensor, skips: [Tensor], initial: Tensor, siluTime: Tensor }

    func callAsFunction(_ x: Tensor, timesteps: [Float], dim: Int) throws -> Features {
        let time = try time1(try time0(try timestepEmbedding(timesteps, dimension: dim, style: .ddpm)))
        let siluTime = try silu(time)
        let r = try initial(x)
        var h = r
        var skips: [Tensor] = []
        for level in levels {
            h = try level.block1(h, siluTime)
            skips.append(h)
            h = try level.attention(try level.block2(h, siluTime))
            skips.append(h)
            h = try level.resampled(h)
        }
        h = try middle2(try middleAttention(try middle1(h, siluTime)), siluTime)
        return Features(middle: h, skips: skips, initial: r, siluTime: siluTime)
    }
}

/// A decoder: `ups` with the encoder's skips and the initial features before `final_res_block`, or
/// `ups_no_skip` without either (the residual branch of the shared-encoder network).
private struct RDDMDecoder {
    let levels: [RDDMLevel]
    let finalBlock: RDDMResnetBlock
    let finalConv: Linear
    let skips: Bool

    init(_ p: ParameterSource, levels levelPrefix: String, final finalBlockName: String, conv finalConvName: String,
         _ c: RDDMConfiguration, skips: Bool) throws {
        let timeChannels = 4 * c.dim, widths = Array(levelWidths(c).reversed())
        levels = try widths.enumerated().map { i, w in
            try RDDMLevel(up: p, levelPrefix + ".\(i)", channels: w.1, skip: skips ? w.0 : 0, out: w.0, last: i == widths.count - 1,
                          timeChannels: timeChannels, groups: c.groups)
        }
        finalBlock = try RDDMResnetBlock(p, finalBlockName, in: skips ? 2 * c.dim : c.dim, out: c.dim, timeChannels: timeChannels, groups: c.groups)
        finalConv = try loadLinear(p, finalConvName, in: c.dim, out: c.channels, kernelDims: [1, 1])
        self.skips = skips
    }

    func callAsFunction(_ features: RDDMEncoder.Features) throws -> Tensor {
        var h = features.middle
        var stack = features.skips
        for level in levels {
            if skips { h = try concatenateChannels([h, stack.removeLast()]) }
            h = try level.block1(h, features.siluTime)
            if skips { h = try concatenateChannels([h, stack.removeLast()]) }
            h = try level.attention(try level.block2(h, features.siluTime))
            h = try level.resampled(h)
        }
        if skips { h = try concatenateChannels([h, features.initial]) }
        return try finalConv(try finalBlock(h, features.siluTime))
    }
}

/// RDDM's `UnetRes`: given `cat(x_t, I_in[, condition])` and integer timesteps, the residual prediction and the
/// noise prediction (`share_encoder` 0: `unet0`, `unet1`), the residual and the residual-plus-noise prediction
/// (1), or one prediction (−1). The objective decides how the sampler reads them; the network never knows.
public final class RDDMUNet: ParameterDeclaring {
    public let configuration: RDDMConfiguration
    private let encoders: [(RDDMEncoder, RDDMDecoder)]   // share_encoder 0 / −1: one full UNet per output
    private let shared: (RDDMEncoder, residual: RDDMDecoder, second: RDDMDecoder)?

    public init(_ c: RDDMConfiguration, parameters p: ParameterSource) throws {
        try c.validate()
        configuration = c
        if c.shareEncoder == 1 {
            shared = (try RDDMEncoder(p, "", c),
                      try RDDMDecoder(p, levels: "ups_no_skip", final: "final_res_block_1", conv: "final_conv_1", c, skips: false),
                      try RDDMDecoder(p, levels: "ups", final: "final_res_block_2", conv: "final_conv_2", c, skips: true))
            encoders = []
        } else {
            // Build in the official state-dict order: unet0's encoder, its decoder, then unet1's.
            var unets: [(RDDMEncoder, RDDMDecoder)] = []
            for u in 0..<c.outputCount {
                let encoder = try RDDMEncoder(p, "unet\(u).", c)
                unets.append((encoder, try RDDMDecoder(p, levels: "unet\(u).ups", final: "unet\(u).final_res_block",
                                                       conv: "unet\(u).final_conv", c, skips: true)))
            }
            encoders = unets
            shared = nil
        }
    }

    public var inputChannels: Int { configuration.inputChannels }
    public var sizeMultiple: Int { configuration.sizeMultiple }

    /// The network's outputs for `x` ([N, H, W, inputChannels]) at integer `timesteps` (N values).
    public func callAsFunction(_ x: Tensor, timesteps: [Float]) throws -> [Tensor] {
        let (n, height, width, channels) = try x.nhwc("RDDM UnetRes")
        guard channels == inputChannels else {
            throw EngineError.shapeMismatch(op: "RDDM UnetRes", expected: "\(inputChannels) input channels", found: "\(channels)")
        }
        guard height % sizeMultiple == 0, width % sizeMultiple == 0 else {
            throw EngineError.invalidArgument(op: "RDDM UnetRes", reason: "height and width (\(height)×\(width)) must be multiples of \(sizeMultiple)")
        }
        guard timesteps.count == n else {
            throw EngineError.shapeMismatch(op: "RDDM UnetRes", expected: "\(n) timesteps", found: "\(timesteps.count)")
        }
        if let shared {
            let features = try shared.0(x, timesteps: timesteps, dim: configuration.dim)
            return [try shared.residual(features), try shared.second(features)]
        }
        return try encoders.map { encoder, decoder in try decoder(try encoder(x, timesteps: timesteps, dim: configuration.dim)) }
    }
}
