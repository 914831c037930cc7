import ArgumentParser
import CommandLineSupport
import Engine
import Foundation
import Restoration
import Service

/// `restore serve` (this binary, `restore-serve`, which `restore serve` runs): the HTTP service and web page
/// (README, The service). A binary of its own so that the command-line tool does not carry SwiftNIO.
@main
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore serve",
        abstract: "Serve a web page and an HTTP API to restore photos (127.0.0.1:8080 by default).",
        discussion: "One job runs at a time; others wait in a bounded queue. Binding to anything but loopback needs --token. Stop with Ctrl-C."
    )

    @Option(help: "Address to bind (loopback by default; another address needs --token).") var host = "127.0.0.1"
    @Option(help: "Port (0: any free port).") var port = 8080
    @Option(help: "Bearer token every API request must carry (required off loopback).") var token: String?
    @Option(help: "A folder of installed models (besides the bundled ones).") var models: String?
    @Option(help: "Largest upload in MiB.") var maxUploadMb = 32
    @Option(help: "Largest image in megapixels.") var maxMegapixels = 16
    @Option(help: "Jobs waiting or running at most.") var queue = 8
    @Option(help: "Minutes a result is kept.") var keepMinutes: Double = 60
    @Option(name: [.customShort("j"), .long], help: "Threads for the restorations (default: every core this process may use).") var threads: Int?

    /// Every failure one line, `restore serve: error: …` (status 2 for bad usage, 1 otherwise), as `restore`.
    static func main() { mainWithOneLineErrors(name: "restore serve") }

    func run() throws {
        var configuration = ServiceConfiguration()
        (configuration.host, configuration.port, configuration.token, configuration.modelsFolder) = (host, port, token, models)
        (configuration.maxUploadBytes, configuration.maxPixels) = (maxUploadMb << 20, maxMegapixels * 1_000_000)
        (configuration.queueCapacity, configuration.keepSeconds) = (queue, keepMinutes * 60)
        do { try configuration.validate() } catch { throw ValidationError("\(error)") }
        if let threads { Parallel.setThreadCount(max(1, threads)) }
        let finished = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var failure: Error?
        Task.detached {
            do {
                try await RestorationService.run(configuration: configuration) { port in
                    FileHandle.standardError.write(Data("restore serve: http://\(host):\(port)/ (\(token == nil ? "no token" : "token required"); Ctrl-C stops)\n".utf8))
                }
            } catch { failure = error }
            finished.signal()
        }
        finished.wait()
        if let failure { throw failure }
    }
}
