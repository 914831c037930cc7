import Engine
import Foundation
import ImageIO
import Operators

/// Which model files a job runs on: nil paths mean the bundled models.
public struct ModelReference: Codable, Sendable, Hashable {
    /// A diffusion prior (ddnm, dreamclean), a ResShift or a DiffIR network.
    public var path: String?
    /// Force the prior's architecture: a preset name or a JSON file (guided-diffusion or DDPM arguments).
    public var preset: String?
    public var config: String?
    /// The VQ autoencoder of an official ResShift network.
    public var autoencoder: String?
    /// ResShift's diffusion steps (nil: from the model).
    public var steps: Int?
    /// A zero-cost ε-network of this native size instead of a prior (measurements only).
    public var standInNativeSize: Int?

    public init(path: String? = nil, preset: String? = nil, config: String? = nil, autoencoder: String? = nil, steps: Int? = nil,
                standInNativeSize: Int? = nil) {
        self.path = path
        self.preset = preset
        self.config = config
        self.autoencoder = autoencoder
        self.steps = steps
        self.standInNativeSize = standInNativeSize
    }
}

/// One restoration as data: the CLI, the service and batch workers build these and run them the same way
/// (`RestorationRunner.run`). Sample k of a request is the job with `sample` k: its noise starts at seed + k.
public struct RestorationJob: Codable, Sendable, Equatable {
    public enum Method: Codable, Sendable, Equatable {
        case ddnm(DDNMOptions)
        case dreamclean(DreamCleanOptions)
        case resshift(ResShiftOptions)
        case diffir(DiffIROptions)
        case rddm(RDDMOptions)
        case ldm(LDMOptions)

        public var name: String {
            switch self {
            case .ddnm: "ddnm"
            case .dreamclean: "dreamclean"
            case .resshift: "resshift"
            case .diffir: "diffir"
            case .rddm: "rddm"
            case .ldm: "ldm"
            }
        }
    }

    public var method: Method
    /// The task subcommand that chose the method and model (`upscale`, `dejpeg`, …), reported as `command`;
    /// nil for a method subcommand.
    public var task: String?
    public var model: ModelReference
    /// The input file: an image, or for compressed sensing a .safetensors coefficient file with a tensor "y".
    public var input: String
    /// ResShift and LDM inpainting: the mask image (white = hole).
    public var mask: String?
    /// The input is a clean image: degrade it first and report PSNR/SSIM against it.
    public var simulate = false
    public var seed: UInt64
    public var sample = 0
    /// Images with more pixels than this are refused before decoding.
    public var maxPixels: Int = ImageReader.defaultMaxPixels

    public init(method: Method, task: String? = nil, model: ModelReference = ModelReference(), input: String, mask: String? = nil, simulate: Bool = false,
                seed: UInt64, sample: Int = 0, maxPixels: Int = ImageReader.defaultMaxPixels) {
        self.method = method
        self.task = task
        self.model = model
        self.input = input
        self.mask = mask
        self.simulate = simulate
        self.seed = seed
        self.sample = sample
        self.maxPixels = maxPixels
    }
}

extension RestorationJob {
    /// Why a folder cannot be made: the nearest existing ancestor is a file, or not writable, or is missing.
    static func whyNotCreatable(_ path: String) -> String {
        var ancestor = URL(fileURLWithPath: path).standardizedFileURL
        while ancestor.path != "/" {
            ancestor.deleteLastPathComponent()
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: ancestor.path, isDirectory: &isFolder) else { continue }
            if !isFolder.boolValue { return "\(ancestor.path) is a file, not a folder" }
            if !FileManager.default.isWritableFile(atPath: ancestor.path) { return "no permission to write in \(ancestor.path)" }
            return "\(ancestor.path) does not accept new folders"
        }
        return "no folder on the way exists"
    }

    /// The (input, output) pairs of a request: one for a file; for a folder, every PNG/JPEG/WebP inside, sorted,
    /// written into the output folder (created) under the same base name, with `format`'s extension if given.
    public static func pairs(input: String, output: String, format: String? = nil) throws -> [(input: String, output: String)] {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input, isDirectory: &isFolder) else {
            throw RestorationError("no such file or folder (\(input))")
        }
        guard isFolder.boolValue else { return [(input, output)] }
        let names = try FileManager.default.contentsOfDirectory(atPath: input).filter {
            OutputSettings.formats.contains(($0 as NSString).pathExtension.lowercased())
        }.sorted()
        guard !names.isEmpty else { throw RestorationError("no PNG, JPEG or WebP files in folder (\(input))") }
        do {
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        } catch {
            throw RestorationError("cannot create the output folder \(output): \(Self.whyNotCreatable(output))")
        }
        let ext = format.map { $0.lowercased() == "jpeg" ? "jpg" : $0.lowercased() }
        return names.map { name in
            let base = (name as NSString).deletingPathExtension
            let outName = base + "." + (ext ?? (name as NSString).pathExtension)
            return ((input as NSString).appendingPathComponent(name), (output as NSString).appendingPathComponent(outName))
        }
    }
}

