import Engine
import Foundation

// Residual denoising diffusion (RDDM; Liu et al., CVPR 2024) as the official restoration code runs it
// (nachifur/RDDM, experiments/2_Image_Restoration_deraing_raindrop_noise1, src/residual_denoising_diffusion_pytorch.py,
// "rddm.py" below): x_t = I_0 + ᾱ_t·I_res + β̄_t·ε with I_res = I_in − I_0, the network predicting the residual
// and the noise, sampled from x_T = I_in + √sum_scale·z by the "use_pred_noise" DDIM-like update, or
// ancestrally when the step count equals T.

/// What the network's outputs mean (`objective`, rddm.py:814-847).
public enum RDDMObjective: String, Codable, Sendable, CaseIterable {
    /// (I_res, ε): the official default and the deraining setting.
    case predResNoise = "pred_res_noise"
    /// (I_res, I_res + ε): the shared-encoder network's natural pair.
    case predResAddNoise = "pred_res_add_noise"
    /// (I_0, ε).
    case predX0Noise = "pred_x0_noise"
    /// (I_0, I_0 + ε).
    case predX0AddNoise = "pred_x0_add_noise"
    /// ε alone (one output): I_0 from x_t, I_in and ε.
    case predNoise = "pred_noise"
    /// I_res alone (one output): ε from x_t, I_in and I_res.
    case predRes = "pred_res"

    /// How many outputs the network must give.
    public var networkOutputs: Int { self == .predNoise || self == .predRes ? 1 : 2 }
}

/// The schedules and posterior coefficients of `ResidualDiffusion.__init__` (rddm.py:660-760): computed in
/// float64 and registered as float32 buffers, with the official index-0 and index-(T−1) overrides.
public struct RDDMSchedule: Sendable, Equatable {
    public let timesteps: Int
    public let sumScale: Double
    public let alphas: [Float], alphasCumsum: [Float], oneMinusAlphasCumsum: [Float]
    public let betas2: [Float], betas: [Float], betas2Cumsum: [Float], betasCumsum: [Float]
    public let posteriorMeanCoef1: [Float], posteriorMeanCoef2: [Float], posteriorMeanCoef3: [Float]
    public let posteriorVariance: [Float], posteriorLogVarianceClipped: [Float]

    /// `alphas` "decreased" (α_t = (T+1−t)/S, S = T(T+1)/2, summing to 1), `betas2` "increased" and scaled by
    /// `sumScale` (β²_t = sum_scale·t/S); both cumulative sums clipped to [0, 1]. The official default is
    /// `sum_scale` 0.01 for conditional models and 1 for generation; the deraining experiment passes 1.
    public init(timesteps: Int = 1000, sumScale: Double) throws {
        guard timesteps >= 1, timesteps <= 100_000, sumScale > 0, sumScale.isFinite else {
            throw EngineError.invalidArgument(op: "RDDMSchedule", reason: "timesteps \(timesteps) and sum_scale \(sumScale) must be positive")
        }
        self.timesteps = timesteps
        self.sumScale = sumScale
        let t = Double(timesteps), scale = 0.5 * t * (t + 1)
        let alphas = (0..<timesteps).map { Double(timesteps - $0) / scale }
        let betas2 = (0..<timesteps).map { Double($0 + 1) / scale * sumScale }
        func cumulative(_ v: [Double]) -> [Double] {
            var s = 0.0
            return v.map { s += $0; return min(1, max(0, s)) }
        }
        let alphasCumsum = cumulative(alphas), betas2Cumsum = cumulative(betas2)
        let alphasCumsumPrev = [1] + alphasCumsum.dropLast(), betas2CumsumPrev = [1] + betas2Cumsum.dropLast()
        var variance = (0..<timesteps).map { betas2[$0] * betas2CumsumPrev[$0] / betas2Cumsum[$0] }
        variance[0] = 0
        func f(_ v: [Double]) -> [Float] { v.map(Float.init) }
        self.alphas = f(alphas)
        self.alphasCumsum = f(alphasCumsum)
        var oneMinus = f(alphasCumsum.map { 1 - $0 })
        oneMinus[timesteps - 1] = 1e-6
        oneMinusAlphasCumsum = oneMinus
        self.betas2 = f(betas2)
        betas = f(betas2.map { $0.squareRoot() })
        self.betas2Cumsum = f(betas2Cumsum)
        betasCumsum = f(betas2Cumsum.map { $0.squareRoot() })
        var c1 = f((0..<timesteps).map { betas2CumsumPrev[$0] / betas2Cumsum[$0] })
        var c2 = f((0..<timesteps).map { (betas2[$0] * alphasCumsumPrev[$0] - betas2CumsumPrev[$0] * alphas[$0]) / betas2Cumsum[$0] })
        var c3 = f((0..<timesteps).map { betas2[$0] / betas2Cumsum[$0] })
        (c1[0], c2[0], c3[0]) = (0, 0, 1)
        (posteriorMeanCoef1, posteriorMeanCoef2, posteriorMeanCoef3) = (c1, c2, c3)
        posteriorVariance = f(variance)
        posteriorLogVarianceClipped = f(variance.map { Foundation.log(max($0, 1e-20)) })
    }

