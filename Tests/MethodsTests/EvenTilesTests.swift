import Engine
import XCTest
@testable import Tiling

/// DiffIR's tiles: the fewest tiles of at most maxTile that overlap by at least `overlap`, one size, evenly spread.
final class EvenTilesTests: XCTestCase {
    func testLayoutsCoverTheAxisWithTheFewestEqualTiles() throws {
        for (maxTile, overlap, multiple) in [(128, 32, 8), (32, 8, 8), (64, 0, 16), (96, 40, 32)] {
            let tiles = try EvenTiles(maxTile: maxTile, overlap: overlap, multiple: multiple)
            for length in stride(from: multiple, through: 700, by: multiple) {
                let (size, starts) = tiles.layout(length)
                let label = "max \(maxTile) overlap \(overlap) ×\(multiple), length \(length): \(size) at \(starts)"
                if length <= maxTile { XCTAssertEqual(starts, [0], label); XCTAssertEqual(size, length, label); continue }
                XCTAssertLessThanOrEqual(size, maxTile, label)
                XCTAssertEqual(size % multiple, 0, label)
                XCTAssertEqual(starts.first, 0, label)
                XCTAssertEqual(starts.last, length - size, label)
                for (a, b) in zip(starts, starts.dropFirst()) {
                    XCTAssertGreaterThan(b, a, label)
                    XCTAssertGreaterThanOrEqual(a + size - b, overlap, label)  // neighbours overlap by at least `overlap`
                }
                // One tile fewer could not cover the axis with that overlap.
                let fewer = starts.count - 1
                XCTAssertGreaterThan(length, fewer * maxTile - (fewer - 1) * overlap, label)
            }
        }
    }

    func testTilesMergeBackToTheImageWhenTheRestoreIsTheIdentity() throws {
        let tiles = try EvenTiles(maxTile: 32, overlap: 8, multiple: 8)
        let image = try Tensor(uninitializedShape: [1, 72, 40, 2])
        for i in 0..<image.count { image.data[i] = Float(i % 97) / 97 }
        var seen = 0
        let merged = try tiles.run(image, scale: 1, outputChannels: 2) { patch, _, count in
            seen = count
            return try patch.copy()
        }
        XCTAssertEqual(seen, 3 * 2)
        for i in 0..<image.count { XCTAssertEqual(merged.data[i], image.data[i], accuracy: 1e-6) }
        XCTAssertThrowsError(try EvenTiles(maxTile: 36, overlap: 8, multiple: 8))
        XCTAssertThrowsError(try EvenTiles(maxTile: 32, overlap: 32, multiple: 8))
    }
}
