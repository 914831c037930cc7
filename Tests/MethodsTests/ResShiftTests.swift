import Checkpoints
import Engine
import Foundation
import XCTest
@testable import Methods
@testable import Tiling
@testable import Networks

/// Whole ResShift sampling runs against the official `GaussianDiffusion.p_sample_loop` (zsyOAOA/ResShift, run on
/// CPU by Tools/reference/make_resshift_fixtures.py): 4 steps, v3 schedule, tiny random UNetModelSwin, the
/// official run's Gaussian draws injected in order; once in a VQ latent space (official latent scaling, no
/// clipping) and once in pixel space through a pixel-unshuffle ×4 "first stage" (pixel scaling, x̂0 clipped),
/// the form our own model uses. Tolerance 1e-3 of max|ref| (the bar).
final class ResShiftTests: XCTestCase {
    static let tolerance: Float = 1e-3

    private func load(_ name: String) throws -> (URL, [String: Tensor], [String: String]) {
        guard let folder = Bundle.module.url(forResource: "Fixtures", withExtension: nil)?.appendingPathComponent("resshift") else {
            throw FixtureMissing("no resshift fixtures")
        }
        let file = try Checkpoint(path: folder.appendingPathComponent("\(name).io.safetensors").path)
        var tensors: [String: Tensor] = [:]
        for (key, stored) in try file.stateDict().tensors { tensors[key] = try stored.floatTensor() }
        return (folder, tensors, file.metadata)
    }

