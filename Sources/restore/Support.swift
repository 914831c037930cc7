import Engine
import Foundation
import ImageIO
import Operators

/// Mask images: white = hole (to restore), black = keep, as every command of the project reads them;
/// `keepWhite` reads the official DDNM masks (255 = keep). Gray levels split at one half.
enum MaskImage {
    static func load(_ path: String, keepWhite: Bool, maxPixels: Int) throws -> Tensor {
        let image = try ImageReader.read(path: path, maxPixels: maxPixels)
        let (color, _) = image.splittingAlpha()
        let keep = try Tensor(uninitializedShape: [color.height, color.width])
        let c = color.channels
        var holes = 0
        for p in 0..<keep.count {
            var v: Float = 0
            for k in 0..<c { v += color.pixels[p * c + k] }
            let white = v / Float(c) >= 0.5
            keep.data[p] = (white == keepWhite) ? 1 : 0
            if keep.data[p] == 0 { holes += 1 }
        }
        guard holes > 0 else { throw CommandFailure("the mask has no hole (white = hole\(keepWhite ? "; with --mask-keep-white, black = hole" : "")) (\(path))") }
        guard holes < keep.count else { throw CommandFailure("the mask is all hole: nothing is known (\(path))") }
        return keep
    }
}

/// Blur kernels given as images: the gray level (mean of the colour channels) of each pixel; the operator
/// normalises the sum to 1. Kernels are small: above 255×255 they are refused.
enum KernelImage {
    static func load(_ path: String, maxPixels: Int) throws -> (values: [Float], rows: Int, columns: Int) {
        let image = try ImageReader.read(path: path, maxPixels: maxPixels)
        guard image.width <= 255, image.height <= 255 else { throw CommandFailure("a blur kernel image must be at most 255×255, got \(image.width)×\(image.height) (\(path))") }
        let (color, _) = image.splittingAlpha()
        let c = color.channels
        let values = (0..<(color.width * color.height)).map { p in (0..<c).reduce(Float(0)) { $0 + color.pixels[p * c + $1] } / Float(c) }
        return (values, color.height, color.width)
    }
}

/// A one-line progress bar with ETA on stderr (redrawn in place; silent when disabled or not a terminal
/// and quiet).
final class ProgressBar {
    let label: String
    let enabled: Bool
    let start = Date()
    private var lastDraw = Date.distantPast

    init(label: String, enabled: Bool) {
        self.label = label
        self.enabled = enabled
    }

    func update(_ done: Int, _ total: Int) { update(done, total, note: nil) }

    /// `note` (e.g. "window 3/12") is shown after the counts.
    func update(_ done: Int, _ total: Int, note: String?) {
        guard enabled, total > 0 else { return }
        let now = Date()
        guard done == total || now.timeIntervalSince(lastDraw) > 0.2 else { return }
        lastDraw = now
        let elapsed = now.timeIntervalSince(start)
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
        let width = 30, filled = width * done / total
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let line = String(format: "\r%@ %@ %d/%d%@  %.2f s/step  ETA %@ ", label, bar, done, total, note.map { "  " + $0 } ?? "",
                          elapsed / Double(max(done, 1)), Self.clock(eta))
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() { if enabled { FileHandle.standardError.write(Data("\n".utf8)) } }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
