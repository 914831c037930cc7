import Engine
import Foundation
import ImageIO
import Operators

/// Any image size for the priors' methods: an observation whose output side is not a multiple of what the
/// network needs (8 for the ADM priors) is padded by reflection — in y's own domain, by whole pixels of y, so
/// that A's scale maps it onto whole output pixels — restored, and the result cropped back to the size the
/// operator gives the unpadded y. Masks are padded the same way. A side needs padding where the method cannot
/// take it as it is: DreamClean's tiled ε, every side; DDNM, sides up to a window (larger ones are windowed).
struct AnySizePadding {
    /// y's padded size and the output size to crop back to.
    let paddedWidth: Int, paddedHeight: Int
    let outputWidth: Int, outputHeight: Int
    let scale: Int

    /// nil when `image` (y, `width`×`height`) needs no padding. `scale`: output/y side ratio of A (1 for blind
    /// methods); `multiple`: the network's size multiple; sides of the output up to `limit` must be multiples.
    init?(width: Int, height: Int, scale: Int, multiple: Int, limit: Int) {
        let step = multiple / gcd(multiple, max(scale, 1))  // y pixels per multiple of output pixels
        func padded(_ n: Int) -> Int { (n * scale) % multiple == 0 || n * scale > limit ? n : (n + step - 1) / step * step }
        (paddedWidth, paddedHeight) = (padded(width), padded(height))
        (outputWidth, outputHeight, self.scale) = (width * scale, height * scale, scale)
        if paddedWidth == width, paddedHeight == height { return nil }
    }

    /// The output/y side ratio of `a` for an observation of `width`×`height` (1 when A changes no size).
    static func scale(of a: (any DegradationOperator)?, width: Int, height: Int) -> Int {
        guard let a, let shape = try? a.imageShape(for: [1, height, width, 3]), shape.count == 4, height > 0 else { return 1 }
        return max(1, shape[1] / height)
    }

    /// `image` padded by reflection (whole-sample mirror, repeated for pads longer than the image).
    func pad(_ image: Image) -> Image {
        func mirror(_ i: Int, _ n: Int) -> Int {
            guard n > 1 else { return 0 }
            let j = i % (2 * n)
            return j < n ? j : 2 * n - 1 - j
        }
        let (w, h, c) = (image.width, image.height, image.channels)
        var pixels = [Float](repeating: 0, count: paddedWidth * paddedHeight * c)
        for y in 0..<paddedHeight {
            let sy = mirror(y, h)
            for x in 0..<paddedWidth {
                let (sx, to) = (mirror(x, w), (y * paddedWidth + x) * c)
                for k in 0..<c { pixels[to + k] = image.pixels[(sy * w + sx) * c + k] }
            }
        }
        return Image(width: paddedWidth, height: paddedHeight, channels: c, pixels: pixels, sourceBitDepth: image.sourceBitDepth)
    }

    /// The result cropped to the unpadded output, with the original alpha plane at that size; the report says so.
    func crop(_ result: RestorationResult, alpha: AlphaPlane?) throws -> RestorationResult {
        var cropped = result
        cropped.image = try result.image.crop(PixelRect(y: 0, x: 0, height: outputHeight, width: outputWidth))
        cropped.alpha = alpha.map { $0.width == outputWidth && $0.height == outputHeight ? $0 : $0.resized(width: outputWidth, height: outputHeight) }
        cropped.observation = nil
        cropped.sideBySide = nil
        cropped.report.padded = "restored at \(paddedWidth * scale)×\(paddedHeight * scale) (reflect padding), cropped"
        return cropped
    }
}
