import ArgumentParser
import Foundation
import Methods
import Restoration

/// `restore rddm`: same-size restoration by residual denoising diffusion (RDDM).
struct RDDMCommand: JobMaking {
    static let configuration = CommandConfiguration(
        commandName: "rddm",
        abstract: "Same-size restoration (noise, blur, JPEG, low light) by residual denoising diffusion: start from the degraded image plus a little noise, remove the predicted residual and noise (RDDM).",
        discussion: """
            Default: the project's own blind model (Models/rddm-own.safetensors; its card lists the degradations it \
            learned). Official trainer files (model-*.pt, the EMA copy is read; schedule buffers checked) and bare \
            UnetRes state dicts load as they are; the official authors publish no restoration weights. The official \
            code resizes every image to 256×256; here the image keeps its size (reflect-padded to the network's \
            multiple), and every step runs in tiles of --tile pixels (--overlap, feathered) so memory stays bounded \
            (--tile 0: the whole image at once). With --simulate KIND:P… the input is a clean image: it is degraded \
            first (noise:SIGMA, poisson:PEAK, defocus:RADIUS, motion:LENGTH[:ANGLE], jpeg:QUALITY, \
            lowlight:SCALE:GAMMA[:SIGMA]) and PSNR/SSIM are reported for the result and for the degraded input.
            """
    )

    @OptionGroup var io: ImageIOOptions

    @Option(help: "An RDDM network: an official model-*.pt, a UnetRes state dict, or our own .safetensors (default: the bundled Models/rddm-own.safetensors).")
    var model: String?

    @Option(help: "Sampling steps (fewer than T: the DDIM-like sampler; T: the ancestral one). Default: the model's (the official 10).")
    var steps: Int?

    @Option(help: "What the network predicts: pred_res_noise, pred_res_add_noise, pred_x0_noise, pred_x0_add_noise (two outputs), pred_res, pred_noise (one). Default: the model's (our card), else pred_res_noise.")
    var objective: RDDMObjective?

    @Option(help: "Tile side in pixels for each step's network call; 0 = the whole image at once.")
    var tile: Int = RDDMOptions.defaultTile

    @Option(help: "Overlap between neighbouring tiles in pixels.")
    var overlap: Int = RDDMOptions.defaultOverlap

    @Option(help: "Separate outputs per input, sample k from seed + k − 1 (files get -1, -2, … suffixes).")
    var samples: Int = 1

    @Option(help: "Random seed of the start noise (default 1234). Same seed, same threads, same build → identical output.")
    var seed: UInt64?

    @Option(help: "The input is a clean image: degrade it by KIND:P… first (e.g. noise:25, defocus:2, jpeg:20) and report PSNR/SSIM against it.")
    var simulate: String?

    @Option(help: "Also write the observation (with --simulate: the degraded input the restoration saw) as an image.")
    var saveObservation: String?

    func validate() throws {
        guard (1...64).contains(samples) else { throw ValidationError("--samples must be between 1 and 64") }
        do { try options.validate() } catch { throw ValidationError("\(error)") }
        if saveObservation != nil, simulate == nil { throw ValidationError("--save-observation needs --simulate") }
    }

    var options: RDDMOptions {
        var o = RDDMOptions()
        (o.steps, o.objective, o.tile, o.overlap, o.simulate, o.maxPixels) = (steps, objective, tile, overlap, simulate, io.maxPixels)
        return o
    }

    func job(input: String, sample: Int) throws -> RestorationJob {
        RestorationJob(method: .rddm(options), model: ModelReference(path: model), input: input, simulate: simulate != nil, seed: seed ?? 1234,
                       sample: sample, maxPixels: io.maxPixels)
    }

    func run() throws {
        try io.run(job, samples: samples, observation: saveObservation)
    }
}

extension RDDMObjective: ExpressibleByArgument {}
