import ArgumentParser
import Foundation
import Networks
import Restoration

/// `restore ldm`: latent-diffusion ×4 super-resolution and inpainting (CompVis checkpoints).
struct LDMCommand: JobMaking {
    static let configuration = CommandConfiguration(
        commandName: "ldm",
        abstract: "Latent-diffusion ×4 super-resolution or inpainting: DDIM in the latent space of a VQ or KL autoencoder, the LR image or the encoded masked image concatenated to the latent (LDM).",
        discussion: """
            --model takes a CompVis Lightning checkpoint: bsr_sr's (×4 SR over VQ-f4) or inpainting_big's (over \
            VQ-f4 without attention) last.ckpt, recognised by their shapes, with the EMA copy (model_ema.*) preferred \
            as the official samplers use it; other layouts need --config FILE (JSON: unet_config, first_stage_config, \
            conditioning sr4|inpaint, linear_start, linear_end [, timesteps, scale_factor]) and, when the file holds no \
            first stage, --autoencoder FILE (a first_stage_models/*/model.ckpt, VQ or KL, read from its shapes). \
            Defaults follow the official helpers: SR 100 DDIM steps with η 1 (the Colab notebook), inpainting 50 steps \
            with η 0 (scripts/inpaint.py; the mask is binarised at 0.5, white = hole, and the known pixels are put \
            back). Latents larger than --tile run every step in windows of --tile latent pixels overlapping by \
            --overlap, blended by LDM's border-distance weights (split_input_params: 128 and 64), and the first stage \
            decodes in the same windows (or, with --first-stage halo, in halo tiles); --tile 0 runs the whole latent at once. No LDM model is bundled yet.
            """
    )

    @OptionGroup var io: ImageIOOptions

    @Option(help: "The latent-diffusion checkpoint (.ckpt or our .safetensors export).")
    var model: String?

    @Option(help: "sr4 or inpaint (default: what the model does; checked against it).")
    var task: LDMConditioning?

    @Option(help: "The inpainting mask (white = hole, binarised at 0.5), the size of the input.")
    var mask: String?

    @Option(help: "The first stage, when the model file holds none or another should be used.")
    var autoencoder: String?

    @Option(help: "A JSON configuration for checkpoints that match no released layout.")
    var config: String?

    @Option(help: "DDIM steps (default: 100 for SR, 50 for inpainting). LDM's grid is range(0, 1000, 1000/steps) + 1.")
    var steps: Int?

    @Option(help: "DDIM η (default: 1 for SR, 0 for inpainting).")
    var eta: Double?

    @Option(help: "Latent window side for the per-step windows and the windowed decode; 0 = the whole latent at once.")
    var tile: Int = LDMOptions.defaultTile

    @Option(help: "Overlap between neighbouring windows in latent pixels (window − stride).")
    var overlap: Int = LDMOptions.defaultOverlap

    @Option(help: "The first stage on a split latent: official (the same windows and weights, as decode_first_stage does) or halo (cores of 64 latent pixels with 16 of context, cross-faded; cheaper on large latents, exact for local layers; measure which is closer for your autoencoder with engine-bench first-stage FILE).")
    var firstStage: LDMFirstStageTiling = .official

    @Flag(help: "The DDIM paper's last step: the result is the last x̂0 (ᾱ_prev = 1), not the official code's x_prev with ᾱ_prev = ᾱ_0, which keeps a trace of noise (about 5/255).")
    var finalX0 = false

    @Option(help: "Separate outputs per input, sample k from seed + k − 1 (files get -1, -2, … suffixes).")
    var samples: Int = 1

    @Option(help: "Random seed of x_T and the DDIM noise (default 1234).")
    var seed: UInt64?

    @Flag(help: "SR: the input is a clean image; shrink it by bicubic ×4 first and report PSNR/SSIM against it and bicubic's.")
    var simulate = false

    @Option(help: "Also write the observation (with --simulate: the shrunken input) as an image.")
    var saveObservation: String?

    func validate() throws {
        guard (1...64).contains(samples) else { throw ValidationError("--samples must be between 1 and 64") }
        do { try options.validate() } catch { throw ValidationError("\(error)") }
        if saveObservation != nil, !simulate { throw ValidationError("--save-observation needs --simulate") }
        if task == .inpainting, mask == nil { throw ValidationError("--task inpaint needs --mask FILE (white = hole)") }
        if simulate, mask != nil { throw ValidationError("--simulate is for super-resolution, not with --mask") }
    }

    var options: LDMOptions {
        var o = LDMOptions()
        (o.task, o.steps, o.eta, o.tile, o.overlap, o.simulate, o.maxPixels) = (task, steps, eta, tile, overlap, simulate, io.maxPixels)
        o.firstStage = firstStage
        o.finalX0 = finalX0
        return o
    }

    func job(input: String, sample: Int) throws -> RestorationJob {
        RestorationJob(method: .ldm(options), model: ModelReference(path: model, config: config, autoencoder: autoencoder), input: input, mask: mask,
                       simulate: simulate, seed: seed ?? 1234, sample: sample, maxPixels: io.maxPixels)
    }

    func run() throws {
        try io.run(job, samples: samples, observation: saveObservation)
    }
}

extension LDMConditioning: ExpressibleByArgument {}
extension LDMFirstStageTiling: ExpressibleByArgument {}
