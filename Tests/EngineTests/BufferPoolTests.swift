import XCTest
@testable import Engine

/// Tensors' buffers of 256 KiB–64 MiB go back to `BufferPool` and the next tensor of that byte size takes one
/// of them; the pool stays within its bounds and never hands one buffer to two live tensors.
final class BufferPoolTests: XCTestCase {
    func testReusesBuffersWithinItsBounds() throws {
        BufferPool.drain()
        let shape = [1, 64, 64, 64]  // 1 MiB of Float
        var tensors = try (0..<6).map { _ in try Tensor(uninitializedShape: shape) }
        let addresses = Set(tensors.map { UnsafeMutableRawPointer($0.data) })
        XCTAssertEqual(addresses.count, 6, "live tensors share a buffer")
        tensors.removeAll()
        let held = BufferPool.heldBytes
        XCTAssertLessThanOrEqual(held, min(BufferPool.capacity, BufferPool.peakLiveBytes / 4), "held beyond its bounds")
        guard BufferPool.capacity >= 1 << 20 else { return XCTAssertEqual(held, 0, "the pool is off but holds buffers") }
        XCTAssertGreaterThan(held, 0, "nothing kept for reuse")
        let again = try (0..<6).map { _ in try Tensor(uninitializedShape: shape) }
        let reused = again.filter { addresses.contains(UnsafeMutableRawPointer($0.data)) }
        XCTAssertEqual(reused.count, held >> 20, "each held buffer is handed out once")
        XCTAssertEqual(Set(again.map { UnsafeMutableRawPointer($0.data) }).count, 6, "a held buffer given to two tensors")
        withExtendedLifetime(again) { XCTAssertEqual(BufferPool.heldBytes, 0, "held buffers left while more were made") }
        // Small buffers bypass the pool.
        BufferPool.drain()
        withExtendedLifetime(try Tensor(uninitializedShape: [1, 8, 8, 3])) {}
        XCTAssertEqual(BufferPool.heldBytes, 0, "a 768-byte buffer held")
    }
}
