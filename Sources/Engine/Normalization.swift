// Group normalisation over NHWC tensors (fused with the ADM scale-shift and SiLU), and layer normalisation
// over the last dimension (standard, gain-only, and the "BiasFree" form of Restormer / DiffIR).

import CEngineSupport
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
    // Per (n, c): y = (x − mean) · a + b, then the activation. (Folding the mean into b would cost
    // precision when the mean dwarfs the spread.)
    let abm = UnsafeMutablePointer<Float>.allocate(capacity: 3 * n * c)
    defer { abm.deallocate() }
    let a = abm, b = abm + n * c, m = abm + 2 * n * c
    for batch in 0..<n {
        for channel in 0..<c {
            let i = batch * c + channel
            let group = batch * groups + channel / (c / groups)
            let gamma = weight?.data[channel] ?? 1, beta = bias?.data[channel] ?? 0
            let s = 1 + (scale?.data[i] ?? 0)
            a[i] = rstd[group] * gamma * s
            b[i] = beta * s + (shift?.data[i] ?? 0)
            m[i] = mean[group]
        }
    }
    let result = try Tensor(uninitializedShape: x.shape)
    applyChannelAffine(x.data, result.data, mean: m, a: a, b: b, batches: n, pixels: h * w, channels: c, silu: applySiLU)
    return result
}

/// Throws unless `t` is nil or holds `count` elements.
func requireCount(_ t: Tensor?, _ count: Int, _ expected: String, _ op: String) throws {
    if let t, t.count != count { throw EngineError.shapeMismatch(op: op, expected: expected, found: "\(t.shape)") }
}

