import CFFTW
import Engine
import Foundation

/// Deblurring with any 2-D kernel (a user's image or text file, or a parametric motion kernel), through
/// the FFT: A is the circular convolution F⁻¹ diag(K̂) F, so its singular values are |K̂| and the SVD is
/// the Fourier basis. As the official operators do for their 1-D SVDs (ZERO = 3e-2), frequencies with
/// |K̂| below `threshold` are dropped from both Ã and Ã†: Ã = F⁻¹ diag(K̂·1[|K̂| ≥ τ]) F,
/// Ã† = F⁻¹ diag(1[|K̂| ≥ τ] / K̂) F, and ‖(A − Ã)x‖ ≤ τ‖x‖ (Parseval).
///
/// Boundary: **periodic** — the image is treated as wrapping around, so a blurred photo whose edges do not
/// match the wrap sees Ã explain its border rows less well (visible in the consistency report near the
/// edges). The kernel's centre (index ⌊k/2⌋ in each axis) is the output pixel, as a "same" convolution.
public final class FFTBlurOperator: SpectralFilterOperator, @unchecked Sendable {
    public let spec: String
    public let height: Int, width: Int
    public let threshold: Float
    /// The kernel's transform, kept frequencies only (H × (W/2 + 1) complex, interleaved re/im).
    private let filter: [Float]
    private let inverseFilter: [Float]
    /// |K̂| per frequency bin, untruncated (DDNM+'s Λ works on these, as the official Deblurring's on its
    /// untruncated singulars).
    private let magnitudes: [Float]
    private let fft: RealFFT2D
    private let lock = NSLock()
    /// The fraction of frequencies dropped by the threshold (reported by tests and the CLI).
    public let droppedFraction: Double

    /// `kernel` is [kh][kw] row-major with `kernelHeight` rows; it is normalised to sum 1.
    public init(spec: String, kernel: [Float], kernelHeight: Int, kernelWidth: Int, height: Int, width: Int, threshold: Float = 3e-2) throws {
        guard kernelHeight >= 1, kernelWidth >= 1, kernel.count == kernelHeight * kernelWidth else {
            throw OperatorError("\(spec): the kernel must be a 2-D array, got \(kernel.count) values for \(kernelWidth)×\(kernelHeight)")
        }
        guard kernel.allSatisfy(\.isFinite) else { throw OperatorError("\(spec): the kernel holds non-finite values") }
        let total = kernel.reduce(0, +)
        guard abs(total) > 1e-6 else { throw OperatorError("\(spec): the kernel sums to zero and cannot be normalised") }
        guard kernelHeight <= height, kernelWidth <= width else {
            throw OperatorError("\(spec): the \(kernelWidth)×\(kernelHeight) kernel is larger than the \(width)×\(height) image")
        }
        self.spec = spec
        self.height = height
        self.width = width
        self.threshold = threshold
        let columns = width / 2 + 1
        fft = RealFFT2D(rows: height, columns: width)
        let real = fft.real
        // The kernel, centred at (0, 0) with wrap-around, then its transform.
        for i in 0..<(height * width) { real[i] = 0 }
        for r in 0..<kernelHeight { for c in 0..<kernelWidth {
            let y = ((r - kernelHeight / 2) % height + height) % height, x = ((c - kernelWidth / 2) % width + width) % width
            real[y * width + x] += kernel[r * kernelWidth + c] / total
        } }
        fft.forward()
        let values = fft.spectrum
        var filter = [Float](repeating: 0, count: 2 * height * columns), inverse = filter
        var dropped = 0
        var magnitudes = [Float](repeating: 0, count: height * columns)
        for i in 0..<(height * columns) {
            let re = values[2 * i], im = values[2 * i + 1], magnitude2 = re * re + im * im
            magnitudes[i] = magnitude2.squareRoot()
            if magnitude2.squareRoot() >= threshold {
                filter[2 * i] = re; filter[2 * i + 1] = im
                inverse[2 * i] = re / magnitude2; inverse[2 * i + 1] = -im / magnitude2
            } else {
                dropped += 1
            }
        }
        self.filter = filter
        inverseFilter = inverse
        self.magnitudes = magnitudes
        droppedFraction = Double(dropped) / Double(height * columns)
    }

