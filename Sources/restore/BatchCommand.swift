import ArgumentParser
import Engine
import Foundation
import ImageIO
import Restoration

/// A restoring subcommand whose flags make a job for any input (the batch contract reuses them).
protocol JobMaking: ParsableCommand {
    func job(input: String, sample: Int) throws -> RestorationJob
    /// Files the command reads besides its inputs (masks, kernels), never to be replaced.
    var protectedPaths: [String] { get }
}

extension JobMaking {
    var protectedPaths: [String] { [] }
}

/// `restore batch`: the batch contract (README, "Many images, big images").
struct BatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Restore a manifest or folder as a sharded, resumable batch (one process, a Slurm array task, GNU parallel, …).",
        discussion: """
            The words after -- are a restoring subcommand and its options, without -i/-o: \
            restore batch --manifest list.txt -o out/ --shard 3/16 --skip-existing -- upscale -s 4. \
            Shard i of N takes the manifest lines p with p mod N = i. Each output is written atomically, then its \
            sidecar <output>.json (versions, SHA-256 of model, input and pixels, job, seed, options hash, report) as \
            the done marker; --skip-existing skips an item whose sidecar has the same options hash. Failures are \
            retried, then listed in failures.jsonl (failures-shard-i-of-N.jsonl per shard; --check merges them). \
            Status 0 when every item of the shard is done, 1 otherwise. Tools/slurm/ has the job-array templates.
            """)

    @Option(help: "A manifest: one input per line, optional key=value fields (seed=N, output=NAME, method options such as steps=50), or JSON lines.")
    var manifest: String?

    @Option(name: [.short, .long], help: "A folder of images instead of a manifest.")
    var input: String?

    @Option(name: [.short, .long], help: "The output folder (created if missing).")
    var output: String

    @Option(help: "This process's shard, i/N (0-based).")
    var shard: String = "0/1"

    @Flag(help: "Skip items whose sidecar marks them done with the same options (resumes a killed or partial run).")
    var skipExisting = false

    @Option(help: "Retries of a failing item within this process before it is listed as failed.")
    var retries: Int = 1

    @Flag(help: "Print the plan (items per shard, what is done, estimated time) and restore nothing.")
    var dryRun = false

    @Flag(help: "Check that every item of every shard is done and merge the shards' failure lists into failures.jsonl (after an array; status 1 if anything is missing).")
    var check = false

    @Option(help: "PNG bit depth of the outputs: 8 or 16 (default: the input's).")
    var bits: Int?

    @Option(help: "Output format and extension: png, jpg or webp.")
    var format: String?

    @Option(help: "JPEG and WebP quality, 1–100.")
    var quality: Int = 95

    @Option(name: [.customShort("j"), .long], help: "Threads (default: OMP_NUM_THREADS, else every core this process may use; under Slurm match --cpus-per-task).")
    var threads: Int?

    @Flag(help: "No progress on stderr.")
    var quiet = false

    @Argument(parsing: .postTerminator, help: "-- then the restoring subcommand and its options (upscale -s 4, ddnm --degradation pool:2, …).")
    var command: [String] = []

    func validate() throws {
        guard (manifest == nil) != (input == nil) else { throw ValidationError("give --manifest FILE or --input FOLDER") }
        guard (0...100).contains(retries) else { throw ValidationError("--retries must be between 0 and 100") }
        do { _ = try Shard(parsing: shard) } catch { throw ValidationError("\(error)") }
        if let threads, !(1...1024).contains(threads) { throw ValidationError("-j/--threads must be between 1 and 1024") }
        guard !command.isEmpty else { throw ValidationError("give the restoring subcommand after --, e.g. -- upscale -s 4") }
    }

    /// The batch with every item's job from the subcommand's flags.
    func makeBatch() throws -> ShardedBatch {
        let entries = try manifest.map(Manifest.read) ?? Manifest.folder(input!)
        let notRestoring = RestorationError("after -- comes a restoring subcommand (upscale, denoise, dejpeg, deblur, inpaint, colorize, ddnm, dreamclean, resshift, diffir), not \(command[0])")
        let parsed: ParsableCommand
        do {
            parsed = try Restore.parseAsRoot(command + ["-i", entries[0].input, "-o", output])
        } catch {
            if let other = try? Restore.parseAsRoot(command), !(other is any JobMaking) { throw notRestoring }
            throw RestorationError("the subcommand after --: \(Restore.message(for: error).split(separator: "\n").first ?? "")")
        }
        guard let maker = parsed as? any JobMaking else { throw notRestoring }
        let settings = OutputSettings(format: format, bits: bits, quality: quality, overwrite: true)
        return try ShardedBatch(entries: entries, outputFolder: output, settings: settings, protecting: maker.protectedPaths) {
            try maker.job(input: $0, sample: 0)
        }
    }

    func run() throws {
        if let threads { Parallel.setThreadCount(threads) }
        let shard = try Shard(parsing: shard)
        let batch = try makeBatch()
        if check {
            let (missing, failures) = try batch.check(shards: shard.count)
            print("\(batch.items.count - missing.count) of \(items(batch.items.count)) done, \(missing.count) missing, \(failures) failure line\(failures == 1 ? "" : "s") in failures.jsonl")
            for item in missing.prefix(20) { print("missing: \(item.input) → \(item.output)") }
            if !missing.isEmpty { throw ExitCode(1) }
            return
        }
        if dryRun { return try plan(batch, shard: shard) }
        let events = EventPrinter(quiet: quiet)
        let mine = batch.items(in: shard)
        events.note("shard \(shard): \(mine.count) of \(items(batch.items.count)) → \(output)")
        let environment = ProcessInfo.processInfo.environment
        var facts = ["host": ProcessInfo.processInfo.hostName, "pid": "\(getpid())"]
        for key in ["SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT"] { facts[key.lowercased()] = environment[key] }
        let summary = try RestorationRunner().run(batch, shard: shard, skipExisting: skipExisting, retries: retries, runFacts: facts,
                                                  context: events.context) { event in
            events.finish()
            switch event {
            case .done(let item, let result, _): events.summary(result, input: item.input, output: item.output)
            case .skipped(let item): events.note("skipped \(item.input): done (\(item.sidecar))")
            case .retrying(let item, let error, let attempt): events.note("retrying \(item.input) after attempt \(attempt): \(error)")
            case .failed(let item, let error):
                let message = "\(error)"  // most errors name the file already
                FileHandle.standardError.write(Data("restore: error: \(message.contains(item.input) ? "" : "\(item.input): ")\(message)\n".utf8))
            }
        }
        events.note("shard \(shard): \(summary.line)")
        if summary.failed > 0 { throw ExitCode(1) }
    }

    /// The plan: items per shard and what is done; the time left from the measured cost of the items done
    /// (their reports' seconds per input megapixel), when there are any.
    func plan(_ batch: ShardedBatch, shard: Shard) throws {
        var secondsPerMegapixel: [Double] = []
        var done = Set<Int>()
        for item in batch.items {
            guard let sidecar = batch.doneSidecar(item) else { continue }
            done.insert(item.position)
            if let seconds = sidecar.report?.elapsedSeconds, let megapixels = Self.inputMegapixels(item.input), megapixels > 0 {
                secondsPerMegapixel.append(seconds / megapixels)
            }
        }
        let cost = secondsPerMegapixel.isEmpty ? nil : secondsPerMegapixel.reduce(0, +) / Double(secondsPerMegapixel.count)
        print("\(items(batch.items.count)), \(done.count) done; \(shard.count) shard\(shard.count == 1 ? "" : "s") → \(output)")
        for index in 0..<shard.count {
            let items = batch.items(in: try Shard(index: index, count: shard.count))
            let pending = items.filter { !done.contains($0.position) }
            var line = "shard \(index)/\(shard.count): \(self.items(items.count)), \(pending.count) to do"
            if let cost {
                let megapixels = pending.reduce(0.0) { $0 + (Self.inputMegapixels($1.input) ?? 0) }
                line += String(format: ", about %@ (%.3f input MP at %.0f s per input MP, measured on %d done items)",
                               ProgressLine.clock(megapixels * cost), megapixels, cost, secondsPerMegapixel.count)
            }
            print(line)
        }
        if cost == nil { print("no item is done yet, so no measured cost: run one item first (e.g. --shard 0/\(batch.items.count)) for an estimate") }
    }

    static func inputMegapixels(_ path: String) -> Double? {
        ImageReader.dimensions(path: path).map { Double($0.width * $0.height) / 1e6 }
    }

    /// "1 item", "3 items".
    private func items(_ count: Int) -> String { "\(count) item\(count == 1 ? "" : "s")" }
}
