import ArgumentParser
import Engine
import Foundation
import ImageIO

/// PLACEHOLDER until the first restoration method lands: a Gaussian blur run through the engine's
/// depthwise convolution, showing the whole path decode → tensor → oneDNN → encode.
struct Blur: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Placeholder: Gaussian-blur an image through the engine (decode → conv → encode).",
        discussion: "This is not a restoration; it exercises image I/O and the convolution engine until the diffusion methods land."
    )

    @OptionGroup var io: ImageIOOptions

    @Option(help: "Standard deviation of the Gaussian, in pixels (0.1–50).")
    var sigma: Float = 2

    func validate() throws {
        guard (0.1...50).contains(sigma) else { throw ValidationError("--sigma must be between 0.1 and 50") }
    }

    func run() throws {
        try failingCleanly {
            for job in try io.jobs() {
                let start = Date()
                let image = try ImageReader.read(path: job.input, maxPixels: io.maxPixels)
                let (color, alpha) = image.splittingAlpha()
                let blurred = try GaussianBlur(sigma: sigma, channels: color.channels).apply(to: color)
                let result = blurred.attachingAlpha(alpha)
                let report: [String: Any] = [
                    "method": "gaussian-blur (placeholder, not a restoration)", "sigma": Double(sigma),
                    "input": (job.input as NSString).lastPathComponent, "version": BuildInfo.version,
                    "elapsed_s": Date().timeIntervalSince(start),
                ]
                try io.write(result, to: job.output, report: report, inputs: [job.input])
                if !io.quiet {
                    FileHandle.standardError.write(Data(String(format: "blur: %@ → %@ (%d×%d, %.2f s)\n", job.input, job.output,
                                                               image.width, image.height, Date().timeIntervalSince(start)).utf8))
                }
            }
        }
    }
}

/// A Gaussian blur as one depthwise k×k convolution with reflect padding, k = 2·⌈3σ⌉ + 1.
struct GaussianBlur {
    let conv: Conv2D
    let radius: Int

    init(sigma: Float, channels: Int) throws {
        let radius = max(1, Int((3 * sigma).rounded(.up)))
        self.radius = radius
        let size = 2 * radius + 1
        var taps = (0..<size).map { i -> Float in let d = Float(i - radius); return Foundation.exp(-d * d / (2 * sigma * sigma)) }
        let total = taps.reduce(0, +)
        taps = taps.map { $0 / total }
        var weights: [Float] = []
        for _ in 0..<channels { for y in 0..<size { for x in 0..<size { weights.append(taps[y] * taps[x]) } } }
        conv = try Conv2D(weight: try Tensor(shape: [channels, 1, size, size], values: weights),
                          padding: .reflect(radius), groups: channels)
    }

    func apply(to image: Image) throws -> Image {
        guard image.width > radius, image.height > radius else {
            throw CommandFailure("image \(image.width)×\(image.height) is too small for a blur of radius \(radius)")
        }
        let x = try Tensor(shape: [1, image.height, image.width, image.channels], values: image.pixels)
        let y = try conv(x)
        return Image(width: image.width, height: image.height, channels: image.channels, pixels: y.values,
                     sourceBitDepth: image.sourceBitDepth)
    }
}
