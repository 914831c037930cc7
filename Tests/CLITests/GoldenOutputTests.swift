import Checkpoints
import Engine
import Foundation
import ImageIO
import Restoration
import XCTest

/// The outputs of a fixed set of runs — every method, DDNM untiled and tiled with HiR, DDNM+ on the simplified
/// path, DreamClean untiled and with its tiled ε, ResShift whole and chopped, simulate mode — recorded before
/// the restoration logic moved out of the CLI (the restoration-library issue) and required to stay the same:
/// the decoded 16-bit pixels bit for bit (SHA-256) and the report's fields.
///
/// Sampling is chaotic and oneDNN picks other kernels, with other rounding, on AVX-512, so the runs use
/// `DR_MAX_ISA=avx2` (CPU.limitToAVX2), which should give the same bits on every AVX2 or AVX-512 machine. On
/// the CPU model the goldens were recorded on the comparison is exact; on another model a mismatch of the bits
/// falls back to the stored samples (max |Δ| ≤ 0.05, mean ≤ 1e-3; numeric report fields to 1 %) and says so,
/// since a libm or oneDNN kernel chosen differently there is not a change of ours.
/// Re-record (after a deliberate change of results, saying why in the commit) with
/// `RESTORE_RECORD_GOLDENS=1 swift test --filter GoldenOutputTests`.
final class GoldenOutputTests: RestoreTestCase {
    private static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/golden-outputs.json")
    /// Report fields that measure time or name the build, not the result.
    private static let volatile: Set<String> = ["elapsed_s", "seconds_per_step", "seconds_per_evaluation", "version", "seconds", "output", "cpu", "threads"]
    /// Report fields added after the recording (they describe the run, not the result): required, compared below.
    private static let added: Set<String> = ["output", "input_size", "output_size", "threads", "cpu", "command"]

    private struct Run { let name: String; let arguments: [String] }

    private func photo(_ name: String, _ width: Int, _ height: Int, channels: Int = 3) throws -> String {
        try photo(name, width, height, channels: channels, pattern: .ramp)
    }

    /// The tiny random ADM prior of the DDNM goldens (next to this bundle) and its configuration.
    private func prior() throws -> [String] {
        let build = try buildFolder
        guard let bundle = try FileManager.default.contentsOfDirectory(atPath: build.path).first(where: { $0.hasSuffix("MethodsTests.resources") }) else {
            throw FixtureMissing("MethodsTests resources not built")
        }
        let fixtures = build.appendingPathComponent(bundle).appendingPathComponent("Fixtures")
        let trajectories = try Checkpoint(path: fixtures.appendingPathComponent("trajectories.safetensors").path)
        try Data((trajectories.metadata["model_config"] ?? "{}").utf8).write(to: URL(fileURLWithPath: path("tiny.json")))
        return ["--model", fixtures.appendingPathComponent("tiny_adm16.pt").path, "--model-config", path("tiny.json")]
    }

    private func runs() throws -> [Run] {
        let tiny = try prior()
        let common = ["--json", "--quiet", "--bits", "16", "--seed", "11"]
        return [
            Run(name: "ddnm-sr-untiled", arguments: ["ddnm", "-i", try photo("lr8.png", 8, 8), "--degradation", "pool:2", "--steps", "4"] + tiny),
            Run(name: "ddnm-gray-tiled-hir", arguments: ["ddnm", "-i", try photo("gray32.png", 32, 32, channels: 1), "--degradation", "gray", "--steps", "3"] + tiny),
            Run(name: "ddnm-sr-tiled-simulate", arguments: ["ddnm", "--simulate", "-i", try photo("clean32.png", 32, 32), "--degradation", "pool:2",
                                                           "--steps", "3"] + tiny),
            Run(name: "ddnm-plus-simplified", arguments: ["ddnm", "-i", try photo("lr8b.png", 8, 8), "--degradation", "pool:2", "--sigma-y", "0.05",
                                                         "--simplified", "--steps", "4", "--travel", "2,2"] + tiny),
            Run(name: "ddnm-inpaint-blur-tiled", arguments: ["ddnm", "--simulate", "-i", try photo("sharp32.png", 32, 32), "--degradation", "blur:gauss:3:1",
                                                            "--steps", "2"] + tiny),
            Run(name: "dreamclean-blind", arguments: ["dreamclean", "-i", try photo("in16.png", 16, 16), "--steps", "3", "--inversion-steps", "2",
                                                     "--tau", "200"] + tiny),
            Run(name: "dreamclean-tiled", arguments: ["dreamclean", "-i", try photo("in48.png", 48, 32), "--steps", "2", "--inversion-steps", "2",
                                                     "--tau", "200"] + tiny),
            Run(name: "dreamclean-star", arguments: ["dreamclean", "-i", try photo("in8.png", 8, 8), "--degradation", "pool:2", "--steps", "2",
                                                    "--inversion-steps", "2", "--tau", "200"] + tiny),
            Run(name: "resshift-whole", arguments: ["resshift", "-i", try photo("lr12.png", 12, 10)]),
            Run(name: "resshift-chopped", arguments: ["resshift", "-i", try photo("lr24.png", 24, 24), "--chop-size", "16", "--chop-stride", "8",
                                                     "--blend", "feathered"]),
            Run(name: "resshift-simulate", arguments: ["resshift", "--simulate", "-i", try photo("clean64.png", 64, 48), "--average", "2"]),
            Run(name: "diffir-whole", arguments: ["diffir", "-i", try photo("lr20.png", 20, 12), "--tile", "0"]),
            Run(name: "diffir-tiled-simulate", arguments: ["diffir", "--simulate", "-i", try photo("clean192.png", 192, 160), "--tile", "32", "--overlap", "8"]),
        ].map { Run(name: $0.name, arguments: $0.arguments + ["-o", path("\($0.name).png")] + common) }
    }

