import Checkpoints
import Engine
import Foundation
import Methods
import XCTest
@testable import Networks

/// Latent diffusion against the official code (CompVis/latent-diffusion a506df5 with taming-transformers 3ba01b2) on
/// tiny models in the layouts of the two released restoration models (bsr_sr: VQ-f4 with attention, plain embedding
/// add, heads from num_head_channels; inpainting_big: VQ-f4 without attention, resblock up/down, num_heads) and a KL
/// autoencoder; every parameter redrawn, the EMA copy drawn apart from the online weights, saved as Lightning
/// checkpoints. Fixtures: Tools/reference/make_ldm_fixtures.py.
final class LDMTests: XCTestCase {
    static let folder = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("ldm")

    /// The tiny models' configurations as `restore ldm --config` reads them (written by the fixture script from the
    /// official keyword arguments): sr (bsr_sr's layout) and inpaint (inpainting_big's).
    static func tiny(_ name: String) throws -> LDMConfiguration {
        try JSONDecoder().decode(LDMConfiguration.self, from: Data(contentsOf: folder.appendingPathComponent("\(name).json")))
    }

    static func io() throws -> [String: Tensor] {
        var tensors: [String: Tensor] = [:]
        for (key, stored) in try Checkpoint(path: folder.appendingPathComponent("io.safetensors").path).stateDict().tensors {
            tensors[key] = try stored.floatTensor()
        }
        return tensors
    }

    private func tensor(_ io: [String: Tensor], _ name: String) throws -> Tensor { try XCTUnwrap(io[name], "fixture has no \(name)") }

    func path(_ name: String) -> String { Self.folder.appendingPathComponent(name).path }

    func testUNetForwardMatchesOfficialWithTheEMACopy() throws {
        let io = try Self.io()
        for (name, t) in [("sr", Float(500)), ("inpaint", 321)] {
            let configuration = try Self.tiny(name)
            let loaded = try LDMLoader.load(path: path("\(name).ckpt"), configuration: configuration)
            XCTAssertEqual(loaded.weights, "ema", name)
            let out = try loaded.unet(try tensor(io, "\(name)_unet_in"), timesteps: [t])
            assertClose(out, try tensor(io, "\(name)_unet_out"), relativeTolerance: 1e-4, name)
            // The online weights are another draw: reading them would not pass the comparison above.
            let online = try LDMLoader.load(path: path("\(name).ckpt"), configuration: configuration, weights: .online)
            XCTAssertEqual(online.weights, "online")
            let other = try online.unet(try tensor(io, "\(name)_unet_in"), timesteps: [t])
            let expected = try tensor(io, "\(name)_unet_out")
            XCTAssertGreaterThan(zip(other.values, expected.values).map { abs($0 - $1) }.max() ?? 0, 0.1, "\(name): online equals EMA")
        }
    }

    func testScheduleComesFromTheCheckpointAndEqualsLDMsLinear() throws {
        let loaded = try LDMLoader.load(path: path("sr.ckpt"), configuration: try Self.tiny("sr"))
        let computed = LDMConfiguration.linearAlphasCumprod(timesteps: 1000, start: 0.0015, end: 0.0155)
        XCTAssertEqual(loaded.alphasCumprod.count, 1000)
        let worst = zip(loaded.alphasCumprod, computed).map { abs($0 - $1) / $1 }.max() ?? 1
        XCTAssertLessThan(worst, 1e-6, "the float64 linear-in-√β schedule differs from the checkpoint's alphas_cumprod")
        XCTAssertEqual(try LDMDDIM.timesteps(steps: 100, timesteps: 1000).prefix(3), [1, 11, 21])
        XCTAssertEqual(try LDMDDIM.timesteps(steps: 4, timesteps: 1000), [1, 251, 501, 751])
        XCTAssertThrowsError(try LDMDDIM.timesteps(steps: 3, timesteps: 1000), "range(0, 1000, 333) + 1 reaches 1000")
        let plan = try LDMDDIM.plan(alphasCumprod: loaded.alphasCumprod, steps: 4, eta: 1)
        XCTAssertEqual(plan[0].alphaPrev, loaded.alphasCumprod[0], "the first ᾱ_prev is ᾱ_0, not 1")
        XCTAssertEqual(plan[2].alphaPrev, loaded.alphasCumprod[251])
        XCTAssertTrue(try LDMDDIM.plan(alphasCumprod: loaded.alphasCumprod, steps: 4, eta: 0).allSatisfy { $0.sigma == 0 })
    }

