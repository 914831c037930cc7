import Engine
import Foundation

/// DiffIR's diffusion on the compact IR prior representation (Xia et al., ICCV 2023; `DiffIR-RealSR/ldm/ddpm.py`):
/// T steps (4 in every released model) of an x0-parameterised DDPM whose reverse step keeps the posterior mean
/// only: `p_sample` draws noise and discards it, `clip_denoised` is False. So from IPR₀ ~ N(0, I)
///
///     for t = T−1 … 0:  IPR ← coef1[t] · x0(IPR, t, c) + coef2[t] · IPR
///
/// and the result is deterministic given IPR₀. The schedule is LDM's "linear" (linear in √β), from 0.1 to 0.99.
public struct IPRDiffusion: Sendable, Equatable {
    /// β_t (float64, as `make_beta_schedule`), t = 0…T−1.
    public let betas: [Double]
    /// ᾱ_t (numpy float64 cumprod).
    public let alphaBars: [Double]
    /// The posterior-mean coefficients as the official buffers hold them (float64 then float32):
    /// coef1 = β_t √ᾱ_{t−1} / (1 − ᾱ_t), coef2 = (1 − ᾱ_{t−1}) √α_t / (1 − ᾱ_t), ᾱ_{−1} = 1.
    public let posteriorMeanCoef1: [Float]
    public let posteriorMeanCoef2: [Float]

    /// The official schedule of `DDPM(linear_start, linear_end, timesteps)`.
    public init(timesteps: Int = 4, linearStart: Double = 0.1, linearEnd: Double = 0.99) throws {
        guard timesteps >= 1, linearStart > 0, linearEnd > 0, linearEnd < 1 else {
            throw SamplerError("the IPR diffusion needs T ≥ 1 and 0 < β < 1, got T \(timesteps), β \(linearStart)…\(linearEnd)")
        }
        let (a, b) = (linearStart.squareRoot(), linearEnd.squareRoot())
        betas = (0..<timesteps).map { i in
            let s = timesteps == 1 ? a : a + (b - a) * Double(i) / Double(timesteps - 1)
            return s * s
        }
        var product = 1.0
        alphaBars = betas.map { product *= 1 - $0; return product }
        var c1: [Float] = [], c2: [Float] = []
        for t in 0..<timesteps {
            let previous = t == 0 ? 1 : alphaBars[t - 1]
            c1.append(Float(betas[t] * previous.squareRoot() / (1 - alphaBars[t])))
            c2.append(Float((1 - previous) * (1 - betas[t]).squareRoot() / (1 - alphaBars[t])))
        }
        (posteriorMeanCoef1, posteriorMeanCoef2) = (c1, c2)
    }

    public var timesteps: Int { betas.count }

    /// The official buffers of `DDPM.register_schedule` by their state-dict names (`diffusion.<name>`), float32,
    /// for checking a checkpoint's copies.
    public var buffers: [String: [Float]] {
        let previous = [1.0] + alphaBars.dropLast()
        let variance = zip(zip(betas, previous), alphaBars).map { $0.0 * (1 - $0.1) / (1 - $1) }
        func f(_ v: [Double]) -> [Float] { v.map(Float.init) }
        return [
            "betas": f(betas), "alphas_cumprod": f(alphaBars), "alphas_cumprod_prev": f(previous),
            "sqrt_alphas_cumprod": f(alphaBars.map { $0.squareRoot() }),
            "sqrt_one_minus_alphas_cumprod": f(alphaBars.map { (1 - $0).squareRoot() }),
            "log_one_minus_alphas_cumprod": f(alphaBars.map { Foundation.log(1 - $0) }),
            "sqrt_recip_alphas_cumprod": f(alphaBars.map { (1 / $0).squareRoot() }),
            "sqrt_recipm1_alphas_cumprod": f(alphaBars.map { (1 / $0 - 1).squareRoot() }),
            "posterior_variance": f(variance),
            "posterior_log_variance_clipped": f(variance.map { Foundation.log(max($0, 1e-20)) }),
            "posterior_mean_coef1": posteriorMeanCoef1, "posterior_mean_coef2": posteriorMeanCoef2,
        ]
    }

    /// Runs the reverse chain from `start` (IPR₀, [N, D]) with `predict(x, t)` giving x0; `observe` sees each step's IPR.
    public func sample(from start: Tensor, predict: (_ x: Tensor, _ t: Int) throws -> Tensor,
                       observe: (_ t: Int, _ ipr: Tensor) -> Void = { _, _ in }) throws -> Tensor {
        var ipr = try start.copy()
        for t in (0..<timesteps).reversed() {
            let x0 = try predict(ipr, t)
            guard x0.shape == ipr.shape else { throw SamplerError("the IPR denoiser returned \(x0.shape) for \(ipr.shape)") }
            let (a, b) = (posteriorMeanCoef1[t], posteriorMeanCoef2[t])
            let next = try Tensor(uninitializedShape: ipr.shape)
            for i in 0..<ipr.count { next.data[i] = a * x0.data[i] + b * ipr.data[i] }
            ipr = next
            observe(t, ipr)
        }
        return ipr
    }
}
