import Engine
import Foundation

/// The singular-value form DDNM+ needs for its per-singular Λ and Λ_noise (Methods, `DDNMPlusSpectral`) (DDNM paper §3.3, Eqs. 17–19 with
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

    /// Singular value j of block `block`.
    public func singular(_ block: Int, _ j: Int) -> Float { singulars.count == blockSize ? singulars[j] : singulars[block * blockSize + j] }

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
