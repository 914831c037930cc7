import ArgumentParser
import Checkpoints
import Engine
import Foundation
import ImageIO
import Methods
import Networks
import Operators

/// `restore dreamclean`: degradation-agnostic restoration by DDIM inversion and Variance-Preserving Sampling.
struct DreamCleanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dreamclean",
        abstract: "Restore without knowing the degradation (DreamClean: DDIM inversion + Variance-Preserving Sampling).",
        discussion: """
            The degraded image is inverted by DDIM to the timestep τ of the prior, then sampled back with one \
            VPS correction (γ) before each DDIM step: 30 + 30×2 = 90 network evaluations by default, as the \
            paper's blind setting. With --degradation (the paper's "Ours*"), each x0 prediction also gets \
            DDNM's range–null correction, so the result is consistent with the observation; the input is then \
            the observation y (e.g. the small image for pool:4), and 20 + 20×2 = 60 evaluations are used unless \
            --steps/--inversion-steps say otherwise. No official code exists: τ and γ are provisional defaults \
            (README, DreamClean). Images larger than the prior run through a tiled ε-function that blends \
            overlapping windows at every step.
            """
    )

    @OptionGroup var io: ImageIOOptions

    @OptionGroup var prior: PriorOptions

    @Option(help: "Inverse strength τ: the timestep (1–999) the DDIM inversion reaches (provisional default, chosen on hold-out photos).")
    var tau: Int = 50

    @Option(help: "VPS step γ in [0, 1) (0 = plain DDIM inversion and sampling; provisional default, chosen on hold-out photos).")
    var gamma: Float = 0.1

    @Option(help: "VPS iterations M per sampling step (the paper uses 1).")
    var vpsIters: Int = 1

    @Option(help: "DDIM inversion steps (default 30 blind, 20 with --degradation).")
    var inversionSteps: Int?

    @Option(help: "DDIM sampling steps from τ back to 0 (default 30 blind, 20 with --degradation).")
    var steps: Int?

    @Option(help: "A known degradation (the paper's Ours*), e.g. pool:4 or gray: adds DDNM's range–null correction.")
    var degradation: String?

    @Option(help: "Random seed (VPS noise).")
    var seed: UInt64 = 1234

    @Option(help: "Window side for images larger than the prior (default: the native size).")
    var window: Int?

    @Option(help: "Overlap of the ε windows in pixels (default: half a window).")
    var overlap: Int?

    @Flag(help: "Read mask images the official DDNM way: white (255) = keep.")
    var maskKeepWhite = false

    func run() throws {
        try failingCleanly {
            let defaultSteps = degradation == nil ? 30 : 20
            let sampler: DreamCleanSampler
            do {
                sampler = try DreamCleanSampler(tau: tau, inversionSteps: inversionSteps ?? defaultSteps, samplingSteps: steps ?? defaultSteps,
                                                gamma: gamma, vpsIterations: vpsIters)
            } catch let error as SamplerError { throw CommandFailure(error.description) }
            let a = try degradation.map {
                try OperatorSpec.parse($0, loadMask: { path in try MaskImage.load(path, keepWhite: maskKeepWhite, maxPixels: io.maxPixels) },
                                       loadKernelImage: { path in try KernelImage.load(path, maxPixels: io.maxPixels) })
            }
            let jobs = try io.jobs()
            let loaded = try prior.load(command: "dreamclean", quiet: io.quiet)
            let network = loaded.network
            let native = loaded.nativeSize
            let direct = prior.predictor(network)
            let side = min(window ?? native, native)
            let predict = TiledNoisePredictor(window: side, overlap: overlap, sizeMultiple: network.sizeMultiple).wrap(direct)
            for job in jobs {
                let start = Date()
                let image = try ImageReader.read(path: job.input, maxPixels: io.maxPixels)
                let (color, alpha) = image.splittingAlpha()
                let observed = try DDNMCommand.tensor(color)
                var start0: Tensor
                var y: Tensor?
                if let a {
                    guard !DDNMCommand.observesCoefficients(a) else { throw CommandFailure("dreamclean takes image observations; compressed sensing is not supported here") }
                    let projected = try DDNMCommand.observation(observed, for: a)
                    y = projected
                    start0 = try a.pseudoInverse(projected)  // invert A†y, the image-sized point consistent with y
                } else {
                    start0 = color.channels == 3 ? observed : try DDNMCommand.tensor(color.expandingGrayToRGB())
                }
                let shape = start0.shape
                guard shape[1] % network.sizeMultiple == 0, shape[2] % network.sizeMultiple == 0 else {
                    throw CommandFailure("the image is \(shape[2])×\(shape[1]); this prior needs sides that are multiples of \(network.sizeMultiple) (\(job.input))")
                }
                var noise = SeededGaussian(seed: seed)
                let progress = ProgressBar(label: (job.input as NSString).lastPathComponent, enabled: !io.quiet)
                let correction: ((Tensor) throws -> Tensor)? = a.map { op in { x0 in try op.rangeNullCorrection(x0, observation: y!) } }
                let restored = try sampler.restore(start0, predictNoise: predict, noise: &noise, correction: correction, progress: progress.update)
                progress.finish()
                let clamped = try clamp(restored, to: -1...1)
                var report: [String: Any] = [
                    "method": "dreamclean" + (a == nil ? "" : "*"), "tau": tau, "gamma": Double(gamma.description) ?? 0, "vps_iterations": vpsIters,
                    "inversion_steps": sampler.inversionSteps, "steps": sampler.samplingSteps, "network_evaluations": sampler.networkEvaluations,
                    "seed": seed, "model": loaded.name, "model_sha256": loaded.sha256,
                    "input": (job.input as NSString).lastPathComponent, "version": BuildInfo.version, "provisional_defaults": true,
                    "elapsed_s": Date().timeIntervalSince(start),
                    "seconds_per_evaluation": Date().timeIntervalSince(start) / Double(max(sampler.networkEvaluations, 1)),
                ]
                if let a, let y {
                    report["operator"] = a.spec
                    let residual = try subtract(try a.apply(clamped), y)
                    report["consistency_rms"] = (residual.values.reduce(0) { $0 + Double($1 * $1) } / Double(max(residual.count, 1))).squareRoot() / 2
                }
                let result = Image.fromSignedRange(clamped.values, width: shape[2], height: shape[1], channels: 3, sourceBitDepth: image.sourceBitDepth)
                let resizedAlpha = alpha.map { $0.width == shape[2] && $0.height == shape[1] ? $0 : $0.resized(width: shape[2], height: shape[1]) }
                try io.write(result.attachingAlpha(resizedAlpha), to: job.output, report: report, inputs: [job.input])
                if !io.quiet {
                    FileHandle.standardError.write(Data(String(format: "dreamclean: %@ → %@ (%d×%d, %d evaluations, %.1f s)\n", job.input, job.output,
                                                               shape[2], shape[1], sampler.networkEvaluations, Date().timeIntervalSince(start)).utf8))
                }
            }
        }
    }
}
