import Engine
import Foundation

// DiffIR stage 2 (Xia et al., ICCV 2023; Zj-BinXia/DiffIR, `DiffIR/archs/S2_arch.py`) on NHWC tensors:
// CPEN_S2 compresses the degraded image into a 256-d condition, a 4-step diffusion on a 256-d "IR prior
// representation" (IPR) turns it into the IPR (see `IPRDiffusion` in Methods), and DIRformer, a
// Restormer-style U-shaped transformer whose every block is modulated by the IPR, restores the image in one
// pass. Parameter names follow the official module tree (`G.*`, `condition.*`, `denoise.*`), so BasicSR
// checkpoints bind unchanged.

/// What a DiffIR model does; decides the pixel-unshuffle in front of the networks and the output.
public enum DiffIRTask: String, Codable, Sendable, CaseIterable {
    /// Real-world (or GAN) ×4 super-resolution: DIRformer at the input's size, ×4 tail.
    case sr4
    /// ×2: the input is pixel-unshuffled by 2 first (DIRformer then works at a quarter of the output size).
    case sr2
    /// ×1 (restoration at the same size) of the SR code: pixel-unshuffled by 4, ×4 tail.
    case sr1
    /// GoPro motion deblurring (`DiffIR-demotionblur`): same size, CPEN always unshuffles by 4, output = conv + input.
    case deblur

    /// Output size / input size.
    public var scale: Int { switch self { case .sr4: 4; case .sr2: 2; case .sr1, .deblur: 1 } }
    /// PixelUnshuffle in front of DIRformer.
    var generatorUnshuffle: Int { switch self { case .sr4, .deblur: 1; case .sr2: 2; case .sr1: 4 } }
    /// PixelUnshuffle in front of CPEN.
    var conditionUnshuffle: Int { switch self { case .sr4: 1; case .sr2: 2; case .sr1, .deblur: 4 } }
}

/// `DiffIRS2`'s constructor arguments (the official test YAMLs' `network_g`).
public struct DiffIRConfiguration: Codable, Sendable, Equatable {
    public var task: DiffIRTask
    public var dim: Int
    /// Transformer blocks per level: encoder levels 1–3 (mirrored by the decoder), then the latent level.
    public var numBlocks: [Int]
    public var refinementBlocks: Int
    public var heads: [Int]
    /// hidden = int(C · factor) per level, truncated as Python's `int` does (64 · 2.2 → 140).
    public var ffnExpansion: Double
    /// "BiasFree" (x / σ · w) or "WithBias" ((x − μ) / σ · w + b).
    public var layerNorm: String
    /// ResBlocks in CPEN (9 for the SR models, 5 for deblurring).
    public var encoderResBlocks: Int
    /// Linear + LeakyReLU layers after the first in the denoise MLP.
    public var denoiseResBlocks: Int
    /// The IPR diffusion: T and the "linear" (linear in √β) schedule's ends.
    public var timesteps: Int
    public var linearStart: Double
    public var linearEnd: Double

    public init(task: DiffIRTask, dim: Int, numBlocks: [Int], refinementBlocks: Int, heads: [Int] = [1, 2, 4, 8], ffnExpansion: Double,
                layerNorm: String, encoderResBlocks: Int, denoiseResBlocks: Int = 1, timesteps: Int = 4, linearStart: Double = 0.1, linearEnd: Double = 0.99) {
        (self.task, self.dim, self.numBlocks, self.refinementBlocks, self.heads) = (task, dim, numBlocks, refinementBlocks, heads)
        (self.ffnExpansion, self.layerNorm, self.encoderResBlocks, self.denoiseResBlocks) = (ffnExpansion, layerNorm, encoderResBlocks, denoiseResBlocks)
        (self.timesteps, self.linearStart, self.linearEnd) = (timesteps, linearStart, linearEnd)
    }

