import ArgumentParser
import Foundation
import Networks
import Restoration

/// `restore diffir`: one-pass restoration guided by a compact prior diffused in 4 steps (DiffIR).
struct DiffIRCommand: JobMaking {
    static let configuration = CommandConfiguration(
        commandName: "diffir",
        abstract: "×4 super-resolution (and the official ×2, ×1 and motion-deblurring models) by a transformer guided by a 4-step diffused prior (DiffIR).",
        discussion: """
            Default: the project's own ×4 model (Models/diffir-x4-own.safetensors). Official checkpoints load as they \
            are (BasicSR .pth, params_ema preferred; the task — ×4, ×2, ×1, deblur — is read from the weights): \
            DiffIRS2-GAN.pth (×4), DiffIRS2-GANx2.pth, DiffIRS2-GANx1.pth (RealSR; the V2 files too), the SRGAN ×4 \
            file, the GoPro deblurring model (net_g_latest.pth). The output is random only through the 256-d prior's starting noise (--seed). \
            The official script restores the whole image at once; here DIRformer runs in tiles of --tile input \
            pixels (--overlap, feathered blending) so memory stays bounded, and the prior always comes from the \
            whole image (--tile 0: the whole image at once, as the official code).
            """
    )

    @OptionGroup var io: ImageIOOptions

    @Option(help: "What the model must do: sr4, sr2, sr1 (×4, ×2, ×1 real-world SR) or deblur (GoPro motion deblurring); a model of another task is refused. Default: the model's own task, read from its weights.")
    var task: DiffIRTask?

    @Option(help: "A DiffIR stage-2 network: an official .pth or our own .safetensors (default: the bundled Models/diffir-x4-own.safetensors).")
    var model: String?

    @Option(help: "Tile side in input pixels for DIRformer (a multiple of 8 for ×4, 16 for ×2, 32 for ×1); 0 = the whole image at once.")
    var tile: Int = DiffIROptions.defaultTile

    @Option(help: "Overlap between neighbouring tiles in input pixels.")
    var overlap: Int = DiffIROptions.defaultOverlap

    @Option(help: "Separate outputs per input, sample k from seed + k − 1 (files get -1, -2, … suffixes).")
    var samples: Int = 1

    @Option(help: "Random seed of the prior's starting noise (default 1234). Same seed, same threads, same build → identical output.")
    var seed: UInt64?

    @Flag(help: "The input is a clean image: shrink it (bicubic ×4, as DDNM's bicubic:4), restore, and report PSNR/SSIM against it and against bicubic upsampling.")
    var simulate = false

    @Option(help: "Also write the observation (with --simulate: the shrunk input the restoration saw) as an image.")
    var saveObservation: String?

    func validate() throws {
        guard (1...64).contains(samples) else { throw ValidationError("--samples must be between 1 and 64") }
        do { try options.validate() } catch { throw ValidationError("\(error)") }
        if saveObservation != nil, !simulate { throw ValidationError("--save-observation needs --simulate") }
    }

    var options: DiffIROptions {
        var o = DiffIROptions()
        (o.task, o.tile, o.overlap, o.maxPixels) = (task, tile, overlap, io.maxPixels)
        return o
    }

    func job(input: String, sample: Int) throws -> RestorationJob {
        RestorationJob(method: .diffir(options), model: ModelReference(path: model), input: input, simulate: simulate, seed: seed ?? 1234,
                       sample: sample, maxPixels: io.maxPixels)
    }

    func run() throws {
        try io.run(job, samples: samples, observation: saveObservation)
    }
}

extension DiffIRTask: ExpressibleByArgument {}
