import Checkpoints
import Engine
import Foundation
import ImageIO
import Methods
import Networks
import Operators
import Tiling

/// DDNM's options with the official defaults (wyhuai/DDNM: η 0.85, the SVD path, no clipping), plus USDR's
/// tiling. `Codable`: a job file or an HTTP body decodes straight into them; absent keys take the defaults.
public struct DDNMOptions: Codable, Sendable, Equatable {
    /// The degradation operator A, e.g. "pool:4", "gray", "mask:holes.png", "mask:m.png,gray,pool:2".
    public var degradation: String
    /// Observation noise σy on the [0, 1] image scale (DDNM+); 0 = noise-free DDNM, except that a `noise`
    /// degradation with σy 0 estimates σy from each observation (`NoiseEstimate`) rather than return y unchanged.
    public var sigmaY: Float = 0
    /// Sampling steps T_sampling (of the 1000 training steps).
    public var steps: Int = 100
    /// DDIM stochasticity η (nil: the model card's recommendation, else the official 0.85).
    public var eta: Float?
    /// Clamp each x0 prediction to [-1, 1] (guided-diffusion's and hq_demo's habit; the official DDNM does not).
    public var clipX0 = false
    /// Time-travel length L and repeat r (1, 1 = none).
    public var travelLength = 1
    public var travelRepeat = 1
    /// svd (official default), simplified (diffusion.py's simplified path, quirks included) or paper.
    public var variant: String = DDNMSampler.Variant.svd.rawValue
    /// msr (USDR mask-shift windows) or naive (independent tiles, for comparison).
    public var tiling: String = MaskShiftRestoration.Tiling.msr.rawValue
    /// Window side (default and maximum: the prior's native size; setting it forces tiling), overlap, margin, feather.
    public var window: Int?
    public var overlap: Int?
    public var margin: Int?
    public var feather: Int?
    /// USDR's hierarchical pass when tiling.
    public var hir = true
    /// Windows of one wave through one network evaluation when tiling. Every window draws its own noise, so
    /// the image is the same bits for any value where oneDNN runs its AVX-512 kernels; its AVX2 convolutions
    /// (AVX2-only CPUs, `DR_MAX_ISA=avx2`) round a batch of 16 differently from one sample, and sampling
    /// amplifies that, so only 1 gives the same image everywhere. 1 by default: on the 64² prior a batch
    /// of 8 was no faster on Zen 4, AVX-512 or AVX2 kernels alike (Benchmarks/RESULTS.md), and takes more memory.
    public var windowBatch = 1
    /// Run one stage of a tiled restoration spread over processes (`SpreadStage`; nil: the whole run here).
    public var spread: SpreadStage?
    /// Read masks the official DDNM way (white = keep).
    public var maskKeepWhite = false
    /// The official operators' quirks (blur matrices with k − 1 of k taps).
    public var referenceExact = false
    /// Class id for a class-conditional prior.
    public var classID: Int?
    /// The largest mask or kernel image read, in pixels.
    public var maxPixels: Int = ImageReader.defaultMaxPixels