/// Loads each model once and keeps it for every later request (priors and ResShift networks by their
/// reference). Thread-safe; the models it hands out are shared and read-only.
public final class ModelStore: @unchecked Sendable {
    private let lock = NSLock()
    private var priors: [ModelReference: LoadedPrior] = [:]
    private var resshift: [String: LoadedResShift] = [:]
    private var diffir: [String: LoadedDiffIR] = [:]
    private var rddm: [String: LoadedRDDM] = [:]
    private var ldm: [ModelReference: LoadedLDM] = [:]

    public init() {}

    /// The model under `key` in `cache`, loading it (under the lock, so each loads once) on first use; `loaded` is told
    /// when a file was actually read.
    private func cached<Key: Hashable, Model>(_ cache: ReferenceWritableKeyPath<ModelStore, [Key: Model]>, _ key: Key,
                                              load: () throws -> Model, loaded: (Model) -> Void) throws -> Model {
        lock.lock()
        defer { lock.unlock() }
        if let model = self[keyPath: cache][key] { return model }
        let model = try load()
        self[keyPath: cache][key] = model
        loaded(model)
        return model
    }

    /// The RDDM network of `reference`, loading it on first use.
    public func rddm(_ reference: ModelReference, loaded: (LoadedRDDM) -> Void = { _ in }) throws -> LoadedRDDM {
        try cached(\.rddm, reference.path ?? "", load: { try LoadedRDDM.load(path: reference.path) }, loaded: loaded)
    }

    /// The latent-diffusion model of `reference` (with its `autoencoder` and `config` files), loading it on first use.
    public func ldm(_ reference: ModelReference, loaded: (LoadedLDM) -> Void = { _ in }) throws -> LoadedLDM {
        try cached(\.ldm, reference, load: { try LoadedLDM.load(path: reference.path, autoencoder: reference.autoencoder, config: reference.config) },
                   loaded: loaded)
    }

    /// The DiffIR network of `reference`, loading it on first use.
    public func diffir(_ reference: ModelReference, loaded: (LoadedDiffIR) -> Void = { _ in }) throws -> LoadedDiffIR {
        try cached(\.diffir, reference.path ?? "", load: { try LoadedDiffIR.load(path: reference.path) }, loaded: loaded)
    }

    /// The prior of `reference`, loading it on first use; `loaded` is told when a file was actually read.
    public func prior(_ reference: ModelReference, loaded: (LoadedPrior) -> Void = { _ in }) throws -> LoadedPrior {
        try cached(\.priors, reference, load: {
            try reference.standInNativeSize.map { LoadedPrior.standIn(nativeSize: $0) }
                ?? LoadedPrior.load(path: reference.path, preset: reference.preset, modelConfig: reference.config)
        }, loaded: loaded)
    }

    /// The ResShift network of `reference` for `task`, loading it on first use.
    public func resshift(_ reference: ModelReference, task: ResShiftTask, loaded: (LoadedResShift) -> Void = { _ in }) throws -> LoadedResShift {
        let key = "\(reference.path ?? "")|\(reference.autoencoder ?? "")|\(reference.steps.map(String.init) ?? "")|\(task.rawValue)"
        return try cached(\.resshift, key, load: {
            try LoadedResShift.load(path: reference.path, autoencoder: reference.autoencoder, task: task, steps: reference.steps)
        }, loaded: loaded)
    }
}

/// Runs jobs: models from one store, pipelines built once per method and options and reused.
///
/// Concurrency: `run` is not re-entrant; one runner serves one worker. Several runners may share a `ModelStore`.
public final class RestorationRunner {
    public let store: ModelStore
    private var ddnm: [Data: DDNMPipeline] = [:]
    private var dreamclean: [Data: DreamCleanPipeline] = [:]
    private var resshift: [Data: ResShiftPipeline] = [:]
    private var diffir: [Data: DiffIRPipeline] = [:]
    private var rddm: [Data: RDDMPipeline] = [:]
    private var ldm: [Data: LDMPipeline] = [:]
    private var inputSize: String?
    private var inputGray = false

    public init(store: ModelStore = ModelStore()) { self.store = store }

