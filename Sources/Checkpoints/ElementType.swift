/// The element types a checkpoint tensor may hold; all convert to Float32 on binding.
public enum ElementType: String, Sendable, CaseIterable {
    case float64, float32, float16, bfloat16, int64, int32, int16, int8, uint8, bool

    /// Bytes per element.
    public var byteCount: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16, .int16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    /// True for the floating-point types.
    public var isFloatingPoint: Bool { [.float64, .float32, .float16, .bfloat16].contains(self) }

    /// The safetensors dtype name (`F32`, `BF16`, `I64`, …).
    public var safetensorsName: String {
        switch self {
        case .float64: return "F64"
        case .float32: return "F32"
        case .float16: return "F16"
        case .bfloat16: return "BF16"
        case .int64: return "I64"
        case .int32: return "I32"
        case .int16: return "I16"
        case .int8: return "I8"
        case .uint8: return "U8"
        case .bool: return "BOOL"
        }
    }

    /// The type named by a safetensors dtype string, or nil.
    public init?(safetensorsName name: String) {
        guard let match = ElementType.allCases.first(where: { $0.safetensorsName == name }) else { return nil }
        self = match
    }

    /// The type of a `torch.<Name>Storage` class (`FloatStorage` → float32), or nil.
    public init?(torchStorageName name: String) {
        switch name {
        case "DoubleStorage": self = .float64
        case "FloatStorage": self = .float32
        case "HalfStorage": self = .float16
        case "BFloat16Storage": self = .bfloat16
        case "LongStorage": self = .int64
        case "IntStorage": self = .int32
        case "ShortStorage": self = .int16
        case "CharStorage": self = .int8
        case "ByteStorage", "UntypedStorage": self = .uint8
        case "BoolStorage": self = .bool
        default: return nil
        }
    }
}

/// A tensor as a checkpoint describes it, before its storage is located: the storage it views and how.
public struct TensorLayout: Sendable, Equatable {
    /// Extent of each dimension (PyTorch's `size()`), outermost first; empty for a scalar.
    public var shape: [Int]
    /// Step in elements between neighbours along each dimension (PyTorch's `stride()`).
    public var strides: [Int]
    /// Index, in elements, of the tensor's first element within its storage.
    public var storageOffset: Int

    /// The number of elements, or nil when the product overflows.
    public var elementCount: Int? {
        var count = 1
        for extent in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: extent)
            if overflow { return nil }
            count = product
        }
        return count
    }

    /// True when the elements are contiguous in row-major order.
    public var isContiguous: Bool {
        if shape.contains(0) { return true }
        var expected = 1
        for (extent, stride) in zip(shape, strides).reversed() where extent != 1 {
            if stride != expected { return false }
            let (next, overflow) = expected.multipliedReportingOverflow(by: extent)
            if overflow { return false }
            expected = next
        }
        return true
    }

    /// One past the largest storage index the tensor touches (0 when empty), or nil on overflow or a
    /// negative extent/stride/offset.
    public var storageExtent: Int? {
        guard shape.count == strides.count, storageOffset >= 0,
              shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }) else { return nil }
        if shape.contains(0) { return 0 }
        var last = storageOffset
        for (extent, stride) in zip(shape, strides) {
            let (step, overflow1) = (extent - 1).multipliedReportingOverflow(by: stride)
            let (sum, overflow2) = last.addingReportingOverflow(step)
            if overflow1 || overflow2 { return nil }
            last = sum
        }
        let (end, overflow) = last.addingReportingOverflow(1)
        return overflow ? nil : end
    }

    /// The contiguous row-major layout of `shape`.
    public static func contiguous(_ shape: [Int]) -> TensorLayout {
        var strides = [Int](repeating: 1, count: shape.count)
        var step = 1
        for dimension in shape.indices.reversed() {
            strides[dimension] = step
            let (next, overflow) = step.multipliedReportingOverflow(by: max(shape[dimension], 1))
            step = overflow ? Int.max : next  // an overflowing shape fails its elementCount check anyway
        }
        return TensorLayout(shape: shape, strides: strides, storageOffset: 0)
    }
}
