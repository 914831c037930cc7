import Engine
import Foundation
import ImageIO

/// What a restoration did and measured: one schema for every method, serialised the same way to `--json`,
/// the PNG's `DiffusionRestore` iTXt chunk and (later) the HTTP answer. Fields a method does not have are
/// absent (nil), never zero. The JSON keys are snake_case and flat, as the reports have always been.
public struct RestorationReport: Codable, Sendable, Equatable {
    // What ran
    public var method: String
    public var variant: String?
    public var task: String?
    /// The subcommand that ran: a task (upscale, dejpeg, …) that chose method and model, or the method itself.
    public var command: String?
    public var `operator`: String?
    public var model: String?
    public var modelSHA256: String?
    public var modelKind: String?
    public var classID: Int?
    public var seed: UInt64
    public var version: String
    public var input: String?
    /// The file written (set by the batch writer).
    public var output: String?
    /// Width×height of the input as read and of the result.
    public var inputSize: String?
    public var outputSize: String?
    public var panel: String?
    // Options that shape the result
    public var sigmaY: Double?
    /// σy was estimated from the observation (`NoiseEstimate`), not given.
    public var sigmaYEstimated: Bool?
    public var eta: Double?
    public var clipX0: Bool?
    public var steps: Int?
    public var travel: String?
    public var tau: Int?
    public var gamma: Double?
    public var vpsIterations: Int?
    public var inversionSteps: Int?
    public var provisionalDefaults: Bool?
    public var scale: Int?
    public var chopSize: Int?
    public var chopStride: Int?
    public var blend: String?
    /// Samples averaged into this output (ResShift --average).
    public var averaged: Int?
    // Tiling
    public var windows: Int?
    public var tiling: String?
    public var hir: String?
    public var seamMargin: Int?
    public var seamFeather: Int?
    public var patches: Int?
    /// Set when the input was padded to what the network needs and the result cropped back (any size).
    public var padded: String?
    // Work and time
    public var networkEvaluations: Int?
    public var elapsedSeconds: Double?
    public var secondsPerStep: Double?
    public var secondsPerEvaluation: Double?
    // Measurements
    /// ‖A x̂ − y‖ as RMS on the [0, 1] scale, where an operator exists.
    public var consistencyRMS: Double?
    /// ‖(I − A A†) y‖: the part of y no x can explain.
    public var irreducibleRMS: Double?
    public var psnr: Double?
    public var ssim: Double?
    public var bicubicPSNR: Double?
    public var bicubicSSIM: Double?
    /// Same-size simulations (RDDM): the degraded input against the clean image.
    public var inputPSNR: Double?
    public var inputSSIM: Double?
    public var simulated: String?
    /// RDDM: what the network's outputs mean, and the noise scale of its schedule.
    public var objective: String?
    public var sumScale: Double?
    // Where it ran
    public var threads: Int?
    public var cpu: String?

    public init(method: String, seed: UInt64, version: String = RestorationLibrary.version) {
        self.method = method
        self.seed = seed
        self.version = version
    }

    enum CodingKeys: String, CodingKey {
        case method, variant, task, command, `operator`, model, modelSHA256 = "model_sha256", modelKind = "model_kind", classID = "class", seed, version
        case input, output, inputSize = "input_size", outputSize = "output_size", panel, threads, cpu, sigmaY = "sigma_y", sigmaYEstimated = "sigma_y_estimated", eta, clipX0 = "clip_x0", steps, travel, tau, gamma, vpsIterations = "vps_iterations"
        case inversionSteps = "inversion_steps", provisionalDefaults = "provisional_defaults", scale, chopSize = "chop_size"
        case chopStride = "chop_stride", blend, averaged, windows, tiling, hir, seamMargin = "seam_margin", seamFeather = "seam_feather", patches, padded
        case networkEvaluations = "network_evaluations", elapsedSeconds = "elapsed_s", secondsPerStep = "seconds_per_step"
        case secondsPerEvaluation = "seconds_per_evaluation", consistencyRMS = "consistency_rms", irreducibleRMS = "irreducible_rms"
        case psnr = "psnr_db", ssim, bicubicPSNR = "bicubic_psnr_db", bicubicSSIM = "bicubic_ssim", simulated
        case inputPSNR = "input_psnr_db", inputSSIM = "input_ssim", objective, sumScale = "sum_scale"
    }

    /// A Float option as the user typed it (0.05, not 0.0500000007).
    public static func decimal(_ value: Float) -> Double { Double(value.description) ?? Double(value) }

