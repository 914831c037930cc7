import Checkpoints
import Engine
import Foundation
import XCTest
@testable import Methods
@testable import Operators

/// DDNM+'s per-singular Λ and Λ_noise against the official operators (functions/svd_operators.py run by
/// Tools/reference/make_ddnm_fixtures.py on a 16² image), with the official LAPACK bases injected (Λ does
/// not depend on the basis; Λ_noise does, through the unrotated-noise quirk).
final class SpectralGoldenTests: XCTestCase {
    struct Fixture {
        let tensors: [String: Tensor]
        let operators: [String: Any]
    }

    nonisolated(unsafe) static let fixture: Fixture? = {
        guard let folder = Bundle.module.url(forResource: "Fixtures", withExtension: nil),
              let file = try? Checkpoint(path: folder.appendingPathComponent("operators.safetensors").path),
              let state = try? file.stateDict() else { return nil }
        var tensors: [String: Tensor] = [:]
        for (name, stored) in state.tensors where stored.elementCount > 0 { tensors[name] = try? stored.floatTensor() }
        let operators = (try? JSONSerialization.jsonObject(with: Data((file.metadata["operators"] ?? "{}").utf8))) as? [String: Any] ?? [:]
        return Fixture(tensors: tensors, operators: operators)
    }()

    private func fixture() throws -> Fixture {
        guard let f = Self.fixture else { throw XCTSkip("fixtures missing: run Tools/reference/make_ddnm_fixtures.py") }
        return f
    }

    /// A channel-major [1, C·H·W] vector (the official layout) as an NHWC [1, H, W, C] tensor.
    static func image(fromCHW v: Tensor, channels c: Int = 3, side: Int = 16) throws -> Tensor {
        let out = try Tensor(uninitializedShape: [1, side, side, c])
        for k in 0..<c { for p in 0..<(side * side) { out.data[p * c + k] = v.data[k * side * side + p] } }
        return out
    }

    private func t(_ f: Fixture, _ key: String) throws -> Tensor {
        guard let value = f.tensors[key] else { throw XCTSkip("fixture has no \(key)") }
        return value
    }

    private func check(_ prefix: String, _ a: any SpectralOperator, officialV: String?, denoising: Bool = false) throws {
        let f = try fixture()
        var blocks = try a.spectralBlocks(imageShape: [1, 16, 16, 3])
        if let officialV { blocks.v = try t(f, officialV).values }
        let vec = try Self.image(fromCHW: try t(f, "lambda_inputs.vec"))
        let z = try Self.image(fromCHW: try t(f, "lambda_inputs.z")), eps = try Self.image(fromCHW: try t(f, "lambda_inputs.eps"))
        for k in 0..<3 {
            let args = try t(f, "\(prefix).lambda.\(k).args").values  // a, σy, σt, η
            let lambda = try DDNMPlusSpectral.lambda(vec, blocks, a: args[0], sigmaY: args[1], sigmaT: args[2], eta: args[3])
            let noise = try DDNMPlusSpectral.noise(z, eps, blocks, a: args[0], sigmaY: args[1], sigmaT: args[2], eta: args[3], denoising: denoising)
            for (name, got, key) in [("Λ", lambda, "\(prefix).lambda.\(k).out"), ("Λ_noise", noise, "\(prefix).lambda_noise.\(k).out")] {
                let expected = try Self.image(fromCHW: try t(f, key))
                let maxRef = expected.values.map(abs).max() ?? 0
                let maxDiff = zip(got.values, expected.values).map { abs($0 - $1) }.max() ?? .infinity
                XCTAssertGreaterThan(maxRef, 0.05, "\(prefix) \(name) \(k)")
                XCTAssertLessThanOrEqual(maxDiff, 1e-5 * max(maxRef, 1), "\(prefix) \(name) call \(k): max|Δ| \(maxDiff)")
            }
        }
    }

    func testSuperResolutionLambdaMatchesOfficial() throws {
        try check("sr2", try AveragePoolingOperator(factor: 2), officialV: "sr2.state.V_small")
        try check("sr4", try AveragePoolingOperator(factor: 4), officialV: "sr4.state.V_small")
    }

    func testColorizationLambdaMatchesOfficial() throws {
        try check("color", GrayscaleOperator(weights: GrayscaleOperator.svdWeights), officialV: "color.state.V_small")
    }

    func testInpaintingLambdaMatchesOfficial() throws {
        let mask = try t(try fixture(), "inpaint.mask")
        try check("inpaint", try MaskOperator(keep: try mask.view(as: [16, 16]), source: "official"), officialV: nil)
    }

    func testDenoisingLambdaMatchesOfficial() throws {
        try check("denoise", IdentityOperator(), officialV: nil, denoising: true)
    }

    func testOwnBasisIsOrthonormalWithTheMeanDirectionFirst() throws {
        let blocks = try AveragePoolingOperator(factor: 4).spectralBlocks(imageShape: [1, 8, 8, 3])
        let k = blocks.blockSize
        for i in 0..<k { for j in 0..<k {
            let dot = (0..<k).reduce(Float(0)) { $0 + blocks.v[$1 * k + i] * blocks.v[$1 * k + j] }
            XCTAssertEqual(dot, i == j ? 1 : 0, accuracy: 1e-5)
        } }
        for r in 0..<k { XCTAssertEqual(blocks.v[r * k], 0.25, accuracy: 1e-6) }
    }
}
