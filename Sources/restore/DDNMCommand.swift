import ArgumentParser
import Checkpoints
import Engine
import Foundation
import ImageIO
import Methods
import Networks
import Operators
import Restoration

/// `restore ddnm`: zero-shot restoration by range–null-space decomposition on an unconditional prior.
struct DDNMCommand: ParsableCommand {
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

    @Option(help: "Observation noise σy on the [0, 1] image scale (DDNM+); 0 = noise-free DDNM.")
    var sigmaY: Float = 0

    @Option(help: "Sampling steps T_sampling (of the 1000 training steps).")
    var steps: Int = 100

    @Option(help: "DDIM stochasticity η.")
    var eta: Float = 0.85

    @Flag(name: .customLong("clip-x0"), help: "Clamp each x0 prediction to [-1, 1] (and take ε consistent with it), as guided-diffusion and hq_demo do; the official DDNM code does not. Steadies weak priors.")
    var clipX0 = false

    @Option(help: "Time-travel: travel length L and repeat r, as L,R (1,1 = none; the old-photo config uses 2,2).")
    var travel: String = "1,1"

    @Option(help: "Random seed (same seed, same threads, same build → identical output).")
    var seed: UInt64 = 1234

    @Option(help: "Restore this many samples per input (files get -1, -2, … suffixes).")
    var samples: Int = 1

    @Flag(help: "The input is a clean image: degrade it, restore, and report PSNR/SSIM against it.")
    var simulate = false

    @Option(help: "Tiling when the output exceeds the prior's native size: msr (USDR mask-shift windows, overlaps kept consistent) or naive (independent tiles at a window's stride, the last snapped to the border; for comparison).")
    var tiling: MaskShiftRestoration.Tiling = .msr

    @Option(help: "Window side in pixels for tiling (default and maximum: the prior's native size; setting it forces tiling).")
    var window: Int?

    @Option(help: "Overlap between neighbouring windows in pixels (default: half the window).")
    var overlap: Int?

    @Option(help: "Pixels along a finished window's inner edges that the next window restores again instead of keeping (default: an eighth of the overlap; 0 keeps the whole overlap, as hq_demo).")
    var margin: Int?

    @Option(help: "Width in pixels of the band of the kept overlap imposed softly, its weight falling towards the new part (default: an eighth of the overlap; 0 imposes it hard, as hq_demo).")
    var feather: Int?

    @Flag(name: .customLong("no-hir"), help: "Tiling without USDR's hierarchical pass (the whole image restored at the native size first, guiding every window's block means).")
    var noHIR = false

    @Option(help: "Also write a side-by-side PNG: degraded (A†y at the output size) | restored | original (with --simulate).")
    var sideBySide: String?

    @Option(help: "Also write the observation y as an image (with --simulate: the degraded input the restoration saw).")
    var saveObservation: String?

    @Option(help: ArgumentHelp("Benchmarking only: replace the prior by a zero-cost ε-network of this native size (memory and tiling measurements).", visibility: .hidden))
    var standInNetwork: Int?

    @Flag(help: "Read mask images the official DDNM way: white (255) = keep.")
    var maskKeepWhite = false

    @Flag(help: "Reproduce the official operators' quirks: blur matrices with k − 1 of the kernel's k taps.")
    var referenceExact = false

    @Flag(help: "Run the official simplified path (diffusion.py simplified_ddnm_plus) instead of the SVD path.")
    var simplified = false

    @Flag(help: "The simplified path with the paper's σ_t = √(1−ᾱ) instead of the official code's √(1−ᾱ²).")
    var paper = false

    func validate() throws {
        guard (0...1).contains(sigmaY) else { throw ValidationError("--sigma-y must be between 0 and 1") }
        guard (0...1).contains(eta) else { throw ValidationError("--eta must be between 0 and 1") }
        guard (1...1000).contains(steps) else { throw ValidationError("--steps must be between 1 and 1000") }
        guard (1...64).contains(samples) else { throw ValidationError("--samples must be between 1 and 64") }
        guard travelValues != nil else { throw ValidationError("--travel takes L,R with integers ≥ 1, e.g. 2,2") }
    }

