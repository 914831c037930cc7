import Engine
import Foundation
import ImageIO
import Methods
import XCTest
@testable import Restoration

/// The DiffIR pipeline on the tiny official-layout models of the network goldens (Tests/NetworksTests/Fixtures/diffir):
/// the tiled condition is the whole-image CPEN, the whole-image mode is exactly CPEN → seeded 4-step IPR chain →
/// DIRformer, tiles that cover the image change nothing, padding and cropping follow `inference_diffir.py`.
final class DiffIRPipelineTests: XCTestCase {
    private static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("NetworksTests/Fixtures/diffir")

    private func model(_ name: String) throws -> LoadedDiffIR {
        try LoadedDiffIR.load(path: Self.fixtures.appendingPathComponent("\(name).pth").path)
    }

    private func photo(_ width: Int, _ height: Int, channels: Int = 3) -> Image {
        var pixels: [Float] = []
        for y in 0..<height { for x in 0..<width { for c in 0..<channels {
            pixels.append(Float((x * 37 + y * 11 + c * 60 + (x * y) % 23) % 256) / 255)
        } } }
        return Image(width: width, height: height, channels: channels, pixels: pixels)
    }

    private func tensor01(_ image: Image) throws -> Tensor {
        try Tensor(shape: [1, image.height, image.width, image.channels], values: image.pixels)
    }

    private func maxDifference(_ a: Tensor, _ b: Tensor) -> Float {
        zip(a.values, b.values).map { abs($0 - $1) }.max() ?? .infinity
    }

    func testTiledConditionIsTheWholeImageCPEN() throws {
        for name in ["sr4_biasfree", "sr1_biasfree", "deblur_withbias"] {
            let loaded = try model(name)
            let pipeline = try DiffIRPipeline(model: loaded, options: DiffIROptions())
            let image = try tensor01(photo(96, 64))
            let whole = try loaded.network.condition(image)
            // CPEN's smallest tiles (64 px, asked for with 16) split the 96×64 image in two; the halo makes the sums exact.
            let tiled = try pipeline.condition(image, tile: 16)
            XCTAssertLessThanOrEqual(maxDifference(tiled, whole), 1e-5 * (whole.values.map(abs).max() ?? 1), name)
            XCTAssertGreaterThan(whole.values.map(abs).max() ?? 0, 0.01, name)
        }
    }

    func testWholeImageRestoreIsCPENThenTheSeededChainThenDIRformer() throws {
        let loaded = try model("sr4_biasfree")
        var options = DiffIROptions()
        options.tile = 0
        let pipeline = try DiffIRPipeline(model: loaded, options: options)
        let image = photo(24, 16)
        let result = try pipeline.restore(.image(image), name: "in.png", seed: 7)
        let x = try tensor01(image)
        let condition = try loaded.network.condition(x)
        var noise = SeededGaussian(seed: 7)
        let ipr = try loaded.diffusion.sample(from: try noise.next(shape: [1, 256])) { v, t in try loaded.network.denoiser(v, t: t, condition: condition) }
        let expected = try clamp(try scale(try loaded.network.generator(x, modulations: try loaded.network.generator.modulations(ipr)), by: 2, adding: -1), to: -1...1)
        XCTAssertEqual(result.image.shape, [1, 64, 96, 3])
        XCTAssertLessThanOrEqual(maxDifference(result.image, expected), 1e-5)
        XCTAssertEqual(result.report.method, "diffir")
        XCTAssertEqual(result.report.steps, 4)
        XCTAssertEqual(result.report.tiling, "whole image")
    }

