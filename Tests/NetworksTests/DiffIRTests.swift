import Checkpoints
import Engine
import Foundation
import Methods
import XCTest
@testable import Networks

/// DiffIR stage 2 against the official code (Zj-BinXia/DiffIR, S2_arch.py + ldm/ddpm.py) on four tiny models that
/// exercise both LayerNorm types, every task (×4, ×2, ×1, deblur), truncated hidden widths and several heads per
/// level, every parameter redrawn at random, saved as BasicSR does (`params_ema`, with the `diffusion.*` aliases
/// and schedule buffers). Fixtures: Tools/reference/make_diffir_fixtures.py.
final class DiffIRTests: XCTestCase {
    static let names = ["sr4_biasfree", "sr2_withbias", "sr1_biasfree", "deblur_withbias"]

    private func fixture(_ name: String) throws -> (path: String, tensors: [String: Tensor], kwargs: [String: Any]) {
        guard let folder = Bundle.module.url(forResource: "Fixtures", withExtension: nil)?.appendingPathComponent("diffir") else {
            throw FixtureMissing("no fixtures")
        }
        let io = try Checkpoint(path: folder.appendingPathComponent("\(name).io.safetensors").path)
        var tensors: [String: Tensor] = [:]
        for (key, stored) in try io.stateDict().tensors { tensors[key] = try stored.floatTensor() }
        let kwargs = try JSONSerialization.jsonObject(with: Data((io.metadata["config"] ?? "{}").utf8)) as? [String: Any] ?? [:]
        return (folder.appendingPathComponent("\(name).pth").path, tensors, kwargs)
    }

    /// The configuration the official keyword arguments describe.
    private func expected(_ name: String, _ kw: [String: Any]) throws -> DiffIRConfiguration {
        let task: DiffIRTask = name.hasPrefix("deblur") ? .deblur : [4: .sr4, 2: .sr2, 1: .sr1][kw["scale"] as? Int ?? 4]!
        return DiffIRConfiguration(task: task, dim: try XCTUnwrap(kw["dim"] as? Int), numBlocks: try XCTUnwrap(kw["num_blocks"] as? [Int]),
                                   refinementBlocks: try XCTUnwrap(kw["num_refinement_blocks"] as? Int), heads: try XCTUnwrap(kw["heads"] as? [Int]),
                                   ffnExpansion: try XCTUnwrap(kw["ffn_expansion_factor"] as? Double), layerNorm: try XCTUnwrap(kw["LayerNorm_type"] as? String),
                                   encoderResBlocks: try XCTUnwrap(kw["n_encoder_res"] as? Int), denoiseResBlocks: try XCTUnwrap(kw["n_denoise_res"] as? Int))
    }

    func testConfigurationIsDetectedFromTheOfficialKeysAndShapes() throws {
        for name in Self.names {
            let (path, _, kw) = try fixture(name)
            let loaded = try DiffIRLoader.load(path: path)
            XCTAssertEqual(loaded.configuration, try expected(name, kw), name)
            XCTAssertEqual(loaded.source, "params_ema", name)
        }
    }

    func testCPENTheDenoiseMLPAndDIRformerMatchTheOfficialModules() throws {
        for name in Self.names {
            let (path, t, _) = try fixture(name)
            let network = try DiffIRLoader.load(path: path).network
            let lq = try XCTUnwrap(t["lq"])
            assertClose(try network.condition(lq), try XCTUnwrap(t["c"]), relativeTolerance: 1e-4, "\(name) CPEN")
            let x = try XCTUnwrap(t["x"]), cond = try XCTUnwrap(t["cond"]), steps = try XCTUnwrap(t["t"]).values.map { Int($0) }
            // The official MLP takes a batch with one t per row: ours runs row by row at its t.
            let x0 = try Tensor(uninitializedShape: [2, 256])
            for row in 0..<2 {
                let one = try network.denoiser(try Tensor(shape: [1, 256], values: Array(x.values[row * 256..<(row + 1) * 256])), t: steps[row],
                                               condition: try Tensor(shape: [1, 256], values: Array(cond.values[row * 256..<(row + 1) * 256])))
                (x0.data + row * 256).update(from: one.data, count: 256)
            }
            assertClose(x0, try XCTUnwrap(t["x0"]), relativeTolerance: 1e-4, "\(name) denoise")
            let g = try network.generator(lq, modulations: try network.generator.modulations(try XCTUnwrap(t["ipr"])))
            assertClose(g, try XCTUnwrap(t["g"]), relativeTolerance: 1e-4, "\(name) DIRformer")
        }
    }

