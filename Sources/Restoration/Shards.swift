import Foundation
import ImageIO

/// Shard `index` of `count` (written `i/N`, 0-based): the manifest's items at positions p with p mod N = i.
/// Round-robin keeps shards within one item of each other and is the same on every machine.
public struct Shard: Sendable, Equatable, CustomStringConvertible {
    public let index: Int, count: Int

    public init(index: Int, count: Int) throws {
        guard count >= 1, count <= 1_000_000, (0..<count).contains(index) else {
            throw RestorationError("a shard is i/N with 0 ≤ i < N (got \(index)/\(count))")
        }
        (self.index, self.count) = (index, count)
    }

    public init(parsing text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]) else {
            throw RestorationError("--shard takes i/N, e.g. 0/4 (got \(text))")
        }
        try self.init(index: i, count: n)
    }

    public static let whole = try! Shard(index: 0, count: 1)
    public func contains(_ position: Int) -> Bool { position % count == index }
    public var description: String { "\(index)/\(count)" }
    /// The failure list of this shard: failures.jsonl for a whole run, failures-shard-i-of-N.jsonl otherwise.
    public var failureFile: String { count == 1 ? "failures.jsonl" : "failures-shard-\(index)-of-\(count).jsonl" }
}

/// One line of a manifest: an input, and optionally its output name, its seed and options of its own.
public struct ManifestEntry: Sendable, Equatable {
    public var input: String
    public var output: String?
    public var seed: UInt64?
    /// Method options for this line only (keys as in a job file, e.g. "steps", "degradation"), as JSON.
    public var options: [String: String] = [:]

    public init(input: String, output: String? = nil, seed: UInt64? = nil, options: [String: String] = [:]) {
        (self.input, self.output, self.seed, self.options) = (input, output, seed, options)
    }
}

/// The list of work of a batch run.
public enum Manifest {
    /// A manifest file: one input per line, then optional `key=value` fields (tab-separated when the line has a
    /// tab, else space-separated): `seed=N`, `output=NAME` and any method option (`steps=50`,
    /// `degradation=pool:2`; values are JSON where they parse as JSON, else strings). Or a line may be a JSON
    /// object `{"input": …, "output": …, "seed": …, "options": {…}}`. Blank lines and `#` comments are skipped;
    /// relative inputs are relative to the manifest's folder.
    public static func read(_ path: String) throws -> [ManifestEntry] {
        guard let data = FileManager.default.contents(atPath: path) else { throw RestorationError("cannot read the manifest \(path)") }
        guard data.count <= 256 << 20, let text = String(data: data, encoding: .utf8) else {
            throw RestorationError("the manifest is not UTF-8 text of at most 256 MiB (\(path))")
        }
        let folder = (path as NSString).deletingLastPathComponent
        var entries: [ManifestEntry] = []
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !line.isEmpty, !line.hasPrefix("#") else { continue }
            do {
                var entry = line.hasPrefix("{") ? try jsonEntry(line) : try fieldEntry(raw.hasSuffix("\r") ? String(raw.dropLast()) : String(raw))
                if !entry.input.hasPrefix("/"), !folder.isEmpty { entry.input = (folder as NSString).appendingPathComponent(entry.input) }
                entries.append(entry)
            } catch {
                throw RestorationError("\(path):\(number + 1): \(error)")
            }
        }
        guard !entries.isEmpty else { throw RestorationError("the manifest lists no inputs (\(path))") }
        return entries
    }

    /// Every image of a folder (PNG, JPEG, WebP), sorted by name.
    public static func folder(_ path: String) throws -> [ManifestEntry] {
        let names = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
            .filter { OutputSettings.formats.contains(($0 as NSString).pathExtension.lowercased()) && !$0.hasPrefix(".") }
        guard !names.isEmpty else { throw RestorationError("no PNG, JPEG or WebP images in \(path)") }
        return names.map { ManifestEntry(input: (path as NSString).appendingPathComponent($0)) }
    }

    static func fieldEntry(_ line: String) throws -> ManifestEntry {
        let fields = (line.contains("\t") ? line.split(separator: "\t") : line.split(separator: " ")).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        var entry = ManifestEntry(input: fields[0])
        for field in fields.dropFirst() {
            guard let equals = field.firstIndex(of: "="), equals != field.startIndex else { throw RestorationError("expected key=value, got \(field)") }
            let key = String(field[..<equals]), value = String(field[field.index(after: equals)...])
            switch key {
            case "seed":
                guard let seed = UInt64(value) else { throw RestorationError("seed must be a non-negative integer, got \(value)") }
                entry.seed = seed
            case "output": entry.output = value
            default:
                let parsesAsJSON = (try? JSONSerialization.jsonObject(with: Data(value.utf8), options: .fragmentsAllowed)) != nil
                entry.options[key] = parsesAsJSON ? value : try String(data: JSONSerialization.data(withJSONObject: value, options: .fragmentsAllowed), encoding: .utf8)!
            }
        }
        return entry
    }

    static func jsonEntry(_ line: String) throws -> ManifestEntry {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let input = object["input"] as? String else {
            throw RestorationError("a JSON line needs an object with an \"input\" string")
        }
        var entry = ManifestEntry(input: input, output: object["output"] as? String)
        if let seed = object["seed"] {
            guard let number = seed as? NSNumber, number.int64Value >= 0, number.doubleValue == Double(number.int64Value) else {
                throw RestorationError("seed must be a non-negative integer")
            }
            entry.seed = number.uint64Value
        }
        if let options = object["options"] {
            guard let options = options as? [String: Any] else { throw RestorationError("\"options\" must be an object") }
            for (key, value) in options {
                entry.options[key] = String(data: try JSONSerialization.data(withJSONObject: value, options: .fragmentsAllowed), encoding: .utf8)!
            }
        }
        return entry
    }
}

