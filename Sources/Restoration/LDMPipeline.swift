import Checkpoints
import Engine
import Foundation
import ImageIO
import Methods
import Networks
import Tiling

/// A latent-diffusion model (UNet, first stage, ᾱ), loaded once and shared.
public final class LoadedLDM: @unchecked Sendable {
    public let unet: ADMUNet
    public let firstStage: FirstStage
    public let configuration: LDMConfiguration
    public let alphasCumprod: [Float]
    public let weights: String
    public let configurationSource: String
    public let name: String
    public let sha256: String
    public let loadSeconds: Double
    /// "own" (our export, family ldm-own) or "official".
    public let kind: String
    /// The sampling our exports were made for (metadata "sampling": steps, eta); nil: the official helpers' defaults.
    public let samplingSteps: Int?
    public let samplingEta: Double?

    struct Sampling: Codable { var steps: Int?; var eta: Double? }

    init(_ loaded: LDMLoader.Loaded, name: String, sha256: String, loadSeconds: Double) throws {
        (unet, firstStage, configuration, alphasCumprod) = (loaded.unet, loaded.firstStage, loaded.configuration, loaded.alphasCumprod)
        (weights, configurationSource, self.name, self.sha256, self.loadSeconds) = (loaded.weights, loaded.configurationSource, name, sha256, loadSeconds)
        kind = loaded.metadata["family"] == ModelCatalog.ownLDMFamily ? "own" : "official"
        var sampling = Sampling()
        if let json = loaded.metadata["sampling"] {
            do { sampling = try JSONDecoder().decode(Sampling.self, from: Data(json.utf8)) } catch {
                throw RestorationError("\(name): metadata \"sampling\" is not LDM's sampling settings (\(error))")
            }
        }
        (samplingSteps, samplingEta) = (sampling.steps, sampling.eta)
    }

    /// Loads `path` (a CompVis `.ckpt` or our export) with the first stage from `autoencoder` when given and the
    /// configuration from the JSON file `config` when given (else the file's metadata or a released preset).
    public static func load(path given: String?, autoencoder: String? = nil, config: String? = nil) throws -> LoadedLDM {
        let started = Date()
        let path: String
        if let given { path = given } else {
            do { path = try BundledModels.locate(BundledModels.defaultLDM) } catch {
                throw RestorationError("restore ldm needs --model FILE (a CompVis latent-diffusion .ckpt such as bsr_sr's or inpainting_big's last.ckpt, or a diffusers folder): the bundled \(BundledModels.defaultLDM) was not found")
            }
        }
        let file = (path as NSString).lastPathComponent
        var configuration: LDMConfiguration?
        if let config {
            guard let data = FileManager.default.contents(atPath: config) else { throw RestorationError("cannot read --config \(config)") }
            do { configuration = try JSONDecoder().decode(LDMConfiguration.self, from: data) } catch {
                throw RestorationError("--config \(config) is not an LDM configuration (unet_config, first_stage_config, conditioning, linear_start, linear_end): \(error)")
            }
        }
        do {
            let loaded = try LDMLoader.load(path: path, configuration: configuration, firstStagePath: autoencoder)
            // A diffusers folder is named by its UNet weights.
            var hashed = path
            if DiffusersLDM.isFolder(path) {
                hashed = ["safetensors", "bin"].map { (path as NSString).appendingPathComponent("unet/diffusion_pytorch_model.\($0)") }
                    .first { FileManager.default.fileExists(atPath: $0) } ?? path
            }
            return try LoadedLDM(loaded, name: file, sha256: try SHA256.hex(ofFile: hashed), loadSeconds: Date().timeIntervalSince(started))
        } catch let error as CheckpointError {
            throw RestorationError("\(file): \(error)")
        } catch let error as EngineError {
            throw RestorationError("\(file): \(error)")
        }
    }

    public func summary() -> String {
        let c = configuration
        let stage = c.pixelUnshuffle.map { "pixel-unshuffle f\($0)" }
            ?? (c.isVQ ? "VQ-f\(firstStage.downFactor)\((c.firstStage?.hasAttention ?? true) ? "" : " without attention")" : "KL-f\(firstStage.downFactor)")
        return String(format: "ldm: %@ (%@, %@ configuration, model_channels %d, %@, %@-prediction, %@ weights) loaded in %.1f s", name,
                      c.conditioning.rawValue, configurationSource, c.unet.modelChannels, stage, c.parameterization == .x0 ? "x0" : "ε",
                      weights, loadSeconds)
    }
}

