import Checkpoints
import Engine
import Foundation
import ImageIO
import Operators

/// Mask images: white = hole (to restore), black = keep, as every command of the project reads them;
/// `keepWhite` reads the official DDNM masks (255 = keep). Gray levels split at one half.
public enum MaskImage {
    /// The keep-mask [H, W] (1 = known) of the mask image at `path`, or of `attachments[path]` when given.
    public static func load(_ path: String, keepWhite: Bool, maxPixels: Int, attachments: [String: Image] = [:]) throws -> Tensor {
        try keep(attachments[path] ?? ImageReader.read(path: path, maxPixels: maxPixels), keepWhite: keepWhite, name: path)
    }

    /// The keep-mask of a mask image (`name` labels errors).
    public static func keep(_ image: Image, keepWhite: Bool, name path: String) throws -> Tensor {
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
        guard holes > 0 else { throw RestorationError("the mask has no hole (white = hole\(keepWhite ? "; with --mask-keep-white, black = hole" : "")) (\(path))") }
        guard holes < keep.count else { throw RestorationError("the mask is all hole: nothing is known (\(path))") }
        return keep
    }
}

/// Blur kernels given as images: the gray level (mean of the colour channels) of each pixel; the operator
/// normalises the sum to 1. Kernels are small: above 255×255 they are refused.
public enum KernelImage {
    /// The kernel of the image at `path`, or of `attachments[path]` when given.
    public static func load(_ path: String, maxPixels: Int, attachments: [String: Image] = [:]) throws -> (values: [Float], rows: Int, columns: Int) {
        let image = try attachments[path] ?? ImageReader.read(path: path, maxPixels: maxPixels)
        guard image.width <= 255, image.height <= 255 else { throw RestorationError("a blur kernel image must be at most 255×255, got \(image.width)×\(image.height) (\(path))") }
        let (color, _) = image.splittingAlpha()
        let c = color.channels
        let values = (0..<(color.width * color.height)).map { p in (0..<c).reduce(Float(0)) { $0 + color.pixels[p * c + $1] } / Float(c) }
        return (values, color.height, color.width)
    }
}

/// Conversions between images, observations and tensors that every method's input goes through.
public enum Observations {

    /// True when y is a coefficient vector rather than an image (compressed sensing, alone or in a composition).
    public static func observesCoefficients(_ a: any DegradationOperator) -> Bool {
        if let composite = a as? CompositeOperator { return composite.parts.contains { observesCoefficients($0) } }
        return a is DeferredWHTOperator || a is WalshHadamardCSOperator || a is BlockCSOperator
    }

    /// Reads a coefficient vector y from a safetensors file: a tensor named `y` of shape [M, C], [N, M, C]
    /// or [N, M, 1, C] (compressed sensing).
    public static func coefficients(_ path: String) throws -> Tensor {
        let file = try Checkpoint(path: path)
        guard let stored = try file.stateDict()["y"] else { throw RestorationError("no tensor named \"y\" in the coefficient file (\(path))") }
        let s = stored.shape
        switch s.count {
        case 2: return try stored.floatTensor(shape: [1, s[0], 1, s[1]])
        case 3: return try stored.floatTensor(shape: [s[0], s[1], 1, s[2]])
        case 4 where s[2] == 1: return try stored.floatTensor(shape: s)
        default: throw RestorationError("the coefficient tensor y must be [M, C], [N, M, C] or [N, M, 1, C], got \(s) (\(path))")
        }
    }

    /// Panels of the same height (first sample of each; gray panels shown as RGB) side by side, 4 px white gutters.
    public static func sideBySide(_ panels: [Tensor]) throws -> Image {
        let height = panels.map { $0.shape[1] }.max() ?? 1, gutter = 4
        let width = panels.map { $0.shape[2] }.reduce(0, +) + gutter * (panels.count - 1)
        var pixels = [Float](repeating: 1, count: width * height * 3)
        var left = 0
        for panel in panels {
            let (h, w, c) = (panel.shape[1], panel.shape[2], panel.shape[3])
            for r in 0..<h { for x in 0..<w { for k in 0..<3 {
                let value = panel.data[(r * w + x) * c + (c == 3 ? k : 0)]
                pixels[(r * width + left + x) * 3 + k] = value.isFinite ? min(max((value + 1) / 2, 0), 1) : 0
            } } }
            left += w + gutter
        }
        return Image(width: width, height: height, channels: 3, pixels: pixels)
    }

