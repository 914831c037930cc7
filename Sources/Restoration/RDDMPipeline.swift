import Checkpoints
import Engine
import Foundation
import ImageIO
import Methods
import Networks
import Tiling

/// An RDDM network with its schedule and the sampling settings it was made for, loaded once and shared.
public final class LoadedRDDM: @unchecked Sendable {
    public let network: RDDMUNet
    public let schedule: RDDMSchedule
    /// The objective the model was trained with (our exports' metadata); nil for official files, which do not say.
    public let objective: RDDMObjective?
    /// The sampling steps the model was made for (our metadata; the official default 10 otherwise).
    public let samplingSteps: Int
    /// The degradations our model was trained on (metadata), for reports and `inspect`.
    public let degradations: String?
    public let name: String
    public let sha256: String
    /// "own" (our export) or "official" (a `Trainer.save` file or a bare `UnetRes` state dict).
    public let kind: String
    public let loadSeconds: Double
    public var configuration: RDDMConfiguration { network.configuration }

    /// The official `sampling_timesteps` default (train.py).
    public static let officialSamplingSteps = 10

    init(network: RDDMUNet, schedule: RDDMSchedule, objective: RDDMObjective?, samplingSteps: Int, degradations: String?, name: String,
         sha256: String, kind: String, loadSeconds: Double) {
        (self.network, self.schedule, self.objective, self.samplingSteps, self.degradations) = (network, schedule, objective, samplingSteps, degradations)
        (self.name, self.sha256, self.kind, self.loadSeconds) = (name, sha256, kind, loadSeconds)
    }

    /// What our exports' metadata "diffusion" holds.
    struct DiffusionMetadata: Codable {
        var timesteps: Int?
        var sumScale: Double?
        var objective: RDDMObjective?
        var samplingTimesteps: Int?
        var degradations: String?
        enum CodingKeys: String, CodingKey {
            case timesteps, sumScale = "sum_scale", objective, samplingTimesteps = "sampling_timesteps", degradations
        }
    }

    /// Loads `path` (default: the bundled model). The schedule comes from the file's buffers (checked against the
    /// recomputed one), else from our metadata, else the official defaults (T 1000, sum_scale 0.01 for restoration).
    public static func load(path given: String?) throws -> LoadedRDDM {
        let started = Date()
        let path = try given ?? BundledModels.locate(BundledModels.defaultRDDM)
        let file = (path as NSString).lastPathComponent
        let loaded: RDDMLoader.Loaded
        do {
            loaded = try RDDMLoader.load(path: path)
        } catch let error as CheckpointError {
            throw RestorationError("\(file): \(error)")
        }
        var metadata = DiffusionMetadata()
        if let json = loaded.diffusionMetadata {
            do { metadata = try JSONDecoder().decode(DiffusionMetadata.self, from: Data(json.utf8)) } catch {
                throw RestorationError("\(file): metadata \"diffusion\" is not RDDM's sampling settings (\(error))")
            }
        }
        let schedule: RDDMSchedule
        do {
            schedule = try RDDMSchedule(checkingBuffers: loaded.scheduleBuffers)
                ?? RDDMSchedule(timesteps: metadata.timesteps ?? 1000,
                                sumScale: metadata.sumScale ?? (loaded.configuration.conditionImages > 0 ? 0.01 : 1))
        } catch {
            throw RestorationError("\(file): \(error)")
        }
        let own = loaded.checkpoint.metadata["family"] == ModelCatalog.ownRDDMFamily
        // AOSA (automatic objective selection) files carry the learned α_res: the official sampler reads the one
        // output as the residual when α_res > 0.5, else as the noise (experiments/3_AOSA…, model_predictions).
        let automatic: RDDMObjective? = loaded.alphaRes.map { $0 > 0.5 ? .predRes : .predNoise }
        return LoadedRDDM(network: loaded.network, schedule: schedule, objective: metadata.objective ?? automatic,
                          samplingSteps: metadata.samplingTimesteps ?? officialSamplingSteps, degradations: metadata.degradations, name: file,
                          sha256: try SHA256.hex(ofFile: path), kind: own ? "own" : "official", loadSeconds: Date().timeIntervalSince(started))
    }

    public func summary() -> String {
        let c = configuration
        let layout = c.shareEncoder == 0 ? "two UNets" : c.shareEncoder == 1 ? "shared encoder" : "one UNet"
        return String(format: "rddm: %@ (%@, dim %d, %@, T %d, sum_scale %g) loaded in %.1f s", name, kind, c.dim, layout, schedule.timesteps,
                      schedule.sumScale, loadSeconds)
    }
}

