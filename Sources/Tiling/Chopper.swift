import Engine
import Methods

/// The official way to process an image larger than `chopSize` (`ImageSpliterTh`): patches of `chopSize`
/// starting every `stride` along each axis (the last start snapped to `length − chopSize`, duplicates removed),
/// each restored on its own, results averaged where they overlap (plain averaging) or blended with weights
/// that fall off linearly towards the patch borders (`feathered`, our option: no visible seams).
public struct ResShiftChopper: Sendable, Equatable {
    public enum Blend: String, Sendable { case average, feathered }
    public let chopSize: Int
    public let stride: Int
    public let blend: Blend

    public init(chopSize: Int, stride: Int, blend: Blend = .average) throws {
        guard chopSize >= 1, stride >= 1, stride <= chopSize else {
            throw SamplerError("chop stride (\(stride)) must be between 1 and the chop size (\(chopSize))")
        }
        self.chopSize = chopSize
        self.stride = stride
        self.blend = blend
    }

    /// The official stride for a chop size at ×4 (`inference_resshift.py`): 512 → 448, 256 → 224, 64 → 48; else
    /// 7/8 of the size.
    public static func defaultStride(chopSize: Int) -> Int {
        switch chopSize {
        case 512: return 448
        case 256: return 224
        case 64: return 48
        default: return max(1, chopSize * 7 / 8)
        }
    }

    /// `extract_starts`.
    public func starts(_ length: Int) -> [Int] {
        guard length > chopSize else { return [0] }
        var seen = Set<Int>(), result: [Int] = []
        for s in Swift.stride(from: 0, to: length, by: stride) {
            let start = s + chopSize > length ? length - chopSize : s
            if seen.insert(start).inserted { result.append(start) }
        }
        return result
    }

    /// Restores `image` ([1, H, W, C]) patch by patch with `restore` (patch → result `scale` times larger) and
    /// merges the results. `image` is processed whole when it fits in one patch.
    public func run(_ image: Tensor, scale: Int, outputChannels: Int,
                    restore: (_ patch: Tensor, _ index: Int, _ count: Int) throws -> Tensor) throws -> Tensor {
        let (n, height, width, _) = try image.nhwc("ResShiftChopper")
        guard n == 1 else { throw SamplerError("the chopper takes one image at a time") }
        if height <= chopSize, width <= chopSize { return try restore(image, 0, 1) }
        let rows = starts(height), cols = starts(width)
        let ph = min(chopSize, height), pw = min(chopSize, width)
        let canvas = try BlendCanvas(shape: [1, height * scale, width * scale, outputChannels])
        let patchWeight = blendWeights(height: ph * scale, width: pw * scale)
        var index = 0
        for top in rows {
            for left in cols {
                let result = try restore(try image.crop(PixelRect(y: top, x: left, height: ph, width: pw)), index, rows.count * cols.count)
                guard result.shape == [1, ph * scale, pw * scale, outputChannels] else {
                    throw SamplerError("a restored patch has shape \(result.shape), expected \([1, ph * scale, pw * scale, outputChannels])")
                }
                try canvas.add(result, at: PixelRect(y: top * scale, x: left * scale, height: ph * scale, width: pw * scale), weights: patchWeight)
                index += 1
            }
        }
        return canvas.normalized(.divide)
    }

    /// 1 everywhere (average), or a tent that is highest in the middle and positive at the border (feathered).
    func blendWeights(height: Int, width: Int) -> [Float] {
        guard blend == .feathered else { return Array(repeating: 1, count: height * width) }
        func ramp(_ i: Int, _ n: Int) -> Float { Float(min(i + 1, n - i)) / Float((n + 1) / 2) }
        var w = [Float](repeating: 0, count: height * width)
        for y in 0..<height { for x in 0..<width { w[y * width + x] = ramp(y, height) * ramp(x, width) } }
        return w
    }
}

