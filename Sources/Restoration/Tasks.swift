import Foundation
import ImageIO
import Networks

/// What a person asks for — "make it 4× bigger", "remove JPEG blocks" — rather than a paper's name. Each task
/// picks the method and model that do it best among those installed (the bundled ones by default), and says
/// so in the report (`command`) and in `restore TASK --help`.
public enum RestorationTask: String, Codable, Sendable, CaseIterable {
    case upscale, denoise, dejpeg, deblur, inpaint, colorize

    /// One line for `--help` and `restore models`: what the task does and how.
    public var summary: String {
        switch self {
        case .upscale: "Make an image 2, 3 or 4 times bigger: ×4 with DiffIR (one pass; the bundled diffir-x4-own), or with ResShift when --average N > 1 (the mean of N samples; -n resshift-x4-own for one sample), ×2/×3 with DDNM (bicubic operator) on the bundled prior."
        case .denoise: "Remove Gaussian-like noise: DDNM+ (A = I) on the bundled prior, with σ from --sigma or estimated from the image (median absolute Haar detail / 0.6745)."
        case .dejpeg: "Remove JPEG blocks and ringing: DreamClean (blind DDIM inversion + Variance-Preserving Sampling) on the bundled prior."
        case .deblur: "Sharpen a blurred image: with --kernel FILE, DDNM with that kernel (FFT blur operator); without, DreamClean blind."
        case .inpaint: "Fill holes given by --mask (white = hole): DDNM on the bundled prior; known pixels are kept exactly."
        case .colorize: "Colour a grayscale photo: DDNM with the gray operator (the output's channel mean is the input) on the bundled prior."
        }
    }
}

/// A task request: the task, its few parameters, and the overrides a person may give.
public struct TaskRequest: Codable, Sendable, Equatable {
    public var task: RestorationTask
    /// upscale: 2, 3 or 4.
    public var scale = 4
    /// denoise: the noise σ on the [0, 1] scale (nil: estimated from each image).
    public var sigma: Float?
    /// inpaint: the mask image (white = hole); deblur: the blur kernel image.
    public var mask: String?
    public var kernel: String?
    /// A model file or the name of an installed or bundled one (`restore models`); nil: the task's default.
    public var model: String?
    public var steps: Int?
    /// Window side for images larger than the model (DDNM/DreamClean windows, ResShift patches in input pixels).
    public var tile: Int?
    /// Average this many samples (a posterior-mean estimate: higher PSNR, less texture); ResShift only.
    public var average = 1
    public var maxPixels: Int = ImageReader.defaultMaxPixels

    public init(task: RestorationTask) { self.task = task }

    /// The output/input side ratio, for the disk-space estimate.
    public var outputScale: Int { task == .upscale ? scale : 1 }

    /// Checks that need no model: the scale, the required mask, the flags that fit the task.
    public func validate() throws {
        if task == .upscale, ![2, 3, 4].contains(scale) { throw RestorationError("upscale -s takes 2, 3 or 4 (not \(scale))") }
        if task == .inpaint, mask == nil { throw RestorationError("inpaint needs --mask FILE (white = hole, the size of the input)") }
        if task != .inpaint, mask != nil { throw RestorationError("--mask is for inpaint") }
        if task != .deblur, kernel != nil { throw RestorationError("--kernel is for deblur") }
        if task != .denoise, sigma != nil { throw RestorationError("--sigma is for denoise") }
        if let sigma, !(sigma > 0 && sigma <= 1) { throw RestorationError("--sigma must be in (0, 1] (the [0, 1] image scale, e.g. 0.1 for 25/255)") }
        if let tile, tile < 8 { throw RestorationError("-t/--tile must be at least 8 pixels") }
        if !(1...64).contains(average) { throw RestorationError("--average must be between 1 and 64") }
    }

