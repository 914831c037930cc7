// Spatial resampling of NHWC tensors: nearest ×2 upsampling, average pooling, PyTorch-compatible bicubic
// resizing, pixel (un)shuffle, and padding. Each parallelises over output rows (batch × height).

// MARK: - Nearest and average pooling

/// Nearest-neighbour upsampling by 2 in height and width (`F.interpolate(scale_factor=2, mode='nearest')`).
public func upsampleNearest2x(_ x: Tensor) throws -> Tensor {
    let (n, h, w, c) = try x.nhwc("upsampleNearest2x")
    let result = try Tensor(uninitializedShape: [n, 2 * h, 2 * w, c])
    let source = x.data, output = result.data
    Parallel.forRanges(n * 2 * h, grain: 4) { begin, end in
        for row in begin..<end {
            let input = source + (row / (2 * h) * h + row % (2 * h) / 2) &* w &* c
            let out = output + row &* 2 &* w &* c
            for p in 0..<w {
                (out + 2 &* p &* c).update(from: input + p &* c, count: c)
                (out + (2 &* p &+ 1) &* c).update(from: input + p &* c, count: c)
            }
        }
    }
    return result
}

/// Average pooling with a k×k window and stride k, no padding, floor of the size (`F.avg_pool2d(x, k)`,
/// ADM's Downsample without conv for k = 2).
public func averagePool(_ x: Tensor, kernel k: Int) throws -> Tensor {
    let op = "averagePool"
    let (n, h, w, c) = try x.nhwc(op)
    guard k >= 1, h >= k, w >= k else { throw EngineError.invalidArgument(op: op, reason: "kernel \(k) on \(x.shape)") }
    let (oh, ow) = (h / k, w / k)
    let result = try Tensor(uninitializedShape: [n, oh, ow, c])
    let source = x.data, output = result.data, inverse = 1 / Float(k * k)
    Parallel.forRanges(n * oh, grain: 2) { begin, end in
        for row in begin..<end {
            let out = output + row &* ow &* c
            out.initialize(repeating: 0, count: ow * c)
            let image = source + (row / oh) &* h &* w &* c
            for dy in 0..<k {
                let input = image + ((row % oh) &* k &+ dy) &* w &* c
                for p in 0..<ow {
                    for dx in 0..<k { accumulateSum(input + (p &* k &+ dx) &* c, into: out + p &* c, count: c) }
                }
            }
            mapVectors(out, out, count: ow * c) { $0 * inverse }
        }
    }
    return result
}

// MARK: - Bicubic

