import ArgumentParser
import Foundation
import Restoration

/// `restore resshift`: few-step ×4 super-resolution (and inpainting) by residual shifting.
struct ResShiftCommand: JobMaking {
    static let configuration = CommandConfiguration(
        commandName: "resshift",
        abstract: "×4 super-resolution in 4 (or 15) steps by shifting the residual between the low- and high-resolution image (ResShift).",
        discussion: """
            Default: the project's own ×4 model (Models/resshift-x4-own.safetensors: pixel space through a lossless \
            space-to-depth, 4 steps). Official checkpoints: --model resshift_realsrx4_s4_v3.pth (or _s15_v1/v2, \
            resshift_bicsrx4_s4.pth, resshift_inpainting_{imagenet,face}_s4.pth with --task inpaint, \
            resshift_faceir_s4.pth with --task faceir) together with --autoencoder (autoencoder_vq_f4.pth; \
            celeba256_vq_f4_dim3_face.pth for face inpainting; ffhq512_vq_f8_dim8_face.pth for faceir); the steps follow the file name (_s15_ → 15, else 4). Images larger \
            than --chop-size (input pixels; ×4 for the ×1 tasks, as the official code) are restored patch by patch \
            and averaged as the official code does (--blend feathered for seamless merging). Masks: white = hole, \
            gray levels kept as the official code reads them. Each image restarts the random stream at --seed.
            """
    )

    @OptionGroup var io: ImageIOOptions

    @Option(help: "realsr (real-world ×4), bicsr (bicubic ×4), inpaint (needs --mask; ImageNet or face network), faceir (blind face restoration, 512², with ffhq512_vq_f8_dim8_face.pth).")
    var task: ResShiftTask = .realsr

    @Option(help: "Inpainting mask image (white = hole), the size of the input.")
    var mask: String?

    @Option(help: "A ResShift network: an official .pth or our own .safetensors (default: the bundled Models/resshift-x4-own.safetensors).")
    var model: String?

    @Option(help: "The VQ autoencoder of an official network (autoencoder_vq_f4.pth).")
    var autoencoder: String?

    @Option(help: "Restore images larger than this (input pixels) in patches of this size (official default 512).")
    var chopSize: Int = 512

    @Option(help: "Distance between patch starts (default: the official 448 / 224 / 48 for 512 / 256 / 64, else 7/8 of the size).")
    var chopStride: Int?

    @Option(help: "How overlapping patches merge: average (official) or feathered.")
    var blend: String = "average"

    @Option(help: "Average this many samples (seeds --seed, --seed+1, …) into one output: an estimate of the posterior mean, higher PSNR, less texture.")
    var average: Int = 1

    @Option(help: "Separate outputs per input, sample k from seed + k − 1 (files get -1, -2, … suffixes).")
    var samples: Int = 1

    @OptionGroup var sampling: SamplingOptions

    @OptionGroup var observation: SimulateOptions

    func validate() throws {
        if let steps = sampling.steps, steps < 2 { throw ValidationError("--steps must be at least 2") }
        guard (1...64).contains(samples) else { throw ValidationError("--samples must be between 1 and 64") }
        do { try options.validate() } catch { throw ValidationError("\(error)") }
        if task == .inpaint, mask == nil { throw ValidationError("--task inpaint needs --mask FILE (white = hole)") }
        if task != .inpaint, mask != nil { throw ValidationError("--mask is for --task inpaint") }
        if observation.simulate, task == .inpaint || task == .faceir { throw ValidationError("--simulate is for ×4 super-resolution (realsr, bicsr)") }
        if observation.saveObservation != nil, !observation.simulate { throw ValidationError("--save-observation needs --simulate") }
    }

    /// The flags as the pipeline's options.
    var options: ResShiftOptions {
        var o = ResShiftOptions()
        (o.task, o.chopSize, o.chopStride, o.blend, o.average, o.maxPixels) = (task, chopSize, chopStride, blend, average, io.maxPixels)
        return o
    }

    func job(input: String, sample: Int) throws -> RestorationJob {
        RestorationJob(method: .resshift(options), model: ModelReference(path: model, autoencoder: autoencoder, steps: sampling.steps), input: input,
                       mask: mask, simulate: observation.simulate, seed: sampling.seed ?? 12345, sample: sample, maxPixels: io.maxPixels)
    }

    var protectedPaths: [String] { mask.map { [$0] } ?? [] }

    func run() throws {
        try io.run(job, samples: samples, observation: observation.saveObservation, protecting: protectedPaths)
    }
}

extension ResShiftTask: ExpressibleByArgument {}
