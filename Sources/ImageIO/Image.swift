/// A decoded image: `height` rows of `width` pixels, each with `channels` interleaved Float32 samples in
/// [0, 1] (HWC order, i.e. NHWC with N = 1, the engine's layout).
///
/// Channel layouts: 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA. Alpha is straight (not premultiplied), as
/// stored in PNG. Samples are not gamma-decoded: they are the file's values scaled to [0, 1].
public struct Image: Sendable, Equatable {
    /// Pixels per row.
    public let width: Int
    /// Number of rows.
    public let height: Int
    /// Samples per pixel, 1-4 (gray, gray + alpha, RGB, RGBA).
    public let channels: Int
    /// `height × width × channels` samples in [0, 1], row-major, channels interleaved.
    public var pixels: [Float]
    /// Bits per sample in the source file (1, 2, 4, 8 or 16); 8 for images made in memory.
    /// Writers use it to pick the default PNG depth (16 when above 8).
    public var sourceBitDepth: Int
    /// Text chunks read from a PNG (tEXt, zTXt, iTXt), keyword → text. Empty for JPEG.
    public var text: [String: String]

    /// An image from interleaved samples.
    ///
    /// - Precondition: `width` and `height` are positive, `channels` is 1-4, and
    ///   `pixels.count == width * height * channels`.
    public init(width: Int, height: Int, channels: Int, pixels: [Float], sourceBitDepth: Int = 8,
                text: [String: String] = [:]) {
        precondition(width > 0 && height > 0, "Image: dimensions must be positive, got \(width)x\(height)")
        precondition((1...4).contains(channels), "Image: channels must be 1-4, got \(channels)")
        precondition(pixels.count == width * height * channels,
                     "Image: expected \(width * height * channels) samples, got \(pixels.count)")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
        self.sourceBitDepth = sourceBitDepth
        self.text = text
    }

    /// An image filled with one value in every sample.
    public init(width: Int, height: Int, channels: Int, repeating value: Float) {
        self.init(width: width, height: height, channels: channels,
                  pixels: [Float](repeating: value, count: width * height * channels))
    }

    /// Whether the last channel is alpha (2 or 4 channels).
    public var hasAlpha: Bool { channels == 2 || channels == 4 }

    /// Number of colour channels, alpha excluded (1 for gray, 3 for RGB).
    public var colorChannels: Int { hasAlpha ? channels - 1 : channels }

    /// The samples mapped from [0, 1] to [-1, 1] (`2x - 1`), the range diffusion models work in.
    public func toSignedRange() -> [Float] {
        pixels.map { $0 * 2 - 1 }
    }

    /// An image from samples in [-1, 1] (mapped by `(x + 1) / 2` and clamped to [0, 1]; NaN becomes 0).
    ///
    /// - Precondition: as for `init(width:height:channels:pixels:)`.
    public static func fromSignedRange(_ samples: [Float], width: Int, height: Int, channels: Int,
                                       sourceBitDepth: Int = 8, text: [String: String] = [:]) -> Image {
        let pixels = samples.map { value -> Float in
            let unit = (value + 1) * 0.5
            return unit >= 0 ? min(unit, 1) : 0   // NaN fails `>= 0` and becomes 0.
        }
        return Image(width: width, height: height, channels: channels, pixels: pixels,
                     sourceBitDepth: sourceBitDepth, text: text)
    }

    /// The colour part (gray or RGB) and, if present, the alpha plane, so the colour can be restored
    /// on its own and the alpha re-attached with `attachingAlpha(_:)` afterwards.
    public func splittingAlpha() -> (color: Image, alpha: AlphaPlane?) {
        guard hasAlpha else { return (self, nil) }
        let colorCount = channels - 1
        let pixelCount = width * height
        var color = [Float](repeating: 0, count: pixelCount * colorCount)
        var alpha = [Float](repeating: 0, count: pixelCount)
        pixels.withUnsafeBufferPointer { source in
            for index in 0..<pixelCount {
                let base = index * channels
                for channel in 0..<colorCount {
                    color[index * colorCount + channel] = source[base + channel]
                }
                alpha[index] = source[base + colorCount]
            }
        }
        let colorImage = Image(width: width, height: height, channels: colorCount, pixels: color,
                               sourceBitDepth: sourceBitDepth, text: text)
        return (colorImage, AlphaPlane(width: width, height: height, values: alpha))
    }

