import Foundation

/// A PyTorch pickle checkpoint after reading: its object tree and every tensor in it, located in the file.
public struct TorchPickleContents: Sendable {
    public let root: PickleValue
    public let heap: PickleHeap
    /// The tensor behind each `.tensor` heap object, keyed by heap index.
    public let tensors: [Int: StoredTensor]
    /// Classes outside the allow-list that became inert placeholders.
    public let unknownGlobals: [String]

    /// The stored tensor a value refers to.
    public func tensor(_ value: PickleValue) -> StoredTensor? {
        if case .reference(let index) = value { return tensors[index] }
        return nil
    }
}

/// Readers for the two PyTorch formats: the zip container (1.6 and later) and the legacy stream.
public enum TorchCheckpointReader {
    /// The legacy format's first pickle: protocol 2, LONG1 of 10 bytes holding 0x1950a86a20f9469cfc6c.
    static let legacyMagic: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E]

    /// True when `file` starts with the legacy format's magic number.
    public static func looksLikeLegacy(_ file: MappedBytes) -> Bool {
        file.count >= legacyMagic.count && file.span(0..<legacyMagic.count).elementsEqual(legacyMagic)
    }

    // MARK: Zip format

    /// Reads `<prefix>/data.pkl`, resolving storages to `<prefix>/data/<key>` entries.
    public static func readZip(_ file: MappedBytes, limits: PickleMachine.Limits = .init()) throws -> TorchPickleContents {
        let archive = try ZipArchive(file)
        let pickles = archive.names.filter { $0.hasSuffix("/data.pkl") && $0.split(separator: "/").count == 2 }
        guard pickles.count == 1, let pickleName = pickles.first else {
            throw CheckpointError.invalidZip(reason: pickles.isEmpty ? "no <name>/data.pkl entry (not a PyTorch checkpoint)" : "more than one data.pkl entry")
        }
        let prefix = String(pickleName.dropLast("data.pkl".count))
        var isBigEndian = false
        if let order = archive.entries[prefix + "byteorder"] {
            let text = String(decoding: file.span(try archive.storedData(order.name)), as: UTF8.self)
            switch text.trimmingCharacters(in: .whitespacesAndNewlines) {
            case "little": isBigEndian = false
            case "big": isBigEndian = true
            default: throw CheckpointError.invalidZip(reason: "unknown byte order \(text.debugDescription)")
            }
        }
        let result = try PickleMachine(file.span(try archive.storedData(pickleName)), limits: limits)
            .load(persistentLoad: TorchPersistentID.storage)
        var storages: [String: Range<Int>] = [:]
        let tensors = try locateTensors(result.heap) { reference in
            if let range = storages[reference.key] { return range }
            let range = try archive.storedData(prefix + "data/" + reference.key)
            storages[reference.key] = range
            return range
        }
        return TorchPickleContents(root: result.root, heap: result.heap, tensors: try tensors.mapValues {
            try StoredTensor(elementType: $0.type, layout: $0.layout, file: file, storageRange: $0.range, isBigEndian: isBigEndian, key: $0.key)
        }, unknownGlobals: result.unknownGlobals)
    }

    // MARK: Legacy format

    /// Reads magic, protocol version, sys_info, the main pickle, the storage key list, then the raw
    /// storages (each an 8-byte element count and the bytes) in key-list order.
    public static func readLegacy(_ file: MappedBytes, limits: PickleMachine.Limits = .init()) throws -> TorchPickleContents {
        let bytes = file.span(0..<file.count)
        guard looksLikeLegacy(file) else { throw CheckpointError.unknownFormat(path: "") }
        let machine = PickleMachine(bytes, limits: limits)
        let version = try machine.load(from: legacyMagic.count)
        guard version.root == .int(1001) else { throw CheckpointError.invalidPickle(offset: legacyMagic.count, reason: "unknown legacy protocol version") }
        let systemInfo = try machine.load(from: version.endOffset)
        var isBigEndian = false
        if let info = systemInfo.heap.dict(systemInfo.root), case .bool(let little)? = info["little_endian"] { isBigEndian = !little }
        let main = try machine.load(from: systemInfo.endOffset, persistentLoad: TorchPersistentID.storage)
        let keyList = try machine.load(from: main.endOffset)
        guard let keyValues = keyList.heap.sequence(keyList.root) else {
            throw CheckpointError.invalidPickle(offset: main.endOffset, reason: "storage key list is not a list")
        }

        // Every storage the pickle declares, by key, with its element type and count.
        var declared: [String: StorageReference] = [:]
        for object in main.heap.objects {
            if case .storage(let reference) = object { declared[reference.key] = reference }
        }
        var storages: [String: Range<Int>] = [:]
        var cursor = ByteCursor(bytes, at: keyList.endOffset) { .invalidPickle(offset: file.count, reason: "storage data \($0)") }
        for keyValue in keyValues {
            let key: String
            switch keyValue {
            case .string(let s): key = s
            case .int(let i): key = String(i)
            default: throw CheckpointError.invalidPickle(offset: keyList.endOffset, reason: "storage key is not a string")
            }
            guard let reference = declared[key] else { throw CheckpointError.invalidTensor(key: key, reason: "storage listed but never used") }
            guard storages[key] == nil else { throw CheckpointError.invalidTensor(key: key, reason: "storage listed twice") }
            let rawCount = try cursor.littleEndian(UInt64.self)
            let count = Int(truncatingIfNeeded: isBigEndian ? rawCount.byteSwapped : rawCount)
            guard count >= 0, count == reference.elementCount else {
                throw CheckpointError.invalidTensor(key: key, reason: "storage holds \(count) elements, the pickle declares \(reference.elementCount)")
            }
            let (byteCount, overflow) = count.multipliedReportingOverflow(by: reference.elementType.byteCount)
            guard !overflow, byteCount <= cursor.remaining else {
                throw CheckpointError.invalidTensor(key: key, reason: "storage of \(count) elements extends past the end of the file")
            }
            storages[key] = cursor.position..<(cursor.position + byteCount)
            try cursor.skip(byteCount)
        }
        let tensors = try locateTensors(main.heap) { reference in
            guard let range = storages[reference.key] else { throw CheckpointError.invalidTensor(key: reference.key, reason: "storage missing from the file") }
            return range
        }
        return TorchPickleContents(root: main.root, heap: main.heap, tensors: try tensors.mapValues {
            try StoredTensor(elementType: $0.type, layout: $0.layout, file: file, storageRange: $0.range, isBigEndian: isBigEndian, key: $0.key)
        }, unknownGlobals: main.unknownGlobals)
    }

    // MARK: Shared

    /// Finds each tensor's storage bytes (narrowed to a legacy view when there is one).
    static func locateTensors(_ heap: PickleHeap, storageRange: (StorageReference) throws -> Range<Int>)
        throws -> [Int: (key: String, type: ElementType, layout: TensorLayout, range: Range<Int>)] {
        var located: [Int: (key: String, type: ElementType, layout: TensorLayout, range: Range<Int>)] = [:]
        for (index, object) in heap.objects.enumerated() {
            guard case .tensor(let tensor) = object else { continue }
            let storage = tensor.storage, size = storage.elementType.byteCount
            var range = try storageRange(storage)
            let (declaredBytes, overflow) = storage.elementCount.multipliedReportingOverflow(by: size)
            guard !overflow, declaredBytes <= range.count else {
                throw CheckpointError.invalidTensor(key: "storage \(storage.key)", reason: "declares \(storage.elementCount) elements, its data holds \(range.count) bytes")
            }
            range = range.lowerBound..<(range.lowerBound + declaredBytes)
            if let view = storage.view {
                let (start, o1) = view.offset.multipliedReportingOverflow(by: size)
                let (length, o2) = view.count.multipliedReportingOverflow(by: size)
                guard !o1, !o2, start <= range.count, length <= range.count - start else {
                    throw CheckpointError.invalidTensor(key: "storage \(storage.key)", reason: "view lies outside its storage")
                }
                range = (range.lowerBound + start)..<(range.lowerBound + start + length)
            }
            located[index] = ("storage \(storage.key)", storage.elementType, tensor.layout, range)
        }
        return located
    }
}