/// A batch run as a contract that any engine can drive (one process, a Slurm array, GNU parallel, Ray, …):
/// the manifest's items, each with its job, its output in the output folder and a sidecar `<output>.json`
/// written after the output as its done marker. Items are split into shards deterministically; an item is done
/// when its sidecar exists, names the same options hash and its output is there.
public struct ShardedBatch: Sendable {
    public struct Item: Sendable, Equatable {
        /// Position in the manifest (0-based), which decides the shard.
        public let position: Int
        public let job: RestorationJob
        public let output: String
        public var input: String { job.input }
        public var sidecar: String { output + ".json" }
    }

    public let items: [Item]
    public let outputFolder: String
    public let settings: OutputSettings
    /// The inputs and the files the job reads besides them (masks, kernels): no output or list replaces them.
    public let protectedPaths: [String]

    /// Every item's job is `makeJob(input)` with the entry's seed and options laid over it; outputs are named by
    /// the entry or after the input (`name.png`, or the `settings.format` extension). Refused before any work:
    /// two items with one output, an output that is an input or one of the files in `protecting`, options that
    /// do not decode.
    public init(entries: [ManifestEntry], outputFolder: String, settings: OutputSettings = OutputSettings(), protecting: [String] = [],
                makeJob: (String) throws -> RestorationJob) throws {
        try settings.validate()
        var items: [Item] = [], seen: [String: String] = [:]
        let protectedPaths = entries.map(\.input) + protecting
        let inputs = Set(protectedPaths.map { URL(fileURLWithPath: $0).standardizedFileURL.path })
        let ext = settings.format.map { $0.lowercased() == "jpeg" ? "jpg" : $0.lowercased() } ?? "png"
        for (position, entry) in entries.enumerated() {
            var job = try makeJob(entry.input)
            job.input = entry.input
            job.sample = 0
            if let seed = entry.seed { job.seed = seed }
            if !entry.options.isEmpty {
                do { job.method = try Self.merging(entry.options, into: job.method) } catch {
                    throw RestorationError("item \(position + 1) (\(entry.input)): \(error)")
                }
            }
            let name = entry.output ?? (((entry.input as NSString).lastPathComponent as NSString).deletingPathExtension + "." + ext)
            let output = name.hasPrefix("/") ? name : (outputFolder as NSString).appendingPathComponent(name)
            let key = URL(fileURLWithPath: output).standardizedFileURL.path
            if let other = seen[key] {
                throw RestorationError("two manifest lines write \(output) (\(other) and \(entry.input)); give one of them output=NAME")
            }
            if inputs.contains(key) { throw RestorationError("the output \(output) would replace an input or a file the job reads") }
            _ = try settings.fileFormat(for: output)
            seen[key] = entry.input
            items.append(Item(position: position, job: job, output: output))
        }
        self.items = items
        self.outputFolder = outputFolder
        self.settings = settings
        self.protectedPaths = protectedPaths
    }

    public func items(in shard: Shard) -> [Item] { items.filter { shard.contains($0.position) } }

