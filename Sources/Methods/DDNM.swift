import Engine
import Foundation
import Operators

/// The ε-prediction a sampler calls: x_t and a timestep in, ε (first 3 channels) out. Samplers never know
/// which network stands behind it.

/// Draws standard-normal tensors; tests inject recorded sequences to replay the official runs.
public protocol GaussianSource {
    mutating func next(shape: [Int]) throws -> Tensor
}

/// Seeded standard normals (`SplitMix64` + Box–Muller, filled in pairs): same seed, same sequence.
public struct SeededGaussian: GaussianSource {
    var generator: SplitMix64
    public init(seed: UInt64) { generator = SplitMix64(seed: seed &+ 0x5DEE_CE66_D1CE_5EED) }
    public mutating func next(shape: [Int]) throws -> Tensor {
        let t = try Tensor(uninitializedShape: shape)
        var i = 0
        while i < t.count {
            let (a, b) = generator.nextGaussianPair()
            t.data[i] = Float(a)
            if i + 1 < t.count { t.data[i + 1] = Float(b) }
            i += 2
        }
        return t
    }
}

/// A recorded sequence of Gaussian tensors, returned in order (for golden tests against the official code).
public struct RecordedGaussian: GaussianSource {
    public private(set) var remaining: [Tensor]
    public init(_ tensors: [Tensor]) { remaining = tensors }
    public mutating func next(shape: [Int]) throws -> Tensor {
        guard !remaining.isEmpty else { throw SamplerError("the recorded noise sequence ran out") }
        let t = remaining.removeFirst()
        guard t.count == shape.reduce(1, *) else { throw SamplerError("recorded noise has \(t.count) values, the sampler needs \(shape)") }
        return try t.view(as: shape)
    }
}

/// A constraint on x̂0 applied after DDNM's range–null correction at every step (tiling's known region and
/// HiR guide): `exact` says whether the correction made A x̂0 = y exactly (λ = 1), which a constraint that
/// changes pixels may restore (`operator`, `observation`: the step's A and y).
public protocol X0Constraint {
    func check(_ shape: [Int]) throws
    func apply(_ x0: Tensor, exact: Bool, operator a: any DegradationOperator, observation y: Tensor) throws -> Tensor
}

/// DDNM (Wang, Yu & Zhang, ICLR 2023): DDIM sampling where every x0 prediction is replaced by its
/// range–null-space correction x̂0 = x0 − λ·A†(A x0 − y) (Eqs. 13, 17), with DDNM+'s noise handling (σy)
/// and time-travel, as the official code (wyhuai/DDNM@00b58ea) runs it; see `Variant`.
public struct DDNMSampler {
    /// Which of the official code's two samplers, or the paper's corrected equations.
    public enum Variant: String, Sendable {
        /// `functions/svd_ddnm.py` (the official default): for σy = 0 `ddnm_diffusion` (lines 36-78),
        /// x̂0 = x0 − A†(A x0 − y), x_{t−1} = √ᾱ' x̂0 + √(1−ᾱ')(η z + √(1−η²) ε); for σy > 0
        /// `ddnm_plus_diffusion` (lines 97-142) with the per-singular Λ and Λ_noise of `DDNMPlusSpectral`
        /// (operators with a block SVD: pool, gray, mask, noise).
        case svd
        /// `simplified_ddnm_plus` (guided_diffusion/diffusion.py:346-395), quirks included: σ_t = √(1 − ᾱ'²)
        /// and γ_t multiplying the DDIM noise (diffusion.py:357, 385).
        case simplified
        /// The simplified path with σ_t = √(1 − ᾱ') in place of the code's √(1 − ᾱ'²), and γ_t/σ_t scaling
        /// the DDIM noise, so that σy = 0 is exactly the SVD path's DDIM step. The threshold and γ still
        /// compare σ_t with ᾱ'·σy as the code does (the paper's Eq. 19 writes a_t σy with a_t = √ᾱ'); this
        /// variant corrects the σ_t quirk only.
        case paper
    }

    public let schedule: NoiseSchedule
    public let timesteps: TimeTravelSchedule
    /// DDIM stochasticity η (official default 0.85).
    public let eta: Float
    /// Observation noise level σy on the model's [-1, 1] scale (twice the [0, 1] value the CLI takes).
    public private(set) var sigmaY: Float
    public let variant: Variant

    /// Replaces the block SVD an operator reports (tests inject the official LAPACK bases to replay runs).
    public var adjustSpectralBlocks: ((SpectralBlocks) -> SpectralBlocks)?

    /// Clamp x0|t to [-1, 1] before the correction and take ε consistent with it, ε = (x_t − √ᾱ_t x0)/√(1−ᾱ_t),
    /// as guided-diffusion's samplers and hq_demo (`clip(predict_x0_from_eps(...))`) do. Off by default: the
    /// official DDNM code does not clip. A weak prior needs it: the bundled one diverges without it in
    /// unconditional sampling (its ε at large t, divided by √ᾱ_t ≈ 0.006, throws x0 far out of range).
    public var clipX0 = false

