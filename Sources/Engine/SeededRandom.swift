import Foundation

/// The project's one seedable generator: SplitMix64 (Steele, Lea & Flood 2014), with Box–Muller normals.
/// Same seed → same sequence on every machine; every random draw of a run flows from an explicit seed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Two independent standard normals (Box–Muller), in Float64.
    public mutating func nextGaussianPair() -> (Double, Double) {
        let u1 = Double(next() >> 11 | 1) / Double(1 << 53), u2 = Double(next() >> 11) / Double(1 << 53)
        let r = (-2 * Foundation.log(u1)).squareRoot()
        return (r * Foundation.cos(2 * .pi * u2), r * Foundation.sin(2 * .pi * u2))
    }

    /// One standard normal (the pair's second value is discarded).
    public mutating func nextGaussian() -> Double { nextGaussianPair().0 }
}
