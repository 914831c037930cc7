import ArgumentParser
import Checkpoints
import Engine
import Foundation
import ImageIO
import Methods
import Networks
import Operators
import Restoration

/// `restore resshift`: few-step ×4 super-resolution (and inpainting) by residual shifting.
struct ResShiftCommand: ParsableCommand {
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

    enum Task: String, ExpressibleByArgument, CaseIterable {
        case realsr, bicsr, inpaint, faceir
    }

    @OptionGroup var io: ImageIOOptions

    @Option(help: "realsr (real-world ×4), bicsr (bicubic ×4), inpaint (needs --mask; ImageNet or face network), faceir (blind face restoration, 512², with ffhq512_vq_f8_dim8_face.pth).")
    var task: Task = .realsr

    @Option(help: "Inpainting mask image (white = hole), the size of the input.")
    var mask: String?

    @Option(help: "A ResShift network: an official .pth or our own .safetensors (default: the bundled Models/resshift-x4-own.safetensors).")
    var model: String?

    @Option(help: "The VQ autoencoder of an official network (autoencoder_vq_f4.pth).")
    var autoencoder: String?

    @Option(help: "Diffusion steps T the network was trained with: 4 or 15 (default: from the model).")
    var steps: Int?

    @Option(help: "Restore images larger than this (input pixels) in patches of this size (official default 512).")
    var chopSize: Int = 512

    @Option(help: "Distance between patch starts (default: the official 448 / 224 / 48 for 512 / 256 / 64, else 7/8 of the size).")
    var chopStride: Int?

    @Option(help: "How overlapping patches merge: average (official) or feathered.")
    var blend: String = "average"

    @Option(help: "Random seed (the official default is 12345).")
    var seed: UInt64 = 12345

    @Option(help: "Average this many samples (seeds --seed, --seed+1, …): an estimate of the posterior mean, higher PSNR, less texture.")
    var samples: Int = 1

    @Flag(help: "The input is a clean image: shrink it ×4 (the project's bicubic:4 operator, as DDNM's), restore, and report PSNR/SSIM against it (and bicubic upsampling's).")
    var simulate = false

    @Option(help: "With --simulate, also write the ×4-smaller input the restoration saw.")
    var saveObservation: String?

    func validate() throws {
        if let steps, steps < 2 { throw ValidationError("--steps must be at least 2") }
        if !(1...64).contains(samples) { throw ValidationError("--samples must be between 1 and 64") }
        if chopSize < 16 { throw ValidationError("--chop-size must be at least 16") }
        if let chopStride, chopStride < 1 || chopStride > chopSize { throw ValidationError("--chop-stride must be between 1 and --chop-size") }
        if ResShiftChopper.Blend(rawValue: blend) == nil { throw ValidationError("--blend must be average or feathered") }
        if task == .inpaint, mask == nil { throw ValidationError("--task inpaint needs --mask FILE (white = hole)") }
        if task != .inpaint, mask != nil { throw ValidationError("--mask is for --task inpaint") }
        if simulate, task == .inpaint || task == .faceir { throw ValidationError("--simulate is for ×4 super-resolution (realsr, bicsr)") }
        if saveObservation != nil, !simulate { throw ValidationError("--save-observation needs --simulate") }
    }

    /// A network with everything the sampler needs to know about it.
    struct Loaded {
        let network: ResShiftUNet
        let firstStage: FirstStage
        let sampler: ResShiftSampler
        let scaleFactor: Int
        let paddingMultiple: Int
        let name: String
        let sha256: String
        let kind: String
    }

