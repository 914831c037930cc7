import Engine
import Foundation

/// The singular value decomposition A = U Σ Vᵀ of an operator, in the official code's layouts
/// (functions/svd_operators.py, the `A_functions` interface: V, Vt, U, Ut, singulars): image vectors are
/// channel-major (C·H·W), spectral vectors list the components with the official ordering (those with
/// non-zero singular values first, in each class's order). Used to check our operators against the
/// official ones component by component, and by samplers that work in the spectral domain.
public protocol SVDForm {
    /// The singular values, in spectral order (length = the observation's size).
    func singulars() -> [Float]
    /// Vᵀ x for a channel-major image vector.
    func vt(_ x: [Float]) -> [Float]
    /// V s for a spectral vector (length = the image's size).
    func v(_ s: [Float]) -> [Float]
    /// Uᵀ y for an observation vector in the official layout.
    func ut(_ y: [Float]) -> [Float]
    /// U s for a spectral vector of the observation's length.
    func u(_ s: [Float]) -> [Float]
}

/// `SuperResolution` (average pooling ×s) on C×n×n images: per channel and s×s patch (row-major patches),
/// the patch (row-major) rotated by V_smallᵀ; spectral order: every patch's component 0 first ([c][patch]),
/// then the other s² − 1 components interleaved patch by patch. U = ±1 (the sign LAPACK gave).
public struct PoolingSVD: SVDForm, Sendable {
    public let channels: Int, side: Int, factor: Int
    /// V_small, s²×s² row-major (column 0 ∝ ones); `uSign` = U_small[0, 0].
    public let vSmall: [Float]
    public let uSign: Float

    public init(channels: Int, side: Int, factor: Int, vSmall: [Float]? = nil, uSign: Float = 1) {
        self.channels = channels
        self.side = side
        self.factor = factor
        let k = factor * factor
        self.vSmall = vSmall ?? SpectralBlocks.basis(withFirstColumn: [Float](repeating: 1 / Float(factor), count: k))
        self.uSign = uSign
    }

    var patches: Int { (side / factor) * (side / factor) }

    /// The channel-major index of component j of patch p in channel c.
    func pixel(_ c: Int, _ p: Int, _ j: Int) -> Int {
        let perRow = side / factor
        let (py, px) = (p / perRow, p % perRow), (dy, dx) = (j / factor, j % factor)
        return c * side * side + (py * factor + dy) * side + px * factor + dx
    }

    /// The spectral position of component j of patch p in channel c.
    func spectral(_ c: Int, _ p: Int, _ j: Int) -> Int {
        let k = factor * factor, m = c * patches + p
        return j == 0 ? m : channels * patches + m * (k - 1) + (j - 1)
    }

    public func singulars() -> [Float] { [Float](repeating: 1 / Float(factor), count: channels * patches) }

    public func vt(_ x: [Float]) -> [Float] {
        let k = factor * factor
        var out = [Float](repeating: 0, count: x.count)
        for c in 0..<channels { for p in 0..<patches { for j in 0..<k {
            var sum: Float = 0
            for i in 0..<k { sum += vSmall[i * k + j] * x[pixel(c, p, i)] }
            out[spectral(c, p, j)] = sum
        } } }
        return out
    }

    public func v(_ s: [Float]) -> [Float] {
        let k = factor * factor
        var out = [Float](repeating: 0, count: s.count)
        for c in 0..<channels { for p in 0..<patches { for i in 0..<k {
            var sum: Float = 0
            for j in 0..<k { sum += vSmall[i * k + j] * s[spectral(c, p, j)] }
            out[pixel(c, p, i)] = sum
        } } }
        return out
    }

    public func ut(_ y: [Float]) -> [Float] { y.map { uSign * $0 } }
    public func u(_ s: [Float]) -> [Float] { s.map { uSign * $0 } }
}

/// `Colorization`: per pixel, the (R, G, B) needle rotated by V_smallᵀ; spectral order component-major
/// ([component][pixel]), so the first H·W entries are the observed ones. U = ±1.
public struct ColorizationSVD: SVDForm, Sendable {
    public let pixels: Int
    public let vSmall: [Float]
    public let uSign: Float
    public let weights: (Float, Float, Float)

