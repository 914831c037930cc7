import Foundation

/// A DDPM noise schedule: β_t for t = 0…T−1 and ᾱ_t = ∏(1 − β). Values you can print and test.
public struct NoiseSchedule: Sendable, Equatable {
    public let betas: [Float]
    /// ᾱ_t, t = 0…T−1, as Float32 running products (as `torch.cumprod` on float32 betas computes them).
    public let alphaBars: [Float]

    /// The linear schedule of DDPM / ADM / DDNM: β from `start` to `end` over `steps` (float64 linspace, then
    /// float32, as the official code does).
    public static func linear(start: Double = 1e-4, end: Double = 0.02, steps: Int = 1000) -> NoiseSchedule {
        let betas = (0..<steps).map { i in Float(start + (end - start) * Double(i) / Double(max(steps - 1, 1))) }
        return NoiseSchedule(betas: betas)
    }

    public init(betas: [Float]) {
        self.betas = betas
        var product: Float = 1
        alphaBars = betas.map { beta in product *= (1 - beta); return product }
    }

    public var count: Int { betas.count }

    /// ᾱ at `t`, with ᾱ(−1) = 1 (DDNM's `compute_alpha` prepends β = 0).
    public func alphaBar(_ t: Int) -> Float { t < 0 ? 1 : alphaBars[t] }
}

/// The sampling timesteps with DDNM's time-travel (RePaint's jump schedule): walking down from
/// T_sampling − 1 to 0, at every `travelLength`-th step the walk climbs back `travelLength` steps,
/// `travelRepeat − 1` times; indices are multiplied by ⌊T / T_sampling⌋ and the walk ends at −1.
/// With travel 1, 1 it is plain T_sampling-step sampling (t = 990, 980, …, 0 for 100 of 1000).
public struct TimeTravelSchedule: Sendable, Equatable {
    public let samplingSteps: Int
    public let travelLength: Int
    public let travelRepeat: Int
    /// The visited timesteps, the last being −1.
    public let timesteps: [Int]

    public init(trainingSteps: Int = 1000, samplingSteps: Int, travelLength: Int = 1, travelRepeat: Int = 1) throws {
        guard samplingSteps >= 1, samplingSteps <= trainingSteps else {
            throw SamplerError("steps must be between 1 and \(trainingSteps), got \(samplingSteps)")
        }
        guard travelLength >= 1, travelRepeat >= 1, travelLength < max(samplingSteps, 2) else {
            throw SamplerError("--travel L,R needs L ≥ 1 (and below the step count) and R ≥ 1")
        }
        self.samplingSteps = samplingSteps
        self.travelLength = travelLength
        self.travelRepeat = travelRepeat
        // Remaining climbs at every travelLength-th index below samplingSteps − travelLength.
        var climbs: [Int: Int] = [:]
        var j = 0
        while j < samplingSteps - travelLength { climbs[j] = travelRepeat - 1; j += travelLength }
        var walk: [Int] = []
        var t = samplingSteps
        while t >= 1 {
            t -= 1
            walk.append(t)
            if let left = climbs[t], left > 0 {
                climbs[t] = left - 1
                for _ in 0..<travelLength { t += 1; walk.append(t) }
            }
        }
        let skip = trainingSteps / samplingSteps
        timesteps = walk.map { $0 * skip } + [-1]
    }

    /// Consecutive (from, to) pairs; `to > from` marks a time-travel (re-noising) step.
    public var pairs: [(from: Int, to: Int)] { zip(timesteps.dropLast(), timesteps.dropFirst()).map { ($0, $1) } }

    /// The number of network evaluations (downward steps).
    public var networkEvaluations: Int { pairs.filter { $0.to < $0.from }.count }
}

/// A one-line error of a schedule or sampler (bad step counts, an operator the path cannot run, …).
public struct SamplerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
