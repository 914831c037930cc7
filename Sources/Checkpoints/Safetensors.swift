import Foundation

/// The safetensors format: an 8-byte little-endian header length, a JSON header mapping names to
/// `{dtype, shape, data_offsets}` (plus an optional `__metadata__` string map), then the tensor bytes.
public enum Safetensors {
    /// Headers larger than this are refused (the reference implementation's own bound).
    public static let maximumHeaderBytes = 100 << 20

    /// One tensor as the header describes it; `dataRange` is relative to the start of the data section.
    public struct HeaderEntry: Sendable, Equatable {
        public let name: String
        public let elementType: ElementType
        public let shape: [Int]
        public let dataRange: Range<Int>
    }

    /// A parsed and validated header.
    public struct Header: Sendable {
        /// Tensors in header order.
        public let entries: [HeaderEntry]
        public let metadata: [String: String]
        /// Byte offset of the data section within the file.
        public let dataStart: Int
    }

    /// True when `file` plausibly starts with a safetensors header (a sane length, then `{`).
    public static func looksLikeSafetensors(_ file: MappedBytes) -> Bool {
        guard file.count >= 10 else { return false }
        let length = UInt64(littleEndian: file.base.loadUnaligned(as: UInt64.self))
        return length >= 2 && length <= UInt64(file.count - 8) && file.base.load(fromByteOffset: 8, as: UInt8.self) == UInt8(ascii: "{")
    }

    /// Parses and validates the header of a file of `fileSize` bytes whose first bytes are `prefix`:
    /// the JSON size is bounded, dtypes known, each shape's byte size matches its offsets, and the
    /// tensors tile the data section exactly (no gaps, overlaps, or bytes past the end).
    public static func parseHeader(_ prefix: UnsafeRawBufferPointer, fileSize: Int) throws -> Header {
        func fail(_ reason: String) -> CheckpointError { .invalidSafetensors(reason: reason) }
        guard prefix.count >= 8, fileSize >= 8 else { throw fail("shorter than its 8-byte header length") }
        let declared = UInt64(littleEndian: prefix.loadUnaligned(as: UInt64.self))
        guard declared <= UInt64(maximumHeaderBytes) else { throw fail("header length \(declared) exceeds \(maximumHeaderBytes) bytes") }
        let headerLength = Int(declared)
        guard headerLength <= fileSize - 8, 8 + headerLength <= prefix.count else { throw fail("header length \(declared) runs past the end of the file") }
        let dataStart = 8 + headerLength, dataSize = fileSize - dataStart
        guard case .object(let members) = try JSONValue.parse(UnsafeRawBufferPointer(rebasing: prefix[8..<dataStart])) else {
            throw fail("header is not a JSON object")
        }
        var entries: [HeaderEntry] = []
        var metadata: [String: String] = [:]
        for (name, value) in members {
            if name == "__metadata__" {
                guard case .object(let pairs) = value else { throw fail("__metadata__ is not an object") }
                for (key, item) in pairs {
                    guard case .string(let text) = item else { throw fail("__metadata__ value for \(key.debugDescription) is not a string") }
                    metadata[key] = text
                }
                continue
            }
            guard case .object(let fields) = value else { throw fail("entry \(name.debugDescription) is not an object") }
            func field(_ key: String) -> JSONValue? { fields.first { $0.0 == key }?.1 }
            guard case .string(let dtype)? = field("dtype"), let type = ElementType(safetensorsName: dtype) else {
                throw fail("unknown or missing dtype for \(name.debugDescription)")
            }
            guard case .array(let dims)? = field("shape"), dims.count <= 64 else { throw fail("missing or bad shape for \(name.debugDescription)") }
            let shape = try dims.map { dim -> Int in
                guard case .number(_, true, let extent?) = dim, extent >= 0 else { throw fail("bad shape for \(name.debugDescription)") }
                return extent
            }
            guard case .array(let offsets)? = field("data_offsets"), offsets.count == 2,
                  case .number(_, true, let begin?) = offsets[0], case .number(_, true, let end?) = offsets[1],
                  begin >= 0, begin <= end else { throw fail("bad data_offsets for \(name.debugDescription)") }
            guard end <= dataSize else { throw fail("\(name.debugDescription) ends at byte \(end), past the data section of \(dataSize) bytes") }
            guard let count = TensorLayout.contiguous(shape).elementCount,
                  case let (bytes, overflow) = count.multipliedReportingOverflow(by: type.byteCount), !overflow, bytes == end - begin else {
                throw fail("\(name.debugDescription) has shape \(shape) of \(type.safetensorsName) but \(end - begin) bytes")
            }
            entries.append(HeaderEntry(name: name, elementType: type, shape: shape, dataRange: begin..<end))
        }
        var covered = 0
        for entry in entries.sorted(by: { ($0.dataRange.lowerBound, $0.dataRange.upperBound) < ($1.dataRange.lowerBound, $1.dataRange.upperBound) }) {
            guard entry.dataRange.lowerBound == covered else {
                throw fail(entry.dataRange.lowerBound < covered ? "\(entry.name.debugDescription) overlaps another tensor" : "gap before \(entry.name.debugDescription)")
            }
            covered = entry.dataRange.upperBound
        }
        guard covered == dataSize else { throw fail("\(dataSize - covered) bytes after the last tensor") }
        return Header(entries: entries, metadata: metadata, dataStart: dataStart)
    }

    /// Reads a mapped safetensors file: its tensors (in header order) and metadata.
    public static func read(_ file: MappedBytes) throws -> (tensors: [(String, StoredTensor)], metadata: [String: String]) {
        let header = try parseHeader(file.span(0..<file.count), fileSize: file.count)
        let tensors = try header.entries.map { entry -> (String, StoredTensor) in
            let range = (header.dataStart + entry.dataRange.lowerBound)..<(header.dataStart + entry.dataRange.upperBound)
            return (entry.name, try StoredTensor(elementType: entry.elementType, layout: .contiguous(entry.shape), file: file, storageRange: range, key: entry.name))
        }
        return (tensors, header.metadata)
    }
}