    /// The same sampler for an observation whose noise is `factor` × σy (HiR's coarse levels average y).
    public func scalingNoise(by factor: Float) -> DDNMSampler {
        var copy = self
        copy.sigmaY *= factor
        return copy
    }

    /// The same sampler for an observation with noise level `sigmaY` ([-1, 1] scale).
    public func with(sigmaY: Float) -> DDNMSampler {
        var copy = self
        copy.sigmaY = sigmaY
        return copy
    }

    public init(schedule: NoiseSchedule = .linear(), timesteps: TimeTravelSchedule, eta: Float = 0.85, sigmaY: Float = 0, variant: Variant = .svd) throws {
        self.schedule = schedule
        self.timesteps = timesteps
        self.eta = eta
        self.sigmaY = sigmaY
        self.variant = variant
    }

    /// Restores x from y (a `DDNMRun` driven to its end). `progress(done, total)` is called after each network evaluation, `observe(t, x0|t)`
    /// just before it (the network's estimate before the correction).
    ///
    /// `constraint`: an x0 → x0 function applied after the correction at every step (USDR's mask-shift
    /// windows impose their overlap with finished windows there, as hq_demo does, gaussian_diffusion.py:344-380).
    public func sample(observation y: Tensor, operator a: any DegradationOperator, imageShape: [Int],
                       predictNoise: Denoiser, noise: inout some GaussianSource, constraint: (any X0Constraint)? = nil,
                       progress: (Int, Int) -> Void = { _, _ in }, observe: StepObserver? = nil) throws -> Tensor {
        var run = try start(observation: y, operator: a, imageShape: imageShape, noise: noise, constraint: constraint)
        defer { noise = run.noise }
        while let (x, t) = try run.pending() {
            let x0 = try run.advance(epsilon: try predictNoise(x, t))
            observe?(t, x0)
            progress(run.evaluations, run.totalEvaluations)
        }
        return run.x
    }

    /// A run of this sampler that the caller advances one network evaluation at a time (`DDNMRun`), so that
    /// several runs — the windows of one wave — can share a batched evaluation. Draws x_T from `noise` now.
    public func start<Noise: GaussianSource>(observation y: Tensor, operator a: any DegradationOperator, imageShape: [Int],
                                             noise: Noise, constraint: (any X0Constraint)? = nil) throws -> DDNMRun<Noise> {
        try constraint?.check(imageShape)
        let step = try stepKind(operator: a, imageShape: imageShape, constraint: constraint)
        var noise = noise
        let x = try noise.next(shape: imageShape)  // x_T
        return DDNMRun(sampler: self, observation: y, operator: a, imageShape: imageShape, constraint: constraint, step: step, noise: noise, x: x)
    }

    /// Which step the sampler takes: the range–null step (σy = 0, and the simplified and paper paths), DDNM+'s
    /// per-singular Λ on an operator's block SVD or its own spectral form, or DDNM+ on an SVD form.
    enum StepKind {
        case rangeNull
        /// Λ(v; √ᾱ', σ_t) and Λ_noise(z, ε; √ᾱ', σ_t).
        case plus(lambda: (Tensor, Float, Float) throws -> Tensor, noise: (Tensor, Tensor, Float, Float) throws -> Tensor)
        case svdForm(any SVDForm, raw: ([Float]) -> [Float])
    }

    func stepKind(operator a: any DegradationOperator, imageShape: [Int], constraint: (any X0Constraint)?) throws -> StepKind {
        guard variant == .svd, sigmaY > 0 else { return .rangeNull }
        let (sigmaY, eta) = (self.sigmaY, self.eta)
        if let spectral = a as? any SpectralOperator {
            let own = try spectral.spectralBlocks(imageShape: imageShape)
            let blocks = adjustSpectralBlocks?(own) ?? own
            let denoising = a is IdentityOperator
            return .plus(lambda: { v, root, sigmaT in try DDNMPlusSpectral.lambda(v, blocks, a: root, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta) },
                         noise: { z, e, root, sigmaT in
                             try DDNMPlusSpectral.noise(z, e, blocks, a: root, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta, denoising: denoising)
                         })
        }
        if let providing = a as? any SVDFormProviding {
            guard constraint == nil else { throw SamplerError("known regions (tiling) are not supported with DDNM+ on an SVD form (\(a.spec))") }
            let svd = try providing.svdForm(imageShape: imageShape)
            return .svdForm(svd.form, raw: svd.raw)
        }
        if let own = a as? any SpectralFilterOperator, own.spectralFilterAvailable(imageShape: imageShape) {
            return .plus(lambda: { v, root, sigmaT in try own.ddnmPlusLambda(v, a: root, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta) },
                         noise: { z, e, root, sigmaT in try own.ddnmPlusNoise(z, e, a: root, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta) })
        }
        throw SamplerError("DDNM+ (σy > 0) on the SVD path supports pool, gray, mask, noise, cs-wht, bicubic and the separable blurs; use --simplified for \(a.spec)")
    }