    public init(degradation: String) { self.degradation = degradation }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var o = DDNMOptions(degradation: try c.decode(String.self, forKey: .degradation))
        o.sigmaY = try c.decodeIfPresent(Float.self, forKey: .sigmaY) ?? o.sigmaY
        o.steps = try c.decodeIfPresent(Int.self, forKey: .steps) ?? o.steps
        o.eta = try c.decodeIfPresent(Float.self, forKey: .eta)
        o.clipX0 = try c.decodeIfPresent(Bool.self, forKey: .clipX0) ?? o.clipX0
        o.travelLength = try c.decodeIfPresent(Int.self, forKey: .travelLength) ?? o.travelLength
        o.travelRepeat = try c.decodeIfPresent(Int.self, forKey: .travelRepeat) ?? o.travelRepeat
        o.variant = try c.decodeIfPresent(String.self, forKey: .variant) ?? o.variant
        o.tiling = try c.decodeIfPresent(String.self, forKey: .tiling) ?? o.tiling
        o.window = try c.decodeIfPresent(Int.self, forKey: .window)
        o.overlap = try c.decodeIfPresent(Int.self, forKey: .overlap)
        o.margin = try c.decodeIfPresent(Int.self, forKey: .margin)
        o.feather = try c.decodeIfPresent(Int.self, forKey: .feather)
        o.hir = try c.decodeIfPresent(Bool.self, forKey: .hir) ?? o.hir
        o.windowBatch = try c.decodeIfPresent(Int.self, forKey: .windowBatch) ?? o.windowBatch
        o.spread = try c.decodeIfPresent(SpreadStage.self, forKey: .spread)
        o.maskKeepWhite = try c.decodeIfPresent(Bool.self, forKey: .maskKeepWhite) ?? o.maskKeepWhite
        o.referenceExact = try c.decodeIfPresent(Bool.self, forKey: .referenceExact) ?? o.referenceExact
        o.classID = try c.decodeIfPresent(Int.self, forKey: .classID)
        o.maxPixels = try c.decodeIfPresent(Int.self, forKey: .maxPixels) ?? o.maxPixels
        self = o
    }

    /// The checks a command line or a request gets before any work, with the same one-line messages.
    public func validate() throws {
        guard (0...1).contains(sigmaY) else { throw RestorationError("--sigma-y must be between 0 and 1") }
        guard (0...1).contains(eta ?? 0) else { throw RestorationError("--eta must be between 0 and 1") }
        guard (1...1000).contains(steps) else { throw RestorationError("--steps must be between 1 and 1000") }
        guard travelLength >= 1, travelRepeat >= 1 else { throw RestorationError("--travel takes L,R with integers ≥ 1, e.g. 2,2") }
        guard DDNMSampler.Variant(rawValue: variant) != nil else { throw RestorationError("unknown DDNM variant \(variant) (svd, simplified, paper)") }
        guard MaskShiftRestoration.Tiling(rawValue: tiling) != nil else { throw RestorationError("unknown tiling \(tiling) (msr, naive)") }
        guard (1...256).contains(windowBatch) else { throw RestorationError("--window-batch must be between 1 and 256") }
    }
}

/// What DDNM restores from: an observed image (y at its own size), a coefficient vector (compressed sensing),
/// or, in simulate mode, a clean image that the pipeline degrades first (the papers' protocol).
public enum DDNMInput {
    case image(Image)
    case coefficients(Tensor)
    case simulate(clean: Image)
}

/// A restored image with its report and the panels asked for.
public struct RestorationResult {
    /// [1, H, W, 3] on [-1, 1], clamped.
    public var image: Tensor
    /// The input's alpha plane at the output size, if it had one.
    public var alpha: AlphaPlane?
    /// The bit depth of the input image (8 for coefficient files).
    public var sourceBitDepth: Int
    public var report: RestorationReport
    /// y as an image (observations that are images only), for `--save-observation`, and what it shows.
    public var observation: Tensor?
    public var observationLabel = "observation y"
    /// A†y | restored (| original in simulate mode), for `--side-by-side`.
    public var sideBySide: Image?
    public var sideBySideLabel: String?
}

/// Which companion panels a request wants.
public struct RestorationPanels: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    public static let observation = RestorationPanels(rawValue: 1)
    public static let sideBySide = RestorationPanels(rawValue: 2)
}

/// DDNM / DDNM+ (Wang, Yu & Zhang, ICLR 2023) on a diffusion prior, with USDR's tiling (mask-shift windows and
/// the hierarchical pass) for outputs larger than the prior.
///
/// Concurrency: a pipeline is immutable after `init` (operator, sampler and the shared prior); `restore`
/// keeps all per-request state (noise stream, windows, canvas) in the call. Requests on one pipeline should be
/// run one at a time: they share the network, whose oneDNN primitives are not meant for concurrent use.
public struct DDNMPipeline {
    public let prior: LoadedPrior
    public let options: DDNMOptions
    public let degradation: any DegradationOperator
    public let sampler: DDNMSampler

    /// `attachments`: mask and kernel images by the names the degradation spec uses (`mask:holes.png` takes
    /// `attachments["holes.png"]`), for callers that hold them in memory (the service); other names are read as files.
    public init(prior: LoadedPrior, options: DDNMOptions, seed: UInt64 = 1234, attachments: [String: Image] = [:]) throws {
        try options.validate()
        try prior.check(classID: options.classID)
        let variant = DDNMSampler.Variant(rawValue: options.variant) ?? .svd
        degradation = try OperatorSpec.parse(options.degradation, path: variant == .svd ? .svd : .simplified, referenceExact: options.referenceExact, seed: seed,
                                             loadMask: { path in try MaskImage.load(path, keepWhite: options.maskKeepWhite, maxPixels: options.maxPixels, attachments: attachments) },
                                             loadKernelImage: { path in try KernelImage.load(path, maxPixels: options.maxPixels, attachments: attachments) })
        var sampler = try DDNMSampler(timesteps: try TimeTravelSchedule(samplingSteps: options.steps, travelLength: options.travelLength,
                                                                      travelRepeat: options.travelRepeat),
                                      eta: options.eta ?? prior.recommendedEta ?? 0.85, sigmaY: 2 * options.sigmaY, variant: variant)
        sampler.clipX0 = options.clipX0
        self.sampler = sampler
        self.prior = prior
        self.options = options
    }

