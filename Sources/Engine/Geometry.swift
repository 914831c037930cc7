/// Window geometry shared by every tiled computation: rects, crops and pastes, gcd/lcm.

/// A rectangle of pixels: rows y..<y+height, columns x..<x+width.
public struct PixelRect: Equatable, Sendable, CustomStringConvertible {
    public var y: Int, x: Int, height: Int, width: Int
    public init(y: Int, x: Int, height: Int, width: Int) {
        self.y = y
        self.x = x
        self.height = height
        self.width = width
    }
    public var description: String { "\(width)×\(height)+\(x)+\(y)" }

    /// The rect scaled down by `factor` (exact for aligned rects).
    public func divided(by factor: Int) -> PixelRect { PixelRect(y: y / factor, x: x / factor, height: height / factor, width: width / factor) }
}

/// Greatest common divisor (gcd(a, 0) = a).
public func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
/// Least common multiple (0 if either is 0).
public func lcm(_ a: Int, _ b: Int) -> Int { a == 0 || b == 0 ? 0 : a / gcd(a, b) * b }

extension Tensor {
    /// The rect of sample 0 of an NHWC tensor, as a new [1, h, w, C] tensor.
    public func crop(_ rect: PixelRect) throws -> Tensor {
        let (_, h, w, c) = try nhwc("crop")
        guard rect.y >= 0, rect.x >= 0, rect.height > 0, rect.width > 0, rect.y + rect.height <= h, rect.x + rect.width <= w else {
            throw EngineError.invalidArgument(op: "crop", reason: "\(rect) lies outside the \(w)×\(h) image")
        }
        let out = try Tensor(uninitializedShape: [1, rect.height, rect.width, c])
        for r in 0..<rect.height {
            (out.data + r * rect.width * c).update(from: data + ((rect.y + r) * w + rect.x) * c, count: rect.width * c)
        }
        return out
    }

    /// Writes `patch` ([1, h, w, C]) into sample 0 of this NHWC tensor at `rect`'s origin.
    public func paste(_ patch: Tensor, at rect: PixelRect) throws {
        let (_, h, w, c) = try nhwc("paste")
        guard patch.shape == [1, rect.height, rect.width, c], rect.y >= 0, rect.x >= 0, rect.y + rect.height <= h, rect.x + rect.width <= w else {
            throw EngineError.invalidArgument(op: "paste", reason: "\(patch.shape) at \(rect) does not fit the \(w)×\(h)×\(c) image")
        }
        for r in 0..<rect.height {
            (data + ((rect.y + r) * w + rect.x) * c).update(from: patch.data + r * rect.width * c, count: rect.width * c)
        }
    }
}


extension Tensor {
    /// Tensors of equal shape [n, …] stacked along the batch dimension into one [Σn, …] tensor.
    public static func stackingBatch(_ parts: [Tensor]) throws -> Tensor {
        guard let first = parts.first, first.shape.count >= 2 else { throw EngineError.invalidArgument(op: "stack", reason: "nothing to stack") }
        let inner = Array(first.shape.dropFirst())
        guard parts.allSatisfy({ Array($0.shape.dropFirst()) == inner }) else {
            throw EngineError.shapeMismatch(op: "stack", expected: "samples of \(inner)", found: "\(parts.map(\.shape))")
        }
        let out = try Tensor(uninitializedShape: [parts.reduce(0) { $0 + $1.shape[0] }] + inner)
        var offset = 0
        for part in parts {
            (out.data + offset).update(from: part.data, count: part.count)
            offset += part.count
        }
        return out
    }

    /// Sample `index` of the batch as a new [1, …] tensor.
    public func sample(_ index: Int) throws -> Tensor {
        guard shape.count >= 2, (0..<shape[0]).contains(index) else {
            throw EngineError.invalidArgument(op: "sample", reason: "sample \(index) of a batch of \(shape.first ?? 0)")
        }
        let size = count / shape[0]
        let out = try Tensor(uninitializedShape: [1] + shape.dropFirst())
        out.data.update(from: data + index * size, count: size)
        return out
    }
}
