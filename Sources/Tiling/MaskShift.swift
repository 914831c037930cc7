import Engine
import Foundation
import Methods
import Operators

/// The windows of a tiled restoration: `size`² windows (the prior's native size) at `stride`, in raster
/// order (rows outer), the last window of each row and column snapped to the image border — as hq_demo
/// lays them out (main.py / gaussian_diffusion.py:663-756, there 256² at stride 128).
public struct WindowPlan: Equatable, Sendable {
    public let height: Int, width: Int
    public let windowHeight: Int, windowWidth: Int
    public let stride: Int
    public let rects: [PixelRect]
    /// The windows' row and column offsets (`rects` is their product, rows outer).
    public let rows: [Int], columns: [Int]

    /// - Parameters: `window` the side wanted (clipped to the image), `overlap` between neighbours (nil: half
    ///   the window after rounding to the unit);
    ///   `alignment` divides the image sides and every offset (the operator's block: s for pooling);
    ///   `sizeMultiple` divides the window sides (the network's need, e.g. 8 for a 4-level UNet).
    public init(height: Int, width: Int, window: Int, overlap requested: Int?, alignment: Int, sizeMultiple: Int = 1) throws {
        guard alignment >= 1, sizeMultiple >= 1, height % alignment == 0, width % alignment == 0 else {
            throw SamplerError("the output \(width)×\(height) is not a multiple of the operator's \(alignment)-pixel block")
        }
        let unit = lcm(alignment, sizeMultiple)
        let side = window / unit * unit
        let overlap = requested ?? side / 2
        guard side >= unit else { throw SamplerError("the window (\(window) px) is smaller than the \(unit)-pixel unit the operator and prior need") }
        guard overlap >= 0, overlap < side else { throw SamplerError("the overlap (\(overlap) px) must be at least 0 and less than the window (\(side) px)") }
        let stride = max(alignment, (side - overlap) / alignment * alignment)
        for (name, size) in [("height", height), ("width", width)] where size < side && size % sizeMultiple != 0 {
            throw SamplerError("the output \(name) \(size) px is below the window and not a multiple of \(sizeMultiple) px, as the prior needs")
        }
        self.height = height
        self.width = width
        windowHeight = min(side, height)
        windowWidth = min(side, width)
        self.stride = stride
        func offsets(_ total: Int, _ window: Int) -> [Int] {
            var list = [0]
            while list.last! + window < total { list.append(min(list.last! + stride, total - window)) }
            return list
        }
        let (wh, ww) = (min(side, height), min(side, width))
        let rows = offsets(height, wh), columns = offsets(width, ww)
        self.rows = rows
        self.columns = columns
        rects = rows.flatMap { y in columns.map { x in PixelRect(y: y, x: x, height: wh, width: ww) } }
    }

    /// The raster-earlier windows that window `index` overlaps, in raster order: the ones whose final results
    /// it keeps as known values (found among its grid neighbours, so a plan of millions of windows stays cheap).
    public func predecessors(of index: Int) -> [Int] {
        let (i, j) = (index / columns.count, index % columns.count)
        var near: [Int] = []  // columns whose span meets column j's
        var k = j
        while k > 0, columns[k - 1] + windowWidth > columns[j] { k -= 1 }
        while k < columns.count, columns[k] < columns[j] + windowWidth { near.append(k); k += 1 }
        var first = i
        while first > 0, rows[first - 1] + windowHeight > rows[i] { first -= 1 }
        return (first...i).flatMap { r in near.filter { r < i || $0 < j }.map { r * columns.count + $0 } }
    }

    /// The windows grouped in waves: a window's wave is one after the latest wave of the windows it overlaps
    /// among the raster-earlier ones (its longest dependency path, from the real rectangles: a snapped last
    /// column overlaps two windows to its left). Windows of one wave do not overlap each other and depend only
    /// on earlier waves, so a wave may run in any order or as one batch, and the result is the raster-order one.
    /// With half-window overlap this is the "knight" wavefront, wave = 2·row + column.
    public var waves: [[Int]] {
        var level = [Int](repeating: 0, count: rects.count)
        var waves: [[Int]] = []
        for index in rects.indices {
            level[index] = (predecessors(of: index).map { level[$0] }.max() ?? -1) + 1
            if level[index] == waves.count { waves.append([]) }
            waves[level[index]].append(index)
        }
        return waves
    }
}

