import Checkpoints
import Engine
import Foundation
import Networks
import XCTest
@testable import Methods
@testable import Tiling
@testable import Operators

/// Tests on the bundled prior (Models/adm64-prior.safetensors, committed): it loads as our ADM UNet from its
/// own metadata, and USDR's mask-shift windows leave no seams where naive tiles do.
final class BundledPriorTests: XCTestCase {
    static let modelPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Models/adm64-prior.safetensors").path

    nonisolated(unsafe) static let loaded: (network: any DiffusionNetwork, native: Int)? = {
        guard let l = try? NetworkLoader.load(path: modelPath) else { return nil }
        return (l.network, l.architecture.nativeSize)
    }()

    func prior() throws -> (network: any DiffusionNetwork, native: Int) {
        guard let l = Self.loaded else { throw FixtureMissing("the bundled prior \(Self.modelPath) does not load (make train-prior exports it)") }
        return l
    }

    func testBundledPriorLoadsFromItsMetadataAndPredictsNoise() throws {
        let (network, native) = try prior()
        XCTAssertEqual(native, 64)
        XCTAssertNil(network.classCount)
        // A trained ε-network recovers most of the noise it is shown at mid-range t on a smooth image.
        var g = SeededGaussian(seed: 1)
        let noise = try g.next(shape: [1, 64, 64, 3])
        let clean = try Self.smoothImage(64, 64)
        let a = NoiseSchedule.linear().alphaBar(500)
        let xt = try axpby(a.squareRoot(), clean, (1 - a).squareRoot(), noise)
        let eps = try network(xt, timesteps: [500], classLabels: nil)
        let error = zip(eps.values, noise.values).reduce(Float(0)) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Float(noise.count)
        XCTAssertLessThan(error, 0.2, "ε-MSE at t = 500: \(error) (an untrained network gives ≈ 1)")
    }

    /// Batching windows must not change a window's ε: the prior's output for a sample is the same bits alone
    /// and in batches of 2, 5 and 16 (oneDNN's AVX-512 kernels reduce each output in the same order whatever
    /// the batch), which is what lets mask-shift tiling evaluate a wave as one batch and workers split a wave
    /// at will. Its AVX2 kernels do not (measured: sample 14 of a batch of 16 differs under `limitToAVX2`),
    /// hence `--window-batch` 1 by default; on an AVX2-only machine this test is skipped.
    func testPriorGivesEverySampleTheSameBitsInAnyBatch() throws {
        guard CPU.hasAVX512 else { throw XCTSkip("oneDNN's AVX2 convolutions round a batch differently (see above)") }
        let (network, _) = try prior()
        var g = SeededGaussian(seed: 5)
        let samples = try (0..<16).map { _ in try g.next(shape: [1, 64, 64, 3]) }
        let alone = try samples.map { try network($0, timesteps: [300], classLabels: nil) }
        for size in [2, 5, 16] {
            let batched = try network(try Tensor.stackingBatch(Array(samples.prefix(size))), timesteps: Array(repeating: 300, count: size), classLabels: nil)
            for i in 0..<size { XCTAssertEqual(try batched.sample(i).values, alone[i].values, "sample \(i) of a batch of \(size)") }
        }
    }

    /// A smooth synthetic colour image: low-frequency sinusoids per channel, in [-0.8, 0.8].
    static func smoothImage(_ h: Int, _ w: Int) throws -> Tensor {
        let x = try Tensor(uninitializedShape: [1, h, w, 3])
        for r in 0..<h { for c in 0..<w {
            let u = Float(c) / Float(w), v = Float(r) / Float(h)
            x.data[(r * w + c) * 3] = 0.8 * Foundation.sin(2.1 * u + 1.3 * v)
            x.data[(r * w + c) * 3 + 1] = 0.6 * Foundation.cos(1.7 * u - 2.2 * v + 0.4)
            x.data[(r * w + c) * 3 + 2] = 0.7 * Foundation.sin(0.9 * u + 2.5 * v + 1.1)
        } }
        return x
    }