    /// Builds (or reuses) the job's pipeline without running it: validates the options and loads the model, so
    /// a command can refuse bad options before reading any input.
    public func prepare(_ job: RestorationJob, context: RestorationContext = RestorationContext()) throws {
        switch job.method {
        case .ddnm(let options): _ = try ddnmPipeline(options, job: job, context: context)
        case .dreamclean(let options): _ = try dreamcleanPipeline(options, job: job, context: context)
        case .resshift(let options): _ = try resshiftPipeline(options, job: job, context: context)
        case .diffir(let options): _ = try diffirPipeline(options, job: job, context: context)
        case .rddm(let options): _ = try rddmPipeline(options, job: job, context: context)
        case .ldm(let options): _ = try ldmPipeline(options, job: job, context: context)
        }
    }

    /// Runs one job: the method's pipeline on the job's input, with where it ran and the task in the report.
    public func run(_ job: RestorationJob, panels: RestorationPanels = [], context: RestorationContext = RestorationContext()) throws -> RestorationResult {
        (inputSize, inputGray) = (nil, false)
        var result = try runPipeline(job, panels: panels, context: context)
        result.report.inputSize = inputSize
        // A gray photo stays gray (the channel mean, which the gray operator observes), unless it is being coloured.
        if inputGray, !(result.report.operator ?? "").split(separator: ",").contains("gray"), result.image.shape[3] == 3 {
            result.image = try GrayscaleOperator().apply(result.image)
        }
        result.report.command = job.task ?? job.method.name
        result.report.outputSize = "\(result.image.shape[2])×\(result.image.shape[1])"
        result.report.threads = Parallel.threadCount
        result.report.cpu = CPU.modelDescription
        return result
    }

    private func runPipeline(_ job: RestorationJob, panels: RestorationPanels, context: RestorationContext) throws -> RestorationResult {
        let seed = job.seed &+ UInt64(job.sample)
        switch job.method {
        case .ddnm(let options):
            let pipeline = try ddnmPipeline(options, job: job, context: context)
            let input: DDNMInput
            if (job.input as NSString).pathExtension.lowercased() == "safetensors" {
                guard !job.simulate else { throw RestorationError("--simulate needs a clean image, not a coefficient file (\(job.input))") }
                input = .coefficients(try Observations.coefficients(job.input))
            } else {
                let image = try read(job.input, job)
                let limit = min(options.window ?? pipeline.prior.nativeSize, pipeline.prior.nativeSize)
                if !job.simulate, let padding = AnySizePadding(width: image.width, height: image.height,
                                                               scale: AnySizePadding.scale(of: pipeline.degradation, width: image.width, height: image.height),
                                                               multiple: pipeline.prior.network.sizeMultiple, limit: limit) {
                    let masks = try paddedMasks(options.degradation, padding, job)
                    let padded = masks.isEmpty ? pipeline : try DDNMPipeline(prior: pipeline.prior, options: options, seed: job.seed, attachments: masks)
                    let (color, alpha) = image.splittingAlpha()
                    return try padding.crop(try padded.restore(.image(padding.pad(color)), name: job.input, seed: seed, context: context), alpha: alpha)
                }
                input = job.simulate ? .simulate(clean: image) : .image(image)
            }
            return try pipeline.restore(input, name: job.input, seed: seed, panels: panels, context: context)
        case .dreamclean(let options):
            let pipeline = try dreamcleanPipeline(options, job: job, context: context)
            let image = try read(job.input, job)
            if let padding = AnySizePadding(width: image.width, height: image.height,
                                            scale: AnySizePadding.scale(of: pipeline.degradation, width: image.width, height: image.height),
                                            multiple: pipeline.prior.network.sizeMultiple, limit: .max) {
                let masks = try paddedMasks(options.degradation ?? "", padding, job)
                let padded = masks.isEmpty ? pipeline : try DreamCleanPipeline(prior: pipeline.prior, options: options, attachments: masks)
                let (color, alpha) = image.splittingAlpha()
                return try padding.crop(try padded.restore(padding.pad(color), name: job.input, seed: seed, context: context), alpha: alpha)
            }
            return try pipeline.restore(image, name: job.input, seed: seed, context: context)
        case .resshift(let options):
            let pipeline = try resshiftPipeline(options, job: job, context: context)
            let image = try read(job.input, job)
            let mask = try job.mask.map { try ImageReader.read(path: $0, maxPixels: job.maxPixels) }
            return try pipeline.restore(job.simulate ? .simulate(clean: image) : .image(image, mask: mask), name: job.input, maskName: job.mask ?? "mask",
                                        seed: seed, panels: panels, context: context)
        case .diffir(let options):
            let pipeline = try diffirPipeline(options, job: job, context: context)
            let image = try read(job.input, job)
            return try pipeline.restore(job.simulate ? .simulate(clean: image) : .image(image), name: job.input, seed: seed, panels: panels, context: context)
        case .rddm(var options):
            if !job.simulate { options.simulate = nil }
            let pipeline = try rddmPipeline(options, job: job, context: context)
            return try pipeline.restore(try read(job.input, job), name: job.input, seed: seed, panels: panels, context: context)
        case .ldm(var options):
            options.simulate = options.simulate || job.simulate
            let pipeline = try ldmPipeline(options, job: job, context: context)
            let image = try read(job.input, job)
            let mask = try job.mask.map { try ImageReader.read(path: $0, maxPixels: job.maxPixels) }
            return try pipeline.restore(image, mask: mask, name: job.input, maskName: job.mask ?? "mask", seed: seed, panels: panels, context: context)
        }
    }