/// How the first stage runs on a latent split into windows.
public enum LDMFirstStageTiling: String, Codable, Sendable, CaseIterable {
    /// `decode_first_stage`'s patch-distributed mode: the denoiser's windows and border-distance weights (the official code).
    case official
    /// `HaloTiles`: cores of 64 latent pixels, each run with 16 more of context per side and cross-faded over 4 either
    /// side of each seam: exact for a local network, cheaper than the official windows on large latents; which of the
    /// two comes closer to the whole-image pass depends on how global the autoencoder is (Benchmarks/RESULTS.md).
    case halo
}

/// Latent diffusion's options, with the official defaults of each task.
public struct LDMOptions: Codable, Sendable, Equatable {
    /// sr4 or inpaint; nil: what the model does. Checked against the model.
    public var task: LDMConditioning?
    /// DDIM steps; nil: 100 for SR (the Colab helper's custom_steps), 50 for inpainting (scripts/inpaint.py).
    public var steps: Int?
    /// DDIM η; nil: 1 for SR (the Colab helper), 0 for inpainting (the script's default).
    public var eta: Double?
    /// The latent window side of the official `split_input_params` (ks 128, stride 64 in latent pixels): larger
    /// latents run every step in windows blended by border-distance weights, and the first stage decodes in windows
    /// the same way; 0: the whole latent at once.
    public var tile = LDMOptions.defaultTile
    /// Window overlap in latent pixels (ks − stride; the official 64).
    public var overlap = LDMOptions.defaultOverlap
    /// The first stage on a split latent: the official windows, or halo tiles.
    public var firstStage = LDMFirstStageTiling.official
    /// The DDIM paper's last step (the result is the last x̂0, ᾱ_prev = 1) instead of the official ᾱ_prev = ᾱ_0.
    public var finalX0 = false
    /// `--simulate` (SR): the input is clean; shrink it by bicubic:4 first and report PSNR/SSIM.
    public var simulate = false
    public var maxPixels: Int = ImageReader.defaultMaxPixels

    public static let defaultTile = 128
    public static let defaultOverlap = 64

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var o = LDMOptions()
        o.task = try c.decodeIfPresent(LDMConditioning.self, forKey: .task)
        o.steps = try c.decodeIfPresent(Int.self, forKey: .steps)
        o.eta = try c.decodeIfPresent(Double.self, forKey: .eta)
        o.tile = try c.decodeIfPresent(Int.self, forKey: .tile) ?? o.tile
        o.overlap = try c.decodeIfPresent(Int.self, forKey: .overlap) ?? o.overlap
        o.firstStage = try c.decodeIfPresent(LDMFirstStageTiling.self, forKey: .firstStage) ?? o.firstStage
        o.finalX0 = try c.decodeIfPresent(Bool.self, forKey: .finalX0) ?? false
        o.simulate = try c.decodeIfPresent(Bool.self, forKey: .simulate) ?? false
        o.maxPixels = try c.decodeIfPresent(Int.self, forKey: .maxPixels) ?? o.maxPixels
        self = o
    }

    public func validate() throws {
        if let steps, steps < 1 || steps > 1000 { throw RestorationError("--steps must be between 1 and the model's T (1000)") }
        if let eta, !(eta >= 0 && eta <= 10) { throw RestorationError("--eta must be between 0 and 10") }
        if tile != 0, tile < 8 { throw RestorationError("--tile must be 0 (whole latent) or at least 8 latent pixels") }
        if tile != 0, overlap < 0 || overlap >= tile { throw RestorationError("--overlap must be between 0 and --tile − 1") }
    }
}

/// The windows of LDM's `split_input_params` along both axes of a latent, with the border-distance weights of
/// `LatentDiffusion.get_weighting` (`delta_border` clipped to [0.01, 0.5], no tie breaker): windows start every
/// `stride` while they fit, as `nn.Unfold` places them. Where those leave the far edge uncovered (the official code
/// then divides 0 by 0) one more window is placed flush with the edge; a side shorter than the window is one window
/// of that side, as `decode_first_stage` reduces its kernel.
public struct LDMWindows: Sendable, Equatable {
    public let window: Int, stride: Int

    public init(window: Int, stride: Int) {
        self.window = window
        self.stride = max(1, stride)
    }

