import Checkpoints
import Engine
import Foundation
import XCTest
@testable import Networks

/// ResShift's UNetModelSwin and the VQ autoencoder, built small by the official code with every parameter (and
/// the relative-position tables) redrawn at random, saved with `torch.save`: ours load those files and must
/// reproduce the official outputs, including the official (quirky) shifted-window mask, recomputed for sizes
/// other than the construction size. Fixtures: Tools/reference/make_resshift_fixtures.py.
final class ResShiftNetworkTests: XCTestCase {
    static let tolerance: Float = 1e-4

    private func fixture(_ name: String) throws -> (URL, [String: Tensor], [String: Any]) {
        guard let folder = Bundle.module.url(forResource: "Fixtures", withExtension: nil)?.appendingPathComponent("resshift") else {
            throw FixtureMissing("no fixtures")
        }
        let io = try Checkpoint(path: folder.appendingPathComponent("\(name).io.safetensors").path)
        var tensors: [String: Tensor] = [:]
        for (key, stored) in try io.stateDict().tensors { tensors[key] = try stored.floatTensor() }
        let config = try JSONSerialization.jsonObject(with: Data((io.metadata["config"] ?? "{}").utf8)) as? [String: Any] ?? [:]
        return (folder.appendingPathComponent("\(name).pt"), tensors, config)
    }

    private func unet(_ name: String) throws -> (ResShiftUNet, [String: Tensor]) {
        let (weights, tensors, config) = try fixture(name)
        let configuration = try JSONDecoder().decode(ResShiftUNetConfiguration.self, from: try JSONSerialization.data(withJSONObject: config))
        let loaded = try ResShiftLoader.loadUNet(path: weights.path, configuration: configuration)
        return (loaded.network, tensors)
    }

    func testSwinUNetMatchesOfficialAtConstructionSizeAndRecomputedMasks() throws {
        let (network, tensors) = try unet("swin_a")
        for suffix in ["", "_rect", "_big"] {
            let x = try XCTUnwrap(tensors["x" + suffix]), t = try XCTUnwrap(tensors["t" + suffix])
            let lq = try XCTUnwrap(tensors["lq" + suffix]), expected = try XCTUnwrap(tensors["y" + suffix])
            let y = try network(x, timesteps: t.values, condition: lq)
            assertClose(y, expected, relativeTolerance: Self.tolerance, "swin_a y\(suffix)")
        }
    }

    func testSwinUNetWithFeatureExtractorMaskHeadsAndResblockUpdownMatchesOfficial() throws {
        let (network, tensors) = try unet("swin_b")
        XCTAssertEqual(network.conditionScale, 4)
        let x = try XCTUnwrap(tensors["x"]), t = try XCTUnwrap(tensors["t"])
        let condition = try concatenateChannels([try XCTUnwrap(tensors["lq"]), try XCTUnwrap(tensors["mask"])])
        let y = try network(x, timesteps: t.values, condition: condition)
        assertClose(y, try XCTUnwrap(tensors["y"]), relativeTolerance: Self.tolerance, "swin_b y")
    }

    func testVQAutoencoderEncodesQuantizesAndDecodesAsOfficial() throws {
        let (weights, tensors, config) = try fixture("vq_a")
        var object = config["ddconfig"] as? [String: Any] ?? config
        for key in ["n_embed", "embed_dim"] where object[key] == nil { object[key] = config[key] }
        let configuration = try JSONDecoder().decode(AutoencoderConfiguration.self, from: try JSONSerialization.data(withJSONObject: object))
        let vq = try ResShiftLoader.loadAutoencoder(path: weights.path, configuration: configuration)
        let latent = try vq.encode(try XCTUnwrap(tensors["image"]))
        assertClose(latent, try XCTUnwrap(tensors["latent"]), relativeTolerance: Self.tolerance, "latent")
        let officialLatent = try XCTUnwrap(tensors["latent"])
        XCTAssertEqual(try vq.indices(officialLatent).map(Float.init), try XCTUnwrap(tensors["indices"]).values)
        assertClose(try vq.quantize(officialLatent), try XCTUnwrap(tensors["quantized"]), relativeTolerance: 1e-6, "quantized")
        assertClose(try vq.decode(officialLatent), try XCTUnwrap(tensors["decoded"]), relativeTolerance: Self.tolerance, "decoded")
        assertClose(try vq.encode(try XCTUnwrap(tensors["image_rect"])), try XCTUnwrap(tensors["latent_rect"]),
                    relativeTolerance: Self.tolerance, "latent_rect")
    }

