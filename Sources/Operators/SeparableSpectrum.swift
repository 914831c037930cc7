import Engine
import Foundation

/// The singular basis of a separable operator A = A_v ⊗ A_h (blur, bicubic) as a filter: the 2-D basis
/// V_v ⊗ V_h of right-singular vectors, with the per-coordinate singular s_ij = s_v[i]·s_h[j]. DDNM+'s Λ and
/// Λ_noise (Methods, `DDNMPlusRules`) run through it as the official `Deblurring.Lambda` / `Lambda_noise`
/// compute them (functions/svd_operators.py:1016-1091):
/// - Λ uses the **untruncated** singulars (`_singulars_orig`), one per pixel coordinate, applied to every
///   channel alike — so Λ is free of the tiling bug of `Deblurring.singulars()` (README).
/// - Λ_noise takes z and ε raw, without rotating them by Vᵀ (the quirk every official Λ_noise has); the
///   official sort permutation cancels between its gather and scatter, so the coordinate (i, j) takes the
///   sample at pixel (i, j).
/// The official code has a Λ only for `Deblurring` (uniform and Gaussian blur); the same rule serves the
/// anisotropic blur, the K-tap kernels and bicubic SR here (bicubic: V completed to a square basis, the
/// null coordinates having singular 0).
public struct SeparableSpectrum: Sendable {
    public struct Axis: Sendable {
        /// Side n; V is n×n row-major (column k = right-singular vector k); singulars has n entries (zeros past the rank).
        public let size: Int
        public var v: [Float]
        public let singulars: [Float]
        public init(size: Int, v: [Float], singulars: [Float]) {
            self.size = size
            self.v = v
            self.singulars = singulars
        }
    }

    public var vertical: Axis
    public var horizontal: Axis

    public init(vertical: Axis, horizontal: Axis) {
        self.vertical = vertical
        self.horizontal = horizontal
    }

    /// (V_v ⊗ V_h) diag(f(s_ij)) (V_v ⊗ V_h)ᵀ x, per sample and channel (NHWC tensors).
    public func filter(_ x: Tensor, _ f: (Float) -> Float) throws -> Tensor {
        try map(x, nil) { s, value, _ in value * f(s) }
    }

    /// (V_v ⊗ V_h)(f₁(s_ij) z_ij + f₂(s_ij) ε_ij), z and ε raw (unrotated: the official Λ_noise's convention).
    public func filter(_ z: Tensor, _ epsilon: Tensor, _ f1: (Float) -> Float, _ f2: (Float) -> Float) throws -> Tensor {
        try map(z, epsilon) { s, zij, eij in f1(s) * zij + f2(s) * eij }
    }

    /// For each (sample, channel) plane: S = V_vᵀ X V_h (only when `second` is nil: Λ rotates, Λ_noise
    /// does not), S'_ij = f(s_ij, S_ij, E_ij), out = V_v S' V_hᵀ.
    private func map(_ x: Tensor, _ second: Tensor?, _ f: (Float, Float, Float) -> Float) throws -> Tensor {
        let (n, h, w, c) = try x.nhwc("DDNM+ Λ")
        guard h == vertical.size, w == horizontal.size else {
            throw OperatorError("DDNM+ Λ: the operator was built for \(horizontal.size)×\(vertical.size) images, got \(w)×\(h)")
        }
        if let second, second.shape != x.shape { throw OperatorError("DDNM+ Λ_noise: z and ε differ in shape") }
        let out = try Tensor(uninitializedShape: x.shape)
        var plane = [Float](repeating: 0, count: h * w), other = [Float](repeating: 0, count: h * w)
        for b in 0..<n { for ch in 0..<c {
            for p in 0..<(h * w) { plane[p] = x.data[(b * h * w + p) * c + ch] }
            if let second {
                for p in 0..<(h * w) { other[p] = second.data[(b * h * w + p) * c + ch] }
            } else {
                plane = Self.sandwich(plane, vertical.v, h, horizontal.v, w, transposed: true)
            }
            for i in 0..<h { for j in 0..<w {
                let s = vertical.singulars[i] * horizontal.singulars[j]
                plane[i * w + j] = f(s, plane[i * w + j], other[i * w + j])
            } }
            let result = Self.sandwich(plane, vertical.v, h, horizontal.v, w, transposed: false)
            for p in 0..<(h * w) { out.data[(b * h * w + p) * c + ch] = result[p] }
        } }
        return out
    }

