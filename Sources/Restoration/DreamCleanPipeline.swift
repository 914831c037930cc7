import Engine
import Foundation
import ImageIO
import Methods
import Operators
import Tiling

/// DreamClean's options. No official code exists: τ and γ are provisional defaults chosen on hold-out photos
/// (README, DreamClean); steps default to 30 blind and 20 with a known degradation (the paper's settings).
public struct DreamCleanOptions: Codable, Sendable, Equatable {
    /// Inverse strength τ: the timestep (1–999) the DDIM inversion reaches.
    public var tau = 50
    /// VPS step γ in [0, 1).
    public var gamma: Float = 0.1
    /// VPS iterations M per sampling step.
    public var vpsIterations = 1
    /// DDIM inversion and sampling steps (nil: 30 blind, 20 with a degradation).
    public var inversionSteps: Int?
    public var steps: Int?
    /// A known degradation (the paper's Ours*): adds DDNM's range–null correction.
    public var degradation: String?
    /// Window side and overlap of the tiled ε for images larger than the prior.
    public var window: Int?
    public var overlap: Int?
    public var maskKeepWhite = false
    public var classID: Int?
    public var maxPixels: Int = ImageReader.defaultMaxPixels

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var o = DreamCleanOptions()
        o.tau = try c.decodeIfPresent(Int.self, forKey: .tau) ?? o.tau
        o.gamma = try c.decodeIfPresent(Float.self, forKey: .gamma) ?? o.gamma
        o.vpsIterations = try c.decodeIfPresent(Int.self, forKey: .vpsIterations) ?? o.vpsIterations
        o.inversionSteps = try c.decodeIfPresent(Int.self, forKey: .inversionSteps)
        o.steps = try c.decodeIfPresent(Int.self, forKey: .steps)
        o.degradation = try c.decodeIfPresent(String.self, forKey: .degradation)
        o.window = try c.decodeIfPresent(Int.self, forKey: .window)
        o.overlap = try c.decodeIfPresent(Int.self, forKey: .overlap)
        o.maskKeepWhite = try c.decodeIfPresent(Bool.self, forKey: .maskKeepWhite) ?? o.maskKeepWhite
        o.classID = try c.decodeIfPresent(Int.self, forKey: .classID)
        o.maxPixels = try c.decodeIfPresent(Int.self, forKey: .maxPixels) ?? o.maxPixels
        self = o
    }
}

/// DreamClean (training-free, degradation-agnostic): DDIM inversion to τ, then Variance-Preserving Sampling
/// back, with DDNM's correction when the degradation is known. Images larger than the prior run through a
/// tiled ε that blends overlapping windows at every step.
///
/// Concurrency: as `DDNMPipeline` (immutable; per-request state in `restore`; one request at a time per network).
public struct DreamCleanPipeline {
    public let prior: LoadedPrior
    public let options: DreamCleanOptions
    public let degradation: (any DegradationOperator)?
    public let sampler: DreamCleanSampler

    /// `attachments`: mask and kernel images by the names the degradation spec uses (see `DDNMPipeline`).
    public init(prior: LoadedPrior, options: DreamCleanOptions, attachments: [String: Image] = [:]) throws {
        let defaultSteps = options.degradation == nil ? 30 : 20
        do {
            sampler = try DreamCleanSampler(tau: options.tau, inversionSteps: options.inversionSteps ?? defaultSteps, samplingSteps: options.steps ?? defaultSteps,
                                            gamma: options.gamma, vpsIterations: options.vpsIterations)
        } catch let error as SamplerError { throw RestorationError(error.description) }
        degradation = try options.degradation.map {
            try OperatorSpec.parse($0, loadMask: { path in try MaskImage.load(path, keepWhite: options.maskKeepWhite, maxPixels: options.maxPixels, attachments: attachments) },
                                   loadKernelImage: { path in try KernelImage.load(path, maxPixels: options.maxPixels, attachments: attachments) })
        }
        if let a = degradation, Observations.observesCoefficients(a) {
            throw RestorationError("dreamclean takes image observations; compressed sensing is not supported here")
        }
        try prior.check(classID: options.classID)
        self.prior = prior
        self.options = options
    }

    /// Restores one degraded image (with a degradation: the observation y at its own size).
    public func restore(_ image: Image, name: String, seed: UInt64, context: RestorationContext = RestorationContext()) throws -> RestorationResult {
        let start = Date()
        let network = prior.network
        let (color, alpha) = image.splittingAlpha()
        let observed = try Observations.tensor(color)
        var start0: Tensor
        var y: Tensor?
        if let a = degradation {
            let projected = try Observations.observation(observed, for: a)
            y = projected
            start0 = try a.pseudoInverse(projected)  // invert A†y, the image-sized point consistent with y
        } else {
            start0 = color.channels == 3 ? observed : try Observations.tensor(color.expandingGrayToRGB())
        }
        let shape = start0.shape
        guard shape[1] % network.sizeMultiple == 0, shape[2] % network.sizeMultiple == 0 else {
            throw RestorationError("the image is \(shape[2])×\(shape[1]); this prior needs sides that are multiples of \(network.sizeMultiple) (\(name))")
        }
        let side = min(options.window ?? prior.nativeSize, prior.nativeSize)
        let tiles = TiledNoisePredictor(window: side, overlap: options.overlap, sizeMultiple: network.sizeMultiple)
        let predict = tiles.wrap(prior.predictor(classID: options.classID, context: context))
        var noise = SeededGaussian(seed: seed)
        let label = (name as NSString).lastPathComponent
        context.emit(.stage(label: label, total: sampler.networkEvaluations))
        let correction: ((Tensor) throws -> Tensor)? = degradation.map { op in { x0 in try op.rangeNullCorrection(x0, observation: y!) } }
        let restored = try sampler.restore(start0, predictNoise: predict, noise: &noise, correction: correction,
                                           progress: { context.emit(.step(done: $0, total: $1, note: nil)) }, observe: context.observer())
        let clamped = try clamp(restored, to: -1...1)
        var report = RestorationReport(method: "dreamclean" + (degradation == nil ? "" : "*"), seed: seed)
        report.tau = options.tau
        report.windows = try tiles.windowCount(height: shape[1], width: shape[2])
        report.gamma = RestorationReport.decimal(options.gamma)
        report.vpsIterations = options.vpsIterations
        report.inversionSteps = sampler.inversionSteps
        report.steps = sampler.samplingSteps
        report.networkEvaluations = sampler.networkEvaluations
        report.model = prior.name
        report.modelSHA256 = prior.sha256
        report.input = label
        report.provisionalDefaults = true
        report.classID = options.classID
        report.elapsedSeconds = Date().timeIntervalSince(start)
        report.secondsPerEvaluation = Date().timeIntervalSince(start) / Double(max(sampler.networkEvaluations, 1))
        if let a = degradation, let y {
            report.operator = a.spec
            let residual = try subtract(try a.apply(clamped), y)
            report.consistencyRMS = (residual.values.reduce(0) { $0 + Double($1 * $1) } / Double(max(residual.count, 1))).squareRoot() / 2
        }
        return RestorationResult(image: clamped, alpha: alpha.map { $0.width == shape[2] && $0.height == shape[1] ? $0 : $0.resized(width: shape[2], height: shape[1]) },
                                 sourceBitDepth: image.sourceBitDepth, report: report)
    }
}
