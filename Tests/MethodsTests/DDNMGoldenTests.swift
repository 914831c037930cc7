import Checkpoints
import Engine
import Foundation
import XCTest
@testable import Methods
@testable import Networks
@testable import Operators

/// DDNM's simplified path against the official `simplified_ddnm_plus` (wyhuai/DDNM@00b58ea, run on CPU by
/// Tools/reference/make_ddnm_fixtures.py): a tiny random ADM UNet (16², every parameter redrawn), T_sampling
/// 10, η 0.85, and the official run's noise draws injected in order. Outputs are large (|x0| up to ~400:
/// a random network is no denoiser), so tolerances are relative to max|ref|.
final class DDNMGoldenTests: XCTestCase {
    struct Golden {
        let tensors: [String: Tensor]
        let cases: [String: Any]
        let modelConfig: [String: Any]
        let folder: URL
    }

    nonisolated(unsafe) static let golden: Golden? = {
        guard let folder = Bundle.module.url(forResource: "Fixtures", withExtension: nil),
              let file = try? Checkpoint(path: folder.appendingPathComponent("trajectories.safetensors").path),
              let state = try? file.stateDict() else { return nil }
        var tensors: [String: Tensor] = [:]
        for (name, stored) in state.tensors { tensors[name] = try? stored.floatTensor() }
        func json(_ key: String) -> [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data((file.metadata[key] ?? "{}").utf8))) as? [String: Any] ?? [:]
        }
        // From the operators fixture, already loaded by SpectralGoldenTests.
        tensors["inpaint.mask"] = try? SpectralGoldenTests.fixture?.tensors["inpaint.mask"]?.view(as: [16, 16])
        tensors["sr2.V_small"] = SpectralGoldenTests.fixture?.tensors["sr2.state.V_small"]  // the official LAPACK basis
        return Golden(tensors: tensors, cases: json("cases"), modelConfig: json("model_config"), folder: folder)
    }()

    private func golden() throws -> Golden {
        guard let g = Self.golden else { throw FixtureMissing("Fixtures/trajectories.safetensors is missing or does not load (Tools/reference/make_ddnm_fixtures.py)") }
        return g
    }

    /// NCHW [1, C, H, W] → NHWC.
    static func nhwc(_ t: Tensor) throws -> Tensor {
        guard t.shape.count == 4, t.shape[2] == t.shape[3] else { throw FixtureMissing("expected a square NCHW fixture, got \(t.shape)") }
        return try TestSupport.image(fromCHW: t, channels: t.shape[1], side: t.shape[2])
    }

    private func tensor(_ g: Golden, _ key: String) throws -> Tensor {
        guard let t = g.tensors[key] else { throw FixtureMissing("fixture has no \(key)") }
        return t
    }

    private func setUpCase(_ name: String, operator a: any DegradationOperator, sigmaY: Float = 0, travel: (Int, Int) = (1, 1),
                           variant: DDNMSampler.Variant)
        throws -> (sampler: DDNMSampler, y: Tensor, noise: RecordedGaussian, expected: Tensor, g: Golden) {
        let g = try golden()
        let info = try XCTUnwrap(g.cases[name] as? [String: Any], "no case \(name)")
        let draws = try XCTUnwrap(info["noise_draws"] as? Int)
        let noise = RecordedGaussian(try (0..<draws).map { try Self.nhwc(try tensor(g, "\(name).noise.\($0)")) })
        var y: Tensor
        if variant == .svd, sigmaY > 0, a is WalshHadamardCSOperator {
            // y = A(x_gt) + σy·n as the official run drew it: the [1, M] coefficient vector, already in our order.
            y = try Tensor(shape: try a.observationShape(for: [1, 16, 16, 3]), values: try tensor(g, "\(name).y").values)
        } else if variant == .svd, sigmaY > 0 {
            // y = A(x_gt) + σy·n as the official run drew it: the [1, 3·8·8] channel-major low-resolution vector.
            y = try SpectralGoldenTests.image(fromCHW: try tensor(g, "\(name).y"), side: 8)
        } else if variant == .svd {
            // The SVD path's y is the operator's vector; for these operators it is A(x_gt) in our layout.
            y = try a.apply(try Self.nhwc(try tensor(g, "x_gt")))
        } else {
            y = try Self.nhwc(try tensor(g, "\(name).y"))
            if a is GrayscaleOperator { y = try splitChannels(y, sizes: [1, 2])[0] }  // the official y repeats the gray 3 times
        }
        var sampler = try DDNMSampler(timesteps: try TimeTravelSchedule(samplingSteps: 10, travelLength: travel.0, travelRepeat: travel.1),
                                      eta: 0.85, sigmaY: sigmaY, variant: variant)
        if let v = g.tensors["sr2.V_small"] { sampler.adjustSpectralBlocks = { var b = $0; b.v = v.values; return b } }
        return (sampler, y, noise, try Self.nhwc(try tensor(g, "\(name).x0")), g)
    }

    private func network(_ g: Golden) throws -> any DiffusionNetwork {
        let data = try JSONSerialization.data(withJSONObject: g.modelConfig.filter { !($0.value is NSNull) })
        let configuration = try JSONDecoder().decode(ADMConfiguration.self, from: data)
        return try NetworkLoader.load(path: g.folder.appendingPathComponent("tiny_adm16.pt").path, architecture: .adm(configuration)).network
    }

    private func assertRelativelyClose(_ actual: Tensor, _ expected: Tensor, _ tolerance: Float, _ message: String,
                                       file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.shape, expected.shape, message, file: file, line: line)
        let maxRef = TestSupport.maxAbs(expected.values)
        let maxDiff = TestSupport.maxDifference(actual.values, expected.values)
        XCTAssertGreaterThan(maxRef, 1, message, file: file, line: line)
        XCTAssertLessThanOrEqual(maxDiff, tolerance * maxRef, "\(message): max|Δ| \(maxDiff), max|ref| \(maxRef)", file: file, line: line)
    }

    /// The sampler alone, fed the official ε of every model call: isolates the loop's arithmetic.
    private func checkWithRecordedEpsilon(_ name: String, _ a: any DegradationOperator, sigmaY: Float = 0, travel: (Int, Int) = (1, 1),
                                          variant: DDNMSampler.Variant = .simplified) throws {
        var (sampler, y, noise, expected, g) = try setUpCase(name, operator: a, sigmaY: sigmaY, travel: travel, variant: variant)
        var call = 0
        let result = try sampler.sample(observation: y, operator: a, imageShape: [1, 16, 16, 3], predictNoise: { _, _ in
            defer { call += 1 }
            return try Self.nhwc(try self.tensor(g, "\(name).et.\(call)"))
        }, noise: &noise)
        XCTAssertEqual(noise.remaining.count, 0, "\(name): every recorded draw is used")
        assertRelativelyClose(result, expected, 1e-4, "\(name) (recorded ε)")
    }

    /// The whole method: our network from the official .pt, our sampler, the official noise.
    private func checkEndToEnd(_ name: String, _ a: any DegradationOperator, sigmaY: Float = 0, travel: (Int, Int) = (1, 1),
                               variant: DDNMSampler.Variant = .simplified) throws {
        var (sampler, y, noise, expected, g) = try setUpCase(name, operator: a, sigmaY: sigmaY, travel: travel, variant: variant)
        let net = try network(g)
        let result = try sampler.sample(observation: y, operator: a, imageShape: [1, 16, 16, 3], predictNoise: net.epsilon(), noise: &noise)
        assertRelativelyClose(result, expected, 1e-3, "\(name) (end to end)")
        try checkObservation(name, a, sigmaY: sigmaY, variant: variant, y: y, g: g)
        guard sigmaY == 0 else { return }
        // The relative bar above is loose where it matters least: the random prior's x0 reaches |457| while the
        // data lie in [-1, 1]. A x̂ is pinned to y by the method itself, so it is held to an absolute bar: an
        // error in the correction that the relative bar would hide (0.34 absolute) shows here.
        let consistency = TestSupport.maxDifference(try a.apply(result), try a.apply(expected))
        XCTAssertLessThanOrEqual(consistency, Self.observationBar, "\(name): max|A x̂ − A x̂_official|")
        XCTAssertLessThanOrEqual(TestSupport.maxDifference(try a.apply(result), y), Self.observationBar, "\(name): max|A x̂ − y|")
    }

    /// Absolute bar on observations (the data scale is [-1, 1]; float32 rounding of x0 ≈ 457 is 3e-5).
    static let observationBar: Float = 2e-4

    /// Our A of the official x_gt against the official y: the y the sampler sees is ours (σy = 0) or the
    /// official one, and both must be the same observation. The SVD path's official y is a vector in the
    /// operator's range order, so there the comparison is of the sorted values (the spectral goldens pin the
    /// order); the simplified path's y is an image, compared pixel by pixel.
    private func checkObservation(_ name: String, _ a: any DegradationOperator, sigmaY: Float, variant: DDNMSampler.Variant,
                                  y: Tensor, g: Golden) throws {
        let ours = try a.apply(try Self.nhwc(try tensor(g, "x_gt")))
        if variant == .svd {
            guard sigmaY == 0 else { return }
            let official = try tensor(g, "\(name).y").values
            var values = ours.values
            if a is MaskOperator {  // ours keeps the image shape with zeros in the holes; the official y lists the kept pixels
                let keep = try tensor(g, "inpaint.mask").values
                values = values.enumerated().filter { keep[$0.offset / 3] == 1 }.map(\.element)
            }
            XCTAssertLessThanOrEqual(TestSupport.maxDifference(values.sorted(), official.sorted()), 1e-5, "\(name): A(x_gt) vs the official y")
        } else {
            XCTAssertLessThanOrEqual(TestSupport.maxDifference(ours, y), 1e-5, "\(name): A(x_gt) vs the official y")
        }
    }

    func testSimplifiedSRMatchesOfficialWithRecordedEpsilon() throws { try checkWithRecordedEpsilon("simp_sr2", try AveragePoolingOperator(factor: 2)) }
    func testSimplifiedSRWithSigmaYMatchesOfficialWithRecordedEpsilon() throws {
        try checkWithRecordedEpsilon("simp_sr2_sigma", try AveragePoolingOperator(factor: 2), sigmaY: 0.1)
    }
    func testSimplifiedTimeTravelMatchesOfficialWithRecordedEpsilon() throws {
        try checkWithRecordedEpsilon("simp_travel", try AveragePoolingOperator(factor: 2), travel: (2, 2))
    }

    // MARK: SVD path (svd_ddnm.py ddnm_diffusion), σy = 0

    func testSVDPathSRMatchesOfficialWithRecordedEpsilon() throws {
        try checkWithRecordedEpsilon("svd_sr2", try AveragePoolingOperator(factor: 2), variant: .svd)
    }
    func testSVDPathTimeTravelMatchesOfficialWithRecordedEpsilon() throws {
        try checkWithRecordedEpsilon("svd_sr2_travel", try AveragePoolingOperator(factor: 2), travel: (2, 2), variant: .svd)
    }
    func testSVDPathSRMatchesOfficialEndToEnd() throws { try checkEndToEnd("svd_sr2", try AveragePoolingOperator(factor: 2), variant: .svd) }
    func testSVDPathColorizationMatchesOfficialEndToEnd() throws {
        try checkEndToEnd("svd_color", GrayscaleOperator(weights: GrayscaleOperator.svdWeights), variant: .svd)
    }
    func testSVDPathInpaintingMatchesOfficialEndToEnd() throws {
        try checkEndToEnd("svd_inpaint", try MaskOperator(keep: try tensor(try golden(), "inpaint.mask"), source: "official mask"), variant: .svd)
    }
    /// The official Gaussian deblur, replayed exactly: its SVD form with the official bases and its tiled
    /// singular list (the official A is not the blur; see the README), so the run matches the official one.
    func testSVDPathOfficialGaussianDeblurReplaysExactly() throws {
        let svd = try SVDFormGoldenTests.officialKronecker("deblur_gauss")
        let sorted = try XCTUnwrap(SpectralGoldenTests.fixture?.tensors["deblur_gauss.state._singulars"]).values
        let a = SVDOperator(spec: "official deblur_gauss", form: svd, imageShape: [1, 16, 16, 3], singulars: sorted + sorted + sorted)
        try checkEndToEnd("svd_deblur_gauss", a, variant: .svd)
    }

    func testSVDPathWalshHadamardCSMatchesOfficialEndToEnd() throws {
        try checkEndToEnd("svd_wht", try CompressedSensingGoldenTests.officialOperator(), variant: .svd)
    }
    func testSVDPathTimeTravelMatchesOfficialEndToEnd() throws {
        try checkEndToEnd("svd_sr2_travel", try AveragePoolingOperator(factor: 2), travel: (2, 2), variant: .svd)
    }

    func testSVDPathDDNMPlusMatchesOfficialWithRecordedEpsilon() throws {
        try checkWithRecordedEpsilon("svd_sr2_plus", try AveragePoolingOperator(factor: 2), sigmaY: 0.1, variant: .svd)
    }
    func testSVDPathDDNMPlusMatchesOfficialEndToEnd() throws {
        try checkEndToEnd("svd_sr2_plus", try AveragePoolingOperator(factor: 2), sigmaY: 0.1, variant: .svd)
    }

    /// DDNM+ on an SVD form (Walsh–Hadamard CS: its own Λ and Λ_noise, svd_operators.py:253-300), σy 0.3 on
    /// the official noisy y: the branch of the sampler that takes `SVDFormProviding` operators.
    func testSVDFormDDNMPlusMatchesOfficialWithRecordedEpsilon() throws {
        try checkWithRecordedEpsilon("svd_wht_plus", try CompressedSensingGoldenTests.officialOperator(), sigmaY: 0.3, variant: .svd)
    }
    func testSVDFormDDNMPlusMatchesOfficialEndToEnd() throws {
        try checkEndToEnd("svd_wht_plus", try CompressedSensingGoldenTests.officialOperator(), sigmaY: 0.3, variant: .svd)
    }

    // MARK: Simplified path

    func testSimplifiedSRMatchesOfficialEndToEnd() throws { try checkEndToEnd("simp_sr2", try AveragePoolingOperator(factor: 2)) }
    func testSimplifiedColorizationMatchesOfficialEndToEnd() throws { try checkEndToEnd("simp_color", GrayscaleOperator()) }
    func testSimplifiedInpaintingMatchesOfficialEndToEnd() throws {
        let mask = try tensor(try golden(), "inpaint.mask")
        try checkEndToEnd("simp_inpaint", try MaskOperator(keep: mask, source: "official mask"))
    }
    func testSimplifiedDDNMPlusMatchesOfficialEndToEnd() throws {
        try checkEndToEnd("simp_sr2_sigma", try AveragePoolingOperator(factor: 2), sigmaY: 0.1)
    }
    func testSimplifiedTimeTravelMatchesOfficialEndToEnd() throws {
        try checkEndToEnd("simp_travel", try AveragePoolingOperator(factor: 2), travel: (2, 2))
    }
}