    /// `DiffIR-RealSR/options/test_DiffIRS2_GAN_x4.yml` (also `inference_diffir.py` and DiffIR-SRGAN's ×4).
    public static let realSRx4 = DiffIRConfiguration(task: .sr4, dim: 64, numBlocks: [13, 1, 1, 1], refinementBlocks: 13, ffnExpansion: 2.2,
                                                     layerNorm: "BiasFree", encoderResBlocks: 9)
    /// `test_DiffIRS2_GAN_x2.yml`.
    public static let realSRx2: DiffIRConfiguration = { var c = realSRx4; c.task = .sr2; return c }()
    /// `test_DiffIRS2_GAN_x1.yml`.
    public static let realSRx1: DiffIRConfiguration = { var c = realSRx4; c.task = .sr1; return c }()
    /// `DiffIR-demotionblur/options/test_DiffIRS2.yml` (GoPro).
    public static let goproDeblur = DiffIRConfiguration(task: .deblur, dim: 48, numBlocks: [3, 5, 6, 6], refinementBlocks: 4, ffnExpansion: 2.0,
                                                        layerNorm: "WithBias", encoderResBlocks: 5)

    /// The named official configurations.
    public static let presets: [(name: String, configuration: DiffIRConfiguration)] = [
        ("realsr-x4", realSRx4), ("realsr-x2", realSRx2), ("realsr-x1", realSRx1), ("gopro-deblur", goproDeblur),
    ]

    /// The preset's name when this is one of them (the SRGAN ×4 model has the RealSR ×4 architecture).
    public var presetName: String? { Self.presets.first { $0.configuration == self }?.name }

    /// `int(dim * 2**level * ffn_expansion_factor)`.
    func hidden(_ channels: Int) -> Int { Int(Double(channels) * ffnExpansion) }

    /// The input's height and width must be multiples of this (`inference_diffir.py`'s pad: 8, 16, 32).
    public var sizeMultiple: Int { 8 * task.generatorUnshuffle }

    func validate() throws {
        guard dim > 0, numBlocks.count == 4, numBlocks.allSatisfy({ $0 >= 0 }), refinementBlocks >= 0, heads.count == 4,
              zip([dim, 2 * dim, 4 * dim, 8 * dim], heads).allSatisfy({ $1 > 0 && $0 % $1 == 0 }), dim % 2 == 0,
              ffnExpansion > 0, ["BiasFree", "WithBias"].contains(layerNorm), encoderResBlocks >= 0, denoiseResBlocks >= 0,
              timesteps >= 1, linearStart > 0, linearEnd > 0 else {
            throw EngineError.invalidArgument(op: "DiffIR", reason: "unsupported configuration \(self): needs 4 levels of blocks and heads dividing each width, an even dim, LayerNorm BiasFree or WithBias")
        }
    }
}

/// A `LayerNorm` of DIRformer (over channels per pixel, ε 1e-5) whose output is modulated by the IPR as the next
/// layer does (`x·k1 + k2`): folded into the norm's gain and offset, so the modulation costs no extra pass.
struct DiffIRNorm {
    let weight: Tensor, bias: Tensor?
    let variant: LayerNormVariant

    init(_ p: ParameterSource, _ prefix: String, channels: Int, withBias: Bool) throws {
        weight = try p.tensor(prefix + ".body.weight", [channels])
        bias = withBias ? try p.tensor(prefix + ".body.bias", [channels]) : nil
        variant = withBias ? .centered : .biasFree
    }

    /// norm(x)·k1 + k2 with k = [k1 | k2] ([2C]).
    func callAsFunction(_ x: Tensor, modulation k: UnsafePointer<Float>) throws -> Tensor {
        let c = weight.count
        let gain = try Tensor(uninitializedShape: [c]), offset = try Tensor(uninitializedShape: [c])
        for i in 0..<c {
            gain.data[i] = weight.data[i] * k[i]
            offset.data[i] = (bias?.data[i] ?? 0) * k[i] + k[c + i]
        }
        return try layerNorm(x, weight: gain, bias: offset, epsilon: 1e-5, variant: variant)
    }
}

