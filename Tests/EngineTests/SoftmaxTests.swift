import XCTest
@testable import Engine

/// Row softmax (plain, scaled with a masked bias row, per-row bias) against PyTorch.
final class SoftmaxTests: XCTestCase {
    func testSoftmaxMatchesPyTorch() throws {
        let f = try Fixture("softmax")
        assertClose(try softmax(try f["scores"]), try f["softmax"], relativeTolerance: 1e-5)
    }

    func testScaledMaskedSoftmaxMatchesPyTorch() throws {
        let f = try Fixture("softmax")
        let y = try softmax(try f["scores"], scale: f.float("scale"), bias: try f["bias"])
        assertClose(y, try f["softmax_scaled_masked"], relativeTolerance: 1e-5)
        for row in 0..<y.shape[0] { XCTAssertLessThan(y.data[row * y.shape[1] + 40], 1e-30, "masked column") }
    }

    func testPerRowBiasSoftmaxMatchesPyTorch() throws {
        let f = try Fixture("softmax")
        assertClose(try softmax(try f["scores"], bias: try f["row_bias"]), try f["softmax_row_bias"], relativeTolerance: 1e-5)
    }

    func testRowsSumToOneAndSurviveLargeScores() throws {
        let columns = 13
        var generator = SplitMix(3)
        let x = try Tensor(shape: [5, columns], values: (0..<(5 * columns)).map { _ in 400 * generator.nextFloat() })
        let y = try softmax(x)
        for row in 0..<5 {
            let sum = (0..<columns).reduce(Float(0)) { $0 + y.data[row * columns + $1] }
            XCTAssertEqual(sum, 1, accuracy: 1e-6)
        }
        XCTAssertFalse(y.values.contains { $0.isNaN })
    }
}
