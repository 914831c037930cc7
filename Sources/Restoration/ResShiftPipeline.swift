import Checkpoints
import Engine
import Foundation
import ImageIO
import Methods
import Networks
import Operators
import Tiling

/// ResShift's tasks: real-world and bicubic ×4 SR, inpainting, blind face restoration.
public enum ResShiftTask: String, Codable, Sendable, CaseIterable {
    case realsr, bicsr, inpaint, faceir
}

/// A ResShift network with everything its sampler needs to know about it, loaded once and shared.
public final class LoadedResShift: @unchecked Sendable {
    public let network: ResShiftUNet
    public let firstStage: FirstStage
    public let sampler: ResShiftSampler
    public let scaleFactor: Int
    public let paddingMultiple: Int
    public let name: String
    public let sha256: String
    /// "own" (our export, configuration in the metadata) or "official".
    public let kind: String
    public let loadSeconds: Double

    init(network: ResShiftUNet, firstStage: FirstStage, sampler: ResShiftSampler, scaleFactor: Int, paddingMultiple: Int, name: String, sha256: String,
         kind: String, loadSeconds: Double) {
        self.network = network
        self.firstStage = firstStage
        self.sampler = sampler
        self.scaleFactor = scaleFactor
        self.paddingMultiple = paddingMultiple
        self.name = name
        self.sha256 = sha256
        self.kind = kind
        self.loadSeconds = loadSeconds
    }

