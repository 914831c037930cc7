import XCTest
@testable import ImageIO

/// PNG layouts written by the fixture script's own PNG writer, checked against its expected samples.
final class PNGDecodingTests: XCTestCase {
    func testSubEightBitGrayIsExpandedToEightBits() throws {
        for bits in [1, 2, 4] {
            let image = try ImageReader.read(path: try fixturePath("gray\(bits).png"))
            assertMatches(image, try ExpectedPixels("gray\(bits).bin"))
            XCTAssertEqual(image.sourceBitDepth, bits)
            XCTAssertFalse(image.hasAlpha)
        }
    }

    func testFourBitPaletteWithTransparencyDecodesToRGBA() throws {
        let image = try ImageReader.read(path: try fixturePath("palette4_trns.png"))
        assertMatches(image, try ExpectedPixels("palette4_trns.bin"))
        XCTAssertTrue(image.hasAlpha)
        XCTAssertEqual(image.sourceBitDepth, 8)
    }

    func testEightBitPaletteDecodesToRGB() throws {
        let image = try ImageReader.read(path: try fixturePath("palette8.png"))
        assertMatches(image, try ExpectedPixels("palette8.bin"))
        XCTAssertEqual(image.channels, 3)
    }

    func testGrayWithTransparentKeyColourDecodesToGrayAlpha() throws {
        let image = try ImageReader.read(path: try fixturePath("gray8_trns.png"))
        assertMatches(image, try ExpectedPixels("gray8_trns.bin"))
        XCTAssertEqual(image.channels, 2)
    }

    func testSixteenBitPNGIsReadInHostByteOrder() throws {
        let image = try ImageReader.read(path: try fixturePath("rgb16.png"))
        assertMatches(image, try ExpectedPixels("rgb16.bin"))
        XCTAssertEqual(image.sourceBitDepth, 16)
        // The first pixel holds 0x0102, 0xFF00, 0x00FF: swapped bytes would give 0x0201, 0x00FF, 0xFF00.
        XCTAssertEqual(integerSamples(image, bits: 16).prefix(3), [0x0102, 0xFF00, 0x00FF])
    }

    func testInterlacedEightBitRGBPNGDecodes() throws {
        let image = try ImageReader.read(path: try fixturePath("interlaced_rgb8.png"))
        assertMatches(image, try ExpectedPixels("interlaced_rgb8.bin"))
    }

    func testInterlacedSixteenBitRGBAPNGDecodes() throws {
        let image = try ImageReader.read(path: try fixturePath("interlaced_rgba16.png"))
        assertMatches(image, try ExpectedPixels("interlaced_rgba16.bin"))
        XCTAssertTrue(image.hasAlpha)
    }

    func testTextChunksWrittenByPillowAreRead() throws {
        let image = try ImageReader.read(path: try fixturePath("text_chunks.png"))
        XCTAssertEqual(image.text["Title"], "Plain ASCII title")
        XCTAssertEqual(image.text["Comment"], "caf\u{e9} in Latin-1")
        XCTAssertEqual(image.text["Zipped"], String(repeating: "zTXt ", count: 40))
        XCTAssertEqual(image.text["DiffusionRestore"], "{\"model\":\"\u{fc}\u{2192}\u{732b}\",\"steps\":20}")
    }

    func testFormatIsDetectedFromMagicBytesNotExtension() throws {
        // gray.jpg saved under a .png name decodes as the JPEG it is.
        let image = try ImageReader.read(path: try fixturePath("jpeg_named.png"))
        assertMatches(image, try ExpectedPixels("gray.bin"), tolerance: 1)
        XCTAssertEqual(DetectedImageFormat(leadingBytes: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), .png)
        XCTAssertEqual(DetectedImageFormat(leadingBytes: [0xFF, 0xD8, 0xFF, 0xE0]), .jpeg)
        XCTAssertEqual(DetectedImageFormat(leadingBytes: Array("GIF89a".utf8)), .unsupported("GIF"))
    }
}
