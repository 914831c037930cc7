import Checkpoints
import Engine
import Foundation
import XCTest
@testable import Methods
@testable import Operators

/// DDNM+'s per-singular Λ and Λ_noise against the official operators (functions/svd_operators.py run by
/// Tools/reference/make_ddnm_fixtures.py on a 16² image), with the official LAPACK bases injected (Λ does
/// not depend on the basis; Λ_noise does, through the unrotated-noise quirk).
final class SpectralGoldenTests: XCTestCase {
    struct Fixture {
        let tensors: [String: Tensor]
        let operators: [String: Any]
    }

    nonisolated(unsafe) static let fixture: Fixture? = {
        guard let folder = Bundle.module.url(forResource: "Fixtures", withExtension: nil),
              let file = try? Checkpoint(path: folder.appendingPathComponent("operators.safetensors").path),
              let state = try? file.stateDict() else { return nil }
        var tensors: [String: Tensor] = [:]
        for (name, stored) in state.tensors where stored.elementCount > 0 { tensors[name] = try? stored.floatTensor() }
        let operators = (try? JSONSerialization.jsonObject(with: Data((file.metadata["operators"] ?? "{}").utf8))) as? [String: Any] ?? [:]
        return Fixture(tensors: tensors, operators: operators)
    }()

    fileprivate func fixture() throws -> Fixture {
        guard let f = Self.fixture else { throw FixtureMissing("fixtures missing: run Tools/reference/make_ddnm_fixtures.py") }
        return f
    }

    /// A channel-major [1, C·H·W] vector (the official layout) as an NHWC [1, H, W, C] tensor.
    static func image(fromCHW v: Tensor, channels c: Int = 3, side: Int = 16) throws -> Tensor {
        try TestSupport.image(fromCHW: v, channels: c, side: side)
    }

    fileprivate func t(_ f: Fixture, _ key: String) throws -> Tensor {
        guard let value = f.tensors[key] else { throw FixtureMissing("fixture has no \(key)") }
        return value
    }

    private func check(_ prefix: String, _ a: any SpectralOperator, officialV: String?, denoising: Bool = false) throws {
        let f = try fixture()
        var blocks = try a.spectralBlocks(imageShape: [1, 16, 16, 3])
        if let officialV { blocks.v = try t(f, officialV).values }
        let vec = try Self.image(fromCHW: try t(f, "lambda_inputs.vec"))
        let z = try Self.image(fromCHW: try t(f, "lambda_inputs.z")), eps = try Self.image(fromCHW: try t(f, "lambda_inputs.eps"))
        for k in 0..<3 {
            let args = try t(f, "\(prefix).lambda.\(k).args").values  // a, σy, σt, η
            let lambda = try DDNMPlusSpectral.lambda(vec, blocks, a: args[0], sigmaY: args[1], sigmaT: args[2], eta: args[3])
            let noise = try DDNMPlusSpectral.noise(z, eps, blocks, a: args[0], sigmaY: args[1], sigmaT: args[2], eta: args[3], denoising: denoising)
            for (name, got, key) in [("Λ", lambda, "\(prefix).lambda.\(k).out"), ("Λ_noise", noise, "\(prefix).lambda_noise.\(k).out")] {
                let expected = try Self.image(fromCHW: try t(f, key))
                let maxRef = TestSupport.maxAbs(expected.values)
                let maxDiff = TestSupport.maxDifference(got.values, expected.values)
                XCTAssertGreaterThan(maxRef, 0.05, "\(prefix) \(name) \(k)")
                XCTAssertLessThanOrEqual(maxDiff, 1e-5 * max(maxRef, 1), "\(prefix) \(name) call \(k): max|Δ| \(maxDiff)")
            }
        }
    }

    func testSuperResolutionLambdaMatchesOfficial() throws {
        try check("sr2", try AveragePoolingOperator(factor: 2), officialV: "sr2.state.V_small")
        try check("sr4", try AveragePoolingOperator(factor: 4), officialV: "sr4.state.V_small")
    }

