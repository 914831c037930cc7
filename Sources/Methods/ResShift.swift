import Engine
import Foundation

// ResShift (Yue, Wang & Loy, NeurIPS 2023; TPAMI "v3"): a Markov chain that shifts the residual between the
// (encoded, upsampled) low-quality image y and the high-quality x0, in T = 15 or 4 steps. Follows the official
// `models/gaussian_diffusion.py` (GaussianDiffusion) and `sampler.py`; equations as in the paper (Eqs. 1-9).

/// The η schedule and the posterior coefficients, in Float64 as the official code keeps them.
public struct ResShiftSchedule: Sendable, Equatable {
    public let kappa: Double
    /// √η_t for t = 0 … T−1 (index 0 is the first diffusion step).
    public let sqrtEtas: [Double]

    public init(kappa: Double, sqrtEtas: [Double]) throws {
        guard kappa > 0, !sqrtEtas.isEmpty, sqrtEtas.allSatisfy({ $0 > 0 && $0 <= 1 }) else {
            throw SamplerError("a ResShift schedule needs κ > 0 and 0 < √η ≤ 1 (got κ \(kappa), \(sqrtEtas.count) values)")
        }
        self.kappa = kappa
        self.sqrtEtas = sqrtEtas
    }

    /// `get_named_eta_schedule('exponential')`: √η_1 = min(min_noise/κ, min_noise), √η_T = etas_end, and
    /// √η_t = √η_1 · b^(((t−1)/(T−1))^p · (T−1)) with b = (etas_end/√η_1)^(1/(T−1)) (paper Eq. 10).
    /// Released models: T 15, min_noise 0.04 (v1, v2); T 4, min_noise 0.2 (v3, bicsr, inpainting, faceir).
    public static func exponential(steps: Int, minNoiseLevel: Double, etasEnd: Double = 0.99, kappa: Double = 2,
                                   power: Double = 0.3) throws -> ResShiftSchedule {
        guard steps >= 2, minNoiseLevel > 0, etasEnd > 0, etasEnd <= 1, power > 0 else {
            throw SamplerError("a ResShift exponential schedule needs T ≥ 2, min noise > 0, 0 < etas_end ≤ 1, power > 0")
        }
        let start = min(minNoiseLevel / kappa, minNoiseLevel)
        let increaser = exp(1 / Double(steps - 1) * log(etasEnd / start))
        let values = (0..<steps).map { i -> Double in
            let fraction = steps == 1 ? 0 : Double(i) / Double(steps - 1)
            return pow(increaser, pow(fraction, power) * Double(steps - 1)) * start
        }
        return try ResShiftSchedule(kappa: kappa, sqrtEtas: values)
    }

    public var steps: Int { sqrtEtas.count }
    public func eta(_ t: Int) -> Double { t < 0 ? 0 : sqrtEtas[t] * sqrtEtas[t] }

    /// q(x_{t−1} | x_t, x0) = N((η_{t−1}/η_t) x_t + (α_t/η_t) x0, κ² (η_{t−1}/η_t) α_t), α_t = η_t − η_{t−1}
    /// (paper Eq. 7). Returns (coef1, coef2, log variance clipped): at t = 0 the variance is 0 and the official
    /// code uses the t = 1 value inside the log; the t = 0 step adds no noise anyway.
    public func posterior(_ t: Int) -> (coef1: Double, coef2: Double, logVariance: Double) {
        let variance = { (s: Int) in kappa * kappa * eta(s - 1) / eta(s) * (eta(s) - eta(s - 1)) }
        return (eta(t - 1) / eta(t), (eta(t) - eta(t - 1)) / eta(t), log(t == 0 && steps > 1 ? variance(1) : variance(t)))
    }
}

/// How x_t is scaled before the network (`_scale_input` with normalize_input).
public enum ResShiftInputScaling: String, Sendable, Equatable {
    /// latent_flag: x_t / √(κ² η_t + 1) (the official latent models).
    case latent
    /// pixel space: x_t / (3κ√η_t + 1).
    case pixel
    /// normalize_input False.
    case none
}