    func testFirstStagesAreDetectedFromTheirShapes() throws {
        let state = try Checkpoint(path: path("inpaint.ckpt")).stateDict()
        var detected = try LDMLoader.detectFirstStage(state, prefix: "first_stage_model.")
        detected.resolution = 16
        XCTAssertEqual(detected, try Self.tiny("inpaint").firstStage)
        let kl = try XCTUnwrap(try LDMLoader.loadFirstStage(path: path("kl.ckpt")) as? KLAutoencoder)
        XCTAssertEqual(kl.configuration.chMult, [1, 1])
        XCTAssertEqual(kl.configuration.attnResolutions, [256], "attention at the first level")
        XCTAssertTrue(kl.configuration.doubleZ)
        XCTAssertEqual(kl.latentChannels, 4)
        // Without a configuration a tiny model matches no released preset: a clear refusal.
        XCTAssertThrowsError(try LDMLoader.load(path: path("sr.ckpt"))) { error in
            XCTAssertTrue("\(error)".contains("--config"), "\(error)")
        }
    }

    func testSuperResolutionRunMatchesOfficialDDIM() throws {
        let io = try Self.io()
        let loaded = try LDMLoader.load(path: path("sr.ckpt"), configuration: try Self.tiny("sr"))
        let lr = try tensor(io, "sr_run_lr")
        var noise = RecordedGaussian(try (0..<4).map { try tensor(io, "sr_run_noise_\($0)") })
        let plan = try LDMDDIM.plan(alphasCumprod: loaded.alphasCumprod, steps: 4, eta: 1)
        let latent = try LDMDDIM.sample(start: try tensor(io, "sr_run_xt"), plan: plan, noise: &noise) { x, t in
            try loaded.unet(try concatenateChannels([x, lr]), timesteps: [Float(t)])
        }
        XCTAssertTrue(noise.remaining.isEmpty, "η = 1 draws one z per step")
        assertClose(latent, try tensor(io, "sr_run_latent"), relativeTolerance: 1e-3, "latent")
        assertClose(try loaded.firstStage.decode(latent), try tensor(io, "sr_run_out"), relativeTolerance: 1e-3, "decoded")
    }

    /// `finalX0` (the DDIM paper's last step) returns the last step's x̂0 of the very run the official form finishes
    /// with ᾱ_prev = ᾱ_0, which differs from it by the noise that form keeps.
    func testFinalX0IsTheLastStepsEstimate() throws {
        let io = try Self.io()
        let loaded = try LDMLoader.load(path: path("sr.ckpt"), configuration: try Self.tiny("sr"))
        let lr = try tensor(io, "sr_run_lr")
        let plan = try LDMDDIM.plan(alphasCumprod: loaded.alphasCumprod, steps: 4, eta: 0)
        let network: Denoiser = { x, t in try loaded.unet(try concatenateChannels([x, lr]), timesteps: [Float(t)]) }
        var noise = RecordedGaussian([])
        var lastEstimate: Tensor?
        let official = try LDMDDIM.sample(start: try tensor(io, "sr_run_xt"), plan: plan, noise: &noise, epsilon: network) { _, _, x0 in
            lastEstimate = x0
        }
        let final = try LDMDDIM.sample(start: try tensor(io, "sr_run_xt"), plan: plan, noise: &noise, finalX0: true, epsilon: network)
        XCTAssertEqual(final.values, try XCTUnwrap(lastEstimate).values)
        XCTAssertGreaterThan(zip(final.values, official.values).map { abs($0 - $1) }.max() ?? 0, 1e-4, "ᾱ_0's trace of noise")
    }

