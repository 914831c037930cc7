import Engine
import Foundation

/// Writes safetensors files (the format of the models we ship), atomically: a temporary file in the
/// target folder, renamed over the destination only when complete.
public enum SafetensorsWriter {
    /// One tensor to write: its name, stored element type, shape, and a producer of its bytes.
    struct Item {
        let name: String
        let type: ElementType
        let shape: [Int]
        let bytes: () -> [UInt8]
    }

    /// Writes checkpoint tensors; floating-point ones become F32 (or F16 with `half`), others keep their type.
    public static func write(_ tensors: [(name: String, tensor: StoredTensor)], to path: String, half: Bool = false,
                             metadata: [String: String] = [:], overwrite: Bool = false) throws {
        let items = tensors.map { name, tensor in
            let type: ElementType = tensor.elementType.isFloatingPoint ? (half ? .float16 : .float32) : tensor.elementType
            return Item(name: name, type: type, shape: tensor.shape) { tensor.contiguousBytes(as: type) }
        }
        try write(items, to: path, metadata: metadata, overwrite: overwrite)
    }

    /// Writes engine tensors as F32 (or F16 with `half`).
    public static func write(_ tensors: [(name: String, tensor: Tensor)], to path: String, half: Bool = false,
                             metadata: [String: String] = [:], overwrite: Bool = false) throws {
        let items = tensors.map { name, tensor in
            Item(name: name, type: half ? .float16 : .float32, shape: tensor.shape) {
                let values = UnsafeBufferPointer(start: tensor.data, count: tensor.count)
                if half { return values.map { Float16($0) }.withUnsafeBytes { Array($0) } }
                return Array(UnsafeRawBufferPointer(values))
            }
        }
        try write(items, to: path, metadata: metadata, overwrite: overwrite)
    }

    static func write(_ items: [Item], to path: String, metadata: [String: String], overwrite: Bool) throws {
        var names = Set<String>()
        for item in items where !names.insert(item.name).inserted || item.name == "__metadata__" {
            throw CheckpointError.io(path: path, reason: "duplicate or reserved tensor name \(item.name.debugDescription)")
        }
        if !overwrite, FileManager.default.fileExists(atPath: path) {
            throw CheckpointError.io(path: path, reason: "output exists; pass --overwrite to replace it")
        }
        // Header: names sorted, offsets contiguous, padded with spaces to a multiple of 8 bytes.
        let sorted = items.sorted { $0.name < $1.name }
        var fields: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            fields.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        var offset = 0
        for item in sorted {
            let size = item.shape.reduce(1, *) * item.type.byteCount
            fields.append("\(jsonString(item.name)):{\"dtype\":\"\(item.type.safetensorsName)\",\"shape\":\(item.shape),\"data_offsets\":[\(offset),\(offset + size)]}")
            offset += size
        }
        var header = Array("{\(fields.joined(separator: ","))}".utf8)
        header += [UInt8](repeating: 0x20, count: (8 - header.count % 8) % 8)

        let folder = (path as NSString).deletingLastPathComponent
        let temporary = (folder.isEmpty ? "." : folder) + "/.\((path as NSString).lastPathComponent).\(getpid()).tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard descriptor >= 0 else { throw CheckpointError.io(path: path, reason: "cannot create the output: \(String(cString: strerror(errno)))") }
        var closed = false
        defer { if !closed { close(descriptor); unlink(temporary) } }
        func put(_ bytes: [UInt8]) throws {
            try bytes.withUnsafeBytes { raw in
                var done = 0
                while done < raw.count {
                    let n = Glibc.write(descriptor, raw.baseAddress! + done, raw.count - done)
                    guard n > 0 else { throw CheckpointError.io(path: path, reason: "write failed: \(String(cString: strerror(errno)))") }
                    done += n
                }
            }
        }
        var length = UInt64(header.count).littleEndian
        try put(withUnsafeBytes(of: &length) { Array($0) })
        try put(header)
        for item in sorted { try put(item.bytes()) }
        guard fsync(descriptor) == 0, close(descriptor) == 0 else { throw CheckpointError.io(path: path, reason: "cannot flush the output") }
        closed = true
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw CheckpointError.io(path: path, reason: "cannot rename the output into place: \(String(cString: strerror(errno)))")
        }
    }

    /// A JSON string literal.
    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }
}