/// One `TransformerBlock`: x += MDTA(norm1(x), ipr); x += GDFN(norm2(x), ipr).
struct DiffIRTransformerBlock {
    let norm1: DiffIRNorm, norm2: DiffIRNorm
    let attentionKernel: Linear, ffnKernel: Linear
    let temperature: [Float]
    let qkv: Linear, qkvDepthwise: Conv2D, attentionOut: Linear
    let projectIn: Linear, ffnDepthwise: Conv2D, ffnOut: Linear
    let channels: Int, heads: Int, hidden: Int
    let matmul = BatchedMatMul()

    init(_ p: ParameterSource, _ prefix: String, channels c: Int, heads: Int, hidden: Int, withBias: Bool) throws {
        norm1 = try DiffIRNorm(p, prefix + ".norm1", channels: c, withBias: withBias)
        temperature = try p.tensor(prefix + ".attn.temperature", [heads, 1, 1]).values
        attentionKernel = try Linear(weight: try p.tensor(prefix + ".attn.kernel.0.weight", [2 * c, 256]))
        qkv = try Linear(weight: try p.tensor(prefix + ".attn.qkv.weight", [3 * c, c, 1, 1]))
        qkvDepthwise = try Conv2D(weight: try p.tensor(prefix + ".attn.qkv_dwconv.weight", [3 * c, 1, 3, 3]), padding: .same(1), groups: 3 * c)
        attentionOut = try Linear(weight: try p.tensor(prefix + ".attn.project_out.weight", [c, c, 1, 1]), postOps: [.sum()])
        norm2 = try DiffIRNorm(p, prefix + ".norm2", channels: c, withBias: withBias)
        projectIn = try Linear(weight: try p.tensor(prefix + ".ffn.project_in.weight", [2 * hidden, c, 1, 1]))
        ffnDepthwise = try Conv2D(weight: try p.tensor(prefix + ".ffn.dwconv.weight", [2 * hidden, 1, 3, 3]), padding: .same(1), groups: 2 * hidden)
        ffnOut = try Linear(weight: try p.tensor(prefix + ".ffn.project_out.weight", [c, hidden, 1, 1]), postOps: [.sum()])
        ffnKernel = try Linear(weight: try p.tensor(prefix + ".ffn.kernel.0.weight", [2 * c, 256]))
        (channels, self.heads, self.hidden) = (c, heads, hidden)
    }

    /// The block's two modulations `[k_attn | k_ffn]` for one IPR ([1, 256]): computed once per image.
    func modulations(_ ipr: Tensor) throws -> (attention: Tensor, ffn: Tensor) {
        (try attentionKernel(ipr), try ffnKernel(ipr))
    }