    /// Mean |∇| across the window borders (rows/columns where a window starts or ends inside the image)
    /// over the mean |∇| elsewhere.
    static func seamRatio(_ x: Tensor, borders: Set<Int>) -> Double {
        let (h, w) = (x.shape[1], x.shape[2])
        var at = 0.0, atCount = 0, away = 0.0, awayCount = 0
        for r in 0..<h { for c in 0..<w { for k in 0..<3 {
            let v = x.data[(r * w + c) * 3 + k]
            if c + 1 < w {
                let d = Double(abs(x.data[(r * w + c + 1) * 3 + k] - v))
                if borders.contains(c + 1) { at += d; atCount += 1 } else { away += d; awayCount += 1 }
            }
            if r + 1 < h {
                let d = Double(abs(x.data[((r + 1) * w + c) * 3 + k] - v))
                if borders.contains(r + 1) { at += d; atCount += 1 } else { away += d; awayCount += 1 }
            }
        } } }
        return (at / Double(atCount)) / (away / Double(awayCount))
    }

    /// The USDR issue's seam test: colorization of a smooth image covering 2×2 windows, 20 steps, 3 seeds.
    func testMaskShiftLeavesNoSeamsWhereNaiveTilesDo() throws {
        let (network, native) = try prior()
        let side = native + native / 2  // 96: windows at 0 and 32 in each direction
        let clean = try Self.smoothImage(side, side)
        let a = GrayscaleOperator(weights: GrayscaleOperator.svdWeights)
        let y = try a.apply(clean)
        let sampler = try DDNMSampler(timesteps: try TimeTravelSchedule(samplingSteps: 20))
        let predict: Denoiser = network.epsilon()
        // Where a seam could be: for MSR the edge between a window's known overlap and its new part (the end
        // of the previous window less the margin, 60), the start of the feathered band (56) and the end of the
        // previous window (64); for naive tiles where a later tile overwrites an earlier one (32).
        let blend = try MaskShiftRestoration(sampler: sampler, plan: try WindowPlan(height: side, width: side, window: native, overlap: native / 2, alignment: 2,
                                                                                    sizeMultiple: network.sizeMultiple)).seamBlend(unit: 2)
        XCTAssertEqual([blend.margin, blend.feather], [4, 4])
        let msrBorders = [native - blend.margin, native - blend.margin - blend.feather, native], naiveBorders: Set<Int> = [side - native]
        var msr: [[Double]] = [], hard: [Double] = [], naive: [Double] = [], consistency: [Double] = [], controls: [[Double]] = []
        // Control columns: no window starts, ends or blends within 3 px, so their ratios are the image's own
        // column-to-column spread on this machine (sampling is chaotic: another CPU's rounding gives other numbers).
        let edges = msrBorders + [side - native, native / 2]
        let controlColumns = (4..<(side - 4)).filter { c in edges.allSatisfy { abs($0 - c) > 3 } }
        for seed: UInt64 in [1, 2, 3] {
            var noise = SeededGaussian(seed: seed)
            let coarse = try XCTUnwrap(try HierarchicalRestoration.plan(operator: a, observation: y, imageShape: [1, side, side, 3],
                                                                       nativeSize: native, sizeMultiple: network.sizeMultiple))
            let global = try sampler.sample(observation: coarse.observation, operator: coarse.operator, imageShape: coarse.shape,
                                            predictNoise: predict, noise: &noise)
            let plan = try WindowPlan(height: side, width: side, window: native, overlap: native / 2, alignment: coarse.factor,
                                      sizeMultiple: network.sizeMultiple)
            XCTAssertEqual(plan.rects.count, 4)
            let exact = try MaskShiftRestoration(sampler: sampler, plan: plan).restore(
                observation: y, operator: a, imageShape: [1, side, side, 3], predictNoise: predict, noise: WindowNoise(seed: seed),
                global: (coarse.factor, global))
            let tiled = try clamp(exact, to: -1...1)
            msr.append(msrBorders.map { Self.seamRatio(tiled, borders: [$0]) })
            controls.append(controlColumns.map { Self.seamRatio(tiled, borders: [$0]) })
            // hq_demo's form: the whole overlap imposed hard (no margin, no feather).
            var hardNoise = SeededGaussian(seed: seed)
            let hardGlobal = try sampler.sample(observation: coarse.observation, operator: coarse.operator, imageShape: coarse.shape,
                                                predictNoise: predict, noise: &hardNoise)
            let hardTiled = try clamp(try MaskShiftRestoration(sampler: sampler, plan: plan, margin: 0, feather: 0).restore(
                observation: y, operator: a, imageShape: [1, side, side, 3], predictNoise: predict, noise: WindowNoise(seed: seed),
                global: (coarse.factor, hardGlobal)), to: -1...1)
            hard.append(Self.seamRatio(hardTiled, borders: [native]))
            let residual = try subtract(try a.apply(exact), y)  // the sampler's own result (clamping is the writer's)
            consistency.append((residual.values.reduce(0) { $0 + Double($1 * $1) } / Double(residual.count)).squareRoot())
            var naiveNoise = SeededGaussian(seed: seed)
            let naivePlan = try WindowPlan(height: side, width: side, window: native, overlap: 0, alignment: 1, sizeMultiple: network.sizeMultiple)
            let independent = try clamp(try MaskShiftRestoration(sampler: sampler, plan: naivePlan, tiling: .naive).restore(
                observation: y, operator: a, imageShape: [1, side, side, 3], predictNoise: predict, noise: WindowNoise(seed: seed)), to: -1...1)
            naive.append(Self.seamRatio(independent, borders: naiveBorders))
        }
        // One window of the same content, for the consistency comparison.
        var single = SeededGaussian(seed: 1)
        let window = try clean.crop(PixelRect(y: 0, x: 0, height: native, width: native))
        let yWindow = try a.apply(window)
        let alone = try sampler.sample(observation: yWindow, operator: a, imageShape: window.shape, predictNoise: predict, noise: &single)
        let singleResidual = try subtract(try a.apply(alone), yWindow)
        let singleRMS = (singleResidual.values.reduce(0) { $0 + Double($1 * $1) } / Double(singleResidual.count)).squareRoot()
        let meanMSR = msrBorders.indices.map { i in msr.reduce(0) { $0 + $1[i] } / 3 }, meanNaive = naive.reduce(0, +) / 3, meanHard = hard.reduce(0, +) / 3
        print("USDR seams: MSR ratios at columns \(msrBorders) \(msr) (means \(meanMSR)), hard overlap (hq_demo) \(hard) (mean \(meanHard)), naive \(naive) (mean \(meanNaive)); ‖Ax̂−y‖ RMS tiled \(consistency), single window \(singleRMS)")
        // Measured with the bundled prior (1707 training steps): MSR means 0.95 / 0.96 / 0.97 at the three
        // columns; hq_demo's hard overlap 1.52 (its last, zero-padded pixels kept); naive 52–107. Over seeds
        // 4–15: 0.84 at the kept edge vs 1.34 hard; per seed at the kept edge 0.29–1.04 over seeds 1–15. A single
        // column's ratio also varies from seed to seed where there is no edge at all (0.31–1.18 per seed at
        // column 64, which the margin took out of the known region), so the 1.10 is held at the kept
        // edge and the band's start and the old edge are held to that natural spread.
        // The bars: the 1.10 at the kept edge and 1.25 elsewhere, or, where this machine's run is more
        // textured than the one they were measured on, the largest mean ratio of a control column (a seam must
        // stand out from columns that cannot have one).
        let controlMeans = controlColumns.indices.map { i in controls.reduce(0) { $0 + $1[i] } / 3 }
        let ceiling = controlMeans.max() ?? 0
        print("USDR seams: control columns' mean ratios \(controlMeans.min() ?? 0)…\(ceiling)")
        XCTAssertLessThanOrEqual(meanMSR[0], max(1.10, ceiling), "MSR seam ratio at the kept edge, column \(msrBorders[0]): \(msr)")
        for (column, mean) in zip(msrBorders, meanMSR).dropFirst() {
            XCTAssertLessThanOrEqual(mean, max(1.25, ceiling), "MSR ratio at column \(column): \(msr)")
        }
        XCTAssertGreaterThan(meanHard, meanMSR[0] + 0.1, "the margin and feather remove the hard overlap's seam")
        XCTAssertLessThan(meanMSR.max()! * 10, meanNaive, "naive tiles show seams MSR does not: \(naive) vs \(msr)")
        for c in consistency { XCTAssertLessThanOrEqual(c, 1.1 * singleRMS + 1e-5, "global ‖Ax̂−y‖ vs one window") }
    }
}