    func testColorizationLambdaMatchesOfficial() throws {
        try check("color", GrayscaleOperator(weights: GrayscaleOperator.svdWeights), officialV: "color.state.V_small")
    }

    func testInpaintingLambdaMatchesOfficial() throws {
        let mask = try t(try fixture(), "inpaint.mask")
        try check("inpaint", try MaskOperator(keep: try mask.view(as: [16, 16]), source: "official"), officialV: nil)
    }

    func testDenoisingLambdaMatchesOfficial() throws {
        try check("denoise", IdentityOperator(), officialV: nil, denoising: true)
    }

    func testOwnBasisIsOrthonormalWithTheMeanDirectionFirst() throws {
        let blocks = try AveragePoolingOperator(factor: 4).spectralBlocks(imageShape: [1, 8, 8, 3])
        let k = blocks.blockSize
        for i in 0..<k { for j in 0..<k {
            let dot = (0..<k).reduce(Float(0)) { $0 + blocks.v[$1 * k + i] * blocks.v[$1 * k + j] }
            XCTAssertEqual(dot, i == j ? 1 : 0, accuracy: 1e-5)
        } }
        for r in 0..<k { XCTAssertEqual(blocks.v[r * k], 0.25, accuracy: 1e-6) }
    }
}

/// The separable operators (bicubic SR, the official deblurring kernels) against `SRConv`, `Deblurring` and
/// `Deblurring2D`: A x and A†(A x) on the same 16² input, plus the truncation bound.
final class SeparableGoldenTests: XCTestCase {
    private func compare(_ prefix: String, _ spec: String, observationSide: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        guard let f = SpectralGoldenTests.fixture, let x = f.tensors["\(prefix).x"], let ax = f.tensors["\(prefix).A"],
              let apinv = f.tensors["\(prefix).Apinv"] else { throw FixtureMissing("fixtures missing") }
        let a = try OperatorSpec.parse(spec, loadMask: { _ in throw OperatorError("no mask") })
        let image = try SpectralGoldenTests.image(fromCHW: x)
        let y = try a.apply(image)
        let expectedY = try SpectralGoldenTests.image(fromCHW: ax, side: observationSide)
        let expectedPinv = try SpectralGoldenTests.image(fromCHW: apinv)
        for (name, got, want) in [("A", y, expectedY), ("A†A", try a.pseudoInverse(y), expectedPinv)] {
            let maxRef = TestSupport.maxAbs(want.values)
            let maxDiff = TestSupport.maxDifference(got.values, want.values)
            XCTAssertGreaterThan(maxRef, 0.05, "\(prefix) \(name)", file: file, line: line)
            XCTAssertLessThanOrEqual(maxDiff, 2e-4 * maxRef, "\(prefix) \(name): max|Δ| \(maxDiff), max|ref| \(maxRef)", file: file, line: line)
        }
        // Ã Ã† Ã = Ã on random data, and the truncation bound ‖(A − Ã)x‖ ≤ τ‖x‖ is implied by matching A above.
        let z = try SpectralGoldenTests.image(fromCHW: x)
        let az = try a.apply(z), aPinvA = try a.apply(try a.pseudoInverse(az))
        XCTAssertLessThan(TestSupport.maxDifference(az.values, aPinvA.values), 1e-4, "\(prefix) Ã Ã† Ã = Ã", file: file, line: line)
    }