    /// This colour image (gray or RGB) with an alpha channel appended; returns `self` unchanged when
    /// `alpha` is nil. An alpha plane of a different size (e.g. after upscaling) is resampled bilinearly.
    ///
    /// - Precondition: the image has no alpha channel yet.
    public func attachingAlpha(_ alpha: AlphaPlane?) -> Image {
        guard let alpha else { return self }
        precondition(!hasAlpha, "attachingAlpha: the image already has an alpha channel")
        let plane = alpha.resized(width: width, height: height)
        let outputChannels = channels + 1
        let pixelCount = width * height
        var output = [Float](repeating: 0, count: pixelCount * outputChannels)
        pixels.withUnsafeBufferPointer { source in
            for index in 0..<pixelCount {
                for channel in 0..<channels {
                    output[index * outputChannels + channel] = source[index * channels + channel]
                }
                output[index * outputChannels + channels] = plane.values[index]
            }
        }
        return Image(width: width, height: height, channels: outputChannels, pixels: output,
                     sourceBitDepth: sourceBitDepth, text: text)
    }

    /// The image with gray copied into R, G and B (gray → RGB, gray + alpha → RGBA); RGB(A) unchanged.
    public func expandingGrayToRGB() -> Image {
        guard colorChannels == 1 else { return self }
        let outputChannels = channels + 2
        let pixelCount = width * height
        var output = [Float](repeating: 0, count: pixelCount * outputChannels)
        pixels.withUnsafeBufferPointer { source in
            for index in 0..<pixelCount {
                let gray = source[index * channels]
                output[index * outputChannels] = gray
                output[index * outputChannels + 1] = gray
                output[index * outputChannels + 2] = gray
                if hasAlpha { output[index * outputChannels + 3] = source[index * channels + 1] }
            }
        }
        return Image(width: width, height: height, channels: outputChannels, pixels: output,
                     sourceBitDepth: sourceBitDepth, text: text)
    }

    /// The sample at row `y`, column `x`, channel `channel`.
    public subscript(x: Int, y: Int, channel: Int) -> Float {
        get { pixels[(y * width + x) * channels + channel] }
        set { pixels[(y * width + x) * channels + channel] = newValue }
    }
}

/// An alpha channel split off an image: `height × width` values in [0, 1], row-major.
public struct AlphaPlane: Sendable, Equatable {
    /// Pixels per row.
    public let width: Int
    /// Number of rows.
    public let height: Int
    /// `width × height` alpha values in [0, 1].
    public let values: [Float]

    /// An alpha plane from its values.
    ///
    /// - Precondition: `values.count == width * height`, both dimensions positive.
    public init(width: Int, height: Int, values: [Float]) {
        precondition(width > 0 && height > 0 && values.count == width * height,
                     "AlphaPlane: \(values.count) values for \(width)x\(height)")
        self.width = width
        self.height = height
        self.values = values
    }

    /// The plane resampled to the given size with bilinear interpolation (pixel centres aligned);
    /// `self` when the size already matches.
    public func resized(width newWidth: Int, height newHeight: Int) -> AlphaPlane {
        if newWidth == width && newHeight == height { return self }
        precondition(newWidth > 0 && newHeight > 0, "AlphaPlane.resized: size must be positive")
        let scaleX = Float(width) / Float(newWidth)
        let scaleY = Float(height) / Float(newHeight)
        var output = [Float](repeating: 0, count: newWidth * newHeight)
        for y in 0..<newHeight {
            let sourceY = max(0, min(Float(height - 1), (Float(y) + 0.5) * scaleY - 0.5))
            let y0 = Int(sourceY), y1 = min(y0 + 1, height - 1)
            let fy = sourceY - Float(y0)
            for x in 0..<newWidth {
                let sourceX = max(0, min(Float(width - 1), (Float(x) + 0.5) * scaleX - 0.5))
                let x0 = Int(sourceX), x1 = min(x0 + 1, width - 1)
                let fx = sourceX - Float(x0)
                let top = values[y0 * width + x0] * (1 - fx) + values[y0 * width + x1] * fx
                let bottom = values[y1 * width + x0] * (1 - fx) + values[y1 * width + x1] * fx
                output[y * newWidth + x] = top * (1 - fy) + bottom * fy
            }
        }
        return AlphaPlane(width: newWidth, height: newHeight, values: output)
    }
}
