import Engine
import XCTest
@testable import ImageIO

/// WebP through libwebp (lossless exact, lossy close, alpha, gray stored as RGB, the pixel limit before
/// decoding, damaged files) and the text entries every format now carries: PNG iTXt, JPEG COM markers,
/// WebP's "DRtx" chunk — each read back into `Image.text`.
final class WebPAndTextTests: XCTestCase {
    private func image(_ width: Int, _ height: Int, channels: Int, seed: UInt64 = 3) -> Image {
        var random = SplitMix64(seed: seed)
        let pixels = (0..<(width * height * channels)).map { _ in Float(random.next() % 256) / 255 }
        return Image(width: width, height: height, channels: channels, pixels: pixels)
    }

    func testLosslessWebPRoundTripsExactlyWithAndWithoutAlpha() throws {
        for channels in [3, 4] {
            let original = image(37, 21, channels: channels)
            let bytes = try ImageWriter.encode(original, format: .webp(quality: 100))
            XCTAssertEqual(DetectedImageFormat(leadingBytes: bytes), .webp)
            let back = try ImageReader.decode(bytes, name: "x.webp")
            XCTAssertEqual([back.width, back.height, back.channels], [37, 21, channels])
            // Lossless keeps every visible sample; under alpha 0 libwebp may rewrite the (invisible) colour.
            let differing = (0..<(37 * 21)).filter { i in
                let visible = channels == 3 || original.pixels[i * 4 + 3] > 0
                return (0..<channels).contains { c in (c == 3 || visible) && back.pixels[i * channels + c] != original.pixels[i * channels + c] }
            }
            XCTAssertEqual(differing.count, 0, "lossless, \(channels) channels: \(differing.count) pixels differ")
        }
    }

    func testLossyWebPIsCloseAndGrayIsStoredAsRGB() throws {
        var smooth = Image(width: 64, height: 48, channels: 1, repeating: 0)
        for y in 0..<48 { for x in 0..<64 { smooth.pixels[y * 64 + x] = 0.2 + 0.6 * Float(x + y) / 110 } }
        let back = try ImageReader.decode(try ImageWriter.encode(smooth, format: .webp(quality: 90)), name: "x.webp")
        XCTAssertEqual(back.channels, 3, "WebP has no gray mode")
        let worst = (0..<(64 * 48)).map { i in (0..<3).map { abs(back.pixels[i * 3 + $0] - smooth.pixels[i]) }.max()! }.max()!
        XCTAssertLessThan(worst, 0.05)
    }

    func testTextRoundTripsThroughEveryFormat() throws {
        let report = #"{"method":"ddnm","output":"/tmp/ö ü.png","psnr_db":25.5}"#
        let original = image(16, 8, channels: 3)
        for format in [ImageFileFormat.png(bits: 8), .jpeg(quality: 90), .webp(quality: 80), .webp(quality: 100)] {
            let bytes = try ImageWriter.encode(original, format: format, text: ["DiffusionRestore": report, "b": "second"])
            let back = try ImageReader.decode(bytes, name: "x")
            XCTAssertEqual(back.text["DiffusionRestore"], report, "\(format)")
            XCTAssertEqual(back.text["b"], "second", "\(format)")
        }
        XCTAssertThrowsError(try ImageWriter.encode(original, format: .jpeg(quality: 90), text: ["k": String(repeating: "x", count: 70_000)]),
                             "a JPEG comment is at most 64 KiB")
    }

    func testWebPPixelLimitAndDamagedFilesFailCleanly() throws {
        let bytes = try ImageWriter.encode(image(40, 30, channels: 3), format: .webp(quality: 80))
        assertThrows(.tooManyPixels(path: "big.webp", width: 40, height: 30, limit: 1000), mentioning: ["big.webp"]) {
            _ = try ImageReader.decode(bytes, name: "big.webp", maxPixels: 1000)
        }
        var random = SplitMix64(seed: 9)
        for cut in [12, 20, 30, bytes.count / 2, bytes.count - 1] {
            XCTAssertThrowsError(try ImageReader.decode(Array(bytes.prefix(cut)), name: "cut.webp"), "cut at \(cut)")
        }
        for _ in 0..<200 {  // random damage after the header: an error or an image, never a crash
            var damaged = bytes
            for _ in 0..<8 { damaged[12 + Int(random.next() % UInt64(damaged.count - 12))] = UInt8(random.next() % 256) }
            _ = try? ImageReader.decode(damaged, name: "damaged.webp")
        }
    }
}