    /// The range–null step (Eqs. 13, 17, 19): x̂0 = x0 − λ A†(A x0 − y), x_{t−1} = √ᾱ' x̂0 + γ (c1 z + c2 ε), with
    /// λ = 1 and γ = √(σ_t² − (ᾱ' σy)²) while σ_t ≥ ᾱ' σy, else λ = σ_t / (ᾱ' σy) and γ = 0. σ_t is √(1 − ᾱ') on
    /// the SVD path (σy = 0: plain DDIM) and the paper path, √(1 − ᾱ'²) on the simplified path (the code's quirk,
    /// which also lets γ multiply the DDIM noise unnormalised).
    func rangeNullStep(_ x0: Tensor, _ epsilon: Tensor, alphaBarNext aNext: Float, y: Tensor, operator a: any DegradationOperator,
                       constraint: (any X0Constraint)?, noise: inout some GaussianSource) throws -> Tensor {
        let sigmaT = variant == .simplified ? (1 - aNext * aNext).squareRoot() : (1 - aNext).squareRoot()
        let (lambda, gamma): (Float, Float)
        if sigmaT >= aNext * sigmaY {
            (lambda, gamma) = (1, (sigmaT * sigmaT - aNext * sigmaY * aNext * sigmaY).squareRoot())  // Eq. 19
        } else {
            (lambda, gamma) = (sigmaT / (aNext * sigmaY), 0)
        }
        var x0Hat = try a.rangeNullCorrection(x0, observation: y, strength: lambda)  // Eq. 17
        if let constraint { x0Hat = try constraint.apply(x0Hat, exact: lambda == 1, operator: a, observation: y) }
        let c1 = (1 - aNext).squareRoot() * eta, c2 = (1 - aNext).squareRoot() * (1 - eta * eta).squareRoot()
        // svd: γ = σ_t (σy = 0), so the scale is 1 — plain DDIM noise; paper: γ/σ_t; simplified: γ (the quirk).
        let noiseScale = variant == .simplified ? gamma : (sigmaT > 0 ? gamma / sigmaT : 0)
        let z = try noise.next(shape: x0.shape)
        // x_{t−1} = √ᾱ_{t−1} x̂0 + γ (c1 z + c2 ε)
        let stochastic = try axpby(c1 * noiseScale, z, c2 * noiseScale, epsilon)
        return try axpby(aNext.squareRoot(), x0Hat, 1, stochastic)
    }

    /// DDNM+ (`ddnm_plus_diffusion`): x̂0 = x0 − Λ A†(A x0 − y) (Eq. 17), x_{t−1} = √ᾱ' x̂0 + Λ_noise(z, ε) (Eq. 51 of
    /// the code); Λ on the operator's block SVD, or its own (separable blurs, bicubic, FFT kernels).
    func ddnmPlusStep(_ x0: Tensor, _ epsilon: Tensor, alphaBarNext aNext: Float, y: Tensor, operator a: any DegradationOperator,
                      lambda: (Tensor, Float, Float) throws -> Tensor, stochastic: (Tensor, Tensor, Float, Float) throws -> Tensor,
                      constraint: (any X0Constraint)?, noise: inout some GaussianSource) throws -> Tensor {
        let root = aNext.squareRoot(), sigmaT = (1 - aNext).squareRoot()
        let correction = try a.pseudoInverse(try subtract(try a.apply(x0), y))
        var x0Hat = try subtract(x0, try lambda(correction, root, sigmaT))
        if let constraint { x0Hat = try constraint.apply(x0Hat, exact: false, operator: a, observation: y) }
        let z = try noise.next(shape: x0.shape)
        return try axpby(root, x0Hat, 1, try stochastic(z, epsilon, root, sigmaT))
    }

    /// DDNM+ on an SVD form (Walsh–Hadamard CS): the same step, sample by sample in the official layout.
    func svdFormStep(_ x0: Tensor, _ epsilon: Tensor, alphaBarNext aNext: Float, y: Tensor, operator a: any DegradationOperator,
                     form: any SVDForm, raw: ([Float]) -> [Float], noise: inout some GaussianSource) throws -> Tensor {
        let root = aNext.squareRoot(), sigmaT = (1 - aNext).squareRoot()
        let correction = try a.pseudoInverse(try subtract(try a.apply(x0), y))
        let z = try noise.next(shape: x0.shape)
        let next = try Tensor(uninitializedShape: x0.shape)
        for b in 0..<x0.shape[0] {
            let lambda = DDNMPlusSVD.lambda(correction.channelMajor(batch: b), form, a: root, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta)
            let stochastic = DDNMPlusSVD.noise(z.channelMajor(batch: b), epsilon.channelMajor(batch: b), form, raw: raw,
                                               a: root, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta)
            let x0b = x0.channelMajor(batch: b)
            next.setChannelMajor((0..<x0b.count).map { root * (x0b[$0] - lambda[$0]) + stochastic[$0] }, batch: b)
        }
        return next
    }
}

