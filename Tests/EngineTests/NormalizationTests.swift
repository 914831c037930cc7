import XCTest
@testable import Engine

/// GroupNorm (plain, + SiLU, + ADM scale-shift + SiLU) and the LayerNorm variants against PyTorch.
final class NormalizationTests: XCTestCase {
    /// Runs `body` on the portable Swift kernels and, where the CPU has it, on the AVX-512 C kernels.
    private func onEveryKernelPath(_ body: () throws -> Void) rethrows {
        let saved = CPU.useAVX512Kernels
        defer { CPU.useAVX512Kernels = saved }
        for avx512 in CPU.hasAVX512 ? [false, true] : [false] {
            CPU.useAVX512Kernels = avx512
            try body()
        }
    }

    func testGroupNormMatchesPyTorch() throws {
        try onEveryKernelPath {
            let f = try Fixture("group_norm")
            let y = try groupNorm(try f["x"], groups: f.int("groups"), weight: try f["weight"], bias: try f["bias"],
                                  epsilon: f.float("eps"))
            assertClose(y, try f["gn"], relativeTolerance: 1e-5)
        }
    }

    func testGroupNormSiLUMatchesPyTorch() throws {
        try onEveryKernelPath {
            let f = try Fixture("group_norm")
            let y = try groupNorm(try f["x"], groups: f.int("groups"), weight: try f["weight"], bias: try f["bias"],
                                  epsilon: f.float("eps"), silu: true)
            assertClose(y, try f["gn_silu"], relativeTolerance: 1e-5)
        }
    }

    func testGroupNormScaleShiftSiLUMatchesPyTorch() throws {
        try onEveryKernelPath {
            let f = try Fixture("group_norm")
            let y = try groupNorm(try f["x"], groups: f.int("groups"), weight: try f["weight"], bias: try f["bias"],
                                  epsilon: f.float("eps"), scale: try f["scale"], shift: try f["shift"], silu: true)
            assertClose(y, try f["gn_scale_shift_silu"], relativeTolerance: 1e-5)
        }
    }

    func testGroupNormWithChannelRemainderMatchesPyTorch() throws {
        try onEveryKernelPath {
            let f = try Fixture("group_norm")
            let y = try groupNorm(try f["x2"], groups: f.int("groups2"), weight: try f["weight2"], bias: try f["bias2"],
                                  epsilon: f.float("eps2"), silu: true)
            assertClose(y, try f["gn2_silu"], relativeTolerance: 1e-5)
        }
    }

    /// Groups with variance ~1e-6, where ε decides the result: ε 1e-5 vs 1e-6, and ε inside vs outside the square
    /// root, all move the output by a factor ≥ 1.5 here (on O(1)-variance data they are invisible). Each ε is
    /// also checked against the other's reference, so a test that cannot tell them apart fails.
    func testGroupNormEpsilonMattersOnLowVarianceGroups() throws {
        try onEveryKernelPath {
            let f = try Fixture("group_norm_low_variance")
            for tag in ["a", "b"] {
                for (name, epsilon, other) in [("1e-5", Float(1e-5), "1e-6"), ("1e-6", Float(1e-6), "1e-5")] {
                    let groups = try f.int("groups_\(tag)")
                    let plain = try groupNorm(try f["x_\(tag)"], groups: groups, weight: try f["weight_\(tag)"], bias: try f["bias_\(tag)"],
                                              epsilon: epsilon)
                    assertClose(plain, try f["gn_\(tag)_\(name)"], relativeTolerance: 1e-4, "\(tag) ε \(name)")
                    let fused = try groupNorm(try f["x_\(tag)"], groups: groups, weight: try f["weight_\(tag)"], bias: try f["bias_\(tag)"],
                                              epsilon: epsilon, scale: try f["scale_\(tag)"], shift: try f["shift_\(tag)"], silu: true)
                    assertClose(fused, try f["gn_scale_shift_silu_\(tag)_\(name)"], relativeTolerance: 1e-4, "\(tag) ε \(name) scale-shift SiLU")
                    let wrong = try f["gn_\(tag)_\(other)"]
                    let gap = zip(plain.values, wrong.values).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
                    XCTAssertGreaterThan(gap, 0.1 * (wrong.values.reduce(Float(0)) { max($0, abs($1)) }), "ε \(name) vs \(other) must differ here")
                }
            }
        }
    }

