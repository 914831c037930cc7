import Checkpoints
import Engine
import Foundation
import ImageIO
import Methods
import Networks
import Tiling
import XCTest
@testable import Restoration

/// The LDM pipeline against the official code on the tiny models of the network goldens
/// (Tests/NetworksTests/Fixtures/ldm, Tools/reference/make_ldm_fixtures.py): the whole-latent SR run of the Colab
/// helper, its split_input_params windows (scaled down to 8/4 latent pixels) with the patch-distributed decode, and
/// scripts/inpaint.py's condition, sampling and composite; plus the window layout's own properties.
final class LDMPipelineTests: XCTestCase {
    private static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("NetworksTests/Fixtures/ldm")

    /// The tiny models with their configurations (sr.json, inpaint.json beside them).
    private func model(_ name: String) throws -> LoadedLDM {
        try LoadedLDM.load(path: Self.fixtures.appendingPathComponent("\(name).ckpt").path,
                           config: Self.fixtures.appendingPathComponent("\(name).json").path)
    }

    private func io() throws -> [String: Tensor] {
        var tensors: [String: Tensor] = [:]
        for (key, stored) in try Checkpoint(path: Self.fixtures.appendingPathComponent("io.safetensors").path).stateDict().tensors {
            tensors[key] = try stored.floatTensor()
        }
        return tensors
    }

