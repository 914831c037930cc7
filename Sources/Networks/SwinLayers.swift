import Engine
import Foundation

// The Swin transformer layer inside ResShift's UNetModelSwin (Liu et al. 2021, windows of 8 tokens, shifted
// by 4 in every second block), on NHWC tensors, normalised with GroupNorm32 as ResShift does. Parameter
// names follow ResShift's `models/swin_transformer.py`, so its checkpoints bind unchanged.

/// The window size and shift a block really uses. ResShift decides them at construction from the
/// construction-time resolution `ds` (not from the input): a level no larger than the window attends over
/// the whole `ds × ds` level, unshifted, whatever the size of the images it later sees.
struct SwinGeometry: Equatable {
    let window: Int
    let shift: Int

    init(constructionSize ds: Int, window: Int, shift: Int) {
        if ds <= window {
            self.window = ds
            self.shift = 0
        } else {
            self.window = window
            self.shift = shift
        }
    }
}

/// The label ResShift's `calculate_mask` gives image row `row` of a `height`-row level, for a shifted block.
/// The official code builds `img_mask` as (1, 1, H, W) but fills it as if it were (1, H, W, 1): the row
/// slices land on the size-1 axis (only the last slice, `-shift:`, is non-empty there) and the column slices
/// land on the rows. So labels depend on the row only: 6 above the last window row, then 7, then 8 for the
/// last `shift` rows. The released weights were trained with this mask; we reproduce it, not fix it.
func resshiftMaskLabel(row: Int, height: Int, window: Int, shift: Int) -> Int {
    if row < height - window { return 6 }
    if row < height - shift { return 7 }
    return 8
}

/// The additive mask of one window (−100 between tokens with different labels, else 0), in token order
/// (row-major inside the window). The official code flattens the label windows column-major
/// (`permute(0, 2, 3, 1)` before the `view`), so token `i` (row-major) is given the label of window row
/// `i % window`: in the last window row tokens are grouped by column, and no other window is masked.
func resshiftWindowMask(windowRow: Int, height: Int, window: Int, shift: Int) -> [Float]? {
    let tokens = window * window
    let labels = (0..<tokens).map { resshiftMaskLabel(row: windowRow * window + $0 % window, height: height, window: window, shift: shift) }
    guard Set(labels).count > 1 else { return nil }
    var mask = [Float](repeating: 0, count: tokens * tokens)
    for i in 0..<tokens { for j in 0..<tokens where labels[i] != labels[j] { mask[i * tokens + j] = -100 } }
    return mask
}

/// `WindowAttention` + MLP with pre-GroupNorm residuals (`SwinTransformerBlock`).
struct SwinBlock {
    let norm1: ADMNorm, norm2: ADMNorm
    let qkv: Linear, projection: Linear
    let fc1: Linear, fc2: Linear
    let geometry: SwinGeometry
    let heads: Int, channels: Int
    /// [heads, T, T] relative-position bias, T = window².
    let positionBias: [Float]
    let attention = Attention()

    init(_ p: ParameterSource, _ prefix: String, channels: Int, heads: Int, geometry: SwinGeometry, mlpRatio: Double) throws {
        guard heads > 0, channels % heads == 0 else {
            throw EngineError.invalidArgument(op: "SwinBlock", reason: "\(heads) heads do not divide \(channels) channels (\(prefix))")
        }
        let ws = geometry.window, tokens = ws * ws, span = 2 * ws - 1
        norm1 = try ADMNorm(p, prefix + ".norm1", channels: channels)
        let table = try p.tensor(prefix + ".attn.relative_position_bias_table", [span * span, heads])
        qkv = try loadLinear(p, prefix + ".attn.qkv", in: channels, out: 3 * channels)
        projection = try loadLinear(p, prefix + ".attn.proj", in: channels, out: channels)
        norm2 = try ADMNorm(p, prefix + ".norm2", channels: channels)
        let hidden = Int(Double(channels) * mlpRatio)
        fc1 = try loadLinear(p, prefix + ".mlp.fc1", in: channels, out: hidden, kernelDims: [1, 1], postOps: [.geluErf])
        fc2 = try loadLinear(p, prefix + ".mlp.fc2", in: hidden, out: channels, kernelDims: [1, 1], postOps: [.sum()])
        self.geometry = geometry
        self.heads = heads
        self.channels = channels
        // bias[h][i][j] = table[(Δrow + ws − 1)·(2ws − 1) + Δcol + ws − 1][h], Δ = token i − token j.
        var bias = [Float](repeating: 0, count: heads * tokens * tokens)
        let values = table.values
        for i in 0..<tokens {
            for j in 0..<tokens {
                let index = (i / ws - j / ws + ws - 1) * span + (i % ws - j % ws + ws - 1)
                for h in 0..<heads { bias[(h * tokens + i) * tokens + j] = values[index * heads + h] }
            }
        }
        positionBias = bias
    }

