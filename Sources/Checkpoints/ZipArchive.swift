import Foundation

/// A read-only view of a zip archive's *stored* (uncompressed) entries, as PyTorch writes them.
///
/// Our own reader of the end-of-central-directory record (zip64 included) and the central directory. It
/// refuses, rather than guesses: entries whose data lies outside the file or overlaps another entry,
/// names that are absolute or climb out with `..`, duplicate names, more entries than the directory can
/// hold, and compressed entries that are asked for (PyTorch never compresses; we never inflate, so a zip
/// bomb has nothing to expand). Entry data is returned as byte ranges into the mapped file.
public struct ZipArchive {
    /// One entry: where its bytes are in the file, and whether they are stored uncompressed.
    public struct Entry: Sendable {
        public let name: String
        /// Byte range of the entry's data within the file.
        public let dataRange: Range<Int>
        /// The zip compression method (0 = stored).
        public let method: UInt16
    }

    /// The entries by name.
    public let entries: [String: Entry]
    /// The entry names in directory order.
    public let names: [String]

    /// At most this many entries (a checkpoint with a million tensors would still fit).
    public static let maximumEntryCount = 1 << 20

    static let localHeaderSignature: UInt32 = 0x0403_4b50
    static let centralHeaderSignature: UInt32 = 0x0201_4b50
    static let endSignature: UInt32 = 0x0605_4b50
    static let zip64EndSignature: UInt32 = 0x0606_4b50
    static let zip64LocatorSignature: UInt32 = 0x0706_4b50

    /// True when `bytes` starts like a zip archive (a local file header).
    public static func looksLikeZip(_ bytes: MappedBytes) -> Bool {
        bytes.count >= 4 && bytes.base.loadUnaligned(as: UInt32.self) == UInt32(littleEndian: localHeaderSignature)
    }

