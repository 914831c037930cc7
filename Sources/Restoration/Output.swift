import Engine
import Foundation
import ImageIO

/// The PNG text chunk every output carries its report in.
public let reportChunkKeyword = "DiffusionRestore"

extension RestorationResult {
    /// The restored image with its alpha plane, as an `Image` on [0, 1].
    public func imageWithAlpha() -> Image {
        let x = image
        let (h, w, c) = (x.shape[1], x.shape[2], x.shape[3])
        let rgb = Image(width: w, height: h, channels: c, pixels: Array(unsafeUninitializedCapacity: h * w * c) { buffer, count in
            for i in 0..<(h * w * c) { buffer[i] = (x.data[i] + 1) * 0.5 }  // clamped: within [0, 1]
            count = h * w * c
        }, sourceBitDepth: sourceBitDepth)
        return rgb.attachingAlpha(alpha)
    }

    /// Writes the result atomically (never over `inputs`, an existing file only with `overwrite`) with its report
    /// in the `DiffusionRestore` chunk (PNG). A PNG without alpha streams its rows from the tensor: no second
    /// whole-image buffer (USDR's large outputs). Returns the report's JSON.
    @discardableResult
    public func write(to path: String, format: ImageFileFormat, overwrite: Bool, protecting inputs: [String]) throws -> String {
        let text = try report.json()
        let x = image
        let (h, w, c) = (x.shape[1], x.shape[2], x.shape[3])
        if alpha == nil, case .png(let bits) = format {
            try ImageWriter.writePNGRows(to: path, width: w, height: h, channels: c, bits: bits, text: [reportChunkKeyword: text],
                                         overwrite: overwrite, protecting: inputs) { y, samples in
                let source = x.data + y * w * c
                for i in 0..<(w * c) { samples[i] = (source[i] + 1) * 0.5 }
            }
        } else {
            try ImageWriter.write(imageWithAlpha(), to: path, format: format, text: [reportChunkKeyword: text], overwrite: overwrite, protecting: inputs)
        }
        return text
    }
}

extension RestorationResult {
    /// One line for a person: method, input → output, size, consistency and quality where measured, work, time.
    public func summary(input: String, output: String) -> String {
        let r = report
        var parts = ["\(image.shape[2])×\(image.shape[1])"]
        if let rms = r.consistencyRMS { parts.append(String(format: "‖Ax̂−y‖ %.4f", rms)) }
        if let psnr = r.psnr { parts.append(String(format: "PSNR %.2f dB", psnr)) }
        if let ssim = r.ssim { parts.append(String(format: "SSIM %.4f", ssim)) }
        if let psnr = r.bicubicPSNR, let ssim = r.bicubicSSIM { parts.append(String(format: "bicubic %.2f dB, %.3f", psnr, ssim)) }
        if let psnr = r.inputPSNR, let ssim = r.inputSSIM { parts.append(String(format: "degraded input %.2f dB, %.3f", psnr, ssim)) }
        if let evaluations = r.networkEvaluations { parts.append("\(evaluations) evaluations") }
        if let patches = r.patches, patches > 1 { parts.append("\(patches) patches") }
        if let windows = r.windows, windows > 1 { parts.append("\(windows) windows") }
        parts.append(String(format: "%.1f s", r.elapsedSeconds ?? 0))
        return "\(r.method): \(input) → \(output) (\(parts.joined(separator: ", ")))"
    }
}
