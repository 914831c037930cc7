import Foundation
import XCTest
@testable import ImageIO

/// The row-streamed PNG writer (large outputs): same pixels and text as the in-memory encoder, same safety.
final class StreamedPNGTests: XCTestCase {
    func testStreamedRowsMatchTheInMemoryEncoder() throws {
        let folder = try makeTemporaryFolder(self)
        let (w, h) = (37, 23)
        let pixels = (0..<(w * h * 3)).map { Float(($0 * 7919) % 1000) / 999 }
        for bits in [8, 16] {
            let streamed = folder + "/streamed\(bits).png", whole = folder + "/whole\(bits).png"
            var rowsAsked: [Int] = []
            try ImageWriter.writePNGRows(to: streamed, width: w, height: h, channels: 3, bits: bits, text: ["DiffusionRestore": "{\"a\":1}"]) { y, out in
                rowsAsked.append(y)
                for i in 0..<(w * 3) { out[i] = pixels[y * w * 3 + i] }
            }
            XCTAssertEqual(rowsAsked, Array(0..<h), "rows are asked once each, in order")
            try ImageWriter.write(Image(width: w, height: h, channels: 3, pixels: pixels), to: whole, format: .png(bits: bits))
            let a = try ImageReader.read(path: streamed), b = try ImageReader.read(path: whole)
            XCTAssertEqual(a.pixels, b.pixels, "\(bits)-bit")
            XCTAssertEqual(a.sourceBitDepth, bits)
            XCTAssertEqual(a.text["DiffusionRestore"], "{\"a\":1}")
        }
        // Never over an existing file without overwrite, never over an input.
        XCTAssertThrowsError(try ImageWriter.writePNGRows(to: folder + "/streamed8.png", width: 2, height: 2, channels: 3) { _, _ in })
        XCTAssertThrowsError(try ImageWriter.writePNGRows(to: folder + "/whole8.png", width: 2, height: 2, channels: 3, overwrite: true,
                                                          protecting: [folder + "/whole8.png"]) { _, _ in })
        XCTAssertThrowsError(try ImageWriter.writePNGRows(to: folder + "/bad.png", width: 0, height: 2, channels: 3) { _, _ in })
        XCTAssertEqual(Set(try folderContents(folder)), ["streamed8.png", "whole8.png", "streamed16.png", "whole16.png"])
    }
}
