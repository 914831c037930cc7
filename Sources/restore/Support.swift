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

/// Image quality metrics on [-1, 1] tensors, computed on the [0, 1] scale as the papers report them.
enum Quality {
    /// PSNR in dB over all pixels and channels.
    static func psnr(_ a: Tensor, _ b: Tensor) -> Double {
        var sum = 0.0
        for i in 0..<min(a.count, b.count) { let d = Double(a.data[i] - b.data[i]) / 2; sum += d * d }
        let mse = sum / Double(max(a.count, 1))
        return mse == 0 ? 99 : 10 * log10(1 / mse)
    }

    /// SSIM (Wang et al. 2004): 11×11 Gaussian window σ = 1.5, K1 0.01, K2 0.03, data range 1, per channel,
    /// averaged over valid windows and channels (as scikit-image's `structural_similarity` with
    /// `gaussian_weights=True`).
    static func ssim(_ a: Tensor, _ b: Tensor) -> Double {
        guard a.shape == b.shape, a.shape.count == 4 else { return .nan }
        let (h, w, c) = (a.shape[1], a.shape[2], a.shape[3])
        let radius = 5
        guard h > 2 * radius, w > 2 * radius else { return .nan }
        var g = (0...(2 * radius)).map { i -> Double in let d = Double(i - radius); return exp(-d * d / (2 * 1.5 * 1.5)) }
        let total = g.reduce(0, +)
        g = g.map { $0 / total }
        let c1 = 0.01 * 0.01, c2 = 0.03 * 0.03
        var sum = 0.0, count = 0
        for k in 0..<c {
            func plane(_ t: Tensor) -> [Double] { (0..<(h * w)).map { Double(t.data[$0 * c + k] + 1) / 2 } }
            let x = plane(a), y = plane(b)
            func blur(_ v: [Double]) -> [Double] {  // separable Gaussian, valid region only
                var horizontal = [Double](repeating: 0, count: h * (w - 2 * radius))
                for r in 0..<h { for q in 0..<(w - 2 * radius) {
                    var s = 0.0
                    for i in 0...(2 * radius) { s += g[i] * v[r * w + q + i] }
                    horizontal[r * (w - 2 * radius) + q] = s
                } }
                let ww = w - 2 * radius
                var out = [Double](repeating: 0, count: (h - 2 * radius) * ww)
                for r in 0..<(h - 2 * radius) { for q in 0..<ww {
                    var s = 0.0
                    for i in 0...(2 * radius) { s += g[i] * horizontal[(r + i) * ww + q] }
                    out[r * ww + q] = s
                } }
                return out
            }
            let mx = blur(x), my = blur(y)
            let sxx = blur(zip(x, x).map(*)), syy = blur(zip(y, y).map(*)), sxy = blur(zip(x, y).map(*))
            for i in 0..<mx.count {
                let vx = sxx[i] - mx[i] * mx[i], vy = syy[i] - my[i] * my[i], cxy = sxy[i] - mx[i] * my[i]
                sum += ((2 * mx[i] * my[i] + c1) * (2 * cxy + c2)) / ((mx[i] * mx[i] + my[i] * my[i] + c1) * (vx + vy + c2))
                count += 1
            }
        }
        return sum / Double(max(count, 1))
    }
}
