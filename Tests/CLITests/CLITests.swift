import Foundation
import ImageIO
import Restoration
import XCTest

/// The `restore` binary, run as a user runs it: bad input gives one line on stderr, a non-zero exit and
/// no output file; inputs are never written. Run through `resshift` on the bundled ×4 model (the fastest
/// method; the plumbing is the same for every method).
final class CLITests: RestoreTestCase {
    /// A small RGB test card written as PNG.
    private func makePhoto(_ name: String, width: Int = 24, height: Int = 16, channels: Int = 3) throws -> String {
        var pixels: [Float] = []
        for y in 0..<height { for x in 0..<width { for c in 0..<channels {
            pixels.append(Float((x * 7 + y * 13 + c * 50) % 256) / 255)
        } } }
        let p = path(name)
        try ImageWriter.write(Image(width: width, height: height, channels: channels, pixels: pixels), to: p)
        return p
    }

    private func assertCleanFailure(_ r: Result, mentions: String, noFileAt output: String,
                                    file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, 1, "exit status; stderr: \(r.stderr)", file: file, line: line)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "one line on stderr, got: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.hasPrefix("restore: error: "), r.stderr, file: file, line: line)
        XCTAssertTrue(r.stderr.contains(mentions), "\(r.stderr) should mention \(mentions)", file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: output), "partial output left at \(output)", file: file, line: line)
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: folder.path))?.filter { $0.hasPrefix(".") } ?? []
        XCTAssertEqual(leftovers, [], "temporary files left behind", file: file, line: line)
    }

    func testHelpListsTheCommands() throws {
        let r = try restore(["--help"])
        XCTAssertEqual(r.status, 0)
        let commands = r.stdout.split(separator: "\n").compactMap { $0.hasPrefix("  ") ? $0.split(separator: " ").first.map(String.init) : nil }
        for command in ["upscale", "denoise", "dejpeg", "deblur", "inpaint", "colorize", "models", "ddnm", "dreamclean", "resshift", "inspect", "convert",
                        "info"] {
            XCTAssertTrue(commands.contains(command), "\(command): \(r.stdout)")
        }
        XCTAssertFalse(commands.contains("blur"), "the placeholder command is gone")
        // The task words a newcomer looks for.
        for word in ["JPEG", "noise", "bigger", "holes", "grayscale", "blurred"] { XCTAssertTrue(r.stdout.contains(word), "\(word): \(r.stdout)") }
    }

    /// libgomp's spinning is set by the program itself (a re-exec at start), unless the environment decides.
    func testTheProgramSetsTheSharedCPUWaitPolicyUnlessTheEnvironmentDoes() throws {
        func spin(_ environment: [String: String]) throws -> String? {
            var clean = ProcessInfo.processInfo.environment
            for key in ["GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "DR_OMP_POLICY", "DR_OMP_REEXEC"] { clean[key] = nil }
            let process = Process()
            process.executableURL = try buildFolder.appendingPathComponent("restore")
            process.arguments = ["info"]
            process.environment = clean.merging(environment) { $1 }
            let out = Pipe()
            process.standardOutput = out
            try process.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return text.range(of: #"GOMP_SPINCOUNT=(\w+)"#, options: .regularExpression).map { String(text[$0].dropFirst("GOMP_SPINCOUNT=".count)) }
        }
        XCTAssertEqual(try spin([:]), RestorationLibrary.spinCount)
        XCTAssertEqual(try spin(["GOMP_SPINCOUNT": "777"]), "777")
        XCTAssertEqual(try spin(["DR_OMP_POLICY": "off"]), "unset")
        XCTAssertEqual(try spin(["OMP_WAIT_POLICY": "PASSIVE"]), "unset")
    }

    func testMissingInputFailsCleanly() throws {
        let output = path("out.png")
        assertCleanFailure(try restore(["resshift", "-i", path("nope.png"), "-o", output, "--quiet"]), mentions: "nope.png", noFileAt: output)
    }

    func testTruncatedInputFailsCleanly() throws {
        let input = try makePhoto("in.png")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: input))
        let cut = path("cut.png")
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: cut))
        let output = path("out.png")
        assertCleanFailure(try restore(["resshift", "-i", cut, "-o", output, "--quiet"]), mentions: "cut.png", noFileAt: output)
    }

    func testCorruptInputFailsCleanly() throws {
        let input = try makePhoto("in.png")
        var bytes = try Data(contentsOf: URL(fileURLWithPath: input))
        for i in stride(from: 40, to: bytes.count - 12, by: 3) { bytes[i] ^= 0x5A }
        let bad = path("bad.png")
        try bytes.write(to: URL(fileURLWithPath: bad))
        let output = path("out.png")
        assertCleanFailure(try restore(["resshift", "-i", bad, "-o", output, "--quiet"]), mentions: "bad.png", noFileAt: output)
    }

    func testUnsupportedFormatFailsCleanly() throws {
        let text = path("notes.png")
        try "not an image".write(toFile: text, atomically: true, encoding: .utf8)
        let output = path("out.png")
        assertCleanFailure(try restore(["resshift", "-i", text, "-o", output, "--quiet"]), mentions: "notes.png", noFileAt: output)
    }

    func testImageAbovePixelLimitIsRefused() throws {
        let input = try makePhoto("in.png")
        let output = path("out.png")
        assertCleanFailure(try restore(["resshift", "-i", input, "-o", output, "--max-pixels", "100", "--quiet"]), mentions: "100", noFileAt: output)
    }

    func testExistingOutputIsKeptWithoutOverwrite() throws {
        let input = try makePhoto("in.png")
        let output = path("out.png")
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: output))
        let r = try restore(["resshift", "-i", input, "-o", output])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("--overwrite"), r.stderr)
        XCTAssertEqual(try String(contentsOfFile: output, encoding: .utf8), "keep me")
        XCTAssertEqual(try restore(["resshift", "-i", input, "-o", output, "--overwrite", "--quiet"]).status, 0)
        XCTAssertNoThrow(try ImageReader.read(path: output))
    }

    func testInputIsNeverOverwritten() throws {
        let input = try makePhoto("in.png")
        let before = try Data(contentsOf: URL(fileURLWithPath: input))
        let r = try restore(["resshift", "-i", input, "-o", input, "--overwrite"])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: input)), before)
    }

    func testBadUsageExitsWithStatusTwo() throws {
        let input = try makePhoto("in.png")
        XCTAssertEqual(try restore(["resshift", "-i", input, "-o", path("o.png"), "--bits", "12"]).status, 2)
        XCTAssertEqual(try restore(["resshift", "-i", input, "-o", path("o.png"), "--samples", "0"]).status, 2)
        XCTAssertEqual(try restore(["ddnm", "-i", input, "-o", path("o.png"), "--degradation", "pool:2", "--eta", "2"]).status, 2)
        XCTAssertEqual(try restore(["no-such-command"]).status, 2)
    }

    func testFolderInputWritesEveryImage() throws {
        let inputs = folder.appendingPathComponent("in")
        try FileManager.default.createDirectory(at: inputs, withIntermediateDirectories: true)
        for name in ["b.png", "a.png"] {
            let p = try makePhoto(name)
            try FileManager.default.moveItem(atPath: p, toPath: inputs.appendingPathComponent(name).path)
        }
        let outputs = folder.appendingPathComponent("out").path
        let r = try restore(["resshift", "-i", inputs.path, "-o", outputs, "--format", "jpg", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: outputs).sorted(), ["a.jpg", "b.jpg"])
    }
}
