import Engine
import Foundation

// Latent diffusion's DDIM (CompVis/latent-diffusion, ldm/models/diffusion/ddim.py with
// ldm/modules/diffusionmodules/util.py), as the official SR helper and scripts/inpaint.py run it. It differs from
// the DDIM of guided-diffusion in two places: its grid is range(0, T, T/S) + 1 (1, 11, …, 991 for S = 100), and the
// ᾱ_prev of the last step is ᾱ_0 (`alphacums[0]`), not 1, so the result keeps a last trace of noise and is the
// x_prev of that step, not its x̂0.

/// One DDIM step: the timestep the network sees and the coefficients of
/// `x_prev = √ᾱ_prev·x̂0 + √(1 − ᾱ_prev − σ²)·ε + σ·z` with `x̂0 = (x − √(1 − ᾱ)·ε)/√ᾱ`.
public struct LDMDDIMStep: Sendable, Equatable {
    public let timestep: Int
    public let alpha: Float, alphaPrev: Float, sigma: Float, sqrtOneMinusAlpha: Float
}

public enum LDMDDIM {
    /// `make_ddim_timesteps('uniform')`: range(0, T, T/S) + 1, ascending. When S does not divide T the grid may hold
    /// more than S steps, as the official one does; a grid that reaches T (the official code then fails on an index
    /// out of range) is refused.
    public static func timesteps(steps: Int, timesteps total: Int) throws -> [Int] {
        guard steps >= 1, steps <= total else {
            throw EngineError.invalidArgument(op: "LDM DDIM", reason: "steps must be 1…\(total), not \(steps)")
        }
        let grid = Array(stride(from: 0, to: total, by: total / steps)).map { $0 + 1 }
        guard let last = grid.last, last < total else {
            throw EngineError.invalidArgument(op: "LDM DDIM", reason: "\(steps) steps give LDM's grid range(0, \(total), \(total / steps)) + 1, which ends at \(grid.last ?? 0) ≥ T = \(total) (the official sampler fails there too); choose steps dividing \(total)")
        }
        return grid
    }

    /// `make_ddim_sampling_parameters`: ᾱ at the grid, ᾱ_prev = [ᾱ_0] + ᾱ at the grid but its last,
    /// σ = η·√((1 − ᾱ_prev)/(1 − ᾱ)·(1 − ᾱ/ᾱ_prev)) (in float64 from the float32 ᾱ, as numpy does), ascending.
    public static func plan(alphasCumprod: [Float], steps: Int, eta: Double) throws -> [LDMDDIMStep] {
        guard eta >= 0, eta.isFinite else { throw EngineError.invalidArgument(op: "LDM DDIM", reason: "eta must be ≥ 0, not \(eta)") }
        let grid = try timesteps(steps: steps, timesteps: alphasCumprod.count)
        return grid.enumerated().map { i, t in
            let alpha = alphasCumprod[t], alphaPrev = i == 0 ? alphasCumprod[0] : alphasCumprod[grid[i - 1]]
            let (a, p) = (Double(alpha), Double(alphaPrev))
            let sigma = eta * ((1 - p) / (1 - a) * (1 - a / p)).squareRoot()
            return LDMDDIMStep(timestep: t, alpha: alpha, alphaPrev: alphaPrev, sigma: Float(sigma), sqrtOneMinusAlpha: (1 - alpha).squareRoot())
        }
    }

    /// Runs the plan from `start` (x_T, the caller's standard normal) down the grid: `epsilon` gives the network's
    /// ε for (x_t, t); per-step noise z is drawn from `noise` only when σ > 0. `progress(done, total, x̂0)` after each step.
    ///
    /// `predictsX0`: the network returns x̂0 instead of ε (ddpm.py's `parameterization = "x0"`). The official DDIM
    /// sampler handles ε only; for such a model we take x̂0 as it is and the ε it implies,
    /// ε = (x_t − √ᾱ·x̂0)/√(1 − ᾱ) (ddpm.py's `predict_start_from_noise` solved for ε), then step as above.
    ///
    /// `finalX0`: the DDIM paper's last step (ᾱ_prev = 1: the result is that step's x̂0) instead of the official code's
    /// (ᾱ_prev = ᾱ_0, which keeps √(1 − ᾱ_0) of the implied noise in the result).
    public static func sample(start: Tensor, plan: [LDMDDIMStep], noise: inout some GaussianSource, predictsX0: Bool = false,
                              finalX0: Bool = false, epsilon: Denoiser, progress: ((Int, Int, Tensor) -> Void)? = nil) throws -> Tensor {
        var x = start
        for (done, step) in plan.reversed().enumerated() {
            let output = try checkedPrediction(try epsilon(x, step.timestep), for: x)
            let rootAlpha = step.alpha.squareRoot()
            let e: Tensor, x0: Tensor
            if predictsX0 {
                x0 = output
                e = try axpby(1 / step.sqrtOneMinusAlpha, x, -rootAlpha / step.sqrtOneMinusAlpha, x0)
            } else {
                e = output
                x0 = try axpby(1 / rootAlpha, x, -step.sqrtOneMinusAlpha / rootAlpha, e)
            }
            if finalX0, done == plan.count - 1 {
                progress?(done + 1, plan.count, x0)
                return x0
            }
            let direction = max(0, 1 - step.alphaPrev - step.sigma * step.sigma).squareRoot()
            let next = try axpby(step.alphaPrev.squareRoot(), x0, direction, e)
            if step.sigma > 0 { try addInPlace(next, try noise.next(shape: x.shape), scale: step.sigma) }
            x = next
            progress?(done + 1, plan.count, x0)
        }
        return x
    }
}
