// Vectorised transcendental functions on SIMD8<Float> (one AVX2 register), plus the load/store and loop
// helpers that every Swift kernel of the engine shares. libm's expf/erff are scalar calls, and Swift never
// fuses a * b + c, so these are written with explicit `addingProduct` (FMA) and bit tricks instead.

/// The vector type of the Swift kernels: eight Float32 lanes, one ymm register with `-target-cpu haswell`.
public typealias FloatVector = SIMD8<Float>

// MARK: - Loads, stores and loops

extension SIMD8 where Scalar == Float {
    /// Eight consecutive floats from `pointer` (no alignment needed).
    @inline(__always)
    init(loading pointer: UnsafePointer<Float>) {
        self = UnsafeRawPointer(pointer).loadUnaligned(as: SIMD8<Float>.self)
    }

    /// The first `count` (< 8) floats from `pointer`, the other lanes zero.
    @inline(__always)
    init(loading pointer: UnsafePointer<Float>, count: Int) {
        self = .zero
        for lane in 0..<count { self[lane] = pointer[lane] }
    }

    /// Writes the eight lanes to `pointer` (no alignment needed).
    @inline(__always)
    func store(to pointer: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(pointer).storeBytes(of: self, as: SIMD8<Float>.self)
    }

    /// Writes the first `count` lanes to `pointer`.
    @inline(__always)
    func store(to pointer: UnsafeMutablePointer<Float>, count: Int) {
        for lane in 0..<count { pointer[lane] = self[lane] }
    }

    /// Lane-wise maximum, as compare + blend (the stdlib's `pointwiseMax` is an out-of-line call).
    @inline(__always)
    func clamped(below low: SIMD8<Float>) -> SIMD8<Float> { replacing(with: low, where: self .< low) }

    /// Lane-wise minimum, as compare + blend.
    @inline(__always)
    func clamped(above high: SIMD8<Float>) -> SIMD8<Float> { replacing(with: high, where: self .> high) }
}

/// Applies `body` to `count` floats from `source`, writing to `destination` (which may equal `source`):
/// full vectors first, then one zero-padded partial vector, so `body` is the only definition of the op.
@inline(__always)
func mapVectors(_ source: UnsafePointer<Float>, _ destination: UnsafeMutablePointer<Float>, count: Int,
                _ body: (FloatVector) -> FloatVector) {
    var i = 0
    while i &+ 8 <= count {
        body(FloatVector(loading: source + i)).store(to: destination + i)
        i = i &+ 8
    }
    if i < count {
        body(FloatVector(loading: source + i, count: count &- i)).store(to: destination + i, count: count &- i)
    }
}

/// Like `mapVectors`, with two inputs.
@inline(__always)
func mapVectors(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ destination: UnsafeMutablePointer<Float>,
                count: Int, _ body: (FloatVector, FloatVector) -> FloatVector) {
    var i = 0
    while i &+ 8 <= count {
        body(FloatVector(loading: a + i), FloatVector(loading: b + i)).store(to: destination + i)
        i = i &+ 8
    }
    if i < count {
        let rest = count &- i
        body(FloatVector(loading: a + i, count: rest), FloatVector(loading: b + i, count: rest))
            .store(to: destination + i, count: rest)
    }
}

/// Elements per parallel chunk of a streaming element-wise kernel (64 KiB of Float32).
let elementwiseGrain = 16_384

// MARK: - Exponential and friends

/// Vectorised e^x (Cephes `expf`): x = n·ln 2 + r with |r| ≤ ln 2 / 2, a degree-6 polynomial for e^r, and
/// 2^n built in the exponent bits. Relative error ≤ 2e-7 on [−87, 88]. Inputs are clamped to
/// [−87.3, 88.37], so the result is never 0 or ∞ (e^−∞ gives ≈ 1e−38, which is what softmax masks need);
/// NaN propagates.
@inline(__always)
public func exp(_ x: FloatVector) -> FloatVector {
    let x = x.clamped(above: FloatVector(repeating: 88.3762626647949)).clamped(below: FloatVector(repeating: -87.3))
    // Round x·log2(e) to the nearest integer with the 1.5·2^23 trick: the integer lands in the low mantissa bits.
    let magic = FloatVector(repeating: 12_582_912)
    let shifted = magic.addingProduct(x, FloatVector(repeating: 1.44269504088896341))
    let n = shifted - magic
    // r = x − n·ln 2, with ln 2 split in two for an exact first product (Cody–Waite).
    var r = x.addingProduct(n, FloatVector(repeating: -0.693359375))
    r = r.addingProduct(n, FloatVector(repeating: 2.12194440e-4))
    var p = FloatVector(repeating: 1.9875691500e-4)
    p = FloatVector(repeating: 1.3981999507e-3).addingProduct(p, r)
    p = FloatVector(repeating: 8.3334519073e-3).addingProduct(p, r)
    p = FloatVector(repeating: 4.1665795894e-2).addingProduct(p, r)
    p = FloatVector(repeating: 1.6666665459e-1).addingProduct(p, r)
    p = FloatVector(repeating: 5.0000001201e-1).addingProduct(p, r)
    let r2 = r * r
    let er = (r + 1).addingProduct(p, r2)
    // 2^n: (n + 127) << 23 as a float bit pattern; n ∈ [−126, 127] after the clamp.
    let nBits = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
    let scale = unsafeBitCast((nBits &+ 127) &<< 23, to: FloatVector.self)
    return er * scale
}

