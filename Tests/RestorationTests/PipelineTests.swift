import Checkpoints
import Engine
import Foundation
import ImageIO
import XCTest
@testable import Restoration

/// The pipelines called directly, as the service and batch workers will: no process, no files written.
/// The prior is the tiny random ADM of the DDNM goldens (it restores nothing; these tests check the API:
/// events, cancellation, reports, options, errors), ResShift runs on the bundled ×4 model.
final class PipelineTests: XCTestCase {
    private static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The tiny prior with its architecture written next to it as JSON (the form `--model-config` takes).
    private static let tinyPrior: Result<ModelReference, Error> = Result {
        let fixtures = repository.appendingPathComponent("Tests/MethodsTests/Fixtures")
        let trajectories = try Checkpoint(path: fixtures.appendingPathComponent("trajectories.safetensors").path)
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("tiny-adm16-\(UUID().uuidString).json")
        try Data((trajectories.metadata["model_config"] ?? "{}").utf8).write(to: config)
        return ModelReference(path: fixtures.appendingPathComponent("tiny_adm16.pt").path, config: config.path)
    }

    private static let store = ModelStore()

    private func prior() throws -> LoadedPrior { try Self.store.prior(try Self.tinyPrior.get()) }

    private func photo(_ width: Int, _ height: Int, channels: Int = 3) -> Image {
        var pixels: [Float] = []
        for y in 0..<height { for x in 0..<width { for c in 0..<channels { pixels.append(Float((x * 16 + y * 8 + c * 60) % 256) / 255) } } }
        return Image(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// Events: a stage, then one step per network evaluation with a rising count that ends at the stage's total.
    func testDDNMEmitsAStageThenOneStepPerEvaluation() throws {
        var options = DDNMOptions(degradation: "pool:2")
        options.steps = 5
        let pipeline = try DDNMPipeline(prior: try prior(), options: options)
        var events: [RestorationEvent] = []
        let result = try pipeline.restore(.image(photo(8, 8)), name: "in.png", seed: 3, context: RestorationContext { events.append($0) })
        XCTAssertEqual(events.first, .stage(label: "in.png", total: 5))
        let steps = events.compactMap { event -> Int? in if case .step(let done, 5, _) = event { return done } else { return nil } }
        XCTAssertEqual(steps, [1, 2, 3, 4, 5])
        // Each evaluation's x̂0 is announced with its timestep, just before its step; no preview unless asked for.
        let denoised = events.compactMap { event -> Int? in if case .denoised(let t, nil) = event { return t } else { return nil } }
        XCTAssertEqual(denoised.count, 5)
        XCTAssertEqual(denoised, denoised.sorted(by: >), "timesteps descend")
        XCTAssertEqual(events.count, 11)
        XCTAssertEqual(result.image.shape, [1, 16, 16, 3])
        XCTAssertEqual(result.report.networkEvaluations, 5)
        XCTAssertEqual(result.report.method, "ddnm")
        XCTAssertEqual(result.report.seed, 3)
        XCTAssertTrue(result.image.values.allSatisfy { (-1...1).contains($0) }, "clamped")
        // Tiled: HiR's global pass, then the windows, each its own stage with its own total.
        var tiled: [RestorationEvent] = []
        var grayOptions = DDNMOptions(degradation: "gray")
        grayOptions.steps = 2
        let gray = try DDNMPipeline(prior: try prior(), options: grayOptions)
        _ = try gray.restore(.image(photo(32, 32, channels: 1)), name: "g.png", seed: 1, context: RestorationContext { tiled.append($0) })
        let stages = tiled.compactMap { event -> String? in if case .stage(let label, _) = event { return label } else { return nil } }
        XCTAssertEqual(stages, ["g.png (global pass, ÷2)", "g.png (9 windows)"])
        XCTAssertEqual(tiled.last, .step(done: 18, total: 18, note: "window 9/9"))
    }

    /// Previews: the current x̂0 averaged down to the asked side, on [0, 1], with every denoised event.
    func testPreviewsAreSmallPicturesOfEachStep() throws {
        var options = DDNMOptions(degradation: "pool:2")
        options.steps = 3
        var previews: [PreviewImage] = []
        let context = RestorationContext(previewSide: 4) { event in if case .denoised(_, let p?) = event { previews.append(p) } }
        _ = try DDNMPipeline(prior: try prior(), options: options).restore(.image(photo(8, 8)), name: "in.png", seed: 2, context: context)
        XCTAssertEqual(previews.count, 3)
        for p in previews {
            XCTAssertEqual([p.width, p.height, p.channels], [4, 4, 3])
            XCTAssertTrue(p.pixels.allSatisfy { (0...1).contains($0) })
        }
        XCTAssertNotEqual(previews[0].pixels, previews[2].pixels, "the estimate changes from step to step")
        // Tiled: the whole image at preview size, each window averaged into its place as it goes.
        var tiled: [PreviewImage] = []
        var gray = DDNMOptions(degradation: "gray")
        gray.steps = 2
        let tiledContext = RestorationContext(previewSide: 8) { event in if case .denoised(_, let p?) = event { tiled.append(p) } }
        _ = try DDNMPipeline(prior: try prior(), options: gray).restore(.image(photo(32, 32, channels: 1)), name: "g.png", seed: 2, context: tiledContext)
        XCTAssertEqual(tiled.count, 9 * 2, "one per evaluation of the 9 full-size windows")
        XCTAssertEqual([tiled[0].width, tiled[0].height], [8, 8])
        XCTAssertTrue(tiled[0].pixels.contains(0.5) && !tiled.last!.pixels.contains(0.5), "unrestored parts are mid-gray until their window runs")
    }

    /// Cancellation from the event handler stops the run at the next network evaluation.
    func testCancellationStopsWithinOneEvaluation() throws {
        var options = DDNMOptions(degradation: "pool:2")
        options.steps = 50
        let pipeline = try DDNMPipeline(prior: try prior(), options: options)
        var done = 0
        var context: RestorationContext!
        context = RestorationContext { event in
            if case .step(let d, _, _) = event { done = d; if d == 3 { context.cancel() } }
        }
        XCTAssertThrowsError(try pipeline.restore(.image(photo(8, 8)), name: "in.png", seed: 1, context: context)) { error in
            XCTAssertTrue(error is RestorationCancelled, "\(error)")
        }
        XCTAssertEqual(done, 3, "no evaluation after the cancel")
        // The same for ResShift, through a runner (the job path the service will take).
        let runner = RestorationRunner(store: Self.store)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pipeline-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try ImageWriter.write(photo(12, 12), to: folder.appendingPathComponent("lr.png").path)
        let job = RestorationJob(method: .resshift(ResShiftOptions()), input: folder.appendingPathComponent("lr.png").path, seed: 1)
        let cancelled = RestorationContext()
        cancelled.cancel()
        XCTAssertThrowsError(try runner.run(job, context: cancelled)) { XCTAssertTrue($0 is RestorationCancelled, "\($0)") }
        let result = try runner.run(job)
        XCTAssertEqual(result.image.shape, [1, 48, 48, 3])
        XCTAssertEqual(result.report.method, "resshift")
        XCTAssertEqual(result.report.steps, 4)
    }

    /// The same seed gives the same image; another seed another one.
    func testSeedsRepeat() throws {
        var options = DreamCleanOptions()
        (options.steps, options.inversionSteps, options.tau) = (2, 2, 200)
        let pipeline = try DreamCleanPipeline(prior: try prior(), options: options)
        let a = try pipeline.restore(photo(16, 16), name: "a", seed: 5), b = try pipeline.restore(photo(16, 16), name: "b", seed: 5)
        let c = try pipeline.restore(photo(16, 16), name: "c", seed: 6)
        XCTAssertEqual(a.image.values, b.image.values)
        XCTAssertNotEqual(a.image.values, c.image.values)
        XCTAssertEqual(a.report.method, "dreamclean")
        XCTAssertEqual(a.report.networkEvaluations, 2 + 2 * 2)
        XCTAssertEqual(a.report.provisionalDefaults, true)
    }

    /// Options decode from JSON with the official defaults for absent keys; jobs and reports round-trip.
    func testOptionsJobsAndReportsAreCodable() throws {
        let ddnm = try JSONDecoder().decode(DDNMOptions.self, from: Data(#"{"degradation": "pool:4"}"#.utf8))
        XCTAssertEqual(ddnm, DDNMOptions(degradation: "pool:4"))
        XCTAssertEqual([ddnm.steps, ddnm.travelLength, ddnm.travelRepeat], [100, 1, 1])
        XCTAssertNil(ddnm.eta, "η comes from the model card, else the official 0.85")
        XCTAssertEqual(ddnm.variant, "svd")
        XCTAssertThrowsError(try JSONDecoder().decode(DDNMOptions.self, from: Data(#"{"steps": 10}"#.utf8)), "degradation is required")
        XCTAssertEqual(try JSONDecoder().decode(DreamCleanOptions.self, from: Data("{}".utf8)), DreamCleanOptions())
        let resshift = try JSONDecoder().decode(ResShiftOptions.self, from: Data(#"{"task": "bicsr", "average": 2}"#.utf8))
        XCTAssertEqual([resshift.chopSize, resshift.average], [512, 2])
        XCTAssertEqual(resshift.task, .bicsr)
        var options = DDNMOptions(degradation: "mask:m.png,gray")
        (options.sigmaY, options.window, options.hir) = (0.05, 32, false)
        let job = RestorationJob(method: .ddnm(options), model: ModelReference(path: "p.pt", preset: "celeba256"), input: "x.png", simulate: true,
                                 seed: 9, sample: 2)
        XCTAssertEqual(try JSONDecoder().decode(RestorationJob.self, from: try JSONEncoder().encode(job)), job)
        var report = RestorationReport(method: "ddnm+", seed: 4)
        (report.sigmaY, report.psnr, report.windows, report.hir) = (0.05, 31.5, 9, "÷2")
        let json = try report.json()
        XCTAssertTrue(json.contains(#""psnr_db":31.5"#) && json.contains(#""sigma_y":0.05"#) && json.contains(#""hir":"÷2""#), json)
        XCTAssertFalse(json.contains("ssim"), "absent fields are left out: \(json)")
        XCTAssertEqual(try JSONDecoder().decode(RestorationReport.self, from: Data(json.utf8)), report)
        report.ssim = .nan
        XCTAssertFalse(try report.json().contains("ssim"), "JSON has no NaN")
    }

    /// A report as the command line writes it (PNG chunk and --json) decodes into the schema.
    func testTheCLIReportDecodesIntoTheSchema() throws {
        var options = DDNMOptions(degradation: "pool:2")
        options.steps = 2
        let result = try DDNMPipeline(prior: try prior(), options: options).restore(.simulate(clean: photo(16, 16)), name: "x.png", seed: 1)
        let decoded = try JSONDecoder().decode(RestorationReport.self, from: Data(try result.report.json().utf8))
        XCTAssertEqual(decoded, result.report)
        XCTAssertNotNil(decoded.psnr)
        XCTAssertNotNil(decoded.ssim)
        XCTAssertEqual(decoded.operator, "pool:2")
        XCTAssertEqual(decoded.modelSHA256?.count, 64)
    }

    /// Masks as typed inputs: an image attached under the name the spec uses, no file; known pixels are kept.
    func testAMaskCanBeAttachedInsteadOfAFile() throws {
        var mask = [Float](repeating: 0, count: 16 * 16)
        for p in 0..<(16 * 16) where p % 16 >= 4 && p % 16 < 10 && p / 16 >= 4 && p / 16 < 10 { mask[p] = 1 }  // white = hole
        var options = DDNMOptions(degradation: "mask:upload-1")
        options.steps = 3
        let pipeline = try DDNMPipeline(prior: try prior(), options: options,
                                        attachments: ["upload-1": Image(width: 16, height: 16, channels: 1, pixels: mask)])
        let input = photo(16, 16)
        let result = try pipeline.restore(.image(input), name: "in.png", seed: 4)
        for p in 0..<(16 * 16) where mask[p] == 0 {
            for c in 0..<3 { XCTAssertEqual((result.image.data[p * 3 + c] + 1) / 2, input.pixels[p * 3 + c], accuracy: 1e-4) }
        }
        XCTAssertThrowsError(try DDNMPipeline(prior: try prior(), options: options)) { XCTAssertTrue("\($0)".contains("upload-1"), "\($0)") }
    }

    /// Errors are typed, one line, and name what is wrong.
    func testErrorsNameWhatIsWrong() throws {
        let prior = try prior()
        let cases: [(DDNMOptions, String)] = [
            (DDNMOptions(degradation: "sharpen:2"), "unknown degradation"),
            ({ var o = DDNMOptions(degradation: "pool:2"); o.classID = 3; return o }(), "class-conditional"),
            ({ var o = DDNMOptions(degradation: "pool:2"); o.eta = 2; return o }(), "--eta"),
            ({ var o = DDNMOptions(degradation: "pool:2"); o.variant = "fast"; return o }(), "variant"),
            (DDNMOptions(degradation: "mask:/nonexistent/m.png"), "/nonexistent/m.png"),
        ]
        for (options, message) in cases {
            XCTAssertThrowsError(try DDNMPipeline(prior: prior, options: options)) { error in
                XCTAssertTrue("\(error)".contains(message), "\(options.degradation): \(error)")
                XCTAssertFalse("\(error)".contains("\n"))
            }
        }
        var options = DDNMOptions(degradation: "cs-wht:0.25")
        options.steps = 2
        XCTAssertThrowsError(try DDNMPipeline(prior: prior, options: options).restore(.image(photo(16, 16)), name: "p.png", seed: 1)) { error in
            XCTAssertTrue(error is RestorationError && "\(error)".contains("coefficient"), "\(error)")
        }
        XCTAssertThrowsError(try LoadedPrior.load(path: "/nonexistent/prior.pt")) { XCTAssertTrue("\($0)".contains("/nonexistent/prior.pt"), "\($0)") }
    }
}

/// The catalog answers what a file is, for our bundled models and an official-format one.
final class CatalogTests: XCTestCase {
    private let models = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Models")

    func testBundledModelsAreDescribedWithTheirCards() throws {
        let prior = try ModelCatalog.describe(path: models.appendingPathComponent(BundledModels.defaultPrior).path)
        XCTAssertEqual(prior.family?.name, "adm-unet")
        XCTAssertEqual(prior.ownFamily, "adm")
        XCTAssertEqual(prior.cardPath.map { ($0 as NSString).lastPathComponent }, "adm64-prior.md")
        XCTAssertTrue(prior.summaryLines.contains { $0.hasPrefix("card: ") })
        XCTAssertEqual(prior.tensorTable(all: false).count, prior.stateDict.tensors.count + 1, "a header and one row per tensor")
        let resshift = try ModelCatalog.describe(path: models.appendingPathComponent(BundledModels.defaultResShift).path)
        XCTAssertEqual(resshift.ownFamily, ModelCatalog.ownResShiftFamily)
        XCTAssertEqual(resshift.family?.name, "swin-unet")
        XCTAssertNil(resshift.preset)
        XCTAssertEqual(Formatting.grouped(5_278_147), "5,278,147")
        XCTAssertEqual(Formatting.bytes(10_600_000), "10.1 MiB")
    }
}
