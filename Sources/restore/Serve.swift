import ArgumentParser
import Foundation

/// `restore serve …`: runs `restore-serve` (next to this binary) with the same arguments, as git runs its
/// `git-…` commands: the service's SwiftNIO stack stays out of the command-line tool (a third of its build).
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a web page and an HTTP API to restore photos (restore serve --help for its options).",
        discussion: "Runs the restore-serve binary built beside restore (make serve builds both).")

    @Argument(parsing: .captureForPassthrough, help: "The service's options (--host, --port, --token, …).")
    var arguments: [String] = []

    func run() throws {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let server = URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("restore-serve").path
        guard FileManager.default.isExecutableFile(atPath: server) else {
            throw ValidationError("restore serve needs the restore-serve binary next to restore (\(server)); `make serve` builds it")
        }
        let argv = ([server] + arguments).map { strdup($0) } + [nil]
        execv(server, argv)
        throw ValidationError("could not start \(server): \(String(cString: strerror(errno)))")
    }
}