/// Where the windows of a tiled restoration draw their noise: each window its own stream, keyed by the seed,
/// the pass (0: full size; HiR levels 1, 2, …) and the window's index, so that a window's result depends
/// neither on the order in which windows run nor on which others share its batch — the condition for
/// batching a wave, and for spreading windows over processes or machines with the one-process result.
public struct WindowNoise: Sendable, Equatable {
    public let seed: UInt64
    public init(seed: UInt64) { self.seed = seed }

    /// The stream of window `window` in pass `pass`.
    public func source(pass: Int, window: Int) -> SeededGaussian {
        var mixer = SplitMix64(seed: seed ^ 0xA076_1D64_78BD_642F)
        var key = mixer.next()
        for part in [UInt64(pass), UInt64(window)] {
            mixer = SplitMix64(seed: key ^ part &* 0xE703_7ED1_A0B4_28DB)
            key = mixer.next()
        }
        return SeededGaussian(seed: key)
    }
}

/// USDR's Mask-Shift Restoration (Wang et al., arXiv 2303.00354, §3; hq_demo): windows restored one after
/// another with DDNM; the part of a window that overlaps finished windows is a known region, re-imposed on
/// x̂0 after the range–null correction at every step, so neighbours agree exactly. Every window runs the full
/// sampler with fresh noise (hq_demo carries its x_T over from the previous window, an unintended quirk
/// not reproduced). `naive` tiles independently, without overlap or known regions (for comparison).
///
/// Two departures from hq_demo, both at the known region's inner edge (`margin: 0, feather: 0` restores its
/// hard imposition of the whole overlap): a finished window's last `margin` pixels at its inner edges are
/// restored again by the next window (the prior's edge pixels, predicted next to zero padding, are where a
/// seam showed: seam ratio 1.52 with them kept, 1.09 without, on the bundled prior), and a `feather`-wide
/// band of the kept overlap is imposed with a weight falling from 1 to 0, so the new part continues the
/// known texture instead of meeting it at a step (1.03 with both; 0.95 once HiR's correction was made
/// smooth too, `BlockMeanGuide`). Weights are constant over the operator's blocks and the HiR factor, so
/// A x̂0 = y and the block means stay exact.
public struct MaskShiftRestoration {
    public enum Tiling: String, Sendable { case msr, naive }

    public let sampler: DDNMSampler
    public let plan: WindowPlan
    public let tiling: Tiling
    /// Pixels along a finished window's inner edges that later windows do not keep but restore again (nil:
    /// an eighth of the overlap). The prior's predictions are least reliable next to a window's edge (its
    /// convolutions see zero padding there): kept, that strip is where a seam shows.
    public let margin: Int?
    /// Width in pixels of a band along the known region's inner edge where the known values are imposed
    /// softly, their weight falling linearly towards the new part (nil: an eighth of the overlap; 0 imposes
    /// the whole kept overlap hard, as hq_demo does).
    public let feather: Int?

    public init(sampler: DDNMSampler, plan: WindowPlan, tiling: Tiling = .msr, margin: Int? = nil, feather: Int? = nil) {
        self.sampler = sampler
        self.plan = plan
        self.tiling = tiling
        self.margin = margin
        self.feather = feather
    }

    /// The nominal overlap of neighbouring windows (the smaller of the two directions that tile), or nil with one window.
    var overlap: Int? {
        [plan.width > plan.windowWidth ? plan.windowWidth - plan.stride : nil,
         plan.height > plan.windowHeight ? plan.windowHeight - plan.stride : nil].compactMap { $0 }.min()
    }