    func testBicubicSRMatchesOfficialSRConv() throws { try compare("bicubic2", "bicubic:2", observationSide: 8) }
    /// The official `Deblurring.singulars()` tiles the sorted singular list (`repeat(1, 3)`) where the
    /// pixel-major, channel-interleaved `Vt` layout needs each value three times, so the official A is not the
    /// blur (checked: with `repeat_interleave(3)` it equals the truncated blur to 3e-7). Our blur is the
    /// truncated blur the code means; these tests compare with it, built from the official 1-D SVD
    /// (U_small, singulars, V_small) and kernel loop (k − 1 taps in reference-exact mode).
    private func compareBlur(_ prefix: String, _ spec: String, twoKernels: Bool = false) throws {
        guard let f = SpectralGoldenTests.fixture, let x = f.tensors["\(prefix).x"] else { throw FixtureMissing("fixtures missing") }
        func official(_ suffix: String) throws -> [Float] {
            guard let u = f.tensors["\(prefix).state.U_small\(suffix)"], let v = f.tensors["\(prefix).state.V_small\(suffix)"],
                  let s = f.tensors["\(prefix).state.singulars_small\(suffix)"] else { throw FixtureMissing("no official SVD for \(prefix)") }
            let n = 16
            var m = [Float](repeating: 0, count: n * n)
            for i in 0..<n { for j in 0..<n { for k in 0..<n where s.data[k] >= 3e-2 { m[i * n + j] += u.data[i * n + k] * s.data[k] * v.data[j * n + k] } } }
            return m
        }
        let mv = try official(twoKernels ? "1" : ""), mh = try official(twoKernels ? "2" : "")
        let image = try SpectralGoldenTests.image(fromCHW: x)
        let expected = try SeparableOperator.product(image, mv, 16, mh, 16)
        let a = try OperatorSpec.parse(spec, referenceExact: true, loadMask: { _ in throw OperatorError("no mask") })
        let got = try a.apply(image)
        let maxRef = TestSupport.maxAbs(expected.values), maxDiff = TestSupport.maxDifference(got.values, expected.values)
        XCTAssertGreaterThan(maxRef, 0.05)
        XCTAssertLessThanOrEqual(maxDiff, 2e-4 * maxRef, "\(prefix): max|Δ| \(maxDiff)")
        let aPinvA = try a.apply(try a.pseudoInverse(got))
        XCTAssertLessThan(TestSupport.maxDifference(aPinvA.values, got.values), 1e-4, "\(prefix) Ã Ã† Ã = Ã")
        // Without reference-exact, all k taps are used: a different (the intended) operator.
        let full = try OperatorSpec.parse(spec, loadMask: { _ in throw OperatorError("no mask") }).apply(image)
        XCTAssertGreaterThan(TestSupport.spread(full.values, got.values), 1e-3, "\(prefix): k taps vs k − 1 taps")
    }

    func testUniformDeblurMatchesOfficialMatrices() throws { try compareBlur("deblur_uni", "blur:uni") }
    func testGaussianDeblurMatchesOfficialMatrices() throws { try compareBlur("deblur_gauss", "blur:gauss") }
    func testAnisotropicDeblurMatchesOfficialMatrices() throws { try compareBlur("deblur_aniso", "blur:aniso", twoKernels: true) }

