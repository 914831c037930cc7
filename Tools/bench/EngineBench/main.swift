// engine-bench: times the engine's hot operations for Tools/bench/bench.py, which interleaves them with
// PyTorch's. Protocol on stdin/stdout, one request per line:
//   info                 -> one line of JSON: CPU, oneDNN version, threads, kernels chosen
//   peak SECONDS         -> {"gflops": …} FMA peak of the pool's threads (AVX-512 where present)
//   time OP REPS         -> {"op": …, "ms": [REPS timings]} after one warm-up call
//   list                 -> the op names
// Standalone use: `engine-bench OP…` prints a small table of medians.
import CEngineSupport
import Engine
import Foundation

struct BenchOp {
    let name: String
    let gflop: Double
    let run: () throws -> Void
    let kernel: () -> String
}

func randomTensor(_ shape: [Int], seed: UInt64) throws -> Tensor {
    let t = try Tensor(uninitializedShape: shape)
    var state = seed &* 0x9E3779B97F4A7C15 | 1
    for i in 0..<t.count {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        t.data[i] = Float(Int64(bitPattern: state % 2_000_001) - 1_000_000) * 1e-6
    }
    return t
}

func convOp(channels c: Int, size s: Int) throws -> BenchOp {
    let weight = try randomTensor([c, c, 3, 3], seed: UInt64(c))
    for i in 0..<weight.count { weight.data[i] *= 1 / Float(c * 9).squareRoot() }
    let conv = try Conv2D(weight: weight, bias: try randomTensor([c], seed: 7), padding: .same(1))
    let x = try randomTensor([1, s, s, c], seed: 3)
    let gflop = 2.0 * Double(s * s * c * c * 9) * 1e-9
    return BenchOp(name: "conv3x3_c\(c)_\(s)", gflop: gflop, run: { _ = try conv(x) },
                   kernel: { (try? conv.implementationName(for: x.shape)) ?? "?" })
}

func attentionOp(tokens t: Int, heads: Int = 4, headDim d: Int = 64) throws -> BenchOp {
    let q = try randomTensor([1, t, heads * d], seed: 1)
    let k = try randomTensor([1, t, heads * d], seed: 2)
    let v = try randomTensor([1, t, heads * d], seed: 3)
    let attention = Attention()
    let layout = HeadLayout.separate(headDim: d)
    let gflop = 4.0 * Double(heads * t * t * d) * 1e-9
    return BenchOp(name: "attention_\(t)", gflop: gflop, run: {
        _ = try attention(q: q, layout, k: k, layout, v: v, layout, heads: heads, headDim: d, scale: 1 / Float(d).squareRoot())
    }, kernel: { "oneDNN matmul + SIMD softmax" })
}

func makeOps() throws -> [BenchOp] {
    var ops = [
        try convOp(channels: 128, size: 64), try convOp(channels: 256, size: 32),
        try convOp(channels: 64, size: 256), try convOp(channels: 512, size: 16),
        try attentionOp(tokens: 256), try attentionOp(tokens: 1024),
    ]
    ops += try extraOps()
    ops += try networkOps()
    ops += try resshiftOps()
    ops += try diffirOps() + rddmOps() + ldmOps()
    return ops
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + 1e-9 * Double(ts.tv_nsec)
}

func time(_ op: BenchOp, reps: Int) throws -> [Double] {
    try op.run()  // warm-up: JIT, weight reorder, page faults
    var result: [Double] = []
    for _ in 0..<reps {
        let t0 = now()
        try op.run()
        result.append((now() - t0) * 1000)
    }
    return result
}

/// Prints one reply line and flushes (the driver reads line by line).
func reply(_ object: [String: Any]) {
    print(json(object))
    fflush(nil)
}

func json(_ object: [String: Any]) -> String {
    let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    return String(decoding: data, as: UTF8.self)
}

/// The process's peak resident set so far, in MiB.
func peakRSSMegabytes() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

do {

    let ops = try makeOps()
    let byName = Dictionary(uniqueKeysWithValues: ops.map { ($0.name, $0) })
    let args = Array(CommandLine.arguments.dropFirst())
    if args.first == "first-stage" {
        try firstStageTiling(Array(args.dropFirst()))
        exit(0)
    }
    if !args.isEmpty {
        print("CPU: \(CPU.modelDescription); oneDNN \(OneDNN.version); \(Parallel.threadCount) threads")
        print("FMA peak: \(String(format: "%.0f", dr_fma_peak_gflops(1.0, 1))) GFLOP/s")
        for name in args == ["all"] ? ops.map(\.name) : args {
            guard let op = byName[name] else { print("unknown op \(name); known: \(ops.map(\.name))"); exit(2) }
            let ms = median(try time(op, reps: 7))
            print(String(format: "%-22@ %9.3f ms %8.1f GFLOP/s  %@", name, ms, op.gflop / ms * 1000, op.kernel()))
        }
        exit(0)
    }
    while let line = readLine() {
        let words = line.split(separator: " ").map(String.init)
        guard let command = words.first else { continue }
        switch command {
        case "info":
            var kernels: [String: String] = [:]
            for op in ops { kernels[op.name] = op.kernel() }
            reply(["cpu": CPU.modelDescription, "onednn": OneDNN.version, "threads": Parallel.threadCount,
                        "kernels": kernels, "gflop": Dictionary(uniqueKeysWithValues: ops.map { ($0.name, $0.gflop) })])
        case "peak":
            let seconds = Double(words.dropFirst().first ?? "1") ?? 1
            reply(["gflops": dr_fma_peak_gflops(seconds, 1)])
        case "list":
            reply(["ops": ops.map(\.name)])
        case "time":
            guard words.count == 3, let op = byName[words[1]], let reps = Int(words[2]) else {
                reply(["error": "usage: time OP REPS"])
                continue
            }
            reply(["op": op.name, "ms": try time(op, reps: reps), "peak_rss_mb": peakRSSMegabytes()])
        case "quit":
            exit(0)
        default:
            reply(["error": "unknown command \(command)"])
        }
    }
} catch {
    FileHandle.standardError.write("engine-bench: error: \(error)\n".data(using: .utf8)!)
    exit(1)
}