    /// Restores one input. `name` labels events and the report; the noise stream starts at `seed`.
    public func restore(_ input: DDNMInput, name: String, seed: UInt64, panels: RestorationPanels = [],
                        context: RestorationContext = RestorationContext()) throws -> RestorationResult {
        let start = Date()
        let a = degradation
        var noise = SeededGaussian(seed: seed)
        // y (and, in simulate mode, the clean x it came from), on the [-1, 1] scale.
        let y: Tensor, clean: Tensor?, alpha: AlphaPlane?, bitDepth: Int
        switch input {
        case .coefficients(let vector):
            (y, clean, alpha, bitDepth) = (vector, nil, nil, 8)
        case .simulate(let image):
            let (color, plane) = image.splittingAlpha()
            let x = color.channels == 3 ? try Observations.tensor(color) : try Observations.tensor(color.expandingGrayToRGB())
            var observed = try a.apply(x)
            if options.sigmaY > 0 { observed = try axpby(1, observed, 2 * options.sigmaY, try noise.next(shape: observed.shape)) }
            (y, clean, alpha, bitDepth) = (observed, x, plane, image.sourceBitDepth)
        case .image(let image):
            guard !Observations.observesCoefficients(a) else {
                throw RestorationError("compressed-sensing observations are coefficient vectors: pass a .safetensors file with a tensor \"y\" [M, C], or use --simulate with a clean image (\(name))")
            }
            let (color, plane) = image.splittingAlpha()
            (y, clean, alpha, bitDepth) = (try Observations.observation(try Observations.tensor(color), for: a), nil, plane, image.sourceBitDepth)
        }
        return try restore(observation: y, clean: clean, alpha: alpha, bitDepth: bitDepth, name: name, seed: seed, noise: &noise, panels: panels,
                           context: context, start: start)
    }

