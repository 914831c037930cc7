import ArgumentParser
import Foundation
import Restoration

/// The `restore` command: one subcommand per method, plus tools.
@main
struct Restore: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore damaged images with diffusion models, on the CPU.",
        discussion: """
            Methods arrive one subcommand at a time (DDNM, USDR, DreamClean, ResShift, RDDM, DiffIR, LDM). \
            Today: ddnm (DDNM/DDNM+, with USDR tiling for any size), dreamclean, resshift, safe checkpoint tools (inspect, convert), info.
            Errors print one line, `restore: error: …`, and exit with status 1 (2 for bad usage).
            """,
        version: BuildInfo.version,
        subcommands: [DDNMCommand.self, DreamCleanCommand.self, ResShiftCommand.self, Inspect.self, Convert.self, Info.self]
    )

    static func main() {
        do { try RestorationLibrary.configureProcess() } catch {
            FileHandle.standardError.write(Data("restore: error: \(error)\n".utf8))
            Foundation.exit(1)
        }
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            // Bad usage exits with status 2 (argument-parser's own default is 64, EX_USAGE).
            if exitCode(for: error) == .validationFailure {
                let message = fullMessage(for: error)
                FileHandle.standardError.write(Data((message.hasSuffix("\n") ? message : message + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

/// Version and build facts.
enum BuildInfo {
    static let version = RestorationLibrary.version
}

/// Prints `restore: error: <message>` on stderr and exits with status 1: the one way commands fail on
/// bad input (usage errors are swift-argument-parser's, status 2).
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

extension ParsableCommand {
    /// Runs `body`, turning any thrown error into a one-line message and exit status 1.
    func failingCleanly(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch let error as ExitCode {
            throw error
        } catch {
            FileHandle.standardError.write(Data("restore: error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