    var travelValues: (Int, Int)? {
        let parts = travel.split(separator: ",").compactMap { Int($0) }
        guard parts.count == 2, parts[0] >= 1, parts[1] >= 1 else { return nil }
        return (parts[0], parts[1])
    }

    func run() throws {
        try failingCleanly {
            let jobs = try io.jobs()
            if jobs.count > 1, sideBySide != nil || saveObservation != nil {
                throw CommandFailure("--side-by-side and --save-observation take one input image, not a folder")
            }
            let variant: DDNMSampler.Variant = paper ? .paper : simplified ? .simplified : .svd
            let a = try OperatorSpec.parse(degradation, path: variant == .svd ? .svd : .simplified, referenceExact: referenceExact, seed: seed,
                                           loadMask: { path in try MaskImage.load(path, keepWhite: maskKeepWhite, maxPixels: io.maxPixels) },
                                           loadKernelImage: { path in try KernelImage.load(path, maxPixels: io.maxPixels) })
            let loaded = try prior.load(command: "ddnm", quiet: io.quiet, standIn: standInNetwork.map { (ZeroNetwork(), $0) })
            let network = loaded.network
            let (travelLength, travelRepeat) = travelValues!
            var sampler = try DDNMSampler(timesteps: try TimeTravelSchedule(samplingSteps: steps, travelLength: travelLength, travelRepeat: travelRepeat),
                                      eta: eta, sigmaY: 2 * sigmaY, variant: variant)
            sampler.clipX0 = clipX0
            for job in jobs {
                for sample in 0..<samples {
                    let output = samples == 1 ? job.output : Self.suffixed(job.output, sample + 1)
                    let extras = (observation: saveObservation.map { samples == 1 ? $0 : Self.suffixed($0, sample + 1) },
                                  sideBySide: sideBySide.map { samples == 1 ? $0 : Self.suffixed($0, sample + 1) })
                    try restoreOne(input: job.input, output: output, extras: extras, operator: a, network: network, sampler: sampler,
                                   seed: seed &+ UInt64(sample), modelName: loaded.name, modelHash: loaded.sha256,
                                   nativeSize: loaded.nativeSize)
                }
            }
        }
    }

    static func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

    /// Clamps to [-1, 1] in place (NaN → −1).
    static func clampInPlace(_ x: Tensor) {
        for i in 0..<x.count { let v = x.data[i]; x.data[i] = v >= -1 ? min(v, 1) : -1 }
    }

    static func suffixed(_ path: String, _ index: Int) -> String {
        let ext = (path as NSString).pathExtension
        return (path as NSString).deletingPathExtension + "-\(index)" + (ext.isEmpty ? "" : "." + ext)
    }

    private func restoreOne(input: String, output: String, extras: Extras, operator a: any DegradationOperator, network: any DiffusionNetwork,
                            sampler: DDNMSampler, seed: UInt64, modelName: String, modelHash: String, nativeSize: Int) throws {
        let start = Date()
        if (input as NSString).pathExtension.lowercased() == "safetensors" {
            guard !simulate else { throw CommandFailure("--simulate needs a clean image, not a coefficient file (\(input))") }
            let y = try Self.coefficients(input)
            return try restore(observation: y, clean: nil, alpha: nil, bitDepth: 8, input: input, output: output, extras: extras, operator: a, network: network,
                               sampler: sampler, noise: SeededGaussian(seed: seed), modelName: modelName, modelHash: modelHash, nativeSize: nativeSize, start: start)
        }
        var noise = SeededGaussian(seed: seed)
        // y (and, with --simulate, the clean x it came from), on the [-1, 1] scale; the decoded image and its
        // copies end with this closure, so only y (and x) stay in memory while restoring.
        let (y, clean, alpha, bitDepth): (Tensor, Tensor?, AlphaPlane?, Int) = try {
            let image = try ImageReader.read(path: input, maxPixels: io.maxPixels)
            let (color, alpha) = image.splittingAlpha()
            let observed = try Self.tensor(color)
            if simulate {
                let x = color.channels == 3 ? observed : try Self.tensor(color.expandingGrayToRGB())
                var y = try a.apply(x)
                if sigmaY > 0 { y = try axpby(1, y, 2 * sigmaY, try noise.next(shape: y.shape)) }
                return (y, x, alpha, image.sourceBitDepth)
            }
            guard !Self.observesCoefficients(a) else {
                throw CommandFailure("compressed-sensing observations are coefficient vectors: pass a .safetensors file with a tensor \"y\" [M, C], or use --simulate with a clean image (\(input))")
            }
            return (try Self.observation(observed, for: a), nil, alpha, image.sourceBitDepth)
        }()
        return try restore(observation: y, clean: clean, alpha: alpha, bitDepth: bitDepth, input: input, output: output, extras: extras, operator: a,
                           network: network, sampler: sampler, noise: noise, modelName: modelName, modelHash: modelHash, nativeSize: nativeSize, start: start)
    }