    /// Window size and start positions along an axis of `length`.
    public func starts(_ length: Int) -> (size: Int, starts: [Int]) {
        let size = min(window, length), step = min(stride, length)
        var starts = Array(Swift.stride(from: 0, through: length - size, by: step))
        if let last = starts.last, last + size < length { starts.append(length - size) }
        return (size, starts)
    }

    public func count(height: Int, width: Int) -> Int { starts(height).starts.count * starts(width).starts.count }

    /// `delta_border(h, w)` clipped to [0.01, 0.5]: min over the four normalised distances to the window's edges.
    static func weights(height h: Int, width w: Int) -> [Float] {
        var out = [Float](repeating: 0, count: h * w)
        for y in 0..<h {
            let fy = h > 1 ? Float(y) / Float(h - 1) : 0
            for x in 0..<w {
                let fx = w > 1 ? Float(x) / Float(w - 1) : 0
                let d = min(min(fy, fx), min(1 - fy, 1 - fx))
                out[y * w + x] = min(0.5, max(0.01, d))
            }
        }
        return out
    }

    /// Runs `body` on every window of `input` (windows laid out on a grid of `gridHeight`×`gridWidth` units; a unit
    /// is `inScale` input pixels and `outScale` output pixels) and blends the outputs with the weights at the output
    /// window's size: Σ w·out / Σ w. `body(patch, index, count)` returns [1, size·outScale, size·outScale, outChannels].
    public func run(_ input: Tensor, gridHeight: Int, gridWidth: Int, inScale: Int = 1, outScale: Int = 1, outChannels: Int,
                    body: (Tensor, Int, Int) throws -> Tensor) throws -> Tensor {
        let (ys, xs) = (starts(gridHeight), starts(gridWidth))
        let canvas = try BlendCanvas(shape: [1, gridHeight * outScale, gridWidth * outScale, outChannels])
        let (wh, ww) = (ys.size * outScale, xs.size * outScale)
        let weight = Self.weights(height: wh, width: ww)
        let count = ys.starts.count * xs.starts.count
        var index = 0
        for y0 in ys.starts {
            for x0 in xs.starts {
                let patch = try input.crop(PixelRect(y: y0 * inScale, x: x0 * inScale, height: ys.size * inScale, width: xs.size * inScale))
                let out = try body(patch, index, count)
                guard out.shape == [1, wh, ww, outChannels] else {
                    throw EngineError.shapeMismatch(op: "LDMWindows", expected: "[1, \(wh), \(ww), \(outChannels)]", found: "\(out.shape)")
                }
                try canvas.add(out, at: PixelRect(y: y0 * outScale, x: x0 * outScale, height: wh, width: ww), weights: weight)
                index += 1
            }
        }
        return canvas.normalized(.multiplyByReciprocal)
    }
}

/// Latent diffusion (Rombach et al., CVPR 2022) as CompVis' helpers run it: ×4 super-resolution with the LR image
/// concatenated to the latent (the Colab `notebook_helpers.run`: DDIM η 1, EMA weights, `split_input_params` windows
/// of 128 latent pixels at stride 64 blended every step and a patch-distributed first-stage decode), and
/// inpainting (`scripts/inpaint.py`: mask binarised at 0.5 and mapped to ±1, the masked image encoded, the mask
/// resized to the latent, DDIM 50 steps η 0, the known pixels composited back).
///
/// Concurrency: as the other pipelines (immutable; one request at a time per network).
public struct LDMPipeline {
    public let model: LoadedLDM
    public let options: LDMOptions
    public let task: LDMConditioning
    public let steps: Int
    public let eta: Double
    let plan: [LDMDDIMStep]

    public init(model: LoadedLDM, options: LDMOptions) throws {
        try options.validate()
        let does = model.configuration.conditioning
        if let asked = options.task, asked != does {
            throw RestorationError("\(model.name) does \(does == .superResolution ? "×\(model.firstStage.downFactor) super-resolution (--task sr4)" : "inpainting (--task inpaint)"), not --task \(asked.rawValue)")
        }
        task = does
        steps = options.steps ?? model.samplingSteps ?? (does == .superResolution ? 100 : 50)
        eta = options.eta ?? model.samplingEta ?? (does == .superResolution ? 1 : 0)
        do { plan = try LDMDDIM.plan(alphasCumprod: model.alphasCumprod, steps: steps, eta: eta) } catch {
            throw RestorationError("--steps \(steps): \(error)")
        }
        if options.simulate, does != .superResolution { throw RestorationError("--simulate is for super-resolution models") }
        self.model = model
        self.options = options
    }