    /// Parses the archive's directory; throws `CheckpointError.invalidZip` on anything inconsistent.
    public init(_ file: MappedBytes) throws {
        let all = file.span(0..<file.count)
        func fail(_ reason: String) -> CheckpointError { .invalidZip(reason: reason) }

        // End of central directory: the last signature within the final 22 + 65535 bytes.
        guard file.count >= 22 else { throw fail("file too short for a zip directory") }
        var endOffset = -1
        var probe = file.count - 22
        let lowest = max(0, file.count - 22 - 65_535)
        while probe >= lowest {
            if all.loadUnaligned(fromByteOffset: probe, as: UInt32.self) == UInt32(littleEndian: Self.endSignature) {
                endOffset = probe
                break
            }
            probe -= 1
        }
        guard endOffset >= 0 else { throw fail("no end-of-central-directory record (truncated file?)") }
        var end = ByteCursor(all, at: endOffset + 4, failure: fail)
        let diskNumber = try end.littleEndian(UInt16.self)
        let directoryDisk = try end.littleEndian(UInt16.self)
        _ = try end.littleEndian(UInt16.self)
        var entryCount = Int(try end.littleEndian(UInt16.self))
        var directorySize = Int(try end.littleEndian(UInt32.self))
        var directoryOffset = Int(try end.littleEndian(UInt32.self))
        guard diskNumber == 0 || diskNumber == 0xFFFF, directoryDisk == 0 || directoryDisk == 0xFFFF else {
            throw fail("multi-disk archives are not supported")
        }

        // Zip64: the locator sits just before the end record and points at the zip64 end record.
        if endOffset >= 20, all.loadUnaligned(fromByteOffset: endOffset - 20, as: UInt32.self) == UInt32(littleEndian: Self.zip64LocatorSignature) {
            var locator = ByteCursor(all, at: endOffset - 16, failure: fail)
            _ = try locator.littleEndian(UInt32.self)
            let zip64EndOffset = try Self.checkedInt(try locator.littleEndian(UInt64.self), fail)
            guard file.contains(offset: zip64EndOffset, length: 56) else { throw fail("zip64 end record outside the file") }
            var zip64 = ByteCursor(all, at: zip64EndOffset, failure: fail)
            guard try zip64.littleEndian(UInt32.self) == Self.zip64EndSignature else { throw fail("bad zip64 end record signature") }
            try zip64.skip(8 + 2 + 2 + 4 + 4 + 8)
            entryCount = try Self.checkedInt(try zip64.littleEndian(UInt64.self), fail)
            directorySize = try Self.checkedInt(try zip64.littleEndian(UInt64.self), fail)
            directoryOffset = try Self.checkedInt(try zip64.littleEndian(UInt64.self), fail)
        }
        guard file.contains(offset: directoryOffset, length: directorySize), directoryOffset + directorySize <= endOffset else {
            throw fail("central directory outside the file")
        }
        // Each central header takes at least 46 bytes: a count the directory cannot hold is a lie.
        guard entryCount <= Self.maximumEntryCount, entryCount <= directorySize / 46 else {
            throw fail("declares \(entryCount) entries, more than its directory of \(directorySize) bytes can hold")
        }

        var entries: [String: Entry] = [:]
        var names: [String] = []
        var occupied: [Range<Int>] = [directoryOffset..<(directoryOffset + directorySize)]
        var cursor = ByteCursor(file.span(directoryOffset..<(directoryOffset + directorySize)), failure: fail)
        for _ in 0..<entryCount {
            guard try cursor.littleEndian(UInt32.self) == Self.centralHeaderSignature else { throw fail("bad central directory header signature") }
            try cursor.skip(4)
            let flags = try cursor.littleEndian(UInt16.self)
            let method = try cursor.littleEndian(UInt16.self)
            try cursor.skip(8)
            var compressedSize = Int(try cursor.littleEndian(UInt32.self))
            var uncompressedSize = Int(try cursor.littleEndian(UInt32.self))
            let nameLength = Int(try cursor.littleEndian(UInt16.self))
            let extraLength = Int(try cursor.littleEndian(UInt16.self))
            let commentLength = Int(try cursor.littleEndian(UInt16.self))
            try cursor.skip(8)
            var localOffset = Int(try cursor.littleEndian(UInt32.self))
            let nameBytes = try cursor.take(nameLength)
            var extra = ByteCursor(try cursor.take(extraLength), failure: fail)
            try cursor.skip(commentLength)
            guard flags & 1 == 0 else { throw fail("encrypted entries are not supported") }
            guard let name = String(validating: nameBytes, as: UTF8.self) else { throw fail("entry name is not UTF-8") }
            try Self.requirePlainRelativeName(name, fail)

            // Zip64 extended information replaces the fields that hold 0xFFFFFFFF, in this order.
            while extra.remaining >= 4 {
                let tag = try extra.littleEndian(UInt16.self)
                let size = Int(try extra.littleEndian(UInt16.self))
                var field = ByteCursor(try extra.take(size), failure: fail)
                guard tag == 0x0001 else { continue }
                if uncompressedSize == 0xFFFF_FFFF { uncompressedSize = try Self.checkedInt(try field.littleEndian(UInt64.self), fail) }
                if compressedSize == 0xFFFF_FFFF { compressedSize = try Self.checkedInt(try field.littleEndian(UInt64.self), fail) }
                if localOffset == 0xFFFF_FFFF { localOffset = try Self.checkedInt(try field.littleEndian(UInt64.self), fail) }
            }
            guard entries[name] == nil else { throw fail("duplicate entry \(name)") }
            if method == 0, compressedSize != uncompressedSize {
                throw fail("stored entry \(name) declares \(uncompressedSize) bytes but holds \(compressedSize)")
            }
            // The local header repeats the name; its own extra field length decides where the data starts.
            guard file.contains(offset: localOffset, length: 30) else { throw fail("entry \(name) starts outside the file") }
            var local = ByteCursor(all, at: localOffset, failure: fail)
            guard try local.littleEndian(UInt32.self) == Self.localHeaderSignature else { throw fail("bad local header signature for \(name)") }
            try local.skip(22)
            let localNameLength = Int(try local.littleEndian(UInt16.self))
            let localExtraLength = Int(try local.littleEndian(UInt16.self))
            guard localNameLength == nameLength, try local.take(localNameLength).elementsEqual(nameBytes) else {
                throw fail("local header name differs from the directory's for \(name)")
            }
            let dataStart = localOffset + 30 + localNameLength + localExtraLength
            guard file.contains(offset: dataStart, length: compressedSize) else {
                throw fail("entry \(name) (\(compressedSize) bytes) extends past the end of the file")
            }
            entries[name] = Entry(name: name, dataRange: dataStart..<(dataStart + compressedSize), method: method)
            names.append(name)
            occupied.append(localOffset..<(dataStart + compressedSize))
        }
        // Overlapping entries (the classic zip bomb layout) never come from a real writer.
        occupied.sort { $0.lowerBound < $1.lowerBound }
        for (previous, next) in zip(occupied, occupied.dropFirst()) where next.lowerBound < previous.upperBound {
            throw fail("entries overlap at byte \(next.lowerBound)")
        }
        self.entries = entries
        self.names = names
    }

    /// The byte range of a stored entry; throws when it is missing or compressed.
    public func storedData(_ name: String) throws -> Range<Int> {
        guard let entry = entries[name] else { throw CheckpointError.invalidZip(reason: "missing entry \(name)") }
        guard entry.method == 0 else {
            throw CheckpointError.invalidZip(reason: "entry \(name) is compressed (method \(entry.method)); PyTorch stores entries uncompressed and this reader never inflates")
        }
        return entry.dataRange
    }

    static func checkedInt(_ value: UInt64, _ fail: (String) -> CheckpointError) throws -> Int {
        guard value <= UInt64(Int.max / 2) else { throw fail("declared size \(value) is impossibly large") }
        return Int(value)
    }

    /// Names are only ever looked up, never used as paths, but a name that could climb out of a folder
    /// marks a crafted file: refuse it.
    static func requirePlainRelativeName(_ name: String, _ fail: (String) -> CheckpointError) throws {
        let components = name.split(separator: "/", omittingEmptySubsequences: false)
        guard !name.isEmpty, !name.hasPrefix("/"), !name.contains("\\"), !name.contains("\0"),
              !components.contains(".."), !(name.count >= 2 && name.dropFirst().first == ":") else {
            throw fail("entry name \(name.debugDescription) is not a plain relative path")
        }
    }
}
