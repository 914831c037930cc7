import Engine
import Methods
import Operators

/// USDR (Wang et al., arXiv 2303.00354) for outputs larger than the prior: the HiR pyramid (the coarsest level
/// whole, finer levels by mask-shift windows guided by the level above), then the full-size mask-shift windows
/// guided by the finest level. `naive` tiling and `hir: false` are the ablations.
public struct USDRRestoration {
    public let sampler: DDNMSampler
    /// The prior's native side and the sides its windows must divide.
    public let nativeSize: Int, sizeMultiple: Int
    public let tiling: MaskShiftRestoration.Tiling
    /// Window side (default and maximum: the native size), overlap, seam margin and feather (nil: defaults).
    public let window: Int?, overlap: Int?, margin: Int?, feather: Int?
    public let hir: Bool
    /// Windows of one wave per network evaluation (the result does not depend on it; memory and speed do).
    public let batch: Int

    public init(sampler: DDNMSampler, nativeSize: Int, sizeMultiple: Int, tiling: MaskShiftRestoration.Tiling = .msr, window: Int? = nil,
                overlap: Int? = nil, margin: Int? = nil, feather: Int? = nil, hir: Bool = true, batch: Int = 1) {
        self.sampler = sampler
        self.nativeSize = nativeSize
        self.sizeMultiple = sizeMultiple
        self.tiling = tiling
        self.window = window
        self.overlap = overlap
        self.margin = margin
        self.feather = feather
        self.hir = hir
        self.batch = batch
    }

    /// The restored image, its full-size window count, the network evaluations of the HiR levels, how HiR ran
    /// (e.g. "÷8 → ÷2", "off", "not applicable (…)") and the seam blend in effect.
    public struct Outcome {
        public let image: Tensor
        public let windows: Int
        public let levelEvaluations: Int
        public let hir: String
        public let seam: (margin: Int, feather: Int)?

        public init(image: Tensor, windows: Int, levelEvaluations: Int, hir: String, seam: (margin: Int, feather: Int)?) {
            (self.image, self.windows, self.levelEvaluations, self.hir, self.seam) = (image, windows, levelEvaluations, hir, seam)
        }
    }

    /// HiR's result: the finest level (its factor and image) that guides the full-size windows, the network
    /// evaluations it took and how it ran ("÷8 → ÷2", "off", "not applicable (…)").
    public struct Hierarchy {
        public let global: (factor: Int, result: Tensor)?
        public let levelEvaluations: Int
        public let description: String
    }

    /// The operator as a windowable one, or the one-line reason why the image cannot be tiled.
    public func windowable(_ a: any DegradationOperator, _ shape: [Int], _ label: String) throws -> any WindowableOperator {
        guard let local = a as? any WindowableOperator, local.windowAlignment > 0 else {
            throw SamplerError("the output would be \(shape[2])×\(shape[1]), larger than the prior's native \(nativeSize)²; tiling needs a local operator (pool, bicubic, gray, mask, noise, blurs, cs-block, and compositions of the halo-free ones), not \(a.spec) (global: cs-wht) — crop or downscale the input (\(label))")
        }
        guard shape[0] == 1 else { throw SamplerError("tiling restores one image at a time (\(label))") }
        return local
    }

    /// The HiR pyramid's levels (empty when HiR is off or does not apply).
    public func levels(observation y: Tensor, operator a: any DegradationOperator, imageShape shape: [Int]) throws -> [HierarchicalRestoration.Level] {
        guard hir, tiling != .naive, let local = a as? any WindowableOperator, local.windowAlignment > 0 else { return [] }
        return try HierarchicalRestoration.pyramid(operator: local, observation: y, imageShape: shape, nativeSize: nativeSize, sizeMultiple: sizeMultiple)
    }

