import Engine
import Foundation

/// Identity: denoising (y = x + noise; DDNM+ handles the noise through σy).
public struct IdentityOperator: DegradationOperator {
    public init() {}
    public var spec: String { "noise" }
    public func observationShape(for imageShape: [Int]) throws -> [Int] { imageShape }
    public func imageShape(for observationShape: [Int]) throws -> [Int] { observationShape }
    public func apply(_ x: Tensor) throws -> Tensor { try x.copy() }
    public func pseudoInverse(_ y: Tensor) throws -> Tensor { try y.copy() }
}

/// Super-resolution by s×s average pooling (DDNM `sr_averagepooling`): A averages each s×s block;
/// A† repeats each value over its block (the official `MeanUpsample`), so A A† = I.
public struct AveragePoolingOperator: DegradationOperator {
    public let factor: Int
    public init(factor: Int) throws {
        guard (1...64).contains(factor) else { throw OperatorError("pool factor must be between 1 and 64, got \(factor)") }
        self.factor = factor
    }
    public var spec: String { "pool:\(factor)" }

    public func observationShape(for s: [Int]) throws -> [Int] {
        guard s.count == 4, s[1] % factor == 0, s[2] % factor == 0 else {
            throw OperatorError("pool:\(factor) needs an image whose sides are multiples of \(factor), got \(s.count == 4 ? "\(s[2])×\(s[1])" : "\(s)")")
        }
        return [s[0], s[1] / factor, s[2] / factor, s[3]]
    }
    public func imageShape(for s: [Int]) throws -> [Int] { [s[0], s[1] * factor, s[2] * factor, s[3]] }
    public func apply(_ x: Tensor) throws -> Tensor {
        _ = try observationShape(for: x.shape)
        return factor == 1 ? try x.copy() : try averagePool(x, kernel: factor)
    }

    public func pseudoInverse(_ y: Tensor) throws -> Tensor {
        let (n, h, w, c) = try y.nhwc("pool A†")
        let s = factor
        let x = try Tensor(uninitializedShape: [n, h * s, w * s, c])
        Parallel.forRanges(n * h * s, grain: 8) { begin, end in
            for row in begin..<end {
                let b = row / (h * s), yy = (row % (h * s)) / s
                let source = y.data + ((b * h + yy) * w) * c
                let destination = x.data + row * w * s * c
                for xx in 0..<w { for k in 0..<s { (destination + (xx * s + k) * c).update(from: source + xx * c, count: c) } }
            }
        }
        return x
    }
}

/// Colorization (DDNM `colorization`): y = Σ w_c x_c, one channel; A† y = w y / |w|².
/// The simplified path uses w = (1/3, 1/3, 1/3) (its `color2gray`; A† then repeats y into the three
/// channels, as `gray2color`); the SVD path's `Colorization` uses w = (0.3333, 0.3334, 0.3333)
/// (functions/svd_operators.py:627).
public struct GrayscaleOperator: DegradationOperator {
    public let weights: (Float, Float, Float)
    public init(weights: (Float, Float, Float) = (1.0 / 3, 1.0 / 3, 1.0 / 3)) { self.weights = weights }
    /// The SVD path's weights.
    public static let svdWeights: (Float, Float, Float) = (0.3333, 0.3334, 0.3333)
    public var spec: String { "gray" }
    public func observationShape(for s: [Int]) throws -> [Int] {
        guard s.count == 4, s[3] == 3 else { throw OperatorError("gray needs a 3-channel image, got \(s)") }
        return [s[0], s[1], s[2], 1]
    }
    public func imageShape(for s: [Int]) throws -> [Int] { [s[0], s[1], s[2], 3] }
    public func apply(_ x: Tensor) throws -> Tensor {
        let shape = try observationShape(for: x.shape)
        let y = try Tensor(uninitializedShape: shape)
        let (r, g, b) = weights
        for p in 0..<y.count { y.data[p] = r * x.data[3 * p] + g * x.data[3 * p + 1] + b * x.data[3 * p + 2] }
        return y
    }
    public func pseudoInverse(_ y: Tensor) throws -> Tensor {
        guard y.shape.count == 4, y.shape[3] == 1 else { throw OperatorError("gray A† needs a 1-channel observation, got \(y.shape)") }
        let x = try Tensor(uninitializedShape: try imageShape(for: y.shape))
        let (r, g, b) = weights
        let norm = r * r + g * g + b * b
        let (pr, pg, pb) = (r / norm, g / norm, b / norm)
        for p in 0..<y.count { let v = y.data[p]; x.data[3 * p] = pr * v; x.data[3 * p + 1] = pg * v; x.data[3 * p + 2] = pb * v }
        return x
    }
}

/// Inpainting (DDNM `inpainting`): A keeps the known pixels and zeroes the holes; A† = A.
/// `keep` is [H, W] with 1 = known, 0 = hole (the project's mask images read white = hole, see `MaskImage`).
public struct MaskOperator: DegradationOperator {
    public let keep: Tensor
    public let source: String

    public init(keep: Tensor, source: String) throws {
        guard keep.shape.count == 2 else { throw OperatorError("a mask must be [H, W], got \(keep.shape)") }
        self.keep = keep
        self.source = source
    }
    public var spec: String { "mask:\(source)" }
    public var holeFraction: Double { Double(keep.values.filter { $0 < 0.5 }.count) / Double(keep.count) }

    public func observationShape(for s: [Int]) throws -> [Int] {
        guard s.count == 4, s[1] == keep.shape[0], s[2] == keep.shape[1] else {
            throw OperatorError("the mask is \(keep.shape[1])×\(keep.shape[0]) but the image is \(s.count == 4 ? "\(s[2])×\(s[1])" : "\(s)") (\(source))")
        }
        return s
    }
    public func imageShape(for s: [Int]) throws -> [Int] { try observationShape(for: s) }
    public func apply(_ x: Tensor) throws -> Tensor {
        let (n, h, w, c) = try x.nhwc("mask A")
        _ = try observationShape(for: x.shape)
        let y = try Tensor(uninitializedShape: x.shape)
        for b in 0..<n { for p in 0..<(h * w) {
            let m = keep.data[p], base = (b * h * w + p) * c
            for k in 0..<c { y.data[base + k] = x.data[base + k] * m }
        } }
        return y
    }
    public func pseudoInverse(_ y: Tensor) throws -> Tensor { try apply(y) }
}

/// A ∘ … composition, applied first to last (`mask:m.png,gray,pool:2` = pool(gray(mask(x))), the official
/// `mask_color_sr` / `diy` order); A† applies the pseudo-inverses last to first, as the official code does.
/// That product is the exact pseudo-inverse when the parts commute with each other's projections
/// (gray with pool or mask; a mask aligned to the pooling blocks); otherwise it is the official approximation.
public struct CompositeOperator: DegradationOperator {
    public let parts: [any DegradationOperator]
    public init(_ parts: [any DegradationOperator]) { self.parts = parts }
    public var spec: String { parts.map(\.spec).joined(separator: ",") }
    public func observationShape(for s: [Int]) throws -> [Int] { try parts.reduce(s) { try $1.observationShape(for: $0) } }
    public func imageShape(for s: [Int]) throws -> [Int] { try parts.reversed().reduce(s) { try $1.imageShape(for: $0) } }
    public func apply(_ x: Tensor) throws -> Tensor { try parts.reduce(x) { try $1.apply($0) } }
    public func pseudoInverse(_ y: Tensor) throws -> Tensor { try parts.reversed().reduce(y) { try $1.pseudoInverse($0) } }
}