    /// Our declarations of the released architectures equal the official state dicts' names and shapes
    /// (buffers aside), so `resshift_realsrx4_s4_v3.pth` and `autoencoder_vq_f4.pth` bind as they are.
    func testReleasedArchitecturesDeclareTheOfficialKeys() throws {
        guard let folder = Bundle.module.url(forResource: "Fixtures", withExtension: nil)?.appendingPathComponent("resshift/full-size-keys") else {
            throw FixtureMissing("no fixtures")
        }
        for (file, declared) in [("resshift-realsr-v3.json", try ResShiftUNet.parameterDeclarations(.realSRx4)),
                                 ("vq-f4.json", try VQAutoencoder.parameterDeclarations(.vqF4))] {
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent(file))) as? [String: Any] ?? [:]
            let keys = (json["keys"] as? [[Any]] ?? []).compactMap { pair -> (String, [Int])? in
                guard let name = pair.first as? String, let shape = pair.last as? [Int] else { return nil }
                return ResShiftLoader.isRecomputedBuffer(name) ? nil : (name, shape)
            }
            XCTAssertFalse(keys.isEmpty, file)
            XCTAssertEqual(declared.map(\.name).sorted(), keys.map(\.0).sorted(), file)
            let shapes = Dictionary(keys, uniquingKeysWith: { a, _ in a })
            for d in declared { XCTAssertEqual(d.shape, shapes[d.name], "\(file) \(d.name)") }
        }
    }

    /// The official mask, simulated: in a shifted block only the last row of windows is masked, and there
    /// tokens are grouped by their column (the official fill lands on rows, the flattening is column-major).
    func testShiftedWindowMaskReproducesTheOfficialQuirk() throws {
        XCTAssertNil(resshiftWindowMask(windowRow: 0, height: 16, window: 8, shift: 4))
        let mask = try XCTUnwrap(resshiftWindowMask(windowRow: 1, height: 16, window: 8, shift: 4))
        func token(_ row: Int, _ col: Int) -> Int { row * 8 + col }
        XCTAssertEqual(mask[token(0, 0) * 64 + token(7, 3)], 0)        // same column group (< 4): attend
        XCTAssertEqual(mask[token(0, 0) * 64 + token(0, 4)], -100)     // columns 0 and 4: masked
        XCTAssertEqual(mask[token(5, 5) * 64 + token(0, 7)], 0)
        XCTAssertEqual(SwinGeometry(constructionSize: 8, window: 8, shift: 4), SwinGeometry(constructionSize: 8, window: 8, shift: 0))
        XCTAssertEqual(SwinGeometry(constructionSize: 4, window: 8, shift: 4).window, 4)
    }

    func testBadConditionShapeIsAOneLineError() throws {
        let (network, tensors) = try unet("swin_a")
        let x = try XCTUnwrap(tensors["x"])
        XCTAssertThrowsError(try network(x, timesteps: [0, 1], condition: try Tensor(shape: [2, 8, 8, 3]))) { error in
            XCTAssertTrue("\(error)".contains("condition"), "\(error)")
        }
        XCTAssertThrowsError(try network(try Tensor(shape: [1, 12, 12, 3]), timesteps: [0], condition: try Tensor(shape: [1, 12, 12, 3]))) { error in
            XCTAssertTrue("\(error)".contains("multiples of"), "\(error)")
        }
    }
}