    public func observationShape(for s: [Int]) throws -> [Int] {
        guard s.count == 4, s[1] == height, s[2] == width else {
            throw OperatorError("\(spec) was set up for \(width)×\(height) images, got \(s.count == 4 ? "\(s[2])×\(s[1])" : "\(s)")")
        }
        return s
    }
    public func imageShape(for s: [Int]) throws -> [Int] { try observationShape(for: s) }
    public func apply(_ x: Tensor) throws -> Tensor { try filtered(x, filter) }
    public func pseudoInverse(_ y: Tensor) throws -> Tensor { try filtered(y, inverseFilter) }

    /// F⁻¹ diag(f(|K̂|)) F: a real, conjugate-symmetric filter, so the result is real.
    private func magnitudeFilter(_ f: (Float) -> Float) -> [Float] {
        var g = [Float](repeating: 0, count: 2 * magnitudes.count)
        for i in 0..<magnitudes.count { g[2 * i] = f(magnitudes[i]) }
        return g
    }

    /// The spectral view of any kernel: the SVD of the circular convolution is the Fourier basis with singulars
    /// |K̂| (V = F⁻¹ up to normalisation), so V diag(f(s)) Vᵀ = F⁻¹ diag(f(|K̂|)) F (DDNM+'s Λ with any kernel).
    public func filterSpectrum(_ x: Tensor, _ f: (Float) -> Float) throws -> Tensor {
        try filtered(x, magnitudeFilter(f))
    }

    /// There is no official FFT operator: z and ε are rotated (the paper's form, not the official
    /// unrotated-noise quirk, which has no meaning without an official basis).
    public func filterSpectrum(_ z: Tensor, _ epsilon: Tensor, _ f1: (Float) -> Float, _ f2: (Float) -> Float) throws -> Tensor {
        let first = try filtered(z, magnitudeFilter(f1))
        let second = try filtered(epsilon, magnitudeFilter(f2))
        return try axpby(1, first, 1, second)
    }

    public func spectralFilterAvailable(imageShape: [Int]) -> Bool { (try? observationShape(for: imageShape)) != nil }

    /// F⁻¹(G ⊙ F(plane)) for every (batch, channel) plane.
    private func filtered(_ x: Tensor, _ g: [Float]) throws -> Tensor {
        let (n, h, w, c) = try x.nhwc(spec)
        _ = try observationShape(for: x.shape)
        let out = try Tensor(uninitializedShape: x.shape)
        let (real, values) = (fft.real, fft.spectrum)
        let bins = fft.bins, scale = 1 / Float(h * w)
        lock.lock()
        defer { lock.unlock() }
        for b in 0..<n { for ch in 0..<c {
            for p in 0..<(h * w) { real[p] = x.data[(b * h * w + p) * c + ch] }
            fft.forward()
            for i in 0..<bins {
                let re = values[2 * i], im = values[2 * i + 1], gr = g[2 * i], gi = g[2 * i + 1]
                values[2 * i] = re * gr - im * gi
                values[2 * i + 1] = re * gi + im * gr
            }
            fft.backward()
            for p in 0..<(h * w) { out.data[(b * h * w + p) * c + ch] = real[p] * scale }
        } }
        return out
    }

    // MARK: Kernels

