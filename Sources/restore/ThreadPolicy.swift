import Foundation

/// How the OpenMP pool (shared by oneDNN and our Swift kernels) waits between parallel regions.
///
/// libgomp reads `OMP_WAIT_POLICY` once, when it is loaded, so the CLI re-executes itself with the
/// measured best value when the user has not chosen one (see Benchmarks/RESULTS.md, "Threads").
enum ThreadPolicy {
    /// The value set when the environment has none.
    static let defaultWaitPolicy = "PASSIVE"

    static func applyBeforeFirstUse() {
        let environment = ProcessInfo.processInfo.environment
        guard environment["OMP_WAIT_POLICY"] == nil, environment["RESTORE_NO_REEXEC"] == nil else { return }
        setenv("OMP_WAIT_POLICY", defaultWaitPolicy, 1)
        setenv("RESTORE_NO_REEXEC", "1", 1)
        let arguments = CommandLine.arguments
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        execv("/proc/self/exe", &argv)
        // execv only returns on failure: carry on with the library's default policy.
    }
}
