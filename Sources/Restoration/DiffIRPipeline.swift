import Checkpoints
import Engine
import Foundation
import ImageIO
import Methods
import Networks
import Operators
import Tiling

/// A DiffIR stage-2 network with its IPR diffusion, loaded once and shared.
public final class LoadedDiffIR: @unchecked Sendable {
    public let network: DiffIRNetwork
    public let diffusion: IPRDiffusion
    public let name: String
    public let sha256: String
    /// "own" (our export, configuration in the metadata) or "official" (detected from the keys and shapes).
    public let kind: String
    public let loadSeconds: Double
    public var configuration: DiffIRConfiguration { network.configuration }

    init(network: DiffIRNetwork, diffusion: IPRDiffusion, name: String, sha256: String, kind: String, loadSeconds: Double) {
        (self.network, self.diffusion, self.name, self.sha256, self.kind, self.loadSeconds) = (network, diffusion, name, sha256, kind, loadSeconds)
    }

    /// Loads `path` (default: the bundled ×4 model). An official file's schedule buffers must be the schedule
    /// its configuration describes (they are what the official sampler uses).
    public static func load(path given: String?) throws -> LoadedDiffIR {
        let started = Date()
        let path = try given ?? BundledModels.locate(BundledModels.defaultDiffIR)
        let loaded: DiffIRLoader.Loaded
        do {
            loaded = try DiffIRLoader.load(path: path)
        } catch let error as CheckpointError {
            throw RestorationError("\((path as NSString).lastPathComponent): \(error)")
        }
        let c = loaded.configuration
        let diffusion = try IPRDiffusion(timesteps: c.timesteps, linearStart: c.linearStart, linearEnd: c.linearEnd)
        let ours = diffusion.buffers
        for (key, values) in loaded.scheduleBuffers {
            guard let expected = ours[key] else { throw RestorationError("\(path): unknown schedule buffer diffusion.\(key)") }
            guard values.count == expected.count,
                  zip(values, expected).allSatisfy({ abs($0 - $1) <= 1e-5 * max(1, abs($1)) }) else {
                throw RestorationError("\(path): diffusion.\(key) does not match the schedule T \(c.timesteps), β \(c.linearStart)…\(c.linearEnd)")
            }
        }
        return LoadedDiffIR(network: loaded.network, diffusion: diffusion, name: (path as NSString).lastPathComponent, sha256: try SHA256.hex(ofFile: path),
                            kind: loaded.checkpoint.metadata["family"] == ModelCatalog.ownDiffIRFamily ? "own" : "official",
                            loadSeconds: Date().timeIntervalSince(started))
    }

    public func summary() -> String {
        let c = configuration
        return String(format: "diffir: %@ (%@, %@, dim %d, %@) loaded in %.1f s", name, kind, c.presetName ?? "custom", c.dim, c.task.rawValue, loadSeconds)
    }
}

/// DiffIR's options. The official script runs the whole image at once; `tile` restores DIRformer in overlapping
/// tiles blended with feathered weights instead (its attention is global over positions, so tiles are close to,
/// not equal to, the whole-image result: see Benchmarks/QUALITY.md), with the IPR always from the whole image.
public struct DiffIROptions: Codable, Sendable, Equatable {
    /// What the model must do (sr4, sr2, sr1, deblur); nil: whatever it does (the task is read from the weights).
    public var task: DiffIRTask?
    /// The largest tile side in input pixels (a multiple of the model's size multiple); tiles are spread evenly, all of
    /// one size, overlapping by at least `overlap` (`EvenTiles`); 0 = the whole image at once.
    public var tile = DiffIROptions.defaultTile
    /// Overlap between neighbouring tiles, input pixels.
    public var overlap = DiffIROptions.defaultOverlap
    public var maxPixels: Int = ImageReader.defaultMaxPixels

    /// 144: a 256² input runs as 2×2 tiles (1.3× the whole image's work, 2.7 s for ×4 on 2 cores) while every
    /// tile of a large image stays as small as a 128² input's whole-image pass (Benchmarks/QUALITY.md, RESULTS.md).
    public static let defaultTile = 144
    public static let defaultOverlap = 32

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var o = DiffIROptions()
        o.task = try c.decodeIfPresent(DiffIRTask.self, forKey: .task)
        o.tile = try c.decodeIfPresent(Int.self, forKey: .tile) ?? o.tile
        o.overlap = try c.decodeIfPresent(Int.self, forKey: .overlap) ?? o.overlap
        o.maxPixels = try c.decodeIfPresent(Int.self, forKey: .maxPixels) ?? o.maxPixels
        self = o
    }

    public func validate() throws {
        if tile != 0, tile < 32 { throw RestorationError("--tile must be 0 (whole image) or at least 32") }
        if tile != 0, overlap < 0 || overlap >= tile { throw RestorationError("--overlap must be between 0 and --tile − 1") }
    }
}