    /// A kernel from a text file: rows of whitespace- or comma-separated numbers, all rows equally long.
    public static func kernel(text path: String) throws -> (values: [Float], rows: Int, columns: Int) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw OperatorError("cannot read the kernel file (\(path))") }
        let rows = text.split(whereSeparator: \.isNewline).map { line in
            line.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\t" }).map(String.init)
        }.filter { !$0.isEmpty && !$0[0].hasPrefix("#") }
        guard let first = rows.first, rows.allSatisfy({ $0.count == first.count }) else {
            throw OperatorError("the kernel file must hold a 2-D array: rows of equal length (\(path))")
        }
        var values: [Float] = []
        for row in rows { for field in row {
            guard let v = Float(field) else { throw OperatorError("the kernel file holds a non-number \(field.debugDescription) (\(path))") }
            values.append(v)
        } }
        return (values, rows.count, first.count)
    }

    /// A linear motion kernel of `length` pixels at `angle` degrees (counter-clockwise from the x axis),
    /// sampled every 0.25 px with bilinear weights, in the smallest odd square that holds it.
    public static func motionKernel(length: Float, angle: Float) -> (values: [Float], rows: Int, columns: Int) {
        let size = 2 * Int((length / 2).rounded(.up)) + 1, centre = Float(size / 2)
        var k = [Float](repeating: 0, count: size * size)
        let (dx, dy) = (Foundation.cos(angle * .pi / 180), -Foundation.sin(angle * .pi / 180))
        let samples = max(1, Int(length * 4))
        for i in 0...samples {
            let t = (Float(i) / Float(samples) - 0.5) * length
            let x = centre + t * dx, y = centre + t * dy
            let x0 = Int(x.rounded(.down)), y0 = Int(y.rounded(.down)), fx = x - Float(x0), fy = y - Float(y0)
            for (yy, xx, weight) in [(y0, x0, (1 - fx) * (1 - fy)), (y0, x0 + 1, fx * (1 - fy)), (y0 + 1, x0, (1 - fx) * fy), (y0 + 1, x0 + 1, fx * fy)]
            where yy >= 0 && yy < size && xx >= 0 && xx < size { k[yy * size + xx] += weight }
        }
        return (k, size, size)
    }
}

/// One FFTW real 2-D transform pair over its own buffers: `forward` r2c from `real` into `spectrum`
/// (rows × (columns/2 + 1) complex, interleaved re/im), `backward` c2r back, unnormalised. Plans are made and
/// destroyed under one lock (FFTW's planner is not thread-safe; execution is); users serialise execution on
/// an instance.
final class RealFFT2D: @unchecked Sendable {
    static let plannerLock = NSLock()
    let rows: Int, columns: Int
    let real: UnsafeMutablePointer<Float>
    let spectrum: UnsafeMutablePointer<Float>
    private let forwardPlan: OpaquePointer
    private let backwardPlan: OpaquePointer
    var bins: Int { rows * (columns / 2 + 1) }

    init(rows: Int, columns: Int) {
        self.rows = rows
        self.columns = columns
        Self.plannerLock.lock()
        defer { Self.plannerLock.unlock() }
        real = fftwf_alloc_real(rows * columns)!
        let complex = fftwf_alloc_complex(rows * (columns / 2 + 1))!
        spectrum = UnsafeMutableRawPointer(complex).assumingMemoryBound(to: Float.self)
        forwardPlan = fftwf_plan_dft_r2c_2d(Int32(rows), Int32(columns), real, complex, UInt32(FFTW_ESTIMATE))!
        backwardPlan = fftwf_plan_dft_c2r_2d(Int32(rows), Int32(columns), complex, real, UInt32(FFTW_ESTIMATE))!
    }

    func forward() { fftwf_execute(forwardPlan) }
    func backward() { fftwf_execute(backwardPlan) }

    deinit {
        Self.plannerLock.lock()
        defer { Self.plannerLock.unlock() }
        fftwf_destroy_plan(forwardPlan)
        fftwf_destroy_plan(backwardPlan)
        fftwf_free(real)
        fftwf_free(UnsafeMutableRawPointer(spectrum))
    }
}
