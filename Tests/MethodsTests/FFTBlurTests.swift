import Engine
import Foundation
import XCTest
@testable import Methods
@testable import Operators

/// Any-kernel deblurring through the FFT: Ã is a circular convolution with the kernel centred, truncated
/// at |K̂| < τ; the properties the DDNM decomposition relies on hold for Ã.
final class FFTBlurTests: XCTestCase {
    private func random(_ shape: [Int], seed: UInt64) throws -> Tensor { try TestSupport.random(shape, seed: seed) }
    private func maxDifference(_ a: Tensor, _ b: Tensor) -> Float { TestSupport.maxDifference(a, b) }

    func testMatchesDirectCircularConvolutionWhenNothingIsTruncated() throws {
        // 0.6·δ + 0.4·(a smooth 3×3): |K̂| ≥ 0.2 > τ everywhere, so Ã = A.
        let smooth: [Float] = [1, 2, 1, 2, 4, 2, 1, 2, 1].map { $0 / 16 }
        var kernel = smooth.map { 0.4 * $0 }
        kernel[4] += 0.6
        let (h, w) = (12, 10)
        let a = try FFTBlurOperator(spec: "test", kernel: kernel, kernelHeight: 3, kernelWidth: 3, height: h, width: w)
        XCTAssertEqual(a.droppedFraction, 0)
        let x = try random([2, h, w, 3], seed: 1)
        let direct = try Tensor(shape: x.shape, repeating: 0)
        for b in 0..<2 { for y in 0..<h { for xx in 0..<w { for c in 0..<3 {
            var sum: Float = 0
            for r in 0..<3 { for s in 0..<3 {
                let sy = ((y - (r - 1)) % h + h) % h, sx = ((xx - (s - 1)) % w + w) % w
                sum += kernel[r * 3 + s] * x.data[((b * h + sy) * w + sx) * 3 + c]
            } }
            direct.data[((b * h + y) * w + xx) * 3 + c] = sum
        } } } }
        XCTAssertLessThan(maxDifference(try a.apply(x), direct), 1e-5)
    }

    func testTruncatedPseudoInverseProperties() throws {
        let g = SeparableOperator.gaussianTaps(size: 9, sigma: 3)
        let kernel = (0..<81).map { g[$0 / 9] * g[$0 % 9] }
        let a = try FFTBlurOperator(spec: "gauss", kernel: kernel, kernelHeight: 9, kernelWidth: 9, height: 16, width: 20)
        XCTAssertGreaterThan(a.droppedFraction, 0.1, "the threshold must bite for this test to mean something")
        let x = try random([1, 16, 20, 3], seed: 2)
        let ax = try a.apply(x)
        XCTAssertLessThan(maxDifference(try a.apply(try a.pseudoInverse(ax)), ax), 1e-4, "Ã Ã† Ã = Ã")
        let p = try a.pseudoInverse(ax)
        XCTAssertLessThan(maxDifference(try a.pseudoInverse(try a.apply(p)), p), 1e-3 * TestSupport.maxAbs((p.values)), "Ã† Ã Ã† = Ã†")
        // ‖(A − Ã)x‖ ≤ τ‖x‖ against the untruncated operator (threshold 0).
        let full = try FFTBlurOperator(spec: "gauss", kernel: kernel, kernelHeight: 9, kernelWidth: 9, height: 16, width: 20, threshold: 0)
        let difference = try subtract(try full.apply(x), ax)
        let norm = { (t: Tensor) in t.values.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot() }
        XCTAssertLessThanOrEqual(norm(difference), a.threshold * norm(x) * 1.0001)
        XCTAssertGreaterThan(norm(difference), 0)
    }

    func testKernelsFromTextAndMotionAndBadKernelsFailClearly() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kernels-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let good = folder.appendingPathComponent("k.txt").path, ragged = folder.appendingPathComponent("r.txt").path
        let zero = folder.appendingPathComponent("z.txt").path
        try "0 1 0\n1 4 1\n0 1 0\n".write(toFile: good, atomically: true, encoding: .utf8)
        try "1 2 3\n4 5\n".write(toFile: ragged, atomically: true, encoding: .utf8)
        try "1 -1\n-1 1\n".write(toFile: zero, atomically: true, encoding: .utf8)
        let noMask: (String) throws -> Tensor = { _ in throw OperatorError("no mask") }
        let a = try OperatorSpec.parse("blur:\(good)", loadMask: noMask)
        XCTAssertEqual(try a.apply(try random([1, 8, 8, 3], seed: 3)).shape, [1, 8, 8, 3])
        let motion = FFTBlurOperator.motionKernel(length: 7, angle: 30)
        XCTAssertEqual(motion.rows, 9)
        XCTAssertEqual(motion.values.reduce(0, +), 29, accuracy: 1e-3)  // 29 samples of unit weight before normalisation
        XCTAssertNoThrow(try OperatorSpec.parse("blur:motion:7:30", loadMask: noMask).apply(try random([1, 16, 16, 3], seed: 4)))
        for (spec, message) in [("blur:\(ragged)", "2-D array"), ("blur:\(zero)", "sums to zero"), ("blur:motion:x:1", "LENGTH")] {
            XCTAssertThrowsError(try OperatorSpec.parse(spec, loadMask: noMask).apply(try random([1, 8, 8, 3], seed: 5)), spec) {
                XCTAssertTrue("\($0)".contains(message), "\($0)")
                XCTAssertFalse("\($0)".contains("\n"))
            }
        }
        XCTAssertThrowsError(try OperatorSpec.parse("blur:\(good)", loadMask: noMask).apply(try random([1, 2, 2, 3], seed: 6))) {
            XCTAssertTrue("\($0)".contains("larger than"), "\($0)")
        }
    }
}

