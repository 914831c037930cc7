import Checkpoints
import Engine
import Foundation
import Methods
import XCTest
@testable import Networks

/// RDDM against the official code (nachifur/RDDM e597481, experiments/2_Image_Restoration_deraing_raindrop_noise1,
/// `UnetRes` + `ResidualDiffusion`) on five tiny models: two UNets (`share_encoder` 0), one encoder with two decoders
/// (1, with the third condition image), one UNet (−1), conditional and unconditional, T 1000 (the DDIM-like sampler)
/// and T 8 (the ancestral loop); every parameter redrawn at random, the online and the EMA copy drawn apart, saved
/// as the official `Trainer.save` does. Fixtures: Tools/reference/make_rddm_fixtures.py.
final class RDDMTests: XCTestCase {
    static let names = ["se0_cond", "se1_cond3", "sem1_cond", "se0_cond_t8", "se0_gen"]

    private struct Fixture {
        let path: String
        let tensors: [String: Tensor]
        let unet: [String: Any], diffusion: [String: Any], objectives: [String]
        func tensor(_ name: String) throws -> Tensor {
            guard let t = tensors[name] else { throw FixtureMissing("\(path): no tensor \(name)") }
            return t
        }
    }

    private func fixture(_ name: String) throws -> Fixture {
        guard let folder = Bundle.module.url(forResource: "Fixtures", withExtension: nil)?.appendingPathComponent("rddm") else {
            throw FixtureMissing("no fixtures")
        }
        let io = try Checkpoint(path: folder.appendingPathComponent("\(name).io.safetensors").path)
        var tensors: [String: Tensor] = [:]
        for (key, stored) in try io.stateDict().tensors { tensors[key] = try stored.floatTensor() }
        let config = try JSONSerialization.jsonObject(with: Data((io.metadata["config"] ?? "{}").utf8)) as? [String: Any] ?? [:]
        return Fixture(path: folder.appendingPathComponent("\(name).pt").path, tensors: tensors,
                       unet: config["unet"] as? [String: Any] ?? [:], diffusion: config["diffusion"] as? [String: Any] ?? [:],
                       objectives: config["objectives"] as? [String] ?? [])
    }

    /// The configuration the official keyword arguments describe.
    private func expected(_ f: Fixture) throws -> RDDMConfiguration {
        let condition = f.unet["condition"] as? Bool ?? false, third = f.unet["input_condition"] as? Bool ?? false
        return RDDMConfiguration(dim: try XCTUnwrap(f.unet["dim"] as? Int), dimMults: try XCTUnwrap(f.unet["dim_mults"] as? [Int]),
                                 conditionImages: (condition ? 1 : 0) + (third ? 1 : 0), shareEncoder: try XCTUnwrap(f.unet["share_encoder"] as? Int))
    }

    func testConfigurationIsDetectedAndTheEMACopyIsRead() throws {
        for name in Self.names {
            let f = try fixture(name)
            let loaded = try RDDMLoader.load(path: f.path)
            XCTAssertEqual(loaded.configuration, try expected(f), name)
            XCTAssertEqual(loaded.source, "ema (prefix ema_model.)", name)
            XCTAssertEqual(Set(loaded.scheduleBuffers.keys), RDDMLoader.bufferNames, name)
        }
    }

    func testUnetResForwardMatchesTheOfficialModule() throws {
        for name in Self.names {
            let f = try fixture(name)
            let network = try RDDMLoader.load(path: f.path).network
            let outputs = try network(try f.tensor("net_in"), timesteps: try f.tensor("net_t").values)
            XCTAssertEqual(outputs.count, network.configuration.outputCount, name)
            assertClose(outputs[0], try f.tensor("net_out0"), relativeTolerance: 1e-4, "\(name) output 0")
            if outputs.count > 1 { assertClose(outputs[1], try f.tensor("net_out1"), relativeTolerance: 1e-4, "\(name) output 1") }
        }
    }