/// `clipX0` (guided-diffusion's and hq_demo's clamp of x0|t): a predictor whose x0 runs far out of range
/// leaves the holes of an inpainting in range only with the clamp; without it the official path passes them on.
final class DDNMClipTests: XCTestCase {
    func testClipX0KeepsPredictionsInRange() throws {
        let keep = try Tensor(shape: [16, 16], values: (0..<256).map { $0 % 3 == 0 ? 0 : 1 })
        let a = try MaskOperator(keep: keep, source: "test")
        let clean = try TestSupport.random([1, 16, 16, 3], seed: 1)
        let y = try a.apply(try clamp(clean, to: -1...1))
        let wild: Denoiser = { x, _ in try scale(x, by: -4) }  // ε = −4 x_t: x0 grows without bound
        var outputs: [Tensor] = []
        for clip in [false, true] {
            var sampler = try DDNMSampler(timesteps: try TimeTravelSchedule(samplingSteps: 10))
            sampler.clipX0 = clip
            var noise = SeededGaussian(seed: 3)
            outputs.append(try sampler.sample(observation: y, operator: a, imageShape: [1, 16, 16, 3], predictNoise: wild, noise: &noise))
        }
        let (raw, clipped) = (TestSupport.maxAbs(outputs[0].values), TestSupport.maxAbs(outputs[1].values))
        XCTAssertGreaterThan(raw, 2, "without the clamp the holes leave [-1, 1]")
        XCTAssertLessThanOrEqual(clipped, 1 + 1e-5, "with it they stay in range")
        // Known pixels are y either way.
        XCTAssertLessThan(TestSupport.maxDifference(try a.apply(outputs[1]), y), 1e-5)
    }
}

