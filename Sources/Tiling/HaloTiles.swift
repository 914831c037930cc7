import Engine

/// Tiles with a halo for networks that are local except for their normalisation and attention (autoencoders):
/// the grid is cut into cores of `core` units; each tile runs on its core widened by `blend + halo` units of real
/// context on every side the image continues (the image's own edge is the whole image's edge, zero padding
/// alike), and its output counts over its core plus `blend` units either side, with weights ramping linearly
/// from 0 to 1 across the `2·blend` units around each inner core boundary, normalised (Σ w·out / Σ w) — so
/// neighbours cross-fade where they meet instead of meeting at a hard line, and every output pixel comes from
/// tiles that saw at least `halo` units of context around it.
///
/// Unlike LDM's `split_input_params` windows (every pixel in ~4 windows, weights falling to the windows' own
/// edges), a pixel is computed from at most two tiles per axis, always away from their edges, at (core + 2·(halo +
/// blend))²/core² passes instead of 4. What no tiling reproduces is an autoencoder's global part (GroupNorm
/// statistics, attention over the whole latent), so which comes closer to the whole-image pass depends on the
/// weights (Benchmarks/RESULTS.md, LDM first stage).
public struct HaloTiles: Sendable, Equatable {
    public let core: Int, halo: Int, blend: Int

    public init(core: Int, halo: Int, blend: Int) throws {
        guard core >= 1, halo >= 0, blend >= 0, 2 * blend <= core else {
            throw EngineError.invalidArgument(op: "HaloTiles", reason: "core \(core) must be ≥ 1 and ≥ 2·blend (\(blend)); halo \(halo) ≥ 0")
        }
        self.core = core
        self.halo = halo
        self.blend = blend
    }

    /// One tile along an axis: its core [start, end) and the span [from, to) it runs on, in units.
    public struct Span: Sendable, Equatable {
        public let start: Int, end: Int, from: Int, to: Int

        public init(start: Int, end: Int, from: Int, to: Int) {
            (self.start, self.end, self.from, self.to) = (start, end, from, to)
        }
    }

    /// The tiles along an axis of `length` units: cores every `core` units, a last core shorter than `2·blend` merged
    /// into the one before it.
    public func spans(_ length: Int) -> [Span] {
        var cuts = Array(stride(from: 0, to: length, by: core)) + [length]
        if cuts.count > 2, cuts[cuts.count - 1] - cuts[cuts.count - 2] < max(1, 2 * blend) { cuts.remove(at: cuts.count - 2) }
        let reach = halo + blend
        return (0..<(cuts.count - 1)).map { i in
            Span(start: cuts[i], end: cuts[i + 1], from: max(0, cuts[i] - reach), to: min(length, cuts[i + 1] + reach))
        }
    }

    public func count(height: Int, width: Int) -> Int { spans(height).count * spans(width).count }

    /// The weight of output pixel `pixel` (of `scale` per unit) in a tile with `span` along an axis of `length` units.
    func weight(_ pixel: Int, scale: Int, span: Span, length: Int) -> Float {
        let p = (Float(pixel) + 0.5) / Float(scale)
        let r = Float(blend)
        func ramp(_ distance: Float) -> Float { r == 0 ? (distance >= 0 ? 1 : 0) : min(1, max(0, (distance + r) / (2 * r))) }
        let up: Float = span.start == 0 ? 1 : ramp(p - Float(span.start))
        let down: Float = span.end == length ? 1 : ramp(Float(span.end) - p)
        return up * down
    }

    /// Runs `body` on every tile of `input` (a grid of `gridHeight`×`gridWidth` units; a unit is `inScale` input
    /// pixels and `outScale` output pixels) and blends the outputs. `body(patch, index, count)` returns
    /// [1, rows·outScale, columns·outScale, outChannels] for a patch of rows×columns units.
    public func run(_ input: Tensor, gridHeight: Int, gridWidth: Int, inScale: Int = 1, outScale: Int = 1, outChannels: Int,
                    body: (Tensor, Int, Int) throws -> Tensor) throws -> Tensor {
        let (ys, xs) = (spans(gridHeight), spans(gridWidth))
        let canvas = try BlendCanvas(shape: [1, gridHeight * outScale, gridWidth * outScale, outChannels])
        let count = ys.count * xs.count
        var index = 0
        for sy in ys {
            for sx in xs {
                let patch = try input.crop(PixelRect(y: sy.from * inScale, x: sx.from * inScale,
                                                     height: (sy.to - sy.from) * inScale, width: (sx.to - sx.from) * inScale))
                let out = try body(patch, index, count)
                let rect = PixelRect(y: sy.from * outScale, x: sx.from * outScale, height: (sy.to - sy.from) * outScale,
                                     width: (sx.to - sx.from) * outScale)
                guard out.shape == [1, rect.height, rect.width, outChannels] else {
                    throw EngineError.shapeMismatch(op: "HaloTiles", expected: "[1, \(rect.height), \(rect.width), \(outChannels)]", found: "\(out.shape)")
                }
                let rows = (0..<rect.height).map { weight(rect.y + $0, scale: outScale, span: sy, length: gridHeight) }
                let columns = (0..<rect.width).map { weight(rect.x + $0, scale: outScale, span: sx, length: gridWidth) }
                try canvas.add(out, at: rect, weights: rows.flatMap { r in columns.map { r * $0 } })
                index += 1
            }
        }
        return canvas.normalized()
    }
}