    /// DDNM+ on the official Deblurring (uniform, Gaussian): Λ with our own (Jacobi) bases — Λ does not depend
    /// on the basis — and Λ_noise with the official LAPACK V_small injected (it does, through the raw noise).
    private func checkSeparableLambda(_ prefix: String, _ spec: String) throws {
        let f = try XCTUnwrap(SpectralGoldenTests.fixture)
        func t(_ f: SpectralGoldenTests.Fixture, _ key: String) throws -> Tensor {
            guard let value = f.tensors[key] else { throw FixtureMissing("fixture has no \(key)") }
            return value
        }
        guard let sized = try OperatorSpec.parse(spec, referenceExact: true, loadMask: { _ in throw OperatorError("no mask") }) as? SizedOperator,
              let a = try sized.sized(height: 16, width: 16) as? SeparableOperator else { return XCTFail("\(spec) is not separable") }
        let officialV = try t(f, "\(prefix).state.V_small").values
        var injected = a.spectrum
        injected.vertical.v = officialV
        injected.horizontal.v = officialV
        // Our untruncated 1-D singulars equal the official `singulars_small_orig`.
        let officialS = try t(f, "\(prefix).state.singulars_small_orig").values
        XCTAssertLessThan(TestSupport.maxDifference(a.spectrum.vertical.singulars, officialS), 1e-5)
        let vec = try SpectralGoldenTests.image(fromCHW: try t(f, "lambda_inputs.vec"))
        let z = try SpectralGoldenTests.image(fromCHW: try t(f, "lambda_inputs.z")), eps = try SpectralGoldenTests.image(fromCHW: try t(f, "lambda_inputs.eps"))
        for k in 0..<3 {
            let args = try t(f, "\(prefix).lambda.\(k).args").values  // a, σy, σt, η
            let lambda = try a.ddnmPlusLambda(vec, a: args[0], sigmaY: args[1], sigmaT: args[2], eta: args[3])
            let noise = try injected.noise(z, eps, a: args[0], sigmaY: args[1], sigmaT: args[2], eta: args[3])
            for (name, got, key) in [("Λ", lambda, "\(prefix).lambda.\(k).out"), ("Λ_noise", noise, "\(prefix).lambda_noise.\(k).out")] {
                let expected = try SpectralGoldenTests.image(fromCHW: try t(f, key))
                let maxRef = TestSupport.maxAbs(expected.values)
                let maxDiff = TestSupport.maxDifference(got.values, expected.values)
                XCTAssertGreaterThan(maxRef, 0.05, "\(prefix) \(name) \(k)")
                XCTAssertLessThanOrEqual(maxDiff, 1e-4 * max(maxRef, 1), "\(prefix) \(name) call \(k): max|Δ| \(maxDiff)")
            }
            if k == 0 {  // the mixed-branch call really changes the vector
                XCTAssertGreaterThan(TestSupport.spread(lambda.values, vec.values), 1e-2, "\(prefix): Λ ≠ I")
            }
        }
    }

    func testUniformDeblurLambdaMatchesOfficial() throws { try checkSeparableLambda("deblur_uni", "blur:uni") }
    func testGaussianDeblurLambdaMatchesOfficial() throws { try checkSeparableLambda("deblur_gauss", "blur:gauss") }

    /// Properties of the separable Λ on every separable operator (bicubic too, whose V is completed):
    /// λ = 1 everywhere when σy = 0; Λ is symmetric (⟨Λu, w⟩ = ⟨u, Λw⟩); Λ_noise with η = 0 and σy = 0 is
    /// σ_t·(V_v ⊗ V_h) ε, whose norm is σ_t‖ε‖ (V orthonormal).
    func testSeparableLambdaProperties() throws {
        for spec in ["blur:gauss", "blur:aniso", "bicubic:2", "blur:box:5", "blur:motion:5:30"] {
            let a = try XCTUnwrap(try OperatorSpec.parse(spec, loadMask: { _ in throw OperatorError("no mask") }) as? SizedOperator, spec)
            XCTAssertTrue(a.ddnmPlusAvailable(imageShape: [1, 16, 16, 3]), spec)
            let u = try TestSupport.random([1, 16, 16, 3], seed: 11), w = try TestSupport.random([1, 16, 16, 3], seed: 12)
            let identity = try a.ddnmPlusLambda(u, a: 0.7, sigmaY: 0, sigmaT: 0.5, eta: 0.85)
            XCTAssertLessThan(TestSupport.maxDifference(identity.values, u.values), 1e-4, "\(spec): Λ = I at σy = 0")
            let lu = try a.ddnmPlusLambda(u, a: 0.95, sigmaY: 0.5, sigmaT: 0.31, eta: 0.85), lw = try a.ddnmPlusLambda(w, a: 0.95, sigmaY: 0.5, sigmaT: 0.31, eta: 0.85)
            let left = zip(lu.values, w.values).reduce(Float(0)) { $0 + $1.0 * $1.1 }, right = zip(u.values, lw.values).reduce(Float(0)) { $0 + $1.0 * $1.1 }
            XCTAssertEqual(left, right, accuracy: 1e-3 * abs(left) + 1e-3, "\(spec): Λ symmetric")
            XCTAssertGreaterThan(TestSupport.spread(lu.values, u.values), 1e-2, "\(spec): Λ ≠ I at σy > 0")
            let zeros = try Tensor(shape: [1, 16, 16, 3], repeating: 0)
            let n = try a.ddnmPlusNoise(zeros, w, a: 0.7, sigmaY: 0, sigmaT: 0.5, eta: 0)
            let norm = { (t: Tensor) in t.values.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot() }
            XCTAssertEqual(norm(n), 0.5 * norm(w), accuracy: 1e-3 * norm(w), "\(spec): ‖Λ_noise‖ = σ_t‖ε‖")
        }
    }