/// What the network outputs (the official `ModelMeanType`): x0 itself (`START_X`, the released models) or the
/// residual y − x0 (`RESIDUAL`, our own model: it starts from y, the bicubic upsampling, and learns the correction).
public enum ResShiftPrediction: String, Sendable, Equatable {
    case xstart, residual
}

extension ResShiftInputScaling {
    /// The denoiser a ResShift sampler sees: x_t divided as `_scale_input` does (the official code divides, not
    /// multiplies by the reciprocal), then `network(scaled x_t, timestep index as Float per sample)` (its
    /// conditioning image bound by the caller).
    public func denoiser(schedule: ResShiftSchedule, network: @escaping (_ scaledX: Tensor, _ timesteps: [Float]) throws -> Tensor) -> Denoiser {
        { z, t in
            let divisor: Double
            switch self {
            case .latent: divisor = (schedule.eta(t) * schedule.kappa * schedule.kappa + 1).squareRoot()
            case .pixel: divisor = schedule.sqrtEtas[t] * schedule.kappa * 3 + 1
            case .none: divisor = 1
            }
            let scaled = try Tensor(uninitializedShape: z.shape)
            let d = Float(divisor), source = z
            Parallel.forRanges(z.count, grain: 1 << 14) { begin, end in
                for i in begin..<end { scaled.data[i] = source.data[i] / d }
            }
            return try network(scaled, Array(repeating: Float(t), count: z.shape.first ?? 1))
        }
    }
}

/// The ResShift reverse chain in a latent (or pixel) space: x_T = y + κ√η_T ε, then T steps of the posterior
/// with the network's x0 (`p_sample_loop_progressive`).
public struct ResShiftSampler: Sendable {
    public let schedule: ResShiftSchedule
    public let inputScaling: ResShiftInputScaling
    /// Clamp x̂0 to [-1, 1] (official: only without an autoencoder).
    public let clipX0: Bool
    public let prediction: ResShiftPrediction

    public init(schedule: ResShiftSchedule, inputScaling: ResShiftInputScaling = .latent, clipX0: Bool = false,
                prediction: ResShiftPrediction = .xstart) {
        self.schedule = schedule
        self.inputScaling = inputScaling
        self.clipX0 = clipX0
        self.prediction = prediction
    }

    /// This sampler's denoiser for `network` (its input scaling and schedule).
    public func denoiser(_ network: @escaping (_ scaledX: Tensor, _ timesteps: [Float]) throws -> Tensor) -> Denoiser {
        inputScaling.denoiser(schedule: schedule, network: network)
    }

    /// Runs the chain from the encoded low-quality image `zY`. Noise is drawn as the official code does: one
    /// tensor for the prior, then one per step after the network call (also at t = 0, where it is unused).
    /// `progress(done, total)` follows each step.
    public func sample(zY: Tensor, denoiser: Denoiser, noise: inout some GaussianSource,
                       progress: ((Int, Int) -> Void)? = nil, observe: StepObserver? = nil) throws -> Tensor {
        let steps = schedule.steps
        let kappa = Float(schedule.kappa)
        // x_T = y + κ√η_T ε (prior_sample)
        var z = try axpby(1, zY, kappa * Float(schedule.sqrtEtas[steps - 1]), try noise.next(shape: zY.shape))
        for t in stride(from: steps - 1, through: 0, by: -1) {
            var x0 = try checkedPrediction(try denoiser(z, t), for: z)
            if prediction == .residual { x0 = try subtract(zY, x0) }  // _predict_xstart_from_residual: y − residual
            if clipX0 { x0 = try clamp(x0, to: -1...1) }
            observe?(t, x0)
            let (c1, c2, logVariance) = schedule.posterior(t)
            let mean = try axpby(Float(c1), z, Float(c2), x0)
            let epsilon = try noise.next(shape: z.shape)
            z = t == 0 ? mean : try axpby(1, mean, Float(exp(0.5 * logVariance)), epsilon)
            progress?(steps - t, steps)
        }
        return z
    }
}

