import XCTest
@testable import Engine

/// oneDNN-backed convolutions and linear layers against PyTorch goldens
/// (Tools/reference/make_conv_attention_fixtures.py); tolerance max|Δ| ≤ 1e-4·max|ref|.
final class ConvolutionTests: XCTestCase {
    private func runConv(_ name: String, layout: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        let f = try Fixture("conv_\(name)")
        let stride = try f.int("stride"), padding = try f.int("padding"), groups = try f.int("groups")
        var pad = ConvPadding.same(padding)
        if f.metadata["pad_mode"] == "reflect" { pad = .reflect(padding) }
        if let ltrb = f.metadata["pad_ltrb"] {
            let p = ltrb.split(separator: ",").map { Int($0)! }
            pad = .zeros(top: p[1], left: p[0], bottom: p[3], right: p[2])
        }
        var postOps: [PostOp] = []
        if try f.int("residual") == 1 { postOps.append(.sum()) }
        switch f.metadata["post"] {
        case "silu": postOps.append(.silu)
        case "gelu": postOps.append(.geluErf)
        default: break
        }
        let conv = try Conv2D(weight: try f["weight"], bias: f.tensors["bias"], stride: stride, padding: pad,
                              groups: groups, postOps: postOps)
        conv.layoutOverride = layout
        let residual = try f.tensors["residual"]?.copy()
        let y = try conv(try f["x"], residual: residual)
        assertClose(y, try f["y"], relativeTolerance: 1e-4, name, file: file, line: line)
        // A second call reuses the cached plan and must give the same answer.
        if residual == nil {
            let again = try conv(try f["x"])
            XCTAssertEqual(again.values, y.values, "cached plan differs", file: file, line: line)
        }
    }

    func testConv3x3MatchesPyTorch() throws { try runConv("3x3") }
    func testConv3x3WithoutBiasMatchesPyTorch() throws { try runConv("3x3_nobias") }
    func testStrideTwoConvMatchesPyTorch() throws { try runConv("3x3_stride2") }
    func testAsymmetricPaddingConvMatchesPyTorch() throws { try runConv("3x3_stride2_asym") }
    func testReflectPaddingConvMatchesPyTorch() throws { try runConv("3x3_reflect") }
    func testGroupedConvMatchesPyTorch() throws { try runConv("3x3_groups4") }
    func testDepthwiseConvMatchesPyTorch() throws { try runConv("depthwise7") }
    func testPointwiseConvMatchesPyTorch() throws { try runConv("1x1") }
    func testFusedSiLUMatchesPyTorch() throws { try runConv("3x3_silu") }
    func testFusedResidualSumMatchesPyTorch() throws { try runConv("3x3_residual") }
    func testFourByFourStrideTwoConvMatchesPyTorch() throws { try runConv("4x4_stride2") }

    /// Both routes (NHWC direct, and the 8-channel-blocked one that AVX2 CPUs take) on every CPU.
    func testBothConvolutionLayoutsMatchPyTorch() throws {
        for layout in ["nhwc", "blocked"] {
            for name in ["3x3_stride2", "3x3_silu", "3x3_residual", "1x1", "4x4_stride2"] { try runConv(name, layout: layout) }
            let f = try Fixture("conv_3x3_residual")
            let conv = try Conv2D(weight: try f["weight"], bias: f.tensors["bias"], padding: .same(1), postOps: [.sum()])
            conv.layoutOverride = layout
            _ = try conv(try f["x"], residual: try f["residual"].copy())
            XCTAssertEqual(try conv.implementationName(for: try f["x"].shape).hasSuffix("(nChw8c)"), layout == "blocked", layout)
        }
    }

    func testLinearMatchesPyTorch() throws {
        for (name, post) in [("plain", [PostOp]()), ("gelu", [.geluErf])] {
            let f = try Fixture("linear_\(name)")
            let layer = try Linear(weight: try f["weight"], bias: try f["bias"], postOps: post)
            assertClose(try layer(try f["x"]), try f["y"], relativeTolerance: 1e-4, name)
        }
    }