    /// Updates `x` ([1, H, W, C]) in place.
    func callAsFunction(_ x: Tensor, modulation m: (attention: Tensor, ffn: Tensor)) throws {
        let (_, h, w, c) = try x.nhwc("DIRformer block")
        let positions = h * w
        // MDTA: q, k, v from a 1×1 then a depth-wise 3×3; per head a (C/h × C/h) attention over channels whose
        // scores are the cosine similarities of q and k rows over all positions (F.normalize, eps 1e-12) times the
        // head's learned temperature.
        let q = try qkvDepthwise(try qkv(try norm1(x, modulation: m.attention.data)))
        let d = c / heads, stride3 = 3 * c
        var squares = [Float](repeating: 0, count: 2 * c)  // Σ_p q², Σ_p k² per channel
        squares.withUnsafeMutableBufferPointer { s in
            let rows = q.data
            let threads = max(1, min(Parallel.threadCount, positions / 256))
            var partial = [Float](repeating: 0, count: threads * 2 * c)
            partial.withUnsafeMutableBufferPointer { part in
                let partBase = part.baseAddress!
                Parallel.forEach(threads) { t in
                    let begin = positions * t / threads, end = positions * (t + 1) / threads
                    let acc = partBase + t * 2 * c
                    for p in begin..<end {
                        let row = rows + p &* stride3
                        for j in 0..<(2 * c) { acc[j] += row[j] * row[j] }
                    }
                }
            }
            for t in 0..<threads { for j in 0..<(2 * c) { s[j] += partial[t * 2 * c + j] } }
        }
        let norms = squares.map { max($0.squareRoot(), 1e-12) }
        let scores = try Tensor(uninitializedShape: [heads, d, d])
        // scores[h] = Q_hᵀ K_h: Q_h and K_h are [positions, d] column blocks of the qkv rows.
        try matmul.multiply(q.data, MatrixView(batch: heads, rows: d, cols: positions, batchStride: d, rowStride: 1, colStride: stride3),
                            q.data + c, MatrixView(batch: heads, rows: positions, cols: d, batchStride: d, rowStride: stride3, colStride: 1),
                            into: scores.data, .dense(batch: heads, rows: d, cols: d))
        for head in 0..<heads {
            let block = scores.data + head * d * d
            for i in 0..<d {
                let row = block + i * d, qi = norms[head * d + i]
                for j in 0..<d { row[j] = row[j] / (qi * norms[c + head * d + j]) }
            }
            softmaxRows(block, rows: 0..<d, columns: d, rowStride: d, scale: temperature[head])
        }
        // out_h = V_h · attn_hᵀ ([positions, d]), written into its head's columns.
        let attended = try Tensor(uninitializedShape: [1, h, w, c])
        try matmul.multiply(q.data + 2 * c, MatrixView(batch: heads, rows: positions, cols: d, batchStride: d, rowStride: stride3, colStride: 1),
                            scores.data, MatrixView(batch: heads, rows: d, cols: d, batchStride: d * d, rowStride: 1, colStride: d),
                            into: attended.data, MatrixView(batch: heads, rows: positions, cols: d, batchStride: d, rowStride: c, colStride: 1))
        _ = try attentionOut(attended, residual: x)
        // GDFN: 1×1 to 2·hidden, depth-wise 3×3, gelu(first half) · second half, 1×1 back.
        let expanded = try ffnDepthwise(try projectIn(try norm2(x, modulation: m.ffn.data)))
        let gated = try gatedGELU(expanded)
        _ = try ffnOut(gated, residual: x)
    }
}

/// `CPEN` (stage 2): convolutions and ResBlocks, a global average pool, an MLP: the image's 256-d condition.
/// Split in two so that large images can be encoded in tiles: `featureSum` over a tile (the conv features'
/// sum over the tile's interior) and `head` on the exact global mean.
public final class DiffIRConditionEncoder {
    let unshuffle: Int
    let first: Conv2D
    let resBlocks: [(Conv2D, Conv2D)]
    let tail: [Conv2D]
    let mlp0: Linear, mlp2: Linear
    /// The pixel-unshuffle in front (1, 2 or 4): tiles and their interiors must be multiples of it.
    public var unshuffleFactor: Int { unshuffle }
    /// How far (in unshuffled pixels) a feature sees: one pixel per 3×3 convolution.
    public let receptiveRadius: Int

    init(_ p: ParameterSource, unshuffle: Int, resBlocks count: Int) throws {
        self.unshuffle = unshuffle
        let lrelu = PostOp.leakyReLU(0.1)
        first = try loadConv(p, "condition.E.0", in: 3 * unshuffle * unshuffle, out: 64, postOps: [lrelu])
        resBlocks = try (0..<count).map { i in
            (try loadConv(p, "condition.E.\(2 + i).body.0", in: 64, out: 64, postOps: [lrelu]),
             try loadConv(p, "condition.E.\(2 + i).body.2", in: 64, out: 64, postOps: [.sum()]))
        }
        tail = [try loadConv(p, "condition.E.\(2 + count)", in: 64, out: 128, postOps: [lrelu]),
                try loadConv(p, "condition.E.\(4 + count)", in: 128, out: 128, postOps: [lrelu]),
                try loadConv(p, "condition.E.\(6 + count)", in: 128, out: 256, postOps: [lrelu])]
        mlp0 = try loadLinear(p, "condition.mlp.0", in: 256, out: 256, postOps: [lrelu])
        mlp2 = try loadLinear(p, "condition.mlp.2", in: 256, out: 256, postOps: [lrelu])
        receptiveRadius = 1 + 2 * count + 3
    }

