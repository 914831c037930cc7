import Foundation

/// Where the heads of q, k or v sit inside a `[batch, tokens, channels]` tensor: head `h` occupies
/// channels `offset + h·headStride ..< offset + h·headStride + headDim` of every token.
public struct HeadLayout: Sendable {
    public var offset: Int
    public var headStride: Int

    public init(offset: Int, headStride: Int) {
        self.offset = offset
        self.headStride = headStride
    }

    /// Separate q/k/v tensors of `heads·headDim` channels, head after head.
    public static func separate(headDim: Int) -> HeadLayout { HeadLayout(offset: 0, headStride: headDim) }

    /// guided-diffusion `QKVAttentionLegacy`: one qkv tensor where each head holds its q, k, v in turn
    /// (part 0 = q, 1 = k, 2 = v).
    public static func legacyQKV(part: Int, headDim: Int) -> HeadLayout {
        HeadLayout(offset: part * headDim, headStride: 3 * headDim)
    }

    /// guided-diffusion `QKVAttention` (use_new_attention_order): all q heads, then all k, then all v.
    public static func splitQKV(part: Int, heads: Int, headDim: Int) -> HeadLayout {
        HeadLayout(offset: part * heads * headDim, headStride: headDim)
    }
}

/// Multi-head softmax attention `softmax(scale·q·kᵀ + bias)·v` on token-major tensors, through oneDNN
/// batched matmuls on strided views (no head split copies) and a SIMD softmax. Queries are processed in
/// blocks so the score buffer stays small (a few MiB) whatever the sequence length.
public final class Attention: @unchecked Sendable {
    private let matmul = BatchedMatMul()
    /// Upper bound on the score buffer, in elements (4 MiB of Float32).
    public var scoreBudget = 1 << 20

    public init() {}

    /// Attends `q` to `k`, `v` (each `[B, T, C]`, heads laid out as given) and returns `[B, Tq, heads·headDim]`
    /// with head `h` at channels `h·headDim ..< (h+1)·headDim`.
    /// - Parameter bias: optional additive `[biasBatch, heads, Tq, Tk]` (Swin's relative-position bias
    ///   plus window mask); batch entry `b` uses `bias[b % biasBatch]`.
    public func callAsFunction(q: Tensor, _ qLayout: HeadLayout, k: Tensor, _ kLayout: HeadLayout,
                               v: Tensor, _ vLayout: HeadLayout, heads: Int, headDim: Int, scale: Float,
                               bias: Tensor? = nil) throws -> Tensor {
        guard q.shape.count == 3, k.shape.count == 3, v.shape.count == 3,
              q.shape[0] == k.shape[0], k.shape[0] == v.shape[0], k.shape[1] == v.shape[1] else {
            throw EngineError.shapeMismatch(op: "Attention", expected: "q [B,Tq,C], k and v [B,Tk,C]",
                                            found: "q \(q.shape), k \(k.shape), v \(v.shape)")
        }
        for (name, t, layout) in [("q", q, qLayout), ("k", k, kLayout), ("v", v, vLayout)] {
            guard layout.offset + (heads - 1) * layout.headStride + headDim <= t.shape[2] else {
                throw EngineError.shapeMismatch(op: "Attention \(name)", expected: "\(heads) heads of \(headDim) channels",
                                                found: "\(t.shape)")
            }
        }
        let (batch, tq, tk) = (q.shape[0], q.shape[1], k.shape[1])
        if let bias {
            guard bias.shape.count == 4, bias.shape[1] == heads, bias.shape[2] == tq, bias.shape[3] == tk,
                  batch % bias.shape[0] == 0 else {
                throw EngineError.shapeMismatch(op: "Attention bias", expected: "[n, \(heads), \(tq), \(tk)] with n dividing \(batch)",
                                                found: "\(bias.shape)")
            }
        }
        let (cq, ck, cv) = (q.shape[2], k.shape[2], v.shape[2])
        let output = try Tensor(uninitializedShape: [batch, tq, heads * headDim])
        let block = min(tq, max(8, scoreBudget / max(1, heads * tk)))
        let scores = try Tensor(uninitializedShape: [heads, block, tk])

        for b in 0..<batch {
            var start = 0
            while start < tq {
                let rows = min(block, tq - start)
                // S[h] = scale · Q[h]·K[h]ᵀ
                try matmul.multiply(
                    q.data + (b * tq + start) * cq + qLayout.offset,
                    MatrixView(batch: heads, rows: rows, cols: headDim, batchStride: qLayout.headStride, rowStride: cq, colStride: 1),
                    k.data + b * tk * ck + kLayout.offset,
                    MatrixView(batch: heads, rows: headDim, cols: tk, batchStride: kLayout.headStride, rowStride: 1, colStride: ck),
                    into: scores.data, MatrixView(batch: heads, rows: rows, cols: tk, batchStride: rows * tk, rowStride: tk, colStride: 1),
                    scale: scale)
                let biasBase: UnsafeMutablePointer<Float>? = bias.map { t in
                    t.data + ((b % t.shape[0]) * heads * tq + start) * tk
                }
                let biasHeadStride = tq * tk
                Parallel.forRanges(heads * rows, grain: 4) { begin, end in
                    for r in begin..<end {
                        let h = r / rows, i = r % rows
                        softmaxRows(scores.data + r * tk, rows: 0..<1, columns: tk, rowStride: tk,
                                    bias: biasBase.map { UnsafePointer($0 + h * biasHeadStride + i * tk) })
                    }
                }
                // O[h] = P[h]·V[h], written into the head's channels of the output.
                try matmul.multiply(
                    scores.data, MatrixView(batch: heads, rows: rows, cols: tk, batchStride: rows * tk, rowStride: tk, colStride: 1),
                    v.data + b * tk * cv + vLayout.offset,
                    MatrixView(batch: heads, rows: tk, cols: headDim, batchStride: vLayout.headStride, rowStride: cv, colStride: 1),
                    into: output.data + (b * tq + start) * heads * headDim,
                    MatrixView(batch: heads, rows: rows, cols: headDim, batchStride: headDim, rowStride: heads * headDim, colStride: 1))
                start += rows
            }
        }
        return output
    }
}