    func testConvRejectsWrongChannelCount() throws {
        let conv = try Conv2D(weight: try Tensor(shape: [4, 3, 3, 3], repeating: 0.1), padding: .same(1))
        XCTAssertThrowsError(try conv(try Tensor(shape: [1, 8, 8, 5]))) { error in
            XCTAssertTrue("\(error)".contains("3 channels"), "\(error)")
        }
    }

    func testConvRejectsResidualOfWrongShape() throws {
        let conv = try Conv2D(weight: try Tensor(shape: [4, 3, 3, 3], repeating: 0.1), padding: .same(1), postOps: [.sum()])
        XCTAssertThrowsError(try conv(try Tensor(shape: [1, 8, 8, 3]), residual: try Tensor(shape: [1, 8, 8, 3])))
    }

    func testConvServesSeveralInputSizes() throws {
        let f = try Fixture("conv_3x3")
        let conv = try Conv2D(weight: try f["weight"], bias: try f["bias"], padding: .same(1))
        let small = try conv(try Tensor(shape: [1, 4, 5, 13], repeating: 0.5))
        XCTAssertEqual(small.shape, [1, 4, 5, 20])
        assertClose(try conv(try f["x"]), try f["y"], relativeTolerance: 1e-4)
    }
}

/// Multi-head attention against the guided-diffusion QKV formulas and PyTorch SDPA with a bias.
final class AttentionTests: XCTestCase {
    func testLegacyQKVOrderMatchesGuidedDiffusion() throws {
        let f = try Fixture("attention_legacy")
        let heads = try f.int("heads"), d = try f.int("head_dim")
        let qkv = try f["qkv"]
        let attention = Attention()
        let y = try attention(q: qkv, .legacyQKV(part: 0, headDim: d), k: qkv, .legacyQKV(part: 1, headDim: d),
                              v: qkv, .legacyQKV(part: 2, headDim: d), heads: heads, headDim: d, scale: 1 / Float(d).squareRoot())
        assertClose(y, try f["y"], relativeTolerance: 1e-4)
    }

    func testSplitQKVOrderMatchesGuidedDiffusion() throws {
        let f = try Fixture("attention_split")
        let heads = try f.int("heads"), d = try f.int("head_dim")
        let qkv = try f["qkv"]
        let attention = Attention()
        attention.scoreBudget = 200  // forces query blocks of 8 rows: exercises the blocking
        let y = try attention(q: qkv, .splitQKV(part: 0, heads: heads, headDim: d),
                              k: qkv, .splitQKV(part: 1, heads: heads, headDim: d),
                              v: qkv, .splitQKV(part: 2, heads: heads, headDim: d),
                              heads: heads, headDim: d, scale: 1 / Float(d).squareRoot())
        assertClose(y, try f["y"], relativeTolerance: 1e-4)
    }

    func testAdditiveBiasMatchesScaledDotProductAttention() throws {
        let f = try Fixture("attention_bias")
        let heads = try f.int("heads"), d = try f.int("head_dim")
        let layout = HeadLayout.separate(headDim: d)
        let y = try Attention()(q: try f["q"], layout, k: try f["k"], layout, v: try f["v"], layout,
                                heads: heads, headDim: d, scale: 1 / Float(d).squareRoot(), bias: try f["bias"])
        assertClose(y, try f["y"], relativeTolerance: 1e-4)
    }

    func testAttentionRejectsTooFewChannels() throws {
        let t = try Tensor(shape: [1, 4, 8])
        XCTAssertThrowsError(try Attention()(q: t, .separate(headDim: 8), k: t, .separate(headDim: 8), v: t, .separate(headDim: 8),
                                             heads: 2, headDim: 8, scale: 1))
    }
}
