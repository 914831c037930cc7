// Group normalisation over NHWC tensors (fused with the ADM scale-shift and SiLU), and layer normalisation
// over the last dimension (standard, gain-only, and the "BiasFree" form of Restormer / DiffIR).

import Foundation

// MARK: - GroupNorm

/// Group normalisation of an NHWC tensor (PyTorch `nn.GroupNorm` on the NCHW equivalent), optionally fused
/// with what follows it in ADM / DDPM residual blocks:
///
///     y = GN(x) · γ + β                         (per channel c)
///     y = y · (1 + scale[n, c]) + shift[n, c]   (if `scale` / `shift` are given: ADM's use_scale_shift_norm)
///     y = y · σ(y)                              (if `silu`)
///
/// Statistics are computed two-pass (mean, then the centred sum of squares) per (batch, group), summed in
/// Float vectors over blocks of 64 pixels and across blocks in Double, so a large mean does not cost
/// precision. Variance is the biased one, as PyTorch's.
/// - Parameters:
///   - groups: must divide the channel count.
///   - weight, bias: γ and β, [C] each (nil means 1 and 0).
///   - epsilon: 1e-5 for ADM / guided-diffusion, 1e-6 for DDPM / LDM.
///   - scale, shift: [N, C] (or [N, 1, 1, C]); either may be nil.
public func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, epsilon: Float,
                      scale: Tensor? = nil, shift: Tensor? = nil, silu applySiLU: Bool = false) throws -> Tensor {
    let op = "groupNorm"
    let (n, h, w, c) = try x.nhwc(op)
    guard groups > 0, c % groups == 0 else {
        throw EngineError.invalidArgument(op: op, reason: "\(groups) groups do not divide \(c) channels")
    }
    try requireCount(weight, c, "[\(c)]", op)
    try requireCount(bias, c, "[\(c)]", op)
    try requireCount(scale, n * c, "[\(n), \(c)]", op)
    try requireCount(shift, n * c, "[\(n), \(c)]", op)

    let (mean, rstd) = groupStatistics(x.data, batches: n, pixels: h * w, channels: c, groups: groups, epsilon: epsilon)
    // Per (n, c): y = (x − mean[n, c]) · a + b, then the activation.
    let a = UnsafeMutablePointer<Float>.allocate(capacity: n * c)
    let b = UnsafeMutablePointer<Float>.allocate(capacity: n * c)
    defer { a.deallocate(); b.deallocate() }
    for batch in 0..<n {
        for channel in 0..<c {
            let i = batch * c + channel
            let group = batch * groups + channel / (c / groups)
            let gamma = weight?.data[channel] ?? 1, beta = bias?.data[channel] ?? 0
            let s = 1 + (scale?.data[i] ?? 0)
            a[i] = rstd[group] * gamma * s
            b[i] = beta * s + (shift?.data[i] ?? 0)
        }
    }
    let result = try Tensor(uninitializedShape: x.shape)
    mean.withUnsafeBufferPointer { mean in
        let mean = mean.baseAddress!
        if applySiLU {
            applyChannelAffine(x.data, result.data, mean: mean, a: a, b: b, batches: n, pixels: h * w, channels: c) { silu($0) }
        } else {
            applyChannelAffine(x.data, result.data, mean: mean, a: a, b: b, batches: n, pixels: h * w, channels: c) { $0 }
        }
    }
    return result
}

/// Throws unless `t` is nil or holds `count` elements.
func requireCount(_ t: Tensor?, _ count: Int, _ expected: String, _ op: String) throws {
    if let t, t.count != count { throw EngineError.shapeMismatch(op: op, expected: expected, found: "\(t.shape)") }
}

/// The group mean expanded to each (batch, channel), [N · C], and 1/√(var + ε) for each (batch, group), [N · G].
func groupStatistics(_ x: UnsafePointer<Float>, batches: Int, pixels: Int, channels c: Int, groups: Int,
                     epsilon: Float) -> (mean: [Float], rstd: [Float]) {
    let groupSize = c / groups
    let elements = Double(pixels * groupSize)
    // Pass 1: per-channel sums → group means.
    let sums = channelSums(x, batches: batches, pixels: pixels, channels: c, centre: nil)
    var channelMean = [Float](repeating: 0, count: batches * c)
    for batch in 0..<batches {
        for g in 0..<groups {
            var s = 0.0
            for k in 0..<groupSize { s += sums[batch * c + g * groupSize + k] }
            for k in 0..<groupSize { channelMean[batch * c + g * groupSize + k] = Float(s / elements) }
        }
    }
    // Pass 2: per-channel centred sums of squares → group variances.
    let squares = channelMean.withUnsafeBufferPointer {
        channelSums(x, batches: batches, pixels: pixels, channels: c, centre: $0.baseAddress!)
    }
    var rstd = [Float](repeating: 0, count: batches * groups)
    for batch in 0..<batches {
        for g in 0..<groups {
            var s = 0.0
            for k in 0..<groupSize { s += squares[batch * c + g * groupSize + k] }
            rstd[batch * groups + g] = Float(1 / (s / elements + Double(epsilon)).squareRoot())
        }
    }
    return (channelMean, rstd)
}

