import ArgumentParser
import Foundation
import Restoration

/// `restore dreamclean`: degradation-agnostic restoration by DDIM inversion and Variance-Preserving Sampling.
struct DreamCleanCommand: JobMaking {
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

    @OptionGroup var sampling: SamplingOptions

    @OptionGroup var windows: TilingOptions

    @Option(help: "Inverse strength τ: the timestep (1–999) the DDIM inversion reaches (provisional default, chosen on hold-out photos).")
    var tau: Int = 50

    @Option(help: "VPS step γ in [0, 1) (0 = plain DDIM inversion and sampling; provisional default, chosen on hold-out photos).")
    var gamma: Float = 0.1

    @Option(help: "VPS iterations M per sampling step (the paper uses 1).")
    var vpsIters: Int = 1

    @Option(help: "DDIM inversion steps (default 30 blind, 20 with --degradation).")
    var inversionSteps: Int?

    @Option(help: "A known degradation (the paper's Ours*), e.g. pool:4 or gray: adds DDNM's range–null correction.")
    var degradation: String?

    /// The flags as the pipeline's options.
    var options: DreamCleanOptions {
        var o = DreamCleanOptions()
        (o.tau, o.gamma, o.vpsIterations, o.inversionSteps, o.steps) = (tau, gamma, vpsIters, inversionSteps, sampling.steps)
        (o.degradation, o.window, o.overlap, o.maskKeepWhite) = (degradation, windows.window, windows.overlap, windows.maskKeepWhite)
        o.classID = prior.classID
        o.maxPixels = io.maxPixels
        return o
    }

    func job(input: String, sample: Int) throws -> RestorationJob {
        RestorationJob(method: .dreamclean(options), model: prior.reference(), input: input, seed: sampling.seed ?? 1234, maxPixels: io.maxPixels)
    }

    func run() throws { try io.run(job) }
}