    private static func sha256(_ bytes: [UInt8]) throws -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("golden-\(UUID().uuidString)")
        try Data(bytes).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        return try SHA256.hex(ofFile: file.path)
    }

    /// What a run produced: the output's shape, the SHA-256 of its 16-bit samples, and its report.
    private func outcome(_ run: Run) throws -> [String: Any] {
        let r = try restore(run.arguments, environment: ["DR_MAX_ISA": "avx2", "OMP_NUM_THREADS": "2"])
        XCTAssertEqual(r.status, 0, "\(run.name): \(r.stderr)")
        let image = try ImageReader.read(path: path("\(run.name).png"))
        let samples = image.pixels.flatMap { value -> [UInt8] in
            let q = UInt16((value * 65535).rounded())
            return [UInt8(q >> 8), UInt8(q & 0xFF)]
        }
        var report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.split(separator: "\n").first.map(String.init)?.utf8 ?? "".utf8))
            as? [String: Any], "\(run.name): --json report")
        for key in Self.added where key != "output" || run.arguments.contains("-o") {
            XCTAssertNotNil(report[key], "\(run.name): report field \(key)")
        }
        XCTAssertEqual(report["output"] as? String, path("\(run.name).png"), run.name)
        XCTAssertEqual(report["output_size"] as? String, "\(image.width)×\(image.height)", run.name)
        XCTAssertEqual(report["command"] as? String, run.arguments.first, run.name)
        for key in Self.volatile.union(Self.added) { report[key] = nil }
        return ["shape": [image.height, image.width, image.channels], "bits": image.sourceBitDepth, "pixels_sha256": try Self.sha256(samples),
                "samples": Data(samples).base64EncodedString(), "report": report]
    }

    func testOutputsStayTheSameAsRecorded() throws {
        let runs = try runs()
        var outcomes: [String: Any] = [:]
        for run in runs { outcomes[run.name] = try outcome(run) }
        if ProcessInfo.processInfo.environment["RESTORE_RECORD_GOLDENS"] == "1" {
            let document: [String: Any] = ["isa": "avx2 (DR_MAX_ISA=avx2)", "recorded_on": CPU.modelDescription, "runs": outcomes,
                                           "note": "GoldenOutputTests: decoded 16-bit samples' SHA-256 and report per run; recorded with RESTORE_RECORD_GOLDENS=1"]
            try FileManager.default.createDirectory(at: Self.fixture.deletingLastPathComponent(), withIntermediateDirectories: true)
            try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys]).write(to: Self.fixture)
            throw XCTSkip("recorded \(runs.count) runs to \(Self.fixture.path)")
        }
        let document = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixture)) as? [String: Any])
        let recorded = try XCTUnwrap(document["runs"] as? [String: [String: Any]])
        XCTAssertEqual(Set(recorded.keys), Set(runs.map(\.name)), "the recorded runs")
        let sameModel = document["recorded_on"] as? String == CPU.modelDescription
        var approximate: [String] = []
        for run in runs {
            let got = try XCTUnwrap(outcomes[run.name] as? [String: Any]), want = try XCTUnwrap(recorded[run.name])
            XCTAssertEqual(got["shape"] as? [Int], want["shape"] as? [Int], run.name)
            XCTAssertEqual(got["bits"] as? Int, want["bits"] as? Int, run.name)
            let gotReport = try XCTUnwrap(got["report"] as? [String: Any]), wantReport = try XCTUnwrap(want["report"] as? [String: Any])
            XCTAssertEqual(Set(gotReport.keys), Set(wantReport.keys), "\(run.name): report fields")
            let identical = got["pixels_sha256"] as? String == want["pixels_sha256"] as? String
            if identical || sameModel {
                XCTAssertTrue(identical, "\(run.name): pixels differ from the recording on this CPU model")
                for (key, value) in wantReport { XCTAssertEqual(gotReport[key] as? NSObject, value as? NSObject, "\(run.name): \(key)") }
                continue
            }
            approximate.append(run.name)
            func values(_ outcome: [String: Any]) throws -> [Double] {
                let bytes = [UInt8](try XCTUnwrap(Data(base64Encoded: try XCTUnwrap(outcome["samples"] as? String))))
                return stride(from: 0, to: bytes.count - 1, by: 2).map { Double(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1])) / 65535 }
            }
            let (a, b) = (try values(got), try values(want))
            XCTAssertEqual(a.count, b.count, run.name)
            let differences = zip(a, b).map { abs($0 - $1) }
            XCTAssertLessThanOrEqual(differences.max() ?? .infinity, 0.05, "\(run.name): samples far from the recording")
            XCTAssertLessThanOrEqual(differences.reduce(0, +) / Double(max(differences.count, 1)), 1e-3, "\(run.name): mean |Δ|")
            for (key, value) in wantReport {
                if let number = value as? Double, let ours = gotReport[key] as? Double, !(value is Bool) {
                    XCTAssertEqual(ours, number, accuracy: 0.01 * max(abs(number), 1e-3), "\(run.name): \(key)")
                } else {
                    XCTAssertEqual(gotReport[key] as? NSObject, value as? NSObject, "\(run.name): \(key)")
                }
            }
        }
        if !approximate.isEmpty {
            print("GoldenOutputTests: recorded on \(document["recorded_on"] ?? "?"), this CPU is \(CPU.modelDescription); bits differ for \(approximate), compared within tolerance")
        }
    }
}
