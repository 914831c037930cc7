import Foundation
import ImageIO
import XCTest

/// `restore diffir` as a user runs it: the bundled model (Models/diffir-x4-own.safetensors), an official-layout file
/// (the tiny ×2 model of the network goldens, a BasicSR .pth), tiles, simulate, batch, and one-line failures.
final class DiffIRCLITests: RestoreTestCase {
    private static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("NetworksTests/Fixtures/diffir")

    private func photo(_ name: String, _ width: Int, _ height: Int, channels: Int = 3) throws -> String {
        try photo(name, width, height, channels: channels, pattern: .wave)
    }

    func testDefaultModelUpscalesByFourDeterministicallyWithAReport() throws {
        let lr = try photo("lr.png", 20, 12)
        var outputs: [[Float]] = []
        for name in ["a.png", "b.png"] {
            let r = try restore(["diffir", "-i", lr, "-o", path(name), "--json", "--quiet", "--seed", "3"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let image = try ImageReader.read(path: path(name))
            XCTAssertEqual([image.width, image.height], [80, 48])
            let rep = try report(r)
            XCTAssertEqual(rep["method"] as? String, "diffir")
            XCTAssertEqual(rep["model"] as? String, "diffir-x4-own.safetensors")
            XCTAssertEqual(rep["model_kind"] as? String, "own")
            XCTAssertEqual(rep["steps"] as? Int, 4)
            outputs.append(image.pixels)
        }
        XCTAssertEqual(outputs[0], outputs[1], "same seed, same image")
        // A ×4 SR model: the result stays close to the input's nearest upsampling.
        let input = try ImageReader.read(path: lr), output = try ImageReader.read(path: path("a.png"))
        var error = 0.0
        for y in 0..<48 { for x in 0..<80 { for c in 0..<3 {
            error += abs(Double(output.pixels[(y * 80 + x) * 3 + c] - input.pixels[((y / 4) * 20 + x / 4) * 3 + c]))
        } } }
        XCTAssertLessThan(error / Double(80 * 48 * 3), 0.1)
    }

    func testSimulateTilesAndAGrayPhoto() throws {
        let clean = try photo("clean.png", 96, 64)
        let r = try restore(["diffir", "--simulate", "-i", clean, "-o", path("sr.png"), "--save-observation", path("lr.png"), "--tile", "0",
                             "--json", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rep = try report(r)
        for key in ["psnr_db", "ssim", "bicubic_psnr_db", "bicubic_ssim"] { XCTAssertNotNil(rep[key] as? Double, key) }
        XCTAssertEqual(rep["tiling"] as? String, "whole image")
        let lr = try ImageReader.read(path: path("lr.png"))
        XCTAssertEqual([lr.width, lr.height], [24, 16])
        let tiled = try restore(["diffir", "-i", try photo("big.png", 72, 40), "-o", path("tiled.png"), "--tile", "32", "--overlap", "8", "--json", "--quiet"])
        XCTAssertEqual(tiled.status, 0, tiled.stderr)
        XCTAssertEqual(try report(tiled)["patches"] as? Int, 3 * 2)  // 32-px tiles at 0, 20, 40 across; 24-px tiles at 0, 16 down
        XCTAssertEqual(try ImageReader.read(path: path("tiled.png")).width, 288)
        // Gray in, gray out.
        let gray = try restore(["diffir", "-i", try photo("gray.png", 16, 16, channels: 1), "-o", path("gray-out.png"), "--quiet"])
        XCTAssertEqual(gray.status, 0, gray.stderr)
        let g = try ImageReader.read(path: path("gray-out.png"))
        XCTAssertEqual(g.colorChannels, 1)
    }

    /// An official BasicSR file (params_ema, diffusion.* aliases and buffers): ×2 read from the weights.
    func testAnOfficialLayoutFileRunsItsTask() throws {
        let model = Self.fixtures.appendingPathComponent("sr2_withbias.pth").path
        let r = try restore(["diffir", "-i", try photo("in.png", 20, 18), "-o", path("x2.png"), "--model", model, "--task", "sr2", "--json", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rep = try report(r)
        XCTAssertEqual(rep["scale"] as? Int, 2)
        XCTAssertEqual(rep["model_kind"] as? String, "official")
        XCTAssertEqual(rep["padded"] as? String, "20×18 → 32×32 (reflect)")
        let out = try ImageReader.read(path: path("x2.png"))
        XCTAssertEqual([out.width, out.height], [40, 36])
    }

    /// The tasks pick DiffIR when the named model is one: `upscale -s 4 -n diffir-x4-own`; other tasks refuse it.
    func testUpscaleRunsANamedDiffIRModel() throws {
        let lr = try photo("lr.png", 12, 12)
        let r = try restore(["upscale", "-n", "diffir-x4-own", "-i", lr, "-o", path("up.png"), "--json", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rep = try report(r)
        XCTAssertEqual(rep["method"] as? String, "diffir")
        XCTAssertEqual(rep["command"] as? String, "upscale")
        for arguments in [["denoise"], ["upscale", "-s", "2"]] {
            let wrong = try restore(arguments + ["-n", "diffir-x4-own", "-i", lr, "-o", path("x.png")])
            XCTAssertEqual(wrong.status, 1, wrong.stderr)
            XCTAssertTrue(wrong.stderr.contains("DiffIR model") && wrong.stderr.contains("upscale -s 4"), wrong.stderr)
        }
    }

    func testBatchRunsDiffIR() throws {
        let folder = path("inputs")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for name in ["a", "b"] {
            try FileManager.default.moveItem(atPath: try photo("\(name).png", 16, 16), toPath: folder + "/\(name).png")
        }
        let r = try restore(["batch", "--input", folder, "-o", path("out"), "--quiet", "--", "diffir"])
        XCTAssertEqual(r.status, 0, r.stderr)
        for name in ["a", "b"] {
            XCTAssertEqual(try ImageReader.read(path: path("out/\(name).png")).width, 64)
            XCTAssertTrue(FileManager.default.fileExists(atPath: path("out/\(name).png.json")))
        }
    }

    func testBadUsageAndBadFilesFailWithOneLine() throws {
        let lr = try photo("in.png", 16, 16)
        let out = path("out.png")
        for (arguments, status, mentions) in [
            (["--tile", "20"], 2, "--tile"),
            (["--tile", "64", "--overlap", "64"], 2, "--overlap"),
            (["--tile", "36"], 1, "multiple of 8"),
            (["--save-observation", path("y.png")], 2, "--simulate"),
            (["--model", path("missing.pth")], 1, "missing.pth"),
            (["--model", Self.fixtures.appendingPathComponent("sr4_biasfree.io.safetensors").path], 1, "not a DiffIR"),
            (["--model", Self.fixtures.appendingPathComponent("deblur_withbias.pth").path, "--simulate"], 1, "--simulate"),
            (["--task", "deblur"], 1, "does sr4"),
            (["--task", "sr3"], 2, "--task"),
        ] {
            let r = try restore(["diffir", "-i", lr, "-o", out] + arguments)
            XCTAssertEqual(r.status, Int32(status), "\(arguments): \(r.stderr)")
            // One error line (after the model's "loaded" line where the model had to be read to judge).
            let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("restore: error: ") }
            XCTAssertEqual(errors.count, 1, r.stderr)
            XCTAssertTrue(errors.first?.contains(mentions) ?? false, "\(arguments): \(r.stderr)")
            XCTAssertTrue(r.stderr.split(separator: "\n").allSatisfy { $0.hasPrefix("restore: error: ") || $0.hasPrefix("diffir: ") }, r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        }
    }
}
