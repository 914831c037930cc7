import Engine
import Foundation

/// DDNM+'s Λ and Λ_noise for a separable operator A = A_v ⊗ A_h (blur, bicubic), in the 2-D basis
/// V_v ⊗ V_h of right-singular vectors, with the per-coordinate singular s_ij = s_v[i]·s_h[j] — as the
/// official `Deblurring.Lambda` / `Lambda_noise` compute them (functions/svd_operators.py:1016-1091):
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

    /// Λ v = (V_v ⊗ V_h) diag(λ(s_ij)) (V_v ⊗ V_h)ᵀ v, per sample and channel (NHWC tensors).
    public func lambda(_ vector: Tensor, a: Float, sigmaY: Float, sigmaT: Float, eta: Float) throws -> Tensor {
        try map(vector, nil) { s, x, _ in x * DDNMPlusSVD.rules(s, a: a, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta).lambda }
    }

    /// Λ_noise(z, ε) = (V_v ⊗ V_h)(d₁(s_ij) z_ij + d₂(s_ij) ε_ij), z and ε raw (unrotated).
    public func noise(_ z: Tensor, _ epsilon: Tensor, a: Float, sigmaY: Float, sigmaT: Float, eta: Float) throws -> Tensor {
        try map(z, epsilon) { s, zij, eij in
            let r = DDNMPlusSVD.rules(s, a: a, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta)
            return r.d1 * zij + r.d2 * eij
        }
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

/// An operator that computes DDNM+'s Λ and Λ_noise itself (in its own singular basis).
public protocol DDNMPlusProviding: DegradationOperator {
    /// Whether Λ exists for images of this shape (a size-dependent operator may build one without it).
    func ddnmPlusAvailable(imageShape: [Int]) -> Bool
    func ddnmPlusLambda(_ vector: Tensor, a: Float, sigmaY: Float, sigmaT: Float, eta: Float) throws -> Tensor
    func ddnmPlusNoise(_ z: Tensor, _ epsilon: Tensor, a: Float, sigmaY: Float, sigmaT: Float, eta: Float) throws -> Tensor
}

extension SeparableOperator: DDNMPlusProviding {
    public func ddnmPlusAvailable(imageShape: [Int]) -> Bool { (try? observationShape(for: imageShape)) != nil }

    public func ddnmPlusLambda(_ vector: Tensor, a: Float, sigmaY: Float, sigmaT: Float, eta: Float) throws -> Tensor {
        try spectrum.lambda(vector, a: a, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta)
    }

    public func ddnmPlusNoise(_ z: Tensor, _ epsilon: Tensor, a: Float, sigmaY: Float, sigmaT: Float, eta: Float) throws -> Tensor {
        try spectrum.noise(z, epsilon, a: a, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta)
    }
}

extension SizedOperator: DDNMPlusProviding {
    public func ddnmPlusAvailable(imageShape: [Int]) -> Bool {
        guard imageShape.count == 4, let op = try? sized(height: imageShape[1], width: imageShape[2]) as? any DDNMPlusProviding else { return false }
        return op.ddnmPlusAvailable(imageShape: imageShape)
    }

    private func plus(_ shape: [Int]) throws -> any DDNMPlusProviding {
        guard shape.count == 4, let op = try sized(height: shape[1], width: shape[2]) as? any DDNMPlusProviding else {
            throw OperatorError("\(spec) has no DDNM+ Λ")
        }
        return op
    }

    public func ddnmPlusLambda(_ vector: Tensor, a: Float, sigmaY: Float, sigmaT: Float, eta: Float) throws -> Tensor {
        try plus(vector.shape).ddnmPlusLambda(vector, a: a, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta)
    }

    public func ddnmPlusNoise(_ z: Tensor, _ epsilon: Tensor, a: Float, sigmaY: Float, sigmaT: Float, eta: Float) throws -> Tensor {
        try plus(z.shape).ddnmPlusNoise(z, epsilon, a: a, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta)
    }
}