    /// The whole eval forward, `DiffIRS2(lq)` with IPR₀ injected: CPEN, the 4-step posterior-mean chain, DIRformer.
    func testWholeFourStepRestoreMatchesTheOfficialForward() throws {
        for name in Self.names {
            let (path, t, _) = try fixture(name)
            let loaded = try DiffIRLoader.load(path: path)
            let network = loaded.network, c = loaded.configuration
            let diffusion = try IPRDiffusion(timesteps: c.timesteps, linearStart: c.linearStart, linearEnd: c.linearEnd)
            let lq = try XCTUnwrap(t["lq"])
            let condition = try network.condition(lq)
            let ipr = try diffusion.sample(from: try XCTUnwrap(t["ipr0"])) { x, step in try network.denoiser(x, t: step, condition: condition) }
            assertClose(ipr, try XCTUnwrap(t["ipr_final"]), relativeTolerance: 1e-3, "\(name) IPR")
            let sr = try network.generator(lq, modulations: try network.generator.modulations(ipr))
            assertClose(sr, try XCTUnwrap(t["sr"]), relativeTolerance: 1e-3, "\(name) restore")
        }
    }

    /// The file's schedule buffers (float32, as `register_schedule` computed them) equal ours; the β ends are read back.
    func testScheduleBuffersMatchTheIPRDiffusion() throws {
        let (path, _, _) = try fixture("sr4_biasfree")
        let loaded = try DiffIRLoader.load(path: path)
        let ours = try IPRDiffusion(timesteps: 4, linearStart: 0.1, linearEnd: 0.99).buffers
        XCTAssertEqual(Set(loaded.scheduleBuffers.keys), Set(ours.keys))
        for (key, values) in loaded.scheduleBuffers {
            let mine = try XCTUnwrap(ours[key], key)
            XCTAssertEqual(values.count, 4, key)
            for (a, b) in zip(values, mine) { XCTAssertEqual(a, b, accuracy: 1e-6 * max(1, abs(a)), key) }
        }
        XCTAssertEqual(try IPRDiffusion().betas.map { ($0 * 1e5).rounded() / 1e5 }, [0.1, 0.29429, 0.59095, 0.99])
    }

    /// An alias that differs from the module it aliases, or an unknown `diffusion.*` entry, is refused by name.
    func testTamperedAliasIsRefused() throws {
        let (path, _, _) = try fixture("deblur_withbias")
        let state = try Checkpoint(path: path).stateDict()
        var tensors: [(name: String, tensor: Tensor)] = []
        for (name, stored) in state.tensors { tensors.append((name, try stored.floatTensor())) }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("diffir-alias-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let good = folder.appendingPathComponent("good.safetensors").path
        try SafetensorsWriter.write(tensors, to: good)
        XCTAssertNoThrow(try DiffIRLoader.load(path: good))
        let index = try XCTUnwrap(tensors.firstIndex { $0.name == "diffusion.model.resmlp.0.bias" })
        tensors[index].tensor.data[0] += 0.5
        let bad = folder.appendingPathComponent("bad.safetensors").path
        try SafetensorsWriter.write(tensors, to: bad)
        XCTAssertThrowsError(try DiffIRLoader.load(path: bad)) { error in
            XCTAssertTrue("\(error)".contains("diffusion.model.resmlp.0.bias differs from denoise.resmlp.0.bias"), "\(error)")
        }
        tensors[index].tensor.data[0] -= 0.5
        tensors.append((name: "diffusion.extra.weight", tensor: try Tensor(shape: [2], repeating: 1)))
        try SafetensorsWriter.write(tensors, to: bad, overwrite: true)
        XCTAssertThrowsError(try DiffIRLoader.load(path: bad)) { error in
            XCTAssertTrue("\(error)".contains("diffusion.extra.weight"), "\(error)")
        }
    }

    /// The presets declare what the official modules hold: `sum(p.numel() for p in DiffIRS2(**yaml).parameters())`
    /// (shared modules once) is 24 971 206 for the ×4 SR configuration and 26 911 934 for GoPro deblurring.
    func testPresetsHaveTheOfficialParameterCounts() throws {
        func count(_ c: DiffIRConfiguration) throws -> Int { try DiffIRNetwork.parameterDeclarations(c).reduce(0) { $0 + $1.shape.reduce(1, *) } }
        XCTAssertEqual(try count(.realSRx4), 24_971_206)
        XCTAssertEqual(try count(.goproDeblur), 26_911_934)
        XCTAssertEqual(DiffIRConfiguration.realSRx4.hidden(64), 140)
        XCTAssertEqual(DiffIRConfiguration.realSRx4.presetName, "realsr-x4")
        XCTAssertEqual(DiffIRConfiguration.goproDeblur.presetName, "gopro-deblur")
    }
}
