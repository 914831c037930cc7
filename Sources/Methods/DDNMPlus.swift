import Engine
import Foundation
import Operators

// DDNM+'s rules (DDNM paper §3.3, Eqs. 17–19; official functions/svd_operators.py): the per-singular Λ and
// Λ_noise of each spectral view an operator offers — a block SVD (`SpectralBlocks`), an SVD form
// (`SVDForm`), or a spectral filter (`SpectralFilterOperator`: separable blurs and bicubic, FFT kernels).
// Operators expose the views only; the method's rules live here.

/// DDNM+'s Λ and Λ_noise on a block SVD, as the official operators compute them
/// (functions/svd_operators.py, e.g. `SuperResolution.Lambda` / `Lambda_noise`, lines 253-322).
public enum DDNMPlusSpectral {
    /// Λ v = V diag(λ) Vᵀ v per block, λ_j = s_j σ_t √(1−η²)/(a σy) where σ_t < a σy / s_j, else 1
    /// (zero singulars keep 1); with a = √ᾱ_{t−1}.
    public static func lambda(_ vector: Tensor, _ blocks: SpectralBlocks, a: Float, sigmaY: Float, sigmaT: Float, eta: Float) throws -> Tensor {
        let out = try vector.copy()
        guard a != 0, sigmaY != 0 else { return out }
        let k = blocks.blockSize
        var rotated = [Float](repeating: 0, count: k), scaled = [Float](repeating: 0, count: k)
        for block in 0..<blocks.blockCount {
            let base = block * k
            for j in 0..<k {  // Vᵀ v
                var sum: Float = 0
                for i in 0..<k { sum += blocks.v[i * k + j] * vector.data[blocks.indices[base + i]] }
                rotated[j] = sum
            }
            for j in 0..<k {
                let s = blocks.singular(block, j), inverse: Float = s == 0 ? 0 : 1 / s
                scaled[j] = rotated[j] * (sigmaT < a * sigmaY * inverse ? s * sigmaT * (1 - eta * eta).squareRoot() / a / sigmaY : 1)
            }
            for i in 0..<k {  // V (λ ⊙ Vᵀ v)
                var sum: Float = 0
                for j in 0..<k { sum += blocks.v[i * k + j] * scaled[j] }
                out.data[blocks.indices[base + i]] = sum
            }
        }
        return out
    }

    /// Λ_noise(z, ε) = V(d₁ ⊙ z_b) + V(d₂ ⊙ ε_b) per block, where z_b and ε_b are the block's raw samples
    /// (the official code does not rotate them by Vᵀ first: a quirk, harmless for z, not textbook for ε).
    /// d per component: (σ_t η, σ_t√(1−η²)) by default; (σ_t η, 0) where σ_t < a σy / s_j;
    /// (√(σ_t² − a²σy²/s_j²), 0) where σ_t > a σy / s_j; zero singulars keep the default.
    /// `denoising`: the official `Denoising.Lambda_noise` ignores ε and returns z·√(σ_t² − a²σy²) or z·σ_t η.
    public static func noise(_ z: Tensor, _ epsilon: Tensor, _ blocks: SpectralBlocks, a: Float, sigmaY: Float, sigmaT: Float,
                             eta: Float, denoising: Bool = false) throws -> Tensor {
        let root = (1 - eta * eta).squareRoot()
        if denoising {
            let factor = sigmaT >= a * sigmaY ? (sigmaT * sigmaT - a * a * sigmaY * sigmaY).squareRoot() : sigmaT * eta
            return try scale(z, by: factor)
        }
        let out = try Tensor(shape: z.shape, repeating: 0)
        let k = blocks.blockSize
        var d1 = [Float](repeating: 0, count: k), d2 = [Float](repeating: 0, count: k)
        for block in 0..<blocks.blockCount {
            let base = block * k
            for j in 0..<k {
                d1[j] = sigmaT * eta
                d2[j] = sigmaT * root
                guard a != 0, sigmaY != 0 else { continue }
                let s = blocks.singular(block, j), inverse: Float = s == 0 ? 0 : 1 / s
                if sigmaT < a * sigmaY * inverse { d1[j] = sigmaT * eta; d2[j] = 0 }
                if sigmaT > a * sigmaY * inverse {
                    d1[j] = (max(0, sigmaT * sigmaT - a * a * sigmaY * sigmaY * inverse * inverse)).squareRoot()
                    d2[j] = 0
                }
                if s == 0 { d1[j] = sigmaT * eta; d2[j] = sigmaT * root }
            }
            for i in 0..<k {
                var sum: Float = 0
                for j in 0..<k {
                    let index = blocks.indices[base + j]
                    sum += blocks.v[i * k + j] * (d1[j] * z.data[index] + d2[j] * epsilon.data[index])
                }
                out.data[blocks.indices[base + i]] = sum
            }
        }
        return out
    }
}