    /// swin_a.pt and vq_a.pt are shared with the network tests (one copy in the repository).
    private var networkFixtures: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("NetworksTests/Fixtures/resshift")
    }

    private func relativeError(_ a: Tensor, _ b: Tensor) -> Float {
        let scale = max(TestSupport.maxAbs(b.values), 1e-12)
        return TestSupport.maxDifference(a, b) / scale
    }

    private func run(_ name: String, network weights: URL, firstStage: FirstStage, scaling: ResShiftInputScaling, clip: Bool,
                     configuration: (URL) throws -> ResShiftUNetConfiguration) throws {
        let (folder, t, _) = try load(name)
        let network = try ResShiftLoader.loadUNet(path: weights.path, configuration: try configuration(folder)).network
        let lr = try XCTUnwrap(t["lr"])
        let (_, h, w, _) = try lr.nhwc("lr")
        let up = try resizeBicubic(lr, height: 4 * h, width: 4 * w)
        XCTAssertLessThan(relativeError(up, try XCTUnwrap(t["y_up"])), 1e-5, "bicubic ×4")
        let zY = try firstStage.encode(try XCTUnwrap(t["y_up"]))
        XCTAssertLessThan(relativeError(zY, try XCTUnwrap(t["z_y"])), 1e-4, "z_y")

        let schedule = try ResShiftSchedule.exponential(steps: 4, minNoiseLevel: 0.2)
        let sqrtEtas = try XCTUnwrap(t["sqrt_etas"]).values
        for (ours, theirs) in zip(schedule.sqrtEtas, sqrtEtas) { XCTAssertEqual(Float(ours), theirs, accuracy: 1e-7) }
        let sampler = ResShiftSampler(schedule: schedule, inputScaling: scaling, clipX0: clip)
        let draws = try ["noise_prior", "noise_step3", "noise_step2", "noise_step1", "noise_step0"].map { try XCTUnwrap(t[$0], $0) }
        var noise = RecordedGaussian(draws)
        var steps = 0
        let z = try sampler.sample(zY: try XCTUnwrap(t["z_y"]), denoiser: sampler.denoiser { x, timesteps in
            try network(x, timesteps: timesteps, condition: lr)
        }, noise: &noise, progress: { done, _ in steps = done })
        XCTAssertEqual(steps, 4)
        XCTAssertTrue(noise.remaining.isEmpty, "every recorded draw is used, in the official order")
        let expected = try XCTUnwrap(t["z_step0"])
        XCTAssertLessThan(relativeError(z, expected), Self.tolerance, "\(name) final latent")
        let output = try firstStage.decode(z)
        XCTAssertLessThan(relativeError(output, try XCTUnwrap(t["output"])), Self.tolerance, "\(name) decoded output")
    }

    private func unetConfiguration(_ metadata: [String: String], _ key: String) throws -> ResShiftUNetConfiguration {
        try JSONDecoder().decode(ResShiftUNetConfiguration.self, from: Data(try XCTUnwrap(metadata[key], "metadata \(key)").utf8))
    }

    func testLatentRunMatchesOfficialSampling() throws {
        let (_, _, metadata) = try load("run_latent")
        let vqConfig = try JSONSerialization.jsonObject(with: Data(try XCTUnwrap(metadata["first_stage_config"]).utf8)) as? [String: Any] ?? [:]
        var object = vqConfig["ddconfig"] as? [String: Any] ?? [:]
        object["n_embed"] = vqConfig["n_embed"]
        object["embed_dim"] = vqConfig["embed_dim"]
        let vq = try ResShiftLoader.loadAutoencoder(path: networkFixtures.appendingPathComponent("vq_a.pt").path,
                                                    configuration: try JSONDecoder().decode(AutoencoderConfiguration.self, from: try JSONSerialization.data(withJSONObject: object)))
        try run("run_latent", network: networkFixtures.appendingPathComponent("swin_a.pt"), firstStage: vq, scaling: .latent, clip: false) { _ in try self.unetConfiguration(metadata, "network_config") }
    }

    func testPixelUnshuffleRunMatchesOfficialSampling() throws {
        let (folder, _, metadata) = try load("run_pixel")
        try run("run_pixel", network: folder.appendingPathComponent("swin_c.pt"), firstStage: PixelUnshuffleStage(factor: 4), scaling: .pixel, clip: true) { _ in
            try self.unetConfiguration(metadata, "network_config")
        }
    }

    func testScheduleMatchesTheOfficialValues() throws {
        let four = try ResShiftSchedule.exponential(steps: 4, minNoiseLevel: 0.2)
        for (ours, theirs) in zip(four.sqrtEtas, [0.1, 0.5201, 0.76138, 0.99]) { XCTAssertEqual(ours, theirs, accuracy: 5e-5) }
        let fifteen = try ResShiftSchedule.exponential(steps: 15, minNoiseLevel: 0.04)
        XCTAssertEqual(fifteen.sqrtEtas[0], 0.02, accuracy: 1e-12)
        XCTAssertEqual(fifteen.sqrtEtas[1], 0.11717, accuracy: 5e-5)
        XCTAssertEqual(fifteen.sqrtEtas[14], 0.99, accuracy: 1e-12)
        let official = try XCTUnwrap(try load("run_pixel").1["sqrt_etas_15"], "run_pixel has the official 15-step schedule")
        XCTAssertEqual(official.count, fifteen.sqrtEtas.count)
        for (ours, theirs) in zip(fifteen.sqrtEtas, official.values) { XCTAssertEqual(Float(ours), theirs, accuracy: 1e-7) }
        // Posterior: variance 0 at the first step (no noise there), coefficients sum to 1.
        let (c1, c2, _) = four.posterior(2)
        XCTAssertEqual(c1 + c2, 1, accuracy: 1e-12)
        XCTAssertEqual(four.posterior(0).coef1, 0)
        XCTAssertThrowsError(try ResShiftSchedule.exponential(steps: 1, minNoiseLevel: 0.2))
    }

    /// `ImageSpliterTh.extract_starts` and plain averaging: a constant-per-patch restorer gives the mean of the
    /// patches that cover each pixel; the feathered blend reproduces a smooth image exactly.
    func testChopperStartsAndBlending() throws {
        let chopper = try ResShiftChopper(chopSize: 64, stride: 48)
        XCTAssertEqual(chopper.starts(64), [0])
        XCTAssertEqual(chopper.starts(100), [0, 36])
        XCTAssertEqual(chopper.starts(150), [0, 48, 86])
        XCTAssertEqual(ResShiftChopper.defaultStride(chopSize: 512), 448)
        XCTAssertThrowsError(try ResShiftChopper(chopSize: 64, stride: 65))

        let image = try Tensor(shape: [1, 100, 40, 1])
        for i in 0..<image.count { image.data[i] = Float(i / 40) }  // value = row
        let averaged = try chopper.run(image, scale: 2, outputChannels: 1) { patch, index, count in
            XCTAssertEqual(count, 2)
            return try Tensor(shape: [1, 128, 80, 1], repeating: Float(index + 1))
        }
        XCTAssertEqual(averaged.data[0], 1)                       // row 0: first patch only
        XCTAssertEqual(averaged.data[80 * 100], 1.5)              // row 50 (output 100): both patches
        XCTAssertEqual(averaged.data[80 * 199], 2)
        let feathered = try ResShiftChopper(chopSize: 64, stride: 48, blend: .feathered)
        let identity = try feathered.run(image, scale: 1, outputChannels: 1) { patch, _, _ in patch }
        XCTAssertLessThan(TestSupport.maxDifference(identity, image), 1e-4)
    }

    /// `sample_func`: reflect padding to the multiple, bicubic ×4 of the padded image as z_y, the condition at the
    /// padded size, the result cropped back and clamped. With an x0-predictor that returns z_y exactly, the
    /// chain ends at y: the output is the clamped bicubic upsampling of the padded input, cropped.
    func testRestorerPadsUpsamplesAndCropsAsTheOfficialSampler() throws {
        let lq = try TestSupport.random([1, 20, 12, 3], seed: 4)
        let clipped = try clamp(lq, to: -1...1)
        var seenCondition: [Int] = []
        let restorer = ResShiftRestorer(
            sampler: ResShiftSampler(schedule: try .exponential(steps: 4, minNoiseLevel: 0.2)), scaleFactor: 4, paddingMultiple: 16,
            encode: { $0 }, decode: { $0 },
            predict: { x, _, condition in
                seenCondition = condition.shape
                return try resizeBicubic(try ResShiftRestorer.reflectPad(clipped, bottom: 12, right: 4), height: 128, width: 64)
            })
        var noise = SeededGaussian(seed: 1)
        let out = try restorer.restore(clipped, noise: &noise)
        XCTAssertEqual(seenCondition, [1, 32, 16, 3])
        XCTAssertEqual(out.shape, [1, 80, 48, 3])
        let padded = try ResShiftRestorer.reflectPad(clipped, bottom: 12, right: 4)
        XCTAssertEqual(padded.data[(20 * 16 + 0) * 3], clipped.data[(18 * 12 + 0) * 3], "row 20 mirrors row 18")
        let up = try clamp(try resizeBicubic(padded, height: 128, width: 64), to: -1...1)
        var worst: Float = 0
        for y in 0..<80 { for x in 0..<48 { for c in 0..<3 { worst = max(worst, abs(out.data[(y * 48 + x) * 3 + c] - up.data[(y * 64 + x) * 3 + c])) } } }
        XCTAssertLessThan(worst, 1e-5)
        // Padding more than the image holds reflects repeatedly instead of failing (PyTorch refuses it).
        XCTAssertEqual(try ResShiftRestorer.reflectPad(try Tensor(shape: [1, 3, 3, 1]), bottom: 10, right: 7).shape, [1, 13, 10, 1])
    }

    /// `ModelMeanType.RESIDUAL`: x̂0 = y − output. A network that outputs 0 ends the chain exactly at y; one that
    /// outputs y − x ends it at x (what our own model learns), whatever the noise.
    func testResidualPredictionIsYMinusTheOutput() throws {
        let zY = try TestSupport.random([1, 8, 8, 48], seed: 11), target = try TestSupport.random([1, 8, 8, 48], seed: 12)
        let sampler = ResShiftSampler(schedule: try .exponential(steps: 4, minNoiseLevel: 0.2), inputScaling: .pixel, prediction: .residual)
        var noise = SeededGaussian(seed: 2)
        let y = try sampler.sample(zY: zY, denoiser: { x, _ in try Tensor(shape: x.shape) }, noise: &noise)
        XCTAssertLessThan(TestSupport.maxDifference(y, zY), 1e-6)
        let x = try sampler.sample(zY: zY, denoiser: { _, _ in try subtract(zY, target) }, noise: &noise)
        XCTAssertLessThan(TestSupport.maxDifference(x, target), 1e-5)
    }
}