/// One image through ResShift as the official `ResShiftSampler.sample_func` does it: the low-quality image
/// ([-1, 1], [1, h, w, 3]) is reflect-padded to a multiple of `paddingMultiple`, upsampled ×`scaleFactor`
/// (bicubic, a = −0.75, no antialias) and encoded to z_y; the chain runs from z_y with the network conditioned
/// on the padded image (and the mask channel, for inpainting); the decoded result is cropped back and
/// clamped to [-1, 1]. Samplers never know the network or the autoencoder: both come in as functions.
public struct ResShiftRestorer {
    public let sampler: ResShiftSampler
    public let scaleFactor: Int
    public let paddingMultiple: Int
    public let encode: (Tensor) throws -> Tensor
    public let decode: (Tensor) throws -> Tensor
    /// (scaled x_t, timesteps, condition) → x0.
    public let predict: (Tensor, [Float], Tensor) throws -> Tensor

    public init(sampler: ResShiftSampler, scaleFactor: Int, paddingMultiple: Int, encode: @escaping (Tensor) throws -> Tensor,
                decode: @escaping (Tensor) throws -> Tensor, predict: @escaping (Tensor, [Float], Tensor) throws -> Tensor) {
        self.sampler = sampler
        self.scaleFactor = scaleFactor
        self.paddingMultiple = max(1, paddingMultiple)
        self.encode = encode
        self.decode = decode
        self.predict = predict
    }

    /// `mask` ([1, h, w, 1], 1 = hole, −1 = keep, the official [-1, 1] form) is appended to the condition.
    public func restore(_ lq: Tensor, mask: Tensor? = nil, noise: inout some GaussianSource,
                        progress: ((Int, Int) -> Void)? = nil) throws -> Tensor {
        let (_, height, width, _) = try lq.nhwc("ResShift input")
        let padH = (paddingMultiple - height % paddingMultiple) % paddingMultiple
        let padW = (paddingMultiple - width % paddingMultiple) % paddingMultiple
        let padded = try Self.reflectPad(lq, bottom: padH, right: padW)
        var condition = padded
        if let mask { condition = try concatenateChannels([padded, try Self.reflectPad(mask, bottom: padH, right: padW)]) }
        let up = scaleFactor == 1 ? padded
            : try resizeBicubic(padded, height: (height + padH) * scaleFactor, width: (width + padW) * scaleFactor)
        let zY = try encode(up)
        let z = try sampler.sample(zY: zY, denoiser: sampler.denoiser { x, t in try self.predict(x, t, condition) }, noise: &noise, progress: progress)
        let decoded = try decode(z)
        let (_, dh, dw, dc) = try decoded.nhwc("ResShift output")
        let outH = height * scaleFactor, outW = width * scaleFactor
        guard dh >= outH, dw >= outW else { throw SamplerError("the decoder returned \(dh)×\(dw), smaller than \(outH)×\(outW)") }
        let out = try Tensor(uninitializedShape: [1, outH, outW, dc])
        for y in 0..<outH { (out.data + y * outW * dc).update(from: decoded.data + y * dw * dc, count: outW * dc) }
        return try clamp(out, to: -1...1)
    }

    /// `F.pad(mode='reflect')` on the bottom and right; amounts larger than the image (PyTorch refuses them)
    /// are reached by reflecting repeatedly; a 1-pixel side (which PyTorch cannot reflect) is repeated, the
    /// only mirror image a single pixel has.
    static func reflectPad(_ x: Tensor, bottom: Int, right: Int) throws -> Tensor {
        var out = x, remainingH = bottom, remainingW = right
        let (_, h0, w0, _) = try out.nhwc("reflectPad")
        if h0 == 1 || w0 == 1 {
            out = try pad(out, left: 0, right: w0 == 1 ? remainingW : 0, top: 0, bottom: h0 == 1 ? remainingH : 0, mode: .replicate)
            if h0 == 1 { remainingH = 0 }
            if w0 == 1 { remainingW = 0 }
        }
        while remainingH > 0 || remainingW > 0 {
            let (_, h, w, _) = try out.nhwc("reflectPad")
            let stepH = min(remainingH, h - 1), stepW = min(remainingW, w - 1)
            out = try pad(out, left: 0, right: stepW, top: 0, bottom: stepH, mode: .reflect)
            remainingH -= stepH
            remainingW -= stepW
        }
        return out
    }
}