/// What DiffIR restores from: a degraded image, or in simulate mode a clean image that the pipeline shrinks first
/// (the project's bicubic:s, rounded to 8 bits).
public enum DiffIRInput {
    case image(Image)
    case simulate(clean: Image)
}

/// DiffIR (Xia et al., ICCV 2023): CPEN compresses the input into a condition, a 4-step diffusion on a 256-d
/// prior representation (IPR) starts from seeded noise, DIRformer restores the image under the IPR in one pass.
///
/// As `inference_diffir.py`: the input in [0, 1] is reflect-padded to the size multiple (8 for ×4, 16 for ×2, 32
/// for ×1), restored, and cropped. Large inputs: CPEN's features are computed in tiles with a halo covering their
/// receptive field and averaged exactly over the whole (padded) image; DIRformer runs in tiles (`tile`, `overlap`).
///
/// Concurrency: as the other pipelines (immutable; one request at a time per network).
public struct DiffIRPipeline {
    public let model: LoadedDiffIR
    public let options: DiffIROptions
    /// The largest DIRformer tile in input pixels (0: whole image): the option, with the default rounded up to the
    /// model's size multiple (144 → 160 for the ×1 model).
    public let tile: Int

    public init(model: LoadedDiffIR, options: DiffIROptions) throws {
        try options.validate()
        if let task = options.task, task != model.configuration.task {
            throw RestorationError("--task \(task.rawValue): \(model.name) does \(model.configuration.task.rawValue) (the task is read from the weights)")
        }
        let multiple = model.configuration.sizeMultiple
        tile = options.tile == DiffIROptions.defaultTile ? (options.tile + multiple - 1) / multiple * multiple : options.tile
        if tile != 0, tile % multiple != 0 {
            throw RestorationError("--tile \(options.tile) must be a multiple of \(multiple) for this model (\(model.configuration.task.rawValue))")
        }
        self.model = model
        self.options = options
    }

    /// The IPR condition c = CPEN(image) ([1, 256]) of a [1, H, W, 3] image in [0, 1], in tiles of at most
    /// `tile` pixels (plus the halo) so memory stays bounded; the same as the whole-image CPEN up to summation order.
    func condition(_ image: Tensor, tile: Int) throws -> Tensor {
        let encoder = model.network.condition
        let (_, h, w, _) = try image.nhwc("CPEN")
        let unit = encoder.unshuffleFactor
        let halo = encoder.receptiveRadius * unit
        let step = max(unit, (max(tile, 64) / unit) * unit)
        var sums = [Double](repeating: 0, count: 256)
        for y in stride(from: 0, to: h, by: step) {
            for x in stride(from: 0, to: w, by: step) {
                let interior = PixelRect(y: y, x: x, height: min(step, h - y), width: min(step, w - x))
                let y0 = max(0, y - halo), x0 = max(0, x - halo)
                let y1 = min(h, interior.y + interior.height + halo), x1 = min(w, interior.x + interior.width + halo)
                let crop = try image.crop(PixelRect(y: y0, x: x0, height: y1 - y0, width: x1 - x0))
                let part = try encoder.featureSum(crop, interior: PixelRect(y: y - y0, x: x - x0, height: interior.height, width: interior.width))
                for j in 0..<256 { sums[j] += part[j] }
            }
        }
        let count = Double((h / unit) * (w / unit))
        return try encoder.head(mean: sums.map { Float($0 / count) })
    }

