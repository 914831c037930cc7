import Engine
import Foundation

// The building blocks of guided-diffusion's UNet (Dhariwal & Nichol 2021, "ADM"), on NHWC tensors.
// Parameter names follow the official `unet.py`, so checkpoints bind without renaming.

/// GroupNorm32 of guided-diffusion: 32 groups, eps 1e-5, affine.
struct ADMNorm {
    let weight: Tensor, bias: Tensor
    let epsilon: Float

    init(_ p: ParameterSource, _ prefix: String, channels: Int, epsilon: Float = 1e-5) throws {
        weight = try p.tensor(prefix + ".weight", [channels])
        bias = try p.tensor(prefix + ".bias", [channels])
        self.epsilon = epsilon
    }

    func callAsFunction(_ x: Tensor, silu: Bool, scale: Tensor? = nil, shift: Tensor? = nil) throws -> Tensor {
        try groupNorm(x, groups: 32, weight: weight, bias: bias, epsilon: epsilon, scale: scale, shift: shift, silu: silu)
    }
}

/// A k×k convolution loaded from `<prefix>.weight` / `.bias`.
func loadConv(_ p: ParameterSource, _ prefix: String, in c: Int, out: Int, kernel: Int = 3, stride: Int = 1,
              padding: ConvPadding? = nil, postOps: [PostOp] = []) throws -> Conv2D {
    try Conv2D(weight: try p.tensor(prefix + ".weight", [out, c, kernel, kernel]), bias: try p.tensor(prefix + ".bias", [out]),
               stride: stride, padding: padding ?? .same(kernel / 2), postOps: postOps)
}

/// A Linear (or Conv1d / 1×1 conv with kernel dims `kernelDims`) loaded from `<prefix>.weight` / `.bias`.
func loadLinear(_ p: ParameterSource, _ prefix: String, in c: Int, out: Int, kernelDims: [Int] = [], postOps: [PostOp] = []) throws -> Linear {
    try Linear(weight: try p.tensor(prefix + ".weight", [out, c] + kernelDims), bias: try p.tensor(prefix + ".bias", [out]), postOps: postOps)
}

/// Adds `v[n, c]` to every pixel of sample `n` (ADM's `h + emb_out[..., None, None]`, DDPM's temb projection).
func addPerSampleChannels(_ x: Tensor, _ v: Tensor) throws {
    let (n, h, w, c) = try x.nhwc("addPerSampleChannels")
    guard v.count == n * c else { throw EngineError.shapeMismatch(op: "addPerSampleChannels", expected: "[\(n), \(c)]", found: "\(v.shape)") }
    let pixels = h * w
    Parallel.forRanges(n * pixels, grain: 256) { begin, end in
        for index in begin..<end {
            let row = x.data + index * c, add = v.data + (index / pixels) * c
            for j in 0..<c { row[j] += add[j] }
        }
    }
}

/// The columns `range` of a `[n, width]` matrix, as a new `[n, range.count]` tensor.
func columns(_ x: Tensor, _ range: Range<Int>) throws -> Tensor {
    let n = x.shape[0], width = x.count / n
    let out = try Tensor(uninitializedShape: [n, range.count])
    for i in 0..<n { (out.data + i * range.count).update(from: x.data + i * width + range.lowerBound, count: range.count) }
    return out
}

/// How a ResBlock changes resolution (`resblock_updown`): nearest ×2 or 2×2 average pooling.
enum Resample { case none, up, down }

/// guided-diffusion `ResBlock`: GN+SiLU, (resample), conv; timestep embedding as scale-shift
/// (`use_scale_shift_norm`) or as an added bias; GN+SiLU, conv; plus the (1×1-projected) input.
struct ADMResBlock {
    let inNorm: ADMNorm, inConv: Conv2D
    let embedding: Linear
    let outNorm: ADMNorm, outConv: Conv2D
    let skip: Linear?
    let scaleShift: Bool
    let resample: Resample
    let outChannels: Int