    func testSmallSVDReconstructsTheMatrix() {
        let m = 5, n = 9
        let a = (0..<(m * n)).map { Double(($0 * 37) % 11) - 5 }
        let (u, s, v) = SmallSVD.decompose(a, rows: m, columns: n)
        XCTAssertEqual(s, s.sorted(by: >))
        for i in 0..<m { for j in 0..<n {
            let value = (0..<m).reduce(0.0) { $0 + u[i * m + $1] * s[$1] * v[j * m + $1] }
            XCTAssertEqual(value, a[i * n + j], accuracy: 1e-9)
        } }
    }
}

/// Walsh–Hadamard compressed sensing against the official `WalshHadamardCS` with its permutation imported.
final class CompressedSensingGoldenTests: XCTestCase {
    static func officialOperator() throws -> WalshHadamardCSOperator {
        guard let f = SpectralGoldenTests.fixture, let perm = f.tensors["wht.perm"] else { throw FixtureMissing("fixtures missing") }
        return try WalshHadamardCSOperator(ratio: 4, side: 16, permutation: perm.values.map { Int($0) }, spec: "cs-wht:0.25")
    }

    func testAAndPseudoInverseMatchOfficial() throws {
        let f = try XCTUnwrap(SpectralGoldenTests.fixture)
        let a = try Self.officialOperator()
        let x = try SpectralGoldenTests.image(fromCHW: try XCTUnwrap(f.tensors["wht.x"]))
        let y = try a.apply(x)
        XCTAssertEqual(y.shape, [1, 64, 1, 3])
        let expectedY = try XCTUnwrap(f.tensors["wht.A"]).values
        XCTAssertLessThan(TestSupport.maxDifference(y.values, expectedY), 1e-5 * TestSupport.maxAbs((expectedY)))
        let pinv = try a.pseudoInverse(y)
        let expectedPinv = try SpectralGoldenTests.image(fromCHW: try XCTUnwrap(f.tensors["wht.Apinv"]))
        XCTAssertLessThan(TestSupport.maxDifference(pinv.values, expectedPinv.values), 1e-5 * TestSupport.maxAbs((expectedPinv.values)))
        // A A† = I on the kept coefficients (orthonormal rows).
        XCTAssertLessThan(TestSupport.maxDifference(try a.apply(pinv).values, y.values), 1e-5)
    }

    func testSeededPermutationRepeatsAndSpecsParse() throws {
        XCTAssertEqual(WalshHadamardCSOperator.seededPermutation(count: 64, seed: 3), WalshHadamardCSOperator.seededPermutation(count: 64, seed: 3))
        XCTAssertEqual(Set(WalshHadamardCSOperator.seededPermutation(count: 64, seed: 3)), Set(0..<64))
        let a = try OperatorSpec.parse("cs-wht:0.25", loadMask: { _ in throw OperatorError("no mask") })
        XCTAssertEqual(try a.observationShape(for: [1, 16, 16, 3]), [1, 64, 1, 3])
        XCTAssertEqual(try a.imageShape(for: [1, 64, 1, 3]), [1, 16, 16, 3])
        XCTAssertThrowsError(try a.observationShape(for: [1, 12, 12, 3])) { XCTAssertTrue("\($0)".contains("power of two"), "\($0)") }
    }
}