    /// Loads our own export (default: the bundled ×4 model) or an official network with its autoencoder.
    /// `steps` must fit the model (nil: from the model); `task` must be what the model does.
    public static func load(path given: String?, autoencoder: String?, task: ResShiftTask, steps: Int?) throws -> LoadedResShift {
        let started = Date()
        let path = try given ?? BundledModels.locate(BundledModels.defaultResShift)
        let checkpoint = try Checkpoint(path: path)
        let fileName = (path as NSString).lastPathComponent
        if checkpoint.metadata["family"] == ModelCatalog.ownResShiftFamily {
            // Our own export: configuration, diffusion and first stage in the metadata (Tools/train/train_resshift.py).
            let network = try ResShiftLoader.loadUNet(checkpoint: checkpoint).network
            let diffusion = try JSONSerialization.jsonObject(with: Data((checkpoint.metadata["diffusion"] ?? "{}").utf8)) as? [String: Any] ?? [:]
            func number(_ key: String, _ fallback: Double) -> Double { (diffusion[key] as? NSNumber)?.doubleValue ?? fallback }
            let firstStage: FirstStage
            switch checkpoint.metadata["first_stage"] {
            case "pixel-unshuffle-4": firstStage = PixelUnshuffleStage(factor: 4)
            case let other: throw RestorationError("\(path): unknown first stage \(other ?? "(none)") in the metadata")
            }
            let t = steps ?? Int(number("steps", 4))
            guard t == Int(number("steps", 4)) else { throw RestorationError("this model was trained with \(Int(number("steps", 4))) steps; --steps \(t) does not fit it") }
            let schedule = try ResShiftSchedule.exponential(steps: t, minNoiseLevel: number("min_noise_level", 0.2), etasEnd: number("etas_end", 0.99),
                                                            kappa: number("kappa", 2), power: number("power", 0.3))
            let latent = (diffusion["latent_flag"] as? Bool) ?? false
            guard let prediction = ResShiftPrediction(rawValue: (diffusion["predict_type"] as? String) ?? "xstart") else {
                throw RestorationError("\(path): unknown predict_type \(diffusion["predict_type"] ?? "") in the metadata (xstart or residual)")
            }
            let scale = Int(number("sf", 4))
            // Our models say what they do: a mask channel means inpainting, otherwise super-resolution.
            let inpaints = network.configuration.condMask
            guard task != .faceir, inpaints == (task == .inpaint) else {
                throw RestorationError("\(fileName) does \(inpaints ? "inpainting (--task inpaint --mask FILE)" : "×\(scale) super-resolution"); for --task \(task.rawValue) pass an official --model and --autoencoder")
            }
            return LoadedResShift(network: network, firstStage: firstStage,
                                  sampler: ResShiftSampler(schedule: schedule, inputScaling: latent ? .latent : .pixel,
                                                           clipX0: (diffusion["clip_x0"] as? Bool) ?? !latent, prediction: prediction),
                                  scaleFactor: scale,
                                  // the latent (input × sf / down factor) must fit the network's size multiple
                                  paddingMultiple: max(1, network.sizeMultiple * firstStage.downFactor / max(1, scale)), name: fileName,
                                  sha256: try SHA256.hex(ofFile: path), kind: "own", loadSeconds: Date().timeIntervalSince(started))
        }
        let described = try ModelCatalog.describe(path: path)
        guard described.family?.name == "swin-unet" else { throw RestorationError("\(fileName) is \(described.usage)") }
        guard let autoencoder else {
            throw RestorationError("an official ResShift network needs its autoencoder: add --autoencoder autoencoder_vq_f4.pth")
        }
        let configuration: ResShiftUNetConfiguration = task == .inpaint ? .inpainting256 : task == .faceir ? .faceRestoration512 : .realSRx4
        let network = try ResShiftLoader.loadUNet(checkpoint: checkpoint, configuration: configuration).network
        let vq = try ResShiftLoader.loadAutoencoder(path: autoencoder, configuration: task == .faceir ? .vqF8Face : .vqF4)
        let named = fileName.contains("_s15") ? 15 : fileName.contains("_s4") ? 4 : nil
        if let steps, let named, steps != named {
            throw RestorationError("\(fileName) was trained with \(named) steps; --steps \(steps) does not fit it")
        }
        let t = steps ?? named ?? 4
        guard t == 4 || t == 15 else { throw RestorationError("the released ResShift networks use 4 or 15 steps; --steps \(t) fits none") }
        // v1/v2: T 15, min noise 0.04; v3, bicsr, inpainting: T 4, min noise 0.2 (configs/*.yaml); κ 2, p 0.3.
        let schedule = try ResShiftSchedule.exponential(steps: t, minNoiseLevel: t == 15 ? 0.04 : 0.2)
        return LoadedResShift(network: network, firstStage: vq, sampler: ResShiftSampler(schedule: schedule, inputScaling: .latent, clipX0: false),
                              scaleFactor: task == .inpaint || task == .faceir ? 1 : 4, paddingMultiple: configuration.lqSize, name: fileName,
                              sha256: try SHA256.hex(ofFile: path), kind: "official", loadSeconds: Date().timeIntervalSince(started))
    }

    public func summary() -> String {
        String(format: "resshift: %@ (%@, %d steps) loaded in %.1f s", name, kind, sampler.schedule.steps, loadSeconds)
    }
}

/// ResShift's options with the official inference defaults (inference_resshift.py: chop 512, stride 448, seed 12345).
public struct ResShiftOptions: Codable, Sendable, Equatable {
    public var task: ResShiftTask = .realsr
    /// Restore inputs larger than this (input pixels) in patches of this size; the distance between patch starts.
    public var chopSize = 512
    public var chopStride: Int?
    /// How overlapping patches merge: average (official) or feathered.
    public var blend: String = ResShiftChopper.Blend.average.rawValue
    /// Average this many samples (seeds seed, seed+1, …) into one output: an estimate of the posterior mean.
    /// (`samples` everywhere else means separate outputs.)
    public var average = 1
    public var maxPixels: Int = ImageReader.defaultMaxPixels

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var o = ResShiftOptions()
        o.task = try c.decodeIfPresent(ResShiftTask.self, forKey: .task) ?? o.task
        o.chopSize = try c.decodeIfPresent(Int.self, forKey: .chopSize) ?? o.chopSize
        o.chopStride = try c.decodeIfPresent(Int.self, forKey: .chopStride)
        o.blend = try c.decodeIfPresent(String.self, forKey: .blend) ?? o.blend
        o.average = try c.decodeIfPresent(Int.self, forKey: .average) ?? o.average
        o.maxPixels = try c.decodeIfPresent(Int.self, forKey: .maxPixels) ?? o.maxPixels
        self = o
    }

    public func validate() throws {
        if !(1...64).contains(average) { throw RestorationError("--average must be between 1 and 64") }
        if chopSize < 16 { throw RestorationError("--chop-size must be at least 16") }
        if let chopStride, chopStride < 1 || chopStride > chopSize { throw RestorationError("--chop-stride must be between 1 and --chop-size") }
        if ResShiftChopper.Blend(rawValue: blend) == nil { throw RestorationError("--blend must be average or feathered") }
    }
}

