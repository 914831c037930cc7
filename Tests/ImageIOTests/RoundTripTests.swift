import XCTest
@testable import ImageIO

/// Write-then-read round trips (in a temporary folder) and the Image helpers.
final class RoundTripTests: XCTestCase {
    private func roundTrip(channels: Int, bits: Int) throws {
        let folder = try makeTemporaryFolder(self)
        let maximum = (1 << bits) - 1
        let original = syntheticImage(width: 17, height: 9, channels: channels, maximum: maximum, seed: channels)
        let path = folder + "/round-trip-\(channels)-\(bits).png"
        try ImageWriter.write(original, to: path, format: .png(bits: bits))
        let decoded = try ImageReader.read(path: path)
        XCTAssertEqual([decoded.width, decoded.height, decoded.channels], [17, 9, channels])
        XCTAssertEqual(decoded.sourceBitDepth, bits)
        // float → integer → float → integer gives the same integers.
        XCTAssertEqual(integerSamples(decoded, bits: bits), integerSamples(original, bits: bits),
                       "\(channels) channels, \(bits) bits")
        XCTAssertEqual(decoded.pixels, original.pixels, "\(channels) channels, \(bits) bits: floats identical")
    }

    func testEightBitPNGRoundTripIsExactForGrayGrayAlphaRGBAndRGBA() throws {
        for channels in 1...4 { try roundTrip(channels: channels, bits: 8) }
    }

    func testSixteenBitPNGRoundTripIsExact() throws {
        for channels in 1...4 { try roundTrip(channels: channels, bits: 16) }
    }

    func testDefaultPNGDepthFollowsTheSourceDepth() throws {
        let folder = try makeTemporaryFolder(self)
        let deep = syntheticImage(width: 5, height: 4, channels: 3, maximum: 65535)
        try ImageWriter.write(deep, to: folder + "/deep.png")
        XCTAssertEqual(try ImageReader.read(path: folder + "/deep.png").sourceBitDepth, 16)
        let shallow = syntheticImage(width: 5, height: 4, channels: 3, maximum: 255)
        try ImageWriter.write(shallow, to: folder + "/shallow.PNG")
        XCTAssertEqual(try ImageReader.read(path: folder + "/shallow.PNG").sourceBitDepth, 8)
    }

    func testQuantisationRoundsAndClamps() {
        let samples: [Float] = [-0.5, 0, 0.5 / 255, 0.49 / 255, 0.5, 1, 1.7, .nan, .infinity, -.infinity]
        XCTAssertEqual(ImageWriter.quantize(samples, as: UInt8.self), [0, 0, 1, 0, 128, 255, 255, 0, 255, 0])
        XCTAssertEqual(ImageWriter.quantize([0.5, 1, 0.49 / 65535], as: UInt16.self), [32768, 65535, 0])
    }

    func testTextChunksRoundTripAsITXt() throws {
        let folder = try makeTemporaryFolder(self)
        let report = "{\"model\":\"sd-x4\",\"note\":\"caf\u{e9} \u{2192} \u{732b}\",\"steps\":[1,2,3]}"
        let text = ["DiffusionRestore": report, "Software": "restore 0.1"]
        let path = folder + "/with-text.png"
        try ImageWriter.write(syntheticImage(width: 3, height: 2, channels: 3, maximum: 255), to: path, text: text)
        XCTAssertEqual(try ImageReader.read(path: path).text, text)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let iTXt = Array("iTXtDiffusionRestore".utf8)
        XCTAssertTrue(bytes.indices.contains { bytes[$0...].starts(with: iTXt) }, "the report is an iTXt chunk")
    }