    /// Tests: told the inpainting condition (the encoded masked image and the mask at latent size).
    var lastCondition: ((Tensor) -> Void)?

    /// The latent windows: `--tile` rounded down to the UNet's size multiple (a window must pass through it), the stride
    /// `--tile − --overlap`; nil for the whole latent.
    var windows: LDMWindows? {
        guard options.tile != 0 else { return nil }
        let m = model.unet.sizeMultiple
        return LDMWindows(window: max(m, options.tile / m * m), stride: options.tile - options.overlap)
    }

    /// Restores `image` (inpainting: with `mask`, white = hole); x_T and the per-step noise come from the seeded stream `seed`.
    public func restore(_ image: Image, mask: Image? = nil, name: String, maskName: String = "mask", seed: UInt64,
                        panels: RestorationPanels = [], context: RestorationContext = RestorationContext()) throws -> RestorationResult {
        let start = Date()
        let (color, alpha) = image.splittingAlpha()
        let rgb = color.channels == 3 ? color : color.expandingGrayToRGB()
        var input = try Observations.tensor(rgb)  // [-1, 1]
        let f = model.firstStage.downFactor
        let label = (name as NSString).lastPathComponent
        var report = RestorationReport(method: "ldm", seed: seed)
        var noise = SeededGaussian(seed: seed)
        var clean: Tensor?, observation: Tensor?
        let result: Tensor
        switch task {
        case .superResolution:
            guard mask == nil else { throw RestorationError("--mask is for inpainting models; \(model.name) does super-resolution") }
            if options.simulate {
                clean = input
                input = try SimulatedSuperResolution.shrink(input, factor: f, name: name)
                if panels.contains(.observation) { observation = input }
            }
            result = try superResolve(input, noise: &noise, label: label, report: &report, context: context)
            if let clean { try SimulatedSuperResolution.measure(result, input: input, clean: clean, factor: f, into: &report) }
        case .inpainting:
            guard let mask else { throw RestorationError("\(model.name) inpaints: give --mask FILE (white = hole)") }
            result = try inpaint(input, mask: mask, maskName: maskName, noise: &noise, label: label, report: &report, context: context)
        }
        report.steps = steps
        report.eta = eta
        report.task = task.rawValue
        report.model = model.name
        report.modelSHA256 = model.sha256
        report.modelKind = model.kind == "own" ? "own" : "\(model.weights) weights, \(model.configurationSource) configuration"
        report.input = label
        report.elapsedSeconds = Date().timeIntervalSince(start)
        report.secondsPerStep = report.elapsedSeconds.map { $0 / Double(steps) }
        let (outH, outW) = (result.shape[1], result.shape[2])
        var out = RestorationResult(image: result, alpha: alpha.map { $0.resized(width: outW, height: outH) }, sourceBitDepth: image.sourceBitDepth,
                                    report: report, observation: observation)
        out.observationLabel = "observation (bicubic:\(f) of the input)"
        return out
    }

    /// Reflect-pads [1, h, w, c] on the bottom and right to multiples of `multiple` (replicate where too small).
    private func padded(_ x: Tensor, multiple: Int) throws -> (Tensor, String?) {
        let (h, w) = (x.shape[1], x.shape[2])
        let padH = (multiple - h % multiple) % multiple, padW = (multiple - w % multiple) % multiple
        guard padH != 0 || padW != 0 else { return (x, nil) }
        let reflects = padH < h && padW < w
        return (try pad(x, left: 0, right: padW, top: 0, bottom: padH, mode: reflects ? .reflect : .replicate),
                "\(w)×\(h) → \(w + padW)×\(h + padH) (\(reflects ? "reflect" : "replicate"))")
    }

