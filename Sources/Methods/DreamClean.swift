import Engine
import Foundation
import Operators

/// DreamClean (Xiao et al., ICLR 2024): restoration without knowing the degradation. The degraded image is
/// embedded in the prior's noisy latent space by DDIM inversion up to the inverse strength τ, then sampled
/// back to t = 0 by DDIM with Variance-Preserving Sampling (VPS) before every step:
///   x_t ← x_t − γ √(1−ᾱ_t) ε_θ(x_t, t) + √(γ(2−γ)) √(1−ᾱ_t) z        (M times; ∇log p_t = −ε_θ/√(1−ᾱ_t))
/// which keeps the noise variance of x_t at 1−ᾱ_t when ε_θ is the true noise ((1−γ)² + γ(2−γ) = 1) while
/// moving x_t toward high-probability (clean) regions. No official code exists; DESIGN notes in the README
/// say which details are the paper's and which are our choices. "Ours*" (the paper's §3.5): with a known
/// linear operator, each x0 prediction also gets DDNM's range–null correction x0 ← x0 − A†(A x0 − y).
public struct DreamCleanSampler {
    public let schedule: NoiseSchedule
    /// The timestep the inversion reaches (0…T−1).
    public let tau: Int
    public let inversionSteps: Int
    public let samplingSteps: Int
    /// VPS step γ ∈ [0, 1) and iterations M per sampling step (0 iterations or γ = 0: plain DDIM).
    public let gamma: Float
    public let vpsIterations: Int

    public init(schedule: NoiseSchedule = .linear(), tau: Int, inversionSteps: Int, samplingSteps: Int, gamma: Float, vpsIterations: Int = 1) throws {
        guard (1..<schedule.count).contains(tau) else { throw SamplerError("τ must be a timestep between 1 and \(schedule.count - 1), got \(tau)") }
        guard inversionSteps >= 1, inversionSteps <= tau else { throw SamplerError("inversion steps must be between 1 and τ (\(tau)), got \(inversionSteps)") }
        guard samplingSteps >= 1, samplingSteps <= tau else { throw SamplerError("sampling steps must be between 1 and τ (\(tau)), got \(samplingSteps)") }
        guard gamma >= 0, gamma < 1 else { throw SamplerError("γ must be in [0, 1), got \(gamma)") }
        guard (0...16).contains(vpsIterations) else { throw SamplerError("VPS iterations must be between 0 and 16, got \(vpsIterations)") }
        self.schedule = schedule
        self.tau = tau
        self.inversionSteps = inversionSteps
        self.samplingSteps = samplingSteps
        self.gamma = gamma
        self.vpsIterations = vpsIterations
    }

    /// k + 1 timesteps from 0 to τ, evenly spaced (rounded), strictly increasing.
    static func ladder(_ tau: Int, _ k: Int) -> [Int] {
        var list = (0...k).map { Int((Double(tau) * Double($0) / Double(k)).rounded()) }
        for i in 1..<list.count where list[i] <= list[i - 1] { list[i] = list[i - 1] + 1 }
        return list
    }

    /// Network evaluations of one restoration.
    public var networkEvaluations: Int { inversionSteps + samplingSteps * (1 + (gamma > 0 ? vpsIterations : 0)) }

    /// DDIM inversion (deterministic): x_{t_{i+1}} = √ᾱ_{t_{i+1}} x̂0(x_{t_i}) + √(1−ᾱ_{t_{i+1}}) ε_θ(x_{t_i}, t_i),
    /// starting from x_{t_0 = 0} = the image, taken as clean (ᾱ = 1 there; the network is asked at t = 0).
    public func invert(_ image: Tensor, predictNoise: Denoiser, step: () -> Void = {}) throws -> Tensor {
        let ts = Self.ladder(tau, inversionSteps)
        var x = image
        for i in 0..<(ts.count - 1) {
            // The image is the clean x_0 (ᾱ = 1), as the sampling's last step lands on ᾱ = 1.
            let a = ts[i] == 0 ? 1 : schedule.alphaBar(ts[i]), next = schedule.alphaBar(ts[i + 1])
            let epsilon = try checkedPrediction(try predictNoise(x, ts[i]), for: x)
            let x0 = try axpby(1 / a.squareRoot(), x, -(1 - a).squareRoot() / a.squareRoot(), epsilon)
            x = try axpby(next.squareRoot(), x0, (1 - next).squareRoot(), epsilon)
            step()
        }
        return x
    }

    /// One VPS iteration on x_t (the paper's update with ∇log p_t = −ε_θ/√(1−ᾱ_t)).
    public func vps(_ x: Tensor, t: Int, predictNoise: Denoiser, noise: inout some GaussianSource) throws -> Tensor {
        let sigma = (1 - schedule.alphaBar(t)).squareRoot()
        let epsilon = try checkedPrediction(try predictNoise(x, t), for: x)
        let z = try noise.next(shape: x.shape)
        let moved = try axpby(1, x, -gamma * sigma, epsilon)
        return try axpby(1, moved, (gamma * (2 - gamma)).squareRoot() * sigma, z)
    }

    /// Restores: inversion of `image` to τ, then `samplingSteps` deterministic DDIM steps back to 0 with VPS
    /// before each. `correction` ("Ours*"): applied to every x0 prediction (e.g. DDNM's range–null step).
    public func restore(_ image: Tensor, predictNoise: Denoiser, noise: inout some GaussianSource,
                        correction: ((Tensor) throws -> Tensor)? = nil, progress: (Int, Int) -> Void = { _, _ in },
                        observe: StepObserver? = nil) throws -> Tensor {
        let total = networkEvaluations
        var done = 0
        func tick() { done += 1; progress(done, total) }
        var x = try invert(image, predictNoise: { x, t in let e = try predictNoise(x, t); tick(); return e })
        let ts = Self.ladder(tau, samplingSteps)
        for i in stride(from: ts.count - 1, to: 0, by: -1) {
            let t = ts[i], previous = ts[i - 1]
            if gamma > 0 {
                for _ in 0..<vpsIterations { x = try vps(x, t: t, predictNoise: { x, t in let e = try predictNoise(x, t); tick(); return e }, noise: &noise) }
            }
            let a = schedule.alphaBar(t)
            let aNext = previous == 0 ? 1 : schedule.alphaBar(previous)  // the last step lands on the clean image
            let epsilon = try checkedPrediction(try predictNoise(x, t), for: x)
            tick()
            var x0 = try axpby(1 / a.squareRoot(), x, -(1 - a).squareRoot() / a.squareRoot(), epsilon)
            if let correction { x0 = try correction(x0) }
            observe?(t, x0)
            x = try axpby(aNext.squareRoot(), x0, (1 - aNext).squareRoot(), epsilon)
        }
        return x
    }
}