    func testTilesCoveringTheImageChangeNothingAndSmallTilesStayClose() throws {
        let loaded = try model("sr4_biasfree")
        let image = photo(64, 48)
        var whole = DiffIROptions()
        whole.tile = 0
        let reference = try DiffIRPipeline(model: loaded, options: whole).restore(.image(image), name: "a", seed: 1).image
        var covering = DiffIROptions()
        covering.tile = 64
        XCTAssertEqual(try DiffIRPipeline(model: loaded, options: covering).restore(.image(image), name: "a", seed: 1).image.values, reference.values)
        var small = DiffIROptions()
        (small.tile, small.overlap) = (32, 16)
        var events: [RestorationEvent] = []
        let tiled = try DiffIRPipeline(model: loaded, options: small).restore(.image(image), name: "a", seed: 1, context: RestorationContext { events.append($0) })
        XCTAssertEqual(tiled.image.shape, reference.shape)
        XCTAssertEqual(tiled.report.patches, 3 * 2)  // starts 0, 16, 32 across; 0, 16 down
        XCTAssertEqual(events.first, .stage(label: "a", total: 1 + 4 + 6))
        XCTAssertTrue(tiled.image.values.allSatisfy { $0.isFinite && abs($0) <= 1 })
        XCTAssertNotEqual(tiled.image.values, reference.values, "a tile smaller than the image sees less than the whole (global attention)")
    }

    func testOddAndTinyInputsArePaddedAndCropped() throws {
        let loaded = try model("sr4_biasfree")
        let pipeline = try DiffIRPipeline(model: loaded, options: DiffIROptions())
        let odd = try pipeline.restore(.image(photo(21, 13)), name: "odd", seed: 1)
        XCTAssertEqual(odd.image.shape, [1, 52, 84, 3])
        XCTAssertEqual(odd.report.padded, "21×13 → 24×16 (reflect)")
        let tiny = try pipeline.restore(.image(photo(3, 2)), name: "tiny", seed: 1)
        XCTAssertEqual(tiny.image.shape, [1, 8, 12, 3])
        XCTAssertEqual(tiny.report.padded, "3×2 → 8×8 (replicate)")
        let gray = try pipeline.restore(.image(photo(16, 16, channels: 1)), name: "gray", seed: 1)
        XCTAssertEqual(gray.image.shape, [1, 64, 64, 3])
    }

    func testSeedsRepeatAndMatter() throws {
        let pipeline = try DiffIRPipeline(model: try model("sr2_withbias"), options: DiffIROptions())
        let image = photo(32, 32)
        let a = try pipeline.restore(.image(image), name: "x", seed: 5).image.values
        XCTAssertEqual(try pipeline.restore(.image(image), name: "x", seed: 5).image.values, a)
        XCTAssertNotEqual(try pipeline.restore(.image(image), name: "x", seed: 6).image.values, a)
    }

    func testErrorsNameWhatIsWrong() throws {
        var options = DiffIROptions()
        options.tile = 40
        XCTAssertThrowsError(try DiffIRPipeline(model: try model("sr2_withbias"), options: options)) { error in
            XCTAssertTrue("\(error)".contains("multiple of 16"), "\(error)")
        }
        options.tile = 16
        XCTAssertThrowsError(try options.validate())
        options = DiffIROptions()
        options.overlap = options.tile
        XCTAssertThrowsError(try options.validate())
        let deblur = try DiffIRPipeline(model: try model("deblur_withbias"), options: DiffIROptions())
        XCTAssertThrowsError(try deblur.restore(.simulate(clean: photo(16, 16)), name: "c", seed: 1)) { error in
            XCTAssertTrue("\(error)".contains("--simulate is for the super-resolution tasks"), "\(error)")
        }
        XCTAssertThrowsError(try LoadedDiffIR.load(path: Self.fixtures.appendingPathComponent("sr4_biasfree.io.safetensors").path)) { error in
            XCTAssertTrue("\(error)".contains("not a DiffIR"), "\(error)")
        }
    }

    func testSimulateReportsQualityAgainstTheCleanImage() throws {
        let pipeline = try DiffIRPipeline(model: try model("sr4_biasfree"), options: DiffIROptions())
        let result = try pipeline.restore(.simulate(clean: photo(32, 32)), name: "c", seed: 1, panels: [.observation])
        XCTAssertEqual(result.image.shape, [1, 32, 32, 3])
        XCTAssertEqual(result.observation?.shape, [1, 8, 8, 3])
        XCTAssertNotNil(result.report.psnr)
        XCTAssertNotNil(result.report.bicubicPSNR)
        XCTAssertEqual(result.report.simulated, "bicubic:4")
    }
}
