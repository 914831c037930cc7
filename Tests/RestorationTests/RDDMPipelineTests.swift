import Checkpoints
import Engine
import Foundation
import ImageIO
import Methods
import Networks
import XCTest
@testable import Restoration

/// The RDDM pipeline on the tiny official-layout models of the network goldens (Tests/NetworksTests/Fixtures/rddm):
/// the whole-image mode is exactly the seeded official sampler, tiles that cover the image change nothing, padding
/// and cropping keep the size, the objective follows the network's outputs, our export format loads, and
/// `--simulate`'s degradations do what their formulas say.
final class RDDMPipelineTests: XCTestCase {
    private static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("NetworksTests/Fixtures/rddm")

    private func model(_ name: String) throws -> LoadedRDDM {
        try LoadedRDDM.load(path: Self.fixtures.appendingPathComponent("\(name).pt").path)
    }

    private func photo(_ width: Int, _ height: Int, channels: Int = 3) -> Image {
        var pixels: [Float] = []
        for y in 0..<height { for x in 0..<width { for c in 0..<channels {
            pixels.append(Float((x * 37 + y * 11 + c * 60 + (x * y) % 23) % 256) / 255)
        } } }
        return Image(width: width, height: height, channels: channels, pixels: pixels)
    }

    private func maxDifference(_ a: Tensor, _ b: Tensor) -> Float {
        zip(a.values, b.values).map { abs($0 - $1) }.max() ?? .infinity
    }

    func testWholeImageRestoreIsTheSeededOfficialSampler() throws {
        let loaded = try model("se0_cond")
        var options = RDDMOptions()
        options.tile = 0
        let pipeline = try RDDMPipeline(model: loaded, options: options)
        XCTAssertEqual(pipeline.steps, 10)
        XCTAssertEqual(pipeline.objective, .predResNoise)
        let image = photo(24, 16)
        let result = try pipeline.restore(image, name: "photo", seed: 7)
        let input = try Observations.tensor(image)
        let sampler = RDDMSampler(schedule: loaded.schedule, objective: .predResNoise)
        var noise = SeededGaussian(seed: 7)
        let expected = try sampler.sample(input: input, shape: input.shape, steps: 10, noise: &noise) { x, t in
            try loaded.network(try concatenateChannels([x, input]), timesteps: [Float(t)])
        }.result
        XCTAssertLessThanOrEqual(maxDifference(result.image, try clamp(expected, to: -1...1)), 1e-6)
        XCTAssertEqual(result.report.steps, 10)
        XCTAssertEqual(result.report.objective, "pred_res_noise")
        XCTAssertEqual(result.report.sumScale, 1)
        XCTAssertEqual(result.report.networkEvaluations, 10)
        XCTAssertEqual(result.report.tiling, "whole image")
    }

    func testTilesCoveringTheImageChangeNothingAndSmallTilesStayClose() throws {
        let loaded = try model("se0_cond")
        let image = photo(64, 48)
        var whole = RDDMOptions(), covering = RDDMOptions(), small = RDDMOptions()
        whole.tile = 0
        covering.tile = 64
        (small.tile, small.overlap) = (32, 12)
        for options in [whole, covering, small] { XCTAssertNoThrow(try options.validate()) }
        let a = try RDDMPipeline(model: loaded, options: whole).restore(image, name: "p", seed: 3)
        let b = try RDDMPipeline(model: loaded, options: covering).restore(image, name: "p", seed: 3)
        let c = try RDDMPipeline(model: loaded, options: small).restore(image, name: "p", seed: 3)
        XCTAssertEqual(maxDifference(a.image, b.image), 0)
        XCTAssertEqual(c.report.patches, 6)  // 2 rows × 3 columns of 32² tiles overlapping by ≥ 12
        XCTAssertEqual(c.image.shape, a.image.shape)
        XCTAssertTrue(c.image.values.allSatisfy(\.isFinite))
        XCTAssertGreaterThan(maxDifference(a.image, c.image), 0)  // the middle attention is global: tiles are not exact
    }

