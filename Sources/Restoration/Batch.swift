import Engine
import Foundation
import ImageIO

/// How results are written: the encoding, and what happens to files already at an output path.
public struct OutputSettings: Codable, Sendable, Equatable {
    /// "png", "jpg" or "webp" (nil: from each output's extension).
    public var format: String?
    /// PNG bit depth, 8 or 16 (nil: the input's).
    public var bits: Int?
    /// JPEG and WebP quality (WebP: 100 = lossless).
    public var quality = ImageFileFormat.defaultJPEGQuality
    /// Replace existing regular files (never an input, never anything but a regular file).
    public var overwrite = false
    /// Leave outputs that already exist alone and go on with the rest (resumable folder runs).
    public var skipExisting = false

    /// The image extensions we write, and read in folders.
    public static let formats = ["png", "jpg", "jpeg", "webp"]

    public init(format: String? = nil, bits: Int? = nil, quality: Int = ImageFileFormat.defaultJPEGQuality, overwrite: Bool = false,
                skipExisting: Bool = false) {
        (self.format, self.bits, self.quality, self.overwrite, self.skipExisting) = (format, bits, quality, overwrite, skipExisting)
    }

    public func validate() throws {
        if let bits, bits != 8, bits != 16 { throw RestorationError("--bits must be 8 or 16") }
        if !(1...100).contains(quality) { throw RestorationError("--quality must be between 1 and 100") }
        if let format, !Self.formats.contains(format.lowercased()) { throw RestorationError("--format must be png, jpg or webp (not \(format))") }
        if overwrite, skipExisting { throw RestorationError("--overwrite and --skip-existing exclude each other") }
    }

    /// The encoding of `path`: `format` or the extension; PNG at `bits` or the source's depth.
    public func fileFormat(for path: String, sourceBitDepth: Int = 8) throws -> ImageFileFormat {
        switch (format ?? (path as NSString).pathExtension).lowercased() {
        case "png": return .png(bits: bits ?? (sourceBitDepth > 8 ? 16 : 8))
        case "jpg", "jpeg": return .jpeg(quality: quality)
        case "webp": return .webp(quality: quality)
        default: throw RestorationError("cannot tell the output format from the extension; use .png, .jpg or .webp, or --format (\(path))")
        }
    }
}

/// One output of a batch: its input, which sample it is, and the files it writes.
public struct BatchItem: Sendable, Equatable {
    public let input: String
    public let output: String
    /// 0-based; sample k runs with seed + k.
    public let sample: Int
    /// Companion panels (single-image runs only).
    public var observation: String?
    public var sideBySide: String?
    /// The output exists and `skipExisting` is set: nothing to do.
    public var skip = false

    /// Every file this item writes.
    public var outputs: [String] { [output] + [observation, sideBySide].compactMap { $0 } }
}

/// What became of one item.
public enum BatchOutcome {
    /// The result and its report's JSON as written into the file.
    case done(BatchItem, RestorationResult, report: String)
    case skipped(BatchItem)
    case failed(BatchItem, Error)
}

/// Counts at the end of a batch.
public struct BatchSummary: Sendable, Equatable {
    public var done = 0, skipped = 0, failed = 0
    public var line: String { "\(done) restored, \(skipped) skipped (output exists), \(failed) failed" }
}

/// The outputs of a request, checked before any work: a file, or every PNG/JPEG of a folder (× samples).
public struct BatchPlan: Sendable {
    public let items: [BatchItem]
    public let isFolder: Bool
    public let settings: OutputSettings
    /// Paths no output may replace beyond each item's input (a mask, a kernel).
    public let protected: [String]

    /// Plans and checks: every output's folder exists and is writable, no output is an input or another
    /// output, each extension is known, nothing but a regular file sits at an output path, existing outputs
    /// need `overwrite` (or are skipped with `skipExisting`), and the file system has room for about
    /// `scale`² × the inputs' bytes. All problems are found before anything runs; the first is thrown, with
    /// the count of the others.
    public init(input: String, output: String, samples: Int = 1, observation: String? = nil, sideBySide: String? = nil,
                settings: OutputSettings = OutputSettings(), protecting extra: [String] = [], scale: Int = 1) throws {
        try settings.validate()
        guard samples >= 1 else { throw RestorationError("the number of samples must be at least 1") }
        let pairs = try RestorationJob.pairs(input: input, output: output, format: settings.format)
        var isFolder: ObjCBool = false
        FileManager.default.fileExists(atPath: input, isDirectory: &isFolder)
        self.isFolder = isFolder.boolValue
        if self.isFolder, observation != nil || sideBySide != nil {
            throw RestorationError("--side-by-side and --save-observation take one input image, not a folder")
        }
        self.settings = settings
        self.protected = extra
        var items: [BatchItem] = []
        for (input, output) in pairs {
            for sample in 0..<samples {
                let named = { (path: String) in samples == 1 ? path : Self.suffixed(path, sample + 1) }
                items.append(BatchItem(input: input, output: named(output), sample: sample, observation: observation.map(named),
                                       sideBySide: sideBySide.map(named)))
            }
        }
        var problems: [String] = []
        var seen: [String: String] = [:]
        let inputs = pairs.map(\.input) + extra
        for index in items.indices {
            for path in items[index].outputs {
                let key = URL(fileURLWithPath: path).standardizedFileURL.path
                if let other = seen[key] { problems.append("two outputs would be written to \(path) (from \(other) and \(items[index].input))"); continue }
                seen[key] = items[index].input
                do {
                    _ = try settings.fileFormat(for: path)
                    try ImageWriter.checkDestination(path, overwrite: settings.overwrite, protecting: inputs)
                } catch ImageIOError.outputExists(_) where settings.skipExisting {
                    if path == items[index].output { items[index].skip = true }
                } catch ImageIOError.outputExists(_) {
                    problems.append("\(path) exists; pass --overwrite to replace it or --skip-existing to leave it")
                } catch {
                    problems.append("\(error)")
                }
            }
        }
        self.items = items
        if problems.isEmpty, let first = items.first, let free = ImageWriter.freeBytes(forWriting: first.output) {
            let inputBytes = pairs.reduce(0) { $0 + ((try? FileManager.default.attributesOfItem(atPath: $1.input)[.size] as? Int) ?? 0) }
            let estimate = inputBytes * samples * scale * scale
            if estimate > free {
                problems.append("not enough free space for the outputs: about \(Formatting.bytes(estimate)) needed, \(Formatting.bytes(free)) free (\(first.output))")
            }
        }
        if let first = problems.first {
            throw RestorationError(problems.count == 1 ? first : "\(first) (and \(problems.count - 1) more problem\(problems.count == 2 ? "" : "s") with the outputs)")
        }
    }

