import ArgumentParser
import CommandLineSupport
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
            (ddnm: DDNM/DDNM+ with USDR tiling; dreamclean; resshift; diffir) give full control. Any image size, a file \
            or a folder (one bad file does not stop the rest; --skip-existing resumes). Every failure prints one \
            line, `restore: error: …`, with status 1 (2 for bad usage).
            """,
        version: BuildInfo.version,
        subcommands: [TaskCommand<Upscale>.self, TaskCommand<Denoise>.self, TaskCommand<Dejpeg>.self, TaskCommand<Deblur>.self,
                      TaskCommand<Inpaint>.self, TaskCommand<Colorize>.self, Models.self, BatchCommand.self, Serve.self, DDNMCommand.self, DreamCleanCommand.self, ResShiftCommand.self, DiffIRCommand.self, RDDMCommand.self, LDMCommand.self, Inspect.self, Convert.self, Info.self]
    )

    /// Every failure is one line, `restore: error: …` (status 2 for bad usage, 1 for the rest).
    static func main() { mainWithOneLineErrors(name: "restore") }
}

/// Version and build facts.
enum BuildInfo {
    static let version = RestorationLibrary.version
}
