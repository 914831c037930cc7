import Foundation
import ImageIO
import Restoration

/// Turns an upload form into a `RestorationJob`: the image (and mask or kernel) checked and stored under
/// server-chosen names, the "job" JSON decoded straight into a task request or a method's `Codable` options
/// and validated with the CLI's messages. Nothing a client sends becomes a path.
struct Submission {
    let job: RestorationJob
    let label: String
    let files: [String]

    static let methods = ["ddnm", "dreamclean", "resshift", "diffir", "rddm", "ldm"]

    init(form: MultipartForm, store: JobStore) throws {
        let configuration = store.configuration
        guard let imagePart = form["image"], !imagePart.bytes.isEmpty else {
            throw ServiceError(.badRequest, "the form needs an image part (the photo to restore)")
        }
        var files: [String] = []
        var committed = false
        defer { if !committed { files.forEach { try? FileManager.default.removeItem(atPath: $0) } } }
        /// Checks an uploaded image (format from its bytes, pixel limit from the header before decoding) and stores it.
        func keep(_ part: MultipartForm.Part, as kind: String) throws -> (path: String, image: Image) {
            let image: Image
            do {
                image = try ImageReader.decode(part.bytes, name: kind, maxPixels: configuration.maxPixels)
            } catch {
                switch error {
                case .tooManyPixels: throw ServiceError(.unprocessable, "\(error)")
                case .unsupportedFormat: throw ServiceError(.unsupportedMediaType, "\(error)")
                default: throw ServiceError(.badRequest, "\(error)")
                }
            }
            let ext: String
            switch DetectedImageFormat(leadingBytes: part.bytes) {
            case .jpeg: ext = "jpg"
            case .webp: ext = "webp"
            default: ext = "png"
            }
            let path = try storeFile(part.bytes, kind: kind, ext: ext, in: configuration.workFolder)
            files.append(path)
            return (path, image)
        }
        let (imagePath, image) = try keep(imagePart, as: "image")
        let mask = try form["mask"].map { try keep($0, as: "mask") }
        let kernel = try form["kernel"].map { try keep($0, as: "kernel") }
        if let mask, mask.image.width != image.width || mask.image.height != image.height {
            throw ServiceError(.unprocessable, "the mask is \(mask.image.width)×\(mask.image.height), the image \(image.width)×\(image.height): they must be the same size")
        }
        let spec: [String: Any]
        let fields: JobFields
        let jobJSON = form["job"]?.bytes ?? Array(#"{"task":"upscale"}"#.utf8)
        guard let object = (try? JSONSerialization.jsonObject(with: Data(jobJSON))) as? [String: Any] else {
            throw ServiceError(.badRequest, "the job part is not a JSON object")
        }
        spec = object
        do { fields = try JSONDecoder().decode(JobFields.self, from: Data(jobJSON)) } catch let error as DecodingError {
            throw ServiceError(.badRequest, "job: \(Self.describe(error))")
        }
        let seed = fields.seed
        if let task = fields.task {
            guard let kind = RestorationTask(rawValue: task) else {
                throw ServiceError(.badRequest, "unknown task \(task) (\(RestorationTask.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            var request = TaskRequest(task: kind)
            if let scale = fields.scale { request.scale = scale }
            request.sigma = fields.sigma
            request.steps = fields.steps
            request.tile = fields.tile
            if let average = fields.average { request.average = average }
            request.model = try Self.model(spec["model"]).map(InstalledModels.installed)
            request.mask = mask?.path
            request.kernel = kernel?.path
            request.maxPixels = configuration.maxPixels
            do {
                try request.validate()
                job = try request.job(input: imagePath, seed: seed, sample: 0)
            } catch let error as ServiceError { throw error } catch { throw ServiceError(.badRequest, "\(error)") }
        } else if let method = fields.method {
            guard Self.methods.contains(method) else { throw ServiceError(.badRequest, "unknown method \(method) (\(Self.methods.joined(separator: ", ")))") }
            var options = spec["options"] as? [String: Any] ?? [:]
            if let degradation = options["degradation"] as? String {
                options["degradation"] = try Self.degradation(degradation, mask: mask?.path, kernel: kernel?.path)
            }
            let data = try JSONSerialization.data(withJSONObject: options)
            let model = ModelReference(path: try Self.model(spec["model"]).map(InstalledModels.installed))
            do {
                let decoder = JSONDecoder()
                switch method {
                case "ddnm":
                    var o = try decoder.decode(DDNMOptions.self, from: data)
                    o.maxPixels = configuration.maxPixels
                    try o.validate()
                    job = RestorationJob(method: .ddnm(o), model: model, input: imagePath, seed: seed ?? 1234, maxPixels: configuration.maxPixels)
                case "dreamclean":
                    var o = try decoder.decode(DreamCleanOptions.self, from: data)
                    o.maxPixels = configuration.maxPixels
                    job = RestorationJob(method: .dreamclean(o), model: model, input: imagePath, seed: seed ?? 1234, maxPixels: configuration.maxPixels)
                case "diffir":
                    var o = try decoder.decode(DiffIROptions.self, from: data)
                    o.maxPixels = configuration.maxPixels
                    try o.validate()
                    job = RestorationJob(method: .diffir(o), model: model, input: imagePath, seed: seed ?? 1234, maxPixels: configuration.maxPixels)
                case "rddm":
                    var o = try decoder.decode(RDDMOptions.self, from: data)
                    o.maxPixels = configuration.maxPixels
                    o.simulate = nil  // the service restores what it is given
                    try o.validate()
                    job = RestorationJob(method: .rddm(o), model: model, input: imagePath, seed: seed ?? 1234, maxPixels: configuration.maxPixels)
                case "ldm":
                    var o = try decoder.decode(LDMOptions.self, from: data)
                    o.maxPixels = configuration.maxPixels
                    o.simulate = false  // the service restores what it is given
                    try o.validate()
                    guard model.path != nil || (try? BundledModels.locate(BundledModels.defaultLDM)) != nil else {
                        throw ServiceError(.badRequest, "method ldm needs a model (no LDM model is bundled with this installation)")
                    }
                    if o.task == .inpainting, mask == nil { throw ServiceError(.badRequest, "LDM inpainting needs a mask part") }
                    job = RestorationJob(method: .ldm(o), model: model, input: imagePath, mask: mask?.path, seed: seed ?? 1234, maxPixels: configuration.maxPixels)
                default:
                    var o = try decoder.decode(ResShiftOptions.self, from: data)
                    o.maxPixels = configuration.maxPixels
                    try o.validate()
                    if o.task == .inpaint, mask == nil { throw ServiceError(.badRequest, "ResShift inpainting needs a mask part") }
                    job = RestorationJob(method: .resshift(o), model: model, input: imagePath, mask: o.task == .inpaint ? mask?.path : nil,
                                         seed: seed ?? 12345, maxPixels: configuration.maxPixels)
                }
            } catch let error as ServiceError { throw error } catch let error as DecodingError {
                throw ServiceError(.badRequest, "options: \(Self.describe(error))")
            } catch { throw ServiceError(.badRequest, "\(error)") }
        } else {
            throw ServiceError(.badRequest, "the job needs a task (\(RestorationTask.allCases.map(\.rawValue).joined(separator: ", "))) or a method (\(Self.methods.joined(separator: ", ")))")
        }
        label = Self.label(imagePart.filename)
        self.files = files
        committed = true
    }

    /// A degradation spec whose file references are the uploaded parts: `mask:mask` and `blur:kernel`.
    static func degradation(_ spec: String, mask: String?, kernel: String?) throws -> String {
        let named = ["uni", "gauss", "aniso"], parameterised = ["gauss:", "box:", "motion:"]
        return try spec.split(separator: ",", omittingEmptySubsequences: false).map { part -> String in
            let part = part.trimmingCharacters(in: .whitespaces)
            if part.hasPrefix("mask:") {
                guard part == "mask:mask", let mask else { throw ServiceError(.badRequest, "masks are uploaded as the form's mask part and named mask:mask in the degradation") }
                return "mask:" + mask
            }
            if part.hasPrefix("blur:") {
                let rest = String(part.dropFirst(5))
                if named.contains(rest) || parameterised.contains(where: rest.hasPrefix) { return part }
                guard rest == "kernel", let kernel else { throw ServiceError(.badRequest, "blur kernels are uploaded as the form's kernel part and named blur:kernel") }
                return "blur:" + kernel
            }
            if part.hasPrefix("cs-wht:"), part.split(separator: ":").count > 2 { throw ServiceError(.badRequest, "permutation files cannot be named here") }
            return part
        }.joined(separator: ",")
    }

    /// An installed model's name (`GET /models`); paths are refused.
    static func model(_ value: Any?) throws -> String? {
        guard let value else { return nil }
        guard let name = value as? String, !name.isEmpty, !name.contains("/"), !name.contains("..") else {
            throw ServiceError(.badRequest, "models are named as GET /models lists them, not given as paths")
        }
        return name
    }

    /// The job JSON's own fields (a method's options are decoded separately, into its options type).
    struct JobFields: Decodable {
        var task: String?
        var method: String?
        var scale: Int?
        var sigma: Float?
        var steps: Int?
        var seed: UInt64?
        var tile: Int?
        var average: Int?
    }

    /// The client's file name as a label only: its last component, printable, at most 100 characters.
    static func label(_ filename: String?) -> String {
        let name = (filename ?? "upload").split(separator: "/").last.map(String.init) ?? "upload"
        let clean = String(name.unicodeScalars.filter { $0.value >= 32 && $0.value != 127 && $0 != "\\" }.prefix(100).map(Character.init))
        return clean.isEmpty || clean == "." || clean == ".." ? "upload" : clean
    }

    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, _): return "the key \(key.stringValue) is missing"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? context.debugDescription : "\(path): \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}

/// Writes `bytes` under a fresh server-chosen name in `folder` (mode 0600) and returns the path.
func storeFile(_ bytes: [UInt8], kind: String, ext: String, in folder: String) throws -> String {
    let path = (folder as NSString).appendingPathComponent("\(kind)-\(JobStore.randomID()).\(ext)")
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o600]) else {
        throw ServiceError(.internalError, "the server could not store the upload (disk full?)")
    }
    return path
}