    /// The buffers under their official names (as a checkpoint's `ResidualDiffusion` state dict holds them).
    public var buffers: [String: [Float]] {
        ["alphas": alphas, "alphas_cumsum": alphasCumsum, "one_minus_alphas_cumsum": oneMinusAlphasCumsum,
         "betas2": betas2, "betas": betas, "betas2_cumsum": betas2Cumsum, "betas_cumsum": betasCumsum,
         "posterior_mean_coef1": posteriorMeanCoef1, "posterior_mean_coef2": posteriorMeanCoef2,
         "posterior_mean_coef3": posteriorMeanCoef3, "posterior_variance": posteriorVariance,
         "posterior_log_variance_clipped": posteriorLogVarianceClipped]
    }

    /// The DDIM-like sampler's times: `torch.linspace(-1, T-1, S+1)` in float32, truncated to integers,
    /// reversed: T−1, …, −1 (for T 1000 and 10 steps: 999, 899, …, 99, −1).
    public func samplingTimes(steps: Int) -> [Int] {
        let (start, end) = (Float(-1), Float(timesteps - 1))
        let count = steps + 1
        let step = (end - start) / Float(count - 1)
        // PyTorch's CPU linspace fills the first half forwards from start and the second half backwards from end.
        let half = count / 2
        let values = (0..<count).map { i in i < half ? start + step * Float(i) : end - step * Float(count - 1 - i) }
        return values.map { Int($0) }.reversed()
    }
}

/// The three predictions every update uses (`ModelResPrediction`).
public struct RDDMPrediction {
    public let residual: Tensor, noise: Tensor, x0: Tensor
}

/// The official sampler of `ResidualDiffusion` over a prediction function. The network is never seen: `predict`
/// maps (x_t, integer t) to its outputs, the conditioning concatenated by the caller.
public struct RDDMSampler: Sendable {
    public let schedule: RDDMSchedule
    public let objective: RDDMObjective
    /// True for restoration (`condition`): start at I_in + √sum_scale·z, η forced to 0.
    public let conditional: Bool
    /// `ddim_sampling_eta`, used only by unconditional models (the official code forces 0 otherwise).
    public let eta: Float
    /// `clip_denoised` (always true in the official sampler): clamp I_res and I_0 to [−1, 1] as each objective does.
    public let clip: Bool

    public init(schedule: RDDMSchedule, objective: RDDMObjective = .predResNoise, conditional: Bool = true,
                eta: Float = 0, clip: Bool = true) {
        self.schedule = schedule
        self.objective = objective
        self.conditional = conditional
        self.eta = conditional ? 0 : eta
        self.clip = clip
    }