    public init(pixels: Int, weights: (Float, Float, Float) = GrayscaleOperator.svdWeights, vSmall: [Float]? = nil, uSign: Float = 1) {
        self.pixels = pixels
        self.weights = weights
        let norm = (weights.0 * weights.0 + weights.1 * weights.1 + weights.2 * weights.2).squareRoot()
        self.vSmall = vSmall ?? SpectralBlocks.basis(withFirstColumn: [weights.0 / norm, weights.1 / norm, weights.2 / norm])
        self.uSign = uSign
    }

    public func singulars() -> [Float] {
        [Float](repeating: (weights.0 * weights.0 + weights.1 * weights.1 + weights.2 * weights.2).squareRoot(), count: pixels)
    }

    public func vt(_ x: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: x.count)
        for p in 0..<pixels { for j in 0..<3 {
            out[j * pixels + p] = (0..<3).reduce(Float(0)) { $0 + vSmall[$1 * 3 + j] * x[$1 * pixels + p] }
        } }
        return out
    }

    public func v(_ s: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: s.count)
        for p in 0..<pixels { for i in 0..<3 {
            out[i * pixels + p] = (0..<3).reduce(Float(0)) { $0 + vSmall[i * 3 + $1] * s[$1 * pixels + p] }
        } }
        return out
    }

    public func ut(_ y: [Float]) -> [Float] { y.map { uSign * $0 } }
    public func u(_ s: [Float]) -> [Float] { s.map { uSign * $0 } }
}

/// `Inpainting`: V is a permutation of the pixel-major, channel-interleaved vector: the known samples
/// first (in index order), then the missing ones — all holes' red samples, then green, then blue, as
/// diffusion.py:467-470 concatenates them. U = I, singulars 1.
public struct InpaintingSVD: SVDForm, Sendable {
    public let channels: Int, pixels: Int
    /// Interleaved indices (pixel·C + channel) of known and missing samples.
    public let kept: [Int], missing: [Int]

    /// `keep` is the [H·W] mask, 1 = known.
    public init(keep: [Float], channels: Int) {
        self.channels = channels
        pixels = keep.count
        let holes = (0..<keep.count).filter { keep[$0] < 0.5 }
        missing = (0..<channels).flatMap { c in holes.map { $0 * channels + c } }
        let known = Set(holes)
        kept = (0..<(keep.count * channels)).filter { !known.contains($0 / channels) }
    }

    /// Channel-major → pixel-major interleaved.
    func interleaved(_ x: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: x.count)
        for c in 0..<channels { for p in 0..<pixels { out[p * channels + c] = x[c * pixels + p] } }
        return out
    }

    public func singulars() -> [Float] { [Float](repeating: 1, count: kept.count) }

    public func vt(_ x: [Float]) -> [Float] {
        let t = interleaved(x)
        return kept.map { t[$0] } + missing.map { t[$0] }
    }

    public func v(_ s: [Float]) -> [Float] {
        var t = [Float](repeating: 0, count: s.count)
        for (i, index) in (kept + missing).enumerated() { t[index] = s[i] }
        var out = [Float](repeating: 0, count: s.count)
        for c in 0..<channels { for p in 0..<pixels { out[c * pixels + p] = t[p * channels + c] } }
        return out
    }

    public func ut(_ y: [Float]) -> [Float] { y }
    public func u(_ s: [Float]) -> [Float] { s }
}

/// `WalshHadamardCS`: Vᵀ x = the per-channel orthonormal WHT, permuted, pixel-major with channels
/// interleaved (position k·C + c for coefficient perm[k]); U = I, singulars 1 for the kept H·W/ratio.
public struct WalshHadamardSVD: SVDForm, Sendable {
    public let channels: Int, operatorValue: WalshHadamardCSOperator

    public init(_ op: WalshHadamardCSOperator, channels: Int = 3) {
        operatorValue = op
        self.channels = channels
    }

    var count: Int { operatorValue.side * operatorValue.side }

    public func singulars() -> [Float] { [Float](repeating: 1, count: channels * operatorValue.kept) }