/// Block-based compressed sensing: the official `CS` with its random V replaced by the orthonormal DCT-II
/// (the reference's fixture), and our seeded basis's properties.
final class BlockCSTests: XCTestCase {
    func testMatchesOfficialCSWithTheDCTBasis() throws {
        guard let f = SpectralGoldenTests.fixture, let x = f.tensors["csblock.x"], let ax = f.tensors["csblock.A"],
              let apinv = f.tensors["csblock.Apinv"] else { throw FixtureMissing("fixtures missing") }
        // V_small[i, k] = c_k cos(π (2i + 1) k / 2048): row k of Vᵀ.
        let n = 1024, m = 256
        var rows = [Float](repeating: 0, count: m * n)
        for k in 0..<m { for i in 0..<n {
            let ck = k == 0 ? (1.0 / Double(n)).squareRoot() : (2.0 / Double(n)).squareRoot()
            rows[k * n + i] = Float(ck * cos(Double.pi * Double(2 * i + 1) * Double(k) / Double(2 * n)))
        } }
        let a = try BlockCSOperator(spec: "cs-block:0.25", rows: rows, kept: m)
        let image = try SpectralGoldenTests.image(fromCHW: x, side: 32)
        let y = try a.apply(image)
        // Official y: channel-major [C][block][k]; ours: [block·k][C].
        let expected = try Tensor(uninitializedShape: y.shape)
        for ch in 0..<3 { for k in 0..<m { expected.data[k * 3 + ch] = ax.data[ch * m + k] } }
        XCTAssertLessThan(TestSupport.maxDifference(y.values, expected.values), 1e-4 * TestSupport.maxAbs((expected.values)))
        let back = try a.pseudoInverse(y)
        let expectedBack = try SpectralGoldenTests.image(fromCHW: apinv, side: 32)
        XCTAssertLessThan(TestSupport.maxDifference(back.values, expectedBack.values), 1e-4 * TestSupport.maxAbs((expectedBack.values)))
    }

    func testSeededBasisIsOrthonormalAndRepeats() throws {
        let a = try BlockCSOperator(spec: "cs-block:0.05", fraction: 0.05, seed: 9)
        let b = try BlockCSOperator(spec: "cs-block:0.05", fraction: 0.05, seed: 9)
        XCTAssertEqual(a.rows, b.rows)
        var g = SeededGaussian(seed: 1)
        let y = try a.apply(try g.next(shape: [1, 64, 64, 3]))
        XCTAssertEqual(y.shape, [1, 2, 2 * a.kept, 3], "block rows, then each block's coefficients")
        XCTAssertEqual(try a.imageShape(for: [1, 4 * a.kept, 1, 3]), [1, 64, 64, 3], "a flat vector is a square image")
        XCTAssertEqual(try a.observationShape(for: [1, 64, 32, 3]), [1, 2, a.kept, 3])
        XCTAssertThrowsError(try a.observationShape(for: [1, 64, 40, 3])) { XCTAssertTrue("\($0)".contains("multiples of 32"), "\($0)") }
        XCTAssertLessThan(TestSupport.maxDifference(try a.apply(try a.pseudoInverse(y)).values, y.values), 1e-4, "A A† = I")
    }
}

/// The SVD forms (V, Vᵀ, U, Uᵀ, singulars) in the official layouts, against functions/svd_operators.py with
/// the official LAPACK bases injected.
final class SVDFormGoldenTests: XCTestCase {
    private func check(_ prefix: String, _ svd: any SVDForm, file: StaticString = #filePath, line: UInt = #line) throws {
        guard let f = SpectralGoldenTests.fixture else { throw FixtureMissing("operators.safetensors does not load") }
        func t(_ key: String) throws -> [Float] {
            guard let value = f.tensors["\(prefix).\(key)"] else { throw FixtureMissing("no \(prefix).\(key)") }
            return value.values
        }
        let x = try t("x")
        let cases: [(String, [Float], [Float])] = [
            ("singulars", svd.singulars(), try t("singulars")),
            ("Vt", svd.vt(x), try t("Vt")),
            ("V", svd.v(x), try t("V")),
            ("Ut", svd.ut(try t("A")), try t("Ut")),
            ("U", svd.u(try t("r")), try t("U")),
        ]
        for (name, got, want) in cases {
            XCTAssertEqual(got.count, want.count, "\(prefix) \(name) length", file: file, line: line)
            let maxRef = TestSupport.maxAbs(want), maxDiff = TestSupport.maxDifference(got, want)
            XCTAssertGreaterThan(maxRef, 0, "\(prefix) \(name)", file: file, line: line)
            XCTAssertLessThanOrEqual(maxDiff, 1e-5 * max(maxRef, 1), "\(prefix) \(name): max|Δ| \(maxDiff)", file: file, line: line)
        }
    }