/// What ResShift restores from: a low-quality image (with a mask for inpainting: gray level, white = hole), or
/// in simulate mode a clean image that the pipeline shrinks ×4 first (the project's bicubic:4, rounded to 8 bits).
public enum ResShiftInput {
    case image(Image, mask: Image?)
    case simulate(clean: Image)
}

/// ResShift (Yue et al., NeurIPS 2023): few-step SR by shifting the residual between the low- and
/// high-resolution image; large inputs are chopped into patches as the official code does.
///
/// Concurrency: as `DDNMPipeline` (immutable; per-request state in `restore`; one request at a time per network).
public struct ResShiftPipeline {
    public let model: LoadedResShift
    public let options: ResShiftOptions
    public let chopper: ResShiftChopper

    public init(model: LoadedResShift, options: ResShiftOptions) throws {
        try options.validate()
        let blend = ResShiftChopper.Blend(rawValue: options.blend) ?? .average
        // inference_resshift.py: chop size and stride are multiplied by 4 // scale (×4 for inpainting and faces).
        let chopScale = 4 / max(1, min(4, model.scaleFactor))
        chopper = try ResShiftChopper(chopSize: options.chopSize * chopScale,
                                      stride: (options.chopStride ?? ResShiftChopper.defaultStride(chopSize: options.chopSize)) * chopScale, blend: blend)
        self.model = model
        self.options = options
    }

    /// The mask's gray level in [0, 1] (white = hole), [1, h, w, 1]; refuses a mask of another size or without a hole.
    static func holes(_ image: Image, width: Int, height: Int, name: String) throws -> Tensor {
        let (color, _) = image.splittingAlpha()
        guard color.width == width, color.height == height else {
            throw RestorationError("the mask is \(color.width)×\(color.height) but the image is \(width)×\(height) (\(name))")
        }
        let m = try Tensor(uninitializedShape: [1, height, width, 1])
        let c = color.channels
        for p in 0..<(width * height) { m.data[p] = (0..<c).reduce(Float(0)) { $0 + color.pixels[p * c + $1] } / Float(c) }
        guard m.values.contains(where: { $0 >= 0.5 }) else { throw RestorationError("the mask has no hole (white = hole) (\(name))") }
        return m
    }