/// The four source indices (clamped to the border) and Keys weights (a = −0.75) of each output position,
/// computed as PyTorch's `upsample_bicubic2d` does with align_corners = False: source = scale · (i + ½) − ½
/// in Float, scale = input / output, no antialiasing (also when shrinking).
func bicubicTaps(input: Int, output: Int) -> (indices: [Int], weights: [Float]) {
    let scale = Float(input) / Float(output), a: Float = -0.75
    var indices = [Int](repeating: 0, count: 4 * output), weights = [Float](repeating: 0, count: 4 * output)
    for i in 0..<output {
        let real = scale * (Float(i) + 0.5) - 0.5
        let index = min(Int(real.rounded(.down)), input - 1)
        let t = min(max(real - Float(index), 0), 1)
        // Keys' cubic convolution: |x| ≤ 1 and 1 < |x| < 2.
        func near(_ x: Float) -> Float { ((a + 2) * x - (a + 3)) * x * x + 1 }
        func far(_ x: Float) -> Float { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
        let taps = [far(t + 1), near(t), near(1 - t), far(2 - t)]
        for j in 0..<4 {
            indices[4 * i + j] = min(max(index - 1 + j, 0), input - 1)
            weights[4 * i + j] = taps[j]
        }
    }
    return (indices, weights)
}

/// Bicubic resizing to height × width, matching `F.interpolate(x, size=(height, width), mode='bicubic',
/// align_corners=False)` (a = −0.75, clamped borders, no antialiasing). Results can leave the input's range
/// (overshoot), as PyTorch's do. Separable: a vertical pass over whole rows, then a horizontal one.
public func resizeBicubic(_ x: Tensor, height outH: Int, width outW: Int) throws -> Tensor {
    let (n, h, w, c) = try x.nhwc("resizeBicubic")
    guard outH > 0, outW > 0 else { throw EngineError.invalidShape([n, outH, outW, c]) }
    let result = try Tensor(uninitializedShape: [n, outH, outW, c])
    let rows = bicubicTaps(input: h, output: outH), columns = bicubicTaps(input: w, output: outW)
    let source = x.data, output = result.data
    rows.indices.withUnsafeBufferPointer { rowIndex in
    rows.weights.withUnsafeBufferPointer { rowWeight in
    columns.indices.withUnsafeBufferPointer { columnIndex in
    columns.weights.withUnsafeBufferPointer { columnWeight in
        Parallel.forRanges(n * outH, grain: 2) { begin, end in
            let line = UnsafeMutablePointer<Float>.allocate(capacity: w * c)
            defer { line.deallocate() }
            for row in begin..<end {
                let image = source + (row / outH) &* h &* w &* c, y = row % outH
                let r = rowIndex.baseAddress! + 4 &* y, rw = rowWeight.baseAddress! + 4 &* y
                weightedSum4(image + r[0] &* w &* c, image + r[1] &* w &* c, image + r[2] &* w &* c,
                             image + r[3] &* w &* c, weights: rw, into: line, count: w * c)
                let out = output + row &* outW &* c
                for p in 0..<outW {
                    let q = columnIndex.baseAddress! + 4 &* p
                    weightedSum4(line + q[0] &* c, line + q[1] &* c, line + q[2] &* c, line + q[3] &* c,
                                 weights: columnWeight.baseAddress! + 4 &* p, into: out + p &* c, count: c)
                }
            }
        }
    }}}}
    return result
}

/// out[i] = Σ_j weights[j] · p_j[i] for four inputs and i < count.
@inline(__always)
func weightedSum4(_ p0: UnsafePointer<Float>, _ p1: UnsafePointer<Float>, _ p2: UnsafePointer<Float>,
                  _ p3: UnsafePointer<Float>, weights: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                  count: Int) {
    let (w0, w1, w2, w3) = (weights[0], weights[1], weights[2], weights[3])
    var i = 0
    while i &+ 8 <= count {
        var s = FloatVector(loading: p0 + i) * w0
        s = s.addingProduct(FloatVector(loading: p1 + i), w1)
        s = s.addingProduct(FloatVector(loading: p2 + i), w2)
        s = s.addingProduct(FloatVector(loading: p3 + i), w3)
        s.store(to: out + i)
        i = i &+ 8
    }
    while i < count {
        out[i] = ((p0[i] * w0 + p1[i] * w1) + p2[i] * w2) + p3[i] * w3
        i = i &+ 1
    }
}

// MARK: - Pixel shuffle

/// `nn.PixelShuffle(r)` on NHWC: [N, H, W, C·r²] → [N, H·r, W·r, C], with PyTorch's channel order
/// (input channel c·r² + i·r + j goes to output pixel offset (i, j), channel c).
public func pixelShuffle(_ x: Tensor, factor r: Int) throws -> Tensor {
    let (n, h, w, cIn) = try x.nhwc("pixelShuffle")
    guard r >= 1, cIn % (r * r) == 0 else {
        throw EngineError.invalidArgument(op: "pixelShuffle", reason: "\(cIn) channels are not a multiple of \(r * r)")
    }
    let c = cIn / (r * r)
    let result = try Tensor(uninitializedShape: [n, h * r, w * r, c])
    let source = x.data, output = result.data
    Parallel.forRanges(n * h * r, grain: 4) { begin, end in
        for row in begin..<end {
            let i = row % r, input = source + (row / r) &* w &* cIn   // (row / r) = n·h + y
            let out = output + row &* w &* r &* c
            for column in 0..<(w * r) {
                let pixel = input + ((column / r) &* cIn &+ i &* r &+ column % r)
                for channel in 0..<c { out[column &* c &+ channel] = pixel[channel &* r &* r] }
            }
        }
    }
    return result
}

/// `nn.PixelUnshuffle(r)` on NHWC: [N, H·r, W·r, C] → [N, H, W, C·r²], the inverse of `pixelShuffle`.
public func pixelUnshuffle(_ x: Tensor, factor r: Int) throws -> Tensor {
    let (n, hIn, wIn, c) = try x.nhwc("pixelUnshuffle")
    guard r >= 1, hIn % r == 0, wIn % r == 0 else {
        throw EngineError.invalidArgument(op: "pixelUnshuffle", reason: "\(x.shape) is not divisible by \(r)")
    }
    let (h, w, cOut) = (hIn / r, wIn / r, c * r * r)
    let result = try Tensor(uninitializedShape: [n, h, w, cOut])
    let source = x.data, output = result.data
    Parallel.forRanges(n * h, grain: 2) { begin, end in
        for row in begin..<end {
            let out = output + row &* w &* cOut
            for i in 0..<r {
                let input = source + (row &* r &+ i) &* wIn &* c   // row·r + i = n·hIn + y·r + i
                for column in 0..<wIn {
                    let destination = out + ((column / r) &* cOut &+ i &* r &+ column % r), pixel = input + column &* c
                    for channel in 0..<c { destination[channel &* r &* r] = pixel[channel] }
                }
            }
        }
    }
    return result
}

// MARK: - Padding

/// How `pad` fills the border.
public enum PaddingMode: Sendable {
    /// Zeros (`F.pad` mode 'constant', value 0).
    case zero
    /// Mirror without repeating the edge (`F.pad` mode 'reflect'): −1 → 1; each amount must be < the size.
    case reflect
    /// Repeat the edge (`F.pad` mode 'replicate').
    case replicate
}

/// Pads height and width of an NHWC tensor by the given amounts, as `F.pad(x, (left, right, top, bottom),
/// mode)` on NCHW; amounts may differ per side (e.g. (0, 1, 0, 1) before a stride-2 conv).
public func pad(_ x: Tensor, left: Int, right: Int, top: Int, bottom: Int, mode: PaddingMode = .zero) throws -> Tensor {
    let op = "pad"
    let (n, h, w, c) = try x.nhwc(op)
    guard min(left, right, top, bottom) >= 0 else { throw EngineError.invalidArgument(op: op, reason: "negative padding") }
    if mode == .reflect, max(left, right) >= w || max(top, bottom) >= h {
        throw EngineError.invalidArgument(op: op, reason: "reflect padding (\(left), \(right), \(top), \(bottom)) must be smaller than \(h)×\(w)")
    }
    let (oh, ow) = (h + top + bottom, w + left + right)
    let result = try Tensor(uninitializedShape: [n, oh, ow, c])
    // Source index of each output index, or −1 for a zero.
    func sourceIndex(_ i: Int, _ size: Int) -> Int {
        if i >= 0 && i < size { return i }
        switch mode {
        case .zero: return -1
        case .replicate: return min(max(i, 0), size - 1)
        case .reflect: return i < 0 ? -i : 2 * (size - 1) - i
        }
    }
    let rowSource = (0..<oh).map { sourceIndex($0 - top, h) }, columnSource = (0..<ow).map { sourceIndex($0 - left, w) }
    let source = x.data, output = result.data
    Parallel.forRanges(n * oh, grain: 4) { begin, end in
        for row in begin..<end {
            let out = output + row &* ow &* c, y = rowSource[row % oh]
            guard y >= 0 else { out.initialize(repeating: 0, count: ow * c); continue }
            let input = source + ((row / oh) &* h &+ y) &* w &* c
            (out + left &* c).update(from: input, count: w * c)
            for column in 0..<ow where column < left || column >= left + w {
                let sx = columnSource[column]
                if sx < 0 { (out + column &* c).initialize(repeating: 0, count: c) }
                else { (out + column &* c).update(from: input + sx &* c, count: c) }
            }
        }
    }
    return result
}
