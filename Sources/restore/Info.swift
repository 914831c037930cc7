import ArgumentParser
import Engine
import Foundation
import Restoration

/// `restore info`: the machine and engine facts that every benchmark figure should come with.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the CPU, its instruction sets, threads and engine versions.")

    @Option(name: .customLong("pixels-sha256"), help: "Instead: print the SHA-256 of an image's decoded samples (16-bit), as batch sidecars record it (pixels_sha256): equal for equal pixels whatever the file's other bytes (reports, timings).")
    var pixelsSHA256: String?

    func run() throws {
        if let path = pixelsSHA256 {
            print(try ShardedBatch.pixelsSHA256(of: path))
            return
        }
        let env = ProcessInfo.processInfo.environment
        print("restore \(BuildInfo.version)")
        print("CPU: \(CPU.modelDescription)")
        print("oneDNN: \(OneDNN.version) (picks AVX2 or AVX-512 kernels at run time)")
        print("threads: \(Parallel.threadCount) (OMP_NUM_THREADS or -j to change), GOMP_SPINCOUNT=\(env["GOMP_SPINCOUNT"] ?? "unset"), OMP_WAIT_POLICY=\(env["OMP_WAIT_POLICY"] ?? "unset") (DR_OMP_POLICY=off keeps libgomp's default spinning)")
    }
}
