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
    func summary(_ result: RestorationResult, input: String, output: String) { note(result.summary(input: input, output: output)) }

    /// A line on stderr unless --quiet.
    func note(_ line: String) {
        if !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }
}

/// A one-line progress bar with ETA on stderr (`ProgressLine`), redrawn in place at most five times a second.
final class ProgressBar {
    let line: ProgressLine
    private var lastDraw = Date.distantPast

    init(label: String) { line = ProgressLine(label: label) }

    /// `note` (e.g. "window 3/12") is shown after the counts.
    func update(_ done: Int, _ total: Int, note: String?) {
        let now = Date()
        guard total > 0, done == total || now.timeIntervalSince(lastDraw) > 0.2 else { return }
        lastDraw = now
        FileHandle.standardError.write(Data(("\r" + line.text(done, total, note: note, now: now) + " ").utf8))
    }

    func finish() { FileHandle.standardError.write(Data("\n".utf8)) }
}
