import ArgumentParser
import Engine
import Foundation
import ImageIO
import Restoration

/// Input/output flags shared by every image-producing subcommand (see the CLI conventions in the README).
struct ImageIOOptions: ParsableArguments {
    @Option(name: [.short, .long], help: "An image file (PNG, JPEG or WebP) or a folder of them.")
    var input: String

    @Option(name: [.short, .long], help: "The output file (single input) or folder. Never the input path.")
    var output: String

    @Flag(help: "Replace existing output files (regular files only; never an input).")
    var overwrite = false

    @Flag(help: "Leave outputs that already exist alone and restore the rest (resumes an interrupted folder run).")
    var skipExisting = false

    @Option(help: "PNG bit depth of the output: 8 or 16 (default: the input's depth).")
    var bits: Int?

    @Option(help: "Output format: png, jpg or webp (default: from the output file's extension). JPEG and WebP carry the report too.")
    var format: String?

    @Option(help: "JPEG and WebP quality, 1–100 (WebP 100: lossless).")
    var quality: Int = 95

    @Option(help: "Refuse input images with more pixels than this (checked before decoding).")
    var maxPixels: Int = ImageReader.defaultMaxPixels

    @Flag(help: "Print one JSON report line per output on stdout.")
    var json = false

    @Flag(help: "No progress on stderr.")
    var quiet = false

    @Option(name: [.customShort("j"), .long], help: "Threads (default: OMP_NUM_THREADS, else every core this process may use).")
    var threads: Int?

    var settings: OutputSettings {
        OutputSettings(format: format, bits: bits, quality: quality, overwrite: overwrite, skipExisting: skipExisting)
    }

    func validate() throws {
        do { try settings.validate() } catch { throw ValidationError("\(error)") }
        if maxPixels < 1 { throw ValidationError("--max-pixels must be positive") }
        if let threads, !(1...1024).contains(threads) { throw ValidationError("-j/--threads must be between 1 and 1024") }
    }

    /// Runs a command's jobs: every output is checked first (`BatchPlan`), then the model and options
    /// (`prepare`), then each input (and each of `samples` separate outputs, "-k" suffixed) runs and is written
    /// with its report and panels. A single input's failure is the command's; in a folder each failure is one
    /// line, the rest go on, and a summary ends the run (status 1 if anything failed).
    func run(_ makeJob: (_ input: String, _ sample: Int) throws -> RestorationJob, samples: Int = 1, observation: String? = nil,
             sideBySide: String? = nil, protecting extra: [String] = [], scale: Int = 1) throws {
        if let threads { Parallel.setThreadCount(threads) }
        let runner = RestorationRunner()
        let events = EventPrinter(quiet: quiet)
        let plan = try BatchPlan(input: input, output: output, samples: samples, observation: observation, sideBySide: sideBySide,
                                 settings: settings, protecting: extra, scale: scale)
        try runner.prepare(try makeJob("", 0), context: events.context)
        var failure: Error?
        let summary = try runner.run(plan, context: events.context, makeJob: { try makeJob($0.input, $0.sample) }) { outcome in
            events.finish()
            switch outcome {
            case .done(let item, let result, let report):
                if json { print(report) }
                events.summary(result, input: item.input, output: item.output)
            case .skipped(let item):
                events.note("skipped \(item.input): \(item.output) exists")
            case .failed(let item, let error):
                failure = error
                if plan.isFolder { FileHandle.standardError.write(Data("restore: error: \(item.input): \(error)\n".utf8)) }
            }
        }
        if !plan.isFolder, let failure { throw failure }
        if plan.isFolder { events.note("\(input): \(summary.line)") }
        if summary.failed > 0 { throw ExitCode(1) }
    }
}
