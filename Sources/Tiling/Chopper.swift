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
        return try mergeTiles(image, tileHeight: min(chopSize, height), tileWidth: min(chopSize, width), rows: starts(height), columns: starts(width),
                              scale: scale, outputChannels: outputChannels, weights: blendWeights, restore: restore)
    }

    /// 1 everywhere (average), or a tent that is highest in the middle and positive at the border (feathered).
    func blendWeights(height: Int, width: Int) -> [Float] {
        guard blend == .feathered else { return Array(repeating: 1, count: height * width) }
        return featheredWeights(height: height, width: width)
    }
}

/// A tent that is highest in the middle of a tile and positive at its border.
func featheredWeights(height: Int, width: Int) -> [Float] {
    func ramp(_ i: Int, _ n: Int) -> Float { Float(min(i + 1, n - i)) / Float((n + 1) / 2) }
    var w = [Float](repeating: 0, count: height * width)
    for y in 0..<height { for x in 0..<width { w[y * width + x] = ramp(y, height) * ramp(x, width) } }
    return w
}

/// Restores the tiles at `rows` × `columns` (each tileHeight × tileWidth) of `image` with `restore` and merges the
/// results (`scale` times larger) on a canvas with the per-pixel `weights` of a result.
func mergeTiles(_ image: Tensor, tileHeight ph: Int, tileWidth pw: Int, rows: [Int], columns cols: [Int], scale: Int, outputChannels: Int,
                weights: (_ height: Int, _ width: Int) -> [Float],
                restore: (_ patch: Tensor, _ index: Int, _ count: Int) throws -> Tensor) throws -> Tensor {
    let (_, height, width, _) = try image.nhwc("tiles")
    let canvas = try BlendCanvas(shape: [1, height * scale, width * scale, outputChannels])
    let patchWeight = weights(ph * scale, pw * scale)
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

/// Evenly spread tiles for networks whose tiles should all be as small as allowed: per axis the fewest tiles of at
/// most `maxTile` pixels that overlap by at least `overlap`, all of one size (a multiple of `multiple`), starts spread
/// evenly from 0 to length − size. Results merge with feathered weights. A length that fits `maxTile` is one tile.
public struct EvenTiles: Sendable, Equatable {
    public let maxTile: Int
    public let overlap: Int
    public let multiple: Int

    public init(maxTile: Int, overlap: Int, multiple: Int = 1) throws {
        guard multiple >= 1, maxTile >= multiple, maxTile % multiple == 0, overlap >= 0, overlap < maxTile else {
            throw SamplerError("tiles of \(maxTile) with overlap \(overlap) (multiple of \(multiple)) are not possible")
        }
        (self.maxTile, self.overlap, self.multiple) = (maxTile, overlap, multiple)
    }

    /// The tile size and the starts along an axis of `length` pixels (a multiple of `multiple`).
    public func layout(_ length: Int) -> (size: Int, starts: [Int]) {
        guard length > maxTile else { return (length, [0]) }
        let count = (length - overlap + (maxTile - overlap) - 1) / (maxTile - overlap)
        // The smallest size (a multiple) with which `count` tiles overlapping by `overlap` cover the length.
        var size = (length + (count - 1) * overlap + count - 1) / count
        size = min(maxTile, (size + multiple - 1) / multiple * multiple)
        let span = length - size
        let starts = (0..<count).map { k in count == 1 ? 0 : (span * k / (count - 1)) }
        return (size, starts)
    }

    /// The number of tiles of an image.
    public func count(height: Int, width: Int) -> Int { layout(height).starts.count * layout(width).starts.count }

    /// Restores `image` ([1, H, W, C]) tile by tile with `restore` (tile → result `scale` times larger), merged with
    /// feathered weights; a single tile is `restore(image)` itself.
    public func run(_ image: Tensor, scale: Int, outputChannels: Int,
                    restore: (_ patch: Tensor, _ index: Int, _ count: Int) throws -> Tensor) throws -> Tensor {
        let (n, height, width, _) = try image.nhwc("EvenTiles")
        guard n == 1 else { throw SamplerError("tiles take one image at a time") }
        let (rows, columns) = (layout(height), layout(width))
        if rows.starts.count == 1, columns.starts.count == 1 { return try restore(image, 0, 1) }
        return try mergeTiles(image, tileHeight: rows.size, tileWidth: columns.size, rows: rows.starts, columns: columns.starts, scale: scale,
                              outputChannels: outputChannels, weights: featheredWeights, restore: restore)
    }
}