    /// The online model (`model`, and `ema.online_model.*`) is another draw: reading it instead of the EMA copy
    /// would change the outputs, so the forward test above proves the EMA copy is bound.
    func testTheOnlineCopyDiffersFromTheEMACopy() throws {
        let f = try fixture("se0_cond")
        let checkpoint = try Checkpoint(path: f.path)
        let online = try checkpoint.stateDict(StateDictSelection(entry: "model"))
        let ema = try checkpoint.stateDict()
        let key = "model.unet0.init_conv.weight"
        let differs = try XCTUnwrap(online[key]).floatTensor().values != (try XCTUnwrap(ema[key]).floatTensor().values)
        XCTAssertTrue(differs, "the fixture's online and EMA copies of \(key) are equal")
    }

    func testScheduleBuffersEqualTheCheckpointsAndSumScaleIsReadBack() throws {
        for name in Self.names {
            let f = try fixture(name)
            let loaded = try RDDMLoader.load(path: f.path)
            let schedule = try XCTUnwrap(try RDDMSchedule(checkingBuffers: loaded.scheduleBuffers), name)
            XCTAssertEqual(schedule.timesteps, f.diffusion["timesteps"] as? Int ?? 1000, name)
            let condition = f.diffusion["condition"] as? Bool ?? false
            let sumScale = f.diffusion["sum_scale"] as? Double ?? (condition ? 0.01 : 1)
            XCTAssertEqual(schedule.sumScale, sumScale, accuracy: sumScale * 1e-9, name)
            // Bit-level agreement of a few coefficients with the float32 buffers.
            for (key, ours) in schedule.buffers {
                let theirs = try XCTUnwrap(loaded.scheduleBuffers[key])
                let worst = zip(ours, theirs).map { abs($0 - $1) / max(abs($1), 1e-30) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, 2e-7, "\(name) \(key)")
            }
        }
    }

    func testTamperedScheduleBuffersAreRefused() throws {
        var buffers = try RDDMSchedule(timesteps: 50, sumScale: 0.01).buffers
        buffers["posterior_mean_coef2"]![7] *= 1.01
        XCTAssertThrowsError(try RDDMSchedule(checkingBuffers: buffers)) { error in
            XCTAssertTrue("\(error)".contains("posterior_mean_coef2[7]"), "\(error)")
        }
    }

    func testSamplingTimesAreTheOfficialTruncatedLinspace() throws {
        let schedule = try RDDMSchedule(timesteps: 1000, sumScale: 1)
        XCTAssertEqual(schedule.samplingTimes(steps: 10), [999, 899, 799, 699, 599, 499, 399, 299, 199, 99, -1])
        XCTAssertEqual(schedule.samplingTimes(steps: 3), [999, 665, 332, -1])
        XCTAssertEqual(schedule.samplingTimes(steps: 1), [999, -1])
    }

    /// Whole sampling runs with the official noise injected, for every objective the network's outputs allow.
    func testWholeSamplingRunsMatchTheOfficialSampler() throws {
        for name in Self.names {
            let f = try fixture(name)
            let loaded = try RDDMLoader.load(path: f.path)
            let network = loaded.network
            let schedule = try XCTUnwrap(try RDDMSchedule(checkingBuffers: loaded.scheduleBuffers))
            let conditional = network.configuration.conditionImages > 0
            let steps = f.diffusion["sampling_timesteps"] as? Int ?? schedule.timesteps
            // The official `sample` maps [0, 1] to [-1, 1]; so do we here.
            let input = conditional ? try scale(try f.tensor("input"), by: 2, adding: -1) : try f.tensor("z")
            let third = try f.tensors["input_cond"].map { try scale($0, by: 2, adding: -1) }
            XCTAssertFalse(f.objectives.isEmpty, name)
            for objective in f.objectives {
                let sampler = RDDMSampler(schedule: schedule, objective: try XCTUnwrap(RDDMObjective(rawValue: objective)), conditional: conditional)
                var recorded = [try f.tensor("z")]
                if let perStep = f.tensors["z_steps"] {
                    // One draw per step with t > 0 (loop order T−1 … 1); the t = 0 one is unused.
                    let size = perStep.count / perStep.shape[0]
                    for i in 0..<(perStep.shape[0] - 1) { recorded.append(try Tensor(shape: [1] + input.shape.dropFirst(), values: Array(perStep.values[i * size..<(i + 1) * size]))) }
                }
                var noise = RecordedGaussian(recorded)
                let (start, result) = try sampler.sample(input: conditional ? input : nil, shape: input.shape, steps: steps, noise: &noise) { x, t in
                    let xIn = conditional ? try concatenateChannels([x, input] + (third.map { [$0] } ?? [])) : x
                    return try network(xIn, timesteps: [Float(t)])
                }
                XCTAssertTrue(noise.remaining.isEmpty, "\(name) \(objective): \(noise.remaining.count) recorded draws unused")
                if conditional {
                    assertClose(try scale(start, by: 0.5, adding: 0.5), try f.tensor("x_T"), relativeTolerance: 1e-5, "\(name) \(objective) x_T")
                }
                assertClose(try scale(result, by: 0.5, adding: 0.5), try f.tensor("result_\(objective)"), relativeTolerance: 1e-3, "\(name) \(objective)")
            }
        }
    }

