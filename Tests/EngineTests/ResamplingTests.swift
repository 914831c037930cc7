import XCTest
@testable import Engine

/// Bicubic resizing, pooling, nearest upsampling, pixel (un)shuffle and padding against PyTorch, plus the
/// round-trip properties.
final class ResamplingTests: XCTestCase {
    func testBicubicMatchesPyTorchUpAndDown() throws {
        let f = try Fixture("bicubic")
        let x = try f["x"]
        for name in ["up3", "up4", "odd", "down", "down_odd"] {
            let expected = try f[name]
            let y = try resizeBicubic(x, height: expected.shape[1], width: expected.shape[2])
            assertClose(y, expected, relativeTolerance: 1e-5, name)
        }
    }

    func testBicubicMatchesPyTorchWithManyChannels() throws {
        let f = try Fixture("bicubic")
        let x = try f["x10"]
        for name in ["x10_up2", "x10_mixed"] {
            let expected = try f[name]
            assertClose(try resizeBicubic(x, height: expected.shape[1], width: expected.shape[2]), expected,
                        relativeTolerance: 1e-5, name)
        }
    }

    func testPoolingAndNearestMatchPyTorch() throws {
        let f = try Fixture("resampling")
        let x = try f["x"]
        assertClose(try averagePool(x, kernel: 2), try f["avg_pool2"], relativeTolerance: 1e-6, "avg 2")
        assertClose(try averagePool(x, kernel: 3), try f["avg_pool3"], relativeTolerance: 1e-6, "avg 3")
        assertClose(try upsampleNearest2x(x), try f["nearest2"], relativeTolerance: 0, "nearest")
    }

    func testPixelShuffleMatchesPyTorch() throws {
        let f = try Fixture("resampling")
        assertClose(try pixelShuffle(try f["x"], factor: 2), try f["pixel_shuffle2"], relativeTolerance: 0, "shuffle")
        assertClose(try pixelUnshuffle(try f["small"], factor: 2), try f["pixel_unshuffle2"], relativeTolerance: 0, "unshuffle")
    }

    func testPaddingMatchesPyTorch() throws {
        let f = try Fixture("resampling")
        let x = try f["x"]
        assertClose(try pad(x, left: 1, right: 2, top: 2, bottom: 1, mode: .reflect), try f["reflect_1_2_2_1"],
                    relativeTolerance: 0, "reflect")
        assertClose(try pad(x, left: 0, right: 1, top: 0, bottom: 1), try f["zero_0_1_0_1"], relativeTolerance: 0, "zero")
        assertClose(try pad(x, left: 2, right: 1, top: 0, bottom: 3, mode: .replicate), try f["replicate_2_1_0_3"],
                    relativeTolerance: 0, "replicate")
        XCTAssertThrowsError(try pad(x, left: 9, right: 0, top: 0, bottom: 0, mode: .reflect))
    }

    func testPixelUnshuffleOfShuffleIsIdentity() throws {
        var generator = SplitMix(11)
        let x = try Tensor(shape: [2, 3, 5, 27], values: (0..<(2 * 3 * 5 * 27)).map { _ in generator.nextFloat() })
        let shuffled = try pixelShuffle(x, factor: 3)
        XCTAssertEqual(shuffled.shape, [2, 9, 15, 3])
        XCTAssertEqual(try pixelUnshuffle(shuffled, factor: 3).values, x.values)
    }

    func testAveragePoolOfNearestUpsampleIsIdentity() throws {
        var generator = SplitMix(12)
        let x = try Tensor(shape: [2, 5, 7, 11], values: (0..<(2 * 5 * 7 * 11)).map { _ in generator.nextFloat() })
        assertClose(try averagePool(try upsampleNearest2x(x), kernel: 2), x, relativeTolerance: 1e-7)
    }

    func testBicubicToTheSameSizeIsIdentity() throws {
        var generator = SplitMix(13)
        let x = try Tensor(shape: [1, 6, 9, 3], values: (0..<(6 * 9 * 3)).map { _ in generator.nextFloat() })
        assertClose(try resizeBicubic(x, height: 6, width: 9), x, relativeTolerance: 1e-7)
    }
}