    /// The block that window offsets and sides and the seam blend keep whole: the operator's alignment and, when
    /// HiR guides the windows, its factor (so that block constraints stay exact).
    public static func blockUnit(_ a: any WindowableOperator, globalFactor: Int?) -> Int {
        let alignment = max(1, a.windowAlignment)
        return globalFactor.map { lcm(alignment, $0) } ?? alignment
    }

    /// The margin and feather in effect, rounded down to whole `unit` blocks (the operator's alignment and the
    /// HiR factor, so that block constraints stay exact).
    public func seamBlend(unit: Int) throws -> (margin: Int, feather: Int) {
        let overlap = self.overlap ?? 0
        let m = margin ?? overlap / 8, f = feather ?? overlap / 8
        guard m >= 0, f >= 0 else { throw SamplerError("the seam margin and feather must be at least 0, got \(m) and \(f)") }
        guard tiling == .msr, overlap > 0 else { return (0, 0) }
        guard 2 * m + f < overlap || m + f == 0 else {
            throw SamplerError("the seam margin (\(m) px, twice) and feather (\(f) px) must fit in the \(overlap)-px overlap")
        }
        return (m / unit * unit, f / unit * unit)
    }

    /// Restores the whole image x (`imageShape` [1, H, W, C]) from y into a canvas of that shape, wave by wave
    /// (`WindowPlan.waves`), up to `batch` windows of a wave through one network evaluation; each window draws
    /// from its own stream of `noise` (pass `pass`), so the result is the same whatever the batch.
    /// `progress(windowsDone, windowCount, evaluationsDone, evaluationsTotal)`; `observe(t, window, x0|t)` after
    /// each evaluation (previews).
    /// `global`: USDR's HiR result (the whole image restored at 1/factor of the size); every window's block
    /// means are then held to it (`BlockMeanGuide`). Window offsets and sides must be multiples of the factor.
    public func restore(observation y: Tensor, operator a: any WindowableOperator, imageShape: [Int],
                        predictNoise: Denoiser, noise: WindowNoise, pass: Int = 0, batch: Int = 1,
                        global: (factor: Int, result: Tensor)? = nil,
                        progress: (Int, Int, Int, Int) -> Void = { _, _, _, _ in },
                        observe: ((_ t: Int, _ window: PixelRect, _ x0: Tensor) -> Void)? = nil) throws -> Tensor {
        guard imageShape.count == 4, imageShape[0] == 1, imageShape[1] == plan.height, imageShape[2] == plan.width else {
            throw SamplerError("tiling restores one image of \(plan.width)×\(plan.height), got \(imageShape)")
        }
        guard batch >= 1 else { throw SamplerError("the window batch must be at least 1, got \(batch)") }
        let canvas = try Tensor(shape: imageShape, repeating: 0)
        let perWindow = sampler.timesteps.networkEvaluations
        let total = perWindow * plan.rects.count
        var windowsDone = 0
        for wave in plan.waves {
            for start in stride(from: 0, to: wave.count, by: batch) {
                let chunk = Array(wave[start..<min(start + batch, wave.count)])
                let restored = try restoreWindows(chunk, observation: y, operator: a, imageShape: imageShape, predictNoise: predictNoise,
                                                  noise: noise, pass: pass, global: global, finished: { try canvas.crop($0) },
                                                  progress: { done in progress(windowsDone, plan.rects.count, windowsDone * perWindow + done, total) },
                                                  observe: observe)
                for (index, window) in zip(chunk, restored) { try canvas.paste(window, at: plan.rects[index]) }
                windowsDone += chunk.count
                progress(windowsDone, plan.rects.count, windowsDone * perWindow, total)
            }
        }
        return canvas
    }

