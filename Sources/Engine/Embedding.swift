// Sinusoidal timestep embeddings (ADM / guided-diffusion and DDPM conventions) and nearest-codebook lookup
// for vector-quantised latents (taming-transformers' VectorQuantizer).

import Foundation

// MARK: - Timestep embedding

/// How a sinusoidal timestep embedding lays out its features.
public struct TimestepEmbeddingStyle: Sendable, Equatable {
    /// Which half comes first.
    public enum Order: Sendable { case cosSin, sinCos }
    /// The denominator d in the frequencies exp(−ln(maxPeriod) · i / d), i < half = dimension / 2.
    public enum Frequencies: Sendable {
        /// d = half, computed as (−ln P · i) / half: ADM / guided-diffusion, diffusers' default.
        case overHalf
        /// d = half − 1, computed as i · (−ln P / (half − 1)): DDPM (pytorch_diffusion), LDM's DDPM UNet.
        case overHalfMinusOne
    }

    public var order: Order
    public var frequencies: Frequencies
    public var maxPeriod: Float

    public init(order: Order, frequencies: Frequencies, maxPeriod: Float = 10_000) {
        self.order = order
        self.frequencies = frequencies
        self.maxPeriod = maxPeriod
    }

    /// guided-diffusion `timestep_embedding`: [cos, sin], frequencies over `half`.
    public static let adm = TimestepEmbeddingStyle(order: .cosSin, frequencies: .overHalf)
    /// DDPM `get_timestep_embedding`: [sin, cos], frequencies over `half − 1`.
    public static let ddpm = TimestepEmbeddingStyle(order: .sinCos, frequencies: .overHalfMinusOne)
}

/// Sinusoidal embeddings [N, dimension] of N (possibly fractional) timesteps; an odd `dimension` gets one
/// zero column at the end, as ADM pads. Frequencies and arguments are rounded to Float exactly where the
/// reference code rounds (it computes in float32), and sin / cos are evaluated in Double, so the result
/// matches PyTorch to ~1e-7 even for t ≈ 1000.
public func timestepEmbedding(_ timesteps: [Float], dimension: Int, style: TimestepEmbeddingStyle = .adm) throws -> Tensor {
    let op = "timestepEmbedding"
    let half = dimension / 2
    guard !timesteps.isEmpty, half >= (style.frequencies == .overHalf ? 1 : 2) else {
        throw EngineError.invalidArgument(op: op, reason: "\(timesteps.count) timesteps, dimension \(dimension)")
    }
    let logPeriod = Foundation.log(Double(style.maxPeriod))
    let frequencies: [Float] = (0..<half).map { i in
        let exponent: Float
        switch style.frequencies {
        case .overHalf: exponent = (Float(-logPeriod) * Float(i)) / Float(half)
        case .overHalfMinusOne: exponent = Float(i) * Float(-logPeriod / Double(half - 1))
        }
        return Float(Foundation.exp(Double(exponent)))
    }
    let result = try Tensor(shape: [timesteps.count, dimension])
    for (n, t) in timesteps.enumerated() {
        let row = result.data + n * dimension
        let (cosOffset, sinOffset) = style.order == .cosSin ? (0, half) : (half, 0)
        for i in 0..<half {
            let argument = Double(t * frequencies[i])
            row[cosOffset + i] = Float(Foundation.cos(argument))
            row[sinOffset + i] = Float(Foundation.sin(argument))
        }
    }
    return result
}

// MARK: - Vector quantisation

/// Replaces each vector along the last dimension of `z` by its nearest codebook entry (squared L2),
/// as taming-transformers' VectorQuantizer does: d = (‖z‖² + ‖e‖²) − 2 z·e, argmin, the first index on ties.
/// - Parameters:
///   - z: [..., D] (NHWC latents: D = channels).
///   - codebook: [K, D].
/// - Returns: the quantised tensor (z's shape) and the K-index chosen for each vector, in order.
public func nearestCodebookEntries(_ z: Tensor, codebook: Tensor) throws -> (quantized: Tensor, indices: [Int]) {
    let op = "nearestCodebookEntries"
    let d = z.shape.last!
    guard codebook.shape.count == 2, codebook.shape[1] == d else {
        throw EngineError.shapeMismatch(op: op, expected: "a codebook [K, \(d)]", found: "\(codebook.shape)")
    }
    let k = codebook.shape[0], vectors = z.count / d
    let entries = UnsafePointer(codebook.data), source = UnsafePointer(z.data)
    var entryNorms = [Float](repeating: 0, count: k)
    for j in 0..<k { entryNorms[j] = dot(entries + j * d, entries + j * d, count: d) }
    let quantized = try Tensor(uninitializedShape: z.shape)
    var indices = [Int](repeating: 0, count: vectors)
    let output = quantized.data
    entryNorms.withUnsafeBufferPointer { norms in
        indices.withUnsafeMutableBufferPointer { chosen in
            let (norms, chosen) = (norms.baseAddress!, chosen.baseAddress!)
            Parallel.forRanges(vectors, grain: max(1, 65_536 / (k * d))) { begin, end in
                for v in begin..<end {
                    let zv = source + v &* d
                    let zNorm = dot(zv, zv, count: d)
                    var best = 0, bestDistance = Float.infinity
                    for j in 0..<k {
                        let distance = (zNorm + norms[j]) - 2 * dot(zv, entries + j &* d, count: d)
                        if distance < bestDistance { bestDistance = distance; best = j }
                    }
                    chosen[v] = best
                    (output + v &* d).update(from: entries + best &* d, count: d)
                }
            }
        }
    }
    return (quantized, indices)
}

/// Σ a[i] · b[i] for i < count, with two vector accumulators.
@inline(__always)
func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
    var s0 = FloatVector.zero, s1 = FloatVector.zero
    var i = 0
    while i &+ 16 <= count {
        s0 = s0.addingProduct(FloatVector(loading: a + i), FloatVector(loading: b + i))
        s1 = s1.addingProduct(FloatVector(loading: a + (i &+ 8)), FloatVector(loading: b + (i &+ 8)))
        i = i &+ 16
    }
    if i &+ 8 <= count {
        s0 = s0.addingProduct(FloatVector(loading: a + i), FloatVector(loading: b + i))
        i = i &+ 8
    }
    var total = (s0 + s1).sum()
    while i < count { total += a[i] * b[i]; i = i &+ 1 }
    return total
}
