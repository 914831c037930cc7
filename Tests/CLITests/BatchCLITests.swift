import Foundation
import ImageIO
import XCTest

/// `restore batch`, the contract every engine drives (Slurm arrays: Tests/slurm/slurm_test.sh): shards split the
/// manifest deterministically and together give what one process gives, sidecars mark items done, skips need the
/// same options, failures are retried then listed, the exit status says whether anything is missing.
final class BatchCLITests: RestoreTestCase {
    private func photo(_ name: String, seed: UInt64, side: Int = 32) throws -> String {
        var state = seed, pixels: [Float] = []
        for y in 0..<side { for x in 0..<side { for c in 0..<3 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            pixels.append(min(1, max(0, 0.5 + 0.3 * sin(Float(x * 3 + y * 2 + c * 5) / 7) + Float(state >> 40) / Float(1 << 26))))
        } } }
        try ImageWriter.write(Image(width: side, height: side, channels: 3, pixels: pixels), to: path(name))
        return path(name)
    }

    private let method = ["--", "ddnm", "--degradation", "gray", "--steps", "3"]

    private func sidecar(_ output: String) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: output + ".json"))) as? [String: Any])
    }

    private var manifests = 0

    /// A manifest file of `lines` (list.txt, then list2.txt, …).
    private func manifest(_ lines: [String]) throws -> String {
        manifests += 1
        let name = manifests == 1 ? "list.txt" : "list\(manifests).txt"
        try (lines.joined(separator: "\n") + "\n").write(toFile: path(name), atomically: true, encoding: .utf8)
        return path(name)
    }

    func testShardsTogetherGiveTheOneProcessResultAndResume() throws {
        for i in 0..<3 { _ = try photo("p\(i).png", seed: UInt64(i)) }
        let list = try manifest(["# three photos, one twice with its own seed and steps", "p0.png", "p1.png\tseed=7", "p2.png",
                                 "p0.png output=p0-again.png seed=9 steps=2", #"{"input": "p1.png", "output": "p1-json.png", "seed": 3}"#])
        let whole = try restore(["batch", "--manifest", list, "-o", path("whole"), "--quiet"] + method)
        XCTAssertEqual(whole.status, 0, whole.stderr)
        for shard in 0..<2 {
            let r = try restore(["batch", "--manifest", list, "-o", path("sharded"), "--shard", "\(shard)/2", "--quiet"] + method)
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let names = ["p0.png", "p1.png", "p2.png", "p0-again.png", "p1-json.png"]
        for name in names {
            let a = try sidecar(path("whole/" + name)), b = try sidecar(path("sharded/" + name))
            XCTAssertEqual(a["pixels_sha256"] as? String, b["pixels_sha256"] as? String, name)
            XCTAssertEqual(a["options_hash"] as? String, b["options_hash"] as? String, name)
            XCTAssertEqual((b["run"] as? [String: Any])?["shard"] as? String, names.firstIndex(of: name)! % 2 == 0 ? "0/2" : "1/2", name)
            for key in ["tool", "version", "input_sha256", "model_sha256", "seed", "job", "report"] { XCTAssertNotNil(b[key], "\(name): \(key)") }
        }
        XCTAssertEqual(try sidecar(path("whole/p1.png"))["seed"] as? Int, 7)
        XCTAssertEqual(((try sidecar(path("whole/p0-again.png"))["report"] as? [String: Any])?["steps"]) as? Int, 2, "the line's own options")
        XCTAssertNotEqual(try sidecar(path("whole/p0.png"))["pixels_sha256"] as? String, try sidecar(path("whole/p0-again.png"))["pixels_sha256"] as? String)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: path("sharded")).sorted(), (names + names.map { $0 + ".json" }).sorted(),
                       "outputs and sidecars only: no temporary files, no failure lists")

        // Resume: a lost output and a sidecar of other options are redone, the rest skipped (not rewritten).
        try FileManager.default.removeItem(atPath: path("sharded/p2.png"))
        let before = try FileManager.default.attributesOfItem(atPath: path("sharded/p0.png"))[.modificationDate] as? Date
        let again = try restore(["batch", "--manifest", list, "-o", path("sharded"), "--skip-existing"] + method)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("1 restored, 4 skipped"), again.stderr)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: path("sharded/p0.png"))[.modificationDate] as? Date, before)
        let other = try restore(["batch", "--manifest", list, "-o", path("sharded"), "--skip-existing", "--quiet", "--", "ddnm", "--degradation", "gray", "--steps", "4"])
        XCTAssertEqual(other.status, 0, other.stderr)
        XCTAssertEqual(((try sidecar(path("sharded/p0.png"))["report"] as? [String: Any])?["steps"]) as? Int, 4, "other options: redone")

        // The plan, with the cost measured on the items done.
        let plan = try restore(["batch", "--manifest", list, "-o", path("sharded"), "--shard", "0/3", "--dry-run"] + method)
        XCTAssertEqual(plan.status, 0, plan.stderr)
        XCTAssertTrue(plan.stdout.contains("5 items, 1 done"), plan.stdout)  // steps 3 ≠ the steps 4 just run, except p0-again's own steps 2
        XCTAssertTrue(plan.stdout.contains("shard 2/3: 1 item, 1 to do"), plan.stdout)
        let measured = try restore(["batch", "--manifest", list, "-o", path("whole"), "--shard", "0/2", "--dry-run"] + method)
        XCTAssertTrue(measured.stdout.contains("5 items, 5 done"), measured.stdout)
        XCTAssertTrue(measured.stdout.contains("measured on 5 done items"), measured.stdout)
    }

    func testFailuresAreRetriedListedAndChecked() throws {
        _ = try photo("good.png", seed: 1)
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: path("bad.png")))
        let list = try manifest(["good.png", "bad.png"])
        let r = try restore(["batch", "--manifest", list, "-o", path("out"), "--shard", "1/2", "--retries", "2"] + method)
        XCTAssertEqual(r.status, 1, "a failed item fails the shard")
        XCTAssertTrue(r.stderr.contains("retrying") && r.stderr.contains("restore: error: ") && r.stderr.contains("bad.png"), r.stderr)
        let failures = try String(contentsOfFile: path("out/failures-shard-1-of-2.jsonl"), encoding: .utf8)
        let line = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(failures.split(separator: "\n")[0].utf8)) as? [String: Any])
        XCTAssertEqual(line["attempts"] as? Int, 3)
        XCTAssertTrue((line["input"] as? String)?.hasSuffix("bad.png") ?? false)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("out/bad.png")), "no output for a failed item")
        // The check: shard 0 never ran, shard 1 failed; the lists are merged.
        let check = try restore(["batch", "--manifest", list, "-o", path("out"), "--shard", "0/2", "--check"] + method)
        XCTAssertEqual(check.status, 1)
        XCTAssertTrue(check.stdout.contains("0 of 2 items done, 2 missing, 1 failure line"), check.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path("out/failures.jsonl")))
        XCTAssertEqual(try restore(["batch", "--manifest", list, "-o", path("out"), "--shard", "0/2", "--quiet"] + method).status, 0)
        XCTAssertTrue(try restore(["batch", "--manifest", list, "-o", path("out"), "--shard", "0/2", "--check"] + method).stdout.contains("1 of 2 items done"))
    }

    func testBadBatchesAreOneLineErrorsBeforeAnyWork() throws {
        _ = try photo("a.png", seed: 1)
        let cases: [([String], String)] = [
            (["batch", "--manifest", try manifest(["a.png", "a.png"]), "-o", path("o")] + method, "two manifest lines write"),
            (["batch", "--manifest", try manifest(["a.png\tseed=-1"]), "-o", path("o")] + method, "list2.txt:1: seed must be"),
            (["batch", "--manifest", try manifest(["a.png output=../a.png"]), "-o", path("o")] + method, "would replace an input"),
            (["batch", "--manifest", try manifest(["a.png output=../m.png"]), "-o", path("o"), "--", "inpaint", "--mask", try photo("m.png", seed: 2)],
             "would replace an input or a file the job reads"),
            (["batch", "--manifest", try manifest(["a.png steps=\"x\""]), "-o", path("o")] + method, "options do not fit ddnm"),
            (["batch", "--manifest", try manifest(["a.png step=20"]), "-o", path("o")] + method, "ddnm has no option step ("),
            (["batch", "--manifest", try manifest(["a.png"]), "-o", path("o"), "--", "models"], "after -- comes a restoring subcommand"),
            (["batch", "--manifest", try manifest(["a.png"]), "-o", path("o"), "--shard", "2/2"] + method, "0 ≤ i < N"),
            (["batch", "--manifest", path("missing.txt"), "-o", path("o")] + method, "cannot read the manifest"),
            (["batch", "--manifest", try manifest(["a.png"]), "-o", path("o")], "give the restoring subcommand after --"),
        ]
        for (arguments, message) in cases {
            let r = try restore(arguments)
            XCTAssertNotEqual(r.status, 0, message)
            XCTAssertTrue(r.stderr.contains(message), "\(message): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("o/a.png")))
    }

    /// One image across workers: the plan, the stages in separate processes (a wave split in two parts, run in
    /// reverse order), then the stitch give the one-process image bit for bit; stages refuse another job's
    /// plan and a stage whose predecessors have not finished.
    func testSpreadStagesGiveTheOneProcessImage() throws {
        let input = try photo("big.png", seed: 4, side: 64)
        let base = ["ddnm", "-i", input, "--degradation", "gray", "--window", "32", "--steps", "3", "--quiet"]
        XCTAssertEqual(try restore(base + ["-o", path("one.png")]).status, 0)
        let folder = path("spread")
        let job = base + ["-o", path("spread.png")]  // every stage runs the same command; only the stitch writes it
        let planned = try restore(job + ["--spread", folder, "--plan"])
        XCTAssertEqual(planned.status, 0, planned.stderr)
        let plan = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/plan.json"))) as? [String: Any])
        let stages = try XCTUnwrap(plan["stages"] as? [String]), waves = try XCTUnwrap(plan["waves"] as? [[Int]])
        XCTAssertEqual(stages.first, "hierarchy", "the HiR pass first: \(stages)")
        XCTAssertGreaterThan(waves.map(\.count).max() ?? 0, 1, "a wave of several windows: \(waves)")
        XCTAssertEqual(waves.flatMap { $0 }.sorted(), Array(0..<waves.flatMap { $0 }.count))

        let early = try restore(job + ["--spread", folder, "--stage", "2"])
        XCTAssertNotEqual(early.status, 0, "a wave before its predecessors")
        XCTAssertTrue(early.stderr.contains("an earlier stage has not finished"), early.stderr)
        let other = try restore(job.map { $0 == "3" ? "4" : $0 } + ["--spread", folder, "--stage", "0"])
        XCTAssertTrue(other.stderr.contains("made for another input, options or seed"), other.stderr)

        for stage in stages.indices {
            for part in [1, 0] {
                let r = try restore(job + ["--spread", folder, "--stage", "\(stage)", "--part", "\(part)/2"])
                XCTAssertEqual(r.status, 0, "stage \(stage) part \(part): \(r.stderr)")
            }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder + "/windows").count, waves.flatMap { $0 }.count)
        let stitched = try restore(job + ["--spread", folder, "--stitch"])
        XCTAssertEqual(stitched.status, 0, stitched.stderr)
        XCTAssertEqual(try restore(["info", "--pixels-sha256", path("spread.png")]).stdout,
                       try restore(["info", "--pixels-sha256", path("one.png")]).stdout, "the spread image differs from the one-process image")
    }
}