    /// The 256 pooled channels summed over `interior` (in input pixels, multiples of the unshuffle factor) of
    /// `tile` ([1, H, W, 3], input pixels); the tile must reach `receptiveRadius · unshuffle` pixels beyond the
    /// interior wherever the interior is not at the image border, so the sum is exact.
    public func featureSum(_ tile: Tensor, interior: PixelRect) throws -> [Double] {
        var x = unshuffle > 1 ? try pixelUnshuffle(tile, factor: unshuffle) : tile
        x = try first(x)
        for (a, b) in resBlocks { x = try b(try a(x), residual: x) }
        for conv in tail { x = try conv(x) }
        let r = interior.divided(by: unshuffle)
        let (_, _, w, c) = try x.nhwc("CPEN")
        var sums = [Double](repeating: 0, count: c)
        for y in r.y..<(r.y + r.height) {
            for xx in r.x..<(r.x + r.width) {
                let row = x.data + (y * w + xx) * c
                for j in 0..<c { sums[j] += Double(row[j]) }
            }
        }
        return sums
    }

    /// The MLP on the pooled features ([1, 256]).
    public func head(mean: [Float]) throws -> Tensor {
        try mlp2(try mlp0(try Tensor(shape: [1, 256], values: mean)))
    }

    /// CPEN of a whole image ([1, H, W, 3], sides multiples of the unshuffle factor): [1, 256].
    public func callAsFunction(_ image: Tensor) throws -> Tensor {
        let (_, h, w, _) = try image.nhwc("CPEN")
        let sums = try featureSum(image, interior: PixelRect(y: 0, x: 0, height: h, width: w))
        let count = Double(h / unshuffle * (w / unshuffle))
        return try head(mean: sums.map { Float($0 / count) })
    }
}

/// The denoise MLP of the IPR diffusion: Linear(513 → 256) on cat(c, t / (10·T), x), LeakyReLU(0.1), then
/// `n_denoise_res` × (Linear(256 → 256), LeakyReLU). Its `ResMLP` adds no residual despite the name.
public final class DiffIRDenoiser {
    let layers: [Linear]
    let maxPeriod: Float

    init(_ p: ParameterSource, resBlocks: Int, timesteps: Int) throws {
        let lrelu = PostOp.leakyReLU(0.1)
        layers = [try loadLinear(p, "denoise.resmlp.0", in: 513, out: 256, postOps: [lrelu])]
            + (try (0..<resBlocks).map { try loadLinear(p, "denoise.resmlp.\(2 + $0).resmlp.0", in: 256, out: 256, postOps: [lrelu]) })
        maxPeriod = Float(timesteps * 10)
    }

    /// The x0 prediction for `x` ([N, 256]) at step `t` given the condition `c` ([N, 256]).
    public func callAsFunction(_ x: Tensor, t: Int, condition c: Tensor) throws -> Tensor {
        let n = x.shape[0]
        guard x.shape == [n, 256], c.shape == [n, 256] else {
            throw EngineError.shapeMismatch(op: "DiffIR denoise", expected: "x and c [N, 256]", found: "\(x.shape), \(c.shape)")
        }
        var h = try Tensor(uninitializedShape: [n, 513])
        for i in 0..<n {
            (h.data + i * 513).update(from: c.data + i * 256, count: 256)
            h.data[i * 513 + 256] = Float(t) / maxPeriod
            (h.data + i * 513 + 257).update(from: x.data + i * 256, count: 256)
        }
        for layer in layers { h = try layer(h) }
        return h
    }
}

/// DIRformer: patch embedding, a 4-level encoder–decoder of IPR-modulated transformer blocks, refinement, and
/// the ×4 tail added to the nearest-upsampled input (SR) or a 3×3 conv added to the input (deblurring).
public final class DIRformer {
    let configuration: DiffIRConfiguration
    let patchEmbed: Conv2D
    let encoders: [[DiffIRTransformerBlock]]   // levels 1, 2, 3
    let latent: [DiffIRTransformerBlock]
    let downs: [Conv2D]                        // 1→2, 2→3, 3→4
    let ups: [Conv2D]                          // 4→3, 3→2, 2→1
    let reduce3: Linear, reduce2: Linear
    let decoders: [[DiffIRTransformerBlock]]   // levels 3, 2, 1
    let refinement: [DiffIRTransformerBlock]
    let tail: [Conv2D]

