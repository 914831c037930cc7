import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A read-only byte buffer: a memory-mapped file (never read whole) or a private copy of some bytes.
///
/// Tensor records keep a reference to the buffer they point into, so the mapping lives as long as any
/// tensor that needs it.
public final class MappedBytes: @unchecked Sendable {
    /// The first byte; valid for `count` bytes while this object lives.
    public let base: UnsafeRawPointer
    /// The number of bytes.
    public let count: Int
    private let isMapped: Bool

    /// Maps the file at `path` read-only.
    public init(mapping path: String) throws {
        // O_NONBLOCK: opening a FIFO must not wait for a writer (it is then refused as not a regular file).
        let descriptor = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else { throw CheckpointError.io(path: path, reason: "cannot open the file: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw CheckpointError.io(path: path, reason: "cannot stat the file") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw CheckpointError.io(path: path, reason: "not a regular file") }
        let size = Int(info.st_size)
        if size == 0 {
            base = UnsafeRawPointer(UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 64))
            count = 0
            isMapped = false
            return
        }
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0), address != MAP_FAILED else {
            throw CheckpointError.io(path: path, reason: "cannot map the file: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(address)
        count = size
        isMapped = true
    }

    /// A private copy of `bytes` (for tests, fuzzing and small in-memory files).
    public init(copying bytes: UnsafeRawBufferPointer) {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        if let source = bytes.baseAddress, bytes.count > 0 { buffer.copyMemory(from: source, byteCount: bytes.count) }
        base = UnsafeRawPointer(buffer)
        count = bytes.count
        isMapped = false
    }

    /// A private copy of `bytes`.
    public init(copying bytes: [UInt8]) {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        bytes.withUnsafeBytes { raw in
            if let source = raw.baseAddress, raw.count > 0 { buffer.copyMemory(from: source, byteCount: raw.count) }
        }
        base = UnsafeRawPointer(buffer)
        count = bytes.count
        isMapped = false
    }

    deinit {
        if isMapped { munmap(UnsafeMutableRawPointer(mutating: base), count) } else { UnsafeMutableRawPointer(mutating: base).deallocate() }
    }

    /// The bytes in `range`, which the caller has checked lies within the buffer.
    public func span(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        precondition(range.lowerBound >= 0 && range.upperBound <= count)
        return UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count)
    }

    /// Lets the kernel drop the resident pages of `range` from this process (a mapped file only; the pages
    /// stay in the page cache and fault back in if read again). Binding calls it after converting each
    /// tensor, so peak RSS is the converted tensors, not the file plus the converted tensors.
    public func releasePages(_ range: Range<Int>) {
        guard isMapped, range.lowerBound >= 0, range.upperBound <= count else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (range.lowerBound + page - 1) / page * page, end = range.upperBound / page * page
        guard end > start else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED)
    }

    /// True when `offset..<offset+length` lies within the buffer (overflow-safe).
    public func contains(offset: Int, length: Int) -> Bool {
        guard offset >= 0, length >= 0 else { return false }
        let (end, overflow) = offset.addingReportingOverflow(length)
        return !overflow && end <= count
    }
}

/// A bounds-checked little-endian cursor over a byte range; every read throws instead of reading past the end.
struct ByteCursor {
    let bytes: UnsafeRawBufferPointer
    var position: Int
    /// Builds the error for a read past the end.
    let failure: (String) -> CheckpointError

    init(_ bytes: UnsafeRawBufferPointer, at position: Int = 0, failure: @escaping (String) -> CheckpointError) {
        self.bytes = bytes
        self.position = position
        self.failure = failure
    }

    var remaining: Int { bytes.count - position }

    mutating func skip(_ n: Int) throws {
        guard n >= 0, n <= remaining else { throw failure("truncated: needs \(n) more bytes, \(remaining) left") }
        position += n
    }

    mutating func take(_ n: Int) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= remaining else { throw failure("truncated: needs \(n) more bytes, \(remaining) left") }
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + n)])
    }

    mutating func uint8() throws -> UInt8 { try take(1)[0] }

    mutating func littleEndian<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        let raw = try take(MemoryLayout<T>.size)
        return T(littleEndian: raw.loadUnaligned(as: T.self))
    }
}