    func testInpaintingRunMatchesOfficialDDIM() throws {
        let io = try Self.io()
        let loaded = try LDMLoader.load(path: path("inpaint.ckpt"), configuration: try Self.tiny("inpaint"))
        let condition = try tensor(io, "inpaint_condition")
        var noise = RecordedGaussian([])
        let plan = try LDMDDIM.plan(alphasCumprod: loaded.alphasCumprod, steps: 5, eta: 0)
        let latent = try LDMDDIM.sample(start: try tensor(io, "inpaint_xt"), plan: plan, noise: &noise) { x, t in
            try loaded.unet(try concatenateChannels([x, condition]), timesteps: [Float(t)])
        }
        assertClose(latent, try tensor(io, "inpaint_latent"), relativeTolerance: 1e-3, "latent")
    }

    func testKLAutoencoderMatchesOfficial() throws {
        let io = try Self.io()
        let kl = try XCTUnwrap(try LDMLoader.loadFirstStage(path: path("kl.ckpt")) as? KLAutoencoder)
        let (mean, logVariance) = try kl.moments(try tensor(io, "kl_in"))
        assertClose(mean, try tensor(io, "kl_mean"), relativeTolerance: 1e-4, "mean")
        assertClose(logVariance, try tensor(io, "kl_logvar"), relativeTolerance: 1e-4, "logvar")
        assertClose(try kl.encode(try tensor(io, "kl_in"), noise: try tensor(io, "kl_noise")), try tensor(io, "kl_sample"),
                    relativeTolerance: 1e-4, "sample")
        assertClose(try kl.decode(mean), try tensor(io, "kl_decoded"), relativeTolerance: 1e-4, "decoded")
    }

    /// The diffusers folder (`unet/`, `vqvae/`, `scheduler/`, written by diffusers' save_pretrained) against diffusers'
    /// own modules: names mapped back to openaimodel / CompVis, q, k, v interleaved back into the legacy qkv per head,
    /// the decoder's up blocks reversed (Tools/reference/make_ldm_diffusers_fixtures.py).
    func testDiffusersFolderMapsOntoTheSameNetworks() throws {
        let folder = Self.folder.appendingPathComponent("diffusers")
        var io: [String: Tensor] = [:]
        for (key, stored) in try Checkpoint(path: folder.appendingPathComponent("io.safetensors").path).stateDict().tensors {
            io[key] = try stored.floatTensor()
        }
        let loaded = try LDMLoader.load(path: folder.path)
        XCTAssertEqual(loaded.configurationSource, "diffusers")
        XCTAssertEqual(loaded.configuration.unet.numHeadChannels, 16)
        XCTAssertEqual(loaded.configuration.unet.attentionResolutions, [2])
        XCTAssertEqual(loaded.configuration.conditioning, .superResolution)
        assertClose(try loaded.unet(try tensor(io, "unet_in"), timesteps: [500]), try tensor(io, "unet_out"), relativeTolerance: 1e-4, "UNet2DModel")
        let vq = try XCTUnwrap(loaded.firstStage as? VQAutoencoder)
        let latent = try vq.encode(try tensor(io, "vq_in"))
        assertClose(latent, try tensor(io, "vq_latent"), relativeTolerance: 1e-4, "VQModel.encode")
        assertClose(try vq.decode(try tensor(io, "vq_latent")), try tensor(io, "vq_decoded"), relativeTolerance: 1e-4, "VQModel.decode")
        let reference = LDMConfiguration.linearAlphasCumprod(timesteps: 1000, start: 0.0015, end: 0.0155)
        XCTAssertEqual(loaded.alphasCumprod, reference)
    }
}