    public func vt(_ x: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: x.count)
        for c in 0..<channels {
            var plane = Array(x[(c * count)..<((c + 1) * count)])
            WalshHadamardCSOperator.transform(&plane)
            for k in 0..<count { out[k * channels + c] = plane[operatorValue.permutation[k]] }
        }
        return out
    }

    public func v(_ s: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: s.count)
        for c in 0..<channels {
            var plane = [Float](repeating: 0, count: count)
            for k in 0..<count { plane[operatorValue.permutation[k]] = s[k * channels + c] }
            WalshHadamardCSOperator.transform(&plane)
            for p in 0..<count { out[c * count + p] = plane[p] }
        }
        return out
    }

    public func ut(_ y: [Float]) -> [Float] { y }
    public func u(_ s: [Float]) -> [Float] { s }
}

/// `Denoising`: A = I, every factor the identity, singulars 1.
public struct IdentitySVD: SVDForm, Sendable {
    public let count: Int
    public init(count: Int) { self.count = count }
    public func singulars() -> [Float] { [Float](repeating: 1, count: count) }
    public func vt(_ x: [Float]) -> [Float] { x }
    public func v(_ s: [Float]) -> [Float] { s }
    public func ut(_ y: [Float]) -> [Float] { y }
    public func u(_ s: [Float]) -> [Float] { s }
}

/// The separable operators' SVD (`SRConv`, `Deblurring`, `Deblurring2D`): per channel, Vᵀ x = V_vᵀ X V_h and
/// Uᵀ y = U_vᵀ Y U_h, flattened row-major, reordered by the official permutation (sorted singular products;
/// for SRConv only the V side, over its first rows), then pixel-major with channels interleaved.
/// `singulars()` repeats each value once per channel, as SRConv does. The official `Deblurring` and
/// `Deblurring2D` tile the list instead (`repeat(1, 3)`), misaligning it with this layout; that is the
/// official bug noted in the README, not reproduced here.
public struct KroneckerSVD: SVDForm, Sendable {
    public let channels: Int
    /// Image side n and observation side m.
    public let n: Int, m: Int
    /// U_v, U_h (m×m) and V_v, V_h (n×n), row-major.
    public let uVertical: [Float], uHorizontal: [Float], vVertical: [Float], vHorizontal: [Float]
    /// Spectral position k takes flattened entry vPermutation[k] (identity past its length).
    public let vPermutation: [Int]
    /// The same for the U side (nil: identity).
    public let uPermutation: [Int]?
    /// Singular values per spectral position (before the per-channel repetition).
    public let sortedSingulars: [Float]

    public init(channels: Int, n: Int, m: Int, uVertical: [Float], uHorizontal: [Float], vVertical: [Float], vHorizontal: [Float],
                vPermutation: [Int], uPermutation: [Int]?, sortedSingulars: [Float]) {
        self.channels = channels
        self.n = n
        self.m = m
        self.uVertical = uVertical
        self.uHorizontal = uHorizontal
        self.vVertical = vVertical
        self.vHorizontal = vHorizontal
        self.vPermutation = vPermutation
        self.uPermutation = uPermutation
        self.sortedSingulars = sortedSingulars
    }

    /// Aᵀ-style sandwich: out = Lᵀ X R (transposeLeft) or L X Rᵀ, all size×size row-major.
    static func sandwich(_ x: ArraySlice<Float>, _ left: [Float], _ right: [Float], size: Int, transposed: Bool) -> [Float] {
        let base = x.startIndex
        var t = [Float](repeating: 0, count: size * size)
        for i in 0..<size { for j in 0..<size {
            var sum: Float = 0
            for k in 0..<size { sum += (transposed ? left[k * size + i] : left[i * size + k]) * x[base + k * size + j] }
            t[i * size + j] = sum
        } }
        var out = [Float](repeating: 0, count: size * size)
        for i in 0..<size { for j in 0..<size {
            var sum: Float = 0
            for k in 0..<size { sum += t[i * size + k] * (transposed ? right[k * size + j] : right[j * size + k]) }
            out[i * size + j] = sum
        } }
        return out
    }

