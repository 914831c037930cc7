import Checkpoints
import Engine
import Foundation
import ImageIO
import Restoration
import XCTest

/// `restore ddnm` as a user runs it, on the tiny random ADM prior of the DDNM golden fixtures (a random
/// network restores nothing; these tests check the plumbing: shapes, reports, errors, determinism).
final class DDNMCLITests: RestoreTestCase {
    /// The tiny prior (a copy of the MethodsTests fixture, found next to this test bundle) and its config.
    private func prior() throws -> (model: String, config: String) {
        let build = try buildFolder
        let candidates = try FileManager.default.contentsOfDirectory(atPath: build.path).filter { $0.hasSuffix("MethodsTests.resources") }
        guard let bundle = candidates.first else { throw FixtureMissing("MethodsTests resources not built") }
        let fixtures = build.appendingPathComponent(bundle).appendingPathComponent("Fixtures")
        let trajectories = try Checkpoint(path: fixtures.appendingPathComponent("trajectories.safetensors").path)
        let config = path("tiny.json")
        try Data((trajectories.metadata["model_config"] ?? "{}").utf8).write(to: URL(fileURLWithPath: config))
        return (fixtures.appendingPathComponent("tiny_adm16.pt").path, config)
    }

    private func photo(_ name: String, _ width: Int, _ height: Int, channels: Int = 3) throws -> String {
        try photo(name, width, height, channels: channels, pattern: .ramp)
    }