    private func restore(observation given: Tensor, clean: Tensor?, alpha: AlphaPlane?, bitDepth: Int, name: String, seed: UInt64, noise: inout SeededGaussian,
                         panels: RestorationPanels, context: RestorationContext, start: Date) throws -> RestorationResult {
        let a = degradation
        let network = prior.network, nativeSize = prior.nativeSize
        let shape = try a.imageShape(for: given.shape)
        // σy of a `noise` observation given without one: estimated, never 0 (which would return y unchanged).
        var sampler = self.sampler, sigmaY = options.sigmaY, estimated = false
        if sigmaY == 0, a.spec.split(separator: ",").contains("noise"), given.shape.count == 4 {
            sigmaY = NoiseEstimate.sigma(given, scale: 0.5)
            estimated = true
            guard sigmaY > 0 else { throw RestorationError("no noise found in the image to remove (estimated σ 0, the image is \(given.shape[2])×\(given.shape[1])); give σ with --sigma (denoise) or --sigma-y (ddnm) (\(name))") }
            sampler = sampler.with(sigmaY: 2 * sigmaY)
        }
        // A flat coefficient vector (cs-block from a file) takes the operator's own layout, so windows can crop it.
        let canonical = try a.observationShape(for: shape)
        let y = canonical != given.shape && canonical.reduce(1, *) == given.count ? try given.reshaped(canonical) : given
        let tiling = MaskShiftRestoration.Tiling(rawValue: options.tiling) ?? .msr
        let tiled = tiling == .naive || shape[1] > nativeSize || shape[2] > nativeSize || options.window != nil
        let predict = prior.predictor(classID: options.classID, context: context)
        let label = (name as NSString).lastPathComponent
        let evaluations = sampler.timesteps.networkEvaluations
        var report = RestorationReport(method: "ddnm" + (sigmaY > 0 ? "+" : ""), seed: 0)
        let restored: Tensor
        if tiled {
            let usdr = USDRRestoration(sampler: sampler, nativeSize: nativeSize, sizeMultiple: network.sizeMultiple, tiling: tiling,
                                       window: options.window, overlap: options.overlap, margin: options.margin, feather: options.feather, hir: options.hir,
                                       batch: options.windowBatch)
            let outcome = try options.spread.map { spread in
                try USDRSpread.run(spread, usdr: usdr, options: options, seed: seed, observation: y, operator: a, imageShape: shape, predictNoise: predict,
                                   label: label, context: context)
            } ?? usdr.restore(observation: y, operator: a, imageShape: shape, predictNoise: predict, noise: WindowNoise(seed: seed), label: label,
                              stage: { context.emit(.stage(label: $0, total: $1)) },
                              step: { context.emit(.step(done: $0, total: $1, note: $2)) },
                              observe: context.windowObserver(imageHeight: shape[1], imageWidth: shape[2], channels: shape[3]))
            restored = outcome.image
            report.windows = outcome.windows
            report.networkEvaluations = evaluations * outcome.windows + outcome.levelEvaluations
            report.hir = outcome.hir
            report.seamMargin = outcome.seam?.margin
            report.seamFeather = outcome.seam?.feather
        } else {
            guard options.spread == nil else {
                throw RestorationError("the output \(shape[2])×\(shape[1]) fits one window of the prior: there is nothing to spread (\(name))")
            }
            guard shape[1] % network.sizeMultiple == 0, shape[2] % network.sizeMultiple == 0 else {
                throw RestorationError("the output would be \(shape[2])×\(shape[1]); this prior needs sides that are multiples of \(network.sizeMultiple) (\(name))")
            }
            context.emit(.stage(label: label, total: evaluations))
            restored = try sampler.sample(observation: y, operator: a, imageShape: shape, predictNoise: predict, noise: &noise,
                                          progress: { context.emit(.step(done: $0, total: $1, note: nil)) }, observe: context.observer())
            report.windows = 1
            report.networkEvaluations = evaluations
            report.hir = "none"
        }
        let clamped = restored
        for i in 0..<clamped.count { let v = clamped.data[i]; clamped.data[i] = v >= -1 ? min(v, 1) : -1 }  // NaN → −1
        // ‖A x̂ − y‖ and ‖(I − ÃÃ†) y‖ (RMS, [0, 1] scale), in bands or tiles for local operators.
        let (rms, irreducibleRMS) = try Consistency.measure(clamped, y, a)
        report.variant = sampler.variant.rawValue
        report.operator = a.spec
        report.sigmaY = estimated ? Double(sigmaY) : RestorationReport.decimal(options.sigmaY)
        report.sigmaYEstimated = estimated ? true : nil
        report.eta = RestorationReport.decimal(sampler.eta)
        report.clipX0 = sampler.clipX0
        report.steps = options.steps
        report.travel = "\(options.travelLength),\(options.travelRepeat)"
        report.seed = seed
        report.model = prior.name
        report.modelSHA256 = prior.sha256
        report.consistencyRMS = rms
        report.irreducibleRMS = irreducibleRMS
        report.input = label
        report.tiling = tiled ? tiling.rawValue : "none"
        report.classID = options.classID
        if let clean, clean.shape == clamped.shape {
            report.psnr = Quality.psnr(clamped, clean)
            let ssim = Quality.ssim(clamped, clean)
            if ssim.isFinite { report.ssim = ssim }  // undefined below 11×11 (the Gaussian window)
        }
        report.elapsedSeconds = Date().timeIntervalSince(start)
        report.secondsPerStep = Date().timeIntervalSince(start) / Double(max(report.networkEvaluations ?? 1, 1))
        var result = RestorationResult(image: clamped, alpha: alpha.map { $0.width == shape[2] && $0.height == shape[1] ? $0 : $0.resized(width: shape[2], height: shape[1]) },
                                       sourceBitDepth: bitDepth, report: report)
        if panels.contains(.observation), y.shape[1] > 0, y.shape[2] > 0, [1, 3].contains(y.shape[3]), !Observations.observesCoefficients(a) {
            result.observation = try clamp(y, to: -1...1)
        }
        if panels.contains(.sideBySide) {
            result.sideBySide = try Observations.sideBySide([try a.pseudoInverse(y), clamped] + (clean.map { [$0] } ?? []))
            result.sideBySideLabel = clean == nil ? "A†y | restored" : "A†y | restored | original"
        }
        return result
    }
}