/// RDDM's options, with the official defaults where the model does not say.
public struct RDDMOptions: Codable, Sendable, Equatable {
    /// Sampling steps: < T runs the DDIM-like sampler, = T the ancestral one; nil: the model's (official 10).
    public var steps: Int?
    /// What the outputs mean; nil: the model's own (our exports), else `pred_res_noise` (the official default) for
    /// two-output networks. One-output networks (`share_encoder` −1) need `pred_res` or `pred_noise` said.
    public var objective: RDDMObjective?
    /// The largest tile side in pixels, every step in overlapping tiles blended with feathered weights (the middle
    /// attention is global, so tiles are close to, not equal to, the whole image); 0: the whole image at once.
    public var tile = RDDMOptions.defaultTile
    public var overlap = RDDMOptions.defaultOverlap
    /// `--simulate`: the input is clean; degrade it first (`SimulatedDegradation`) and report PSNR/SSIM.
    public var simulate: String?
    public var maxPixels: Int = ImageReader.defaultMaxPixels

    public static let defaultTile = 256
    public static let defaultOverlap = 32

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var o = RDDMOptions()
        o.steps = try c.decodeIfPresent(Int.self, forKey: .steps)
        o.objective = try c.decodeIfPresent(RDDMObjective.self, forKey: .objective)
        o.tile = try c.decodeIfPresent(Int.self, forKey: .tile) ?? o.tile
        o.overlap = try c.decodeIfPresent(Int.self, forKey: .overlap) ?? o.overlap
        o.simulate = try c.decodeIfPresent(String.self, forKey: .simulate)
        o.maxPixels = try c.decodeIfPresent(Int.self, forKey: .maxPixels) ?? o.maxPixels
        self = o
    }

    public func validate() throws {
        if let steps, steps < 1 || steps > 100_000 { throw RestorationError("--steps must be at least 1 (and at most the model's T)") }
        if tile != 0, tile < 32 { throw RestorationError("--tile must be 0 (whole image) or at least 32") }
        if tile != 0, overlap < 0 || overlap >= tile { throw RestorationError("--overlap must be between 0 and --tile − 1") }
        if let simulate { _ = try SimulatedDegradation(parsing: simulate) }
    }
}

/// RDDM (Liu et al., CVPR 2024): restoration from x_T = I_in + √sum_scale·z by the network's residual and noise
/// predictions, at the input's own size (the official code resizes every image to 256²; here the image is
/// reflect-padded to the network's size multiple, restored, and cropped; large images run every step in tiles).
///
/// Concurrency: as the other pipelines (immutable; one request at a time per network).
public struct RDDMPipeline {
    public let model: LoadedRDDM
    public let options: RDDMOptions
    public let steps: Int
    public let objective: RDDMObjective
    let degradation: SimulatedDegradation?

    public init(model: LoadedRDDM, options: RDDMOptions) throws {
        try options.validate()
        let c = model.configuration
        guard c.conditionImages == 1 else {
            throw RestorationError(c.conditionImages == 0
                ? "\(model.name) is an unconditional (generation) RDDM model; restore rddm needs a restoration model (input cat(x_t, I_in))"
                : "\(model.name) takes a third condition image (input_condition, e.g. a shadow mask), which restore rddm does not provide")
        }
        steps = options.steps ?? model.samplingSteps
        guard steps <= model.schedule.timesteps else {
            throw RestorationError("--steps \(steps): this model has T = \(model.schedule.timesteps) steps at most")
        }
        let chosen = options.objective ?? model.objective ?? (c.outputCount == 2 ? .predResNoise : nil)
        guard let chosen else {
            throw RestorationError("\(model.name) has one output (share_encoder −1): say what it predicts with --objective pred_res or pred_noise")
        }
        guard chosen.networkOutputs <= c.outputCount else {
            throw RestorationError("--objective \(chosen.rawValue) needs two outputs; \(model.name) has one (use pred_res or pred_noise)")
        }
        if c.outputCount == 2, chosen.networkOutputs == 1 {
            throw RestorationError("--objective \(chosen.rawValue) reads one output; \(model.name) has two (use pred_res_noise, pred_res_add_noise, pred_x0_noise or pred_x0_add_noise)")
        }
        objective = chosen
        degradation = try options.simulate.map { try SimulatedDegradation(parsing: $0) }
        self.model = model
        self.options = options
    }

