import Foundation
import XCTest
@testable import Engine

/// Vectorised exp / erf / tanh against libm, and the tensor activations against PyTorch.
final class ActivationTests: XCTestCase {
    /// Evaluates a vector function on `count` points of [low, high] and returns the largest error against
    /// `reference`, relative (error / |reference|) or absolute.
    private func maxError(_ low: Float, _ high: Float, count: Int = 100_003, relative: Bool,
                          _ f: (FloatVector) -> FloatVector, _ reference: (Double) -> Double) -> Double {
        var worst = 0.0
        var i = 0
        while i < count {
            var v = FloatVector.zero
            for lane in 0..<8 { v[lane] = low + (high - low) * Float(min(i + lane, count - 1)) / Float(count - 1) }
            let y = f(v)
            for lane in 0..<8 {
                let r = reference(Double(v[lane]))
                let e = abs(Double(y[lane]) - r) / (relative ? max(abs(r), 1e-300) : 1)
                worst = max(worst, y[lane].isNaN ? .infinity : e)
            }
            i += 8
        }
        return worst
    }

    func testVectorExpHasRelativeErrorBelow4e7() {
        let e = maxError(-87, 88, relative: true, { Engine.exp($0) }, { Foundation.exp($0) })
        XCTAssertLessThan(e, 4e-7)
        let small = maxError(-1, 1, relative: true, { Engine.exp($0) }, { Foundation.exp($0) })
        XCTAssertLessThan(small, 2e-7)
    }

    func testVectorExpSaturatesWithoutInfinityOrZero() {
        let y = Engine.exp(FloatVector(-.infinity, -1000, -88, 0, 88.5, 1000, .infinity, 1))
        XCTAssertGreaterThan(y[0], 0)
        XCTAssertLessThan(y[0], 1e-37)
        XCTAssertEqual(y[3], 1)
        XCTAssertTrue(y[5].isFinite && y[6].isFinite && y[5] > 1e38)
        XCTAssertTrue(Engine.exp(FloatVector(repeating: .nan))[0].isNaN)
    }

    func testVectorErfHasAbsoluteErrorBelow4e7() {
        let e = maxError(-6, 6, relative: false, { Engine.erf($0) }, { Foundation.erf($0) })
        XCTAssertLessThan(e, 4e-7)
        let centre = maxError(-1, 1, relative: false, { Engine.erf($0) }, { Foundation.erf($0) })
        XCTAssertLessThan(centre, 2.5e-7)
    }

    func testVectorTanhHasRelativeErrorBelow1e6() {
        let e = maxError(-9, 9, relative: true, { Engine.tanh($0) }, { Foundation.tanh($0) })
        XCTAssertLessThan(e, 1e-6)
    }

    func testActivationsMatchPyTorch() throws {
        let f = try Fixture("activations")
        let x = try f["x"]
        assertClose(try silu(x), try f["silu"], relativeTolerance: 1e-5, "silu")
        assertClose(try gelu(x), try f["gelu"], relativeTolerance: 1e-5, "gelu")
        assertClose(try sigmoid(x), try f["sigmoid"], relativeTolerance: 1e-5, "sigmoid")
        assertClose(try leakyReLU(x, slope: f.float("slope")), try f["leaky_relu"], relativeTolerance: 1e-6, "leaky")
        let t = try x.copy()
        parallelMap(t.data, t.data, count: t.count) { Engine.tanh($0) }
        assertClose(t, try f["tanh"], relativeTolerance: 1e-5, "tanh")
    }

    func testInPlaceActivationsEqualOutOfPlace() throws {
        let f = try Fixture("activations")
        let x = try f["x"]
        for (inPlace, outOfPlace): ((Tensor) -> Void, (Tensor) throws -> Tensor) in [
            ({ siluInPlace($0) }, { try silu($0) }),
            ({ geluInPlace($0) }, { try gelu($0) }),
            ({ leakyReLUInPlace($0, slope: 0.1) }, { try leakyReLU($0, slope: 0.1) }),
        ] {
            let y = try x.copy()
            inPlace(y)
            XCTAssertEqual(y.values, try outOfPlace(x).values)
        }
    }
}