    func testSuperResolutionWritesTheUpscaledSizeAndAReport() throws {
        let (model, config) = try prior()
        let r = try restore(["ddnm", "-i", try photo("lr.png", 8, 8), "-o", path("sr.png"), "--degradation", "pool:2",
                             "--model", model, "--model-config", config, "--steps", "5", "--json", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let image = try ImageReader.read(path: path("sr.png"))
        XCTAssertEqual([image.width, image.height], [16, 16])
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(report["operator"] as? String, "pool:2")
        XCTAssertEqual(report["network_evaluations"] as? Int, 5)
        XCTAssertEqual((report["model_sha256"] as? String)?.count, 64)
        XCTAssertNotNil(report["consistency_rms"])
        XCTAssertEqual(r.stderr, "", "--quiet prints nothing on stderr")
    }

    func testSameSeedGivesTheSameImageAndSimulateReportsPSNR() throws {
        let (model, config) = try prior()
        let clean = try photo("clean.png", 16, 16)
        var outputs: [[Float]] = []
        for name in ["a.png", "b.png"] {
            let r = try restore(["ddnm", "-i", clean, "-o", path(name), "--degradation", "gray", "--simulate", "--model", model,
                                 "--model-config", config, "--steps", "4", "--seed", "7", "--json", "--quiet"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("\"psnr_db\"") && r.stdout.contains("\"ssim\""), r.stdout)
            outputs.append(try ImageReader.read(path: path(name)).pixels)
        }
        XCTAssertEqual(outputs[0], outputs[1])
    }

    func testBadInputsFailWithOneLineAndNoOutput() throws {
        let (model, config) = try prior()
        let lr = try photo("in.png", 16, 16)
        let cases: [([String], String)] = [
            (["--degradation", "bicubic:2"], "the overlap must be at least 16 px"),  // 32² output, 16² windows: ×2 bicubic reaches 8 px
            (["--degradation", "sharpen:2"], "unknown degradation"),
            (["--degradation", "blur:9"], "unknown blur"),
            (["--degradation", "mask:\(path("missing.png"))"], "missing.png"),
            (["--degradation", "pool:2", "--class", "3"], "class-conditional"),
            (["--degradation", "pool:0"], "between 1 and 64"),
        ]
        for (extra, message) in cases {
            let r = try restore(["ddnm", "-i", lr, "-o", path("out.png"), "--model", model, "--model-config", config, "--steps", "2", "--quiet"] + extra)
            XCTAssertEqual(r.status, 1, "\(extra): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains(message), "\(extra): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: path("out.png")))
        }
        let noModel = try restore(["ddnm", "-i", lr, "-o", path("out.png"), "--degradation", "noise"],
                                  environment: ["DIFFUSIONRESTORE_MODELS": path("no-models-here")])
        XCTAssertEqual(noModel.status, 1)
        XCTAssertTrue(noModel.stderr.contains("--model"), noModel.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("out.png")))
    }

    /// Outputs above the native size are restored in windows (USDR): the report names them; HiR runs for
    /// colorization and is not applicable to pooling SR; naive tiling uses non-overlapping tiles.
    func testLargeOutputsAreTiled() throws {
        let (model, config) = try prior()
        let cases: [([String], Int, String, Int)] = [
            (["--degradation", "pool:2", "-i", try photo("lr.png", 16, 16)], 9, "msr", 32),
            (["--degradation", "pool:2", "--tiling", "naive", "-i", try photo("lr2.png", 16, 16)], 4, "naive", 32),
            (["--degradation", "gray", "-i", try photo("gray.png", 32, 32, channels: 1)], 9, "msr", 32),
            (["--degradation", "blur:gauss:3:1", "--simulate", "-i", try photo("sharp.png", 32, 32)], 9, "msr", 32),
        ]
        for (extra, windows, tiling, side) in cases {
            let r = try restore(["ddnm", "-o", path("out.png"), "--model", model, "--model-config", config, "--steps", "2", "--json", "--quiet",
                                 "--overwrite"] + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            XCTAssertEqual(report["windows"] as? Int, windows, "\(extra)")
            XCTAssertEqual(report["tiling"] as? String, tiling, "\(extra)")
            let spec = extra[1]
            XCTAssertEqual(report["hir"] as? String, spec == "gray" ? "÷2" : tiling == "naive" ? "off"
                           : spec.hasPrefix("pool") ? "not applicable (for pooling SR, y already fixes the coarse image)" : "not applicable (\(spec) has no exact coarse form)")
            let image = try ImageReader.read(path: path("out.png"))
            XCTAssertEqual([image.width, image.height], [side, side])
        }
    }

    /// The HiR pyramid through the command line (zero-cost stand-in ε-network of native size 16): a 128² gray
    /// output gets a global pass at ÷8, a level at ÷2, then 225 full-size windows.
    func testVeryLargeOutputsGetAHiRPyramid() throws {
        let r = try restore(["ddnm", "-i", try photo("gray128.png", 128, 128, channels: 1), "-o", path("big.png"), "--degradation", "gray",
                             "--stand-in-network", "16", "--steps", "2", "--json", "--quiet", "--overwrite", "--margin", "2", "--feather", "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(report["hir"] as? String, "÷8 → ÷2")
        XCTAssertEqual([report["seam_margin"] as? Int, report["seam_feather"] as? Int], [2, 2])
        // A margin and feather that do not fit in the 8-px overlap: one line, non-zero, no output.
        let bad = try restore(["ddnm", "-i", path("gray128.png"), "-o", path("bad.png"), "--degradation", "gray",
                               "--stand-in-network", "16", "--steps", "2", "--quiet", "--margin", "4"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("margin"), bad.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("bad.png")))
        XCTAssertEqual(report["windows"] as? Int, 225)
        XCTAssertEqual(report["network_evaluations"] as? Int, 2 * (1 + 49 + 225))
        let image = try ImageReader.read(path: path("big.png"))
        XCTAssertEqual([image.width, image.height], [128, 128])
    }

    /// kill -9 at any moment leaves no partial output and no stray temporary file, and the input untouched.
    func testKillLeavesNoPartialOrTemporaryFiles() throws {
        let (model, config) = try prior()
        let input = try photo("in.png", 32, 32)
        let before = try Data(contentsOf: URL(fileURLWithPath: input))
        let names = Set(try FileManager.default.contentsOfDirectory(atPath: folder.path))
        for delay in [0.05, 0.15, 0.3, 0.5, 0.8] {
            let process = Process()
            process.executableURL = try buildFolder.appendingPathComponent("restore")
            process.arguments = ["ddnm", "-i", input, "-o", path("out.png"), "--degradation", "gray", "--model", model, "--model-config", config,
                                 "--steps", "30", "--quiet", "--side-by-side", path("side.png")]
            process.standardError = FileHandle.nullDevice
            try process.run()
            Thread.sleep(forTimeInterval: delay)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            var now = Set(try FileManager.default.contentsOfDirectory(atPath: folder.path))
            if process.terminationReason == .exit { XCTAssertEqual(process.terminationStatus, 0) }
            // Outputs committed before the kill (or by a finished run) are complete images; nothing else may remain.
            for done in ["out.png", "side.png"] where now.contains(done) {
                XCTAssertNoThrow(try ImageReader.read(path: path(done)), "a committed output is a complete image")
                try FileManager.default.removeItem(atPath: path(done))
            }
            now = Set(try FileManager.default.contentsOfDirectory(atPath: folder.path))
            XCTAssertEqual(now, names, "after kill -9 at \(delay) s")
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: input)), before)
        }
    }

    /// kill -9 exactly where a write is most exposed: the output is complete and synced but has no name yet
    /// (the process pauses there under RESTORE_TEST_PAUSE_BEFORE_COMMIT). The fixed delays above almost never
    /// land there, since a run writes only at its very end. New output: nothing may appear; `--overwrite`: the
    /// old file must be left whole.
    func testKillAtTheCommitPointLeavesNoPartialOutput() throws {
        let (model, config) = try prior()
        let input = try photo("in.png", 16, 16)
        let markers = FileManager.default.temporaryDirectory.appendingPathComponent("restore-markers-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: markers, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: markers) }
        let old = Data("an older output".utf8)
        for overwrite in [false, true] {
            if overwrite { try old.write(to: URL(fileURLWithPath: path("out.png"))) }
            let names = Set(try FileManager.default.contentsOfDirectory(atPath: folder.path))
            let marker = markers.appendingPathComponent("commit-\(overwrite)").path
            let process = Process()
            process.executableURL = try buildFolder.appendingPathComponent("restore")
            process.arguments = ["ddnm", "-i", input, "-o", path("out.png"), "--degradation", "gray", "--model", model, "--model-config", config,
                                 "--steps", "2", "--quiet"] + (overwrite ? ["--overwrite"] : [])
            process.environment = ProcessInfo.processInfo.environment.merging(["RESTORE_TEST_PAUSE_BEFORE_COMMIT": marker]) { $1 }
            process.standardError = FileHandle.nullDevice
            try process.run()
            let deadline = Date().addingTimeInterval(120)
            while !FileManager.default.fileExists(atPath: marker), process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
            XCTAssertTrue(process.isRunning, "the run must pause at the commit point")
            XCTAssertEqual(try String(contentsOfFile: marker, encoding: .utf8), path("out.png"), "paused before committing out.png")
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            XCTAssertEqual(process.terminationReason, .uncaughtSignal)
            XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: folder.path)), names, "overwrite \(overwrite): no new or stray file")
            if overwrite { XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("out.png"))), old, "the old output is left whole") }
        }
    }

    /// The image flags through a real method (they were tested only through the placeholder `blur`): an RGBA
    /// input keeps its alpha (resized with the image for SR), `--bits 16` writes 16-bit PNG, and the iTXt
    /// report decodes to the `--json` line with the schema's fields, the model hash equal to `sha256sum`'s.
    func testAlphaSixteenBitsAndTheReportChunkThroughDDNM() throws {
        let (model, config) = try prior()
        var rgba: [Float] = []
        for y in 0..<8 { for x in 0..<8 { rgba += [Float(x) / 7, Float(y) / 7, 0.5, y < 4 ? 1 : 0.25] } }
        try ImageWriter.write(Image(width: 8, height: 8, channels: 4, pixels: rgba), to: path("rgba.png"))
        let r = try restore(["ddnm", "-i", path("rgba.png"), "-o", path("sr.png"), "--degradation", "pool:2", "--model", model, "--model-config", config,
                             "--steps", "3", "--seed", "5", "--bits", "16", "--json", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let image = try ImageReader.read(path: path("sr.png"))
        XCTAssertEqual([image.width, image.height, image.channels, image.sourceBitDepth], [16, 16, 4, 16])
        for y in 0..<16 { for x in 0..<16 {  // the alpha plane, ×2 nearest or smooth: opaque on top, 0.25 (64/255) at the bottom
            let alpha = image.pixels[(y * 16 + x) * 4 + 3]
            if y < 7 { XCTAssertEqual(alpha, 1, accuracy: 1e-4, "alpha at \(x),\(y)") }
            if y > 8 { XCTAssertEqual(alpha, 64.0 / 255, accuracy: 1e-4, "alpha at \(x),\(y)") }  // 0.25 as the 8-bit input stored it
        } }
        let chunk = try XCTUnwrap(image.text["DiffusionRestore"], "the report chunk")
        XCTAssertEqual(chunk, r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "--json prints the chunk's report")
        // The chunk decodes into the library's one report schema, the same as the --json line.
        let schema = try JSONDecoder().decode(RestorationReport.self, from: Data(chunk.utf8))
        XCTAssertEqual(schema, try JSONDecoder().decode(RestorationReport.self, from: Data(r.stdout.utf8)))
        XCTAssertEqual([schema.steps, schema.windows], [3, 1])
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(chunk.utf8)) as? [String: Any])
        XCTAssertEqual(report["method"] as? String, "ddnm")
        XCTAssertEqual(report["operator"] as? String, "pool:2")
        XCTAssertEqual(report["seed"] as? Int, 5)
        XCTAssertEqual(report["steps"] as? Int, 3)
        XCTAssertEqual(report["network_evaluations"] as? Int, 3)
        for key in ["consistency_rms", "irreducible_rms", "elapsed_s", "seconds_per_step", "eta"] { XCTAssertNotNil(report[key] as? Double, "\(key) is a number: \(report)") }
        let sha = Process()
        sha.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        sha.arguments = [model]
        let pipe = Pipe()
        sha.standardOutput = pipe
        try sha.run()
        let expected = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).prefix(64)
        sha.waitUntilExit()
        XCTAssertEqual(report["model_sha256"] as? String, String(expected))
    }

    /// A folder in, a folder out: every image restored with its own report line, in name order.
    func testFolderInputThroughDDNM() throws {
        let (model, config) = try prior()
        let inputs = folder.appendingPathComponent("in")
        try FileManager.default.createDirectory(at: inputs, withIntermediateDirectories: true)
        for name in ["b.png", "a.png"] { try FileManager.default.moveItem(atPath: try photo(name, 8, 8), toPath: inputs.appendingPathComponent(name).path) }
        let outputs = folder.appendingPathComponent("out").path
        let r = try restore(["ddnm", "-i", inputs.path, "-o", outputs, "--degradation", "pool:2", "--model", model, "--model-config", config,
                             "--steps", "2", "--json", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: outputs).sorted(), ["a.png", "b.png"])
        let lines = r.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 2, r.stdout)
        for (line, name) in zip(lines, ["a.png", "b.png"]) {
            let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            XCTAssertEqual(report["input"] as? String, name, "\(report)")
            XCTAssertEqual(try ImageReader.read(path: outputs + "/" + name).width, 16)
        }
    }

    /// Compressed sensing from a coefficient file (y [M, C] in safetensors): the image size follows from M,
    /// A x̂ = y holds (σy = 0), and malformed files fail in one line with no output.
    func testCompressedSensingFromACoefficientFile() throws {
        let (model, config) = try prior()
        var generator = SplitMix64(seed: 4)
        let y = try Tensor(shape: [64, 3], values: (0..<192).map { _ in Float(generator.nextGaussianPair().0) * 0.5 })
        try SafetensorsWriter.write([(name: "y", tensor: y)], to: path("y.safetensors"))
        let r = try restore(["ddnm", "-i", path("y.safetensors"), "-o", path("cs.png"), "--degradation", "cs-wht:0.25", "--model", model,
                             "--model-config", config, "--steps", "3", "--bits", "16", "--json", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let image = try ImageReader.read(path: path("cs.png"))
        XCTAssertEqual([image.width, image.height, image.channels], [16, 16, 3])
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(report["operator"] as? String, "cs-wht:0.25")
        // ‖A x̂ − y‖ of the clamped image: y drawn at random is not all reachable inside [-1, 1], but the part
        // the method can match it matches (the irreducible part of an orthonormal A is 0).
        let rms = try XCTUnwrap(report["consistency_rms"] as? Double)
        XCTAssertLessThan(rms, 0.5, "\(report)")
        XCTAssertEqual(try XCTUnwrap(report["irreducible_rms"] as? Double), 0, accuracy: 1e-6)
        let wrong = try Tensor(shape: [2, 3, 4, 5, 6], values: [Float](repeating: 0, count: 720))
        try SafetensorsWriter.write([(name: "y", tensor: wrong)], to: path("bad.safetensors"))
        try SafetensorsWriter.write([(name: "z", tensor: y)], to: path("noy.safetensors"))
        for (file, message) in [("bad.safetensors", "must be [M, C]"), ("noy.safetensors", "no tensor named \"y\"")] {
            let bad = try restore(["ddnm", "-i", path(file), "-o", path("bad.png"), "--degradation", "cs-wht:0.25", "--model", model,
                                   "--model-config", config, "--steps", "2", "--quiet"])
            XCTAssertEqual(bad.status, 1, bad.stderr)
            XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
            XCTAssertTrue(bad.stderr.contains(message), bad.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: path("bad.png")))
        }
    }

    func testInpaintingReadsWhiteAsHole() throws {
        let (model, config) = try prior()
        var mask = [Float](repeating: 0, count: 16 * 16)
        for y in 4..<10 { for x in 4..<10 { mask[y * 16 + x] = 1 } }
        try ImageWriter.write(Image(width: 16, height: 16, channels: 1, pixels: mask), to: path("mask.png"))
        let r = try restore(["ddnm", "-i", try photo("holey.png", 16, 16), "-o", path("filled.png"), "--degradation", "mask:\(path("mask.png"))",
                             "--model", model, "--model-config", config, "--steps", "3", "--json", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        // Known pixels are kept exactly (up to 8-bit rounding) by the range–null decomposition.
        let input = try ImageReader.read(path: path("holey.png")), output = try ImageReader.read(path: path("filled.png"))
        for y in 0..<16 { for x in 0..<16 where mask[y * 16 + x] == 0 {
            for c in 0..<3 { XCTAssertEqual(output.pixels[(y * 16 + x) * 3 + c], input.pixels[(y * 16 + x) * 3 + c], accuracy: 1.5 / 255) }
        } }
    }

    /// `restore dreamclean` plumbing on the tiny prior: size kept, evaluations as documented, seeds repeat,
    /// Ours* reports its consistency, a larger image runs through the tiled ε, bad values fail in one line.
    func testDreamCleanRunsBlindAndWithAnOperator() throws {
        let (model, config) = try prior()
        let base = ["dreamclean", "--model", model, "--model-config", config, "--json", "--quiet", "--overwrite", "--tau", "200"]
        var outputs: [[Float]] = []
        let input = try photo("in.png", 16, 16)
        for name in ["a.png", "b.png"] {
            let r = try restore(base + ["-i", input, "-o", path(name), "--steps", "4", "--inversion-steps", "3", "--seed", "5"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            XCTAssertEqual(report["network_evaluations"] as? Int, 3 + 4 * 2)
            XCTAssertEqual(report["method"] as? String, "dreamclean")
            outputs.append(try ImageReader.read(path: path(name)).pixels)
        }
        XCTAssertEqual(outputs[0], outputs[1])
        let star = try restore(base + ["-i", try photo("small.png", 8, 8), "-o", path("star.png"), "--degradation", "pool:2", "--steps", "3", "--inversion-steps", "2"])
        XCTAssertEqual(star.status, 0, star.stderr)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(star.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(report["method"] as? String, "dreamclean*")
        XCTAssertNotNil(report["consistency_rms"])
        XCTAssertEqual(try ImageReader.read(path: path("star.png")).width, 16)
        let large = try restore(base + ["-i", try photo("large.png", 48, 32), "-o", path("large-out.png"), "--steps", "2", "--inversion-steps", "2"])
        XCTAssertEqual(large.status, 0, large.stderr)
        XCTAssertEqual(try ImageReader.read(path: path("large-out.png")).width, 48)
        let bad = try restore(base + ["-i", try photo("in2.png", 16, 16), "-o", path("bad.png"), "--gamma", "1.5"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("γ"), bad.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("bad.png")))
    }
}