    /// transposed: L ᵀ X R; otherwise L X Rᵀ (L h×h, R w×w, X h×w, row-major).
    static func sandwich(_ x: [Float], _ left: [Float], _ h: Int, _ right: [Float], _ w: Int, transposed: Bool) -> [Float] {
        var t = [Float](repeating: 0, count: h * w)
        for i in 0..<h { for k in 0..<h {
            let l = transposed ? left[k * h + i] : left[i * h + k]
            guard l != 0 else { continue }
            for j in 0..<w { t[i * w + j] += l * x[k * w + j] }
        } }
        var out = [Float](repeating: 0, count: h * w)
        for i in 0..<h { for j in 0..<w {
            var sum: Float = 0
            if transposed { for k in 0..<w { sum += t[i * w + k] * right[k * w + j] } }
            else { for k in 0..<w { sum += t[i * w + k] * right[j * w + k] } }
            out[i * w + j] = sum
        } }
        return out
    }
}

/// An operator that offers its singular basis as a filter (separable blurs and bicubic, FFT kernels): the
/// spectral view a method needs to scale an image's coordinates by functions of the singular values
/// (DDNM+'s Λ lives in Methods). `filterSpectrum(z, ε, f₁, f₂)` combines two images in the operator's own
/// convention for noise (raw samples for the separable forms, as the official code; rotated for FFT kernels).
public protocol SpectralFilterOperator: DegradationOperator {
    /// Whether the filter exists for images of this shape (a size-dependent operator may build one without it).
    func spectralFilterAvailable(imageShape: [Int]) -> Bool
    /// V diag(f(s)) Vᵀ x.
    func filterSpectrum(_ x: Tensor, _ f: (Float) -> Float) throws -> Tensor
    /// V (f₁(s) ⊙ z' + f₂(s) ⊙ ε'), z' and ε' in the operator's noise convention.
    func filterSpectrum(_ z: Tensor, _ epsilon: Tensor, _ f1: (Float) -> Float, _ f2: (Float) -> Float) throws -> Tensor
}

extension SeparableOperator: SpectralFilterOperator {
    public func spectralFilterAvailable(imageShape: [Int]) -> Bool { (try? observationShape(for: imageShape)) != nil }

    public func filterSpectrum(_ x: Tensor, _ f: (Float) -> Float) throws -> Tensor { try spectrum.filter(x, f) }

    public func filterSpectrum(_ z: Tensor, _ epsilon: Tensor, _ f1: (Float) -> Float, _ f2: (Float) -> Float) throws -> Tensor {
        try spectrum.filter(z, epsilon, f1, f2)
    }
}

extension SizedOperator: SpectralFilterOperator {
    public func spectralFilterAvailable(imageShape: [Int]) -> Bool {
        guard imageShape.count == 4, let op = try? sized(height: imageShape[1], width: imageShape[2]) as? any SpectralFilterOperator else { return false }
        return op.spectralFilterAvailable(imageShape: imageShape)
    }

    private func filterOperator(_ shape: [Int]) throws -> any SpectralFilterOperator {
        guard shape.count == 4, let op = try sized(height: shape[1], width: shape[2]) as? any SpectralFilterOperator else {
            throw OperatorError("\(spec) has no spectral filter")
        }
        return op
    }

    public func filterSpectrum(_ x: Tensor, _ f: (Float) -> Float) throws -> Tensor { try filterOperator(x.shape).filterSpectrum(x, f) }

    public func filterSpectrum(_ z: Tensor, _ epsilon: Tensor, _ f1: (Float) -> Float, _ f2: (Float) -> Float) throws -> Tensor {
        try filterOperator(z.shape).filterSpectrum(z, epsilon, f1, f2)
    }
}