/// One DDNM sampling run, advanced by its caller one network evaluation at a time: `pending()` gives the x_t
/// and t it needs ε for (taking time-travel re-noisings on the way; nil once finished), `advance(epsilon:)`
/// takes the step. `DDNMSampler.sample` drives one run with the denoiser; mask-shift tiling drives the runs of
/// a whole wave of windows through one batched evaluation. The run owns its noise source, so its result
/// depends only on its own inputs and stream, never on which other runs share its evaluations.
public struct DDNMRun<Noise: GaussianSource> {
    let sampler: DDNMSampler
    let y: Tensor
    let a: any DegradationOperator
    let imageShape: [Int]
    let constraint: (any X0Constraint)?
    let step: DDNMSampler.StepKind
    public internal(set) var noise: Noise
    /// x_t now; the restored image once `pending()` returns nil.
    public internal(set) var x: Tensor
    var lastX0: Tensor?
    var pairIndex = 0
    let pairs: [(Int, Int)]
    public internal(set) var evaluations = 0
    public var totalEvaluations: Int { sampler.timesteps.networkEvaluations }

    init(sampler: DDNMSampler, observation y: Tensor, operator a: any DegradationOperator, imageShape: [Int],
         constraint: (any X0Constraint)?, step: DDNMSampler.StepKind, noise: Noise, x: Tensor) {
        self.sampler = sampler
        self.y = y
        self.a = a
        self.imageShape = imageShape
        self.constraint = constraint
        self.step = step
        self.noise = noise
        self.x = x
        pairs = sampler.timesteps.pairs.map { ($0.from, $0.to) }
    }

    /// The x_t and timestep the next step needs ε for, or nil when the run is finished.
    public mutating func pending() throws -> (x: Tensor, t: Int)? {
        while pairIndex < pairs.count {
            let (t, next) = pairs[pairIndex]
            guard next > t else { return (x, t) }
            // Time-travel: re-noise the last uncorrected x0 to the higher level (diffusion.py:388-393).
            guard let x0 = lastX0 else { throw SamplerError("time-travel before the first step") }
            let aNext = sampler.schedule.alphaBar(next)
            let z = try noise.next(shape: imageShape)
            x = try axpby(aNext.squareRoot(), x0, (1 - aNext).squareRoot(), z)
            pairIndex += 1
        }
        return nil
    }

    /// Takes the step from the pending x_t with the network's ε; returns x0|t (before the correction).
    @discardableResult
    public mutating func advance(epsilon given: Tensor) throws -> Tensor {
        guard pairIndex < pairs.count, pairs[pairIndex].1 <= pairs[pairIndex].0 else { throw SamplerError("advance without a pending step") }
        let (t, next) = pairs[pairIndex]
        let aNext = sampler.schedule.alphaBar(next), aT = sampler.schedule.alphaBar(t)
        var epsilon = try checkedPrediction(given, for: x)
        // x0|t = (x_t − √(1−ᾱ_t) ε) / √ᾱ_t   (Eq. 12; no clipping, as the official code, unless clipX0)
        var x0 = try axpby(1 / aT.squareRoot(), x, -(1 - aT).squareRoot() / aT.squareRoot(), epsilon)
        if sampler.clipX0 {
            x0 = try clamp(x0, to: -1...1)
            epsilon = try axpby(1 / (1 - aT).squareRoot(), x, -aT.squareRoot() / (1 - aT).squareRoot(), x0)
        }
        lastX0 = x0
        switch step {
        case .rangeNull:
            x = try sampler.rangeNullStep(x0, epsilon, alphaBarNext: aNext, y: y, operator: a, constraint: constraint, noise: &noise)
        case .plus(let lambda, let stochastic):
            x = try sampler.ddnmPlusStep(x0, epsilon, alphaBarNext: aNext, y: y, operator: a, lambda: lambda, stochastic: stochastic,
                                         constraint: constraint, noise: &noise)
        case .svdForm(let form, let raw):
            x = try sampler.svdFormStep(x0, epsilon, alphaBarNext: aNext, y: y, operator: a, form: form, raw: raw, noise: &noise)
        }
        pairIndex += 1
        evaluations += 1
        return x0
    }
}
