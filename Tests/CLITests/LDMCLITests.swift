import Foundation
import ImageIO
import XCTest

/// `restore ldm` as a user runs it, on the tiny official-layout Lightning checkpoints of the network goldens
/// (Tests/NetworksTests/Fixtures/ldm) with their configuration given as JSON: SR with --simulate and windows,
/// inpainting with a mask, and one-line failures that write nothing.
final class LDMCLITests: RestoreTestCase {
    private static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("NetworksTests/Fixtures/ldm")
    private func model(_ name: String) -> String { Self.fixtures.appendingPathComponent("\(name).ckpt").path }

    /// The tiny models' configurations as a user writes them (Tools/reference/make_ldm_fixtures.py writes them).
    private func config(_ name: String) throws -> String { Self.fixtures.appendingPathComponent("\(name).json").path }

    func testSuperResolutionWithSimulateAndWindows() throws {
        let clean = try photo("clean.png", 48, 40, pattern: .wave)
        let r = try restore(["ldm", "--model", model("sr"), "--config", try config("sr"), "-i", clean, "-o", path("out.png"), "--simulate",
                             "--steps", "4", "--tile", "8", "--overlap", "4", "--json", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rep = try report(r)
        XCTAssertEqual(rep["method"] as? String, "ldm")
        XCTAssertEqual(rep["task"] as? String, "sr4")
        XCTAssertEqual(rep["steps"] as? Int, 4)
        XCTAssertEqual(rep["eta"] as? Double, 1)
        XCTAssertEqual(rep["patches"] as? Int, 4, "a 12 × 10 latent in windows of 8 at stride 4: rows 0, 2 × columns 0, 4")
        // A window side the UNet cannot take (9: not a multiple of 2) is rounded down to one it can.
        let odd = try restore(["ldm", "--model", model("sr"), "--config", try config("sr"), "-i", clean, "-o", path("odd.png"), "--simulate",
                               "--steps", "4", "--tile", "9", "--overlap", "4", "--json", "--quiet"])
        XCTAssertEqual(odd.status, 0, odd.stderr)
        let oddTiling = try report(odd)["tiling"] as? String ?? ""
        XCTAssertTrue(oddTiling.contains("windows of 8²"), oddTiling)
        for key in ["psnr_db", "ssim", "bicubic_psnr_db"] { XCTAssertNotNil(rep[key] as? Double, key) }
        let halo = try restore(["ldm", "--model", model("sr"), "--config", try config("sr"), "-i", clean, "-o", path("halo.png"), "--simulate",
                                "--steps", "4", "--tile", "8", "--overlap", "4", "--first-stage", "halo", "--json", "--quiet"])
        XCTAssertEqual(halo.status, 0, halo.stderr)
        let haloTiling = try report(halo)["tiling"] as? String ?? ""
        XCTAssertTrue(haloTiling.contains("halo tiles"), haloTiling)
        let out = try ImageReader.read(path: path("out.png"))
        XCTAssertEqual([out.width, out.height], [48, 40])
    }

    func testInpaintingWithAMask() throws {
        let input = try photo("in.png", 24, 16, pattern: .ramp)
        var pixels = [Float](repeating: 0, count: 24 * 16)
        for y in 4..<12 { for x in 6..<17 { pixels[y * 24 + x] = 1 } }
        try ImageWriter.write(Image(width: 24, height: 16, channels: 1, pixels: pixels), to: path("mask.png"))
        let r = try restore(["ldm", "--model", model("inpaint"), "--config", try config("inpaint"), "-i", input, "--mask", path("mask.png"),
                             "-o", path("out.png"), "--steps", "5", "--json", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rep = try report(r)
        XCTAssertEqual(rep["task"] as? String, "inpaint")
        XCTAssertEqual(rep["eta"] as? Double, 0)
        let original = try ImageReader.read(path: input), out = try ImageReader.read(path: path("out.png"))
        XCTAssertEqual(out.pixels[0], original.pixels[0], accuracy: 1 / 255, "known pixels are kept")
    }

    func testBadRequestsFailWithOneLineAndWriteNothing() throws {
        let input = try photo("in.png", 16, 16, pattern: .wave)
        let sr = try config("sr")
        let cases: [([String], String)] = [
            (["--model", model("sr"), "--config", sr, "--steps", "3"], "steps"),
            (["--model", model("sr"), "--config", sr, "--task", "inpaint", "--mask", input], "super-resolution"),
            (["--model", model("sr"), "--config", sr, "--tile", "4"], "--tile"),
            (["--model", model("sr"), "--config", sr, "--first-stage", "tiles"], "first-stage"),
            (["--model", model("sr")], "--config"),
            (["--model", "/nonexistent/model.ckpt"], "model.ckpt"),
            ([], "--model"),
            (["--model", model("inpaint"), "--config", try config("inpaint")], "--mask"),
        ]
        for (extra, expected) in cases {
            let r = try restore(["ldm", "-i", input, "-o", path("out.png")] + extra + ["--quiet"])
            XCTAssertNotEqual(r.status, 0, "\(extra)")
            XCTAssertTrue(r.stderr.contains(expected), "\(extra): \(r.stderr)")
            XCTAssertEqual(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count, 1, "\(extra): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: path("out.png")), "\(extra)")
        }
    }

    /// The task commands route a latent-diffusion checkpoint given by -n to restore ldm's pipeline.
    func testTaskCommandsRouteLatentDiffusionModels() throws {
        let input = try photo("in.png", 16, 16, pattern: .wave)
        let upscale = try restore(["upscale", "-s", "4", "-n", model("sr"), "-i", input, "-o", path("u.png"), "--quiet"])
        XCTAssertNotEqual(upscale.status, 0)
        XCTAssertTrue(upscale.stderr.contains("bsr_sr"), "routed to the LDM loader: \(upscale.stderr)")
        let denoise = try restore(["denoise", "-n", model("sr"), "-i", input, "-o", path("d.png"), "--quiet"])
        XCTAssertNotEqual(denoise.status, 0)
        XCTAssertTrue(denoise.stderr.contains("latent-diffusion model"), denoise.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("u.png")))
    }
}
