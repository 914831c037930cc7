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

    /// max|a − b| over all elements.
    static func maxDifference(_ a: Tensor, _ b: Tensor) -> Float { zip(a.values, b.values).map { abs($0 - $1) }.max() ?? .infinity }

    /// A channel-major vector or NCHW tensor (the official layout) as an NHWC [1, side, side, channels] tensor.
    static func image(fromCHW v: Tensor, channels: Int = 3, side: Int) throws -> Tensor {
        let out = try Tensor(uninitializedShape: [1, side, side, channels])
        out.setChannelMajor(v.values, batch: 0)
        return out
    }
}