    static func forward(_ x: [Float], channels: Int, size: Int, left: [Float], right: [Float], permutation: [Int]?) -> [Float] {
        let count = size * size
        var out = [Float](repeating: 0, count: x.count)
        for c in 0..<channels {
            let t = sandwich(x[(c * count)..<((c + 1) * count)], left, right, size: size, transposed: true)
            for k in 0..<count { out[k * channels + c] = t[permutation.map { k < $0.count ? $0[k] : k } ?? k] }
        }
        return out
    }

    static func backward(_ s: [Float], channels: Int, size: Int, left: [Float], right: [Float], permutation: [Int]?) -> [Float] {
        let count = size * size
        var out = [Float](repeating: 0, count: s.count)
        for c in 0..<channels {
            var t = [Float](repeating: 0, count: count)
            for k in 0..<count { t[permutation.map { k < $0.count ? $0[k] : k } ?? k] = s[k * channels + c] }
            let x = sandwich(t[...], left, right, size: size, transposed: false)
            for p in 0..<count { out[c * count + p] = x[p] }
        }
        return out
    }

    public func singulars() -> [Float] { sortedSingulars.flatMap { [Float](repeating: $0, count: channels) } }
    public func vt(_ x: [Float]) -> [Float] { Self.forward(x, channels: channels, size: n, left: vVertical, right: vHorizontal, permutation: vPermutation) }
    public func v(_ s: [Float]) -> [Float] { Self.backward(s, channels: channels, size: n, left: vVertical, right: vHorizontal, permutation: vPermutation) }
    public func ut(_ y: [Float]) -> [Float] { Self.forward(y, channels: channels, size: m, left: uVertical, right: uHorizontal, permutation: uPermutation) }
    public func u(_ s: [Float]) -> [Float] { Self.backward(s, channels: channels, size: m, left: uVertical, right: uHorizontal, permutation: uPermutation) }
}

/// An operator defined by an SVD form, A = U Σ Vᵀ and A† = V Σ⁺ Uᵀ (zero singulars dropped), exactly as the
/// official `A_functions.A` / `A_pinv` compute them (svd_operators.py:46-70) — including, when `singulars`
/// is given in the official order, an operator's quirks (e.g. `Deblurring`'s tiled list, for replaying
/// official runs). Images are NHWC tensors; observations use the SVD form's own layout as [N, M, 1, 1].
public struct SVDOperator: DegradationOperator {
    public let spec: String
    public let form: any SVDForm & Sendable
    public let imageShape: [Int]
    /// Σ in spectral order (the first `count` spectral entries); defaults to `form.singulars()`.
    public let singularValues: [Float]

    public init(spec: String, form: any SVDForm & Sendable, imageShape: [Int], singulars: [Float]? = nil) {
        self.spec = spec
        self.form = form
        self.imageShape = imageShape
        singularValues = singulars ?? form.singulars()
    }

    public func observationShape(for s: [Int]) throws -> [Int] {
        guard s == imageShape else { throw OperatorError("\(spec) was built for images of shape \(imageShape), got \(s)") }
        return [s[0], singularValues.count, 1, 1]
    }
    public func imageShape(for s: [Int]) throws -> [Int] {
        guard s.count == 4, s[1] == singularValues.count else { throw OperatorError("\(spec) expects \(singularValues.count) coefficients, got \(s)") }
        return imageShape
    }

    public func apply(_ x: Tensor) throws -> Tensor {
        let shape = try observationShape(for: x.shape)
        let spectral = form.vt(x.channelMajor(batch: 0))
        let scaled = (0..<singularValues.count).map { singularValues[$0] * spectral[$0] }
        return try Tensor(shape: shape, values: form.u(scaled))
    }

    public func pseudoInverse(_ y: Tensor) throws -> Tensor {
        let shape = try imageShape(for: y.shape)
        let rotated = form.ut(y.values)
        var spectral = [Float](repeating: 0, count: shape[1] * shape[2] * shape[3])
        for k in 0..<singularValues.count where singularValues[k] != 0 { spectral[k] = rotated[k] / singularValues[k] }
        let x = try Tensor(uninitializedShape: shape)
        x.setChannelMajor(form.v(spectral), batch: 0)
        return x
    }
}

