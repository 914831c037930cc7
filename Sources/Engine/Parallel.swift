import CDNNL
import Foundation
import CEngineSupport

/// Parallel loops on the OpenMP thread pool that oneDNN uses (libgomp), so that Swift kernels and oneDNN
/// primitives take turns on the cores instead of competing (one level of parallelism at a time).
public enum Parallel {
    /// Threads in the pool.
    public static var threadCount: Int { Int(dr_max_threads()) }

    /// Sets the pool's thread count (for Swift kernels and oneDNN alike).
    public static func setThreadCount(_ n: Int) { dr_set_num_threads(Int32(max(1, n))) }

    /// Calls `body(begin, end)` on disjoint ranges covering [0, n), one range per thread; runs inline when
    /// `n < 2 * grain`. `body` must only touch disjoint memory per range.
    public static func forRanges(_ n: Int, grain: Int = 1, _ body: (Int, Int) -> Void) {
        if n <= 0 { return }
        withoutActuallyEscaping(body) { escapable in
            var box = escapable
            withUnsafeMutablePointer(to: &box) { boxPointer in
                dr_parallel_for(n, grain, boxPointer) { context, begin, end in
                    let body = context!.assumingMemoryBound(to: ((Int, Int) -> Void).self).pointee
                    body(begin, end)
                }
            }
        }
    }

    /// Calls `body(i)` for every i in [0, n), split over the pool's threads.
    public static func forEach(_ n: Int, grain: Int = 1, _ body: (Int) -> Void) {
        forRanges(n, grain: grain) { begin, end in
            for i in begin..<end { body(i) }
        }
    }
}

/// Facts about the CPU that matter for speed.
public enum CPU {
    /// True when the CPU executes AVX2 and FMA, the instruction sets the release build is compiled for.
    public static let hasAVX2FMA: Bool = dr_cpu_has_avx2_fma() != 0
    /// True when the CPU has AVX-512 F (oneDNN then uses its AVX-512 kernels).
    public static let hasAVX512: Bool = dr_cpu_has_avx512f() != 0

    /// Whether the AVX-512 C kernels run (true on AVX-512 CPUs). Tests switch it off to check the portable
    /// Swift path on the same machine; nothing else should change it.
    nonisolated(unsafe) public static var useAVX512Kernels: Bool = hasAVX512

    /// Runs as on an AVX2-only CPU: oneDNN's AVX2 kernels (and its AVX2 choice of convolution layout) and our
    /// portable kernels, so that results are bit-identical across AVX2 and AVX-512 machines (sampling is
    /// chaotic: other kernels round differently and give other images). Slower on AVX-512 CPUs. Call before the
    /// first convolution or matrix product; returns false if oneDNN has already fixed its choice.
    @discardableResult
    public static func limitToAVX2() -> Bool {
        useAVX512Kernels = false
        return dnnl_set_max_cpu_isa(dnnl_cpu_isa_avx2) == dnnl_success
    }

    /// The model name from /proc/cpuinfo with its family and model numbers, e.g. "AMD EPYC (family 26, model 2)".
    public static var modelDescription: String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown CPU" }
        var name = "unknown CPU", family = "?", model = "?"
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            if parts[0] == "model name", name == "unknown CPU" { name = parts[1] }
            if parts[0] == "cpu family", family == "?" { family = parts[1] }
            if parts[0] == "model", model == "?" { model = parts[1] }
            if parts[0] == "processor", parts[1] == "1" { break }
        }
        let isa = hasAVX512 ? "AVX-512" : (hasAVX2FMA ? "AVX2+FMA" : "no AVX2")
        return "\(name) (family \(family), model \(model), \(isa), \(ProcessInfo.processInfo.activeProcessorCount) cores)"
    }
}