    /// Restores `image` (or, with `options.simulate`, a degraded copy of it); the start noise is the seeded stream `seed`.
    public func restore(_ image: Image, name: String, seed: UInt64, panels: RestorationPanels = [],
                        context: RestorationContext = RestorationContext()) throws -> RestorationResult {
        let start = Date()
        let c = model.configuration
        let (color, alpha) = image.splittingAlpha()
        let rgb = color.channels == c.channels ? color : color.channels == 1 && c.channels == 3 ? color.expandingGrayToRGB() : color
        guard rgb.channels == c.channels else {
            throw RestorationError("\(model.name) restores \(c.channels)-channel images; \(name) has \(rgb.channels)")
        }
        var input = try Observations.tensor(rgb)  // [-1, 1]
        var clean: Tensor?, observation: Tensor?
        if let degradation {
            clean = input
            input = try degradation.apply(input, seed: seed)
            if panels.contains(.observation) { observation = input }
        }
        let (h, w) = (input.shape[1], input.shape[2])
        let multiple = c.sizeMultiple
        let padH = (multiple - h % multiple) % multiple, padW = (multiple - w % multiple) % multiple
        let reflects = padH < h && padW < w
        let padded = padH == 0 && padW == 0 ? input
            : try pad(input, left: 0, right: padW, top: 0, bottom: padH, mode: reflects ? .reflect : .replicate)
        let (ph, pw) = (padded.shape[1], padded.shape[2])
        let tileSide = options.tile == 0 ? max(ph, pw) : max(multiple, options.tile / multiple * multiple)
        let tiles = try EvenTiles(maxTile: tileSide, overlap: options.tile == 0 ? 0 : min(options.overlap, tileSide - 1), multiple: multiple)
        let tileCount = tiles.count(height: ph, width: pw)
        let label = (name as NSString).lastPathComponent
        context.emit(.stage(label: label, total: steps))
        let network = model.network, outputs = c.outputCount, channels = c.channels
        let sampler = RDDMSampler(schedule: model.schedule, objective: objective, conditional: true)
        var noise = SeededGaussian(seed: seed)
        let (_, result) = try sampler.sample(input: padded, shape: padded.shape, steps: steps, noise: &noise, predict: { x, t in
            try context.checkCancellation()
            let stacked = try tiles.run(try concatenateChannels([x, padded]), scale: 1, outputChannels: outputs * channels) { patch, _, _ in
                try context.checkCancellation()
                let out = try network(patch, timesteps: [Float(t)])
                return out.count == 1 ? out[0] : try concatenateChannels(out)
            }
            return outputs == 1 ? [stacked] : try splitChannels(stacked, sizes: Array(repeating: channels, count: outputs))
        }, progress: { step, total in
            context.emit(.step(done: step, total: total, note: tileCount > 1 ? "\(tileCount) tiles" : nil))
        })
        var restored = padH != 0 || padW != 0 ? try result.crop(PixelRect(y: 0, x: 0, height: h, width: w)) : result
        restored = try clamp(restored, to: -1...1)

        var report = RestorationReport(method: "rddm", seed: seed)
        report.steps = steps
        report.objective = objective.rawValue
        report.sumScale = model.schedule.sumScale
        report.model = model.name
        report.modelSHA256 = model.sha256
        report.modelKind = model.kind
        report.networkEvaluations = steps * tileCount
        report.tiling = tileCount > 1 ? "\(tileCount) tiles of \(tiles.layout(pw).size)×\(tiles.layout(ph).size) px (at most \(tileSide)), overlap ≥ \(options.overlap), feathered, every step" : "whole image"
        report.patches = tileCount
        report.padded = padH != 0 || padW != 0 ? "\(w)×\(h) → \(pw)×\(ph) (\(reflects ? "reflect" : "replicate"))" : nil
        report.input = label
        report.elapsedSeconds = Date().timeIntervalSince(start)
        report.secondsPerStep = report.elapsedSeconds.map { $0 / Double(steps) }
        if let clean, let degradation {
            report.simulated = degradation.description
            report.psnr = Quality.psnr(restored, clean)
            report.ssim = Quality.ssim(restored, clean)
            report.inputPSNR = Quality.psnr(input, clean)
            report.inputSSIM = Quality.ssim(input, clean)
        }
        var out = RestorationResult(image: restored, alpha: alpha, sourceBitDepth: image.sourceBitDepth, report: report, observation: observation)
        out.observationLabel = "observation (\(degradation?.description ?? "input"))"
        return out
    }
}
