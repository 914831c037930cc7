import Engine
import XCTest

/// The comparison helpers themselves: a NaN anywhere, or a length mismatch, must fail a "close" assert and a
/// "differs" assert alike (the audit found `Sequence.max()` passing `[1, NaN, 3]` against `[1, 2, 3]`).
final class TestSupportTests: XCTestCase {
    func testNaNAndLengthMismatchNeverPass() throws {
        let ref: [Float] = [1, 2, 3]
        XCTAssertEqual(TestSupport.maxDifference(ref, ref), 0)
        XCTAssertEqual(TestSupport.maxDifference([1, 2, 3.5] as [Float], ref), 0.5)
        for broken: [Float] in [[1, .nan, 3], [.nan, 2, 3], [1, 2, .nan], [1, 2], [1, 2, 3, 4], []] {
            XCTAssertFalse(TestSupport.maxDifference(broken, ref) < 1, "\(broken) passes a close assert")
            XCTAssertFalse(TestSupport.maxDifference(ref, broken) < 1, "\(broken) passes a close assert (swapped)")
            XCTAssertFalse(TestSupport.spread(broken, ref) > 0, "\(broken) passes a differs assert")
        }
        XCTAssertTrue(TestSupport.maxAbs([1, .nan, -3] as [Float]).isNaN)
        XCTAssertEqual(TestSupport.maxAbs([1, -3] as [Float]), 3)
        let a = try Tensor(shape: [1, 3], values: ref), b = try Tensor(shape: [3, 1], values: ref)
        XCTAssertEqual(TestSupport.maxDifference(a, b), .infinity, "same values, different shapes")
    }
}
