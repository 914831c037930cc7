import Engine

/// A tensor inside a checkpoint file: its element type, its layout over a storage, and where that
/// storage's bytes are in the (memory-mapped) file. Nothing is converted until it is bound.
public struct StoredTensor: Sendable {
    public let elementType: ElementType
    public let layout: TensorLayout
    /// The mapped file the storage lives in (kept alive by this reference).
    public let file: MappedBytes
    /// Byte range of the whole storage within `file`.
    public let storageRange: Range<Int>
    /// True when the storage was written big-endian (converted on binding).
    public let isBigEndian: Bool

    /// Validates that every element the layout touches lies within the storage.
    public init(elementType: ElementType, layout: TensorLayout, file: MappedBytes, storageRange: Range<Int>,
                isBigEndian: Bool = false, key: String) throws {
        guard storageRange.lowerBound >= 0, storageRange.upperBound <= file.count else {
            throw CheckpointError.invalidTensor(key: key, reason: "storage bytes \(storageRange) lie outside the file of \(file.count) bytes")
        }
        guard let count = layout.elementCount, count <= Tensor.maximumElementCount, let extent = layout.storageExtent else {
            throw CheckpointError.invalidTensor(key: key, reason: "shape \(layout.shape), strides \(layout.strides) and offset \(layout.storageOffset) are invalid")
        }
        let available = storageRange.count / elementType.byteCount
        guard extent <= available else {
            throw CheckpointError.invalidTensor(key: key, reason: "shape \(layout.shape) with strides \(layout.strides) at offset \(layout.storageOffset) needs \(extent) elements, its storage holds \(available)")
        }
        self.elementType = elementType
        self.layout = layout
        self.file = file
        self.storageRange = storageRange
        self.isBigEndian = isBigEndian
    }

    /// The tensor's shape (empty for a scalar).
    public var shape: [Int] { layout.shape }
    /// The number of elements.
    public var elementCount: Int { layout.elementCount ?? 0 }
    /// The bytes its elements take (not counting storage shared with other tensors or unused).
    public var byteCount: Int { elementCount * elementType.byteCount }

    /// The first byte of the tensor's first element.
    var firstElement: UnsafeRawPointer { file.base + storageRange.lowerBound + layout.storageOffset * elementType.byteCount }

    /// Calls `body(destinationIndex, sourceElementIndex, runLength)` for each contiguous run, in row-major
    /// order; a contiguous tensor is one run.
    func forEachRun(_ body: (Int, Int, Int) -> Void) {
        let count = elementCount
        guard count > 0 else { return }
        if layout.isContiguous { body(0, 0, count); return }
        let shape = layout.shape, strides = layout.strides
        let innermost = shape.count - 1
        let run = strides[innermost] == 1 ? shape[innermost] : 1
        let outerDimensions = run == 1 ? shape.count : innermost
        var index = [Int](repeating: 0, count: outerDimensions)
        var destination = 0
        while destination < count {
            var source = 0
            for d in 0..<outerDimensions { source += index[d] * strides[d] }
            body(destination, source, run)
            destination += run
            var d = outerDimensions - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < shape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
    }
}
