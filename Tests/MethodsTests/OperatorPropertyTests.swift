import Engine
import XCTest
@testable import Methods
@testable import Operators

/// Property tests of the degradation operators on random tensors: A A† A = A, A† A A† = A†, and the
/// shapes each spec produces.
final class OperatorPropertyTests: XCTestCase {
    private func random(_ shape: [Int], seed: UInt64) throws -> Tensor { try TestSupport.random(shape, seed: seed) }

    private func maxAbsDifference(_ a: Tensor, _ b: Tensor) -> Float {
        XCTAssertEqual(a.shape, b.shape)
        return TestSupport.maxDifference(a, b)
    }

    private func keepMask(_ h: Int, _ w: Int) throws -> Tensor {
        try Tensor(shape: [h, w], values: (0..<(h * w)).map { ($0 * 7919 % 13) < 5 ? 0 : 1 })
    }

    /// A mask whose holes are whole 2×2 blocks: with it, the official composite A† is exact.
    private func blockMask(_ h: Int, _ w: Int) throws -> Tensor {
        try Tensor(shape: [h, w], values: (0..<(h * w)).map { (($0 / w) / 2 * 7 + ($0 % w) / 2 * 3) % 5 < 2 ? 0 : 1 })
    }

    private func operators() throws -> [any DegradationOperator] {
        [try AveragePoolingOperator(factor: 2), try AveragePoolingOperator(factor: 4), GrayscaleOperator(), IdentityOperator(),
         try MaskOperator(keep: try keepMask(16, 24), source: "test"),
         CompositeOperator([try MaskOperator(keep: try blockMask(16, 24), source: "test"), GrayscaleOperator(), try AveragePoolingOperator(factor: 2)])]
    }

    func testPseudoInverseSatisfiesAAplusAEqualsA() throws {
        for a in try operators() where !(a is CompositeOperator) {
            let x = try random([2, 16, 24, 3], seed: 1)
            let ax = try a.apply(x)
            let aApA = try a.apply(try a.pseudoInverse(ax))
            XCTAssertLessThan(maxAbsDifference(aApA, ax), 1e-5, a.spec)
            XCTAssertGreaterThan(TestSupport.maxAbs(ax.values), 0.1, "A x is trivially small for \(a.spec)")
        }
    }

    func testPseudoInverseSatisfiesApAApEqualsAp() throws {
        for a in try operators() where !(a is CompositeOperator) {
            let y = try a.apply(try random([1, 16, 24, 3], seed: 2))
            let ap = try a.pseudoInverse(y)
            let apAap = try a.pseudoInverse(try a.apply(ap))
            XCTAssertLessThan(maxAbsDifference(apAap, ap), 1e-5, a.spec)
        }
    }

    func testRangeNullCorrectionIsConsistentWithTheObservation() throws {
        // A x̂0 = y for noise-free y, whatever x0 was (Eq. 4 of the DDNM paper).
        for a in try operators() {
            let y = try a.apply(try random([1, 16, 24, 3], seed: 3))
            let corrected = try a.rangeNullCorrection(try random([1, 16, 24, 3], seed: 4), observation: y)
            XCTAssertLessThan(maxAbsDifference(try a.apply(corrected), y), 1e-5, a.spec)
        }
    }

    /// U diag(s) Vᵀ = A for the block SVDs DDNM+ uses (U = 1 for these operators: each block has one
    /// observed value, its first component; the singular value carries A's scale).
    func testBlockSVDReconstructsA() throws {
        let x = try random([1, 8, 12, 3], seed: 9)
        let cases: [(any SpectralOperator, (Tensor) throws -> [Float])] = [
            (try AveragePoolingOperator(factor: 2), { try AveragePoolingOperator(factor: 2).apply($0).values }),
            (GrayscaleOperator(weights: GrayscaleOperator.svdWeights), { try GrayscaleOperator(weights: GrayscaleOperator.svdWeights).apply($0).values }),
            (try MaskOperator(keep: try keepMask(8, 12), source: "t"), { try MaskOperator(keep: try self.keepMask(8, 12), source: "t").apply($0).values }),
        ]
        for (a, direct) in cases {
            let blocks = try a.spectralBlocks(imageShape: x.shape)
            let k = blocks.blockSize
            // s₀ · (V[:, 0]ᵀ x_b) per block, zero where s₀ = 0; compared as a multiset with A x's values.
            var reconstructed: [Float] = []
            for b in 0..<blocks.blockCount where blocks.singular(b, 0) != 0 {
                var dot: Float = 0
                for i in 0..<k { dot += blocks.v[i * k] * x.data[blocks.indices[b * k + i]] }
                reconstructed.append(blocks.singular(b, 0) * dot)
            }
            let expected = try direct(x).filter { $0 != 0 }
            XCTAssertEqual(reconstructed.count, expected.count, a.spec)
            for (r, e) in zip(reconstructed.sorted(), expected.sorted()) { XCTAssertEqual(r, e, accuracy: 1e-5, a.spec) }
            // V is orthonormal.
            for i in 0..<k { for j in 0..<k {
                let dot = (0..<k).reduce(Float(0)) { $0 + blocks.v[$1 * k + i] * blocks.v[$1 * k + j] }
                XCTAssertEqual(dot, i == j ? 1 : 0, accuracy: 1e-5, a.spec)
            } }
        }
    }