/// The mean and 1/√(var + ε) of each (batch, group), [N · G] each, from one pass over the data.
///
/// Each thread sums d = x − pivot and d² per channel over its pixel range (Float vectors over blocks of
/// 64 pixels, then Double), where the pivot is the channel's value at the first pixel: shifting by a
/// sample keeps E[d²] − E[d]² free of cancellation even when the mean dwarfs the spread. Channel means
/// and variances then combine into group statistics exactly: var_g = mean_c(var_c) + mean_c((m_c − μ_g)²).
func groupStatistics(_ x: UnsafePointer<Float>, batches: Int, pixels: Int, channels c: Int, groups: Int,
                     epsilon: Float) -> (mean: [Float], rstd: [Float]) {
    let groupSize = c / groups
    let parts = max(1, min(Parallel.threadCount, pixels / 64))
    // Per task: [sum d, sum d²] per channel, in Double.
    let partial = UnsafeMutablePointer<Double>.allocate(capacity: batches * parts * 2 * c)
    defer { partial.deallocate() }
    Parallel.forEach(batches * parts) { task in
        let batch = task / parts, part = task % parts
        let begin = pixels * part / parts, end = pixels * (part + 1) / parts
        let image = x + batch * pixels * c
        let sum = partial + task * 2 * c, squares = sum + c
        sum.initialize(repeating: 0, count: 2 * c)
        let block = UnsafeMutablePointer<Float>.allocate(capacity: 2 * c)
        defer { block.deallocate() }
        var start = begin
        while start < end {
            let stop = min(start + 64, end)
            block.initialize(repeating: 0, count: 2 * c)
            if CPU.useAVX512Kernels {
                dr_shifted_moments_avx512(image + start &* c, stop - start, c, image, block, block + c)
            } else {
                for p in start..<stop { accumulateShiftedMoments(image + p &* c, pivot: image, into: block, count: c) }
            }
            for k in 0..<c {
                sum[k] += Double(block[k])
                squares[k] += Double(block[c + k])
            }
            start = stop
        }
    }
    var mean = [Float](repeating: 0, count: batches * groups)
    var rstd = [Float](repeating: 0, count: batches * groups)
    let count = Double(pixels)
    for batch in 0..<batches {
        for g in 0..<groups {
            var channelMeans = [Double](repeating: 0, count: groupSize)
            var varianceSum = 0.0
            for k in 0..<groupSize {
                let channel = g * groupSize + k
                var s1 = 0.0, s2 = 0.0
                for part in 0..<parts {
                    let base = partial + (batch * parts + part) * 2 * c
                    s1 += base[channel]
                    s2 += base[c + channel]
                }
                let shiftedMean = s1 / count
                channelMeans[k] = Double(x[batch * pixels * c + channel]) + shiftedMean
                varianceSum += max(0, s2 / count - shiftedMean * shiftedMean)
            }
            let mu = channelMeans.reduce(0, +) / Double(groupSize)
            let spread = channelMeans.reduce(0) { $0 + ($1 - mu) * ($1 - mu) }
            let variance = (varianceSum + spread) / Double(groupSize)
            mean[batch * groups + g] = Float(mu)
            rstd[batch * groups + g] = Float(1 / (variance + Double(epsilon)).squareRoot())
        }
    }
    return (mean, rstd)
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

/// acc[k] += v[k] − pivot[k] and acc[count + k] += (v[k] − pivot[k])² for k < count.
@inline(__always)
func accumulateShiftedMoments(_ v: UnsafePointer<Float>, pivot: UnsafePointer<Float>, into acc: UnsafeMutablePointer<Float>,
                              count: Int) {
    let squares = acc + count
    var k = 0
    while k &+ 8 <= count {
        let d = FloatVector(loading: v + k) - FloatVector(loading: pivot + k)
        (FloatVector(loading: acc + k) + d).store(to: acc + k)
        FloatVector(loading: squares + k).addingProduct(d, d).store(to: squares + k)
        k = k &+ 8
    }
    while k < count {
        let d = v[k] - pivot[k]
        acc[k] += d
        squares[k] += d * d
        k = k &+ 1
    }
}

/// y[n, p, c] = act((x[n, p, c] − mean[n, c]) · a[n, c] + b[n, c]), act = SiLU or identity, in parallel
/// over pixels. The activation is a flag, not a closure: a closure here was not inlined and cost 3×.
func applyChannelAffine(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, mean m: UnsafePointer<Float>,
                        a: UnsafePointer<Float>, b: UnsafePointer<Float>, batches: Int, pixels: Int, channels c: Int,
                        silu applySiLU: Bool) {
    Parallel.forRanges(batches * pixels, grain: max(1, elementwiseGrain / c)) { begin, end in
        if CPU.useAVX512Kernels {
            var start = begin
            while start < end {
                let batch = start / pixels, stop = min(end, (batch + 1) * pixels), o = batch * c
                dr_channel_affine_avx512(x + start * c, y + start * c, stop - start, c, m + o, a + o, b + o, applySiLU ? 1 : 0)
                start = stop
            }
            return
        }
        for pixel in begin..<end {
            let batchOffset = (pixel / pixels) &* c, offset = pixel &* c
            var k = 0
            while k &+ 8 <= c {
                let v = FloatVector(loading: x + (offset &+ k)) - FloatVector(loading: m + (batchOffset &+ k))
                let r = FloatVector(loading: b + (batchOffset &+ k)).addingProduct(v, FloatVector(loading: a + (batchOffset &+ k)))
                (applySiLU ? silu(r) : r).store(to: y + (offset &+ k))
                k = k &+ 8
            }
            if k < c {
                let rest = c &- k, o = batchOffset &+ k
                let v = FloatVector(loading: x + (offset &+ k), count: rest) - FloatVector(loading: m + o, count: rest)
                let r = FloatVector(loading: b + o, count: rest).addingProduct(v, FloatVector(loading: a + o, count: rest))
                (applySiLU ? silu(r) : r).store(to: y + (offset &+ k), count: rest)
            }
        }
    }
}

// MARK: - LayerNorm

/// Which layer normalisation: both divide by √(var + ε) with the centred, biased variance of the row.
public enum LayerNormVariant: Sendable {
    /// (x − mean) / √(var + ε) · w + b: `nn.LayerNorm`, Restormer's WithBias, RDDM's channel LayerNorm (gain only).
    case centered
    /// x / √(var + ε) · w (+ b): Restormer / DiffIR "BiasFree" (the mean is not subtracted from x). The official
    /// layer has no bias; an offset is accepted so that DiffIR's IPR modulation `x·k1 + k2` folds into the norm.
    case biasFree
}

/// Layer normalisation over the last dimension (on NHWC, that is over channels per pixel).
/// - Parameters:
///   - weight: the gain w, [C] (nil means 1).
///   - bias: [C] or nil.
///   - epsilon: 1e-5 for PyTorch's default, Restormer and RDDM; 1e-6 where a model says so.
public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor? = nil, epsilon: Float,
                      variant: LayerNormVariant = .centered) throws -> Tensor {
    let op = "layerNorm"
    let c = x.shape.last!
    try requireCount(weight, c, "[\(c)]", op)
    try requireCount(bias, c, "[\(c)]", op)
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