    /// True when y is a coefficient vector rather than an image (compressed sensing, alone or in a composition).
    static func observesCoefficients(_ a: any DegradationOperator) -> Bool {
        if let composite = a as? CompositeOperator { return composite.parts.contains { observesCoefficients($0) } }
        return a is DeferredWHTOperator || a is WalshHadamardCSOperator || a is BlockCSOperator
    }

    /// Reads a coefficient vector y from a safetensors file: a tensor named `y` of shape [M, C], [N, M, C]
    /// or [N, M, 1, C] (compressed sensing).
    static func coefficients(_ path: String) throws -> Tensor {
        let file = try Checkpoint(path: path)
        guard let stored = try file.stateDict()["y"] else { throw CommandFailure("no tensor named \"y\" in the coefficient file (\(path))") }
        let s = stored.shape
        switch s.count {
        case 2: return try stored.floatTensor(shape: [1, s[0], 1, s[1]])
        case 3: return try stored.floatTensor(shape: [s[0], s[1], 1, s[2]])
        case 4 where s[2] == 1: return try stored.floatTensor(shape: s)
        default: throw CommandFailure("the coefficient tensor y must be [M, C], [N, M, C] or [N, M, 1, C], got \(s) (\(path))")
        }
    }

    typealias Extras = (observation: String?, sideBySide: String?)