/// Vectorised logistic sigmoid 1 / (1 + e^−x).
@inline(__always)
public func sigmoid(_ x: FloatVector) -> FloatVector {
    1 / (1 + exp(-x))
}

/// Vectorised SiLU (swish) x · σ(x).
@inline(__always)
public func silu(_ x: FloatVector) -> FloatVector {
    x / (1 + exp(-x))
}

/// Vectorised tanh, 1 − 2 / (e^2x + 1); for |x| < 0.2 the odd Taylor series to x⁹ instead (the first form
/// loses relative precision near 0), so the relative error stays ≤ 1e-6 everywhere.
@inline(__always)
public func tanh(_ x: FloatVector) -> FloatVector {
    let large = 1 - 2 / (exp(x + x) + 1)
    let x2 = x * x
    var p = FloatVector(repeating: 62.0 / 2835.0)
    p = FloatVector(repeating: -17.0 / 315.0).addingProduct(p, x2)
    p = FloatVector(repeating: 2.0 / 15.0).addingProduct(p, x2)
    p = FloatVector(repeating: -1.0 / 3.0).addingProduct(p, x2)
    let small = x.addingProduct(x * x2, p)
    return large.replacing(with: small, where: x2 .< 0.04)
}

// MARK: - Error function and GELU

/// Vectorised erf: the rational minimax approximation of Eigen and XLA (odd degree-13 numerator, even
/// degree-8 denominator) on x clamped to [−4, 4]; absolute error ≤ 3.5e-7 (6.5e-8 in exact arithmetic, the
/// rest is Float rounding in p / q, 2–5 ulp of the result).
@inline(__always)
public func erf(_ x: FloatVector) -> FloatVector {
    let x = x.clamped(above: FloatVector(repeating: 4)).clamped(below: FloatVector(repeating: -4))
    let x2 = x * x
    var p = FloatVector(repeating: -2.72614225801306e-10)
    p = FloatVector(repeating: 2.77068142495902e-08).addingProduct(p, x2)
    p = FloatVector(repeating: -2.10102402082508e-06).addingProduct(p, x2)
    p = FloatVector(repeating: -5.69250639462346e-05).addingProduct(p, x2)
    p = FloatVector(repeating: -7.34990630326855e-04).addingProduct(p, x2)
    p = FloatVector(repeating: -2.95459980854025e-03).addingProduct(p, x2)
    p = FloatVector(repeating: -1.60960333262415e-02).addingProduct(p, x2)
    var q = FloatVector(repeating: -1.45660718464996e-05)
    q = FloatVector(repeating: -2.13374055278905e-04).addingProduct(q, x2)
    q = FloatVector(repeating: -1.68282697438203e-03).addingProduct(q, x2)
    q = FloatVector(repeating: -7.37332916720468e-03).addingProduct(q, x2)
    q = FloatVector(repeating: -1.42647390514189e-02).addingProduct(q, x2)
    return x * p / q
}

/// Vectorised exact GELU, 0.5 · x · (1 + erf(x / √2)) (PyTorch's `F.gelu` default, not the tanh form).
@inline(__always)
public func gelu(_ x: FloatVector) -> FloatVector {
    let half = x * 0.5
    return half.addingProduct(half, erf(x * 0.70710678118654752))
}

// MARK: - Reductions

extension SIMD8 where Scalar == Float {
    /// The largest lane (a shuffle tree; NaN lanes are ignored unless all are NaN).
    @inline(__always)
    var maximum: Float {
        let a = lowHalf.replacing(with: highHalf, where: highHalf .> lowHalf)
        let b = a.lowHalf.replacing(with: a.highHalf, where: a.highHalf .> a.lowHalf)
        return Swift.max(b[0], b[1])
    }
}
