import Foundation
import ImageIO
import XCTest

/// `restore rddm` as a user runs it, on the tiny official-layout `Trainer.save` files of the network goldens
/// (Tests/NetworksTests/Fixtures/rddm): simulate with its report, tiles, gray in and out, the denoise task with an RDDM
/// model, and one-line failures that write nothing.
final class RDDMCLITests: RestoreTestCase {
    private static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("NetworksTests/Fixtures/rddm")
    private func model(_ name: String) -> String { Self.fixtures.appendingPathComponent("\(name).pt").path }

    func testSimulateReportsTheRestoredAndTheDegradedInputsQuality() throws {
        let clean = try photo("clean.png", 40, 24, pattern: .wave)
        let r = try restore(["rddm", "--model", model("se0_cond"), "-i", clean, "-o", path("out.png"), "--simulate", "noise:25",
                             "--save-observation", path("noisy.png"), "--steps", "4", "--json", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rep = try report(r)
        XCTAssertEqual(rep["method"] as? String, "rddm")
        XCTAssertEqual(rep["simulated"] as? String, "noise:25")
        XCTAssertEqual(rep["steps"] as? Int, 4)
        XCTAssertEqual(rep["objective"] as? String, "pred_res_noise")
        XCTAssertEqual(rep["model_kind"] as? String, "official")
        for key in ["psnr_db", "ssim", "input_psnr_db", "input_ssim"] { XCTAssertNotNil(rep[key] as? Double, key) }
        XCTAssertEqual([try ImageReader.read(path: path("out.png")).width, try ImageReader.read(path: path("noisy.png")).height], [40, 24])
        let tiled = try restore(["rddm", "--model", model("se0_cond"), "-i", try photo("big.png", 72, 40, pattern: .ramp), "-o", path("tiled.png"),
                                 "--tile", "32", "--overlap", "8", "--steps", "2", "--json", "--quiet"])
        XCTAssertEqual(tiled.status, 0, tiled.stderr)
        XCTAssertEqual(try report(tiled)["patches"] as? Int, 6)
        let gray = try restore(["rddm", "--model", model("se0_cond"), "-i", try photo("gray.png", 16, 16, channels: 1, pattern: .wave),
                                "-o", path("gray-out.png"), "--steps", "2", "--quiet"])
        XCTAssertEqual(gray.status, 0, gray.stderr)
        XCTAssertEqual(try ImageReader.read(path: path("gray-out.png")).colorChannels, 1)
    }

    func testTheDenoiseTaskRunsAnRDDMModelGivenByName() throws {
        let r = try restore(["denoise", "-n", model("se0_cond"), "-i", try photo("in.png", 16, 16, pattern: .wave), "-o", path("d.png"),
                             "--steps", "3", "--json", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rep = try report(r)
        XCTAssertEqual(rep["method"] as? String, "rddm")
        XCTAssertEqual(rep["command"] as? String, "denoise")
        let refused = try restore(["upscale", "-s", "2", "-n", model("se0_cond"), "-i", path("in.png"), "-o", path("u.png")])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("RDDM model"), refused.stderr)
    }

    func testBadRequestsFailWithOneLineAndWriteNothing() throws {
        let input = try photo("in.png", 16, 16, pattern: .wave)
        let cases: [([String], String)] = [
            (["--simulate", "blur:2"], "unknown degradation"),
            (["--simulate", "jpeg:0"], "out of range"),
            (["--steps", "0"], "--steps"),
            (["--tile", "8"], "--tile"),
            (["--objective", "pred_res"], "reads one output"),
            (["--model", model("se0_gen")], "unconditional"),
            (["--model", "/nonexistent/model.pt"], "model.pt"),
        ]
        for (extra, expected) in cases {
            var arguments = ["rddm", "-i", input, "-o", path("out.png")]
            if !extra.contains("--model") { arguments += ["--model", model("se0_cond")] }
            let r = try restore(arguments + extra + ["--quiet"])
            XCTAssertNotEqual(r.status, 0, "\(extra)")
            XCTAssertTrue(r.stderr.contains(expected), "\(extra): \(r.stderr)")
            XCTAssertEqual(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count, 1, "\(extra): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: path("out.png")), "\(extra)")
        }
    }
}