    fileprivate func official(_ key: String) throws -> [Float] {
        guard let v = SpectralGoldenTests.fixture?.tensors[key] else { throw FixtureMissing("no \(key)") }
        return v.values
    }

    func testPoolingSVDMatchesOfficial() throws {
        for (prefix, s) in [("sr2", 2), ("sr4", 4)] {
            try check(prefix, PoolingSVD(channels: 3, side: 16, factor: s, vSmall: try official("\(prefix).state.V_small"),
                                         uSign: try official("\(prefix).state.U_small")[0]))
        }
    }

    func testColorizationSVDMatchesOfficial() throws {
        try check("color", ColorizationSVD(pixels: 256, vSmall: try official("color.state.V_small"), uSign: try official("color.state.U_small")[0]))
    }

    func testInpaintingSVDMatchesOfficial() throws {
        try check("inpaint", InpaintingSVD(keep: try official("inpaint.mask"), channels: 3))
    }

    func testDenoisingSVDMatchesOfficial() throws { try check("denoise", IdentitySVD(count: 768)) }

    func testWalshHadamardSVDMatchesOfficial() throws {
        try check("wht", WalshHadamardSVD(try CompressedSensingGoldenTests.officialOperator()))
    }

    /// U diag(s) Vᵀ x = A x with our own bases (no official matrices injected).
    func testOwnBasesReconstructA() throws {
        var g = SeededGaussian(seed: 4)
        let image = try g.next(shape: [1, 16, 16, 3])
        var chw = [Float](repeating: 0, count: image.count)
        for c in 0..<3 { for p in 0..<256 { chw[c * 256 + p] = image.data[p * 3 + c] } }
        let pool = PoolingSVD(channels: 3, side: 16, factor: 4)
        let spectral = pool.vt(chw), s = pool.singulars()
        let y = pool.u((0..<s.count).map { s[$0] * spectral[$0] })
        let direct = try AveragePoolingOperator(factor: 4).apply(image)
        for c in 0..<3 { for p in 0..<16 { XCTAssertEqual(y[c * 16 + p], direct.data[p * 3 + c], accuracy: 1e-5) } }
        XCTAssertEqual(TestSupport.maxDifference(pool.v(spectral), chw), 0, accuracy: 1e-5, "V Vᵀ = I")
    }
}

extension SVDFormGoldenTests {
    /// The official `Deblurring` / `SRConv` SVD with the fixture's LAPACK bases and permutation.
    static func officialKronecker(_ prefix: String) throws -> KroneckerSVD {
        try kronecker(prefix, m: 16, twoKernels: false, bicubic: false)
    }

    fileprivate func kronecker(_ prefix: String, m: Int, twoKernels: Bool, bicubic: Bool) throws -> KroneckerSVD {
        try Self.kronecker(prefix, m: m, twoKernels: twoKernels, bicubic: bicubic)
    }

    fileprivate static func kronecker(_ prefix: String, m: Int, twoKernels: Bool, bicubic: Bool) throws -> KroneckerSVD {
        func f(_ key: String) throws -> [Float] {
            guard let v = SpectralGoldenTests.fixture?.tensors["\(prefix).state.\(key)"] else { throw FixtureMissing("no \(prefix).state.\(key)") }
            return v.values
        }
        let (u1, u2) = twoKernels ? (try f("U_small1"), try f("U_small2")) : (try f("U_small"), try f("U_small"))
        let (v1, v2) = twoKernels ? (try f("V_small1"), try f("V_small2")) : (try f("V_small"), try f("V_small"))
        let perm = try f("_perm").map { Int($0) }
        return KroneckerSVD(channels: 3, n: 16, m: m, uVertical: u1, uHorizontal: u2, vVertical: v1, vHorizontal: v2,
                            vPermutation: perm, uPermutation: bicubic ? nil : perm, sortedSingulars: try f("_singulars"))
    }