/// Σ over pixels of x[n, p, c] (or of (x − centre[n, c])² when `centre` is given), per (n, c), in Double.
/// Each batch is split into pixel ranges summed in parallel; within a range, Float vectors accumulate
/// blocks of 64 pixels before each block is added in Double.
func channelSums(_ x: UnsafePointer<Float>, batches: Int, pixels: Int, channels c: Int,
                 centre: UnsafePointer<Float>?) -> [Double] {
    let parts = max(1, min(Parallel.threadCount * 2, pixels / 256))
    let partial = UnsafeMutablePointer<Double>.allocate(capacity: batches * parts * c)
    defer { partial.deallocate() }
    Parallel.forEach(batches * parts) { task in
        let batch = task / parts, part = task % parts
        let begin = pixels * part / parts, end = pixels * (part + 1) / parts
        let total = partial + task * c
        total.initialize(repeating: 0, count: c)
        let block = UnsafeMutablePointer<Float>.allocate(capacity: c)
        defer { block.deallocate() }
        let image = x + batch * pixels * c
        var start = begin
        while start < end {
            let stop = min(start + 64, end)
            block.initialize(repeating: 0, count: c)
            if let centre {
                let m = centre + batch * c
                for p in start..<stop { accumulateSquares(image + p &* c, m, into: block, count: c) }
            } else {
                for p in start..<stop { accumulateSum(image + p &* c, into: block, count: c) }
            }
            for k in 0..<c { total[k] += Double(block[k]) }
            start = stop
        }
    }
    var sums = [Double](repeating: 0, count: batches * c)
    for task in 0..<(batches * parts) {
        let batch = task / parts
        for k in 0..<c { sums[batch * c + k] += partial[task * c + k] }
    }
    return sums
}

/// acc[k] += v[k] for k < count.
@inline(__always)
func accumulateSum(_ v: UnsafePointer<Float>, into acc: UnsafeMutablePointer<Float>, count: Int) {
    var k = 0
    while k &+ 8 <= count {
        (FloatVector(loading: acc + k) + FloatVector(loading: v + k)).store(to: acc + k)
        k = k &+ 8
    }
    while k < count { acc[k] += v[k]; k = k &+ 1 }
}

/// acc[k] += (v[k] − centre[k])² for k < count.
@inline(__always)
func accumulateSquares(_ v: UnsafePointer<Float>, _ centre: UnsafePointer<Float>, into acc: UnsafeMutablePointer<Float>,
                       count: Int) {
    var k = 0
    while k &+ 8 <= count {
        let d = FloatVector(loading: v + k) - FloatVector(loading: centre + k)
        FloatVector(loading: acc + k).addingProduct(d, d).store(to: acc + k)
        k = k &+ 8
    }
    while k < count { let d = v[k] - centre[k]; acc[k] += d * d; k = k &+ 1 }
}

/// y[n, p, c] = activation((x[n, p, c] − mean[n, c]) · a[n, c] + b[n, c]), in parallel over pixels.
@inline(__always)
func applyChannelAffine(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, mean m: UnsafePointer<Float>,
                        a: UnsafePointer<Float>, b: UnsafePointer<Float>, batches: Int, pixels: Int, channels c: Int,
                        _ activation: (FloatVector) -> FloatVector) {
    Parallel.forRanges(batches * pixels, grain: max(1, elementwiseGrain / c)) { begin, end in
        for pixel in begin..<end {
            let batchOffset = (pixel / pixels) &* c, offset = pixel &* c
            var k = 0
            while k &+ 8 <= c {
                let v = FloatVector(loading: x + (offset &+ k)) - FloatVector(loading: m + (batchOffset &+ k))
                activation(FloatVector(loading: b + (batchOffset &+ k))
                    .addingProduct(v, FloatVector(loading: a + (batchOffset &+ k)))).store(to: y + (offset &+ k))
                k = k &+ 8
            }
            if k < c {
                let rest = c &- k, o = batchOffset &+ k
                let v = FloatVector(loading: x + (offset &+ k), count: rest) - FloatVector(loading: m + o, count: rest)
                activation(FloatVector(loading: b + o, count: rest).addingProduct(v, FloatVector(loading: a + o, count: rest)))
                    .store(to: y + (offset &+ k), count: rest)
            }
        }
    }
}

