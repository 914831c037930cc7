import Engine
import Foundation
import XCTest
@testable import Methods
@testable import Tiling
@testable import Operators

/// DreamClean's pieces with analytic stand-in ε-networks.
final class DreamCleanTests: XCTestCase {
    let schedule = NoiseSchedule.linear()

    /// The ε a perfect network returns for images built from `x0`: (x − √ᾱ_t x0)/√(1−ᾱ_t).
    func oracle(_ x0: Tensor) -> Denoiser {
        { x, t in
            let a = self.schedule.alphaBar(t)
            return try axpby(1 / (1 - a).squareRoot(), x, -a.squareRoot() / (1 - a).squareRoot(), x0)
        }
    }

    func testInversionThenSamplingWithoutVPSReconstructsTheInput() throws {
        let image = try scale(try TestSupport.random([1, 16, 16, 3], seed: 1), by: 0.5)
        var noise = SeededGaussian(seed: 3)
        // A perfect network: inversion and sampling meet exactly (x0 predictions are the image throughout).
        let exact = try DreamCleanSampler(tau: 400, inversionSteps: 20, samplingSteps: 20, gamma: 0)
        let back = try exact.restore(image, predictNoise: oracle(image), noise: &noise)
        XCTAssertLessThan(TestSupport.maxDifference(back, image), 1e-4)
        // A network that is not the data's: DDIM inversion is first order, so the error falls with the
        // step count — bound stated: ≤ 2 % of max|x| at 50 steps, and 100 steps at least halve the 25-step error.
        let linear: Denoiser = { x, _ in try scale(x, by: 0.3) }
        var errors: [Float] = []
        for steps in [25, 50, 100] {
            let s = try DreamCleanSampler(tau: 400, inversionSteps: steps, samplingSteps: steps, gamma: 0)
            errors.append(TestSupport.maxDifference(try s.restore(image, predictNoise: linear, noise: &noise), image))
        }
        let peak = TestSupport.maxAbs(image.values)
        XCTAssertLessThan(errors[1], 0.02 * peak, "errors \(errors)")
        XCTAssertLessThan(errors[2], 0.5 * errors[0], "errors \(errors)")
        XCTAssertGreaterThan(errors[0], 0, "the linear network is not exact: the test can tell")
    }

    /// VPS with the true noise keeps x_t's noise variance at 1 − ᾱ_t: (1−γ)² + γ(2−γ) = 1; the old noise
    /// keeps a share 1 − γ. (At γ = 0.5 a Langevin-style noise √(2γ) would give variance 1.25: caught.)
    func testVPSPreservesTheNoiseVariance() throws {
        let x0 = try scale(try TestSupport.random([1, 64, 64, 3], seed: 5), by: 0.4)
        let xi = try TestSupport.random([1, 64, 64, 3], seed: 6)
        for t in [100, 500, 900] {
            let a = schedule.alphaBar(t)
            let xt = try axpby(a.squareRoot(), x0, (1 - a).squareRoot(), xi)
            for gamma: Float in [0.1, 0.5] {
                let s = try DreamCleanSampler(tau: 999, inversionSteps: 1, samplingSteps: 1, gamma: gamma)
                var noise = SeededGaussian(seed: UInt64(t))
                let moved = try s.vps(xt, t: t, predictNoise: oracle(x0), noise: &noise)
                let r = try axpby(1 / (1 - a).squareRoot(), moved, -a.squareRoot() / (1 - a).squareRoot(), x0).values
                let n = Float(r.count)
                let variance = r.reduce(0) { $0 + $1 * $1 } / n
                let share = zip(r, xi.values).reduce(0) { $0 + $1.0 * $1.1 } / n
                XCTAssertEqual(variance, 1, accuracy: 0.04, "t \(t) γ \(gamma)")
                XCTAssertEqual(share, 1 - gamma, accuracy: 0.04, "t \(t) γ \(gamma)")
            }
        }
    }

