import Foundation
import XCTest
@testable import ImageIO

/// Expected integer samples written by Tools/reference/make_image_fixtures.py (`*.bin`): "IMGX", then
/// width, height, channels, bits (little-endian UInt32), then uint8 or little-endian uint16 samples.
struct ExpectedPixels {
    let width: Int
    let height: Int
    let channels: Int
    let bits: Int
    let samples: [Int]

    init(_ name: String) throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try fixturePath(name))))
        guard bytes.count >= 20, bytes.prefix(4).elementsEqual("IMGX".utf8) else {
            throw FixtureError("\(name): not an IMGX file")
        }
        func uint32(_ offset: Int) -> Int {
            (0..<4).reduce(0) { $0 | Int(bytes[offset + $1]) << (8 * $1) }
        }
        width = uint32(4)
        height = uint32(8)
        channels = uint32(12)
        bits = uint32(16)
        let body = bytes[20...]
        if bits == 16 {
            samples = stride(from: body.startIndex, to: body.endIndex, by: 2).map {
                Int(bytes[$0]) | Int(bytes[$0 + 1]) << 8
            }
        } else {
            samples = body.map(Int.init)
        }
        guard samples.count == width * height * channels else { throw FixtureError("\(name): wrong length") }
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The path of a fixture file in the test bundle.
func fixturePath(_ name: String) throws -> String {
    guard let url = Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil) else {
        throw FixtureError("missing fixture \(name): run Tools/reference/make_image_fixtures.py")
    }
    return url.path
}

/// The image's samples as integers at `bits` (exact for images decoded from 8/16-bit files).
func integerSamples(_ image: Image, bits: Int) -> [Int] {
    bits == 16 ? ImageWriter.quantize(image.pixels, as: UInt16.self).map(Int.init)
        : ImageWriter.quantize(image.pixels, as: UInt8.self).map(Int.init)
}

/// Asserts that `image` has the expected shape and every sample is within `tolerance` levels.
func assertMatches(_ image: Image, _ expected: ExpectedPixels, tolerance: Int = 0,
                   file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(image.width, expected.width, "width", file: file, line: line)
    XCTAssertEqual(image.height, expected.height, "height", file: file, line: line)
    XCTAssertEqual(image.channels, expected.channels, "channels", file: file, line: line)
    guard image.pixels.count == expected.samples.count else {
        return XCTFail("sample count \(image.pixels.count) != \(expected.samples.count)", file: file, line: line)
    }
    let actual = integerSamples(image, bits: expected.bits)
    let worst = zip(actual, expected.samples).map { abs($0 - $1) }.max() ?? 0
    XCTAssertLessThanOrEqual(worst, tolerance, "largest sample difference", file: file, line: line)
}

/// Asserts that `body` throws exactly `expected`, and that its description names the file.
func assertThrows(_ expected: ImageIOError, mentioning fragments: [String] = [],
                  file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("expected \(expected) but nothing was thrown", file: file, line: line)
    } catch let error as ImageIOError {
        XCTAssertEqual(error, expected, file: file, line: line)
        XCTAssertFalse(error.description.contains("\n"), "description is one line", file: file, line: line)
        for fragment in fragments {
            XCTAssertTrue(error.description.contains(fragment), "\"\(error.description)\" lacks \"\(fragment)\"",
                          file: file, line: line)
        }
    } catch {
        XCTFail("unexpected error \(error)", file: file, line: line)
    }
}

/// Asserts that `body` throws an ImageIOError matching `predicate`, with a one-line description that
/// names the file and contains every fragment.
func assertThrowsError(naming path: String, mentioning fragments: [String] = [],
                       file: StaticString = #filePath, line: UInt = #line,
                       _ predicate: (ImageIOError) -> Bool, _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("expected an error but nothing was thrown", file: file, line: line)
    } catch let error as ImageIOError {
        XCTAssertTrue(predicate(error), "unexpected error case: \(error)", file: file, line: line)
        XCTAssertTrue(error.description.hasPrefix(path + ":"), "\(error.description)", file: file, line: line)
        XCTAssertFalse(error.description.contains("\n"), "description is one line", file: file, line: line)
        for fragment in fragments {
            XCTAssertTrue(error.description.contains(fragment), "\"\(error.description)\" lacks \"\(fragment)\"",
                          file: file, line: line)
        }
    } catch {
        XCTFail("unexpected error \(error)", file: file, line: line)
    }
}

/// A fresh temporary folder, removed when the test ends.
func makeTemporaryFolder(_ testCase: XCTestCase) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("imageio-tests-" + UUID().uuidString).path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    testCase.addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
    return path
}

/// The names in a folder, sorted (hidden files included).
func folderContents(_ path: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: path).sorted()
}

/// A deterministic image whose samples are exact multiples of 1/maximum.
func syntheticImage(width: Int, height: Int, channels: Int, maximum: Int, seed: Int = 1) -> Image {
    var state = UInt64(truncatingIfNeeded: seed) &* 0x9E37_79B9_7F4A_7C15 | 1
    let pixels = (0..<(width * height * channels)).map { index -> Float in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        let level = index % 7 == 0 ? [0, maximum][index % 2] : Int((state >> 33) % UInt64(maximum + 1))
        return Float(level) / Float(maximum)
    }
    return Image(width: width, height: height, channels: channels, pixels: pixels,
                 sourceBitDepth: maximum > 255 ? 16 : 8)
}