    /// Restores the windows `indices` (of one wave) together, each evaluation of the network taking all of them
    /// as one batch; returns each window's result ([1, h, w, C]) in the order given. `finished(rect)` gives the
    /// image over `rect` as the finished windows left it (their results pasted in raster order): only the
    /// pixels of each window's predecessors (`WindowPlan.predecessors`) are read. `progress(evaluations)` counts
    /// window-evaluations done in this call.
    public func restoreWindows(_ indices: [Int], observation y: Tensor, operator a: any WindowableOperator, imageShape: [Int],
                               predictNoise: Denoiser, noise: WindowNoise, pass: Int = 0,
                               global: (factor: Int, result: Tensor)? = nil, finished: (PixelRect) throws -> Tensor,
                               progress: (Int) -> Void = { _ in },
                               observe: ((_ t: Int, _ window: PixelRect, _ x0: Tensor) -> Void)? = nil) throws -> [Tensor] {
        // Operators with a halo (blur, bicubic): a finished window keeps only its part `halo` pixels away from
        // its inner edges; the neighbour re-restores that ring, where samples straddle the two windows. The
        // overlap must leave the neighbour's own unobserved ring inside the kept part.
        let halo = tiling == .msr ? a.windowHalo : 0
        if halo > 0, let overlap, overlap < 2 * halo {
            throw SamplerError("\(a.spec) reaches \(halo) px across window edges: the overlap must be at least \(2 * halo) px, got \(overlap) (use --overlap, or a larger window)")
        }
        let unit = Self.blockUnit(a, globalFactor: global?.factor)
        let (margin, feather) = try seamBlend(unit: unit)
        var runs: [DDNMRun<SeededGaussian>] = []
        for index in indices {
            guard plan.rects.indices.contains(index) else { throw SamplerError("window \(index) is not in the plan's \(plan.rects.count)") }
            let rect = plan.rects[index]
            let (local, observed) = try a.window(rect, imageShape: imageShape)
            var known: KnownRegion?
            if tiling == .msr {
                var keep = [Float](repeating: 0, count: rect.height * rect.width)
                var any = false
                for earlier in plan.predecessors(of: index) {  // the overlap of each finished window (less its halo ring or margin) with this one
                    let done = Self.kept(plan.rects[earlier], halo: max(halo, margin), height: plan.height, width: plan.width)
                    let top = max(done.y, rect.y), bottom = min(done.y + done.height, rect.y + rect.height)
                    let left = max(done.x, rect.x), right = min(done.x + done.width, rect.x + rect.width)
                    guard top < bottom, left < right else { continue }
                    any = true
                    for r in top..<bottom { for c in left..<right { keep[(r - rect.y) * rect.width + c - rect.x] = 1 } }
                }
                if any {
                    if feather > 0 { keep = Self.feathered(keep, height: rect.height, width: rect.width, band: feather, unit: unit) }
                    known = KnownRegion(keep: keep, values: try finished(rect), refinements: halo > 0 ? Self.refinements : 0)
                }
            }
            var guide: BlockMeanGuide?
            if let global {
                let f = global.factor
                guard rect.y % f == 0, rect.x % f == 0, rect.height % f == 0, rect.width % f == 0 else {
                    throw SamplerError("window \(rect) is not aligned to the HiR factor \(f)")
                }
                guide = BlockMeanGuide(factor: f, target: try global.result.crop(rect.divided(by: f)),
                                       free: (a as? any HierarchicalOperator)?.freePixels(rect))
            }
            runs.append(try sampler.start(observation: try y.crop(observed), operator: local,
                                          imageShape: [1, rect.height, rect.width, imageShape[3]],
                                          noise: noise.source(pass: pass, window: index),
                                          constraint: known == nil && guide == nil ? nil : WindowConstraint(known: known, guide: guide)))
        }
        var evaluations = 0
        while true {
            var inputs: [Tensor] = [], t: Int?
            for i in runs.indices {
                guard let (x, step) = try runs[i].pending() else { continue }
                guard t == nil || t == step else { throw SamplerError("the windows of a batch are at different timesteps") }
                inputs.append(x)
                t = step
            }
            guard let t else { break }
            guard inputs.count == runs.count else { throw SamplerError("the windows of a batch finished at different steps") }
            let epsilon = runs.count == 1 ? try predictNoise(inputs[0], t) : try predictNoise(try Tensor.stackingBatch(inputs), t)
            guard epsilon.shape.first == runs.count else {
                throw SamplerError("the denoiser returned \(epsilon.shape) for a batch of \(runs.count) windows")
            }
            for i in runs.indices {
                let x0 = try runs[i].advance(epsilon: runs.count == 1 ? epsilon : try epsilon.sample(i))
                observe?(t, plan.rects[indices[i]], x0)
            }
            evaluations += runs.count
            progress(evaluations)
        }
        return runs.map(\.x)
    }

