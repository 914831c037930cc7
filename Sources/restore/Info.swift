import ArgumentParser
import Engine
import Foundation

/// `restore info`: the machine and engine facts that every benchmark figure should come with.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the CPU, its instruction sets, threads and engine versions.")

    func run() throws {
        let env = ProcessInfo.processInfo.environment
        print("restore \(BuildInfo.version)")
        print("CPU: \(CPU.modelDescription)")
        print("oneDNN: \(OneDNN.version) (picks AVX2 or AVX-512 kernels at run time)")
        print("threads: \(Parallel.threadCount) (OMP_NUM_THREADS or -j to change), GOMP_SPINCOUNT=\(env["GOMP_SPINCOUNT"] ?? "unset"), OMP_WAIT_POLICY=\(env["OMP_WAIT_POLICY"] ?? "unset") (DR_OMP_POLICY=off keeps libgomp's default spinning)")
    }
}
