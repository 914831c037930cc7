import Engine

// MARK: - Conversion to Float32 (on binding)

extension StoredTensor {
    /// The tensor as a Float32 engine `Tensor` of `shape` (default: its own shape, `[1]` for a scalar).
    public func floatTensor(shape requested: [Int]? = nil) throws -> Tensor {
        let shape = requested ?? (layout.shape.isEmpty ? [1] : layout.shape)
        let tensor = try Tensor(uninitializedShape: shape)
        guard tensor.count == elementCount else {
            throw EngineError.shapeMismatch(op: "StoredTensor.floatTensor", expected: "\(elementCount) elements", found: "\(shape)")
        }
        copyAsFloat(into: tensor.data)
        return tensor
    }

    /// Writes the elements, converted to Float32, in row-major order to `destination`.
    public func copyAsFloat(into destination: UnsafeMutablePointer<Float>) {
        let size = elementType.byteCount, first = firstElement, type = elementType, swapped = isBigEndian
        forEachRun { target, source, run in
            let from = first + source * size
            if run >= 1 << 18 {
                Parallel.forRanges(run, grain: 1 << 16) { begin, end in
                    ElementConversion.toFloat(type, from + begin * size, destination + target + begin, end - begin, byteSwapped: swapped)
                }
            } else {
                ElementConversion.toFloat(type, from, destination + target, run, byteSwapped: swapped)
            }
        }
    }

    /// The elements in row-major order as little-endian bytes of `type` (for safetensors output):
    /// floating types convert (Float32 or Float16), others keep their own type.
    public func contiguousBytes(as type: ElementType) -> [UInt8] {
        let count = elementCount
        if type == elementType, !isBigEndian, layout.isContiguous {
            return Array(UnsafeRawBufferPointer(start: firstElement, count: count * type.byteCount))
        }
        var result = [UInt8](repeating: 0, count: count * type.byteCount)
        result.withUnsafeMutableBytes { out in
            let size = elementType.byteCount, first = firstElement
            if type == elementType {
                forEachRun { target, source, run in
                    let destination = out.baseAddress! + target * size
                    destination.copyMemory(from: first + source * size, byteCount: run * size)
                    if isBigEndian { ElementConversion.swapBytes(destination, count: run, size: size) }
                }
                return
            }
            precondition(type == .float32 || type == .float16, "only floating types convert")
            let floats = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
            defer { floats.deallocate() }
            copyAsFloat(into: floats)
            if type == .float32 {
                out.baseAddress!.copyMemory(from: floats, byteCount: count * 4)
            } else {
                let halves = out.baseAddress!.assumingMemoryBound(to: Float16.self)
                for i in 0..<count { halves[i] = Float16(floats[i]) }
            }
        }
        return result
    }
}

/// Element-type conversion kernels (simple loops the compiler vectorises: F16C for half, shifts for bf16).
enum ElementConversion {
    static func toFloat(_ type: ElementType, _ source: UnsafeRawPointer, _ destination: UnsafeMutablePointer<Float>, _ count: Int, byteSwapped: Bool) {
        if byteSwapped {
            let size = type.byteCount
            let scratch = UnsafeMutableRawPointer.allocate(byteCount: count * size, alignment: 16)
            defer { scratch.deallocate() }
            scratch.copyMemory(from: source, byteCount: count * size)
            swapBytes(scratch, count: count, size: size)
            toFloat(type, UnsafeRawPointer(scratch), destination, count, byteSwapped: false)
            return
        }
        switch type {
        case .float32: UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: count * 4)
        case .float16: halfToFloat(source, destination, count)
        case .bfloat16: bfloat16ToFloat(source, destination, count)
        case .float64: convert(source, as: Double.self, destination, count) { Float($0) }
        case .int64: convert(source, as: Int64.self, destination, count) { Float($0) }
        case .int32: convert(source, as: Int32.self, destination, count) { Float($0) }
        case .int16: convert(source, as: Int16.self, destination, count) { Float($0) }
        case .int8: convert(source, as: Int8.self, destination, count) { Float($0) }
        case .uint8: convert(source, as: UInt8.self, destination, count) { Float($0) }
        case .bool: convert(source, as: UInt8.self, destination, count) { $0 == 0 ? 0 : 1 }
        }
    }

    @inline(__always)
    static func convert<T>(_ source: UnsafeRawPointer, as: T.Type, _ destination: UnsafeMutablePointer<Float>, _ count: Int, _ body: (T) -> Float) {
        for i in 0..<count { destination[i] = body(source.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.stride, as: T.self)) }
    }

    static func halfToFloat(_ source: UnsafeRawPointer, _ destination: UnsafeMutablePointer<Float>, _ count: Int) {
        var i = 0
        while i + 8 <= count {
            let bits = source.loadUnaligned(fromByteOffset: i * 2, as: SIMD8<UInt16>.self)
            let halves = unsafeBitCast(bits, to: SIMD8<Float16>.self)
            let floats = SIMD8<Float>(Float(halves[0]), Float(halves[1]), Float(halves[2]), Float(halves[3]),
                                      Float(halves[4]), Float(halves[5]), Float(halves[6]), Float(halves[7]))
            UnsafeMutableRawPointer(destination + i).storeBytes(of: floats, as: SIMD8<Float>.self)
            i += 8
        }
        while i < count {
            destination[i] = Float(Float16(bitPattern: source.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
            i += 1
        }
    }

    static func bfloat16ToFloat(_ source: UnsafeRawPointer, _ destination: UnsafeMutablePointer<Float>, _ count: Int) {
        let out = UnsafeMutableRawPointer(destination).assumingMemoryBound(to: UInt32.self)
        for i in 0..<count { out[i] = UInt32(source.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) << 16 }
    }

    /// Reverses the bytes of each `size`-byte element in place.
    static func swapBytes(_ pointer: UnsafeMutableRawPointer, count: Int, size: Int) {
        guard size > 1 else { return }
        let bytes = pointer.assumingMemoryBound(to: UInt8.self)
        for element in 0..<count {
            var low = element * size, high = low + size - 1
            while low < high { bytes.swapAt(low, high); low += 1; high -= 1 }
        }
    }
}

extension UnsafeMutablePointer where Pointee == UInt8 {
    fileprivate func swapAt(_ a: Int, _ b: Int) { let t = self[a]; self[a] = self[b]; self[b] = t }
}
