import Engine

/// Overlapping patches merged by weights: each `add` accumulates w·patch and w, `normalized` divides the sums
/// by the weights. The one accumulate-normalise implementation of the tiled computations (the tiled ε of
/// DreamClean, ResShift's chopper; a tiled VAE will reuse it). Memory: the output and one weight plane.
public final class BlendCanvas {
    /// [n, H, W, C], the weighted sums until `normalized`.
    public let sums: Tensor
    private var weights: [Float]
    private let height: Int, width: Int

    public init(shape: [Int]) throws {
        sums = try Tensor(shape: shape, repeating: 0)
        (height, width) = (shape[1], shape[2])
        weights = [Float](repeating: 0, count: shape[1] * shape[2])
    }

    /// Adds `patch` ([n, rect.height, rect.width, C]) at `rect` with per-pixel weights (rect.height·rect.width,
    /// the same for every sample).
    public func add(_ patch: Tensor, at rect: PixelRect, weights patchWeights: [Float]) throws {
        let (n, ph, pw, c) = try patch.nhwc("canvas")
        guard n == sums.shape[0], c == sums.shape[3], ph == rect.height, pw == rect.width, patchWeights.count == ph * pw,
              rect.y >= 0, rect.x >= 0, rect.y + ph <= height, rect.x + pw <= width else {
            throw EngineError.invalidArgument(op: "canvas", reason: "a \(patch.shape) patch at \(rect) does not fit \(sums.shape)")
        }
        for b in 0..<n { for r in 0..<ph { for q in 0..<pw {
            let w = patchWeights[r * pw + q], p = (rect.y + r) * width + rect.x + q
            if b == 0 { weights[p] += w }
            let target = sums.data + (b * height * width + p) * c, source = patch.data + ((b * ph + r) * pw + q) * c
            for k in 0..<c { target[k] += w * source[k] }
        } } }
    }

    /// How a sum becomes a mean: x / w, or x · (1/w) (one rounding less exact; the tiled ε has always used it,
    /// and its outputs are kept bit for bit).
    public enum Normalization { case divide, multiplyByReciprocal }

    /// The weighted mean (in place: the sums become the result).
    public func normalized(_ normalization: Normalization = .divide) -> Tensor {
        let (n, c) = (sums.shape[0], sums.shape[3])
        for b in 0..<n { for p in 0..<(height * width) {
            let target = sums.data + (b * height * width + p) * c
            switch normalization {
            case .divide: for k in 0..<c { target[k] /= weights[p] }
            case .multiplyByReciprocal:
                let inverse = 1 / weights[p]
                for k in 0..<c { target[k] *= inverse }
            }
        } }
        return sums
    }
}

extension Tensor {
    /// The rect of every sample of an NHWC tensor, as a new [n, h, w, C] tensor.
    func cropAllSamples(_ rect: PixelRect) throws -> Tensor {
        let (n, h, w, c) = try nhwc("crop")
        let out = try Tensor(uninitializedShape: [n, rect.height, rect.width, c])
        for b in 0..<n { for r in 0..<rect.height {
            (out.data + (b * rect.height + r) * rect.width * c).update(from: data + ((b * h + rect.y + r) * w + rect.x) * c, count: rect.width * c)
        } }
        return out
    }
}
