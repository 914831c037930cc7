import ArgumentParser
import Engine
import Foundation
import ImageIO
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
        // Bounded memory for tiled runs (Engine/Memory.swift), unless glibc's own MALLOC_MMAP_THRESHOLD_ is set.
        if ProcessInfo.processInfo.environment["MALLOC_MMAP_THRESHOLD_"] == nil { MemoryTuning.fixMmapThreshold() }
        guard CPU.hasAVX2FMA else {
            FileHandle.standardError.write(Data("restore: error: this CPU lacks AVX2/FMA, which this build requires (rebuild without -target-cpu, or use a newer CPU)\n".utf8))
            Foundation.exit(1)
        }
        // DR_MAX_ISA=avx2: results bit-identical to an AVX2-only machine's (see CPU.limitToAVX2).
        if ProcessInfo.processInfo.environment["DR_MAX_ISA"]?.lowercased() == "avx2" { CPU.limitToAVX2() }
        if let marker = ProcessInfo.processInfo.environment["RESTORE_TEST_PAUSE_BEFORE_COMMIT"], !marker.isEmpty {
            // Crash tests: announce each write's commit point in `marker`, then wait there to be killed.
            ImageWriter.pauseBeforeCommit = { path in
                FileManager.default.createFile(atPath: marker, contents: Data(path.utf8))
                Thread.sleep(forTimeInterval: 30)
            }
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
