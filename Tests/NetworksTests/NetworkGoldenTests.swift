import Checkpoints
import Engine
import Foundation
import XCTest
@testable import Networks

/// The official ADM and DDPM UNets (guided-diffusion `unet.py`, DDNM `models.py`), built small with every
/// option exercised and every parameter redrawn at random, saved with `torch.save`: our networks load
/// those files through the checkpoint reader and must reproduce the official outputs.
/// Fixtures: Tools/reference/make_network_fixtures.py.
final class NetworkGoldenTests: XCTestCase {
    static let tolerance: Float = 1e-4

    private func fixture(_ name: String) throws -> (URL, [String: Tensor], [String: Any]) {
        guard let folder = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else { throw FixtureMissing("no fixtures") }
        let io = try Checkpoint(path: folder.appendingPathComponent("\(name).io.safetensors").path)
        var tensors: [String: Tensor] = [:]
        for (key, stored) in try io.stateDict().tensors { tensors[key] = try stored.floatTensor() }
        let config = try JSONSerialization.jsonObject(with: Data((io.metadata["config"] ?? "{}").utf8)) as? [String: Any] ?? [:]
        return (folder.appendingPathComponent("\(name).pt"), tensors, config)
    }

    static func admConfiguration(_ json: [String: Any]) throws -> ADMConfiguration {
        let data = try JSONSerialization.data(withJSONObject: json.filter { !($0.value is NSNull) })
        return try JSONDecoder().decode(ADMConfiguration.self, from: data)
    }

    static func ddpmConfiguration(_ json: [String: Any]) throws -> DDPMConfiguration {
        var model = json["model"] as? [String: Any] ?? [:]
        model["resolution"] = (json["data"] as? [String: Any])?["image_size"]
        return try JSONDecoder().decode(DDPMConfiguration.self, from: try JSONSerialization.data(withJSONObject: model))
    }

    private func check(_ name: String, architecture: (([String: Any]) throws -> NetworkArchitecture),
                       inputs: [(x: String, t: String, y: String)]) throws {
        let (weights, tensors, config) = try fixture(name)
        let loaded = try NetworkLoader.load(path: weights.path, architecture: try architecture(config))
        let labels = tensors["labels"].map { $0.values.map { Int($0) } }
        for (xKey, tKey, yKey) in inputs {
            let x = try XCTUnwrap(tensors[xKey]), t = try XCTUnwrap(tensors[tKey]), expected = try XCTUnwrap(tensors[yKey])
            let y = try loaded.network(x, timesteps: t.values, classLabels: labels)
            assertClose(y, expected, relativeTolerance: Self.tolerance, "\(name) \(yKey)")
        }
    }

    func testADMWithScaleShiftResblockUpdownLegacyAttentionAndLearnSigmaMatchesOfficial() throws {
        try check("adm_a", architecture: { .adm(try Self.admConfiguration($0)) },
                  inputs: [("x", "t", "y"), ("x_rect", "t_rect", "y_rect")])
    }

    func testADMClassConditionalNewAttentionOrderConvResampleFromHalfWeightsMatchesOfficial() throws {
        try check("adm_b", architecture: { .adm(try Self.admConfiguration($0)) }, inputs: [("x", "t", "y")])
    }

    func testDDPMWithConvResamplingMatchesOfficial() throws {
        try check("ddpm_a", architecture: { .ddpm(try Self.ddpmConfiguration($0)) }, inputs: [("x", "t", "y")])
    }

    func testDDPMWithPoolingAndNearestResamplingMatchesOfficial() throws {
        try check("ddpm_b", architecture: { .ddpm(try Self.ddpmConfiguration($0)) }, inputs: [("x", "t", "y")])
    }