    /// The HiR pyramid: the coarsest level whole (pass 1), finer levels by windows guided by the level above
    /// (pass k for the k-th level).
    public func hierarchy(observation y: Tensor, operator a: any DegradationOperator, imageShape shape: [Int], predictNoise predict: Denoiser,
                          noise: WindowNoise, label: String, stage: (String, Int) -> Void = { _, _ in },
                          step: (Int, Int, String?) -> Void = { _, _, _ in }) throws -> Hierarchy {
        let evaluations = sampler.timesteps.networkEvaluations
        let local = try windowable(a, shape, label)
        var global: (factor: Int, result: Tensor)?
        var levelEvaluations = 0
        let levels = try self.levels(observation: y, operator: a, imageShape: shape)
        if !hir || tiling == .naive { return Hierarchy(global: nil, levelEvaluations: 0, description: "off") }
        guard let top = levels.first else {
            return Hierarchy(global: nil, levelEvaluations: 0, description: local is any HierarchicalOperator
                             ? "not applicable (for pooling SR, y already fixes the coarse image)" : "not applicable (\(a.spec) has no exact coarse form)")
        }
        for (index, level) in levels.enumerated() {
            let levelSampler = sampler.scalingNoise(by: level.noiseScale)
            if index == 0 {
                stage("\(label) (global pass, ÷\(top.factor))", evaluations)
                var source = noise.source(pass: 1, window: 0)
                let result = try levelSampler.sample(observation: top.observation, operator: top.operator, imageShape: top.shape,
                                                     predictNoise: predict, noise: &source) { done, total in
                    step(done, total, nil)
                }
                levelEvaluations += evaluations
                global = (top.factor, result)
                continue
            }
            guard let above = global, let levelOperator = level.operator as? any WindowableOperator else { break }
            let ratio = above.factor / level.factor
            let alignment = lcm(levelOperator.windowAlignment, ratio)
            let plan = try WindowPlan(height: level.shape[1], width: level.shape[2], window: min(window ?? nativeSize, nativeSize),
                                      overlap: overlap, alignment: alignment, sizeMultiple: sizeMultiple)
            stage("\(label) (HiR level ÷\(level.factor), \(plan.rects.count) windows)", evaluations * plan.rects.count)
            let result = try MaskShiftRestoration(sampler: levelSampler, plan: plan, margin: margin, feather: feather)
                .restore(observation: level.observation, operator: levelOperator, imageShape: level.shape, predictNoise: predict, noise: noise,
                         pass: index + 1, batch: batch, global: (ratio, above.result)) { done, count, evaluations, total in
                    step(evaluations, total, "window \(min(done + 1, count))/\(count)")
                }
            levelEvaluations += evaluations * plan.rects.count
            global = (level.factor, result)
        }
        return Hierarchy(global: global, levelEvaluations: levelEvaluations, description: levels.map { "÷\($0.factor)" }.joined(separator: " → "))
    }

    /// The full-size mask-shift windows (pass 0), aligned to the HiR factor when HiR guides them.
    public func fullSize(operator a: any DegradationOperator, imageShape shape: [Int], globalFactor: Int?, label: String = "") throws -> MaskShiftRestoration {
        let local = try windowable(a, shape, label)
        let side = min(window ?? nativeSize, nativeSize)
        let plan = try WindowPlan(height: shape[1], width: shape[2], window: side, overlap: tiling == .naive ? 0 : overlap,
                                  alignment: MaskShiftRestoration.blockUnit(local, globalFactor: globalFactor), sizeMultiple: sizeMultiple)
        return MaskShiftRestoration(sampler: sampler, plan: plan, tiling: tiling, margin: margin, feather: feather)
    }

    /// The HiR pyramid, then the full-size mask-shift windows guided by the finest level; `observe(t, window, x0|t)`
    /// follows every evaluation of the full-size windows. Every window (and the global pass) draws its own
    /// stream of `noise`: pass 0 is the full size, pass k the k-th level of the pyramid.
    public func restore(observation y: Tensor, operator a: any DegradationOperator, imageShape shape: [Int], predictNoise predict: Denoiser,
                        noise: WindowNoise, label: String, stage: (String, Int) -> Void = { _, _ in },
                        step: (Int, Int, String?) -> Void = { _, _, _ in },
                        observe: ((_ t: Int, _ window: PixelRect, _ x0: Tensor) -> Void)? = nil) throws -> Outcome {
        let evaluations = sampler.timesteps.networkEvaluations
        let local = try windowable(a, shape, label)
        let hierarchy = try self.hierarchy(observation: y, operator: a, imageShape: shape, predictNoise: predict, noise: noise, label: label,
                                           stage: stage, step: step)
        let msr = try fullSize(operator: a, imageShape: shape, globalFactor: hierarchy.global?.factor, label: label)
        stage("\(label) (\(msr.plan.rects.count) windows)", evaluations * msr.plan.rects.count)
        let seam = try msr.seamBlend(unit: MaskShiftRestoration.blockUnit(local, globalFactor: hierarchy.global?.factor))
        let restored = try msr.restore(observation: y, operator: local, imageShape: shape, predictNoise: predict, noise: noise, batch: batch,
                                       global: hierarchy.global,
                                       progress: { done, count, evaluations, total in step(evaluations, total, "window \(min(done + 1, count))/\(count)") },
                                       observe: observe)
        return Outcome(image: restored, windows: msr.plan.rects.count, levelEvaluations: hierarchy.levelEvaluations, hir: hierarchy.description, seam: seam)
    }
}
