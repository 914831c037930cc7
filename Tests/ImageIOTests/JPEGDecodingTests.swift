import Engine
import XCTest
@testable import ImageIO

/// JPEG decoding compared with Pillow's decode of the same files (within 1 level).
final class JPEGDecodingTests: XCTestCase {
    func testBaselineJPEGMatchesPillowWithinOneLevel() throws {
        let image = try ImageReader.read(path: try fixturePath("baseline_rgb.jpg"))
        assertMatches(image, try ExpectedPixels("baseline_rgb.bin"), tolerance: 1)
        XCTAssertEqual(image.sourceBitDepth, 8)
        XCTAssertTrue(image.text.isEmpty)
    }

    func testProgressiveJPEGMatchesPillowWithinOneLevel() throws {
        let image = try ImageReader.read(path: try fixturePath("progressive_rgb.jpg"))
        assertMatches(image, try ExpectedPixels("progressive_rgb.bin"), tolerance: 1)
    }

    func testGrayJPEGDecodesToOneChannel() throws {
        let image = try ImageReader.read(path: try fixturePath("gray.jpg"))
        assertMatches(image, try ExpectedPixels("gray.bin"), tolerance: 1)
        XCTAssertEqual(image.channels, 1)
    }

    func testAdobeCMYKJPEGIsConvertedToRGBLikePillow() throws {
        let image = try ImageReader.read(path: try fixturePath("cmyk_adobe.jpg"))
        assertMatches(image, try ExpectedPixels("cmyk_adobe.bin"), tolerance: 1)
        XCTAssertEqual(image.channels, 3)
    }

    func testEXIFOrientationSixRotatesLikePillowExifTranspose() throws {
        let image = try ImageReader.read(path: try fixturePath("orientation6.jpg"))
        XCTAssertEqual([image.width, image.height], [16, 24], "orientation 6 swaps width and height")
        assertMatches(image, try ExpectedPixels("orientation6.bin"), tolerance: 1)
    }

    func testEXIFOrientationThreeRotatesLikePillowExifTranspose() throws {
        let image = try ImageReader.read(path: try fixturePath("orientation3.jpg"))
        assertMatches(image, try ExpectedPixels("orientation3.bin"), tolerance: 1)
    }

    func testEveryEXIFOrientationMatchesPillowExifTranspose() throws {
        for orientation in 1...8 {
            let image = try ImageReader.read(path: try fixturePath("orientation\(orientation).jpg"))
            assertMatches(image, try ExpectedPixels("orientation\(orientation).bin"), tolerance: 1)
        }
    }

    func testBigEndianEXIFOrientationIsApplied() throws {
        let image = try ImageReader.read(path: try fixturePath("orientation6_big_endian.jpg"))
        assertMatches(image, try ExpectedPixels("orientation6_big_endian.bin"), tolerance: 1)
    }

    func testEXIFOrientationCanBeLeftUnapplied() throws {
        let image = try ImageReader.read(path: try fixturePath("orientation6.jpg"), applyEXIFOrientation: false)
        assertMatches(image, try ExpectedPixels("orientation1.bin"), tolerance: 1)
    }

    func testMalformedEXIFIsIgnored() throws {
        let image = try ImageReader.read(path: try fixturePath("malformed_exif.jpg"))
        assertMatches(image, try ExpectedPixels("malformed_exif.bin"), tolerance: 1)
    }

    func testEXIFParserReadsOrientationFromBothByteOrders() {
        let little: [UInt8] = [0x49, 0x49, 0x2A, 0x00, 8, 0, 0, 0, 1, 0,
                               0x12, 0x01, 3, 0, 1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0]
        let big: [UInt8] = [0x4D, 0x4D, 0x00, 0x2A, 0, 0, 0, 8, 0, 1,
                            0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 5, 0, 0, 0, 0, 0, 0]
        XCTAssertEqual(EXIFOrientation.parse(tiff: little), .left)
        XCTAssertEqual(EXIFOrientation.parse(tiff: big), .leftMirrored)
    }

    func testEXIFParserNeverCrashesOnMalformedPayloads() {
        let valid: [UInt8] = [0x49, 0x49, 0x2A, 0x00, 8, 0, 0, 0, 1, 0,
                              0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]
        XCTAssertEqual(EXIFOrientation.parse(tiff: valid), .right)
        // Every truncation of a valid payload.
        for length in 0..<valid.count - 6 {
            XCTAssertNil(EXIFOrientation.parse(tiff: Array(valid.prefix(length))), "prefix \(length)")
        }
        // Out-of-range values, wrong types and counts, offsets beyond the end or negative as Int32.
        var outOfRange = valid
        outOfRange[18] = 9
        XCTAssertNil(EXIFOrientation.parse(tiff: outOfRange))
        var wrongType = valid
        wrongType[12] = 4
        XCTAssertNil(EXIFOrientation.parse(tiff: wrongType))
        var hugeOffset = valid
        hugeOffset[4...7] = [0xFF, 0xFF, 0xFF, 0xFF]
        XCTAssertNil(EXIFOrientation.parse(tiff: hugeOffset))
        var hugeCount = valid
        hugeCount[8...9] = [0xFF, 0xFF]
        hugeCount[10...11] = [0, 0]   // first entry is not the orientation; the rest run off the end
        XCTAssertNil(EXIFOrientation.parse(tiff: hugeCount))
        XCTAssertNil(EXIFOrientation.parse(tiff: Array("MM\0*garbage".utf8)))
        // Random byte strings that start like TIFF.
        // Seeded random byte strings that start like TIFF: the parser answers nil or a valid orientation (1–8).
        var generator = SplitMix64(seed: 8)
        var found = 0
        for _ in 0..<2000 {
            let length = Int.random(in: 0...64, using: &generator)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if length >= 8 {
                bytes[0...3] = Bool.random(using: &generator) ? [0x49, 0x49, 0x2A, 0x00] : [0x4D, 0x4D, 0x00, 0x2A]
                bytes[4...7] = Bool.random(using: &generator) ? [8, 0, 0, 0] : [0, 0, 0, 8]
            }
            if let orientation = EXIFOrientation.parse(tiff: bytes) {
                found += 1
                XCTAssertTrue((1...8).contains(orientation.rawValue), "\(orientation) from \(bytes)")
            }
        }
        XCTAssertLessThan(found, 2000, "random bytes cannot all carry an orientation")
    }
}