    /// `path` with "-k" before its extension (the k-th sample's file).
    public static func suffixed(_ path: String, _ index: Int) -> String {
        let ext = (path as NSString).pathExtension
        return (path as NSString).deletingPathExtension + "-\(index)" + (ext.isEmpty ? "" : "." + ext)
    }
}

extension RestorationRunner {
    /// Runs every item of `plan` with the job `makeJob` gives for it, writes each result (report in the file,
    /// the output path in the report) and its panels, and tells `outcome` about each. One item's failure
    /// does not stop the others; cancellation does (rethrown).
    public func run(_ plan: BatchPlan, context: RestorationContext = RestorationContext(), makeJob: (BatchItem) throws -> RestorationJob,
                    outcome: (BatchOutcome) -> Void) throws -> BatchSummary {
        var summary = BatchSummary()
        var panels: RestorationPanels = []
        if plan.items.contains(where: { $0.observation != nil }) { panels.insert(.observation) }
        if plan.items.contains(where: { $0.sideBySide != nil }) { panels.insert(.sideBySide) }
        for item in plan.items {
            if item.skip {
                summary.skipped += 1
                outcome(.skipped(item))
                continue
            }
            do {
                var result = try run(makeJob(item), panels: panels, context: context)
                result.report.output = item.output
                let report = try write(result, item: item, settings: plan.settings, protecting: plan.protected)
                summary.done += 1
                outcome(.done(item, result, report: report))
            } catch let error as RestorationCancelled {
                throw error
            } catch {
                summary.failed += 1
                outcome(.failed(item, error))
            }
        }
        return summary
    }

    /// Writes a result and the panels its item asks for; returns the report's JSON as written.
    func write(_ result: RestorationResult, item: BatchItem, settings: OutputSettings, protecting extra: [String]) throws -> String {
        let inputs = [item.input] + extra
        let report = try result.write(to: item.output, format: try settings.fileFormat(for: item.output, sourceBitDepth: result.sourceBitDepth),
                         overwrite: settings.overwrite, protecting: inputs)
        func panel(_ image: Image, _ path: String, _ label: String) throws {
            try ImageWriter.write(image, to: path, format: try settings.fileFormat(for: path, sourceBitDepth: image.sourceBitDepth),
                                  text: [reportChunkKeyword: try result.report.panel(label).json()], overwrite: settings.overwrite,
                                  protecting: inputs + [item.output])
        }
        if let path = item.observation, let y = result.observation {
            try panel(Image.fromSignedRange(y.values, width: y.shape[2], height: y.shape[1], channels: y.shape[3]), path, result.observationLabel)
        }
        if let path = item.sideBySide, let image = result.sideBySide { try panel(image, path, result.sideBySideLabel ?? "") }
        return report
    }
}

/// A progress line with rate and ETA, for any front end: "label ███···· 3/12  0.41 s/step  ETA 0:04".
public struct ProgressLine {
    public let label: String
    public let start: Date

    public init(label: String, start: Date = Date()) { (self.label, self.start) = (label, start) }

    public func text(_ done: Int, _ total: Int, note: String? = nil, now: Date = Date(), width: Int = 30) -> String {
        let elapsed = now.timeIntervalSince(start)
        let eta = done > 0 ? elapsed / Double(done) * Double(max(total - done, 0)) : 0
        let filled = total > 0 ? width * min(done, total) / total : 0
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        return String(format: "%@ %@ %d/%d%@  %.2f s/step  ETA %@", label, bar, done, total, note.map { "  " + $0 } ?? "",
                      elapsed / Double(max(done, 1)), Self.clock(eta))
    }

    /// 0:42, 12:03, 1:02:03.
    public static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
