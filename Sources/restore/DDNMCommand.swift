import ArgumentParser
import Engine
import Foundation
import Methods
import Operators
import Restoration
import Tiling

/// `restore ddnm`: zero-shot restoration by range–null-space decomposition on an unconditional prior.
struct DDNMCommand: JobMaking {
    static let configuration = CommandConfiguration(
        commandName: "ddnm",
        abstract: "Restore with DDNM / DDNM+ (range–null-space decomposition on a diffusion prior).",
        discussion: """
            The input is the real observation y at its own size (a small photo for pool:4); the output size \
            follows the operator. With --simulate the input is a clean image: A (and σy noise) are applied, \
            the result restored, and PSNR/SSIM against the clean image reported (the papers' protocol).
            Degradations: \(OperatorSpec.forms.joined(separator: "; ")). Masks: white = hole (to restore), \
            black = keep; --mask-keep-white reads the official DDNM masks (255 = keep).
            Official-CLI mapping: --deg → --degradation, --sigma_y → --sigma-y (same [0, 1] scale), \
            --eta → --eta, time_travel (T_sampling, travel_length, travel_repeat) → --steps, --travel L,R.
            Sampling follows the official SVD path (svd_ddnm.py; DDNM+ with per-singular Λ for σy > 0) by \
            default; --simplified runs the official simplified path (quirks included: σ_t = √(1−ᾱ²), γ on the \
            DDIM noise); --paper runs the simplified path with the paper's σ_t = √(1−ᾱ).
            Outputs larger than the prior's native size are restored in overlapping windows (USDR mask-shift \
            restoration: each window's overlap with finished windows is a known region, so neighbours agree \
            exactly); --tiling naive restores independent tiles instead, for comparison.
            """
    )

    @OptionGroup var io: ImageIOOptions

    @Option(help: "The degradation operator A, e.g. pool:4, gray, mask:holes.png, noise, or mask:m.png,gray,pool:2.")
    var degradation: String

    @OptionGroup var prior: PriorOptions

    @OptionGroup var sampling: SamplingOptions

    @OptionGroup var windows: TilingOptions

    @OptionGroup var observation: SimulateOptions

    @Option(help: "Observation noise σy on the [0, 1] image scale (DDNM+); 0 = noise-free DDNM (with --degradation noise: estimated from the image).")
    var sigmaY: Float = 0

    @Option(help: "DDIM stochasticity η (default: the model card's, 1.0 for the bundled prior; else the official 0.85).")
    var eta: Float?

    @Flag(name: .customLong("clip-x0"), help: "Clamp each x0 prediction to [-1, 1] (and take ε consistent with it), as guided-diffusion and hq_demo do; the official DDNM code does not. Steadies weak priors.")
    var clipX0 = false

    @Option(help: "Time-travel: travel length L and repeat r, as L,R (1,1 = none; the old-photo config uses 2,2).")
    var travel: String = "1,1"

    @Option(help: "Restore this many samples per input (files get -1, -2, … suffixes).")
    var samples: Int = 1

    @Option(help: "Tiling when the output exceeds the prior's native size: msr (USDR mask-shift windows, overlaps kept consistent) or naive (independent tiles at a window's stride, the last snapped to the border; for comparison).")
    var tiling: MaskShiftRestoration.Tiling = .msr

    @Option(help: "Pixels along a finished window's inner edges that the next window restores again instead of keeping (default: an eighth of the overlap; 0 keeps the whole overlap, as hq_demo).")
    var margin: Int?

    @Option(help: "Width in pixels of the band of the kept overlap imposed softly, its weight falling towards the new part (default: an eighth of the overlap; 0 imposes it hard, as hq_demo).")
    var feather: Int?

    @Flag(name: .customLong("no-hir"), help: "Tiling without USDR's hierarchical pass (the whole image restored at the native size first, guiding every window's block means).")
    var noHIR = false

    @Option(help: "Windows of one wave restored together, one network evaluation for all (each window draws its own seeded noise: the same image for any value on AVX-512 machines; on AVX2-only machines oneDNN may round a batch differently, so keep 1 where images must match across runs).")
    var windowBatch: Int = 1

    @Option(help: "Spread a tiled run over processes or machines: the folder of its plan and windows (with --plan, --stage or --stitch; Tools/slurm/usdr-waves.sh).")
    var spread: String?