    init(_ p: ParameterSource, _ prefix: String, channels: Int, embeddingChannels: Int, outChannels: Int,
         scaleShift: Bool, resample: Resample = .none) throws {
        inNorm = try ADMNorm(p, prefix + ".in_layers.0", channels: channels)
        inConv = try loadConv(p, prefix + ".in_layers.2", in: channels, out: outChannels)
        embedding = try loadLinear(p, prefix + ".emb_layers.1", in: embeddingChannels, out: scaleShift ? 2 * outChannels : outChannels)
        outNorm = try ADMNorm(p, prefix + ".out_layers.0", channels: outChannels)
        // out = skip(x) + conv(h): the sum is fused into the convolution.
        outConv = try loadConv(p, prefix + ".out_layers.3", in: outChannels, out: outChannels, postOps: [.sum()])
        skip = outChannels == channels ? nil : try loadLinear(p, prefix + ".skip_connection", in: channels, out: outChannels, kernelDims: [1, 1])
        self.scaleShift = scaleShift
        self.resample = resample
        self.outChannels = outChannels
    }

    /// `siluEmbedding` is SiLU(emb), shared by every block. `x` is left untouched.
    func callAsFunction(_ x: Tensor, _ siluEmbedding: Tensor) throws -> Tensor {
        var h = try inNorm(x, silu: true)
        var input = x
        switch resample {
        case .none: break
        case .up: h = try upsampleNearest2x(h); input = try upsampleNearest2x(x)
        case .down: h = try averagePool(h, kernel: 2); input = try averagePool(x, kernel: 2)
        }
        h = try inConv(h)
        let embedded = try embedding(siluEmbedding)  // [N, C] or [N, 2C]
        if scaleShift {
            let scale = try columns(embedded, 0..<outChannels), shift = try columns(embedded, outChannels..<(2 * outChannels))
            h = try outNorm(h, silu: true, scale: scale, shift: shift)
        } else {
            try addPerSampleChannels(h, embedded)
            h = try outNorm(h, silu: true)
        }
        let residual = try skip.map { try $0(input) } ?? (input === x ? try x.copy() : input)
        return try outConv(h, residual: residual)
    }
}

/// guided-diffusion `AttentionBlock`: GN, qkv (Conv1d C→3C), multi-head attention in the legacy
/// (per-head interleaved q,k,v) or the new (all q, all k, all v) order, proj_out, residual.
struct ADMAttentionBlock {
    let norm: ADMNorm
    let qkv: Linear
    let projection: Linear
    let heads: Int
    let newOrder: Bool
    let attention = Attention()

    init(_ p: ParameterSource, _ prefix: String, channels: Int, heads: Int, newOrder: Bool) throws {
        guard heads > 0, channels % heads == 0 else {
            throw EngineError.invalidArgument(op: "AttentionBlock", reason: "\(heads) heads do not divide \(channels) channels (\(prefix))")
        }
        norm = try ADMNorm(p, prefix + ".norm", channels: channels)
        qkv = try loadLinear(p, prefix + ".qkv", in: channels, out: 3 * channels, kernelDims: [1])
        projection = try loadLinear(p, prefix + ".proj_out", in: channels, out: channels, kernelDims: [1], postOps: [.sum()])
        self.heads = heads
        self.newOrder = newOrder
    }

    /// `x + proj_out(attention(norm(x)))`; overwrites and returns `x` when `consuming`, else a new tensor.
    func callAsFunction(_ x: Tensor, consuming: Bool) throws -> Tensor {
        let (n, h, w, c) = try x.nhwc("AttentionBlock")
        let d = c / heads
        let tokens = try qkv(try norm(x, silu: false)).view(as: [n, h * w, 3 * c])
        let layout = { (part: Int) in self.newOrder ? HeadLayout.splitQKV(part: part, heads: self.heads, headDim: d) : HeadLayout.legacyQKV(part: part, headDim: d) }
        // Both orders scale q and k by d^(-1/4) each: softmax(q·k/√d).
        let attended = try attention(q: tokens, layout(0), k: tokens, layout(1), v: tokens, layout(2),
                                     heads: heads, headDim: d, scale: 1 / Float(d).squareRoot())
        return try projection(try attended.view(as: [n, h, w, c]), residual: consuming ? x : try x.copy())
    }
}