/// The README's promise: `--paper` at σy = 0 is exactly the SVD path's DDIM step (γ/σ_t = 1), while the
/// simplified path's σ_t quirk (√(1 − ᾱ'²)) makes it differ.
final class DDNMPaperVariantTests: XCTestCase {
    func testPaperVariantAtZeroSigmaEqualsTheSVDStep() throws {
        let a = try AveragePoolingOperator(factor: 2)
        let y = try a.apply(try TestSupport.random([1, 16, 16, 3], seed: 5))
        let predictor: Denoiser = { x, t in try scale(x, by: 0.3 + Float(t) / 2000) }
        func run(_ variant: DDNMSampler.Variant) throws -> Tensor {
            let sampler = try DDNMSampler(timesteps: try TimeTravelSchedule(samplingSteps: 10), eta: 0.85, variant: variant)
            var noise = SeededGaussian(seed: 11)
            return try sampler.sample(observation: y, operator: a, imageShape: [1, 16, 16, 3], predictNoise: predictor, noise: &noise)
        }
        let (svd, paper, simplified) = (try run(.svd), try run(.paper), try run(.simplified))
        XCTAssertLessThanOrEqual(TestSupport.maxDifference(paper, svd), 1e-6 * TestSupport.maxAbs(svd.values))
        XCTAssertGreaterThan(TestSupport.spread(simplified.values, svd.values), 1e-3, "the simplified quirk must show")
    }
}