    private func restore(observation given: Tensor, clean: Tensor?, alpha: AlphaPlane?, bitDepth: Int, input: String, output: String, extras: Extras,
                         operator a: any DegradationOperator, network: any DiffusionNetwork, sampler: DDNMSampler, noise: SeededGaussian,
                         modelName: String, modelHash: String, nativeSize: Int, start: Date) throws {
        var noise = noise
        let shape = try a.imageShape(for: given.shape)
        // A flat coefficient vector (cs-block from a file) takes the operator's own layout, so windows can crop it.
        let canonical = try a.observationShape(for: shape)
        let y = canonical != given.shape && canonical.reduce(1, *) == given.count ? try given.reshaped(canonical) : given
        let tiled = tiling == .naive || shape[1] > nativeSize || shape[2] > nativeSize || window != nil
        var windowCount = 1
        var seam: (margin: Int, feather: Int)?
        var hir = "none"
        var globalEvaluations = 0
        let restored: Tensor
        let predict: NoisePredictor = prior.predictor(network)
        if tiled {
            // USDR mask-shift windows at the prior's native size (Methods/MaskShift.swift).
            guard let local = a as? any WindowableOperator, local.windowAlignment > 0 else {
                throw CommandFailure("the output would be \(shape[2])×\(shape[1]), larger than the prior's native \(nativeSize)²; tiling needs a local operator (pool, bicubic, gray, mask, noise, blurs, cs-block, and compositions of the halo-free ones), not \(a.spec) (global: cs-wht) — crop or downscale the input (\(input))")
            }
            guard shape[0] == 1 else { throw CommandFailure("tiling restores one image at a time (\(input))") }
            // USDR's HiR: the whole image first at 1/f of its size (a pyramid ÷f, ÷f/4, … for very large images);
            // each level's block means then guide the windows of the next, and the finest guides the full-size windows.
            var global: (factor: Int, result: Tensor)?
            let levels = noHIR || tiling == .naive ? []
                : try HierarchicalRestoration.pyramid(operator: local, observation: y, imageShape: shape, nativeSize: nativeSize, sizeMultiple: network.sizeMultiple)
            if noHIR || tiling == .naive {
                hir = "off"
            } else if let top = levels.first {
                // The coarsest level in one pass, then each finer level by mask-shift windows guided by the one above.
                for (index, level) in levels.enumerated() {
                    let levelSampler = sampler.scalingNoise(by: level.noiseScale)
                    if index == 0 {
                        let progress = ProgressBar(label: "\((input as NSString).lastPathComponent) (global pass, ÷\(top.factor))", enabled: !io.quiet)
                        let result = try levelSampler.sample(observation: top.observation, operator: top.operator, imageShape: top.shape,
                                                             predictNoise: predict, noise: &noise, progress: progress.update)
                        progress.finish()
                        globalEvaluations += sampler.timesteps.networkEvaluations
                        global = (top.factor, result)
                        continue
                    }
                    guard let above = global, let levelOperator = level.operator as? any WindowableOperator else { break }
                    let ratio = above.factor / level.factor
                    let alignment = levelOperator.windowAlignment / Self.gcd(levelOperator.windowAlignment, ratio) * ratio
                    let plan = try WindowPlan(height: level.shape[1], width: level.shape[2], window: min(window ?? nativeSize, nativeSize), overlap: overlap,
                                              alignment: alignment, sizeMultiple: network.sizeMultiple)
                    let progress = ProgressBar(label: "\((input as NSString).lastPathComponent) (HiR level ÷\(level.factor), \(plan.rects.count) windows)", enabled: !io.quiet)
                    let result = try MaskShiftRestoration(sampler: levelSampler, plan: plan, margin: margin, feather: feather)
                        .restore(observation: level.observation, operator: levelOperator, imageShape: level.shape, predictNoise: predict, noise: &noise,
                                 global: (ratio, above.result)) { done, count, evaluations, total in
                            progress.update(evaluations, total, note: "window \(min(done + 1, count))/\(count)")
                        }
                    progress.finish()
                    globalEvaluations += sampler.timesteps.networkEvaluations * plan.rects.count
                    global = (level.factor, result)
                }
                hir = levels.map { "÷\($0.factor)" }.joined(separator: " → ")
            } else {
                hir = local is any HierarchicalOperator ? "not applicable (for pooling SR, y already fixes the coarse image)"
                    : "not applicable (\(a.spec) has no exact coarse form)"
            }
            let side = min(window ?? nativeSize, nativeSize)
            let alignment = global.map { local.windowAlignment / Self.gcd(local.windowAlignment, $0.factor) * $0.factor } ?? local.windowAlignment
            let plan = try WindowPlan(height: shape[1], width: shape[2], window: side, overlap: tiling == .naive ? 0 : overlap,
                                      alignment: alignment, sizeMultiple: network.sizeMultiple)
            windowCount = plan.rects.count
            let progress = ProgressBar(label: "\((input as NSString).lastPathComponent) (\(plan.rects.count) windows)", enabled: !io.quiet)
            let msr = MaskShiftRestoration(sampler: sampler, plan: plan, tiling: tiling, margin: margin, feather: feather)
            seam = try msr.seamBlend(unit: max(1, alignment))
            restored = try msr.restore(observation: y, operator: local, imageShape: shape, predictNoise: predict, noise: &noise, global: global) { done, count, evaluations, total in
                    progress.update(evaluations, total, note: "window \(min(done + 1, count))/\(count)")
                }
            progress.finish()
        } else {
            guard shape[1] % network.sizeMultiple == 0, shape[2] % network.sizeMultiple == 0 else {
                throw CommandFailure("the output would be \(shape[2])×\(shape[1]); this prior needs sides that are multiples of \(network.sizeMultiple) (\(input))")
            }
            let progress = ProgressBar(label: (input as NSString).lastPathComponent, enabled: !io.quiet)
            restored = try sampler.sample(observation: y, operator: a, imageShape: shape, predictNoise: predict, noise: &noise, progress: progress.update)
            progress.finish()
        }
        // Consistency: ‖A x̂ − y‖ (RMS, [0, 1] scale) on the clamped result.
        let clamped = restored
        Self.clampInPlace(clamped)
        // ‖A x̂ − y‖ and ‖(I − ÃÃ†) y‖ (RMS, [0, 1] scale), in row bands for local operators so that no
        // full-size temporary is made (USDR: memory bounded by the image buffers).
        let (rms, irreducibleRMS) = try Consistency.measure(clamped, y, a)
        var report: [String: Any] = [
            "method": "ddnm" + (sigmaY > 0 ? "+" : ""), "variant": sampler.variant.rawValue, "operator": a.spec,
            "sigma_y": Double(sigmaY.description) ?? 0, "eta": Double(eta.description) ?? 0, "clip_x0": sampler.clipX0, "steps": steps, "travel": travel, "seed": seed,
            "model": modelName, "model_sha256": modelHash, "consistency_rms": rms,
            "network_evaluations": sampler.timesteps.networkEvaluations * windowCount + globalEvaluations, "input": (input as NSString).lastPathComponent,
            "version": BuildInfo.version, "windows": windowCount, "tiling": tiled ? tiling.rawValue : "none", "hir": hir,
        ]
        if let classID = prior.classID { report["class"] = classID }
        if let seam { report["seam_margin"] = seam.margin; report["seam_feather"] = seam.feather }
        if let clean, clean.shape == clamped.shape {
            report["psnr_db"] = Quality.psnr(clamped, clean)
            let ssim = Quality.ssim(clamped, clean)
            if ssim.isFinite { report["ssim"] = ssim }  // undefined below 11×11 (the Gaussian window)
        }
        report["elapsed_s"] = Date().timeIntervalSince(start)
        report["seconds_per_step"] = Date().timeIntervalSince(start) / Double(max(sampler.timesteps.networkEvaluations * windowCount + globalEvaluations, 1))
        report["irreducible_rms"] = irreducibleRMS  // ‖(I − ÃÃ†) y‖: what no x can explain
        for (key, value) in report { if let number = value as? Double, !number.isFinite { report[key] = nil } }  // JSON has no NaN
        if let alpha {
            let result = Image(width: shape[2], height: shape[1], channels: 3,
                               pixels: Array(unsafeUninitializedCapacity: clamped.count) { buffer, count in
                                   for i in 0..<clamped.count { buffer[i] = (clamped.data[i] + 1) * 0.5 }  // clamped: within [0, 1]
                                   count = clamped.count
                               }, sourceBitDepth: bitDepth)
            let resized = alpha.width == shape[2] && alpha.height == shape[1] ? alpha : alpha.resized(width: shape[2], height: shape[1])
            try io.write(result.attachingAlpha(resized), to: output, report: report, inputs: [input])
        } else {
            try io.write(signed: clamped, sourceBitDepth: bitDepth, to: output, report: report, inputs: [input])  // rows streamed
        }
        if let saveObservation = extras.observation, y.shape[1] > 0, y.shape[2] > 0, [1, 3].contains(y.shape[3]), !Self.observesCoefficients(a) {
            let observed = Image.fromSignedRange(try clamp(y, to: -1...1).values, width: y.shape[2], height: y.shape[1], channels: y.shape[3])
            try io.write(observed, to: saveObservation, report: report.merging(["panel": "observation y"]) { $1 }, inputs: [input, output], quietJSON: true)
        }
        if let sideBySide = extras.sideBySide {
            let panels = [try a.pseudoInverse(y), clamped] + (clean.map { [$0] } ?? [])
            try io.write(try Self.sideBySide(panels), to: sideBySide,
                         report: report.merging(["panel": clean == nil ? "A†y | restored" : "A†y | restored | original"]) { $1 }, inputs: [input, output],
                         quietJSON: true)
        }
        if !io.quiet {
            var line = String(format: "ddnm: %@ → %@ (%d×%d, ‖Ax̂−y‖ %.4f", input, output, shape[2], shape[1], rms)
            if let p = report["psnr_db"] as? Double { line += String(format: ", PSNR %.2f dB", p) }
            if let s = report["ssim"] as? Double { line += String(format: ", SSIM %.4f", s) }
            line += String(format: ", %.1f s, %.3f s/step%@)\n", Date().timeIntervalSince(start),
                           Date().timeIntervalSince(start) / Double(max(sampler.timesteps.networkEvaluations * windowCount + globalEvaluations, 1)),
                           windowCount > 1 ? ", \(windowCount) windows" : "")
            FileHandle.standardError.write(Data(line.utf8))
        }
    }