    /// The job for one input: the method and model the task picks (or the model given), with their options.
    public func job(input: String, seed: UInt64?, sample: Int) throws -> RestorationJob {
        let path = try model.map(InstalledModels.resolve)
        // ×4 by default: DiffIR (our model is +0.9 dB Y-PSNR over bicubic on clean and +0.6 on realistic inputs, ResShift −0.5 / −0.2,
        // Benchmarks/QUALITY.md), or ResShift when samples are averaged (--average N: only a sampler has samples to average).
        let kind = try path.map { try InstalledModels.method(of: $0) } ?? (task == .upscale && scale == 4 ? (average > 1 ? "resshift" : "diffir") : nil)
        if kind == "diffir" {
            guard task == .upscale, scale == 4 else { throw RestorationError("\(model ?? "this model") is a DiffIR model: it serves upscale -s 4 only (restore diffir runs the official ×2, ×1 and deblurring files)") }
            guard average == 1 else { throw RestorationError("--average is for ResShift (upscale -s 4); draw separate outputs with --samples") }
            if steps != nil { throw RestorationError("upscale -s 4 runs DiffIR, whose prior always takes its model's 4 steps: drop --steps (ResShift: -n resshift-x4-own)") }
            var options = DiffIROptions()
            options.maxPixels = maxPixels
            if let tile { options.tile = tile }
            return RestorationJob(method: .diffir(options), task: task.rawValue, model: ModelReference(path: path), input: input,
                                  seed: seed ?? 1234, sample: sample, maxPixels: maxPixels)
        }
        if kind == "rddm" {
            guard [.denoise, .dejpeg, .deblur].contains(task), kernel == nil, sigma == nil else {
                throw RestorationError("\(model ?? "this model") is an RDDM model: it serves denoise, dejpeg and deblur blind (no --kernel, no --sigma), or restore rddm")
            }
            var options = RDDMOptions()
            options.maxPixels = maxPixels
            options.steps = steps
            if let tile { options.tile = tile }
            return RestorationJob(method: .rddm(options), task: task.rawValue, model: ModelReference(path: path), input: input,
                                  seed: seed ?? 1234, sample: sample, maxPixels: maxPixels)
        }
        if kind == "ldm" {
            guard (task == .upscale && scale == 4) || task == .inpaint, kernel == nil, sigma == nil else {
                throw RestorationError("\(model ?? "this model") is a latent-diffusion model: it serves upscale -s 4 or inpaint (whichever it was trained for), or restore ldm")
            }
            guard average == 1 else { throw RestorationError("--average is for ResShift (upscale -s 4); draw separate outputs with --samples") }
            var options = LDMOptions()
            (options.maxPixels, options.steps) = (maxPixels, steps)
            options.task = task == .inpaint ? .inpainting : .superResolution
            if let tile { (options.tile, options.overlap) = (tile, tile / 2) }
            return RestorationJob(method: .ldm(options), task: task.rawValue, model: ModelReference(path: path), input: input,
                                  mask: task == .inpaint ? mask : nil, seed: seed ?? 1234, sample: sample, maxPixels: maxPixels)
        }
        if kind == "resshift" {
            guard task == .upscale, scale == 4 else { throw RestorationError("\(model ?? "this model") is a ResShift ×4 model: it serves upscale -s 4 only") }
            var options = ResShiftOptions()
            (options.average, options.maxPixels) = (average, maxPixels)
            if let tile { options.chopSize = tile }
            return RestorationJob(method: .resshift(options), task: task.rawValue, model: ModelReference(path: path, steps: steps), input: input,
                                  seed: seed ?? 12345, sample: sample, maxPixels: maxPixels)
        }
        guard average == 1 else { throw RestorationError("--average is for ResShift (upscale -s 4); draw separate outputs with --samples") }
        let prior = ModelReference(path: path)
        func ddnm(_ degradation: String, sigma: Float = 0) -> RestorationJob {
            var options = DDNMOptions(degradation: degradation)
            (options.sigmaY, options.window, options.maxPixels) = (sigma, tile, maxPixels)
            if let steps { options.steps = steps }
            return RestorationJob(method: .ddnm(options), task: task.rawValue, model: prior, input: input, seed: seed ?? 1234, sample: sample, maxPixels: maxPixels)
        }
        func dreamclean() -> RestorationJob {
            var options = DreamCleanOptions()
            // --steps sets both the DDIM inversion and the sampling steps (the method's two halves).
            (options.steps, options.inversionSteps, options.window, options.maxPixels) = (steps, steps, tile, maxPixels)
            return RestorationJob(method: .dreamclean(options), task: task.rawValue, model: prior, input: input, seed: seed ?? 1234, sample: sample,
                                  maxPixels: maxPixels)
        }
        switch task {
        case .upscale: return ddnm("bicubic:\(scale)")
        case .denoise: return ddnm("noise", sigma: sigma ?? 0)
        case .dejpeg: return dreamclean()
        case .deblur: return kernel.map { ddnm("blur:\($0)") } ?? dreamclean()
        case .inpaint: return ddnm("mask:\(mask ?? "")")
        case .colorize: return ddnm("gray")
        }
    }
}

/// The models a person can name with `-n`: every model file in the bundled-model folders, by file name
/// with or without its extension.
public enum InstalledModels {
    public struct Entry: Sendable {
        public let name: String
        public let path: String
        public let bytes: Int
    }

    public static let extensions = ["safetensors", "pt", "pth", "ckpt"]

    /// Every model file in the search folders (the first of each name wins), sorted by name.
    public static func all() -> [Entry] {
        var seen = Set<String>(), entries: [Entry] = []
        for folder in BundledModels.searchFolders() {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
            for name in names.sorted() where extensions.contains((name as NSString).pathExtension.lowercased()) && !seen.contains(name) {
                seen.insert(name)
                let path = (folder as NSString).appendingPathComponent(name)
                entries.append(Entry(name: name, path: path, bytes: (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0))
            }
        }
        return entries.sorted { $0.name < $1.name }
    }

    /// A path as given if it exists, else an installed model of that name (with or without extension).
    public static func resolve(_ name: String) throws -> String {
        if FileManager.default.fileExists(atPath: name) { return name }
        return try installed(name)
    }

    /// An installed model's path by its name only (never a path: for the service).
    public static func installed(_ name: String) throws -> String {
        if let entry = all().first(where: { $0.name == name || ($0.name as NSString).deletingPathExtension == name }) { return entry.path }
        throw RestorationError("no model file or installed model named \(name) (restore models lists them)")
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var families: [String: String?] = [:]

    /// The method a task runs a named model with: "resshift" for our ResShift exports, "diffir" for DiffIR networks
    /// (ours or official), nil for diffusion priors; read once per file (size and date) for a whole folder run.
    static func method(of path: String) throws -> String? {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        let key = "\(path)|\(attributes?[.size] ?? 0)|\((attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)"
        lock.lock()
        if let known = families[key] { lock.unlock(); return known }
        lock.unlock()
        let description = try ModelCatalog.describe(path: path)
        let answer: String? = switch description.ownFamily ?? description.family?.name {
        case ModelCatalog.ownResShiftFamily?: "resshift"
        case ModelCatalog.ownDiffIRFamily?, "diffir"?: "diffir"
        case ModelCatalog.ownRDDMFamily?, "rddm"?: "rddm"
        case "ldm"?, ModelCatalog.ownLDMFamily?: "ldm"
        default: nil
        }
        lock.lock()
        families[key] = answer
        lock.unlock()
        return answer
    }
}