    /// The method with `options` (JSON texts by key) laid over its own options.
    static func merging(_ options: [String: String], into method: RestorationJob.Method) throws -> RestorationJob.Method {
        let encoded = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(method)) as? [String: Any] ?? [:]
        guard let (name, wrapped) = encoded.first, var inner = (wrapped as? [String: Any])?["_0"] as? [String: Any] else {
            throw RestorationError("cannot lay options over the \(method.name) options")
        }
        for (key, text) in options {
            inner[key] = try JSONSerialization.jsonObject(with: Data(text.utf8), options: .fragmentsAllowed)
        }
        let data = try JSONSerialization.data(withJSONObject: [name: ["_0": inner]])
        let merged: RestorationJob.Method
        do { merged = try JSONDecoder().decode(RestorationJob.Method.self, from: data) } catch {
            throw RestorationError("the line's options do not fit \(method.name): \(options.keys.sorted().joined(separator: ", ")) (\(error))")
        }
        // Decoding ignores keys the options do not have: a key that does not come back when the merged options
        // are encoded again is a typo (`step=20`) or another method's option, refused rather than ignored.
        let again = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(merged)) as? [String: Any]
        let known = (again?[name] as? [String: Any])?["_0"] as? [String: Any] ?? [:]
        let unknown = options.keys.filter { known[$0] == nil }.sorted()
        guard unknown.isEmpty else {
            throw RestorationError("\(method.name) has no option \(unknown.joined(separator: ", ")) (its options include \(known.keys.sorted().joined(separator: ", ")))")
        }
        return merged
    }

    /// The hash that says whether a sidecar's output answers this job: SHA-256 of the job (keys sorted, without
    /// the input's path, the window batch and the pixel limit, which do not change the image) and the input's
    /// SHA-256.
    public static func optionsHash(_ job: RestorationJob, inputSHA256: String) throws -> String {
        var neutral = job
        neutral.input = ""
        neutral.maxPixels = 0
        if case .ddnm(var options) = neutral.method {
            options.windowBatch = 1
            neutral.method = .ddnm(options)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return SHA256.hex(of: Array(try encoder.encode(neutral)) + Array("\n\(inputSHA256)".utf8))
    }

    /// What a sidecar says (the fields the contract reads).
    public struct Sidecar: Codable, Sendable, Equatable {
        public var optionsHash: String
        public var output: String
        public var pixelsSHA256: String
        public var run: [String: String]
        public var report: Report?
        /// The report's fields the contract reads: the run's seconds (the dry run's measured cost).
        public struct Report: Codable, Sendable, Equatable {
            public var elapsedSeconds: Double?
            enum CodingKeys: String, CodingKey { case elapsedSeconds = "elapsed_s" }
        }
        enum CodingKeys: String, CodingKey { case optionsHash = "options_hash", output, pixelsSHA256 = "pixels_sha256", run, report }
    }

    /// The item's sidecar if it marks the item done for `job` (same options hash, output present), else nil.
    public func doneSidecar(_ item: Item) -> Sidecar? {
        guard let data = FileManager.default.contents(atPath: item.sidecar),
              let sidecar = try? JSONDecoder().decode(Sidecar.self, from: data),
              FileManager.default.fileExists(atPath: item.output),
              let inputHash = try? SHA256.hex(ofFile: item.input),
              let hash = try? Self.optionsHash(item.job, inputSHA256: inputHash), hash == sidecar.optionsHash else { return nil }
        return sidecar
    }

    /// SHA-256 of an image file's decoded samples as 16-bit big-endian integers (the same for the same pixels
    /// whatever the encoder wrote around them: reports, timings).
    public static func pixelsSHA256(of path: String) throws -> String {
        let image = try ImageReader.read(path: path, maxPixels: Int.max)
        var bytes = [UInt8](repeating: 0, count: image.pixels.count * 2)
        for (i, v) in image.pixels.enumerated() {
            let q = UInt16((min(max(v, 0), 1) * 65535).rounded())
            bytes[2 * i] = UInt8(q >> 8)
            bytes[2 * i + 1] = UInt8(q & 0xFF)
        }
        return SHA256.hex(of: bytes)
    }
}

/// What became of one item of a shard.
public enum ShardEvent {
    case done(ShardedBatch.Item, RestorationResult, attempts: Int)
    case skipped(ShardedBatch.Item)
    case retrying(ShardedBatch.Item, Error, attempt: Int)
    case failed(ShardedBatch.Item, Error)
}

