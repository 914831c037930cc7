import Foundation

/// A checkpoint file opened for reading: PyTorch zip (`.pt`, `.pth`, Lightning `.ckpt`), the legacy
/// pre-1.6 PyTorch stream, or safetensors. The file is memory-mapped; nothing in it is ever executed.
///
/// ```swift
/// let checkpoint = try Checkpoint(path: "model.ckpt")
/// let weights = try checkpoint.stateDict(.auto).bind(network.parameterDeclarations)
/// ```
public final class Checkpoint: @unchecked Sendable {
    /// The container formats this reader understands.
    public enum Format: String, Sendable {
        case torchZip = "PyTorch zip"
        case torchLegacy = "PyTorch legacy"
        case safetensors = "safetensors"
    }

    public let path: String
    public let format: Format
    /// Non-fatal findings, e.g. unknown classes that became inert placeholders (at most one line each).
    public let warnings: [String]
    /// Safetensors `__metadata__` (empty for PyTorch files).
    public let metadata: [String: String]
    /// The mapped file (every tensor points into it).
    public let file: MappedBytes

    /// PyTorch files: the pickle's object tree with its tensors located.
    let pickle: TorchPickleContents?
    /// Safetensors files: the tensors in header order.
    let flatTensors: [(String, StoredTensor)]

    /// Maps and reads the file at `path`, refusing anything malformed or hostile with one `CheckpointError`.
    public convenience init(path: String, limits: PickleMachine.Limits = .init()) throws {
        let file = try MappedBytes(mapping: path)
        try self.init(file: file, path: path, limits: limits)
    }

    /// Reads an already mapped (or copied) file; `path` is used in messages only.
    public init(file: MappedBytes, path: String, limits: PickleMachine.Limits = .init()) throws {
        self.file = file
        self.path = path
        do {
            if ZipArchive.looksLikeZip(file) {
                format = .torchZip
                pickle = try TorchCheckpointReader.readZip(file, limits: limits)
                flatTensors = []
                metadata = [:]
            } else if TorchCheckpointReader.looksLikeLegacy(file) {
                format = .torchLegacy
                pickle = try TorchCheckpointReader.readLegacy(file, limits: limits)
                flatTensors = []
                metadata = [:]
            } else if Safetensors.looksLikeSafetensors(file) {
                format = .safetensors
                let contents = try Safetensors.read(file)
                pickle = nil
                flatTensors = contents.tensors
                metadata = contents.metadata
            } else {
                throw CheckpointError.unknownFormat(path: path)
            }
        } catch CheckpointError.unknownFormat {
            throw CheckpointError.unknownFormat(path: path)
        }
        if let unknown = pickle?.unknownGlobals, !unknown.isEmpty {
            warnings = [CheckpointError.printable("ignored \(unknown.count) unknown class\(unknown.count == 1 ? "" : "es") outside the weights (kept as inert placeholders, never called): \(unknown.joined(separator: ", "))")]
        } else {
            warnings = []
        }
    }

    /// The top-level keys of the file's root dict (for messages and `inspect`); empty when the root is not a dict.
    public var topLevelKeys: [String] {
        guard let pickle else { return [] }
        return pickle.heap.dict(pickle.root)?.keys.compactMap(\.stringValue) ?? []
    }

    /// The count of tensors anywhere in the file (optimizer state included).
    public var tensorCount: Int { pickle?.tensors.count ?? flatTensors.count }
}
