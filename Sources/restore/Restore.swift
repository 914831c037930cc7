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
            Start with a task — upscale, denoise, dejpeg, deblur, inpaint, colorize — which picks the method and \
            model (bundled by default; -n names another, `restore models` lists them). The method subcommands \
            (ddnm: DDNM/DDNM+ with USDR tiling; dreamclean; resshift) give full control. Any image size, a file \
            or a folder (one bad file does not stop the rest; --skip-existing resumes). Every failure prints one \
            line, `restore: error: …`, with status 1 (2 for bad usage).
            """,
        version: BuildInfo.version,
        subcommands: [TaskCommand<Upscale>.self, TaskCommand<Denoise>.self, TaskCommand<Dejpeg>.self, TaskCommand<Deblur>.self,
                      TaskCommand<Inpaint>.self, TaskCommand<Colorize>.self, Models.self, Serve.self, DDNMCommand.self, DreamCleanCommand.self, ResShiftCommand.self, Inspect.self, Convert.self, Info.self]
    )

    /// Every failure is one line, `restore: error: …`, with status 2 for bad usage (argument-parser's own
    /// default is 64, EX_USAGE) and 1 for the rest; help and version print as usual.
    static func main() {
        do {
            try RestorationLibrary.configureProcess()
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success || error is ExitCode { exit(withError: error) }  // help, version; a folder run that counted its failures
            let text = (error as? CocoaError).map { "\($0.localizedDescription)\($0.filePath.map { " (\($0))" } ?? "")" } ?? message(for: error)
            let line = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            let usage = code == .validationFailure ? " (restore \(CommandLine.arguments.dropFirst().first.map { $0.hasPrefix("-") ? "" : $0 + " " } ?? "")--help)" : ""
            FileHandle.standardError.write(Data("restore: error: \(line.joined(separator: " "))\(usage)\n".utf8))
            Foundation.exit(code == .validationFailure ? 2 : 1)
        }
    }
}

/// Version and build facts.
enum BuildInfo {
    static let version = RestorationLibrary.version
}
