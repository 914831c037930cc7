import ArgumentParser
import Foundation
import Restoration

extension ParsableCommand {
    /// The `main` of our executables: the process set-up (`RestorationLibrary.configureProcess`), then the
    /// command; every failure is one line, `NAME: error: …`, with status 2 for bad usage (argument-parser's own
    /// default is 64, EX_USAGE) and 1 for the rest (with `(NAME SUB --help)` after usage errors); help and
    /// version print as usual, and an `ExitCode` a command throws (a folder run that counted its failures) stands.
    public static func mainWithOneLineErrors(name: String) {
        do {
            try RestorationLibrary.configureProcess()
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success || error is ExitCode { exit(withError: error) }
            let text = (error as? CocoaError).map { "\($0.localizedDescription)\($0.filePath.map { " (\($0))" } ?? "")" } ?? message(for: error)
            let line = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            let subcommand = CommandLine.arguments.dropFirst().first.map { $0.hasPrefix("-") ? "" : $0 + " " } ?? ""
            let usage = code == .validationFailure ? " (\(name) \(subcommands.isEmpty ? "" : subcommand)--help)" : ""
            FileHandle.standardError.write(Data("\(name): error: \(line.joined(separator: " "))\(usage)\n".utf8))
            Foundation.exit(code == .validationFailure ? 2 : 1)
        }
    }

    private static var subcommands: [ParsableCommand.Type] { configuration.subcommands }
}