    /// `model_predictions` (rddm.py:796-847): the residual, the noise and x̂0 from the network's outputs.
    public func predictions(_ outputs: [Tensor], x: Tensor, t: Int, input: Tensor?) throws -> RDDMPrediction {
        guard outputs.count >= objective.networkOutputs, outputs.allSatisfy({ $0.shape == x.shape }) else {
            throw EngineError.shapeMismatch(op: "RDDM \(objective.rawValue)", expected: "\(objective.networkOutputs) outputs of \(x.shape)",
                                            found: "\(outputs.map(\.shape))")
        }
        func clipped(_ v: Tensor) throws -> Tensor { clip ? try clamp(v, to: -1...1) : v }
        func requireInput() throws -> Tensor {
            guard let input else {
                throw EngineError.invalidArgument(op: "RDDM \(objective.rawValue)", reason: "this objective needs the input image (a conditional model)")
            }
            return input
        }
        let ac = schedule.alphasCumsum[t], bc = schedule.betasCumsum[t]
        switch objective {
        case .predResNoise, .predResAddNoise:
            let residual = try clipped(outputs[0])
            let noise = objective == .predResNoise ? outputs[1] : try subtract(outputs[1], outputs[0])
            // x_t − ᾱ_t·res − β̄_t·ε
            let x0 = try clipped(try axpby(1, try axpby(1, x, -ac, residual), -bc, noise))
            return RDDMPrediction(residual: residual, noise: noise, x0: x0)
        case .predX0Noise, .predX0AddNoise:
            let input = try requireInput()
            let noise = objective == .predX0Noise ? outputs[1] : try subtract(outputs[1], outputs[0])
            return RDDMPrediction(residual: try clipped(try subtract(input, outputs[0])), noise: noise, x0: try clipped(outputs[0]))
        case .predNoise:
            let input = try requireInput()
            // (x_t − ᾱ_t·I_in − β̄_t·ε) / (1 − ᾱ_t)
            let numerator = try axpby(1, try axpby(1, x, -ac, input), -bc, outputs[0])
            let x0 = try clipped(try scale(numerator, by: 1 / schedule.oneMinusAlphasCumsum[t]))
            return RDDMPrediction(residual: try clipped(try subtract(input, x0)), noise: outputs[0], x0: x0)
        case .predRes:
            let input = try requireInput()
            let residual = try clipped(outputs[0])
            // (x_t − I_in − (ᾱ_t − 1)·res) / β̄_t
            let noise = try scale(try axpby(1, try subtract(x, input), -(ac - 1), residual), by: 1 / bc)
            return RDDMPrediction(residual: residual, noise: noise, x0: try clipped(try subtract(input, residual)))
        }
    }