    @Flag(help: "With --spread: write the plan (windows, waves, stages) into the folder and stop.")
    var plan = false

    @Option(help: "With --spread: run this stage of the plan (the HiR pass, or a wave of windows) and stop.")
    var stage: Int?

    @Option(help: "With --stage: this worker's part of the wave, i/N (windows k with k mod N = i).")
    var part: String = "0/1"

    @Flag(help: "With --spread: write the image from the windows' files (the one-process result).")
    var stitch = false

    @Option(help: "Also write a side-by-side PNG: degraded (A†y at the output size) | restored | original (with --simulate).")
    var sideBySide: String?

    @Option(help: ArgumentHelp("Benchmarking only: replace the prior by a zero-cost ε-network of this native size (memory and tiling measurements).", visibility: .hidden))
    var standInNetwork: Int?

    @Flag(help: "Reproduce the official operators' quirks: blur matrices with k − 1 of the kernel's k taps.")
    var referenceExact = false

    @Flag(help: "Run the official simplified path (diffusion.py simplified_ddnm_plus) instead of the SVD path.")
    var simplified = false

    @Flag(help: "The simplified path with the paper's σ_t = √(1−ᾱ) instead of the official code's √(1−ᾱ²).")
    var paper = false

    func validate() throws {
        guard (1...64).contains(samples) else { throw ValidationError("--samples must be between 1 and 64") }
        if spread != nil {
            guard [plan, stage != nil, stitch].filter({ $0 }).count == 1 else { throw ValidationError("--spread takes one of --plan, --stage S, --stitch") }
            guard samples == 1, !io.json || stitch else { throw ValidationError("--spread runs one sample of one image") }
            guard (try? Shard(parsing: part)) != nil else { throw ValidationError("--part takes i/N with 0 ≤ i < N") }
        } else if plan || stage != nil || stitch {
            throw ValidationError("--plan, --stage and --stitch need --spread FOLDER")
        }
        do { try options.validate() } catch { throw ValidationError("\(error)") }
    }

    /// The flags as the pipeline's options.
    var options: DDNMOptions {
        var o = DDNMOptions(degradation: degradation)
        o.sigmaY = sigmaY
        o.steps = sampling.steps ?? 100
        o.eta = eta
        o.clipX0 = clipX0
        let travel = self.travel.split(separator: ",", omittingEmptySubsequences: false).map { Int($0) ?? 0 }
        (o.travelLength, o.travelRepeat) = travel.count == 2 ? (travel[0], travel[1]) : (0, 0)  // refused by validate()
        o.variant = (paper ? DDNMSampler.Variant.paper : simplified ? .simplified : .svd).rawValue
        o.tiling = tiling.rawValue
        (o.window, o.overlap, o.margin, o.feather) = (windows.window, windows.overlap, margin, feather)
        o.hir = !noHIR
        o.windowBatch = windowBatch
        if let spread {
            let part = try? Shard(parsing: part)  // validated above; -1/0 is refused by the stage
            o.spread = SpreadStage(kind: plan ? .plan : stitch ? .stitch : .stage, folder: spread, stage: stage ?? 0,
                                   part: part?.index ?? -1, parts: part?.count ?? 0)
        }
        o.maskKeepWhite = windows.maskKeepWhite
        o.referenceExact = referenceExact
        o.classID = prior.classID
        o.maxPixels = io.maxPixels
        return o
    }

    func job(input: String, sample: Int) throws -> RestorationJob {
        RestorationJob(method: .ddnm(options), model: prior.reference(standIn: standInNetwork), input: input, simulate: observation.simulate,
                       seed: sampling.seed ?? 1234, sample: sample, maxPixels: io.maxPixels)
    }

    func run() throws {
        if spread != nil, !stitch {
            if let threads = io.threads { Parallel.setThreadCount(threads) }
            let events = EventPrinter(quiet: io.quiet)
            do {
                _ = try RestorationRunner().run(try job(input: io.input, sample: 0), context: events.context)
            } catch let finished as SpreadStageFinished {
                events.finish()
                print(finished.description)
                return
            }
            throw ValidationError("this stage wrote no files")
        }
        try io.run(job, samples: samples, observation: observation.saveObservation, sideBySide: sideBySide)
    }
}

extension MaskShiftRestoration.Tiling: ExpressibleByArgument {}
