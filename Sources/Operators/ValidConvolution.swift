import Engine
import Foundation

/// An FFT kernel's blur restricted to a window of a large image (USDR tiling of `blur:FILE` and
/// `blur:motion`): the window observes only the samples whose whole kernel footprint lies inside it (a
/// "valid" convolution, (h − kh + 1) × (w − kw + 1) samples), so a window carries a halo of the kernel's span
/// and never sees the periodic wrap of the whole-image operator. The samples that wrap around the image
/// border are therefore observed by no window: tiling leaves them unused (the image's outermost ⌊k/2⌋ rows
/// and columns are still constrained by the valid samples whose footprints cover them).
///
/// A† is iterated Tikhonov, two rounds: λ₁ = (A Aᵀ + μ I)⁻¹ r, λ₂ = (A Aᵀ + μ I)⁻¹ (r − A Aᵀ λ₁), A† r = Aᵀ(λ₁ + λ₂),
/// each solve by conjugate gradients preconditioned with the circulant approximation of A Aᵀ
/// (F⁻¹ diag(1 / (|K̂|² + μ)) F on the observation grid), μ = τ² with the whole-image operator's frequency
/// threshold τ. The valid convolution has no Fourier SVD; this filter, 1 − (μ / (σ² + μ))² per singular value σ,
/// plays the part of dropping |K̂| < τ: components with σ ≫ τ are inverted (0.9995 at σ = 6.7τ), those with
/// σ ≪ τ are not, and no component is amplified by more than about 1/τ.
public final class ValidConvolutionOperator: TransposableOperator, @unchecked Sendable {
    public let spec: String
    public let height: Int, width: Int
    public let kernelHeight: Int, kernelWidth: Int
    /// Observation rows and columns.
    public var rows: Int { height - kernelHeight + 1 }
    public var columns: Int { width - kernelWidth + 1 }
    public let mu: Float
    /// Conjugate-gradient iterations at most, and the relative residual they stop at.
    public let maxIterations: Int, tolerance: Float
    /// Sample (i, j) = Σ w · x[i + dy][j + dx] over these taps (the kernel flipped: A is a convolution).
    private let taps: [(dy: Int, dx: Int, w: Float)]
    /// 1 / (|F̂|² + μ) per bin of the rows × (columns/2 + 1) real transform.
    private let preconditioner: [Float]
    private let fft: RealFFT2D
    private let lock = NSLock()

    /// `kernel` is [kh][kw] row-major, normalised to sum 1, centred as `FFTBlurOperator`'s (index ⌊k/2⌋).
    public init(spec: String, kernel: [Float], kernelHeight: Int, kernelWidth: Int, height: Int, width: Int,
                threshold: Float = 3e-2, maxIterations: Int = 200, tolerance: Float = 1e-5) throws {
        guard kernelHeight >= 1, kernelWidth >= 1, kernel.count == kernelHeight * kernelWidth, kernel.allSatisfy(\.isFinite) else {
            throw OperatorError("\(spec): the kernel must be a finite \(kernelWidth)×\(kernelHeight) array")
        }
        let total = kernel.reduce(0, +)
        guard abs(total) > 1e-6 else { throw OperatorError("\(spec): the kernel sums to zero and cannot be normalised") }
        guard height >= kernelHeight, width >= kernelWidth else {
            throw OperatorError("\(spec): the \(kernelWidth)×\(kernelHeight) kernel is larger than the \(width)×\(height) window")
        }
        self.spec = spec
        self.height = height
        self.width = width
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
        self.mu = threshold * threshold
        self.maxIterations = maxIterations
        self.tolerance = tolerance
        var taps: [(dy: Int, dx: Int, w: Float)] = []
        for r in 0..<kernelHeight { for c in 0..<kernelWidth where kernel[r * kernelWidth + c] != 0 {
            taps.append((kernelHeight - 1 - r, kernelWidth - 1 - c, kernel[r * kernelWidth + c] / total))
        } }
        self.taps = taps
        let (m, n) = (height - kernelHeight + 1, width - kernelWidth + 1)
        fft = RealFFT2D(rows: m, columns: n)
        let real = fft.real
        // |F̂|² of the taps wrapped onto the observation grid (the circulant closest to A Aᵀ in the interior).
        for i in 0..<(m * n) { real[i] = 0 }
        for t in taps { real[(t.dy % m) * n + t.dx % n] += t.w }
        fft.forward()
        let values = fft.spectrum
        let bins = fft.bins
        preconditioner = (0..<bins).map { i in 1 / (values[2 * i] * values[2 * i] + values[2 * i + 1] * values[2 * i + 1] + threshold * threshold) }
    }

    public func observationShape(for s: [Int]) throws -> [Int] {
        guard s.count == 4, s[1] == height, s[2] == width else {
            throw OperatorError("\(spec) (valid window form) was set up for \(width)×\(height) windows, got \(s)")
        }
        return [s[0], rows, columns, s[3]]
    }

    public func imageShape(for s: [Int]) throws -> [Int] {
        guard s.count == 4, s[1] == rows, s[2] == columns else {
            throw OperatorError("\(spec) (valid window form) observes \(columns)×\(rows) samples, got \(s)")
        }
        return [s[0], height, width, s[3]]
    }