    private func check(_ actual: Tensor, _ expected: Tensor, _ tolerance: Float, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.shape, expected.shape, message, file: file, line: line)
        let reference = expected.values.map(abs).max() ?? 0
        XCTAssertGreaterThan(reference, 0.1, "\(message): the reference is (nearly) zero", file: file, line: line)
        let worst = zip(actual.values, expected.values).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst, tolerance * reference, "\(message): max|Δ| \(worst), max|ref| \(reference)", file: file, line: line)
    }

    private func options(steps: Int, eta: Double, tile: Int = LDMOptions.defaultTile, overlap: Int = LDMOptions.defaultOverlap) -> LDMOptions {
        var o = LDMOptions()
        (o.steps, o.eta, o.tile, o.overlap) = (steps, eta, tile, overlap)
        return o
    }

    func testWholeLatentSuperResolutionIsTheOfficialRun() throws {
        let io = try io()
        let pipeline = try LDMPipeline(model: try model("sr"), options: options(steps: 4, eta: 1))
        var noise = RecordedGaussian(try ["sr_run_xt", "sr_run_noise_0", "sr_run_noise_1", "sr_run_noise_2", "sr_run_noise_3"].map { try XCTUnwrap(io[$0]) })
        var report = RestorationReport(method: "ldm", seed: 0)
        let out = try pipeline.superResolve(try XCTUnwrap(io["sr_run_lr"]), noise: &noise, label: "t", report: &report)
        check(out, try clamp(try XCTUnwrap(io["sr_run_out"]), to: -1...1), 1e-3, "SR whole latent")
        XCTAssertEqual(report.tiling, "whole latent")
        XCTAssertTrue(noise.remaining.isEmpty)
    }

    func testSplitInputWindowsAreTheOfficialOnes() throws {
        let io = try io()
        let pipeline = try LDMPipeline(model: try model("sr"), options: options(steps: 4, eta: 0, tile: 8, overlap: 4))
        var noise = RecordedGaussian([try XCTUnwrap(io["sr_split_xt"])])
        var report = RestorationReport(method: "ldm", seed: 0)
        let out = try pipeline.superResolve(try XCTUnwrap(io["sr_split_lr"]), noise: &noise, label: "t", report: &report)
        check(out, try clamp(try XCTUnwrap(io["sr_split_out"]), to: -1...1), 1e-3, "SR in 2 × 3 windows")
        XCTAssertEqual(report.patches, 6)
        // The whole latent at once is another result: the windows are really used.
        var again = RecordedGaussian([try XCTUnwrap(io["sr_split_xt"])])
        let whole = try LDMPipeline(model: try model("sr"), options: options(steps: 4, eta: 0, tile: 0))
            .superResolve(try XCTUnwrap(io["sr_split_lr"]), noise: &again, label: "t", report: &report)
        XCTAssertGreaterThan(zip(whole.values, out.values).map { abs($0 - $1) }.max() ?? 0, 1e-3)
    }

    func testInpaintingIsTheOfficialScript() throws {
        let io = try io()
        var pipeline = try LDMPipeline(model: try model("inpaint"), options: options(steps: 5, eta: 0))
        XCTAssertEqual(pipeline.task, .inpainting)
        let image = try XCTUnwrap(io["inpaint_image"]), mask = try XCTUnwrap(io["inpaint_mask"])
        let maskImage = Image(width: 24, height: 16, channels: 1, pixels: mask.values)
        var condition: Tensor?
        pipeline.lastCondition = { condition = $0 }
        var noise = RecordedGaussian([try XCTUnwrap(io["inpaint_xt"])])
        var report = RestorationReport(method: "ldm", seed: 0)
        let out = try pipeline.inpaint(try scale(image, by: 2, adding: -1), mask: maskImage, maskName: "m", noise: &noise, label: "t", report: &report)
        check(try XCTUnwrap(condition), try XCTUnwrap(io["inpaint_condition"]), 1e-4, "condition: encoded masked image and the ±1 mask")
        check(try scale(out, by: 0.5, adding: 0.5), try XCTUnwrap(io["inpaint_out"]), 1e-3, "inpainted")
        // Known pixels are the input's.
        for p in 0..<(24 * 16) where mask.data[p] == 0 {
            for k in 0..<3 { XCTAssertEqual(out.data[p * 3 + k], image.data[p * 3 + k] * 2 - 1, accuracy: 1e-6) }
        }
    }

    func testWindowLayoutAndWeights() throws {
        let windows = LDMWindows(window: 8, stride: 4)
        XCTAssertEqual(windows.starts(12).starts, [0, 4], "nn.Unfold's positions")
        XCTAssertEqual(windows.starts(13).starts, [0, 4, 5], "one more window flush with the far edge")
        XCTAssertEqual(windows.starts(5).size, 5, "a short side is one window of that side")
        let w = LDMWindows.weights(height: 8, width: 8)
        XCTAssertEqual(w[0], 0.01, "clip_min_weight at the border")
        XCTAssertEqual(w[3 * 8 + 3], Float(3) / 7, accuracy: 1e-6, "delta_border inside")
        XCTAssertEqual(w.max() ?? 0, Float(3) / 7, accuracy: 1e-6)
        XCTAssertEqual(LDMWindows.weights(height: 21, width: 21).max(), 0.5, "clip_max_weight")
        // Weights that sum to one: a body returning its input gives the input back, ×2 upscaled by repetition.
        let x = try Tensor(shape: [1, 13, 10, 2], values: (0..<260).map { Float($0) / 100 })
        let same = try windows.run(x, gridHeight: 13, gridWidth: 10, outChannels: 2) { patch, _, _ in patch }
        XCTAssertLessThan(zip(same.values, x.values).map { abs($0 - $1) }.max() ?? 1, 1e-5)
        XCTAssertEqual(windows.count(height: 13, width: 10), 6, "rows 0, 4, 5 × columns 0, 2")
    }

    /// Halo tiles reproduce a local network exactly when the halo covers its reach (here: `reach` passes of a 3×3 box
    /// mean with zero padding at the image's edges, then ×2 nearest upsampling, as a decoder scales), and not without it.
    func testHaloTilesMatchALocalNetworkWhenTheHaloCoversItsReach() throws {
        func local(_ x: Tensor, reach: Int) throws -> Tensor {
            let (h, w, c) = (x.shape[1], x.shape[2], x.shape[3])
            var v = x.values
            for _ in 0..<reach {
                var next = [Float](repeating: 0, count: v.count)
                for y in 0..<h { for xx in 0..<w { for k in 0..<c {
                    var sum: Float = 0
                    for dy in -1...1 { for dx in -1...1 where (0..<h).contains(y + dy) && (0..<w).contains(xx + dx) {
                        sum += v[((y + dy) * w + xx + dx) * c + k]
                    } }
                    next[(y * w + xx) * c + k] = sum / 9
                } } }
                v = next
            }
            var up = [Float](repeating: 0, count: 4 * v.count)
            for y in 0..<(2 * h) { for xx in 0..<(2 * w) { for k in 0..<c { up[(y * 2 * w + xx) * c + k] = v[((y / 2) * w + xx / 2) * c + k] } } }
            return try Tensor(shape: [1, 2 * h, 2 * w, c], values: up)
        }
        let x = try Tensor(shape: [1, 37, 29, 2], values: (0..<(37 * 29 * 2)).map { Float(($0 * 7919) % 1000) / 1000 })
        let whole = try local(x, reach: 3)
        let tiles = try HaloTiles(core: 8, halo: 3, blend: 2)
        XCTAssertEqual(tiles.spans(37).map(\.start), [0, 8, 16, 24, 32])
        XCTAssertEqual(tiles.spans(29).map(\.start), [0, 8, 16, 24], "a last core of 5 ≥ 2·blend stays")
        XCTAssertEqual(tiles.spans(25).map(\.end), [8, 16, 25], "the 1-unit remainder merged into the core before it")
        XCTAssertEqual(tiles.spans(37)[1], HaloTiles.Span(start: 8, end: 16, from: 3, to: 21))
        var seen = 0
        let tiled = try tiles.run(x, gridHeight: 37, gridWidth: 29, outScale: 2, outChannels: 2) { patch, _, count in
            seen = count
            return try local(patch, reach: 3)
        }
        XCTAssertEqual(seen, tiles.count(height: 37, width: 29))
        XCTAssertLessThan(zip(tiled.values, whole.values).map { abs($0 - $1) }.max() ?? 1, 1e-5, "halo 3 covers a reach of 3")
        let short = try HaloTiles(core: 8, halo: 0, blend: 2).run(x, gridHeight: 37, gridWidth: 29, outScale: 2, outChannels: 2) { patch, _, _ in
            try local(patch, reach: 3)
        }
        XCTAssertGreaterThan(zip(short.values, whole.values).map { abs($0 - $1) }.max() ?? 0, 1e-3, "without a halo the seams differ")
        XCTAssertThrowsError(try HaloTiles(core: 4, halo: 1, blend: 3), "a core shorter than two blends")
    }

    func testModelsRefuseTheOtherTaskAndMissingMasks() throws {
        let sr = try model("sr")
        var o = options(steps: 4, eta: 0)
        o.task = .inpainting
        XCTAssertThrowsError(try LDMPipeline(model: sr, options: o)) { XCTAssertTrue("\($0)".contains("super-resolution"), "\($0)") }
        let inpainting = try LDMPipeline(model: try model("inpaint"), options: options(steps: 5, eta: 0))
        let photo = Image(width: 24, height: 16, channels: 3, repeating: 0.5)
        XCTAssertThrowsError(try inpainting.restore(photo, name: "p.png", seed: 1)) { XCTAssertTrue("\($0)".contains("--mask"), "\($0)") }
        let noHole = Image(width: 24, height: 16, channels: 1, repeating: 0)
        XCTAssertThrowsError(try inpainting.restore(photo, mask: noHole, name: "p.png", seed: 1)) { XCTAssertTrue("\($0)".contains("no hole"), "\($0)") }
        let wrongSize = Image(width: 8, height: 8, channels: 1, repeating: 1)
        XCTAssertThrowsError(try inpainting.restore(photo, mask: wrongSize, name: "p.png", seed: 1)) { XCTAssertTrue("\($0)".contains("8×8"), "\($0)") }
        XCTAssertThrowsError(try LDMPipeline(model: sr, options: options(steps: 3, eta: 0))) { XCTAssertTrue("\($0)".contains("steps"), "\($0)") }
    }

    func testOddSizesArePaddedAndCroppedAndSeedsRepeat() throws {
        let pipeline = try LDMPipeline(model: try model("sr"), options: options(steps: 4, eta: 1))
        let photo = Image(width: 7, height: 5, channels: 3, pixels: (0..<105).map { Float(($0 * 37) % 101) / 100 })
        let a = try pipeline.restore(photo, name: "p.png", seed: 3), b = try pipeline.restore(photo, name: "p.png", seed: 3)
        XCTAssertEqual(a.image.shape, [1, 20, 28, 3])
        XCTAssertEqual(a.image.values, b.image.values, "same seed, same output")
        XCTAssertNotNil(a.report.padded)
        XCTAssertEqual(a.report.scale, 4)
    }

    /// Our own export format (Tools/train/train_ldm.py's `export`: diffusers names, pixel-unshuffle ×4, sampling
    /// defaults in the metadata) against the trainer's own DDIM sampler (Tools/reference/make_ldm_own_fixture.py), for
    /// an ε-predicting UNet (`own`) and an x0-predicting one (`own-x0`: x̂0 taken as predicted, its ε derived).
    func testOwnExportIsTheTrainersSampler() throws {
        for (folderName, parameterization) in [("own", LDMParameterization.epsilon), ("own-x0", .x0)] {
            let folder = Self.fixtures.appendingPathComponent(folderName)
            let model = try LoadedLDM.load(path: folder.appendingPathComponent("ldm-x4-own.safetensors").path)
            XCTAssertEqual(model.kind, "own")
            XCTAssertEqual(model.configuration.pixelUnshuffle, 4)
            XCTAssertEqual(model.configuration.parameterization, parameterization)
            XCTAssertEqual(model.samplingSteps, 4)
            XCTAssertEqual(model.samplingEta, 0)
            var io: [String: Tensor] = [:]
            for (key, stored) in try Checkpoint(path: folder.appendingPathComponent("io.safetensors").path).stateDict().tensors {
                io[key] = try stored.floatTensor()
            }
            let pipeline = try LDMPipeline(model: model, options: LDMOptions())
            XCTAssertEqual(pipeline.steps, 4, "the model's own sampling default")
            var noise = RecordedGaussian([try XCTUnwrap(io["xt"])])
            var report = RestorationReport(method: "ldm", seed: 0)
            let out = try pipeline.superResolve(try XCTUnwrap(io["lr"]), noise: &noise, label: "t", report: &report)
            check(out, try XCTUnwrap(io["sr"]), 1e-3, "own LDM (\(folderName)), 4 DDIM steps")
        }
    }

    /// Inpainting of a latent larger than the window: the masked image is encoded and every step runs in windows (our
    /// extension: the official script has no tiling); the known pixels are still the input's.
    func testInpaintingInWindowsKeepsTheKnownPixels() throws {
        let pipeline = try LDMPipeline(model: try model("inpaint"), options: options(steps: 2, eta: 0, tile: 8, overlap: 4))
        let photo = Image(width: 64, height: 48, channels: 3, pixels: (0..<(64 * 48 * 3)).map { Float(($0 * 29) % 97) / 96 })
        var hole = [Float](repeating: 0, count: 64 * 48)
        for y in 10..<30 { for x in 20..<40 { hole[y * 64 + x] = 1 } }
        let out = try pipeline.restore(photo, mask: Image(width: 64, height: 48, channels: 1, pixels: hole), name: "p.png", seed: 2)
        XCTAssertEqual(out.report.patches, 6, "a 12 × 16 latent in windows of 8 at stride 4")
        XCTAssertEqual(out.image.shape, [1, 48, 64, 3])
        for p in 0..<(64 * 48) where hole[p] == 0 {
            for k in 0..<3 { XCTAssertEqual(out.image.data[p * 3 + k], photo.pixels[p * 3 + k] * 2 - 1, accuracy: 1e-5) }
        }
        let inside = (0..<(64 * 48)).filter { hole[$0] == 1 }.map { out.image.data[$0 * 3] }
        XCTAssertTrue(inside.allSatisfy { $0.isFinite && abs($0) <= 1 })
    }
}