    /// A hard keep mask (1 known, 0 new) softened along the known region's inner edge: a known pixel whose
    /// Chebyshev distance to the nearest new pixel is d ≤ band weighs d/(band+1). Distances count whole
    /// `unit` blocks (the operator's alignment), so block operators see one weight per block.
    static func feathered(_ keep: [Float], height: Int, width: Int, band: Int, unit: Int) -> [Float] {
        let (bh, bw) = (height / unit, width / unit), steps = max(1, (band + unit - 1) / unit)
        // Distance in blocks from each known block to the nearest new block (two-pass chamfer, Chebyshev).
        var d = [Int](repeating: 0, count: bh * bw)
        let far = bh + bw + steps + 1
        for by in 0..<bh { for bx in 0..<bw { d[by * bw + bx] = keep[by * unit * width + bx * unit] != 0 ? far : 0 } }
        for by in 0..<bh { for bx in 0..<bw where d[by * bw + bx] > 0 {
            var v = d[by * bw + bx]
            for (dy, dx) in [(-1, -1), (-1, 0), (-1, 1), (0, -1)] {
                let (y, x) = (by + dy, bx + dx)
                if y >= 0, x >= 0, x < bw { v = min(v, d[y * bw + x] + 1) }
            }
            d[by * bw + bx] = v
        } }
        for by in stride(from: bh - 1, through: 0, by: -1) { for bx in stride(from: bw - 1, through: 0, by: -1) where d[by * bw + bx] > 0 {
            var v = d[by * bw + bx]
            for (dy, dx) in [(1, 1), (1, 0), (1, -1), (0, 1)] {
                let (y, x) = (by + dy, bx + dx)
                if y < bh, x >= 0, x < bw { v = min(v, d[y * bw + x] + 1) }
            }
            d[by * bw + bx] = v
        } }
        var out = keep
        for r in 0..<height { for c in 0..<width where keep[r * width + c] != 0 {
            let distance = d[(r / unit) * bw + c / unit]
            if distance <= steps { out[r * width + c] = keep[r * width + c] * Float(distance) / Float(steps + 1) }
        } }
        return out
    }

    /// Conjugate-gradient iterations per step when samples straddle the known edge (`KnownRegion.refinements`).
    public static let refinements = 64

    /// The part of a finished window that later windows keep: `halo` pixels in from every edge inside the image.
    static func kept(_ r: PixelRect, halo: Int, height: Int, width: Int) -> PixelRect {
        guard halo > 0 else { return r }
        let top = r.y > 0 ? r.y + halo : r.y, left = r.x > 0 ? r.x + halo : r.x
        let bottom = r.y + r.height < height ? r.y + r.height - halo : r.y + r.height
        let right = r.x + r.width < width ? r.x + r.width - halo : r.x + r.width
        return PixelRect(y: top, x: left, height: max(0, bottom - top), width: max(0, right - left))
    }
}

/// USDR's Hierarchical Restoration (HiR; the paper describes it, hq_demo does not implement it). Our
/// formulation: choose the smallest integer f ≥ 2 that brings the output within the prior's native size;
/// restore x_g ≈ pool_f(x) at that size with the coarse operator A_g (`HierarchicalOperator`) and
/// y_g = y when A ends with a pooling (pool_s = pool_{s/f} ∘ pool_f), else y_g = A_g pool_f(A† y); then
/// restore the windows by mask-shift with, after every correction, the block means of x̂0 held to x_g
/// (`BlockMeanGuide`) before the overlap is re-imposed. For pooling SR with f ≥ s, pool_f(x) is already
/// fixed by y and HiR adds nothing (`plan` returns nil).
public enum HierarchicalRestoration {
    /// One level of the HiR pyramid: the image at 1/factor of its size, its operator and observation.
    public typealias Level = (factor: Int, operator: any DegradationOperator, observation: Tensor, shape: [Int], noiseScale: Float)

