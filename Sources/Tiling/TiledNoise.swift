import Engine
import Methods

/// An ε-function over images larger than the prior: overlapping windows, each through the network, blended
/// with smooth weights at every call (as LDM's `split_input_params` blends its patches: weights that fall
/// toward the window borders, clipped to [0.01, 0.5] before normalisation), so no seams appear and memory
/// holds one window's activations at a time.
public struct TiledNoisePredictor {
    public let window: Int
    /// nil: half the window.
    public let overlap: Int?
    public let sizeMultiple: Int

    public init(window: Int, overlap: Int?, sizeMultiple: Int = 1) {
        self.window = window
        self.overlap = overlap
        self.sizeMultiple = sizeMultiple
    }

    /// Border-distance weights of a window: min(distance to the nearest edge + 1) / (side / 2), clipped.
    static func weights(_ h: Int, _ w: Int) -> [Float] {
        var out = [Float](repeating: 0, count: h * w)
        for r in 0..<h { for c in 0..<w {
            let d = Float(min(min(r, h - 1 - r), min(c, w - 1 - c)) + 1) / Float(max(min(h, w) / 2, 1))
            out[r * w + c] = min(max(d, 0.01), 0.5)
        } }
        return out
    }

    /// How many windows one evaluation on an image of `height`×`width` runs (1: the image fits one window).
    public func windowCount(height: Int, width: Int) throws -> Int {
        guard height > window || width > window else { return 1 }
        return try WindowPlan(height: height, width: width, window: window, overlap: overlap, alignment: 1, sizeMultiple: sizeMultiple).rects.count
    }

    public func wrap(_ network: @escaping Denoiser) -> Denoiser {
        let (window, overlap, multiple) = (window, overlap, sizeMultiple)
        return { x, t in
            let (n, h, w, _) = try x.nhwc("tiled ε")
            guard h > window || w > window else { return try network(x, t) }
            let plan = try WindowPlan(height: h, width: w, window: window, overlap: overlap, alignment: 1, sizeMultiple: multiple)
            var canvas: BlendCanvas?
            for rect in plan.rects {
                let e = try network(try x.cropAllSamples(rect), t)
                if canvas == nil { canvas = try BlendCanvas(shape: [n, h, w, e.shape[3]]) }
                guard let canvas, canvas.sums.shape[3] == e.shape[3] else { throw SamplerError("the network changed its channel count between windows") }
                try canvas.add(e, at: rect, weights: Self.weights(rect.height, rect.width))
            }
            guard let canvas else { throw SamplerError("no windows") }
            return canvas.normalized(.multiplyByReciprocal)
        }
    }
}