    func testSpecsParseAndReportShapes() throws {
        let noMask: (String) throws -> Tensor = { _ in XCTFail("no mask expected"); return try Tensor(shape: [1, 1]) }
        XCTAssertEqual(try OperatorSpec.parse("pool:4", loadMask: noMask).observationShape(for: [1, 256, 256, 3]), [1, 64, 64, 3])
        XCTAssertEqual(try OperatorSpec.parse("gray", loadMask: noMask).imageShape(for: [1, 64, 64, 1]), [1, 64, 64, 3])
        let composite = try OperatorSpec.parse("mask:m.png,gray,pool:2", loadMask: { _ in try self.keepMask(8, 8) })
        XCTAssertEqual(composite.spec, "mask:m.png,gray,pool:2")
        XCTAssertEqual(try composite.observationShape(for: [1, 8, 8, 3]), [1, 4, 4, 1])
        XCTAssertEqual(try composite.imageShape(for: [1, 4, 4, 1]), [1, 8, 8, 3])
        for bad in ["", "pool", "pool:x", "blur:unknown", "gray:2", ",pool:2", "mask:"] {
            XCTAssertThrowsError(try OperatorSpec.parse(bad, loadMask: noMask), bad) { XCTAssertFalse("\($0)".contains("\n")) }
        }
        XCTAssertThrowsError(try AveragePoolingOperator(factor: 4).apply(try Tensor(shape: [1, 10, 12, 3]))) {
            XCTAssertTrue("\($0)".contains("multiples of 4"), "\($0)")
        }
    }
}

/// The schedules: DDNM's linear β, ᾱ, and the time-travel walk.
final class ScheduleTests: XCTestCase {
    func testLinearScheduleMatchesDDPM() {
        let s = NoiseSchedule.linear()
        XCTAssertEqual(s.count, 1000)
        XCTAssertEqual(s.betas[0], 1e-4, accuracy: 1e-9)
        XCTAssertEqual(s.betas[999], 0.02, accuracy: 1e-9)
        XCTAssertEqual(s.alphaBar(-1), 1)
        XCTAssertEqual(s.alphaBar(0), 0.9999, accuracy: 1e-7)
        XCTAssertEqual(Double(s.alphaBar(999)), 4.0358e-5, accuracy: 1e-7)  // ∏(1 − β) over the linear schedule
    }

    func testPlainScheduleVisits990DownTo0() throws {
        let t = try TimeTravelSchedule(samplingSteps: 100)
        XCTAssertEqual(Array(t.timesteps.prefix(3)), [990, 980, 970])
        XCTAssertEqual(Array(t.timesteps.suffix(2)), [0, -1])
        XCTAssertEqual(t.networkEvaluations, 100)
    }

    func testTimeTravelCountsMatchTheDocumentedWalks() throws {
        // anchors §1.1: L = 10, r = 3 → 280 network calls; L = 5, r = 2 → 195.
        XCTAssertEqual(try TimeTravelSchedule(samplingSteps: 100, travelLength: 10, travelRepeat: 3).networkEvaluations, 280)
        XCTAssertEqual(try TimeTravelSchedule(samplingSteps: 100, travelLength: 5, travelRepeat: 2).networkEvaluations, 195)
        let small = try TimeTravelSchedule(trainingSteps: 10, samplingSteps: 10, travelLength: 2, travelRepeat: 2)
        XCTAssertEqual(small.timesteps, [9, 8, 7, 6, 7, 8, 7, 6, 5, 4, 5, 6, 5, 4, 3, 2, 3, 4, 3, 2, 1, 0, 1, 2, 1, 0, -1])
    }

