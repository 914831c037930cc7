import XCTest
@testable import Engine

/// Arithmetic, concatenation and broadcast adds against plain scalar loops (C = 20: a remainder of 4).
final class ElementwiseTests: XCTestCase {
    private func random(_ shape: [Int], seed: UInt64) throws -> Tensor {
        var generator = SplitMix(seed)
        let count = shape.reduce(1, *)
        return try Tensor(shape: shape, values: (0..<count).map { _ in generator.nextFloat() })
    }

    func testArithmeticMatchesScalarLoops() throws {
        let a = try random([2, 3, 7, 20], seed: 1), b = try random([2, 3, 7, 20], seed: 2)
        let pairs: [(Tensor, (Float, Float) -> Float)] = [
            (try add(a, b), { $0 + $1 }),
            (try add(a, b, scale: -0.3), { $0 - 0.3 * $1 }),
            (try axpby(0.7, a, -1.5, b), { 0.7 * $0 - 1.5 * $1 }),
            (try subtract(a, b), { $0 - $1 }),
            (try multiply(a, b), { $0 * $1 }),
            (try scale(a, by: 2.5, adding: -1), { x, _ in 2.5 * x - 1 }),
            (try clamp(a, to: -0.5...0.5), { x, _ in min(max(x, -0.5), 0.5) }),
        ]
        for (k, (result, f)) in pairs.enumerated() {
            for i in 0..<a.count {
                XCTAssertEqual(result.data[i], f(a.data[i], b.data[i]), accuracy: 1e-6, "op \(k) element \(i)")
            }
        }
        let c = try a.copy()
        try addInPlace(c, b, scale: 2)
        try multiplyInPlace(c, b)
        scaleInPlace(c, by: 0.5)
        for i in 0..<a.count { XCTAssertEqual(c.data[i], 0.5 * (a.data[i] + 2 * b.data[i]) * b.data[i], accuracy: 1e-6) }
    }

    func testMismatchedShapesThrow() throws {
        let a = try random([1, 2, 3, 4], seed: 1), b = try random([1, 2, 4, 3], seed: 2)
        XCTAssertThrowsError(try add(a, b))
        XCTAssertThrowsError(try multiplyInPlace(a, b))
        XCTAssertThrowsError(try concatenateChannels([a, b]))
        XCTAssertThrowsError(try addChannelVector(a, try random([1, 5], seed: 3)))
    }

    func testConcatenateThenSplitIsIdentity() throws {
        let parts = [try random([2, 3, 5, 7], seed: 1), try random([2, 3, 5, 16], seed: 2), try random([2, 3, 5, 1], seed: 3)]
        let joined = try concatenateChannels(parts)
        XCTAssertEqual(joined.shape, [2, 3, 5, 24])
        XCTAssertEqual(joined.data[7], parts[1].data[0])
        XCTAssertEqual(joined.data[23], parts[2].data[0])
        XCTAssertEqual(joined.data[24], parts[0].data[7])
        let split = try splitChannels(joined, sizes: [7, 16, 1])
        for (p, s) in zip(parts, split) { XCTAssertEqual(p.values, s.values) }
    }

    func testAddChannelVectorBroadcastsOverPixels() throws {
        let x = try random([2, 3, 5, 20], seed: 4), v = try random([2, 20], seed: 5)
        let y = try addChannelVector(x, v)
        for n in 0..<2 { for p in 0..<15 { for c in 0..<20 {
            let i = (n * 15 + p) * 20 + c
            XCTAssertEqual(y.data[i], x.data[i] + v.data[n * 20 + c])
        } } }
        try addChannelVectorInPlace(x, v)
        XCTAssertEqual(x.values, y.values)
    }
}

/// A small deterministic generator for test data (uniform in [−2, 2)).
struct SplitMix {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func nextFloat() -> Float { Float(next() >> 40) / Float(1 << 24) * 4 - 2 }
}