    func testOddSizesArePaddedAndCroppedBack() throws {
        let loaded = try model("se0_cond")
        let result = try RDDMPipeline(model: loaded, options: RDDMOptions()).restore(photo(27, 18), name: "p", seed: 1)
        XCTAssertEqual(result.image.shape, [1, 18, 27, 3])
        XCTAssertEqual(result.report.padded, "27×18 → 28×20 (reflect)")
        // A gray photo runs as RGB (the runner turns the result back to gray).
        XCTAssertEqual(try RDDMPipeline(model: loaded, options: RDDMOptions()).restore(photo(16, 16, channels: 1), name: "g", seed: 1).image.shape, [1, 16, 16, 3])
    }

    func testTheObjectiveMustFitTheNetworksOutputs() throws {
        let one = try model("sem1_cond")
        XCTAssertThrowsError(try RDDMPipeline(model: one, options: RDDMOptions())) { error in
            XCTAssertTrue("\(error)".contains("--objective pred_res or pred_noise"), "\(error)")
        }
        var options = RDDMOptions()
        options.objective = .predResNoise
        XCTAssertThrowsError(try RDDMPipeline(model: one, options: options))
        options.objective = .predNoise
        XCTAssertNoThrow(try RDDMPipeline(model: one, options: options).restore(photo(16, 16), name: "p", seed: 1))
        options.objective = .predRes
        XCTAssertThrowsError(try RDDMPipeline(model: try model("se0_cond"), options: options))
        options.objective = nil
        options.steps = 1001
        XCTAssertThrowsError(try RDDMPipeline(model: try model("se0_cond"), options: options))
        XCTAssertThrowsError(try RDDMPipeline(model: try model("se0_gen"), options: RDDMOptions())) { error in
            XCTAssertTrue("\(error)".contains("unconditional"), "\(error)")
        }
        XCTAssertThrowsError(try RDDMPipeline(model: try model("se1_cond3"), options: RDDMOptions())) { error in
            XCTAssertTrue("\(error)".contains("third condition image"), "\(error)")
        }
    }