    func testSeededNoiseRepeats() throws {
        var a = SeededGaussian(seed: 7), b = SeededGaussian(seed: 7), c = SeededGaussian(seed: 8)
        let x = try a.next(shape: [1000]), y = try b.next(shape: [1000]), z = try c.next(shape: [1000])
        XCTAssertEqual(x.values, y.values)
        XCTAssertNotEqual(x.values, z.values)
        let mean = x.values.reduce(0, +) / 1000, variance = x.values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 1000
        XCTAssertEqual(mean, 0, accuracy: 0.1)
        XCTAssertEqual(variance, 1, accuracy: 0.15)
    }
}

/// DDNM+ on the SVD path with a non-block SVD (Walsh–Hadamard CS): the step runs, stays finite, and σy
/// changes the result (the per-singular Λ is exercised; its formulas are checked against the official code
/// in SpectralGoldenTests).
final class SVDPathDDNMPlusTests: XCTestCase {
    func testWalshHadamardDDNMPlusRunsAndDependsOnSigmaY() throws {
        let a = try WalshHadamardCSOperator(ratio: 4, side: 16, permutation: WalshHadamardCSOperator.seededPermutation(count: 256, seed: 1), spec: "cs-wht:0.25")
        var source = SeededGaussian(seed: 5)
        let clean = try scale(try source.next(shape: [1, 16, 16, 3]), by: 0.5)
        let y = try a.apply(clean)
        var results: [[Float]] = []
        for sigmaY: Float in [0, 0.2] {
            var noise = SeededGaussian(seed: 11)
            let sampler = try DDNMSampler(timesteps: try TimeTravelSchedule(samplingSteps: 5), sigmaY: sigmaY)
            let x = try sampler.sample(observation: y, operator: a, imageShape: [1, 16, 16, 3],
                                       predictNoise: { x, _ in try scale(x, by: 0.1) }, noise: &noise)
            XCTAssertTrue(x.values.allSatisfy(\.isFinite))
            results.append(x.values)
        }
        XCTAssertGreaterThan(TestSupport.spread(results[0], results[1]), 1e-3)
    }

    /// The same for the separable blurs, bicubic and the FFT kernel path (their own Λ / Λ_noise); a
    /// composite without a Λ is refused with one line.
    func testSeparableAndFFTDDNMPlusRunAndDependOnSigmaY() throws {
        for spec in ["blur:gauss", "bicubic:2", "blur:motion:5:30"] {
            let a = try OperatorSpec.parse(spec, loadMask: { _ in throw OperatorError("no mask") })
            var source = SeededGaussian(seed: 5)
            let clean = try scale(try source.next(shape: [1, 16, 16, 3]), by: 0.5)
            let y = try a.apply(clean)
            var results: [[Float]] = []
            for sigmaY: Float in [0, 0.2] {
                var noise = SeededGaussian(seed: 11)
                let sampler = try DDNMSampler(timesteps: try TimeTravelSchedule(samplingSteps: 5), sigmaY: sigmaY)
                let x = try sampler.sample(observation: y, operator: a, imageShape: [1, 16, 16, 3],
                                           predictNoise: { x, _ in try scale(x, by: 0.1) }, noise: &noise)
                XCTAssertTrue(x.values.allSatisfy(\.isFinite), spec)
                results.append(x.values)
            }
            XCTAssertGreaterThan(TestSupport.spread(results[0], results[1]), 1e-3, spec)
        }
        let composite = try OperatorSpec.parse("gray,pool:2", loadMask: { _ in throw OperatorError("no mask") })
        let sampler = try DDNMSampler(timesteps: try TimeTravelSchedule(samplingSteps: 2), sigmaY: 0.2)
        var noise = SeededGaussian(seed: 1)
        XCTAssertThrowsError(try sampler.sample(observation: try Tensor(shape: [1, 8, 8, 1], repeating: 0), operator: composite,
                                                imageShape: [1, 16, 16, 3], predictNoise: { x, _ in x }, noise: &noise)) {
            XCTAssertTrue("\($0)".contains("--simplified"))
        }
    }
}
