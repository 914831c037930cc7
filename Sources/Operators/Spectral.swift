import Engine
import Foundation

/// The singular-value form DDNM+ needs for its per-singular Λ and Λ_noise (DDNM paper §3.3, Eqs. 17–19 with
/// A = U Σ Vᵀ), for operators whose SVD splits into small independent blocks of the image: s×s patches of
/// a channel (average pooling), the 3 channels of a pixel (colorization), single samples (inpainting).
/// Each block has a k×k orthonormal V (shared by all blocks) and k singular values (shared, or per block).
public struct SpectralBlocks {
    /// Components per block (k).
    public let blockSize: Int
    /// For block b and component j, the NHWC element index: `indices[b * k + j]`.
    public let indices: [Int]
    /// V, k×k row-major (column j is the right-singular vector of component j).
    public var v: [Float]
    /// The singular values: k (shared by every block) or blockCount·k.
    public let singulars: [Float]

    public var blockCount: Int { indices.count / blockSize }

    func singular(_ block: Int, _ j: Int) -> Float { singulars.count == blockSize ? singulars[j] : singulars[block * blockSize + j] }

    /// An orthonormal k×k V whose first column is `first` (unit length): a Householder reflection taking
    /// e₀ to it, so the completion is deterministic. (LAPACK's completion differs; Λ does not depend on it,
    /// and Λ_noise only in law. Tests inject the official matrices to replay runs exactly.)
    public static func basis(withFirstColumn first: [Float]) -> [Float] {
        let k = first.count
        var u = first.map { -$0 }
        u[0] += 1
        let norm2 = u.reduce(0) { $0 + $1 * $1 }
        var v = [Float](repeating: 0, count: k * k)
        for r in 0..<k { for c in 0..<k { v[r * k + c] = (r == c ? 1 : 0) - (norm2 > 1e-12 ? 2 * u[r] * u[c] / norm2 : 0) } }
        return v
    }
}

/// An operator with a block SVD (see `SpectralBlocks`).
public protocol SpectralOperator: DegradationOperator {
    func spectralBlocks(imageShape: [Int]) throws -> SpectralBlocks
}

extension AveragePoolingOperator: SpectralOperator {
    /// Blocks: (batch, channel, patch) in the official order (channel-major, patches row-major), components
    /// the patch's pixels row-major; A_small = (1/s², …, 1/s²), one singular value 1/s.
    public func spectralBlocks(imageShape: [Int]) throws -> SpectralBlocks {
        _ = try observationShape(for: imageShape)
        let (n, h, w, c) = (imageShape[0], imageShape[1], imageShape[2], imageShape[3])
        let s = factor, k = s * s
        var indices: [Int] = []
        indices.reserveCapacity(n * h * w * c)
        for b in 0..<n { for ch in 0..<c { for py in 0..<(h / s) { for px in 0..<(w / s) {
            for dy in 0..<s { for dx in 0..<s { indices.append(((b * h + py * s + dy) * w + px * s + dx) * c + ch) } }
        } } } }
        let first = [Float](repeating: 1 / Float(s), count: k)
        return SpectralBlocks(blockSize: k, indices: indices, v: SpectralBlocks.basis(withFirstColumn: first),
                              singulars: [1 / Float(s)] + [Float](repeating: 0, count: k - 1))
    }
}

extension GrayscaleOperator: SpectralOperator {
    /// Blocks: pixels; components R, G, B; A_small = w, one singular value |w|.
    public func spectralBlocks(imageShape: [Int]) throws -> SpectralBlocks {
        _ = try observationShape(for: imageShape)
        let count = imageShape[0] * imageShape[1] * imageShape[2]
        let (r, g, b) = weights
        let norm = (r * r + g * g + b * b).squareRoot()
        return SpectralBlocks(blockSize: 3, indices: Array(0..<(3 * count)),
                              v: SpectralBlocks.basis(withFirstColumn: [r / norm, g / norm, b / norm]), singulars: [norm, 0, 0])
    }
}

extension MaskOperator: SpectralOperator {
    /// Blocks: single samples; singular 1 where known, 0 in the holes.
    public func spectralBlocks(imageShape: [Int]) throws -> SpectralBlocks {
        _ = try observationShape(for: imageShape)
        let (n, h, w, c) = (imageShape[0], imageShape[1], imageShape[2], imageShape[3])
        var singulars = [Float](repeating: 0, count: n * h * w * c)
        for i in 0..<singulars.count { singulars[i] = keep.data[(i / c) % (h * w)] >= 0.5 ? 1 : 0 }
        return SpectralBlocks(blockSize: 1, indices: Array(0..<singulars.count), v: [1], singulars: singulars)
    }
}

extension IdentityOperator: SpectralOperator {
    /// Every sample is its own block with singular 1 (the official `Denoising`, whose Λ_noise is special:
    /// see `DDNMPlusSpectral`).
    public func spectralBlocks(imageShape: [Int]) throws -> SpectralBlocks {
        SpectralBlocks(blockSize: 1, indices: Array(0..<imageShape.reduce(1, *)), v: [1], singulars: [1])
    }
}

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