/// The window form of an FFT kernel (USDR tiling): the valid convolution inside a window, its transpose and
/// its regularised pseudo-inverse by preconditioned conjugate gradients.
final class ValidConvolutionTests: XCTestCase {
    /// An asymmetric kernel with even and odd sides, so flips and centring are tested.
    static let kernel: [Float] = [0.05, 0.3, 0.1, 0.02, 0.08, 0.2, 0.15, 0.1]  // 2 rows × 4 columns

    func testWindowSamplesEqualTheWholeImageBlurAndTheTransposeIsTheAdjoint() throws {
        let (h, w) = (20, 24)
        let whole = try FFTBlurOperator(spec: "k", kernel: Self.kernel, kernelHeight: 2, kernelWidth: 4, height: h, width: w, threshold: 0)
        let x = try TestSupport.random([1, h, w, 3], seed: 5)
        let y = try whole.apply(x)
        let rect = PixelRect(y: 3, x: 5, height: 12, width: 14)
        let a = try ValidConvolutionOperator(spec: "k", kernel: Self.kernel, kernelHeight: 2, kernelWidth: 4, height: 12, width: 14)
        let observed = ValidConvolutionOperator.observedRect(rect, kernelHeight: 2, kernelWidth: 4)
        XCTAssertEqual([observed.height, observed.width], [11, 11])
        XCTAssertLessThan(TestSupport.maxDifference(try a.apply(try x.crop(rect)), try y.crop(observed)), 1e-5)
        // ⟨A u, v⟩ = ⟨u, Aᵀ v⟩
        let u = try TestSupport.random([2, 12, 14, 3], seed: 6), v = try TestSupport.random([2, 11, 11, 3], seed: 7)
        let dot = { (p: Tensor, q: Tensor) in zip(p.values, q.values).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } }
        XCTAssertEqual(dot(try a.apply(u), v), dot(u, try a.applyTranspose(v)), accuracy: 1e-4 * abs(dot(u, try a.applyTranspose(v))))
        XCTAssertThrowsError(try ValidConvolutionOperator(spec: "k", kernel: Self.kernel, kernelHeight: 2, kernelWidth: 4, height: 12, width: 3))
    }

    func testPseudoInverseProperties() throws {
        // A mild blur (well conditioned): A A† ≈ I on the observations; a strong Gaussian (|K̂| ≪ τ for many
        // frequencies): A A† A x ≈ A x still holds to the regularisation's level, A† y is the least-norm solution.
        let mild: [Float] = [0, 0.1, 0, 0.1, 0.6, 0.1, 0, 0.1, 0]
        let a = try ValidConvolutionOperator(spec: "mild", kernel: mild, kernelHeight: 3, kernelWidth: 3, height: 32, width: 32)
        let r = try TestSupport.random([1, 30, 30, 3], seed: 8)
        XCTAssertLessThan(TestSupport.maxDifference(try a.apply(try a.pseudoInverse(r)), r), 2e-3, "A A† = I where every σ ≫ τ")
        let g = SeparableOperator.gaussianTaps(size: 7, sigma: 2)
        let strong = try ValidConvolutionOperator(spec: "gauss", kernel: (0..<49).map { g[$0 / 7] * g[$0 % 7] }, kernelHeight: 7, kernelWidth: 7,
                                                  height: 32, width: 32)
        let x = try TestSupport.random([1, 32, 32, 3], seed: 9)
        let ax = try strong.apply(x)
        let again = try strong.apply(try strong.pseudoInverse(ax))
        let rms = { (t: Tensor) in (t.values.reduce(0.0) { $0 + Double($1 * $1) } / Double(t.count)).squareRoot() }
        print("valid-convolution A A† A x vs A x: RMS \(rms(try subtract(again, ax))) of \(rms(ax))")
        XCTAssertLessThan(rms(try subtract(again, ax)), 0.05 * rms(ax), "A A† A ≈ A up to the components near τ (measured 0.034)")
        // A† y lies in the row space: no component in A's null space (A† = Aᵀ λ).
        let p = try strong.pseudoInverse(ax)
        XCTAssertLessThan(rms(p), rms(x), "least-norm: ‖A† A x‖ < ‖x‖")
    }
}