    /// A mean 10⁴ times the spread: a one-pass E[x²] − E[x]² in Float would lose every digit of the variance.
    func testGroupNormKeepsPrecisionUnderLargeMean() throws {
        try onEveryKernelPath {
            let (h, w, c) = (16, 16, 8)
            var generator = SplitMix(7)
            let x = try Tensor(shape: [1, h, w, c], values: (0..<(h * w * c)).map { _ in 1000 + 0.1 * generator.nextFloat() })
            let shifted = try Tensor(shape: x.shape, values: x.values.map { $0 - 1000 })
            let y = try groupNorm(x, groups: 2, weight: nil, bias: nil, epsilon: 1e-6)
            let reference = try groupNorm(shifted, groups: 2, weight: nil, bias: nil, epsilon: 1e-6)
            // The input itself carries Float rounding of 1000 + ε (6e-5 absolute), i.e. ~1e-3 of the spread.
            assertClose(y, reference, relativeTolerance: 2e-3)
        }
    }

    func testGroupNormRejectsBadShapes() throws {
        let x = try Tensor(shape: [1, 2, 2, 12], repeating: 1)
        XCTAssertThrowsError(try groupNorm(x, groups: 5, weight: nil, bias: nil, epsilon: 1e-5))
        XCTAssertThrowsError(try groupNorm(x, groups: 4, weight: try Tensor(shape: [8]), bias: nil, epsilon: 1e-5))
        XCTAssertThrowsError(try groupNorm(x, groups: 4, weight: nil, bias: nil, epsilon: 1e-5, scale: try Tensor(shape: [2, 12])))
    }

    func testLayerNormMatchesPyTorch() throws {
        let f = try Fixture("layer_norm")
        let x = try f["x"], eps = try f.float("eps")
        assertClose(try layerNorm(x, weight: try f["weight"], bias: try f["bias"], epsilon: eps),
                    try f["layer_norm"], relativeTolerance: 1e-5, "with bias")
        assertClose(try layerNorm(x, weight: try f["weight"], epsilon: eps, variant: .biasFree),
                    try f["bias_free"], relativeTolerance: 1e-5, "bias-free")
        assertClose(try layerNorm(x, weight: try f["weight"], epsilon: eps),
                    try f["channel_gain_only"], relativeTolerance: 1e-5, "gain only")
        assertClose(try layerNorm(try f["x2"], weight: try f["weight2"], bias: try f["bias2"], epsilon: f.float("eps2")),
                    try f["layer_norm2"], relativeTolerance: 1e-5, "C = 37")
    }

    /// The bias-free variant subtracts no mean from x; an offset (DiffIR's folded IPR modulation) is added after the gain.
    func testBiasFreeLayerNormAddsOffsetWithoutCentring() throws {
        let x = try Tensor(shape: [1, 4], values: [1, 2, 3, 6]), w = try Tensor(shape: [4], values: [1, 2, 1, 0.5])
        let b = try Tensor(shape: [4], values: [0.5, -1, 0, 2])
        let rstd = 1 / (Float(3.5) + 1e-5).squareRoot()  // mean 3, centred biased variance (4 + 1 + 0 + 9) / 4
        let y = try layerNorm(x, weight: w, bias: b, epsilon: 1e-5, variant: .biasFree).values
        for (i, value) in y.enumerated() { XCTAssertEqual(value, x.values[i] * rstd * w.values[i] + b.values[i], accuracy: 1e-6) }
        XCTAssertThrowsError(try layerNorm(x, weight: try Tensor(shape: [3]), epsilon: 1e-5))
    }
}