    /// Restores `input`; IPR₀ is drawn from the seeded stream `seed`.
    public func restore(_ input: DiffIRInput, name: String, seed: UInt64, panels: RestorationPanels = [],
                        context: RestorationContext = RestorationContext()) throws -> RestorationResult {
        let start = Date()
        let c = model.configuration
        let image: Image
        switch input {
        case .image(let i): image = i
        case .simulate(let clean): image = clean
        }
        let (color, alpha) = image.splittingAlpha()
        let rgb = color.channels == 3 ? color : color.expandingGrayToRGB()
        var lq = try Observations.tensor(rgb)  // [-1, 1]
        var clean: Tensor?, observation: Tensor?
        let factor = c.task.scale
        if case .simulate = input {
            guard factor > 1 else { throw RestorationError("--simulate is for the super-resolution tasks (×2, ×4); this model does \(c.task.rawValue)") }
            clean = lq
            lq = try SimulatedSuperResolution.shrink(lq, factor: factor, name: name)
            if panels.contains(.observation) { observation = lq }
        }
        let (inH, inW) = (lq.shape[1], lq.shape[2])
        let (outH, outW) = (inH * factor, inW * factor)
        guard outW * outH <= 1 << 28 else { throw RestorationError("a \(outW)×\(outH) output is too large (limit 2^28 pixels) (\(name))") }
        // [0, 1], reflect-padded to the size multiple (replicate where the image is too small to reflect).
        let x01 = try scale01(lq)
        let multiple = c.sizeMultiple
        let padH = (multiple - inH % multiple) % multiple, padW = (multiple - inW % multiple) % multiple
        let reflects = padH < inH && padW < inW
        let padded = padH == 0 && padW == 0 ? x01
            : try pad(x01, left: 0, right: padW, top: 0, bottom: padH, mode: reflects ? .reflect : .replicate)
        let (ph, pw) = (padded.shape[1], padded.shape[2])

        let tiles = try EvenTiles(maxTile: tile == 0 ? max(ph, pw) : tile, overlap: tile == 0 ? 0 : options.overlap,
                                  multiple: multiple)
        let tileCount = tiles.count(height: ph, width: pw)
        let tiled = tileCount > 1
        let label = (name as NSString).lastPathComponent
        let total = 1 + c.timesteps + tileCount
        context.emit(.stage(label: label, total: total))
        try context.checkCancellation()
        let condition = try self.condition(padded, tile: tile == 0 ? max(ph, pw) : tile)
        context.emit(.step(done: 1, total: total, note: "condition"))
        var noise = SeededGaussian(seed: seed)
        let ipr0 = try noise.next(shape: [1, 256])
        let denoiser = model.network.denoiser
        var done = 1
        let ipr = try model.diffusion.sample(from: ipr0, predict: { x, t in
            try context.checkCancellation()
            return try denoiser(x, t: t, condition: condition)
        }, observe: { _, _ in
            done += 1
            context.emit(.step(done: done, total: total, note: "IPR diffusion"))
        })
        let generator = model.network.generator
        let modulations = try generator.modulations(ipr)
        var restored = try tiles.run(padded, scale: factor, outputChannels: 3) { patch, index, count in
            try context.checkCancellation()
            let out = try generator(patch, modulations: modulations)
            context.emit(.step(done: 1 + c.timesteps + index + 1, total: total, note: count > 1 ? "tile \(index + 1)/\(count)" : nil))
            return out
        }
        if padH != 0 || padW != 0 { restored = try restored.crop(PixelRect(y: 0, x: 0, height: outH, width: outW)) }
        // Back to [-1, 1], clamped (basicsr's tensor2img clamps to [0, 1]); in place: no second output-sized buffer.
        for i in 0..<restored.count { restored.data[i] = min(1, max(-1, restored.data[i] * 2 - 1)) }

        let elapsed = Date().timeIntervalSince(start)
        var report = RestorationReport(method: "diffir", seed: seed)
        report.task = c.task.rawValue
        report.steps = c.timesteps
        report.model = model.name
        report.modelSHA256 = model.sha256
        report.modelKind = model.kind
        report.scale = factor
        report.tiling = tiled ? "\(tileCount) tiles of \(tiles.layout(pw).size)×\(tiles.layout(ph).size) input px (at most \(tile)), overlap ≥ \(options.overlap), feathered; IPR from the whole image" : "whole image"
        report.patches = tileCount
        report.padded = padH != 0 || padW != 0 ? "\(inW)×\(inH) → \(pw)×\(ph) (\(reflects ? "reflect" : "replicate"))" : nil
        report.input = label
        report.elapsedSeconds = elapsed
        if let clean { try SimulatedSuperResolution.measure(restored, input: lq, clean: clean, factor: factor, into: &report) }
        var result = RestorationResult(image: restored, alpha: alpha.map { $0.resized(width: outW, height: outH) }, sourceBitDepth: image.sourceBitDepth,
                                       report: report, observation: observation)
        result.observationLabel = "observation (bicubic:\(factor) of the input)"
        return result
    }

    /// [-1, 1] → [0, 1].
    private func scale01(_ x: Tensor) throws -> Tensor { try scale(x, by: 0.5, adding: 0.5) }
}