    /// `x + attn(norm1(x))`, then `+ mlp(norm2(·))`; updates and returns `x`.
    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let (n, height, width, c) = try x.nhwc("SwinBlock")
        let ws = geometry.window, shift = geometry.shift, tokens = ws * ws
        guard height % ws == 0, width % ws == 0 else {
            throw EngineError.invalidArgument(op: "SwinBlock", reason: "a \(height)×\(width) level is not a multiple of the \(ws)-token window")
        }
        let normed = try norm1(x, silu: false)
        let rows = height / ws, cols = width / ws
        // Windows of the cyclically shifted map (torch.roll by −shift), split into the unmasked ones and the
        // last window row, which the shifted blocks mask.
        var plain: [(Int, Int, Int)] = [], masked: [(Int, Int, Int)] = []
        let lastRowMask = shift > 0 ? resshiftWindowMask(windowRow: rows - 1, height: height, window: ws, shift: shift) : nil
        for b in 0..<n {
            for r in 0..<rows {
                for q in 0..<cols {
                    if r == rows - 1, lastRowMask != nil { masked.append((b, r, q)) } else { plain.append((b, r, q)) }
                }
            }
        }
        for (windows, mask) in [(plain, nil as [Float]?), (masked, lastRowMask)] where !windows.isEmpty {
            let gathered = try Tensor(uninitializedShape: [windows.count, tokens, c])
            // Source pixel of token (a, b) of window (r, q): ((r·ws + a + shift) mod H, (q·ws + b + shift) mod W).
            func pixel(_ w: (Int, Int, Int), _ token: Int) -> Int {
                let (b, r, q) = w
                let y = (r * ws + token / ws + shift) % height, x = (q * ws + token % ws + shift) % width
                return (b * height + y) * width + x
            }
            Parallel.forRanges(windows.count, grain: 4) { begin, end in
                for k in begin..<end {
                    for t in 0..<tokens {
                        (gathered.data + (k * tokens + t) * c).update(from: normed.data + pixel(windows[k], t) * c, count: c)
                    }
                }
            }
            var biasValues = positionBias
            if let mask {
                for h in 0..<heads { for e in 0..<(tokens * tokens) { biasValues[h * tokens * tokens + e] += mask[e] } }
            }
            let bias = try Tensor(shape: [1, heads, tokens, tokens], values: biasValues)
            let d = c / heads
            let qkvTokens = try qkv(gathered)  // [windows, T, 3C]: q, k, v, each head after head
            let attended = try attention(q: qkvTokens, .splitQKV(part: 0, heads: heads, headDim: d),
                                         k: qkvTokens, .splitQKV(part: 1, heads: heads, headDim: d),
                                         v: qkvTokens, .splitQKV(part: 2, heads: heads, headDim: d),
                                         heads: heads, headDim: d, scale: 1 / Float(d).squareRoot(), bias: bias)
            let projected = try projection(attended)
            // Window reverse + roll back: each token returns to its source pixel; the residual is added there.
            Parallel.forRanges(windows.count, grain: 4) { begin, end in
                for k in begin..<end {
                    for t in 0..<tokens {
                        let target = x.data + pixel(windows[k], t) * c, source = projected.data + (k * tokens + t) * c
                        for j in 0..<c { target[j] += source[j] }
                    }
                }
            }
        }
        return try fc2(try fc1(try norm2(x, silu: false)), residual: x)
    }
}

/// ResShift's `BasicLayer`: 1×1 conv C → E, `depth` Swin blocks (shift 0, window/2, 0, …), 1×1 conv E → C.
/// No residual around the layer (as in the official network).
struct SwinBasicLayer {
    let embed: Linear, unembed: Linear
    let blocks: [SwinBlock]

    init(_ p: ParameterSource, _ prefix: String, channels: Int, embedChannels: Int, heads: Int, window: Int,
         depth: Int, constructionSize: Int, mlpRatio: Double) throws {
        embed = try loadLinear(p, prefix + ".patch_embed.proj", in: channels, out: embedChannels, kernelDims: [1, 1])
        blocks = try (0..<depth).map { i in
            try SwinBlock(p, prefix + ".blocks.\(i)", channels: embedChannels, heads: heads,
                          geometry: SwinGeometry(constructionSize: constructionSize, window: window, shift: i % 2 == 0 ? 0 : window / 2),
                          mlpRatio: mlpRatio)
        }
        unembed = try loadLinear(p, prefix + ".patch_unembed.proj", in: embedChannels, out: channels, kernelDims: [1, 1])
    }

    /// The smallest size multiple the layer's windows need.
    var windowMultiple: Int { blocks.map(\.geometry.window).max() ?? 1 }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        var h = try embed(x)
        for block in blocks { h = try block(h) }
        return try unembed(h)
    }
}
