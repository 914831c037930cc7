// Element-wise activations and arithmetic on tensors, channel concatenation, and the broadcast add of a
// per-(batch, channel) vector (timestep and class embeddings) to NHWC activations. All are memory-bound:
// one vectorised pass, split over the thread pool in 64 KiB chunks.

// MARK: - Parallel drivers

/// `destination[i] = body(source[i])` over `count` floats, in parallel chunks.
@inline(__always)
func parallelMap(_ source: UnsafePointer<Float>, _ destination: UnsafeMutablePointer<Float>, count: Int,
                 _ body: (FloatVector) -> FloatVector) {
    Parallel.forRanges(count, grain: elementwiseGrain) { begin, end in
        mapVectors(source + begin, destination + begin, count: end &- begin, body)
    }
}

/// `destination[i] = body(a[i], b[i])` over `count` floats, in parallel chunks.
@inline(__always)
func parallelMap(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ destination: UnsafeMutablePointer<Float>,
                 count: Int, _ body: (FloatVector, FloatVector) -> FloatVector) {
    Parallel.forRanges(count, grain: elementwiseGrain) { begin, end in
        mapVectors(a + begin, b + begin, destination + begin, count: end &- begin, body)
    }
}

/// A new tensor of `x`'s shape holding `body` applied to each element.
@inline(__always)
func mapped(_ x: Tensor, _ body: (FloatVector) -> FloatVector) throws -> Tensor {
    let result = try Tensor(uninitializedShape: x.shape)
    parallelMap(x.data, result.data, count: x.count, body)
    return result
}

/// A new tensor holding `body(a, b)` element-wise; the shapes must be equal.
@inline(__always)
func mapped(_ a: Tensor, _ b: Tensor, _ op: String, _ body: (FloatVector, FloatVector) -> FloatVector) throws -> Tensor {
    try a.requireSameShape(b, op)
    let result = try Tensor(uninitializedShape: a.shape)
    parallelMap(a.data, b.data, result.data, count: a.count, body)
    return result
}

// MARK: - Activations

/// SiLU (swish), x · σ(x).
public func silu(_ x: Tensor) throws -> Tensor { try mapped(x) { silu($0) } }

/// SiLU in place.
public func siluInPlace(_ x: Tensor) { parallelMap(x.data, x.data, count: x.count) { silu($0) } }

/// Exact (erf) GELU, 0.5 · x · (1 + erf(x / √2)), as PyTorch's `F.gelu` by default.
public func gelu(_ x: Tensor) throws -> Tensor { try mapped(x) { gelu($0) } }

/// Exact GELU in place.
public func geluInPlace(_ x: Tensor) { parallelMap(x.data, x.data, count: x.count) { gelu($0) } }

/// Logistic sigmoid, 1 / (1 + e^−x).
public func sigmoid(_ x: Tensor) throws -> Tensor { try mapped(x) { sigmoid($0) } }

/// Leaky ReLU: x for x ≥ 0, slope · x below (PyTorch `F.leaky_relu`, e.g. slope 0.2 in ESRGAN-style nets).
public func leakyReLU(_ x: Tensor, slope: Float) throws -> Tensor {
    try mapped(x) { v in v.replacing(with: v * slope, where: v .< 0) }
}

/// Leaky ReLU in place.
public func leakyReLUInPlace(_ x: Tensor, slope: Float) {
    parallelMap(x.data, x.data, count: x.count) { v in v.replacing(with: v * slope, where: v .< 0) }
}

/// The gated GELU of Restormer's and DiffIR's feed-forward: for x = [x1 | x2] split in two halves over the last
/// dimension, gelu(x1) · x2 (exact GELU) — `x1, x2 = x.chunk(2, dim=1); F.gelu(x1) * x2` on NCHW.
public func gatedGELU(_ x: Tensor) throws -> Tensor {
    let width = x.shape.last!
    guard width % 2 == 0 else { throw EngineError.invalidArgument(op: "gatedGELU", reason: "\(width) channels do not split in two halves") }
    let half = width / 2, rows = x.count / width
    var shape = x.shape
    shape[shape.count - 1] = half
    let result = try Tensor(uninitializedShape: shape)
    let source = x.data, output = result.data
    Parallel.forRanges(rows, grain: max(1, elementwiseGrain / width)) { begin, end in
        for r in begin..<end {
            let a = source + r &* width, g = output + r &* half
            var k = 0
            while k &+ 8 <= half {
                (gelu(FloatVector(loading: a + k)) * FloatVector(loading: a + (half &+ k))).store(to: g + k)
                k = k &+ 8
            }
            if k < half {
                let n = half &- k
                (gelu(FloatVector(loading: a + k, count: n)) * FloatVector(loading: a + (half &+ k), count: n)).store(to: g + k, count: n)
            }
        }
    }
    return result
}

/// ReLU, max(x, 0).
public func relu(_ x: Tensor) throws -> Tensor { try mapped(x) { $0.clamped(below: .zero) } }

// MARK: - Arithmetic

/// a + scale · b (same shapes).
public func add(_ a: Tensor, _ b: Tensor, scale: Float = 1) throws -> Tensor {
    try mapped(a, b, "add") { x, y in x.addingProduct(y, scale) }
}

/// a ← a + scale · b (same shapes).
public func addInPlace(_ a: Tensor, _ b: Tensor, scale: Float = 1) throws {
    try a.requireSameShape(b, "addInPlace")
    parallelMap(a.data, b.data, a.data, count: a.count) { x, y in x.addingProduct(y, scale) }
}