extension WalshHadamardSVD {
    /// The official Λ_noise's raw gather: sample perm[k] of each channel to position k·C + c, no transform.
    public func raw(_ x: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: x.count)
        for c in 0..<channels { for k in 0..<count { out[k * channels + c] = x[c * count + operatorValue.permutation[k]] } }
        return out
    }
}

/// An operator that offers its SVD form (and the official Λ_noise gather) for DDNM+ on the SVD path.
public protocol SVDFormProviding {
    func svdForm(imageShape: [Int]) throws -> (form: any SVDForm, raw: ([Float]) -> [Float])
}

extension WalshHadamardCSOperator: SVDFormProviding {
    public func svdForm(imageShape: [Int]) throws -> (form: any SVDForm, raw: ([Float]) -> [Float]) {
        _ = try observationShape(for: imageShape)
        let svd = WalshHadamardSVD(self, channels: imageShape[3])
        return (svd, svd.raw)
    }
}

extension DeferredWHTOperator: SVDFormProviding {
    public func svdForm(imageShape: [Int]) throws -> (form: any SVDForm, raw: ([Float]) -> [Float]) {
        _ = try observationShape(for: imageShape)
        return try sized(imageShape[1]).svdForm(imageShape: imageShape)
    }
}

extension Tensor {
    /// Sample `b` of an NHWC tensor as a channel-major vector (the official layout).
    public func channelMajor(batch b: Int) -> [Float] {
        let (h, w, c) = (shape[1], shape[2], shape[3])
        var v = [Float](repeating: 0, count: h * w * c)
        for ch in 0..<c { for p in 0..<(h * w) { v[ch * h * w + p] = data[(b * h * w + p) * c + ch] } }
        return v
    }

    /// Writes a channel-major vector into sample `b` of this NHWC tensor.
    public func setChannelMajor(_ v: [Float], batch b: Int) {
        let (h, w, c) = (shape[1], shape[2], shape[3])
        for ch in 0..<c { for p in 0..<(h * w) { data[(b * h * w + p) * c + ch] = v[ch * h * w + p] } }
    }
}

/// `CS` (block compressed sensing): per channel and 32×32 block (row-major blocks, row-major samples), the
/// block rotated by V_smallᵀ; spectral order: every block's first M components ([c][block][k < M]), then the
/// rest ([c][block][k ≥ M]). U = I, singulars 1. `vSmall` is the full orthonormal 1024×1024 matrix.
public struct BlockCSSVD: SVDForm, Sendable {
    public let channels: Int, side: Int, kept: Int
    public let vSmall: [Float]

    public init(channels: Int, side: Int, kept: Int, vSmall: [Float]) {
        self.channels = channels
        self.side = side
        self.kept = kept
        self.vSmall = vSmall
    }

    var blocks: Int { (side / 32) * (side / 32) }

    func pixel(_ c: Int, _ block: Int, _ i: Int) -> Int {
        let across = side / 32, (by, bx) = (block / across, block % across), (r, q) = (i / 32, i % 32)
        return c * side * side + (by * 32 + r) * side + bx * 32 + q
    }

    func spectral(_ c: Int, _ block: Int, _ k: Int) -> Int {
        let m = c * blocks + block
        return k < kept ? m * kept + k : channels * blocks * kept + m * (1024 - kept) + (k - kept)
    }

    public func singulars() -> [Float] { [Float](repeating: 1, count: channels * blocks * kept) }

    public func vt(_ x: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: x.count)
        for c in 0..<channels { for b in 0..<blocks { for k in 0..<1024 {
            var sum: Float = 0
            for i in 0..<1024 { sum += vSmall[i * 1024 + k] * x[pixel(c, b, i)] }
            out[spectral(c, b, k)] = sum
        } } }
        return out
    }

    public func v(_ s: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: s.count)
        for c in 0..<channels { for b in 0..<blocks { for i in 0..<1024 {
            var sum: Float = 0
            for k in 0..<1024 { sum += vSmall[i * 1024 + k] * s[spectral(c, b, k)] }
            out[pixel(c, b, i)] = sum
        } } }
        return out
    }

    public func ut(_ y: [Float]) -> [Float] { y }
    public func u(_ s: [Float]) -> [Float] { s }
}