    /// Samples from `input` (I_in in [−1, 1]; ignored for generation, where `shape` gives the size) in `steps`
    /// steps: the DDIM-like loop when steps < T, the ancestral `p_sample_loop` when steps == T. Noise is drawn
    /// as the official code draws it: the start, then (ancestral) one tensor per step with t > 0, or (η > 0) one
    /// per update. Returns x_T (`input_add_noise`) and the result, both in [−1, 1] space, unclamped.
    public func sample(input: Tensor?, shape: [Int], steps: Int, noise: inout some GaussianSource,
                       predict: (_ x: Tensor, _ t: Int) throws -> [Tensor],
                       progress: ((Int, Int) -> Void)? = nil) throws -> (start: Tensor, result: Tensor) {
        guard steps >= 1, steps <= schedule.timesteps else {
            throw EngineError.invalidArgument(op: "RDDM", reason: "steps must be 1…\(schedule.timesteps), not \(steps)")
        }
        if conditional {
            guard let input, input.shape == shape else {
                throw EngineError.shapeMismatch(op: "RDDM", expected: "an input of \(shape)", found: "\(input?.shape ?? [])")
            }
        }
        let z = try noise.next(shape: shape)
        let start = conditional ? try axpby(1, input!, Float(schedule.sumScale.squareRoot()), z) : z
        var img = start
        if steps == schedule.timesteps {
            for t in stride(from: schedule.timesteps - 1, through: 0, by: -1) {
                let p = try predictions(try predict(img, t), x: img, t: t, input: input)
                let mean = try axpby(schedule.posteriorMeanCoef1[t], img, schedule.posteriorMeanCoef2[t], p.residual)
                try addInPlace(mean, p.x0, scale: schedule.posteriorMeanCoef3[t])
                img = t > 0 ? try axpby(1, mean, Foundation.exp(0.5 * schedule.posteriorLogVarianceClipped[t]), try noise.next(shape: shape)) : mean
                progress?(schedule.timesteps - t, schedule.timesteps)
            }
            return (start, img)
        }
        let times = schedule.samplingTimes(steps: steps)
        for (i, (time, next)) in zip(times, times.dropFirst()).enumerated() {
            let p = try predictions(try predict(img, time), x: img, t: time, input: input)
            if next < 0 {
                img = p.x0
            } else {
                let s = schedule
                let alpha = s.alphasCumsum[time] - s.alphasCumsum[next]
                let betas2 = s.betas2Cumsum[time] - s.betas2Cumsum[next]
                let sigma2 = eta * (betas2 * s.betas2Cumsum[next] / s.betas2Cumsum[time])
                // img − α·res − (β̄_t − √(β̄²_next − σ²))·ε + σ·z
                img = try axpby(1, try axpby(1, img, -alpha, p.residual), -(s.betasCumsum[time] - (s.betas2Cumsum[next] - sigma2).squareRoot()), p.noise)
                if eta != 0 { try addInPlace(img, try noise.next(shape: shape), scale: sigma2.squareRoot()) }
            }
            progress?(i + 1, steps)
        }
        return (start, img)
    }
}

extension RDDMSchedule {
    /// The schedule a checkpoint's buffers describe: T from their length, sum_scale from β²_1 = sum_scale/S
    /// (rounded to 6 significant digits, undoing float32), and every buffer present must equal the recomputed one
    /// (relative 1e-5); otherwise the differences are named. Nil when the buffers are absent.
    public init?(checkingBuffers buffers: [String: [Float]]) throws {
        guard let betas2 = buffers["betas2"], let first = betas2.first, first > 0 else {
            if buffers.isEmpty { return nil }
            throw EngineError.invalidArgument(op: "RDDM schedule", reason: "the checkpoint has schedule buffers but no usable betas2")
        }
        let t = Double(betas2.count)
        var sumScale = Double(first) * 0.5 * t * (t + 1)
        let magnitude = Foundation.pow(10, Foundation.floor(Foundation.log10(sumScale)) - 5)
        sumScale = (sumScale / magnitude).rounded() * magnitude
        try self.init(timesteps: betas2.count, sumScale: sumScale)
        var problems: [String] = []
        for (name, expected) in self.buffers.sorted(by: { $0.key < $1.key }) {
            guard let stored = buffers[name] else { continue }
            guard stored.count == expected.count else { problems.append("\(name) has \(stored.count) entries, not \(expected.count)"); continue }
            if let i = (0..<stored.count).first(where: { abs(stored[$0] - expected[$0]) > 1e-5 * abs(expected[$0]) + 1e-12 }) {
                problems.append("\(name)[\(i)] is \(stored[i]), not \(expected[i]) (T \(timesteps), sum_scale \(sumScale))")
            }
        }
        guard problems.isEmpty else {
            throw EngineError.invalidArgument(op: "RDDM schedule", reason: "the checkpoint's buffers are not RDDM's schedule: " + problems.prefix(3).joined(separator: "; "))
        }
    }
}
