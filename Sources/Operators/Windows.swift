import Engine
import Foundation

/// An operator that can be restricted to a window of the image, for tiled restoration (USDR's mask-shift
/// windows): A_w acts on the window's pixels and observes a rect of y. Local operators only — each
/// observation sample depends on pixels inside one aligned block.
public protocol WindowableOperator: DegradationOperator {
    /// Windows and their offsets must be multiples of this (s for s×s pooling, 1 for per-pixel operators).
    var windowAlignment: Int { get }
    /// The operator of the image window `rect` (aligned) of an image of `imageShape` ([N, H, W, C]) and the rect
    /// of y it observes (operators with a support wider than a pixel observe only the samples whose support
    /// lies inside the window: a halo).
    func window(_ rect: PixelRect, imageShape: [Int]) throws -> (operator: any DegradationOperator, observation: PixelRect)
    /// How far (in pixels) an observation sample reaches across a window edge: 0 for pixel- and block-local
    /// operators; the kernel's span for blurs and bicubic. Tiling leaves that ring of a finished window free
    /// for its neighbour, which observes the samples straddling the edge.
    var windowHalo: Int { get }
}

extension WindowableOperator {
    public var windowHalo: Int { 0 }
}

extension SizedOperator: WindowableOperator {
    /// 0 (not windowable) unless the operator has a window form.
    public var windowAlignment: Int { local?.alignment ?? 0 }
    public var windowHalo: Int { local?.halo ?? 0 }
    public func window(_ rect: PixelRect, imageShape: [Int]) throws -> (operator: any DegradationOperator, observation: PixelRect) {
        guard let local else { throw OperatorError("\(spec) cannot be restricted to a window (a global operator)") }
        guard imageShape.count == 4, rect.y >= 0, rect.x >= 0, rect.y + rect.height <= imageShape[1], rect.x + rect.width <= imageShape[2],
              rect.y % local.alignment == 0, rect.x % local.alignment == 0, rect.height % local.alignment == 0, rect.width % local.alignment == 0 else {
            throw OperatorError("\(spec): window \(rect) is not an aligned part of the image \(imageShape)")
        }
        return try local.window(rect, imageShape)
    }
}

extension BlockCSOperator: WindowableOperator {
    /// Windows are made of whole 32×32 blocks; y's layout ([N, H/32, (W/32)·M, C]) makes their coefficients a rect.
    public var windowAlignment: Int { Self.blockSide }
    public func window(_ rect: PixelRect, imageShape: [Int]) throws -> (operator: any DegradationOperator, observation: PixelRect) {
        let b = Self.blockSide
        guard rect.y % b == 0, rect.x % b == 0, rect.height % b == 0, rect.width % b == 0, rect.height > 0, rect.width > 0 else {
            throw OperatorError("\(spec) windows must be made of whole 32×32 blocks, got \(rect)")
        }
        return (self, PixelRect(y: rect.y / b, x: rect.x / b * kept, height: rect.height / b, width: rect.width / b * kept))
    }
}

extension IdentityOperator: WindowableOperator {
    public var windowAlignment: Int { 1 }
    public func window(_ rect: PixelRect, imageShape: [Int]) throws -> (operator: any DegradationOperator, observation: PixelRect) { (self, rect) }
}

extension GrayscaleOperator: WindowableOperator {
    public var windowAlignment: Int { 1 }
    public func window(_ rect: PixelRect, imageShape: [Int]) throws -> (operator: any DegradationOperator, observation: PixelRect) { (self, rect) }
}

extension AveragePoolingOperator: WindowableOperator {
    public var windowAlignment: Int { factor }
    public func window(_ rect: PixelRect, imageShape: [Int]) throws -> (operator: any DegradationOperator, observation: PixelRect) {
        guard rect.y % factor == 0, rect.x % factor == 0, rect.height % factor == 0, rect.width % factor == 0 else {
            throw OperatorError("pool:\(factor) windows must be aligned to \(factor) px, got \(rect)")
        }
        return (self, rect.divided(by: factor))
    }
}

extension MaskOperator: WindowableOperator {
    public var windowAlignment: Int { 1 }
    public func window(_ rect: PixelRect, imageShape: [Int]) throws -> (operator: any DegradationOperator, observation: PixelRect) {
        let (h, w) = (keep.shape[0], keep.shape[1])
        _ = try observationShape(for: imageShape)  // the mask is the image's size
        guard rect.y >= 0, rect.x >= 0, rect.y + rect.height <= h, rect.x + rect.width <= w else {
            throw OperatorError("window \(rect) lies outside the \(w)×\(h) mask (\(source))")
        }
        let crop = try Tensor(uninitializedShape: [rect.height, rect.width])
        for r in 0..<rect.height {
            (crop.data + r * rect.width).update(from: keep.data + (rect.y + r) * w + rect.x, count: rect.width)
        }
        return (try MaskOperator(keep: crop, source: source), rect)
    }
}

extension CompositeOperator: WindowableOperator {
    /// The product of the parts' alignments, each scaled by the pooling before it (conservative).
    public var windowAlignment: Int {
        var scale = 1, alignment = 1
        for part in parts {
            // Parts with a halo (blur, bicubic) would shift the windows of the parts after them: not composed.
            guard let local = part as? any WindowableOperator, local.windowAlignment > 0, local.windowHalo == 0 || parts.count == 1 else { return 0 }
            alignment = lcm(alignment, local.windowAlignment * scale)
            if let pool = part as? AveragePoolingOperator { scale *= pool.factor }
        }
        return alignment
    }