    /// Restores one input; `maskName` labels mask errors. Sample k draws from the stream `seed + k`.
    public func restore(_ input: ResShiftInput, name: String, maskName: String = "mask", seed: UInt64, panels: RestorationPanels = [],
                        context: RestorationContext = RestorationContext()) throws -> RestorationResult {
        let start = Date()
        let image: Image, maskImage: Image?
        switch input {
        case .image(let i, let m): (image, maskImage) = (i, m)
        case .simulate(let clean): (image, maskImage) = (clean, nil)
        }
        if options.task == .inpaint, maskImage == nil { throw RestorationError("--task inpaint needs --mask FILE (white = hole)") }
        let (color, alpha) = image.splittingAlpha()
        let rgb = color.channels == 3 ? color : color.expandingGrayToRGB()
        var lq = try Observations.tensor(rgb)
        let sf = model.scaleFactor
        var clean: Tensor?
        var observation: Tensor?
        if case .simulate = input {
            clean = lq
            lq = try SimulatedSuperResolution.shrink(lq, factor: 4, name: name)
            if panels.contains(.observation) { observation = lq }
        }
        let inW = lq.shape[2], inH = lq.shape[1]
        let outW = inW * sf, outH = inH * sf
        guard outW * outH <= 1 << 28 else { throw RestorationError("a \(outW)×\(outH) output is too large (limit 2^28 pixels) (\(name))") }
        // The mask as the official code reads it: gray level / 255 (white = hole), kept continuous; the network
        // sees 2m − 1 and, as in training (datapipe: lq·(1 − m) − m), the image with its holes at −1, so an
        // ordinary photo and an already blacked-out one give the same result.
        var holes: Tensor?
        let original = maskImage == nil ? lq : try lq.copy()  // the input as read, for the composite
        if let maskImage {
            let m = try Self.holes(maskImage, width: inW, height: inH, name: maskName)
            for p in 0..<(inW * inH) { for c in 0..<3 { lq.data[p * 3 + c] = lq.data[p * 3 + c] * (1 - m.data[p]) - m.data[p] } }
            holes = m
        }
        let patchCount = chopper.starts(inH).count * chopper.starts(inW).count
        let steps = model.sampler.schedule.steps
        let samples = options.average
        let (network, firstStage) = (model.network, model.firstStage)
        let input = try holes.map { try concatenateChannels([lq, try scale($0, by: 2, adding: -1)]) } ?? lq
        var restored = try Tensor(shape: [1, outH, outW, 3])
        let label = (name as NSString).lastPathComponent
        context.emit(.stage(label: label, total: samples * patchCount * steps))
        // Per request: the network call checks this request's cancellation.
        let restorer = ResShiftRestorer(sampler: model.sampler, scaleFactor: sf, paddingMultiple: model.paddingMultiple,
                                        encode: { try firstStage.encode($0) }, decode: { try firstStage.decode($0) },
                                        predict: { x, t, condition in
                                            try context.checkCancellation()
                                            return try network(x, timesteps: t, condition: condition)
                                        })
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
                    context.emit(.step(done: (sample * count + index) * steps + done, total: samples * count * steps,
                                       note: notes.isEmpty ? nil : notes.joined(separator: ", ")))
                }
            }
            try addInPlace(restored, one, scale: 1 / Float(samples))
        }
        if let holes {
            // sr·m + lq·(1 − m) on [0, 1] (sampler.py:218-222): the known pixels come back from the input.
            for p in 0..<(outW * outH) {
                let m = holes.data[p]
                for c in 0..<3 { restored.data[p * 3 + c] = restored.data[p * 3 + c] * m + original.data[p * 3 + c] * (1 - m) }
            }
        }
        restored = try clamp(restored, to: -1...1)
        let elapsed = Date().timeIntervalSince(start)
        var report = RestorationReport(method: "resshift", seed: seed)
        report.task = options.task.rawValue
        report.steps = steps
        report.model = model.name
        report.modelSHA256 = model.sha256
        report.modelKind = model.kind
        report.scale = sf
        report.chopSize = chopper.chopSize
        report.chopStride = chopper.stride
        report.blend = chopper.blend.rawValue
        report.patches = patchCount
        report.averaged = samples
        report.input = label
        report.elapsedSeconds = elapsed
        report.secondsPerStep = elapsed / Double(max(steps * patchCount * samples, 1))
        if let clean { try SimulatedSuperResolution.measure(restored, input: lq, clean: clean, factor: 4, into: &report) }
        var result = RestorationResult(image: restored, alpha: alpha.map { $0.resized(width: outW, height: outH) }, sourceBitDepth: image.sourceBitDepth,
                                       report: report, observation: observation)
        result.observationLabel = "observation (bicubic:4 of the input)"
        return result
    }
}