    /// The DDIM run over a latent of `height`×`width` with `condition` concatenated (in windows when the latent is
    /// larger), decoded: x_T is the first draw of `noise`, the per-step z (η > 0) the next ones.
    func sample(condition: Tensor, height: Int, width: Int, noise: inout some GaussianSource, label: String, report: inout RestorationReport,
                context: RestorationContext) throws -> Tensor {
        let latentChannels = model.firstStage.latentChannels
        let x = try noise.next(shape: [1, height, width, latentChannels])
        let split = windows.map { height > $0.window || width > $0.window } ?? false
        let count = split ? windows!.count(height: height, width: width) : 1
        let total = plan.count + 1
        context.emit(.stage(label: label, total: total))
        let unet = model.unet, windows = self.windows
        let latent = try LDMDDIM.sample(start: x, plan: plan, noise: &noise,
                                        predictsX0: model.configuration.parameterization == .x0, finalX0: options.finalX0,
                                        epsilon: { x, t in
            try context.checkCancellation()
            let stacked = try concatenateChannels([x, condition])
            guard split, let windows else { return try unet(stacked, timesteps: [Float(t)]) }
            return try windows.run(stacked, gridHeight: height, gridWidth: width, outChannels: latentChannels) { patch, _, _ in
                try context.checkCancellation()
                return try unet(patch, timesteps: [Float(t)])
            }
        }, progress: { done, all, _ in
            context.emit(.step(done: done, total: total, note: count > 1 ? "\(count) windows" : nil))
        })
        report.networkEvaluations = plan.count * count
        report.patches = count
        report.tiling = split ? "\(count) latent windows of \(windows?.window ?? 0)² at stride \(windows?.stride ?? 0), border-distance weights (LDM split_input_params), every step; first stage \(options.firstStage == .official ? "in the same windows" : "in \(Self.stageTiles.count(height: height, width: width)) halo tiles (core \(Self.stageTiles.core), halo \(Self.stageTiles.halo), blend \(Self.stageTiles.blend) latent pixels)")" : "whole latent"
        let decoded = try decode(latent, split: split)
        context.emit(.step(done: total, total: total, note: "decoded"))
        return decoded
    }

    /// Halo tiles of the first stage (`--first-stage halo`), in latent pixels.
    public static let stageTiles = try! HaloTiles(core: 64, halo: 16, blend: 4)  // constants that satisfy the checks

    /// `decode_first_stage`: z / scale_factor through the first stage, patch-distributed (or in halo tiles) when `split`.
    private func decode(_ latent: Tensor, split: Bool) throws -> Tensor {
        let z = model.configuration.scaleFactor == 1 ? latent : try scale(latent, by: 1 / model.configuration.scaleFactor)
        let stage = model.firstStage
        guard split else { return try stage.decode(z) }
        return try tiledStage(z, gridHeight: z.shape[1], gridWidth: z.shape[2], outScale: stage.downFactor, outChannels: stage.imageChannels) {
            try stage.decode($0)
        }
    }

    /// `encode_first_stage` of an image of `lh`×`lw` latent pixels, patch-distributed (or in halo tiles) when `split`.
    private func encode(_ image: Tensor, latentHeight lh: Int, latentWidth lw: Int, split: Bool) throws -> Tensor {
        let stage = model.firstStage
        guard split else { return try stage.encode(image) }
        return try tiledStage(image, gridHeight: lh, gridWidth: lw, inScale: stage.downFactor, outChannels: stage.latentChannels) {
            try stage.encode($0)
        }
    }

    /// The first stage over a grid of latent pixels in the tiling `--first-stage` names.
    private func tiledStage(_ input: Tensor, gridHeight: Int, gridWidth: Int, inScale: Int = 1, outScale: Int = 1, outChannels: Int,
                            body: (Tensor) throws -> Tensor) throws -> Tensor {
        switch (options.firstStage, windows) {
        case (.official, let windows?):
            return try windows.run(input, gridHeight: gridHeight, gridWidth: gridWidth, inScale: inScale, outScale: outScale,
                                   outChannels: outChannels) { patch, _, _ in try body(patch) }
        case (.official, nil):
            return try body(input)
        case (.halo, _):
            return try Self.stageTiles.run(input, gridHeight: gridHeight, gridWidth: gridWidth, inScale: inScale, outScale: outScale,
                                           outChannels: outChannels) { patch, _, _ in try body(patch) }
        }
    }