    func testJPEGWriteRespectsQualityAndDropsAlpha() throws {
        let folder = try makeTemporaryFolder(self)
        let expected = try ImageReader.read(path: try fixturePath("baseline_rgb.jpg"))
        let rgba = expected.attachingAlpha(AlphaPlane(width: expected.width, height: expected.height,
                                                      values: [Float](repeating: 0.5, count: expected.width * expected.height)))
        try ImageWriter.write(rgba, to: folder + "/high.jpg", format: .jpeg(quality: 98))
        try ImageWriter.write(rgba, to: folder + "/low.jpeg")   // quality 95 from the extension
        try ImageWriter.write(rgba, to: folder + "/lowest.jpg", format: .jpeg(quality: 10))
        let high = try ImageReader.read(path: folder + "/high.jpg")
        XCTAssertEqual(high.channels, 3)
        let error = zip(integerSamples(high, bits: 8), integerSamples(expected, bits: 8)).map { abs($0 - $1) }
        XCTAssertLessThan(Double(error.reduce(0, +)) / Double(error.count), 3, "quality 98 stays close")
        let size = { (name: String) in try FileManager.default.attributesOfItem(atPath: folder + "/" + name)[.size] as! Int }
        XCTAssertGreaterThan(try size("high.jpg"), try size("lowest.jpg"))
        let gray = try ImageReader.read(path: try fixturePath("gray.jpg"))
        try ImageWriter.write(gray, to: folder + "/gray.jpg")
        XCTAssertEqual(try ImageReader.read(path: folder + "/gray.jpg").channels, 1, "gray stays gray")
    }

    func testSignedRangeConversionRoundTrips() {
        let image = syntheticImage(width: 4, height: 3, channels: 3, maximum: 255)
        let signed = image.toSignedRange()
        XCTAssertEqual(signed.min()!, -1)
        XCTAssertEqual(signed.max()!, 1)
        let back = Image.fromSignedRange(signed, width: 4, height: 3, channels: 3)
        XCTAssertEqual(integerSamples(back, bits: 8), integerSamples(image, bits: 8))
        let clamped = Image.fromSignedRange([-3, 3, .nan], width: 1, height: 1, channels: 3)
        XCTAssertEqual(clamped.pixels, [0, 1, 0])
    }

    func testAlphaSurvivesARestorationOfTheColourPart() {
        let original = syntheticImage(width: 6, height: 5, channels: 4, maximum: 255)
        let (color, alpha) = original.splittingAlpha()
        XCTAssertEqual(color.channels, 3)
        XCTAssertFalse(color.hasAlpha)
        let restored = Image(width: 6, height: 5, channels: 3, pixels: color.pixels.map { 1 - $0 })
        let result = restored.attachingAlpha(alpha)
        XCTAssertEqual(result.channels, 4)
        for index in 0..<30 {
            XCTAssertEqual(result.pixels[index * 4 + 3], original.pixels[index * 4 + 3])
            XCTAssertEqual(result.pixels[index * 4], 1 - original.pixels[index * 4])
        }
        // Upscaled colour: the alpha plane is resampled to match.
        let upscaled = Image(width: 12, height: 10, channels: 3, repeating: 0.5).attachingAlpha(alpha)
        XCTAssertEqual([upscaled.width, upscaled.height, upscaled.channels], [12, 10, 4])
        XCTAssertEqual(Image(width: 2, height: 2, channels: 3, repeating: 0).splittingAlpha().alpha, nil)
    }

    func testGrayExpandsToRGBAndKeepsAlpha() {
        let grayAlpha = Image(width: 2, height: 1, channels: 2, pixels: [0.25, 1, 0.75, 0.5])
        let rgba = grayAlpha.expandingGrayToRGB()
        XCTAssertEqual(rgba.channels, 4)
        XCTAssertEqual(rgba.pixels, [0.25, 0.25, 0.25, 1, 0.75, 0.75, 0.75, 0.5])
        let gray = Image(width: 1, height: 1, channels: 1, pixels: [0.5]).expandingGrayToRGB()
        XCTAssertEqual(gray.pixels, [0.5, 0.5, 0.5])
    }

    func testOrientationTransformsComposeToIdentity() {
        let image = syntheticImage(width: 5, height: 3, channels: 2, maximum: 255)
        // Rotating right four times, or mirroring twice, returns the original.
        var rotated = image
        for _ in 0..<4 { rotated = rotated.applyingOrientation(.right) }
        XCTAssertEqual(rotated, image)
        XCTAssertEqual(image.applyingOrientation(.leftMirrored).applyingOrientation(.leftMirrored), image)
        XCTAssertEqual(image.applyingOrientation(.right).applyingOrientation(.left), image)
    }
}