    func load() throws -> Loaded {
        let started = Date()
        let path = try model ?? BundledModels.locate(BundledModels.defaultResShift)
        let checkpoint = try Checkpoint(path: path)
        let loaded: Loaded
        if checkpoint.metadata["family"] == "resshift-swin" {
            // Our own export: configuration, diffusion and first stage in the metadata (Tools/train/train_resshift.py).
            let network = try ResShiftLoader.loadUNet(checkpoint: checkpoint).network
            let diffusion = try JSONSerialization.jsonObject(with: Data((checkpoint.metadata["diffusion"] ?? "{}").utf8)) as? [String: Any] ?? [:]
            func number(_ key: String, _ fallback: Double) -> Double { (diffusion[key] as? NSNumber)?.doubleValue ?? fallback }
            let firstStage: FirstStage
            switch checkpoint.metadata["first_stage"] {
            case "pixel-unshuffle-4": firstStage = PixelUnshuffleStage(factor: 4)
            case let other: throw CommandFailure("\(path): unknown first stage \(other ?? "(none)") in the metadata")
            }
            let t = steps ?? Int(number("steps", 4))
            guard t == Int(number("steps", 4)) else { throw CommandFailure("this model was trained with \(Int(number("steps", 4))) steps; --steps \(t) does not fit it") }
            let schedule = try ResShiftSchedule.exponential(steps: t, minNoiseLevel: number("min_noise_level", 0.2), etasEnd: number("etas_end", 0.99),
                                                            kappa: number("kappa", 2), power: number("power", 0.3))
            let latent = (diffusion["latent_flag"] as? Bool) ?? false
            guard let prediction = ResShiftPrediction(rawValue: (diffusion["predict_type"] as? String) ?? "xstart") else {
                throw CommandFailure("\(path): unknown predict_type \(diffusion["predict_type"] ?? "") in the metadata (xstart or residual)")
            }
            loaded = Loaded(network: network, firstStage: firstStage,
                            sampler: ResShiftSampler(schedule: schedule, inputScaling: latent ? .latent : .pixel,
                                                     clipX0: (diffusion["clip_x0"] as? Bool) ?? !latent, prediction: prediction),
                            scaleFactor: Int(number("sf", 4)),
                            // the latent (input × sf / down factor) must fit the network's size multiple
                            paddingMultiple: max(1, network.sizeMultiple * firstStage.downFactor / max(1, Int(number("sf", 4)))), name: (path as NSString).lastPathComponent,
                            sha256: try SHA256.hex(ofFile: path), kind: "own")
            // Our models say what they do: a mask channel means inpainting, otherwise super-resolution.
            let inpaints = network.configuration.condMask
            guard task != .faceir, inpaints == (task == .inpaint) else {
                throw CommandFailure("\(loaded.name) does \(inpaints ? "inpainting (--task inpaint --mask FILE)" : "×\(loaded.scaleFactor) super-resolution"); for --task \(task.rawValue) pass an official --model and --autoencoder")
            }
        } else {
            guard let autoencoder else {
                throw CommandFailure("an official ResShift network needs its autoencoder: add --autoencoder autoencoder_vq_f4.pth")
            }
            let configuration: ResShiftUNetConfiguration = task == .inpaint ? .inpainting256 : task == .faceir ? .faceRestoration512 : .realSRx4
            let network = try ResShiftLoader.loadUNet(checkpoint: checkpoint, configuration: configuration).network
            let vq = try ResShiftLoader.loadAutoencoder(path: autoencoder, configuration: task == .faceir ? .vqF8Face : .vqF4)
            let fileName = (path as NSString).lastPathComponent
            let named = fileName.contains("_s15") ? 15 : fileName.contains("_s4") ? 4 : nil
            if let steps, let named, steps != named {
                throw CommandFailure("\(fileName) was trained with \(named) steps; --steps \(steps) does not fit it")
            }
            let t = steps ?? named ?? 4
            guard t == 4 || t == 15 else { throw CommandFailure("the released ResShift networks use 4 or 15 steps; --steps \(t) fits none") }
            // v1/v2: T 15, min noise 0.04; v3, bicsr, inpainting: T 4, min noise 0.2 (configs/*.yaml); κ 2, p 0.3.
            let schedule = try ResShiftSchedule.exponential(steps: t, minNoiseLevel: t == 15 ? 0.04 : 0.2)
            loaded = Loaded(network: network, firstStage: vq, sampler: ResShiftSampler(schedule: schedule, inputScaling: .latent, clipX0: false),
                            scaleFactor: task == .inpaint || task == .faceir ? 1 : 4, paddingMultiple: configuration.lqSize, name: fileName,
                            sha256: try SHA256.hex(ofFile: path), kind: "official")
        }
        if !io.quiet {
            FileHandle.standardError.write(Data(String(format: "resshift: %@ (%@, %d steps) loaded in %.1f s\n", loaded.name, loaded.kind,
                                                       loaded.sampler.schedule.steps, Date().timeIntervalSince(started)).utf8))
        }
        return loaded
    }