    /// Our export: `unet0.*` names, no buffers, the configuration and sampling settings in the metadata.
    func testOwnExportLoadsWithItsSamplingSettings() throws {
        let configuration = RDDMConfiguration(dim: 8, dimMults: [1, 2], shareEncoder: -1)
        var generator = SplitMix64(seed: 5)
        var tensors: [(name: String, tensor: Tensor)] = []
        for d in try RDDMUNet.parameterDeclarations(configuration) {
            let t = try Tensor(uninitializedShape: d.shape)
            for i in 0..<t.count { t.data[i] = Float(generator.nextGaussian()) * 0.1 }
            tensors.append((d.name, t))
        }
        let path = NSTemporaryDirectory() + "rddm-own-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let config = String(decoding: try JSONEncoder().encode(configuration), as: UTF8.self)
        try SafetensorsWriter.write(tensors, to: path, half: true, metadata: [
            "family": ModelCatalog.ownRDDMFamily, "config": config,
            "diffusion": #"{"timesteps": 1000, "sum_scale": 0.01, "objective": "pred_res", "sampling_timesteps": 5, "degradations": "test"}"#])
        let loaded = try LoadedRDDM.load(path: path)
        XCTAssertEqual(loaded.kind, "own")
        XCTAssertEqual(loaded.configuration, configuration)
        XCTAssertEqual(loaded.objective, .predRes)
        XCTAssertEqual(loaded.samplingSteps, 5)
        XCTAssertEqual(loaded.schedule.sumScale, 0.01)
        let pipeline = try RDDMPipeline(model: loaded, options: RDDMOptions())
        XCTAssertEqual(pipeline.steps, 5)
        XCTAssertEqual(try pipeline.restore(photo(20, 12), name: "p", seed: 2).report.networkEvaluations, 5)
        XCTAssertEqual(try ModelCatalog.describe(path: path).family?.name, "rddm")
    }

    /// AOSA files (automatic objective selection) carry the learned α_res: above 0.5 the one output is the residual.
    func testAOSAAlphaResChoosesTheObjective() throws {
        let configuration = RDDMConfiguration(dim: 8, dimMults: [1, 2], shareEncoder: -1)
        var tensors: [(name: String, tensor: Tensor)] = []
        for d in try RDDMUNet.parameterDeclarations(configuration) { tensors.append(("model." + d.name, try Tensor(shape: d.shape, repeating: 0.01))) }
        for (alpha, expected) in [(Float(0.8), RDDMObjective.predRes), (0.3, .predNoise)] {
            let path = NSTemporaryDirectory() + "rddm-aosa-\(UUID().uuidString).safetensors"
            defer { try? FileManager.default.removeItem(atPath: path) }
            try SafetensorsWriter.write(tensors + [("alpha_res", try Tensor(shape: [1], values: [alpha]))], to: path)
            let loaded = try LoadedRDDM.load(path: path)
            XCTAssertEqual(loaded.objective, expected, "α_res \(alpha)")
            XCTAssertEqual(loaded.kind, "official")
            XCTAssertEqual(try RDDMPipeline(model: loaded, options: RDDMOptions()).objective, expected)
        }
    }

    func testSimulatedDegradationsFollowTheirFormulas() throws {
        let flat = try Tensor(shape: [1, 64, 64, 3], repeating: 0)  // 0.5 gray on [0, 1]
        func unit(_ t: Tensor) -> [Double] { t.values.map { Double($0 + 1) / 2 } }
        func mean(_ v: [Double]) -> Double { v.reduce(0, +) / Double(v.count) }
        func std(_ v: [Double]) -> Double { let m = mean(v); return (v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(v.count)).squareRoot() }

        let noisy = unit(try SimulatedDegradation(parsing: "noise:25").apply(flat, seed: 1))
        XCTAssertEqual(std(noisy) * 255, 25, accuracy: 1.5)
        XCTAssertEqual(mean(noisy), 0.5, accuracy: 0.005)
        XCTAssertEqual(try SimulatedDegradation(parsing: "noise:25").apply(flat, seed: 1).values,
                       try SimulatedDegradation(parsing: "noise:25").apply(flat, seed: 1).values)  // seeded
        let photon = unit(try SimulatedDegradation(parsing: "poisson:20").apply(flat, seed: 1))
        XCTAssertEqual(std(photon), (0.5 / 20).squareRoot(), accuracy: 0.02)  // Var(P(λ)/P) = x/P
        XCTAssertEqual(mean(photon), 0.5, accuracy: 0.01)
        // Blurs keep a flat image flat (normalised kernels) and average an edge.
        let level = try Tensor(shape: [1, 40, 40, 3], repeating: 0.2)  // 0.6: 153/255, away from a rounding boundary
        for spec in ["defocus:3", "motion:9:30"] {
            XCTAssertEqual(unit(try SimulatedDegradation(parsing: spec).apply(level, seed: 1)).map { abs($0 - 153.0 / 255) }.max()!, 0, accuracy: 1e-6, spec)
        }
        let edge = try Tensor(shape: [1, 32, 32, 1], values: (0..<1024).map { $0 % 32 < 16 ? -1 : 1 })
        let blurred = unit(try SimulatedDegradation(parsing: "motion:8:0").apply(edge, seed: 1))
        XCTAssertEqual(blurred[5 * 32 + 2], 0, accuracy: 1e-6)    // far from the edge
        XCTAssertGreaterThan(blurred[5 * 32 + 16], 0.3)          // on it: a ramp
        XCTAssertLessThan(blurred[5 * 32 + 16], 0.7)
        XCTAssertEqual(unit(try SimulatedDegradation(parsing: "motion:8:90").apply(edge, seed: 1))[5 * 32 + 16], 1, accuracy: 1e-6)  // vertical: no change
        let dark = unit(try SimulatedDegradation(parsing: "lowlight:0.4:1.5:0").apply(flat, seed: 1))
        XCTAssertEqual(mean(dark), (0.4 * pow(128.0 / 255, 1.5) * 255).rounded() / 255, accuracy: 1e-6)
        let ramp = try Tensor(shape: [1, 32, 32, 3], values: (0..<3072).map { Float(($0 / 3) % 32) / 16 - 1 })
        let compressed = try SimulatedDegradation(parsing: "jpeg:10").apply(ramp, seed: 1)
        XCTAssertGreaterThan(maxDifference(compressed, ramp), 0.01)
        XCTAssertGreaterThan(Quality.psnr(compressed, ramp), 25)
        for bad in ["blur:2", "noise", "noise:-1", "jpeg:0", "jpeg:7.5", "lowlight:2:1", "motion:1", "defocus:x"] {
            XCTAssertThrowsError(try SimulatedDegradation(parsing: bad), bad)
        }
    }
}