    /// Panels of the same height (first sample of each; gray panels shown as RGB) side by side, 4 px white gutters.
    static func sideBySide(_ panels: [Tensor]) throws -> Image {
        let height = panels.map { $0.shape[1] }.max() ?? 1, gutter = 4
        let width = panels.map { $0.shape[2] }.reduce(0, +) + gutter * (panels.count - 1)
        var pixels = [Float](repeating: 1, count: width * height * 3)
        var left = 0
        for panel in panels {
            let (h, w, c) = (panel.shape[1], panel.shape[2], panel.shape[3])
            for r in 0..<h { for x in 0..<w { for k in 0..<3 {
                let value = panel.data[(r * w + x) * c + (c == 3 ? k : 0)]
                pixels[(r * width + left + x) * 3 + k] = value.isFinite ? min(max((value + 1) / 2, 0), 1) : 0
            } } }
            left += w + gutter
        }
        return Image(width: width, height: height, channels: 3, pixels: pixels)
    }

    /// An image as a [1, H, W, C] tensor on the [-1, 1] scale.
    static func tensor(_ image: Image) throws -> Tensor {
        let x = try Tensor(uninitializedShape: [1, image.height, image.width, image.channels])
        image.pixels.withUnsafeBufferPointer { p in for i in 0..<p.count { x.data[i] = p[i] * 2 - 1 } }
        return x
    }

