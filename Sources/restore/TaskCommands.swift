import ArgumentParser
import Foundation
import Restoration

/// A task subcommand's kind: which `RestorationTask` it is.
protocol TaskKind { static var task: RestorationTask { get } }
enum Upscale: TaskKind { static let task = RestorationTask.upscale }
enum Denoise: TaskKind { static let task = RestorationTask.denoise }
enum Dejpeg: TaskKind { static let task = RestorationTask.dejpeg }
enum Deblur: TaskKind { static let task = RestorationTask.deblur }
enum Inpaint: TaskKind { static let task = RestorationTask.inpaint }
enum Colorize: TaskKind { static let task = RestorationTask.colorize }

/// `restore upscale|denoise|dejpeg|deblur|inpaint|colorize`: the task picks the method and model (README, Tasks);
/// the method subcommands remain for control.
struct TaskCommand<Kind: TaskKind>: JobMaking {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: Kind.task.rawValue, abstract: Kind.task.summary, discussion: """
            The method and model chosen are named in the report ("method", "model", "command"). -n takes a model \
            file or an installed model's name (restore models). Any image size works: the methods pad to what \
            the network needs and crop back.
            """)
    }

    @OptionGroup var io: ImageIOOptions

    @Option(name: .shortAndLong, help: ArgumentHelp("Scale factor: 2, 3 or 4.", visibility: Kind.task == .upscale ? .default : .private))
    var scale: Int = 4

    @Option(help: ArgumentHelp("Noise σ on the [0, 1] scale (25/255 ≈ 0.098; default: estimated from each image).", visibility: Kind.task == .denoise ? .default : .private))
    var sigma: Float?

    @Option(help: ArgumentHelp("The mask image, the size of the input: white = hole.", visibility: Kind.task == .inpaint ? .default : .private))
    var mask: String?

    @Option(help: ArgumentHelp("The blur kernel as a gray image (default: blind, DreamClean).", visibility: Kind.task == .deblur ? .default : .private))
    var kernel: String?

    @Option(name: [.customShort("n"), .long], help: "A model file, or the name of an installed one (restore models); default: the task's bundled model.")
    var model: String?

    @Option(name: [.customShort("t"), .long], help: "Tile size for large images, in pixels (windows; ResShift: input-pixel patches; DiffIR: the largest tile in input pixels, a multiple of 8). Default: the model's.")
    var tile: Int?

    @Option(help: ArgumentHelp("Average this many samples into one output (posterior mean: higher PSNR, less texture; ResShift).",
                               visibility: Kind.task == .upscale ? .default : .private))
    var average: Int = 1

    @Option(help: "Separate outputs per input, each from its own seed (files get -1, -2, … suffixes).")
    var samples: Int = 1

    @OptionGroup var sampling: SamplingOptions

    var request: TaskRequest {
        var r = TaskRequest(task: Kind.task)
        (r.scale, r.sigma, r.mask, r.kernel, r.model) = (scale, sigma, mask, kernel, model)
        (r.steps, r.tile, r.average, r.maxPixels) = (sampling.steps, tile, average, io.maxPixels)
        return r
    }

    func validate() throws {
        do { try request.validate() } catch { throw ValidationError("\(error)") }
        guard (1...64).contains(samples) else { throw ValidationError("--samples must be between 1 and 64") }
    }

    func job(input: String, sample: Int) throws -> RestorationJob { try request.job(input: input, seed: sampling.seed, sample: sample) }

    var protectedPaths: [String] { [mask, kernel].compactMap { $0 } }

    func run() throws {
        try io.run(job, samples: samples, protecting: protectedPaths, scale: request.outputScale)
    }
}

/// `restore models`: the installed and bundled models, their family and the tasks they serve.
struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the installed and bundled models (names for -n) and the tasks.")

    func run() throws {
        let folders = BundledModels.searchFolders()
        print("models (searched: \(folders.count == 1 ? folders[0] : "Models/ near the executable, ./Models; DIFFUSIONRESTORE_MODELS overrides")):")
        for entry in InstalledModels.all() {
            let model = try? ModelCatalog.describe(path: entry.path)
            print("  \((entry.name as NSString).deletingPathExtension)  \(model?.familyName ?? "unreadable"), \(Formatting.bytes(entry.bytes)): \(model?.servedTasks ?? "none")  (\(entry.path))")
        }
        print("tasks:")
        for task in RestorationTask.allCases { print("  \(task.rawValue): \(task.summary)") }
    }
}