    /// The masks of a degradation spec, read and padded as `padding` pads the image (by their spec names).
    private func paddedMasks(_ spec: String, _ padding: AnySizePadding, _ job: RestorationJob) throws -> [String: Image] {
        var masks: [String: Image] = [:]
        for part in spec.split(separator: ",") where part.hasPrefix("mask:") {
            let path = String(part.dropFirst(5))
            masks[path] = padding.pad(try ImageReader.read(path: path, maxPixels: job.maxPixels))
        }
        return masks
    }

    /// Reads the job's input image, noting its size for the report.
    private func read(_ path: String, _ job: RestorationJob) throws -> Image {
        let image = try ImageReader.read(path: path, maxPixels: job.maxPixels)
        inputSize = "\(image.width)×\(image.height)"
        inputGray = image.colorChannels == 1
        return image
    }

    private func key(_ options: some Encodable, _ job: RestorationJob) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return try encoder.encode(options) + encoder.encode(job.model)
    }

    /// The pipeline under `key` in `cache`, built on first use: `validate` runs first (so bad options fail before a
    /// model is loaded), then `build` loads the model through the store and makes the pipeline.
    private func pipeline<P>(_ cache: ReferenceWritableKeyPath<RestorationRunner, [Data: P]>, _ key: Data, validate: () throws -> Void,
                             build: () throws -> P) throws -> P {
        if let pipeline = self[keyPath: cache][key] { return pipeline }
        try validate()
        let pipeline = try build()
        self[keyPath: cache][key] = pipeline
        return pipeline
    }

    private func ddnmPipeline(_ options: DDNMOptions, job: RestorationJob, context: RestorationContext) throws -> DDNMPipeline {
        // The seed is part of the key: it draws cs-wht's permutation.
        try pipeline(\.ddnm, try key(options, job) + Data("\(job.seed)".utf8), validate: options.validate) {
            try DDNMPipeline(prior: try store.prior(job.model) { context.emit(.log($0.summary(command: "ddnm"))) }, options: options, seed: job.seed)
        }
    }

    private func dreamcleanPipeline(_ options: DreamCleanOptions, job: RestorationJob, context: RestorationContext) throws -> DreamCleanPipeline {
        try pipeline(\.dreamclean, try key(options, job), validate: {}) {
            try DreamCleanPipeline(prior: try store.prior(job.model) { context.emit(.log($0.summary(command: "dreamclean"))) }, options: options)
        }
    }

    private func resshiftPipeline(_ options: ResShiftOptions, job: RestorationJob, context: RestorationContext) throws -> ResShiftPipeline {
        try pipeline(\.resshift, try key(options, job), validate: options.validate) {
            try ResShiftPipeline(model: try store.resshift(job.model, task: options.task) { context.emit(.log($0.summary())) }, options: options)
        }
    }

    private func rddmPipeline(_ options: RDDMOptions, job: RestorationJob, context: RestorationContext) throws -> RDDMPipeline {
        try pipeline(\.rddm, try key(options, job), validate: options.validate) {
            try RDDMPipeline(model: try store.rddm(job.model) { context.emit(.log($0.summary())) }, options: options)
        }
    }

    private func ldmPipeline(_ options: LDMOptions, job: RestorationJob, context: RestorationContext) throws -> LDMPipeline {
        try pipeline(\.ldm, try key(options, job), validate: options.validate) {
            try LDMPipeline(model: try store.ldm(job.model) { context.emit(.log($0.summary())) }, options: options)
        }
    }

    private func diffirPipeline(_ options: DiffIROptions, job: RestorationJob, context: RestorationContext) throws -> DiffIRPipeline {
        try pipeline(\.diffir, try key(options, job), validate: options.validate) {
            try DiffIRPipeline(model: try store.diffir(job.model) { context.emit(.log($0.summary())) }, options: options)
        }
    }
}
