import Checkpoints
import Foundation
import ImageIO
import XCTest

/// The command line a newcomer uses: task subcommands at every size, folders that survive bad files, outputs
/// checked before any work, one-line errors, gray in → gray out, honest reports (the "command line for
/// people" issue). The priors' tasks run on the tiny random ADM of the DDNM goldens (its architecture in a
/// sidecar JSON, as our own exports carry it), so that sizes up to 276 stay quick; ResShift runs the bundled model.
final class TaskCLITests: RestoreTestCase {
    private func photo(_ name: String, _ width: Int, _ height: Int, channels: Int = 3, noise: Float = 0) throws -> String {
        var pixels: [Float] = []
        var state: UInt64 = 42
        for y in 0..<height { for x in 0..<width { for c in 0..<channels {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let u = Float(state >> 40) / Float(1 << 24) - 0.5  // uniform, σ = 1/√12
            pixels.append(min(1, max(0, 0.5 + 0.3 * sin(Float(x * 3 + y * 2 + c * 5) / 9) + noise * u * 3.4641)))
        } } }
        try ImageWriter.write(Image(width: width, height: height, channels: channels, pixels: pixels), to: path(name))
        return path(name)
    }

    /// The tiny prior with its architecture beside it (`-n` takes it like an installed model).
    private func tinyPrior() throws -> String {
        let build = try buildFolder
        guard let bundle = try FileManager.default.contentsOfDirectory(atPath: build.path).first(where: { $0.hasSuffix("MethodsTests.resources") }) else {
            throw XCTSkip("MethodsTests resources not built")
        }
        let fixtures = build.appendingPathComponent(bundle).appendingPathComponent("Fixtures")
        let trajectories = try Checkpoint(path: fixtures.appendingPathComponent("trajectories.safetensors").path)
        try FileManager.default.copyItem(atPath: fixtures.appendingPathComponent("tiny_adm16.pt").path, toPath: path("tiny.pt"))
        // Native side 48 instead of 16 (the network is convolutional; the side only sets the windows), so that
        // bicubic ×3's 12-pixel reach fits the overlap of half a window.
        var config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data((trajectories.metadata["model_config"] ?? "{}").utf8)) as? [String: Any])
        config["image_size"] = 48
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path("tiny.json")))
        return path("tiny.pt")
    }

    private func mask(_ name: String, _ width: Int, _ height: Int) throws -> String {
        var pixels = [Float](repeating: 0, count: width * height)
        for y in (height / 3)..<max(height / 3 + 1, height / 2) { for x in (width / 3)..<max(width / 3 + 1, width / 2) { pixels[y * width + x] = 1 } }
        try ImageWriter.write(Image(width: width, height: height, channels: 1, pixels: pixels), to: path(name))
        return path(name)
    }

    func testEveryTaskTakesEverySize() throws {
        let tiny = try tinyPrior()
        for (w, h) in [(1, 1), (2, 2), (7, 7), (60, 60), (61, 61), (100, 76), (276, 276)] {
            let input = try photo("in\(w)x\(h).png", w, h, noise: 0.05)
            let m = try mask("m\(w)x\(h).png", w, h)
            let tasks: [([String], Int)] = [
                (["upscale"], 4), (["upscale", "-n", "resshift-x4-own"], 4), (["upscale", "-s", "2", "-n", tiny], 2), (["upscale", "-s", "3", "-n", tiny], 3),
                (["denoise", "--sigma", "0.05", "-n", tiny], 1), (["dejpeg", "-n", tiny], 1), (["deblur", "-n", tiny], 1),
                (["inpaint", "--mask", m, "-n", tiny], 1), (["colorize", "-n", tiny], 1),
            ]
            for (arguments, scale) in tasks where !(w == 1 && arguments[0] == "inpaint") {  // 1×1: all hole or none, both refused
                let steps = arguments.first == "upscale" && scale == 4 ? [] : ["--steps", "1"]
                let r = try restore(arguments + steps + ["-i", input, "-o", path("out.png"), "--overwrite", "--quiet", "--json"])
                XCTAssertEqual(r.status, 0, "\(arguments) \(w)×\(h): \(r.stderr)")
                guard r.status == 0 else { continue }
                let out = try ImageReader.read(path: path("out.png"))
                XCTAssertEqual([out.width, out.height], [w * scale, h * scale], "\(arguments) \(w)×\(h)")
                XCTAssertEqual(try report(r)["command"] as? String, arguments[0])
            }
        }
    }

    func testAFolderSurvivesABadFileSkipsExistingOutputsAndSaysWhatHappened() throws {
        let tiny = try tinyPrior()
        let inputs = path("in"), outputs = path("out")
        try FileManager.default.createDirectory(atPath: inputs, withIntermediateDirectories: true)
        for name in ["a.png", "c.png"] { try FileManager.default.moveItem(atPath: try photo(name, 16, 16), toPath: inputs + "/" + name) }
        try Data("not a png".utf8).write(to: URL(fileURLWithPath: inputs + "/b.png"))
        let run = { try self.restore(["colorize", "-n", tiny, "--steps", "1", "-i", inputs, "-o", outputs] + $0) }
        let first = try run([])
        XCTAssertEqual(first.status, 1, "a failure makes the run fail")
        XCTAssertTrue(FileManager.default.fileExists(atPath: outputs + "/a.png") && FileManager.default.fileExists(atPath: outputs + "/c.png"), first.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: outputs + "/b.png"))
        let errors = first.stderr.split(separator: "\n").filter { $0.hasPrefix("restore: error:") }
        XCTAssertEqual(errors.count, 1, first.stderr)
        XCTAssertTrue(errors.first?.contains("b.png") ?? false, first.stderr)
        XCTAssertTrue(first.stderr.contains("2 restored, 0 skipped (output exists), 1 failed"), first.stderr)
        // Existing outputs are refused before any work, all of them named in one line, unless skipped.
        let again = try run([])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("a.png exists") && again.stderr.contains("1 more"), again.stderr)
        XCTAssertFalse(again.stderr.contains("evaluations"), "nothing ran")
        let resumed = try run(["--skip-existing"])
        XCTAssertTrue(resumed.stderr.contains("0 restored, 2 skipped (output exists), 1 failed"), resumed.stderr)
    }

    func testOutputsAreCheckedBeforeAnyWork() throws {
        let input = try photo("in.png", 8, 8)
        let fifo = path("fifo.png")
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        let pipe = try restore(["upscale", "-i", input, "-o", fifo, "--overwrite"])
        XCTAssertEqual(pipe.status, 1)
        XCTAssertTrue(pipe.stderr.contains("regular file"), pipe.stderr)
        var info = stat()
        XCTAssertEqual(lstat(fifo, &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFIFO, "the FIFO is still there")
        // A character device of our own (like /dev/null, which a regression must never get to replace).
        if mknod(path("device"), S_IFCHR | 0o666, dev_t((1 << 8) | 3)) == 0 {
            let device = try restore(["upscale", "-i", input, "-o", path("device"), "--format", "png", "--overwrite"])
            XCTAssertEqual(device.status, 1)
            XCTAssertTrue(device.stderr.contains("regular file") && device.stderr.split(separator: "\n").count == 1, device.stderr)
            var node = stat()
            XCTAssertEqual(lstat(path("device"), &node), 0)
            XCTAssertEqual(node.st_mode & S_IFMT, S_IFCHR, "the device node is still there")
        }
        try Data().write(to: URL(fileURLWithPath: path("a-file")))
        try FileManager.default.createDirectory(atPath: path("ins"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: input, toPath: path("ins/a.png"))
        let blocked = try restore(["upscale", "-i", path("ins"), "-o", path("a-file/sub")])
        XCTAssertEqual(blocked.status, 1)
        XCTAssertTrue(blocked.stderr.contains("a-file is a file, not a folder") && !blocked.stderr.contains("NSCocoaErrorDomain"), blocked.stderr)
        for (output, words) in [(input, "input"), (path("x.tif"), "extension"), (path("missing/o.png"), "missing")] {
            let r = try restore(["upscale", "-i", input, "-o", output, "--overwrite"])
            XCTAssertEqual(r.status, 1, output)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertTrue(r.stderr.hasPrefix("restore: error:") && r.stderr.lowercased().contains(words) || r.stderr.contains("folder"), "\(words): \(r.stderr)")
        }
    }

    func testErrorsAreOneLineAndNameTheRightCommand() throws {
        for arguments in [["ddnm"], ["upscale", "-s", "5", "-i", "x", "-o", "y"], ["inpaint", "-i", "x", "-o", "y"], ["denoise", "--bogus"]] {
            let r = try restore(arguments)
            XCTAssertEqual(r.status, 2, "\(arguments)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "\(arguments): \(r.stderr)")
            XCTAssertTrue(r.stderr.hasPrefix("restore: error: "), r.stderr)
        }
        let prior = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Models/adm64-prior.safetensors").path
        let wrong = try restore(["resshift", "--model", prior, "-i", try photo("in.png", 8, 8), "-o", path("o.png")])
        XCTAssertEqual(wrong.status, 1)
        XCTAssertTrue(wrong.stderr.contains("diffusion prior") && wrong.stderr.contains("ddnm"), wrong.stderr)
        XCTAssertEqual(wrong.stderr.split(separator: "\n").count, 1, wrong.stderr)
    }

    func testGrayStaysGrayNoiseIsEstimatedAndSamplesReportTheirSeeds() throws {
        let tiny = try tinyPrior()
        let gray = try photo("gray.png", 16, 16, channels: 1, noise: 0.1)
        let r = try restore(["denoise", "-n", tiny, "--steps", "1", "-i", gray, "-o", path("out.png"), "--json", "--quiet", "--samples", "2", "--seed", "7"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(lines.compactMap { $0["seed"] as? Int }, [7, 8], "each sample's own seed")
        XCTAssertEqual(lines.compactMap { $0["output"] as? String }, [path("out-1.png"), path("out-2.png")])
        XCTAssertEqual(lines.first?["sigma_y_estimated"] as? Bool, true)
        let sigma = try XCTUnwrap(lines.first?["sigma_y"] as? Double)
        XCTAssertEqual(sigma, 0.1, accuracy: 0.03, "estimated σ of uniform noise with σ 0.1")
        XCTAssertEqual(try ImageReader.read(path: path("out-1.png")).channels, 1, "gray in, gray out")
        let colored = try restore(["colorize", "-n", tiny, "--steps", "1", "-i", gray, "-o", path("c.png"), "--quiet"])
        XCTAssertEqual(colored.status, 0, colored.stderr)
        XCTAssertEqual(try ImageReader.read(path: path("c.png")).channels, 3, "colorize makes colour")
    }

    func testJPEGAndWebPOutputsCarryTheReportAndWebPInputsAreRead() throws {
        let input = try photo("in.png", 12, 10)
        for name in ["out.jpg", "out.webp", "lossless.webp"] {
            let r = try restore(["upscale", "-i", input, "-o", path(name), "--json", "--quiet"] + (name == "lossless.webp" ? ["--quality", "100"] : []))
            XCTAssertEqual(r.status, 0, r.stderr)
            let written = try ImageReader.read(path: path(name))
            XCTAssertEqual([written.width, written.height], [48, 40])
            let stored = try XCTUnwrap(written.text["DiffusionRestore"], "\(name): the report is in the file")
            XCTAssertEqual(stored, r.stdout.trimmingCharacters(in: .newlines), name)
        }
        let again = try restore(["upscale", "-s", "2", "-n", try tinyPrior(), "--steps", "1", "-i", path("out.webp"), "-o", path("from-webp.png"), "--quiet"])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(try ImageReader.read(path: path("from-webp.png")).width, 96)
    }

    func testServeRunsTheServiceBinaryAndRefusesAnOpenAddressWithoutAToken() throws {
        let r = try restore(["serve", "--host", "0.0.0.0", "--port", "0"])
        XCTAssertEqual(r.status, 2)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("restore serve: error:") && r.stderr.contains("--token"), r.stderr)
        let help = try restore(["serve", "--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.stdout.contains("--max-upload-mb"), help.stdout)
    }
}