    /// An image as a [1, H, W, C] tensor on the [-1, 1] scale.
    public static func tensor(_ image: Image) throws -> Tensor {
        let x = try Tensor(uninitializedShape: [1, image.height, image.width, image.channels])
        image.pixels.withUnsafeBufferPointer { p in for i in 0..<p.count { x.data[i] = p[i] * 2 - 1 } }
        return x
    }

    /// The observation y in the form the operator produces (one channel after `gray`, else three),
    /// projected onto A's range (y ← A A† y: e.g. a mask's holes hold zeros whatever the photo had there).
    public static func observation(_ x: Tensor, for a: any DegradationOperator) throws -> Tensor {
        let channels = x.shape[3]
        let wantsGray = a.spec.split(separator: ",").contains { $0 == "gray" }
        var y = x
        if wantsGray, channels == 3 { y = try GrayscaleOperator().apply(x) }  // a color photo given for colorization
        if !wantsGray, channels == 1 {
            y = try Tensor(uninitializedShape: [x.shape[0], x.shape[1], x.shape[2], 3])
            for p in 0..<x.count { for k in 0..<3 { y.data[3 * p + k] = x.data[p] } }
        }
        // y ← A A† y, in bands of rows for local operators (no image-sized A† y at once). Operators with a halo
        // (blur, bicubic) have no band-wise A A†: y is used as given on large images (DDNM's correction is the
        // least-squares one either way), projected whole up to 256².
        if let local = a as? any WindowableOperator, local.windowAlignment > 0, local.windowHalo > 0 {
            let shape = try a.imageShape(for: y.shape)
            return shape[1] * shape[2] <= 256 * 256 ? try a.apply(try a.pseudoInverse(y)) : y
        }
        if let local = a as? any WindowableOperator, local.windowAlignment > 0, y.shape[0] == 1 {
            let projected = try Tensor(uninitializedShape: y.shape)
            let shape = try a.imageShape(for: y.shape)
            for rect in Consistency.bands(height: shape[1], width: shape[2], alignment: local.windowAlignment) {
                let (op, observed) = try local.window(rect, imageShape: shape)
                try projected.paste(try op.apply(try op.pseudoInverse(try y.crop(observed))), at: observed)
            }
            return projected
        }
        return try a.apply(try a.pseudoInverse(y))
    }
}

/// The papers' SR protocol for `--simulate` (ResShift, DiffIR): a clean image shrunk by the project's `bicubic:s`
/// (reflect borders, Keys a = −0.5), clamped and rounded to 8 bits as a saved image would be; the restored image
/// measured against the clean one and against bicubic upsampling of the same input.
enum SimulatedSuperResolution {
    /// y = A x for a clean [1, H, W, C] image on [-1, 1] whose sides are multiples of `factor`.
    static func shrink(_ clean: Tensor, factor: Int, name: String) throws -> Tensor {
        let (_, h, w, _) = try clean.nhwc("simulate")
        guard w % factor == 0, h % factor == 0 else {
            throw RestorationError("--simulate needs a clean image whose sides are multiples of \(factor), got \(w)×\(h) (\(name))")
        }
        let y = try clamp(try OperatorSpec.parse("bicubic:\(factor)", loadMask: { _ in throw RestorationError("no mask here") }).apply(clean), to: -1...1)
        for i in 0..<y.count { y.data[i] = ((y.data[i] + 1) * 127.5).rounded() / 127.5 - 1 }
        return y
    }

    /// PSNR/SSIM of `restored` and of bicubic upsampling of `input` against `clean`, into `report`.
    static func measure(_ restored: Tensor, input: Tensor, clean: Tensor, factor: Int, into report: inout RestorationReport) throws {
        report.psnr = Quality.psnr(restored, clean)
        report.ssim = Quality.ssim(restored, clean)
        let bicubic = try clamp(try resizeBicubic(input, height: restored.shape[1], width: restored.shape[2]), to: -1...1)
        report.bicubicPSNR = Quality.psnr(bicubic, clean)
        report.bicubicSSIM = Quality.ssim(bicubic, clean)
        report.simulated = "bicubic:\(factor)"
    }
}
