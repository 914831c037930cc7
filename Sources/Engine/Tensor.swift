import Foundation

/// A dense Float32 tensor in one 64-byte-aligned buffer, row-major.
///
/// Four-dimensional tensors are NHWC (batch, height, width, channels): channels are contiguous, so 1×1
/// convolutions and attention projections are plain matrix products and element-wise kernels vectorise
/// over channels. Kernels take `data` as a raw pointer; everything above them passes `Tensor`s.
public final class Tensor: @unchecked Sendable {
    /// The extent of each dimension, outermost first.
    public let shape: [Int]
    /// The number of elements, the product of `shape`.
    public let count: Int
    /// The elements, row-major; valid for the tensor's lifetime.
    public let data: UnsafeMutablePointer<Float>
    /// The tensor whose buffer this one views (see `view(as:)`), kept alive; nil when the buffer is ours.
    private let owner: Tensor?

    /// A tensor of the given shape with uninitialised contents.
    public init(uninitializedShape shape: [Int]) throws {
        guard !shape.isEmpty, shape.allSatisfy({ $0 > 0 }) else { throw EngineError.invalidShape(shape) }
        var count = 1
        for extent in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: extent)
            guard !overflow, product <= Tensor.maximumElementCount else { throw EngineError.tooLarge(shape) }
            count = product
        }
        guard let raw = BufferPool.allocate(count * MemoryLayout<Float>.stride) else { throw EngineError.outOfMemory(shape) }
        self.shape = shape
        self.count = count
        self.data = raw.bindMemory(to: Float.self, capacity: count)
        self.owner = nil
    }

    private init(viewing owner: Tensor, shape: [Int]) {
        self.shape = shape
        self.count = owner.count
        self.data = owner.data
        self.owner = owner.owner ?? owner
    }

    /// A tensor of the given shape filled with `value` (zero by default).
    public convenience init(shape: [Int], repeating value: Float = 0) throws {
        try self.init(uninitializedShape: shape)
        data.initialize(repeating: value, count: count)
    }

    /// A tensor holding `values`, whose count must match `shape`.
    public convenience init(shape: [Int], values: [Float]) throws {
        try self.init(uninitializedShape: shape)
        guard values.count == count else {
            throw EngineError.shapeMismatch(op: "Tensor(values:)", expected: "\(count) values", found: "\(values.count)")
        }
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }

    deinit { if owner == nil { BufferPool.release(UnsafeMutableRawPointer(data), bytes: count * MemoryLayout<Float>.stride) } }

    /// 2^34 elements (64 GiB of Float32): anything larger is refused before allocation.
    public static let maximumElementCount = 1 << 34

    /// The elements as an array (for tests and small tensors).
    public var values: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    /// A copy with its own buffer.
    public func copy() throws -> Tensor {
        let result = try Tensor(uninitializedShape: shape)
        result.data.update(from: data, count: count)
        return result
    }

    /// The same buffer under another shape of equal count, without a copy: writes through either tensor
    /// are seen by both (e.g. an NHWC activation viewed as `[batch, tokens, channels]` for attention).
    /// The only way two tensors alias; every other operation returns a tensor with its own buffer.
    public func view(as newShape: [Int]) throws -> Tensor {
        guard newShape.allSatisfy({ $0 > 0 }), newShape.reduce(1, *) == count else {
            throw EngineError.shapeMismatch(op: "view", expected: "\(count) elements", found: "\(newShape)")
        }
        return Tensor(viewing: self, shape: newShape)
    }

    /// The same elements under another shape of equal count, in a buffer of its own.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        guard newShape.reduce(1, *) == count else {
            throw EngineError.shapeMismatch(op: "reshape", expected: "\(count) elements", found: "\(newShape)")
        }
        let result = try Tensor(uninitializedShape: newShape)
        result.data.update(from: data, count: count)
        return result
    }

    /// Sizes of an NHWC tensor; throws unless the tensor is four-dimensional.
    public func nhwc(_ op: String) throws -> (n: Int, h: Int, w: Int, c: Int) {
        guard shape.count == 4 else {
            throw EngineError.shapeMismatch(op: op, expected: "a 4-D NHWC tensor", found: "\(shape)")
        }
        return (shape[0], shape[1], shape[2], shape[3])
    }

    /// Throws unless `other` has exactly this tensor's shape.
    public func requireSameShape(_ other: Tensor, _ op: String) throws {
        guard other.shape == shape else {
            throw EngineError.shapeMismatch(op: op, expected: "\(shape)", found: "\(other.shape)")
        }
    }
}

/// Errors raised by the engine; each prints as one line naming the operation and the shapes involved.
public enum EngineError: Error, CustomStringConvertible, Equatable {
    case invalidShape([Int])
    case tooLarge([Int])
    case outOfMemory([Int])
    case shapeMismatch(op: String, expected: String, found: String)
    case invalidArgument(op: String, reason: String)
    case oneDNN(call: String, status: Int)

    public var description: String {
        switch self {
        case .invalidShape(let s): return "invalid tensor shape \(s): every dimension must be positive"
        case .tooLarge(let s): return "tensor shape \(s) exceeds the engine's limit of \(Tensor.maximumElementCount) elements"
        case .outOfMemory(let s): return "out of memory allocating a tensor of shape \(s)"
        case .shapeMismatch(let op, let expected, let found): return "\(op): expected \(expected), found \(found)"
        case .invalidArgument(let op, let reason): return "\(op): \(reason)"
        case .oneDNN(let call, let status): return "oneDNN \(call) failed with status \(status)"
        }
    }
}
