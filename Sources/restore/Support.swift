import Foundation
import ImageIO
import Restoration

/// Draws a restoration's events on stderr: a progress bar with ETA per stage, log lines, a summary per output.
/// Silent with --quiet.
final class EventPrinter {
    let quiet: Bool
    private var bar: ProgressBar?
    private(set) lazy var context = RestorationContext { [unowned self] event in self.handle(event) }

    init(quiet: Bool) { self.quiet = quiet }

    private func handle(_ event: RestorationEvent) {
        guard !quiet else { return }
        switch event {
        case .stage(let label, _):
            bar?.finish()
            bar = ProgressBar(label: label)
        case .step(let done, let total, let note):
            bar?.update(done, total, note: note)
        case .denoised:
            break
        case .log(let line):
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }

    /// Ends the last stage's bar.
    func finish() {
        bar?.finish()
        bar = nil
    }

    /// One line per output (RestorationResult.summary).
    func summary(_ result: RestorationResult, input: String, output: String) {
        if !quiet { FileHandle.standardError.write(Data((result.summary(input: input, output: output) + "\n").utf8)) }
    }
}

/// A one-line progress bar with ETA on stderr, redrawn in place at most five times a second.
final class ProgressBar {
    let label: String
    let start = Date()
    private var lastDraw = Date.distantPast

    init(label: String) { self.label = label }

    /// `note` (e.g. "window 3/12") is shown after the counts.
    func update(_ done: Int, _ total: Int, note: String?) {
        guard total > 0 else { return }
        let now = Date()
        guard done == total || now.timeIntervalSince(lastDraw) > 0.2 else { return }
        lastDraw = now
        let elapsed = now.timeIntervalSince(start)
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
        let width = 30, filled = width * min(done, total) / total
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let line = String(format: "\r%@ %@ %d/%d%@  %.2f s/step  ETA %@ ", label, bar, done, total, note.map { "  " + $0 } ?? "",
                          elapsed / Double(max(done, 1)), Self.clock(eta))
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() { FileHandle.standardError.write(Data("\n".utf8)) }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}

extension ImageIOOptions {
    /// Runs a command's jobs: the model and options are checked first (`prepare`), then for each input (and each
    /// of `samples` separate outputs, "-k" suffixed) the job runs, its result is written with its report, the
    /// asked panels beside it, and a summary line is printed.
    func run(_ makeJob: (_ input: String, _ sample: Int) -> RestorationJob, samples: Int = 1, observation: String? = nil,
             sideBySide: String? = nil, protecting extra: [String] = []) throws {
        let jobs = try self.jobs()
        if jobs.count > 1, sideBySide != nil || observation != nil {
            throw CommandFailure("--side-by-side and --save-observation take one input image, not a folder")
        }
        let runner = RestorationRunner()
        let events = EventPrinter(quiet: quiet)
        try runner.prepare(makeJob("", 0), context: events.context)
        var panels: RestorationPanels = []
        if observation != nil { panels.insert(.observation) }
        if sideBySide != nil { panels.insert(.sideBySide) }
        for (input, output) in jobs {
            for sample in 0..<samples {
                let result = try runner.run(makeJob(input, sample), panels: panels, context: events.context)
                events.finish()
                let named = { (path: String) in samples == 1 ? path : Self.suffixed(path, sample + 1) }
                try write(result, to: named(output), inputs: [input] + extra)
                if let path = observation, let y = result.observation {
                    let image = Image.fromSignedRange(y.values, width: y.shape[2], height: y.shape[1], channels: y.shape[3])
                    try write(image, to: named(path), report: result.report.panel(result.observationLabel), inputs: [input, named(output)] + extra,
                              quietJSON: true)
                }
                if let path = sideBySide, let panel = result.sideBySide {
                    try write(panel, to: named(path), report: result.report.panel(result.sideBySideLabel ?? ""), inputs: [input, named(output)],
                              quietJSON: true)
                }
                events.summary(result, input: input, output: named(output))
            }
        }
    }
}