/// DDNM+'s Λ and Λ_noise on an SVD form (the per-singular rules of `DDNMPlusSpectral`, in the spectral layout),
/// for operators whose SVD is not block-local (Walsh–Hadamard CS). `raw` is the official Λ_noise's gather of
/// z and ε into the spectral layout without the Vᵀ rotation (the quirk kept by `DDNMPlusSpectral.noise`).
public enum DDNMPlusSVD {
    public static func rules(_ s: Float, a: Float, sigmaY: Float, sigmaT: Float, eta: Float) -> (lambda: Float, d1: Float, d2: Float) {
        let root = (1 - eta * eta).squareRoot()
        guard a != 0, sigmaY != 0 else { return (1, sigmaT * eta, sigmaT * root) }
        let inverse: Float = s == 0 ? 0 : 1 / s
        let lambda: Float = sigmaT < a * sigmaY * inverse ? s * sigmaT * root / a / sigmaY : 1
        var (d1, d2) = (sigmaT * eta, sigmaT * root)
        if sigmaT < a * sigmaY * inverse { d2 = 0 }
        if sigmaT > a * sigmaY * inverse { d1 = max(0, sigmaT * sigmaT - a * a * sigmaY * sigmaY * inverse * inverse).squareRoot(); d2 = 0 }
        if s == 0 { (d1, d2) = (sigmaT * eta, sigmaT * root) }
        return (lambda, d1, d2)
    }

    /// Λ v = V diag(λ) Vᵀ v (channel-major vectors).
    public static func lambda(_ v: [Float], _ form: any SVDForm, a: Float, sigmaY: Float, sigmaT: Float, eta: Float) -> [Float] {
        let s = form.singulars()
        var spectral = form.vt(v)
        for k in 0..<spectral.count { spectral[k] *= rules(k < s.count ? s[k] : 0, a: a, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta).lambda }
        return form.v(spectral)
    }

    /// Λ_noise(z, ε) = V(d₁ ⊙ raw(z) + d₂ ⊙ raw(ε)).
    public static func noise(_ z: [Float], _ epsilon: [Float], _ form: any SVDForm, raw: ([Float]) -> [Float],
                             a: Float, sigmaY: Float, sigmaT: Float, eta: Float) -> [Float] {
        let s = form.singulars()
        let rz = raw(z), re = raw(epsilon)
        var spectral = [Float](repeating: 0, count: rz.count)
        for k in 0..<spectral.count {
            let r = rules(k < s.count ? s[k] : 0, a: a, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta)
            spectral[k] = r.d1 * rz[k] + r.d2 * re[k]
        }
        return form.v(spectral)
    }
}

/// DDNM+'s rules as filters on singular values (for the spectral-filter views).
enum DDNMPlusFilters {
    /// s ↦ λ(s).
    static func lambda(a: Float, sigmaY: Float, sigmaT: Float, eta: Float) -> (Float) -> Float {
        { DDNMPlusSVD.rules($0, a: a, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta).lambda }
    }

    /// s ↦ d₁(s) and s ↦ d₂(s), the weights of z and ε in Λ_noise.
    static func noise(a: Float, sigmaY: Float, sigmaT: Float, eta: Float) -> (d1: (Float) -> Float, d2: (Float) -> Float) {
        ({ DDNMPlusSVD.rules($0, a: a, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta).d1 }, { DDNMPlusSVD.rules($0, a: a, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta).d2 })
    }
}

extension SpectralFilterOperator {
    /// Λ v = V diag(λ(s)) Vᵀ v with the rules of `DDNMPlusSVD.rules`.
    public func ddnmPlusLambda(_ vector: Tensor, a: Float, sigmaY: Float, sigmaT: Float, eta: Float) throws -> Tensor {
        try filterSpectrum(vector, DDNMPlusFilters.lambda(a: a, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta))
    }

    /// Λ_noise(z, ε) = V(d₁(s) ⊙ z' + d₂(s) ⊙ ε') in the operator's noise convention.
    public func ddnmPlusNoise(_ z: Tensor, _ epsilon: Tensor, a: Float, sigmaY: Float, sigmaT: Float, eta: Float) throws -> Tensor {
        let d = DDNMPlusFilters.noise(a: a, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta)
        return try filterSpectrum(z, epsilon, d.d1, d.d2)
    }

    public func ddnmPlusAvailable(imageShape: [Int]) -> Bool { spectralFilterAvailable(imageShape: imageShape) }
}

extension SeparableSpectrum {
    /// Λ v in this basis (tests inject the official V to replay the official Λ).
    public func lambda(_ vector: Tensor, a: Float, sigmaY: Float, sigmaT: Float, eta: Float) throws -> Tensor {
        try filter(vector, DDNMPlusFilters.lambda(a: a, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta))
    }

    /// Λ_noise(z, ε) in this basis, z and ε raw.
    public func noise(_ z: Tensor, _ epsilon: Tensor, a: Float, sigmaY: Float, sigmaT: Float, eta: Float) throws -> Tensor {
        let d = DDNMPlusFilters.noise(a: a, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta)
        return try filter(z, epsilon, d.d1, d.d2)
    }
}