    func testBicubicSVDMatchesOfficialSRConv() throws {
        try check("bicubic2", try kronecker("bicubic2", m: 8, twoKernels: false, bicubic: true))
    }

    /// V, Vᵀ, U, Uᵀ match the official Deblurring; its singulars() is the tiled (misaligned) list, ours the
    /// interleaved one — the official bug this project documents.
    func testDeblurSVDMatchesOfficialExceptTheTiledSingulars() throws {
        for (prefix, two) in [("deblur_gauss", false), ("deblur_uni", false), ("deblur_aniso", true)] {
            let svd = try kronecker(prefix, m: 16, twoKernels: two, bicubic: false)
            let f = try XCTUnwrap(SpectralGoldenTests.fixture)
            let x = try official("\(prefix).x")
            for (name, got, want) in [("Vt", svd.vt(x), try official("\(prefix).Vt")), ("V", svd.v(x), try official("\(prefix).V")),
                                      ("Ut", svd.ut(try official("\(prefix).A")), try official("\(prefix).Ut")),
                                      ("U", svd.u(try official("\(prefix).r")), try official("\(prefix).U"))] {
                let maxRef = TestSupport.maxAbs(want), maxDiff = TestSupport.maxDifference(got, want)
                XCTAssertLessThanOrEqual(maxDiff, 1e-5 * max(maxRef, 1), "\(prefix) \(name): max|Δ| \(maxDiff)")
            }
            let sorted = try official("\(prefix).state._singulars")
            XCTAssertEqual(f.tensors["\(prefix).singulars"]?.values, sorted + sorted + sorted, "\(prefix): the official list is tiled")
            XCTAssertEqual(svd.singulars(), sorted.flatMap { [$0, $0, $0] })
        }
    }
}

extension SpectralGoldenTests {
    func testWalshHadamardLambdaMatchesOfficial() throws {
        let f = try fixture()
        let svd = WalshHadamardSVD(try CompressedSensingGoldenTests.officialOperator())
        let vec = try t(f, "lambda_inputs.vec").values, z = try t(f, "lambda_inputs.z").values, eps = try t(f, "lambda_inputs.eps").values
        for k in 0..<3 {
            let args = try t(f, "wht.lambda.\(k).args").values
            let lambda = DDNMPlusSVD.lambda(vec, svd, a: args[0], sigmaY: args[1], sigmaT: args[2], eta: args[3])
            let noise = DDNMPlusSVD.noise(z, eps, svd, raw: svd.raw, a: args[0], sigmaY: args[1], sigmaT: args[2], eta: args[3])
            for (name, got, key) in [("Λ", lambda, "wht.lambda.\(k).out"), ("Λ_noise", noise, "wht.lambda_noise.\(k).out")] {
                let want = try t(f, key).values
                let maxRef = TestSupport.maxAbs(want), maxDiff = TestSupport.maxDifference(got, want)
                XCTAssertGreaterThan(maxRef, 0.05)
                XCTAssertLessThanOrEqual(maxDiff, 1e-5 * max(maxRef, 1), "wht \(name) \(k): max|Δ| \(maxDiff)")
            }
        }
    }
}

extension SVDFormGoldenTests {
    func testBlockCSSVDMatchesOfficialWithTheDCTBasis() throws {
        let n = 1024
        var v = [Float](repeating: 0, count: n * n)  // V_small[i, k] = c_k cos(π (2i + 1) k / 2048)
        for i in 0..<n { for k in 0..<n {
            let ck = k == 0 ? (1.0 / Double(n)).squareRoot() : (2.0 / Double(n)).squareRoot()
            v[i * n + k] = Float(ck * cos(Double.pi * Double(2 * i + 1) * Double(k) / Double(2 * n)))
        } }
        try check("csblock", BlockCSSVD(channels: 3, side: 32, kept: 256, vSmall: v))
    }
}
