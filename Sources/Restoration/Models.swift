import Checkpoints
import Engine
import Foundation
import Methods
import Networks

/// Where the models shipped in the repository's `Models/` folder are found at run time.
public enum BundledModels {
    /// The project's own prior, the default of `ddnm` and `dreamclean` (Models/adm64-prior.md).
    public static let defaultPrior = "adm64-prior.safetensors"
    /// The project's own ×4 ResShift model, the default of `resshift` (Models/resshift-x4-own.md).
    public static let defaultResShift = "resshift-x4-own.safetensors"
    /// The project's own ×4 DiffIR model, the default of `diffir` (Models/diffir-x4-own.md).
    public static let defaultDiffIR = "diffir-x4-own.safetensors"
    /// The project's own RDDM restoration model, the default of `rddm` (Models/rddm-own.md).
    public static let defaultRDDM = "rddm-own.safetensors"
    /// The project's own ×4 latent-diffusion model, the default of `ldm` when bundled (Models/ldm-x4-own.md).
    public static let defaultLDM = "ldm-x4-own.safetensors"

    /// The folders searched: $DIFFUSIONRESTORE_MODELS alone when set; otherwise, in order, `Models/` next to the
    /// executable's build folder (a source checkout: .build/<config>/restore → Models/), `../share/diffusionrestore/Models`
    /// (an install prefix), and `./Models`.
    public static func searchFolders() -> [String] {
        if let env = ProcessInfo.processInfo.environment["DIFFUSIONRESTORE_MODELS"], !env.isEmpty { return [env] }  // chosen: only there
        var folders: [String] = []
        // The executable's real location (/proc/self/exe: argv[0] is a bare name when run through PATH).
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments.first ?? ""
        let executable = URL(fileURLWithPath: exe).resolvingSymlinksInPath().deletingLastPathComponent()
        var folder = executable
        for _ in 0..<5 {
            folders.append(folder.appendingPathComponent("Models").path)
            folder = folder.deletingLastPathComponent()
        }
        folders.append(executable.deletingLastPathComponent().appendingPathComponent("share/diffusionrestore/Models").path)
        folders.append(FileManager.default.currentDirectoryPath + "/Models")
        return folders
    }

    /// The path of a bundled model, or a one-line failure naming where it was looked for.
    public static func locate(_ name: String) throws -> String {
        let folders = searchFolders()
        for folder in folders {
            let path = (folder as NSString).appendingPathComponent(name)
            if FileManager.default.isReadableFile(atPath: path) { return path }
        }
        throw RestorationError("no --model given and the bundled model \(name) was not found (looked in \(folders.count == 1 ? folders[0] : "Models/ near the executable and ./Models")); pass --model FILE")
    }
}

/// An unconditional (or class-conditional) ε-prior, loaded once and shared by every request: DDNM and
/// DreamClean run on it. Immutable; the network's weights are read-only after loading.
public final class LoadedPrior: @unchecked Sendable {
    public let network: any DiffusionNetwork
    public let architecture: NetworkArchitecture
    public let preset: NetworkPreset?
    public let path: String
    public let sha256: String
    public let loadSeconds: Double
    /// DDIM η that the model card recommends (the sidecar JSON's "defaults": {"eta": …}); nil: none.
    public var recommendedEta: Float?
    public var name: String { (path as NSString).lastPathComponent }
    public var nativeSize: Int { architecture.nativeSize }

    init(network: any DiffusionNetwork, architecture: NetworkArchitecture, preset: NetworkPreset?, path: String, sha256: String, loadSeconds: Double) {
        self.network = network
        self.architecture = architecture
        self.preset = preset
        self.path = path
        self.sha256 = sha256
        self.loadSeconds = loadSeconds
    }

    /// Loads `path` (default: the bundled prior) with a forced preset or JSON architecture, else detection.
    public static func load(path given: String?, preset: String? = nil, modelConfig: String? = nil) throws -> LoadedPrior {
        let started = Date()
        let path = try given ?? BundledModels.locate(BundledModels.defaultPrior)
        var forced = try preset.map { name -> NetworkArchitecture in
            guard let p = NetworkPreset.named(name) else { throw RestorationError("unknown preset \(name); known: \(NetworkPreset.all.map(\.name).joined(separator: ", "))") }
            return p.architecture
        }
        if let modelConfig { forced = try NetworkArchitecture.decode(jsonFile: modelConfig) }
        let model = try ModelCatalog.describe(path: path)
        let architecture = try model.priorArchitecture(forced: forced)
        let prior = LoadedPrior(network: try NetworkLoader.build(architecture, state: model.stateDict), architecture: architecture, preset: model.preset,
                                path: path, sha256: try SHA256.hex(ofFile: path), loadSeconds: Date().timeIntervalSince(started))
        prior.recommendedEta = model.recommendedDefaults["eta"].map(Float.init)
        return prior
    }

    /// A zero-cost stand-in ε-network of native size `native` (ε = 0), for memory and tiling measurements.
    public static func standIn(nativeSize native: Int) -> LoadedPrior {
        LoadedPrior(network: ZeroNetwork(), architecture: .adm(ADMConfiguration(imageSize: native, modelChannels: 8, outChannels: 3, numResBlocks: 1,
                                                                                attentionResolutions: [], channelMult: [1, 1, 1, 1])),
                    preset: nil, path: "stand-in", sha256: "stand-in", loadSeconds: 0)
    }

    /// One log line: what was loaded, its architecture and how long it took.
    public func summary(command: String) -> String {
        "\(command): prior \(name) (\(preset?.name ?? "custom architecture"), native \(nativeSize)²) loaded in \(String(format: "%.1f", loadSeconds)) s"
    }

    /// Checks a class id against the prior: required for class-conditional priors, refused otherwise.
    func check(classID: Int?) throws {
        let count = network.classCount
        if let count, classID == nil { throw RestorationError("this prior is class-conditional: pass --class ID (0–\(count - 1))") }
        if let classID, let count, !(0..<count).contains(classID) { throw RestorationError("--class \(classID) is outside 0–\(count - 1)") }
        if count == nil, classID != nil { throw RestorationError("--class needs a class-conditional prior") }
    }

    /// The prior as a sampler's ε-function (class labels repeated per sample), stopping at the next network
    /// evaluation once `context` is cancelled.
    func predictor(classID: Int?, context: RestorationContext) -> Denoiser {
        let epsilon = network.epsilon(classID: classID)
        return { x, t in
            try context.checkCancellation()
            return try epsilon(x, t)
        }
    }
}

/// The zero-cost ε-network of a stand-in prior (ε = 0): measures the tiling, canvas and writer alone.
final class ZeroNetwork: DiffusionNetwork {
    var inputChannels: Int { 3 }
    var outputChannels: Int { 3 }
    var sizeMultiple: Int { 8 }
    var classCount: Int? { nil }
    func callAsFunction(_ x: Tensor, timesteps: [Float], classLabels: [Int]?) throws -> Tensor { try Tensor(shape: x.shape, repeating: 0) }
}