// MARK: - LayerNorm

/// Which layer normalisation: both divide by √(var + ε) with the centred, biased variance of the row.
public enum LayerNormVariant: Sendable {
    /// (x − mean) / √(var + ε) · w + b: `nn.LayerNorm`, Restormer's WithBias, RDDM's channel LayerNorm (gain only).
    case centered
    /// x / √(var + ε) · w: Restormer / DiffIR "BiasFree" (the mean is not subtracted from x).
    case biasFree
}

/// Layer normalisation over the last dimension (on NHWC, that is over channels per pixel).
/// - Parameters:
///   - weight: the gain w, [C] (nil means 1).
///   - bias: [C] or nil (must be nil for `.biasFree`).
///   - epsilon: 1e-5 for PyTorch's default, Restormer and RDDM; 1e-6 where a model says so.
public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor? = nil, epsilon: Float,
                      variant: LayerNormVariant = .centered) throws -> Tensor {
    let op = "layerNorm"
    let c = x.shape.last!
    try requireCount(weight, c, "[\(c)]", op)
    try requireCount(bias, c, "[\(c)]", op)
    if variant == .biasFree, bias != nil {
        throw EngineError.invalidArgument(op: op, reason: "the bias-free variant takes no bias")
    }
    let result = try Tensor(uninitializedShape: x.shape)
    // Gain and offset with the defaults filled in, so the row loop has no branches.
    let gain = UnsafeMutablePointer<Float>.allocate(capacity: c), offset = UnsafeMutablePointer<Float>.allocate(capacity: c)
    defer { gain.deallocate(); offset.deallocate() }
    if let weight { gain.update(from: weight.data, count: c) } else { gain.initialize(repeating: 1, count: c) }
    if let bias { offset.update(from: bias.data, count: c) } else { offset.initialize(repeating: 0, count: c) }
    let source = x.data, output = result.data, centered = variant == .centered
    let (g, o) = (UnsafePointer(gain), UnsafePointer(offset))
    Parallel.forRanges(x.count / c, grain: max(1, elementwiseGrain / c)) { begin, end in
        for row in begin..<end {
            let v = source + row &* c, y = output + row &* c
            let mean = rowSum(v, count: c) / Float(c)
            let rstd = 1 / (rowCentredSquares(v, mean: mean, count: c) / Float(c) + epsilon).squareRoot()
            let subtract = FloatVector(repeating: centered ? mean : 0)
            var k = 0
            while k &+ 8 <= c {
                let xv = FloatVector(loading: v + k) - subtract
                FloatVector(loading: o + k).addingProduct(xv * rstd, FloatVector(loading: g + k)).store(to: y + k)
                k = k &+ 8
            }
            while k < c { y[k] = (v[k] - subtract[0]) * rstd * g[k] + o[k]; k = k &+ 1 }
        }
    }
    return result
}

/// Σ v[k] for k < count, with two vector accumulators.
@inline(__always)
func rowSum(_ v: UnsafePointer<Float>, count: Int) -> Float {
    var s0 = FloatVector.zero, s1 = FloatVector.zero
    var k = 0
    while k &+ 16 <= count {
        s0 += FloatVector(loading: v + k)
        s1 += FloatVector(loading: v + (k &+ 8))
        k = k &+ 16
    }
    if k &+ 8 <= count { s0 += FloatVector(loading: v + k); k = k &+ 8 }
    var total = (s0 + s1).sum()
    while k < count { total += v[k]; k = k &+ 1 }
    return total
}

/// Σ (v[k] − mean)² for k < count.
@inline(__always)
func rowCentredSquares(_ v: UnsafePointer<Float>, mean: Float, count: Int) -> Float {
    var s0 = FloatVector.zero, s1 = FloatVector.zero
    let m = FloatVector(repeating: mean)
    var k = 0
    while k &+ 16 <= count {
        let d0 = FloatVector(loading: v + k) - m, d1 = FloatVector(loading: v + (k &+ 8)) - m
        s0 = s0.addingProduct(d0, d0)
        s1 = s1.addingProduct(d1, d1)
        k = k &+ 16
    }
    if k &+ 8 <= count { let d = FloatVector(loading: v + k) - m; s0 = s0.addingProduct(d, d); k = k &+ 8 }
    var total = (s0 + s1).sum()
    while k < count { let d = v[k] - mean; total += d * d; k = k &+ 1 }
    return total
}