    public func apply(_ x: Tensor) throws -> Tensor {
        let shape = try observationShape(for: x.shape)
        let out = try Tensor(shape: shape, repeating: 0)
        correlate(x.data, into: out.data, batches: shape[0], channels: shape[3], transpose: false)
        return out
    }

    public func applyTranspose(_ y: Tensor) throws -> Tensor {
        let shape = try imageShape(for: y.shape)
        let out = try Tensor(shape: shape, repeating: 0)
        correlate(y.data, into: out.data, batches: shape[0], channels: shape[3], transpose: true)
        return out
    }

    /// Observation row i against image rows i + dy, tap by tap: gathers image into samples (A) or scatters
    /// samples into the image (Aᵀ), adding to `out`, whole rows of C-interleaved values at a time.
    private func correlate(_ input: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, batches n: Int, channels c: Int, transpose: Bool) {
        for b in 0..<n { for i in 0..<rows { for t in taps {
            let image = ((b * height + i + t.dy) * width + t.dx) * c, sample = (b * rows + i) * columns * c
            let (src, dst) = transpose ? (input + sample, out + image) : (input + image, out + sample)
            for q in 0..<(columns * c) { dst[q] += t.w * src[q] }
        } } }
    }

    /// Aᵀ(λ₁ + λ₂) (two rounds of Tikhonov, see the type's note), plane by plane.
    public func pseudoInverse(_ y: Tensor) throws -> Tensor {
        let shape = try imageShape(for: y.shape)
        let lambda = try Tensor(shape: y.shape, repeating: 0)
        let (n, c) = (shape[0], shape[3]), plane = rows * columns
        for b in 0..<n { for ch in 0..<c {
            let rhs = (0..<plane).map { y.data[(b * plane + $0) * c + ch] }
            let first = solve(rhs)
            let unexplained = normal(first, regularised: false)
            let second = solve((0..<plane).map { rhs[$0] - unexplained[$0] })
            for p in 0..<plane { lambda.data[(b * plane + p) * c + ch] = first[p] + second[p] }
        } }
        return try applyTranspose(lambda)
    }

    /// (A Aᵀ + μ I) v (or A Aᵀ v) for one plane of the observation grid.
    private func normal(_ v: [Float], regularised: Bool = true) -> [Float] {
        var up = [Float](repeating: 0, count: height * width)
        var out = [Float](repeating: 0, count: rows * columns)
        up.withUnsafeMutableBufferPointer { u in
            v.withUnsafeBufferPointer { correlate($0.baseAddress!, into: u.baseAddress!, batches: 1, channels: 1, transpose: true) }
            out.withUnsafeMutableBufferPointer { correlate(u.baseAddress!, into: $0.baseAddress!, batches: 1, channels: 1, transpose: false) }
        }
        if regularised { for p in 0..<out.count { out[p] += mu * v[p] } }
        return out
    }

    /// The circulant preconditioner F⁻¹ diag(1 / (|F̂|² + μ)) F on one plane.
    private func precondition(_ v: [Float]) -> [Float] {
        lock.lock()
        defer { lock.unlock() }
        let (real, values) = (fft.real, fft.spectrum)
        for p in 0..<v.count { real[p] = v[p] }
        fft.forward()
        for i in 0..<preconditioner.count { values[2 * i] *= preconditioner[i]; values[2 * i + 1] *= preconditioner[i] }
        fft.backward()
        let scale = 1 / Float(v.count)
        return (0..<v.count).map { real[$0] * scale }
    }

    private func solve(_ rhs: [Float]) -> [Float] {
        func dot(_ a: [Float], _ b: [Float]) -> Double { zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } }
        var x = [Float](repeating: 0, count: rhs.count)
        var r = rhs
        let stop = Double(tolerance) * Double(tolerance) * dot(rhs, rhs)
        guard stop > 0 else { return x }
        var z = precondition(r)
        var p = z
        var rz = dot(r, z)
        for _ in 0..<maxIterations {
            let q = normal(p)
            let pq = dot(p, q)
            guard pq > 0 else { break }
            let alpha = Float(rz / pq)
            for i in 0..<x.count { x[i] += alpha * p[i]; r[i] -= alpha * q[i] }
            if dot(r, r) <= stop { break }
            z = precondition(r)
            let next = dot(r, z)
            let beta = Float(next / rz)
            for i in 0..<p.count { p[i] = z[i] + beta * p[i] }
            rz = next
        }
        return x
    }

    /// The rect of y (the whole image's "same"-size blur) that the window `rect` observes: rows from
    /// rect.y + kh − 1 − ⌊kh/2⌋, h − kh + 1 of them (likewise for columns).
    public static func observedRect(_ rect: PixelRect, kernelHeight: Int, kernelWidth: Int) -> PixelRect {
        PixelRect(y: rect.y + kernelHeight - 1 - kernelHeight / 2, x: rect.x + kernelWidth - 1 - kernelWidth / 2,
                  height: rect.height - kernelHeight + 1, width: rect.width - kernelWidth + 1)
    }
}
