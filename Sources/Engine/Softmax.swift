// Row softmax for attention scores and classifier logits: max-subtracted, vectorised exp, one division per
// row. Rows are short enough (≤ a few thousand columns) to stay in L1/L2 between the three sweeps.

/// Softmax of each row of a row-major [rows, columns] matrix, in place, over rows [firstRow, endRow):
///
///     row ← softmax(scale · row + bias)
///
/// Runs on the calling thread, for callers that already split the work (e.g. attention, per head).
/// - Parameters:
///   - rowStride: distance between rows in floats (≥ columns).
///   - bias: nil, or floats added to the rows after scaling (an additive mask: −∞ masks out); row r
///     gets `bias + r · biasRowStride`, so a stride of 0 (the default) adds the same row to all.
public func softmaxRows(_ data: UnsafeMutablePointer<Float>, rows range: Range<Int>, columns: Int, rowStride: Int,
                        scale: Float = 1, bias rowsBias: UnsafePointer<Float>? = nil, biasRowStride: Int = 0) {
    for row in range {
        let v = data + row &* rowStride
        let bias = rowsBias.map { $0 + row &* biasRowStride }
        // Sweep 1: scale (and bias) in place, and the maximum.
        let s = FloatVector(repeating: scale)
        var top = FloatVector(repeating: -.infinity)
        var k = 0
        if let bias {
            while k &+ 8 <= columns {
                let t = FloatVector(loading: bias + k).addingProduct(FloatVector(loading: v + k), s)
                t.store(to: v + k)
                top = top.replacing(with: t, where: t .> top)
                k = k &+ 8
            }
        } else if scale != 1 {
            while k &+ 8 <= columns {
                let t = FloatVector(loading: v + k) * s
                t.store(to: v + k)
                top = top.replacing(with: t, where: t .> top)
                k = k &+ 8
            }
        } else {
            while k &+ 8 <= columns {
                let t = FloatVector(loading: v + k)
                top = top.replacing(with: t, where: t .> top)
                k = k &+ 8
            }
        }
        var maximum = top.maximum
        while k < columns {
            v[k] = v[k] * scale + (bias?[k] ?? 0)
            maximum = max(maximum, v[k])
            k = k &+ 1
        }
        // Sweep 2: e^(x − max) and the sum. A row that is all −∞ gives NaN, as in PyTorch.
        let m = FloatVector(repeating: maximum)
        var sum = FloatVector.zero
        k = 0
        while k &+ 8 <= columns {
            let e = exp(FloatVector(loading: v + k) - m)
            e.store(to: v + k)
            sum += e
            k = k &+ 8
        }
        if k < columns {
            let rest = columns &- k
            let e = exp(FloatVector(loading: v + k, count: rest) - m)
            e.store(to: v + k, count: rest)
            for lane in 0..<rest { sum[lane] += e[lane] }
        }
        // Sweep 3: normalise.
        let inverse = 1 / sum.sum()
        mapVectors(v, v, count: columns) { $0 * inverse }
    }
}

/// Softmax of each row of a [rows, columns] matrix in place, split over the thread pool (see
/// `softmaxRows(_:rows:columns:rowStride:scale:bias:)`; do not call from inside another parallel loop).
public func softmaxRows(_ data: UnsafeMutablePointer<Float>, rows: Int, columns: Int, scale: Float = 1,
                        bias: UnsafePointer<Float>? = nil, biasRowStride: Int = 0) {
    Parallel.forRanges(rows, grain: max(1, 4096 / max(columns, 1))) { begin, end in
        softmaxRows(data, rows: begin..<end, columns: columns, rowStride: columns, scale: scale, bias: bias,
                    biasRowStride: biasRowStride)
    }
}

/// Softmax over the last dimension of a tensor, returning a new tensor.
/// - Parameter bias: nil, a tensor of the last dimension's size added to every row, or one with as many
///   elements as `x` added row by row (e.g. a mask).
public func softmax(_ x: Tensor, scale: Float = 1, bias: Tensor? = nil) throws -> Tensor {
    let columns = x.shape.last!
    if let bias, bias.count != columns, bias.count != x.count {
        throw EngineError.shapeMismatch(op: "softmax", expected: "[\(columns)] or \(x.shape)", found: "\(bias.shape)")
    }
    let result = try x.copy()
    softmaxRows(result.data, rows: x.count / columns, columns: columns, scale: scale,
                bias: bias.map { UnsafePointer($0.data) }, biasRowStride: bias?.count == columns ? 0 : columns)
    return result
}