    /// The observation y in the form the operator produces (one channel after `gray`, else three),
    /// projected onto A's range (y ← A A† y: e.g. a mask's holes hold zeros whatever the photo had there).
    static func observation(_ x: Tensor, for a: any DegradationOperator) throws -> Tensor {
        let channels = x.shape[3]
        let wantsGray = a.spec.split(separator: ",").contains { $0 == "gray" }
        var y = x
        if wantsGray, channels == 3 { y = try GrayscaleOperator().apply(x) }  // a color photo given for colorization
        if !wantsGray, channels == 1 {
            y = try Tensor(uninitializedShape: [x.shape[0], x.shape[1], x.shape[2], 3])
            for p in 0..<x.count { for k in 0..<3 { y.data[3 * p + k] = x.data[p] } }
        }
        // y ← A A† y, in bands of rows for local operators (no image-sized A† y at once). Operators with a halo
        // (blur, bicubic) have no band-wise A A†: y is used as given on large images (DDNM's correction is the
        // least-squares one either way), projected whole up to 256².
        if let local = a as? any WindowableOperator, local.windowAlignment > 0, local.windowHalo > 0 {
            let shape = try a.imageShape(for: y.shape)
            return shape[1] * shape[2] <= 256 * 256 ? try a.apply(try a.pseudoInverse(y)) : y
        }
        if let local = a as? any WindowableOperator, local.windowAlignment > 0, y.shape[0] == 1 {
            let projected = try Tensor(uninitializedShape: y.shape)
            let shape = try a.imageShape(for: y.shape)
            for rect in Consistency.bands(height: shape[1], width: shape[2], alignment: local.windowAlignment) {
                let (op, observed) = try local.window(rect, imageShape: shape)
                try projected.paste(try op.apply(try op.pseudoInverse(try y.crop(observed))), at: observed)
            }
            return projected
        }
        return try a.apply(try a.pseudoInverse(y))
    }
}

extension MaskShiftRestoration.Tiling: ExpressibleByArgument {}

/// The zero-cost ε-network of `--stand-in-network` (ε = 0): measures the tiling, canvas and writer alone.
final class ZeroNetwork: DiffusionNetwork {
    var inputChannels: Int { 3 }
    var outputChannels: Int { 3 }
    var sizeMultiple: Int { 8 }
    var classCount: Int? { nil }
    func callAsFunction(_ x: Tensor, timesteps: [Float], classLabels: [Int]?) throws -> Tensor { try Tensor(shape: x.shape, repeating: 0) }
}
