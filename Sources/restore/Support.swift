import Foundation
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

    /// One line per output: sizes, consistency and quality where measured, time.
    func summary(_ result: RestorationResult, input: String, output: String) {
        guard !quiet else { return }
        let r = result.report
        var parts = ["\(result.image.shape[2])×\(result.image.shape[1])"]
        if let rms = r.consistencyRMS { parts.append(String(format: "‖Ax̂−y‖ %.4f", rms)) }
        if let psnr = r.psnr { parts.append(String(format: "PSNR %.2f dB", psnr)) }
        if let ssim = r.ssim { parts.append(String(format: "SSIM %.4f", ssim)) }
        if let psnr = r.bicubicPSNR, let ssim = r.bicubicSSIM { parts.append(String(format: "bicubic %.2f dB, %.3f", psnr, ssim)) }
        if let evaluations = r.networkEvaluations { parts.append("\(evaluations) evaluations") }
        if let patches = r.patches, patches > 1 { parts.append("\(patches) patches") }
        if let windows = r.windows, windows > 1 { parts.append("\(windows) windows") }
        parts.append(String(format: "%.1f s", r.elapsedSeconds ?? 0))
        FileHandle.standardError.write(Data("\(r.method): \(input) → \(output) (\(parts.joined(separator: ", ")))\n".utf8))
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