    /// The mask's gray level in [0, 1] (white = hole), [1, h, w, 1]; refuses a mask of another size or without a hole.
    static func readMask(_ path: String, width: Int, height: Int, maxPixels: Int) throws -> Tensor {
        let (color, _) = try ImageReader.read(path: path, maxPixels: maxPixels).splittingAlpha()
        guard color.width == width, color.height == height else {
            throw CommandFailure("the mask is \(color.width)×\(color.height) but the image is \(width)×\(height) (\(path))")
        }
        let m = try Tensor(uninitializedShape: [1, height, width, 1])
        let c = color.channels
        for p in 0..<(width * height) { m.data[p] = (0..<c).reduce(Float(0)) { $0 + color.pixels[p * c + $1] } / Float(c) }
        guard m.values.contains(where: { $0 >= 0.5 }) else { throw CommandFailure("the mask has no hole (white = hole) (\(path))") }
        return m
    }

    func run() throws {
        try failingCleanly {
            let jobs = try io.jobs()
            let loaded = try load()
            let blendMode = ResShiftChopper.Blend(rawValue: blend) ?? .average
            // inference_resshift.py: chop size and stride are multiplied by 4 // scale (×4 for inpainting and faces).
            let chopScale = 4 / max(1, min(4, loaded.scaleFactor))
            let chopper = try ResShiftChopper(chopSize: chopSize * chopScale,
                                              stride: (chopStride ?? ResShiftChopper.defaultStride(chopSize: chopSize)) * chopScale, blend: blendMode)
            let network = loaded.network
            let restorer = ResShiftRestorer(sampler: loaded.sampler, scaleFactor: loaded.scaleFactor, paddingMultiple: loaded.paddingMultiple,
                                            encode: { try loaded.firstStage.encode($0) }, decode: { try loaded.firstStage.decode($0) },
                                            predict: { x, t, condition in try network(x, timesteps: t, condition: condition) })
            for job in jobs {
                let start = Date()
                let image = try ImageReader.read(path: job.input, maxPixels: io.maxPixels)
                let (color, alpha) = image.splittingAlpha()
                let rgb = color.channels == 3 ? color : color.expandingGrayToRGB()
                var lq = try DDNMCommand.tensor(rgb)
                let sf = loaded.scaleFactor
                var clean: Tensor?
                if simulate {
                    guard rgb.width % 4 == 0, rgb.height % 4 == 0 else {
                        throw CommandFailure("--simulate needs a clean image whose sides are multiples of 4, got \(rgb.width)×\(rgb.height) (\(job.input))")
                    }
                    clean = lq
                    // y = A x with the project's bicubic:4 (reflect borders, Keys a = −0.5), rounded to 8 bits as a saved image would be.
                    lq = try clamp(try OperatorSpec.parse("bicubic:4", loadMask: { _ in throw CommandFailure("no mask here") }).apply(lq), to: -1...1)
                    for i in 0..<lq.count { lq.data[i] = ((lq.data[i] + 1) * 127.5).rounded() / 127.5 - 1 }
                    if let saveObservation {
                        let small = Image.fromSignedRange(lq.values, width: lq.shape[2], height: lq.shape[1], channels: 3, sourceBitDepth: 8)
                        try io.write(small, to: saveObservation, report: ["panel": "observation (bicubic:4 of the input)"], inputs: [job.input], quietJSON: true)
                    }
                }
                let inW = lq.shape[2], inH = lq.shape[1]
                let outW = inW * sf, outH = inH * sf
                guard outW * outH <= 1 << 28 else { throw CommandFailure("a \(outW)×\(outH) output is too large (limit 2^28 pixels) (\(job.input))") }
                // The mask as the official code reads it: gray level / 255 (white = hole), kept continuous; the
                // network sees 2m − 1 and, as in training (datapipe: lq·(1 − m) − m), the image with its holes at −1,
                // so an ordinary photo and an already blacked-out one give the same result.
                var holes: Tensor?
                let original = mask == nil ? lq : try lq.copy()  // the input as read, for the composite
                if let mask {
                    let m = try Self.readMask(mask, width: inW, height: inH, maxPixels: io.maxPixels)
                    for p in 0..<(inW * inH) { for c in 0..<3 { lq.data[p * 3 + c] = lq.data[p * 3 + c] * (1 - m.data[p]) - m.data[p] } }
                    holes = m
                }
                let progress = ProgressBar(label: (job.input as NSString).lastPathComponent, enabled: !io.quiet)
                let patchCount = chopper.starts(inH).count * chopper.starts(inW).count
                let steps = loaded.sampler.schedule.steps
                let input = try holes.map { try concatenateChannels([lq, try scale($0, by: 2, adding: -1)]) } ?? lq
                var restored = try Tensor(shape: [1, outH, outW, 3])
                for sample in 0..<samples {
                    var noise = SeededGaussian(seed: seed &+ UInt64(sample))
                    let one = try chopper.run(input, scale: sf, outputChannels: 3) { patch, index, count in
                        let (image, patchMask): (Tensor, Tensor?)
                        if holes != nil {
                            let parts = try splitChannels(patch, sizes: [3, 1])
                            (image, patchMask) = (parts[0], parts[1])
                        } else {
                            (image, patchMask) = (patch, nil)
                        }
                        return try restorer.restore(image, mask: patchMask, noise: &noise) { done, _ in
                            let notes = (count > 1 ? ["patch \(index + 1)/\(count)"] : []) + (samples > 1 ? ["sample \(sample + 1)/\(samples)"] : [])
                            progress.update((sample * count + index) * steps + done, samples * count * steps, note: notes.isEmpty ? nil : notes.joined(separator: ", "))
                        }
                    }
                    try addInPlace(restored, one, scale: 1 / Float(samples))
                }
                progress.finish()
                if let holes {
                    // sr·m + lq·(1 − m) on [0, 1] (sampler.py:218-222): the known pixels come back from the input.
                    for p in 0..<(outW * outH) {
                        let m = holes.data[p]
                        for c in 0..<3 { restored.data[p * 3 + c] = restored.data[p * 3 + c] * m + original.data[p * 3 + c] * (1 - m) }
                    }
                }
                restored = try clamp(restored, to: -1...1)
                let elapsed = Date().timeIntervalSince(start)
                var report: [String: Any] = [
                    "method": "resshift", "task": task.rawValue, "steps": steps, "seed": seed, "model": loaded.name, "model_sha256": loaded.sha256,
                    "model_kind": loaded.kind, "scale": sf, "chop_size": chopper.chopSize, "chop_stride": chopper.stride, "blend": blendMode.rawValue,
                    "patches": patchCount, "samples": samples, "input": (job.input as NSString).lastPathComponent, "version": BuildInfo.version,
                    "elapsed_s": elapsed, "seconds_per_step": elapsed / Double(max(steps * patchCount * samples, 1)),
                ]
                if let clean {
                    report["psnr_db"] = Quality.psnr(restored, clean)
                    report["ssim"] = Quality.ssim(restored, clean)
                    let bicubic = try clamp(try resizeBicubic(lq, height: outH, width: outW), to: -1...1)
                    report["bicubic_psnr_db"] = Quality.psnr(bicubic, clean)
                    report["bicubic_ssim"] = Quality.ssim(bicubic, clean)
                    report["simulated"] = "bicubic:4"
                }
                let result = Image.fromSignedRange(restored.values, width: outW, height: outH, channels: 3, sourceBitDepth: image.sourceBitDepth)
                try io.write(result.attachingAlpha(alpha.map { $0.resized(width: outW, height: outH) }), to: job.output, report: report, inputs: [job.input] + (mask.map { [$0] } ?? []))
                if !io.quiet {
                    let quality = (report["psnr_db"] as? Double).map { String(format: "; PSNR %.2f dB, SSIM %.3f (bicubic %.2f dB, %.3f)", $0, report["ssim"] as? Double ?? 0,
                                                                             report["bicubic_psnr_db"] as? Double ?? 0, report["bicubic_ssim"] as? Double ?? 0) } ?? ""
                    FileHandle.standardError.write(Data(String(format: "resshift: %@ → %@ (%d×%d → %d×%d, %d steps, %d patch%@, %.1f s%@)\n", job.input, job.output,
                                                               inW, inH, outW, outH, steps, patchCount, patchCount == 1 ? "" : "es", elapsed, quality).utf8))
                }
            }
        }
    }
}