extension RestorationRunner {
    /// Runs one shard of a batch: each item not yet done (`skipExisting`: a valid sidecar counts as done) runs
    /// up to 1 + `retries` times; its output is written atomically, then its sidecar (tool version, model and
    /// input SHA-256, job, seed, options hash, pixels hash, report, `run` facts such as the Slurm job id) the
    /// same way. The items still failing go to the shard's failure list (JSON lines, written atomically; removed
    /// when none fail). Returns the summary; cancellation is rethrown.
    public func run(_ batch: ShardedBatch, shard: Shard, skipExisting: Bool, retries: Int = 0, runFacts: [String: String] = [:],
                    context: RestorationContext = RestorationContext(), event: (ShardEvent) -> Void = { _ in }) throws -> BatchSummary {
        var summary = BatchSummary()
        var failures: [[String: Any]] = []
        let inputs = batch.protectedPaths
        try FileManager.default.createDirectory(atPath: batch.outputFolder, withIntermediateDirectories: true)
        for item in batch.items(in: shard) {
            if skipExisting, batch.doneSidecar(item) != nil {
                summary.skipped += 1
                event(.skipped(item))
                continue
            }
            var attempt = 0
            while true {
                attempt += 1
                do {
                    let inputHash = try SHA256.hex(ofFile: item.input)
                    var result = try run(item.job, context: context)
                    result.report.output = item.output
                    let format = try batch.settings.fileFormat(for: item.output, sourceBitDepth: result.sourceBitDepth)
                    let report = try result.write(to: item.output, format: format, overwrite: true, protecting: inputs)
                    let sidecar: [String: Any] = [
                        "tool": "restore", "version": RestorationLibrary.version, "input": item.input, "input_sha256": inputHash,
                        "output": item.output, "pixels_sha256": try ShardedBatch.pixelsSHA256(of: item.output),
                        "model_sha256": result.report.modelSHA256 ?? "", "seed": item.job.seed,
                        "options_hash": try ShardedBatch.optionsHash(item.job, inputSHA256: inputHash),
                        "job": try JSONSerialization.jsonObject(with: try JSONEncoder().encode(item.job)),
                        "report": try JSONSerialization.jsonObject(with: Data(report.utf8)),
                        "run": runFacts.merging(["shard": shard.description, "attempts": "\(attempt)"]) { a, _ in a },
                    ]
                    let bytes = try JSONSerialization.data(withJSONObject: sidecar, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
                    try ImageWriter.writeFile(Array(bytes) + [10], to: item.sidecar, overwrite: true, protecting: inputs)
                    summary.done += 1
                    event(.done(item, result, attempts: attempt))
                    break
                } catch let error as RestorationCancelled {
                    throw error
                } catch {
                    if attempt <= retries {
                        event(.retrying(item, error, attempt: attempt))
                        continue
                    }
                    summary.failed += 1
                    failures.append(["input": item.input, "output": item.output, "position": item.position, "error": "\(error)",
                                     "attempts": attempt, "shard": shard.description])
                    event(.failed(item, error))
                    break
                }
            }
        }
        let lines = try failures.map { String(data: try JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys, .withoutEscapingSlashes]), encoding: .utf8)! }
        try batch.writeFailureList(lines, to: shard.failureFile)
        return summary
    }
}

extension ShardedBatch {
    /// The completeness check after every shard ran (Slurm's follow-up job): the items without a valid sidecar,
    /// and the shards' failure lists merged into failures.jsonl (written atomically; removed when empty).
    public func check(shards: Int) throws -> (missing: [Item], failures: Int) {
        let missing = items.filter { doneSidecar($0) == nil }
        guard shards > 1 else { return (missing, failureList(Shard.whole.failureFile).count) }
        let lines = try (0..<shards).flatMap { failureList(try Shard(index: $0, count: shards).failureFile) }
        try writeFailureList(lines, to: Shard.whole.failureFile)
        return (missing, lines.count)
    }

    /// The lines of a failure list in the output folder (none when it is missing).
    func failureList(_ name: String) -> [String] {
        let path = (outputFolder as NSString).appendingPathComponent(name)
        return ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// Writes a failure list into the output folder atomically, or removes it when there are no lines.
    func writeFailureList(_ lines: [String], to name: String) throws {
        let path = (outputFolder as NSString).appendingPathComponent(name)
        if lines.isEmpty { try? FileManager.default.removeItem(atPath: path); return }
        try ImageWriter.writeFile(Array((lines.joined(separator: "\n") + "\n").utf8), to: path, overwrite: true, protecting: protectedPaths)
    }
}