/// α · a + β · b (same shapes), the update of most sampler steps.
public func axpby(_ alpha: Float, _ a: Tensor, _ beta: Float, _ b: Tensor) throws -> Tensor {
    try mapped(a, b, "axpby") { x, y in (x * alpha).addingProduct(y, beta) }
}

/// a − b (same shapes).
public func subtract(_ a: Tensor, _ b: Tensor) throws -> Tensor { try mapped(a, b, "subtract") { $0 - $1 } }

/// a ⊙ b, element-wise (same shapes).
public func multiply(_ a: Tensor, _ b: Tensor) throws -> Tensor { try mapped(a, b, "multiply") { $0 * $1 } }

/// a ← a ⊙ b (same shapes).
public func multiplyInPlace(_ a: Tensor, _ b: Tensor) throws {
    try a.requireSameShape(b, "multiplyInPlace")
    parallelMap(a.data, b.data, a.data, count: a.count) { $0 * $1 }
}

/// factor · x + offset.
public func scale(_ x: Tensor, by factor: Float, adding offset: Float = 0) throws -> Tensor {
    try mapped(x) { ($0 * factor) + offset }
}

/// x ← factor · x + offset.
public func scaleInPlace(_ x: Tensor, by factor: Float, adding offset: Float = 0) {
    parallelMap(x.data, x.data, count: x.count) { ($0 * factor) + offset }
}

/// Clamps every element to [low, high].
public func clamp(_ x: Tensor, to range: ClosedRange<Float>) throws -> Tensor {
    let low = FloatVector(repeating: range.lowerBound), high = FloatVector(repeating: range.upperBound)
    return try mapped(x) { $0.clamped(below: low).clamped(above: high) }
}

// MARK: - Channel operations on NHWC

/// Concatenates NHWC tensors along channels (PyTorch `torch.cat(dim=1)` on NCHW); N, H, W must agree.
public func concatenateChannels(_ tensors: [Tensor]) throws -> Tensor {
    guard let first = tensors.first else {
        throw EngineError.invalidArgument(op: "concatenateChannels", reason: "no tensors")
    }
    let (n, h, w, _) = try first.nhwc("concatenateChannels")
    var channels: [Int] = []
    for t in tensors {
        let s = try t.nhwc("concatenateChannels")
        guard s.n == n, s.h == h, s.w == w else {
            throw EngineError.shapeMismatch(op: "concatenateChannels", expected: "[\(n), \(h), \(w), _]", found: "\(t.shape)")
        }
        channels.append(s.c)
    }
    let total = channels.reduce(0, +)
    let result = try Tensor(uninitializedShape: [n, h, w, total])
    let sources = tensors.map { UnsafePointer($0.data) }
    let output = result.data
    Parallel.forRanges(n * h * w, grain: 256) { begin, end in
        for pixel in begin..<end {
            var offset = pixel &* total
            for (k, c) in channels.enumerated() {
                (output + offset).update(from: sources[k] + pixel &* c, count: c)
                offset = offset &+ c
            }
        }
    }
    return result
}

/// Splits an NHWC tensor along channels into parts of the given sizes (inverse of `concatenateChannels`).
public func splitChannels(_ x: Tensor, sizes: [Int]) throws -> [Tensor] {
    let (n, h, w, c) = try x.nhwc("splitChannels")
    guard sizes.allSatisfy({ $0 > 0 }), sizes.reduce(0, +) == c else {
        throw EngineError.shapeMismatch(op: "splitChannels", expected: "sizes summing to \(c)", found: "\(sizes)")
    }
    var parts: [Tensor] = []
    var start = 0
    for size in sizes {
        let part = try Tensor(uninitializedShape: [n, h, w, size])
        let source = x.data + start, destination = part.data
        Parallel.forRanges(n * h * w, grain: 1024) { begin, end in
            for pixel in begin..<end { (destination + pixel &* size).update(from: source + pixel &* c, count: size) }
        }
        parts.append(part)
        start += size
    }
    return parts
}

/// x[n, h, w, c] + v[n, c]: adds a per-(batch, channel) vector, e.g. a projected timestep embedding.
/// `v` may be [N, C] or [N, 1, 1, C].
public func addChannelVector(_ x: Tensor, _ v: Tensor) throws -> Tensor {
    let result = try Tensor(uninitializedShape: x.shape)
    try addChannelVector(x, v, into: result)
    return result
}

/// x ← x + v[n, c] for every pixel, in place.
public func addChannelVectorInPlace(_ x: Tensor, _ v: Tensor) throws { try addChannelVector(x, v, into: x) }

func addChannelVector(_ x: Tensor, _ v: Tensor, into result: Tensor) throws {
    let (n, h, w, c) = try x.nhwc("addChannelVector")
    guard v.count == n * c, v.shape.first == n, v.shape.last == c else {
        throw EngineError.shapeMismatch(op: "addChannelVector", expected: "[\(n), \(c)]", found: "\(v.shape)")
    }
    let pixels = h * w, source = x.data, vector = v.data, output = result.data
    Parallel.forRanges(n * pixels, grain: max(1, elementwiseGrain / c)) { begin, end in
        for pixel in begin..<end {
            let offset = pixel &* c
            mapVectors(source + offset, vector + (pixel / pixels) &* c, output + offset, count: c) { $0 + $1 }
        }
    }
}
