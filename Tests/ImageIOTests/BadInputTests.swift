import Engine
import XCTest
@testable import ImageIO

/// Every kind of bad input throws the matching ImageIOError with a one-line message naming the file.
final class BadInputTests: XCTestCase {
    func testMissingFileIsReported() throws {
        let path = try makeTemporaryFolder(self) + "/does-not-exist.png"
        assertThrows(.fileNotFound(path: path), mentioning: [path, "no such file"]) {
            _ = try ImageReader.read(path: path)
        }
    }

    func testFolderInsteadOfFileIsReported() throws {
        let folder = try makeTemporaryFolder(self)
        assertThrowsError(naming: folder, mentioning: ["folder"], {
            if case .unreadableFile = $0 { return true } else { return false }
        }) { _ = try ImageReader.read(path: folder) }
    }

    func testTruncatedPNGIsReported() throws {
        let path = try fixturePath("truncated.png")
        assertThrowsError(naming: path, mentioning: ["truncated"], {
            if case .truncatedFile = $0 { return true } else { return false }
        }) { _ = try ImageReader.read(path: path) }
    }

    func testTruncatedJPEGIsReported() throws {
        let path = try fixturePath("truncated.jpg")
        assertThrowsError(naming: path, mentioning: ["truncated"], {
            if case .truncatedFile = $0 { return true } else { return false }
        }) { _ = try ImageReader.read(path: path) }
    }

    func testPNGWithDamagedImageDataIsReportedAsCorrupt() throws {
        let path = try fixturePath("corrupt_idat.png")
        assertThrowsError(naming: path, mentioning: ["corrupt", "IDAT"], {
            if case .corruptFile = $0 { return true } else { return false }
        }) { _ = try ImageReader.read(path: path) }
    }

    func testPNGWithBadChecksumIsReportedAsCorrupt() throws {
        let path = try fixturePath("corrupt_crc.png")
        assertThrowsError(naming: path, mentioning: ["corrupt", "CRC"], {
            if case .corruptFile = $0 { return true } else { return false }
        }) { _ = try ImageReader.read(path: path) }
    }

    func testJPEGWithGarbageAfterStartMarkerIsReportedAsCorrupt() throws {
        let path = try fixturePath("corrupt.jpg")
        assertThrowsError(naming: path, mentioning: ["corrupt"], {
            if case .corruptFile = $0 { return true } else { return false }
        }) { _ = try ImageReader.read(path: path) }
    }

    func testAbsurdPNGDimensionsAreRefusedBeforeAllocationWithTheLimit() throws {
        let path = try fixturePath("huge_dimensions.png")
        assertThrows(.tooManyPixels(path: path, width: 100_000, height: 100_000, limit: 400_000_000),
                     mentioning: [path, "100000x100000", "400000000"]) {
            _ = try ImageReader.read(path: path)
        }
    }

    func testAbsurdJPEGDimensionsAreRefusedWithTheLimit() throws {
        let path = try fixturePath("huge_dimensions.jpg")
        assertThrows(.tooManyPixels(path: path, width: 60000, height: 60000, limit: 400_000_000),
                     mentioning: ["60000x60000", "400000000"]) {
            _ = try ImageReader.read(path: path)
        }
    }

    func testPixelLimitIsTheCallersChoice() throws {
        let path = try fixturePath("baseline_rgb.jpg")   // 48×32 = 1536 pixels
        assertThrows(.tooManyPixels(path: path, width: 48, height: 32, limit: 1000), mentioning: ["1000"]) {
            _ = try ImageReader.read(path: path, maxPixels: 1000)
        }
        XCTAssertNoThrow(try ImageReader.read(path: path, maxPixels: 1536))
        let png = try fixturePath("interlaced_rgb8.png")   // 19×13 = 247 pixels
        assertThrows(.tooManyPixels(path: png, width: 19, height: 13, limit: 200)) {
            _ = try ImageReader.read(path: png, maxPixels: 200)
        }
    }

    func testZeroWidthPNGIsRefused() throws {
        let path = try fixturePath("zero_width.png")
        assertThrows(.zeroDimensions(path: path, width: 0, height: 16), mentioning: [path, "0x16"]) {
            _ = try ImageReader.read(path: path)
        }
    }

    func testGIFIsReportedAsUnsupportedFormat() throws {
        let path = try fixturePath("not_supported.gif")
        assertThrows(.unsupportedFormat(path: path, detected: "GIF"), mentioning: [path, "GIF", "PNG, JPEG and WebP"]) {
            _ = try ImageReader.read(path: path)
        }
    }

    func testTextFileNamedPNGIsReportedAsUnsupportedFormat() throws {
        let path = try fixturePath("text_named.png")
        assertThrows(.unsupportedFormat(path: path, detected: "text or unknown data"), mentioning: [path]) {
            _ = try ImageReader.read(path: path)
        }
    }

    func testEmptyFileIsReportedAsUnsupportedFormat() throws {
        let path = try fixturePath("empty.png")
        assertThrows(.unsupportedFormat(path: path, detected: "empty file"), mentioning: ["empty"]) {
            _ = try ImageReader.read(path: path)
        }
    }

    func testEveryPrefixOfAPNGAndAJPEGFailsCleanly() throws {
        // Every length from 0 to the full file: never a crash, never a silently gray-filled success.
        for name in ["interlaced_rgba16.png", "palette4_trns.png", "progressive_rgb.jpg", "orientation6.jpg"] {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try fixturePath(name))))
            for length in 0..<bytes.count {
                XCTAssertThrowsError(try ImageReader.decode(Array(bytes.prefix(length)), name: name),
                                     "\(name) cut to \(length) bytes")
            }
            XCTAssertNoThrow(try ImageReader.decode(bytes, name: name))
        }
    }

    /// Seeded (a failure replays): 300 damaged copies of each file either decode to an image of the original's
    /// size and layout or fail with one typed, one-line error that names the file. Never a crash.
    func testRandomByteFlipsNeverCrashTheDecoders() throws {
        var generator = SplitMix64(seed: 20261207)
        for name in ["interlaced_rgb8.png", "baseline_rgb.jpg", "progressive_rgb.jpg"] {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try fixturePath(name))))
            let original = try ImageReader.decode(bytes, name: name)
            var (decoded, refused) = (0, 0)
            for _ in 0..<300 {
                var damaged = bytes
                for _ in 0..<Int.random(in: 1...8, using: &generator) {
                    damaged[Int.random(in: 0..<damaged.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                }
                do {
                    let image = try ImageReader.decode(damaged, name: name)
                    decoded += 1
                    XCTAssertEqual(image.pixels.count, image.width * image.height * image.channels, name)
                    XCTAssertTrue(image.pixels.allSatisfy { $0 >= 0 && $0 <= 1 }, "\(name): samples outside [0, 1]")
                    // A flip may hit the header: any size is then possible, but never a zero or absurd one.
                    XCTAssertTrue(image.width > 0 && image.height > 0 && image.width * image.height <= 1 << 26, "\(name): \(image.width)x\(image.height)")
                } catch {  // decode throws ImageIOError only (typed throws)
                    refused += 1
                    XCTAssertFalse("\(error)".contains("\n"), "\(name): \(error)")
                    XCTAssertTrue("\(error)".contains(name), "\(name): the error names the file: \(error)")
                }
            }
            XCTAssertEqual(decoded + refused, 300)
            XCTAssertGreaterThan(original.width, 0)
        }
    }
}