    /// One line of JSON, keys sorted; non-finite numbers (JSON has none) left out.
    public func json() throws -> String {
        var copy = self
        for path in [\RestorationReport.psnr, \.ssim, \.bicubicPSNR, \.bicubicSSIM, \.inputPSNR, \.inputSSIM, \.consistencyRMS, \.irreducibleRMS, \.elapsedSeconds,
                     \.secondsPerStep, \.secondsPerEvaluation, \.sigmaY, \.eta, \.gamma] where !(copy[keyPath: path]?.isFinite ?? true) {
            copy[keyPath: path] = nil
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(copy), as: UTF8.self)
    }

    /// The same report for a companion panel (observation, side-by-side).
    public func panel(_ name: String) -> RestorationReport {
        var copy = self
        copy.panel = name
        return copy
    }
}

/// Facts about the library itself, and the process set-up every front end (CLI, service, workers) does first.
public enum RestorationLibrary {
    /// The spin count our processes give libgomp (GOMP_SPINCOUNT) unless the environment says otherwise:
    /// measured with Tools/bench/shared_cpu.sh (README, Benchmarks: shared CPU).
    public static let spinCount = "3000"

    /// libgomp's default wait policy spins an idle thread for up to 300 000 iterations before it sleeps: alone
    /// that wins a little; beside another CPU-heavy process the spinning threads burn the time slices the
    /// working ones need (a 16² DDNM run took 33 s instead of 5 s). libgomp reads GOMP_SPINCOUNT and
    /// OMP_WAIT_POLICY once, when it loads, so a process that has neither set re-executes itself once with
    /// GOMP_SPINCOUNT=`spinCount`. `DR_OMP_POLICY=off` keeps libgomp's default; an explicit OMP_WAIT_POLICY or
    /// GOMP_SPINCOUNT always wins. Also caps the thread count at the CPU quota of the process's cgroup
    /// (cpu.max), which libgomp does not read, unless OMP_NUM_THREADS is set.
    static func sharedCPUPolicy(environment: [String: String]) {
        if environment["OMP_NUM_THREADS"] == nil, let quota = cgroupCPUQuota(), quota < Parallel.threadCount {
            Parallel.setThreadCount(max(1, quota))
        }
        guard environment["OMP_WAIT_POLICY"] == nil, environment["GOMP_SPINCOUNT"] == nil, environment["DR_OMP_POLICY"] != "off",
              environment["DR_OMP_REEXEC"] == nil, FileManager.default.isExecutableFile(atPath: "/proc/self/exe") else { return }
        setenv("GOMP_SPINCOUNT", spinCount, 1)
        setenv("DR_OMP_REEXEC", "1", 1)  // once: never loop
        let argv = CommandLine.arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", argv)
        // execv returned: it failed; go on with libgomp's default.
    }

    /// CPUs this process may use by its cgroup v2 quota (`cpu.max`: "QUOTA PERIOD", or "max"), rounded up.
    static func cgroupCPUQuota() -> Int? {
        guard let text = try? String(contentsOfFile: "/sys/fs/cgroup/cpu.max", encoding: .utf8) else { return nil }
        let parts = text.split(whereSeparator: \.isWhitespace)
        guard parts.count == 2, let quota = Double(parts[0]), let period = Double(parts[1]), period > 0 else { return nil }
        return Int((quota / period).rounded(.up))
    }

    public static let version = "0.1.0"

    /// Bounded memory for tiled runs (glibc's mmap threshold, `MemoryTuning`; unless MALLOC_MMAP_THRESHOLD_ is
    /// set); `DR_MAX_ISA=avx2`: results bit-identical to an AVX2-only machine's (`CPU.limitToAVX2`);
    /// `RESTORE_TEST_PAUSE_BEFORE_COMMIT=FILE`: crash tests — each write announces its commit point in FILE and
    /// waits there to be killed. Throws when the CPU lacks AVX2/FMA, which the build requires.
    public static func configureProcess(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        sharedCPUPolicy(environment: environment)
        if environment["MALLOC_MMAP_THRESHOLD_"] == nil { MemoryTuning.fixMmapThreshold() }
        guard CPU.hasAVX2FMA else {
            throw RestorationError("this CPU lacks AVX2/FMA, which this build requires (rebuild without -target-cpu, or use a newer CPU)")
        }
        if environment["DR_MAX_ISA"]?.lowercased() == "avx2" { CPU.limitToAVX2() }
        if let marker = environment["RESTORE_TEST_PAUSE_BEFORE_COMMIT"], !marker.isEmpty {
            ImageWriter.pauseBeforeCommit = { path in
                FileManager.default.createFile(atPath: marker, contents: Data(path.utf8))
                Thread.sleep(forTimeInterval: 30)
            }
        }
    }
}