    /// ×f SR of `lr` ([1, h, w, 3] in [−1, 1]) → [1, f·h, f·w, 3] in [−1, 1].
    func superResolve(_ lr: Tensor, noise: inout some GaussianSource, label: String, report: inout RestorationReport,
                      context: RestorationContext = RestorationContext()) throws -> Tensor {
        let f = model.firstStage.downFactor
        let (h, w) = (lr.shape[1], lr.shape[2])
        guard h * f * w * f <= 1 << 28 else { throw RestorationError("a \(w * f)×\(h * f) output is too large (limit 2^28 pixels) (\(label))") }
        let (condition, note) = try padded(lr, multiple: model.unet.sizeMultiple)
        report.padded = note
        report.scale = f
        let sr = try sample(condition: condition, height: condition.shape[1], width: condition.shape[2], noise: &noise, label: label, report: &report,
                            context: context)
        let cropped = note == nil ? sr : try sr.crop(PixelRect(y: 0, x: 0, height: h * f, width: w * f))
        return try clamp(cropped, to: -1...1)
    }

    /// Inpaints `image` ([1, h, w, 3] in [−1, 1]) where `maskImage` is white → [1, h, w, 3] in [−1, 1].
    func inpaint(_ image: Tensor, mask maskImage: Image, maskName: String, noise: inout some GaussianSource, label: String,
                 report: inout RestorationReport, context: RestorationContext = RestorationContext()) throws -> Tensor {
        let (h, w) = (image.shape[1], image.shape[2])
        let (maskColor, _) = maskImage.splittingAlpha()
        guard maskColor.width == w, maskColor.height == h else {
            throw RestorationError("the mask is \(maskColor.width)×\(maskColor.height) but the image is \(w)×\(h) (\(maskName))")
        }
        // scripts/inpaint.py: PIL "L" (ITU-R 601 luma), /255, binarised at 0.5 (1 = hole).
        let mask = try Tensor(uninitializedShape: [1, h, w, 1])
        let c = maskColor.channels
        for p in 0..<(w * h) {
            let px = maskColor.pixels, luma = c >= 3 ? 0.299 * px[p * c] + 0.587 * px[p * c + 1] + 0.114 * px[p * c + 2] : px[p * c]
            mask.data[p] = luma >= 0.5 ? 1 : 0
        }
        guard mask.values.contains(1) else { throw RestorationError("the mask has no hole (white = hole) (\(maskName))") }
        // masked_image = (1 − mask)·image in [0, 1], then everything (the mask too) mapped to [−1, 1].
        let masked = try Tensor(uninitializedShape: image.shape), signedMask = try Tensor(uninitializedShape: mask.shape)
        for p in 0..<(w * h) {
            signedMask.data[p] = mask.data[p] * 2 - 1
            for k in 0..<3 { masked.data[p * 3 + k] = ((1 - mask.data[p]) * (image.data[p * 3 + k] + 1) / 2) * 2 - 1 }
        }
        let f = model.firstStage.downFactor
        let (paddedMasked, note) = try padded(masked, multiple: f * model.unet.sizeMultiple)
        let (paddedMask, _) = try padded(signedMask, multiple: f * model.unet.sizeMultiple)
        report.padded = note
        let (lh, lw) = (paddedMasked.shape[1] / f, paddedMasked.shape[2] / f)
        let split = windows.map { lh > $0.window || lw > $0.window } ?? false
        var encoded = try encode(paddedMasked, latentHeight: lh, latentWidth: lw, split: split)
        if model.configuration.scaleFactor != 1 { encoded = try scale(encoded, by: model.configuration.scaleFactor) }
        // interpolate(mask, size=latent) with the default nearest mode: source pixel ⌊i·in/out⌋ = i·f.
        let small = try Tensor(uninitializedShape: [1, lh, lw, 1])
        for y in 0..<lh { for x in 0..<lw { small.data[y * lw + x] = paddedMask.data[(y * f) * paddedMask.shape[2] + x * f] } }
        let condition = try concatenateChannels([encoded, small])
        lastCondition?(condition)
        let decoded = try sample(condition: condition, height: lh, width: lw, noise: &noise, label: label, report: &report, context: context)
        // inpainted = (1 − mask)·image + mask·clamp((x + 1)/2, 0, 1), back to [−1, 1].
        let out = try Tensor(uninitializedShape: image.shape)
        let pw = decoded.shape[2]
        for y in 0..<h {
            for x in 0..<w {
                let m = mask.data[y * w + x]
                for k in 0..<3 {
                    let predicted = min(1, max(0, (decoded.data[(y * pw + x) * 3 + k] + 1) / 2))
                    let known = (image.data[(y * w + x) * 3 + k] + 1) / 2
                    out.data[(y * w + x) * 3 + k] = ((1 - m) * known + m * predicted) * 2 - 1
                }
            }
        }
        return out
    }
}