    init(_ c: DiffIRConfiguration, _ p: ParameterSource) throws {
        configuration = c
        let d = c.dim, withBias = c.layerNorm == "WithBias"
        func blocks(_ prefix: String, _ count: Int, _ channels: Int, _ heads: Int) throws -> [DiffIRTransformerBlock] {
            try (0..<count).map { try DiffIRTransformerBlock(p, "G.\(prefix).\($0)", channels: channels, heads: heads, hidden: c.hidden(channels), withBias: withBias) }
        }
        func conv(_ name: String, _ cin: Int, _ cout: Int) throws -> Conv2D {
            try Conv2D(weight: try p.tensor("G.\(name).weight", [cout, cin, 3, 3]), padding: .same(1))
        }
        let inChannels = 3 * c.task.generatorUnshuffle * c.task.generatorUnshuffle
        patchEmbed = try conv("patch_embed.proj", inChannels, d)
        var enc: [[DiffIRTransformerBlock]] = [try blocks("encoder_level1", c.numBlocks[0], d, c.heads[0])]
        var downs: [Conv2D] = [try conv("down1_2.body.0", d, d / 2)]
        enc.append(try blocks("encoder_level2", c.numBlocks[1], 2 * d, c.heads[1]))
        downs.append(try conv("down2_3.body.0", 2 * d, d))
        enc.append(try blocks("encoder_level3", c.numBlocks[2], 4 * d, c.heads[2]))
        downs.append(try conv("down3_4.body.0", 4 * d, 2 * d))
        latent = try blocks("latent", c.numBlocks[3], 8 * d, c.heads[3])
        var ups: [Conv2D] = [try conv("up4_3.body.0", 8 * d, 16 * d)]
        reduce3 = try Linear(weight: try p.tensor("G.reduce_chan_level3.weight", [4 * d, 8 * d, 1, 1]))
        var dec: [[DiffIRTransformerBlock]] = [try blocks("decoder_level3", c.numBlocks[2], 4 * d, c.heads[2])]
        ups.append(try conv("up3_2.body.0", 4 * d, 8 * d))
        reduce2 = try Linear(weight: try p.tensor("G.reduce_chan_level2.weight", [2 * d, 4 * d, 1, 1]))
        dec.append(try blocks("decoder_level2", c.numBlocks[1], 2 * d, c.heads[1]))
        ups.append(try conv("up2_1.body.0", 2 * d, 4 * d))
        dec.append(try blocks("decoder_level1", c.numBlocks[0], 2 * d, c.heads[0]))
        refinement = try blocks("refinement", c.refinementBlocks, 2 * d, c.heads[0])
        if c.task == .deblur {
            tail = [try Conv2D(weight: try p.tensor("G.output.weight", [3, 2 * d, 3, 3]), padding: .same(1))]
        } else {
            tail = [try loadConv(p, "G.tail.0.0", in: 2 * d, out: 8 * d), try loadConv(p, "G.tail.0.2", in: 2 * d, out: 8 * d),
                    try loadConv(p, "G.tail.1", in: 2 * d, out: 3)]
        }
        (encoders, decoders, self.downs, self.ups) = (enc, dec, downs, ups)
    }

    var allBlocks: [DiffIRTransformerBlock] { encoders.flatMap { $0 } + latent + decoders.flatMap { $0 } + refinement }

    /// Every block's modulations for one IPR ([1, 256]), in `allBlocks` order: computed once per image, reused by every tile.
    public func modulations(_ ipr: Tensor) throws -> [(attention: Tensor, ffn: Tensor)] {
        guard ipr.count == 256 else { throw EngineError.shapeMismatch(op: "DIRformer", expected: "an IPR of 256 values", found: "\(ipr.shape)") }
        let one = try ipr.view(as: [1, 256])
        return try allBlocks.map { try $0.modulations(one) }
    }

