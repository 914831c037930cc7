import Engine
import Foundation
@testable import Methods
@testable import Operators

/// Helpers shared by the method and operator suites.
enum TestSupport {
    /// Seeded standard normals of `shape`.
    static func random(_ shape: [Int], seed: UInt64) throws -> Tensor {
        var g = SeededGaussian(seed: seed)
        return try g.next(shape: shape)
    }

    /// max|a − b| over all elements, for "close" asserts: +∞ when the shapes differ or either side holds a NaN
    /// (`Sequence.max()` keeps its running maximum against a NaN, and `zip` stops at the shorter side).
    static func maxDifference(_ a: Tensor, _ b: Tensor) -> Float { a.shape == b.shape ? maxDifference(a.values, b.values) : .infinity }

    /// max|a − b| for "close" asserts: +∞ for different lengths, a NaN on either side, or empty inputs.
    static func maxDifference<T: BinaryFloatingPoint>(_ a: [T], _ b: [T]) -> T {
        guard a.count == b.count, !a.isEmpty else { return .infinity }
        var worst: T = 0
        for i in a.indices {
            let d = abs(a[i] - b[i])
            if d.isNaN { return .infinity }
            worst = Swift.max(worst, d)
        }
        return worst
    }

    /// max|a − b| for "these differ" asserts: NaN (which fails every comparison) for different lengths, a NaN
    /// on either side, or empty inputs, so a broken result cannot pass as "different".
    static func spread<T: BinaryFloatingPoint>(_ a: [T], _ b: [T]) -> T {
        let d = maxDifference(a, b)
        return d.isFinite ? d : .nan
    }

    /// max|v|, NaN when v holds a NaN or is empty (so a reference scale built from it fails every bound).
    static func maxAbs<T: BinaryFloatingPoint>(_ v: [T]) -> T {
        guard !v.isEmpty else { return .nan }
        var worst: T = 0
        for x in v {
            if x.isNaN { return .nan }
            worst = Swift.max(worst, abs(x))
        }
        return worst
    }

    /// A channel-major vector or NCHW tensor (the official layout) as an NHWC [1, side, side, channels] tensor.
    static func image(fromCHW v: Tensor, channels: Int = 3, side: Int) throws -> Tensor {
        let out = try Tensor(uninitializedShape: [1, side, side, channels])
        out.setChannelMajor(v.values, batch: 0)
        return out
    }
}