    func testSeedsRepeatAndVPSChangesTheResult() throws {
        let image = try scale(try TestSupport.random([1, 16, 16, 3], seed: 2), by: 0.5)
        let net: Denoiser = { x, _ in try scale(x, by: 0.2) }
        let s = try DreamCleanSampler(tau: 300, inversionSteps: 6, samplingSteps: 6, gamma: 0.2)
        XCTAssertEqual(s.networkEvaluations, 6 + 6 * 2)
        var a = SeededGaussian(seed: 9), b = SeededGaussian(seed: 9), c = SeededGaussian(seed: 10)
        var calls = 0
        let first = try s.restore(image, predictNoise: { x, t in calls += 1; return try net(x, t) }, noise: &a)
        XCTAssertEqual(calls, s.networkEvaluations)
        XCTAssertEqual(first.values, try s.restore(image, predictNoise: net, noise: &b).values)
        XCTAssertGreaterThan(TestSupport.maxDifference(first, try s.restore(image, predictNoise: net, noise: &c)), 1e-3)
        XCTAssertThrowsError(try DreamCleanSampler(tau: 1000, inversionSteps: 5, samplingSteps: 5, gamma: 0.1))
        XCTAssertThrowsError(try DreamCleanSampler(tau: 100, inversionSteps: 5, samplingSteps: 5, gamma: 1))
    }

    /// "Ours*": with a known operator, the range–null correction makes the result consistent with y.
    func testOperatorCorrectionMakesTheResultConsistent() throws {
        let a = try AveragePoolingOperator(factor: 2)
        let clean = try scale(try TestSupport.random([1, 16, 16, 3], seed: 4), by: 0.5)
        let y = try a.apply(clean)
        let s = try DreamCleanSampler(tau: 300, inversionSteps: 5, samplingSteps: 5, gamma: 0.2)
        var noise = SeededGaussian(seed: 1)
        let x = try s.restore(try a.pseudoInverse(y), predictNoise: { x, _ in try scale(x, by: 0.2) }, noise: &noise,
                              correction: { try a.rangeNullCorrection($0, observation: y) })
        XCTAssertLessThan(TestSupport.maxDifference(try a.apply(x), y), 1e-4)
    }

    /// Tiled ε: a pointwise network gives the same ε tiled or not (the weights normalise); a window-dependent
    /// one blends smoothly (no jump across window borders larger than inside).
    func testTiledNoisePredictorBlendsWindows() throws {
        let x = try TestSupport.random([1, 40, 72, 3], seed: 8)
        let pointwise: Denoiser = { x, _ in try scale(x, by: 0.5) }
        let tiled = TiledNoisePredictor(window: 32, overlap: 16, sizeMultiple: 8).wrap(pointwise)
        XCTAssertLessThan(TestSupport.maxDifference(try tiled(x, 10), try pointwise(x, 10)), 1e-5)
        // A network returning its window's mean everywhere: tiled output is a smooth blend of window means.
        let meanNet: Denoiser = { x, _ in
            let m = x.values.reduce(0, +) / Float(x.count)
            return try Tensor(shape: x.shape, repeating: m)
        }
        let blended = try TiledNoisePredictor(window: 32, overlap: 16, sizeMultiple: 8).wrap(meanNet)(x, 10)
        var largestStep: Float = 0
        for r in 0..<40 { for q in 1..<72 { largestStep = max(largestStep, abs(blended.data[(r * 72 + q) * 3] - blended.data[(r * 72 + q - 1) * 3])) } }
        let means = try WindowPlan(height: 40, width: 72, window: 32, overlap: 16, alignment: 1, sizeMultiple: 8).rects.map { rect -> Float in
            let crop = try x.crop(rect)
            return crop.values.reduce(0, +) / Float(crop.count)
        }
        let spread = (means.max() ?? 0) - (means.min() ?? 0)
        XCTAssertGreaterThan(spread, 0)
        XCTAssertLessThan(largestStep, 0.5 * spread, "no hard seam between windows")
    }
}