    /// `WeightStandardizedConv2d` divides by the BIASED variance over (in, kh, kw) plus ε 1e-5. The forward golden
    /// cannot see this alone (GroupNorm right after the convolution absorbs most of a uniform rescaling), so the
    /// standardised weights are checked against the formula worked out by hand.
    func testWeightStandardisationUsesTheBiasedVariance() throws {
        let values = (0..<18).map { Float($0 % 9) - Float($0 / 9) * 3 }  // filter 0: 0…8; filter 1: −3…5
        let conv = try standardizedConv(.bound(["w.weight": try Tensor(shape: [2, 1, 3, 3], values: values),
                                                "w.bias": try Tensor(shape: [2], values: [0, 0])]), "w", in: 1, out: 2)
        let weight = try XCTUnwrap(conv.weight).values
        // Each filter is 9 consecutive integers: mean m, biased variance (9² − 1)/12 = 20/3.
        for filter in 0..<2 {
            let mean = Double(filter == 0 ? 4 : 1)
            for i in 0..<9 {
                let expected = (Double(values[filter * 9 + i]) - mean) / (20.0 / 3 + 1e-5).squareRoot()
                XCTAssertEqual(Double(weight[filter * 9 + i]), expected, accuracy: 1e-6)
            }
        }
    }

    func testBadInputsAreRefusedWithOneLineErrors() throws {
        let c = RDDMConfiguration(dim: 8, dimMults: [1, 2])
        let network = try RDDMUNet(c, parameters: .random(seed: 1))
        XCTAssertThrowsError(try network(try Tensor(shape: [1, 8, 8, 3]), timesteps: [1]))           // 3 channels, not 6
        XCTAssertThrowsError(try network(try Tensor(shape: [1, 7, 8, 6]), timesteps: [1]))           // not a multiple of 2
        XCTAssertThrowsError(try network(try Tensor(shape: [2, 8, 8, 6]), timesteps: [1]))           // one timestep for two
        XCTAssertThrowsError(try RDDMUNet(RDDMConfiguration(dim: 12, dimMults: [1, 2]), parameters: .random(seed: 1)))  // 8 ∤ 12
        let sampler = RDDMSampler(schedule: try RDDMSchedule(timesteps: 10, sumScale: 1), objective: .predNoise)
        var noise = SeededGaussian(seed: 1)
        XCTAssertThrowsError(try sampler.sample(input: try Tensor(shape: [1, 8, 8, 3]), shape: [1, 8, 8, 3], steps: 11, noise: &noise) { x, _ in [x] })
        // A one-output network cannot serve a two-output objective.
        let twoOutputs = RDDMSampler(schedule: try RDDMSchedule(timesteps: 10, sumScale: 1), objective: .predResNoise)
        XCTAssertThrowsError(try twoOutputs.sample(input: try Tensor(shape: [1, 8, 8, 3]), shape: [1, 8, 8, 3], steps: 5, noise: &noise) { x, _ in [x] })
    }
}