    public func window(_ rect: PixelRect, imageShape: [Int]) throws -> (operator: any DegradationOperator, observation: PixelRect) {
        var current = rect, restricted: [any DegradationOperator] = []
        var shape = imageShape
        for part in parts {
            guard let local = part as? any WindowableOperator else { throw OperatorError("\(part.spec) cannot be restricted to a window") }
            let (op, next) = try local.window(current, imageShape: shape)
            restricted.append(op)
            current = next
            shape = try part.observationShape(for: shape)
        }
        return (CompositeOperator(restricted), current)
    }

    /// True when every part can be restricted to windows.
    public var isWindowable: Bool { windowAlignment > 0 }
}

// MARK: Hierarchical restoration (USDR's HiR)

/// An operator with a coarse counterpart for USDR's hierarchical pass, which restores x_g = pool_f(x) at
/// 1/f of the size: A_g with A_g pool_f = pool_{s/f} A-style commutation (gray, masks aligned to f, noise
/// and pooling commute with pool_f), so the coarse observation is y itself when A ends with a pooling and
/// A_g(pool_f(A† y)) otherwise (`HierarchicalRestoration`).
public protocol HierarchicalOperator: WindowableOperator {
    /// A_g for x_g = pool_f(x), or nil when y already fixes pool_f(x) (pooling SR with f ≥ s: HiR would
    /// add nothing) or no exact coarse form exists.
    func coarseOperator(by f: Int) throws -> (any DegradationOperator)?
    /// Per pixel of the window (row-major), 1 where the operator leaves the pixel free (a hole of a mask),
    /// or nil when every pixel may take the block-mean correction (gray, pooling, noise).
    func freePixels(_ rect: PixelRect) -> [Float]?
    /// True when A ends with a pooling (y is then already coarse).
    var observesPooled: Bool { get }
}

extension HierarchicalOperator {
    public func freePixels(_ rect: PixelRect) -> [Float]? { nil }
    public var observesPooled: Bool { false }
}

extension IdentityOperator: HierarchicalOperator {
    public func coarseOperator(by f: Int) throws -> (any DegradationOperator)? { self }
}

extension GrayscaleOperator: HierarchicalOperator {
    public func coarseOperator(by f: Int) throws -> (any DegradationOperator)? { self }
}

extension AveragePoolingOperator: HierarchicalOperator {
    /// pool_s = pool_{s/f} ∘ pool_f when f divides s and f < s: the coarse problem is SR ×s/f of the same y.
    public func coarseOperator(by f: Int) throws -> (any DegradationOperator)? {
        guard f < factor, factor % f == 0 else { return nil }
        return try AveragePoolingOperator(factor: factor / f)
    }
    public var observesPooled: Bool { true }
}

extension MaskOperator: HierarchicalOperator {
    /// A block of the coarse image is known when all its pixels are.
    public func coarseOperator(by f: Int) throws -> (any DegradationOperator)? {
        let (h, w) = (keep.shape[0], keep.shape[1])
        guard h % f == 0, w % f == 0 else { return nil }
        let coarse = try Tensor(uninitializedShape: [h / f, w / f])
        for by in 0..<(h / f) { for bx in 0..<(w / f) {
            var all: Float = 1
            for r in 0..<f { for c in 0..<f where keep.data[(by * f + r) * w + bx * f + c] < 0.5 { all = 0 } }
            coarse.data[by * (w / f) + bx] = all
        } }
        return try MaskOperator(keep: coarse, source: source + " (÷\(f))")
    }

    /// True when every f×f block is all known or all hole.
    public func isUniform(onBlocksOf f: Int) -> Bool {
        let (h, w) = (keep.shape[0], keep.shape[1])
        guard h % f == 0, w % f == 0 else { return false }
        for r in 0..<h { for c in 0..<w where (keep.data[r * w + c] < 0.5) != (keep.data[(r / f * f) * w + c / f * f] < 0.5) { return false } }
        return true
    }

    public func freePixels(_ rect: PixelRect) -> [Float]? {
        let w = keep.shape[1]
        var free = [Float](repeating: 0, count: rect.height * rect.width)
        for r in 0..<rect.height { for c in 0..<rect.width { free[r * rect.width + c] = 1 - keep.data[(rect.y + r) * w + rect.x + c] } }
        return free
    }
}

extension CompositeOperator: HierarchicalOperator {
    /// Part by part; a pooling may only come last (the parts before it act on full-resolution pixels).
    public func coarseOperator(by f: Int) throws -> (any DegradationOperator)? {
        guard !parts.dropLast().contains(where: { $0 is AveragePoolingOperator }) else { return nil }
        // y is reused as the coarse observation only when every mask is uniform on f×f blocks.
        if observesPooled, parts.contains(where: { ($0 as? MaskOperator).map { !$0.isUniform(onBlocksOf: f) } ?? false }) { return nil }
        var coarse: [any DegradationOperator] = []
        for part in parts {
            guard let h = part as? any HierarchicalOperator, let op = try h.coarseOperator(by: f) else { return nil }
            coarse.append(op)
        }
        return CompositeOperator(coarse)
    }

    public func freePixels(_ rect: PixelRect) -> [Float]? {
        var free: [Float]?
        for part in parts {
            guard let mask = part as? MaskOperator, let own = mask.freePixels(rect) else { continue }
            free = free.map { zip($0, own).map { $0 * $1 } } ?? own
        }
        return free
    }

    public var observesPooled: Bool { parts.last is AveragePoolingOperator }
}