    /// The HiR pyramid for very large images: the global level of `plan` (factor F), then levels at F/r, F/r², …
    /// (r = `ratio`, while the factor stays ≥ 2), each to be restored by mask-shift windows guided by the block
    /// means of the level above, before the full-size windows take the finest level as their guide. Levels
    /// that cannot be formed exactly (a factor not dividing the sides, no coarse operator, windows that would
    /// lose the native size) are skipped, so the guide ratio is then larger. Empty when HiR does not apply.
    public static func pyramid(operator a: any WindowableOperator, observation y: Tensor, imageShape: [Int], nativeSize: Int,
                               sizeMultiple: Int, ratio: Int = 4) throws -> [Level] {
        guard let top = try plan(operator: a, observation: y, imageShape: imageShape, nativeSize: nativeSize, sizeMultiple: sizeMultiple),
              let h = a as? any HierarchicalOperator else { return [] }
        var levels: [Level] = [top]
        var f = top.factor / ratio
        while f >= 2 {
            defer { f /= ratio }
            let (height, width) = (imageShape[1], imageShape[2])
            guard height % f == 0, width % f == 0, top.factor % f == 0, let coarse = try h.coarseOperator(by: f),
                  let local = coarse as? any WindowableOperator, local.windowAlignment > 0 else { continue }
            let above = levels.last!.factor / f
            let unit = [local.windowAlignment, above, sizeMultiple].reduce(1, lcm)
            let shape = [1, height / f, width / f, imageShape[3]]
            guard nativeSize % unit == 0, shape[1] % above == 0, shape[2] % above == 0 else { continue }
            let observation = h.observesPooled ? y : try coarse.apply(try averagePool(try a.pseudoInverse(y), kernel: f))
            guard try coarse.observationShape(for: shape) == observation.shape else { continue }
            levels.append((f, coarse, observation, shape, h.observesPooled ? 1 : 1 / Float(f)))
        }
        return levels
    }

    /// The factor and coarse problem, or nil when HiR does not apply.
    public static func plan(operator a: any WindowableOperator, observation y: Tensor, imageShape: [Int], nativeSize: Int,
                            sizeMultiple: Int) throws -> (factor: Int, operator: any DegradationOperator, observation: Tensor, shape: [Int], noiseScale: Float)? {
        guard let h = a as? any HierarchicalOperator, imageShape.count == 4 else { return nil }
        let (height, width) = (imageShape[1], imageShape[2])
        for f in 2...max(2, max(height, width)) {
            guard height % f == 0, width % f == 0 else { continue }
            let (gh, gw) = (height / f, width / f)
            guard gh <= nativeSize, gw <= nativeSize else { continue }
            // The windows must stay at the native size when aligned to f as well (e.g. f = 3 with 64² windows cannot).
            let unit = [a.windowAlignment, f, sizeMultiple].reduce(1, lcm)
            guard nativeSize % unit == 0, gh % sizeMultiple == 0, gw % sizeMultiple == 0, let coarse = try h.coarseOperator(by: f) else { continue }
            let observation = h.observesPooled ? y : try coarse.apply(try averagePool(try a.pseudoInverse(y), kernel: f))
            let shape = [1, gh, gw, imageShape[3]]
            guard try coarse.observationShape(for: shape) == observation.shape else { continue }
            // y_g averages f² samples of y when A does not end with a pooling: its noise is σy/f.
            return (f, coarse, observation, shape, h.observesPooled ? 1 : 1 / Float(f))
        }
        return nil
    }
}