    func testClassConditionalModelRefusesMissingOrOutOfRangeLabels() throws {
        let (weights, tensors, config) = try fixture("adm_b")
        let loaded = try NetworkLoader.load(path: weights.path, architecture: .adm(try Self.admConfiguration(config)))
        let x = try XCTUnwrap(tensors["x"])
        XCTAssertThrowsError(try loaded.network(x, timesteps: [1, 2], classLabels: nil)) { XCTAssertTrue("\($0)".contains("--class"), "\($0)") }
        XCTAssertThrowsError(try loaded.network(x, timesteps: [1, 2], classLabels: [0, 10])) { XCTAssertTrue("\($0)".contains("outside"), "\($0)") }
    }

    func testWrongArchitectureReportsEveryMismatchInOneError() throws {
        let (weights, _, config) = try fixture("adm_a")
        var other = try Self.admConfiguration(config)
        other.useScaleShiftNorm = false  // emb_layers.1 then has C rows, not 2C
        other.numClasses = 5              // label_emb.weight is missing from the file
        XCTAssertThrowsError(try NetworkLoader.load(path: weights.path, architecture: .adm(other))) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("checkpoint does not fit the network: 1 missing"), text)
            XCTAssertTrue(text.contains("missing: label_emb.weight (expected [5, 128])"), text)
            XCTAssertTrue(text.contains("shape mismatch: input_blocks.1.0.emb_layers.1.weight (expected [32, 128], found [64, 128])"), text)
        }
    }
}

/// The full-size official configurations declare exactly the official keys and shapes (from the
/// reference's JSON lists), so the released checkpoints bind without renaming.
final class FullSizeKeyTests: XCTestCase {
    private func officialKeys(_ preset: String) throws -> (keys: [(String, [Int])], config: [String: Any]) {
        guard let url = Bundle.module.url(forResource: "Fixtures/full-size-keys/\(preset)", withExtension: "json") else { throw FixtureMissing("no key list for \(preset)") }
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let keys = try XCTUnwrap(json["keys"] as? [[Any]]).map { ($0[0] as! String, $0[1] as! [Int]) }
        return (keys, json["config"] as? [String: Any] ?? [:])
    }

    func testPresetsDeclareTheOfficialKeysAndShapes() throws {
        for preset in NetworkPreset.all {
            let (keys, _) = try officialKeys(preset.name)
            let declared = try preset.architecture.parameterDeclarations()
            XCTAssertEqual(declared.count, keys.count, preset.name)
            let official = Dictionary(keys, uniquingKeysWith: { a, _ in a })
            for d in declared {
                XCTAssertEqual(official[d.name], d.shape, "\(preset.name): \(d.name)")
            }
        }
    }

    func testReferenceConfigsBuildTheSameArchitectureAsThePresets() throws {
        // The key lists also carry the constructor arguments the official create_model passed.
        for preset in NetworkPreset.all {
            guard case .adm(let ours) = preset.architecture else { continue }
            let (_, config) = try officialKeys(preset.name)
            XCTAssertEqual(try NetworkGoldenTests.admConfiguration(config), ours, preset.name)
        }
    }
}

/// Asserts max|actual − expected| ≤ tolerance · max|expected|, and that the reference is not trivially zero.
func assertClose(_ actual: Tensor, _ expected: Tensor, relativeTolerance: Float,
                 _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.shape, expected.shape, "shape \(message)", file: file, line: line)
    guard actual.shape == expected.shape else { return }
    var maxDiff: Float = 0, maxRef: Float = 0
    for i in 0..<expected.count {
        maxDiff = max(maxDiff, abs(actual.data[i] - expected.data[i]))
        maxRef = max(maxRef, abs(expected.data[i]))
        if actual.data[i].isNaN { maxDiff = .infinity }
    }
    XCTAssertGreaterThan(maxRef, 0.1, "reference is (nearly) zero: the test could not fail \(message)", file: file, line: line)
    XCTAssertLessThanOrEqual(maxDiff, relativeTolerance * maxRef,
                             "max|Δ| = \(maxDiff), max|ref| = \(maxRef), ratio \(maxDiff / max(maxRef, 1e-30)) \(message)",
                             file: file, line: line)
}