    /// Restores `image` ([1, H, W, 3], sides multiples of `sizeMultiple`) under the modulations of one IPR.
    public func callAsFunction(_ image: Tensor, modulations m: [(attention: Tensor, ffn: Tensor)]) throws -> Tensor {
        let (n, h, w, channels) = try image.nhwc("DIRformer")
        let multiple = configuration.sizeMultiple
        guard n == 1, channels == 3, h % multiple == 0, w % multiple == 0 else {
            throw EngineError.invalidArgument(op: "DIRformer", reason: "needs one RGB image with sides multiples of \(multiple), got \(image.shape)")
        }
        guard m.count == allBlocks.count else { throw EngineError.invalidArgument(op: "DIRformer", reason: "modulations for \(m.count) blocks, expected \(allBlocks.count)") }
        var next = 0
        func run(_ blocks: [DiffIRTransformerBlock], _ x: Tensor) throws {
            for block in blocks {
                try block(x, modulation: m[next])
                next += 1
            }
        }
        let r = configuration.task.generatorUnshuffle
        let feat = r > 1 ? try pixelUnshuffle(image, factor: r) : image
        let level1 = try patchEmbed(feat)
        try run(encoders[0], level1)
        let level2 = try pixelUnshuffle(try downs[0](level1), factor: 2)
        try run(encoders[1], level2)
        let level3 = try pixelUnshuffle(try downs[1](level2), factor: 2)
        try run(encoders[2], level3)
        let level4 = try pixelUnshuffle(try downs[2](level3), factor: 2)
        try run(latent, level4)
        let dec3 = try reduce3(try concatenateChannels([try pixelShuffle(try ups[0](level4), factor: 2), level3]))
        try run(decoders[0], dec3)
        let dec2 = try reduce2(try concatenateChannels([try pixelShuffle(try ups[1](dec3), factor: 2), level2]))
        try run(decoders[1], dec2)
        let dec1 = try concatenateChannels([try pixelShuffle(try ups[2](dec2), factor: 2), level1])
        try run(decoders[2], dec1)
        try run(refinement, dec1)
        if configuration.task == .deblur {
            let out = try tail[0](dec1)
            try addInPlace(out, image)
            return out
        }
        let up1 = try pixelShuffle(try tail[0](dec1), factor: 2)
        let up2 = try pixelShuffle(try tail[1](up1), factor: 2)
        let out = try tail[2](up2)
        try addNearestUpsampled(image, scale: configuration.task.scale, into: out)
        return out
    }
}

/// out += nearest-upsample(image, scale): `F.interpolate(inp_img, scale_factor=scale, mode='nearest')`.
func addNearestUpsampled(_ image: Tensor, scale s: Int, into out: Tensor) throws {
    let (_, h, w, c) = try image.nhwc("nearest")
    guard out.shape == [1, h * s, w * s, c] else { throw EngineError.shapeMismatch(op: "DIRformer tail", expected: "[1, \(h * s), \(w * s), \(c)]", found: "\(out.shape)") }
    let source = image.data, target = out.data
    Parallel.forRanges(h * s, grain: 8) { begin, end in
        for y in begin..<end {
            let row = source + (y / s) * w * c, o = target + y * w * s * c
            for x in 0..<(w * s) { for k in 0..<c { o[x * c + k] += row[(x / s) * c + k] } }
        }
    }
}

/// DiffIR stage 2 as the official `DiffIRS2` holds it: DIRformer (`G`), CPEN (`condition`), the denoise MLP.
public final class DiffIRNetwork: ParameterDeclaring {
    public let configuration: DiffIRConfiguration
    public let generator: DIRformer
    public let condition: DiffIRConditionEncoder
    public let denoiser: DiffIRDenoiser

    public init(_ c: DiffIRConfiguration, parameters p: ParameterSource) throws {
        try c.validate()
        configuration = c
        generator = try DIRformer(c, p)
        condition = try DiffIRConditionEncoder(p, unshuffle: c.task.conditionUnshuffle, resBlocks: c.encoderResBlocks)
        denoiser = try DiffIRDenoiser(p, resBlocks: c.denoiseResBlocks, timesteps: c.timesteps)
    }
}
