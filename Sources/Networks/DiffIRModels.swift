import Checkpoints
import Engine
import Foundation

/// Loads DiffIR stage-2 networks from official BasicSR `.pth` files (`params_ema` preferred, as
/// `inference_diffir.py` loads it) or our own `.safetensors` exports (configuration in the metadata).
///
/// An official file holds the denoise MLP and CPEN twice, because `DDPM(denoise=…, condition=…)` registers the
/// same modules again as `diffusion.model.*` and `diffusion.condition.*`, plus the diffusion's schedule buffers
/// `diffusion.betas`, `diffusion.alphas_cumprod`, …: the aliases are checked to equal the modules they alias and
/// the buffers are handed back for the caller to check against the schedule; neither is "unexpected".
public enum DiffIRLoader {
    public struct Loaded {
        public let network: DiffIRNetwork
        public let configuration: DiffIRConfiguration
        /// The file's `diffusion.<name>` schedule buffers (empty for our exports).
        public let scheduleBuffers: [String: [Float]]
        public let checkpoint: Checkpoint
        /// Where the tensors were found (`params_ema`, …).
        public let source: String
    }

    static let aliases = [("diffusion.model.", "denoise."), ("diffusion.condition.", "condition.")]

    /// True for a state dict of DiffIR stage 2 (DIRformer, CPEN and the denoise MLP).
    public static func recognises(_ state: StateDict) -> Bool {
        state["G.patch_embed.proj.weight"] != nil && state["condition.E.0.weight"] != nil && state["denoise.resmlp.0.weight"] != nil
    }

    /// The configuration read from the names and shapes: the task from CPEN's input channels and the tail, the
    /// widths, block counts, heads, LayerNorm type and hidden widths from the blocks, the schedule from the buffers.
    public static func detect(_ state: StateDict) throws -> DiffIRConfiguration {
        func shape(_ key: String) -> [Int]? { state[key]?.shape }
        func count(_ prefix: String, _ suffix: String) -> Int {
            var n = 0
            while state[prefix + "\(n)" + suffix] != nil { n += 1 }
            return n
        }
        guard recognises(state), let embed = shape("G.patch_embed.proj.weight"), embed.count == 4,
              let cpen = shape("condition.E.0.weight"), cpen.count == 4 else {
            throw CheckpointError.stateDictNotFound(reason: "not a DiffIR stage-2 network (G.*, condition.*, denoise.* expected)")
        }
        let dim = embed[0]
        let task: DiffIRTask
        switch (state["G.output.weight"] != nil, embed[1], cpen[1]) {
        case (true, 3, 48): task = .deblur
        case (false, 3, 3): task = .sr4
        case (false, 12, 12): task = .sr2
        case (false, 48, 48): task = .sr1
        default:
            throw CheckpointError.stateDictNotFound(reason: "a DiffIR network with \(embed[1]) DIRformer and \(cpen[1]) CPEN input channels fits no known task (×4, ×2, ×1, deblur)")
        }
        let numBlocks = ["encoder_level1", "encoder_level2", "encoder_level3", "latent"].map { count("G.\($0).", ".norm1.body.weight") }
        let refinement = count("G.refinement.", ".norm1.body.weight")
        let levels = ["encoder_level1", "encoder_level2", "encoder_level3", "latent"]
        var heads: [Int] = []
        for (level, name) in levels.enumerated() {
            // A level without blocks keeps the official default head count (it has no parameter to read it from).
            heads.append(shape("G.\(name).0.attn.temperature")?.first ?? [1, 2, 4, 8][level])
        }
        let withBias = state["G.encoder_level1.0.norm1.body.bias"] != nil || state["G.refinement.0.norm1.body.bias"] != nil
        // The expansion factor: a known one that reproduces every stored hidden width (int() truncates), else hidden/C.
        var hiddens: [(channels: Int, hidden: Int)] = []
        for (level, name) in levels.enumerated() {
            if let s = shape("G.\(name).0.ffn.project_out.weight"), s.count >= 2 { hiddens.append((dim << level, s[1])) }
        }
        let candidates = [2.2, 2.66, 2.0, 1.0, 3.0, 4.0] + hiddens.prefix(1).map { Double($0.hidden) / Double($0.channels) }
        guard let ffn = candidates.first(where: { f in hiddens.allSatisfy { Int(Double($0.channels) * f) == $0.hidden } }) else {
            throw CheckpointError.stateDictNotFound(reason: "DiffIR feed-forward widths \(hiddens.map(\.hidden)) follow no single expansion factor")
        }
        let (encoderRes, denoiseRes) = (countResBlocks(state), countDenoise(state))
        var c = DiffIRConfiguration(task: task, dim: dim, numBlocks: numBlocks, refinementBlocks: refinement, heads: heads, ffnExpansion: ffn,
                                    layerNorm: withBias ? "WithBias" : "BiasFree", encoderResBlocks: encoderRes, denoiseResBlocks: denoiseRes)
        if let betas = try state["diffusion.betas"]?.floatTensor().values, let first = betas.first, let last = betas.last {
            (c.timesteps, c.linearStart, c.linearEnd) = (betas.count, Double(first), Double(last))
            // Back to the decimal the YAML wrote (0.1, 0.99), so the schedule is recomputed from it exactly.
            c.linearStart = (c.linearStart * 1e6).rounded() / 1e6
            c.linearEnd = (c.linearEnd * 1e6).rounded() / 1e6
        }
        return c
    }

    /// ResBlocks in CPEN: `condition.E.{2+i}.body.0.weight` for i = 0, 1, …
    static func countResBlocks(_ state: StateDict) -> Int {
        var n = 0
        while state["condition.E.\(2 + n).body.0.weight"] != nil { n += 1 }
        return n
    }

    /// Layers after the first in the denoise MLP: `denoise.resmlp.{2+i}.resmlp.0.weight`.
    static func countDenoise(_ state: StateDict) -> Int {
        var n = 0
        while state["denoise.resmlp.\(2 + n).resmlp.0.weight"] != nil { n += 1 }
        return n
    }

    /// Loads `path`: configuration given, else the metadata "config" (our exports), else detected from the weights.
    public static func load(path: String, configuration given: DiffIRConfiguration? = nil) throws -> Loaded {
        let checkpoint = try Checkpoint(path: path)
        let state = try checkpoint.stateDict()
        var configuration = given
        if configuration == nil, let json = checkpoint.metadata["config"] {
            do {
                configuration = try JSONDecoder().decode(DiffIRConfiguration.self, from: Data(json.utf8))
            } catch {
                throw CheckpointError.stateDictNotFound(reason: "\(path): metadata \"config\" is not a DiffIR configuration (\(error))")
            }
        }
        guard recognises(state) else {
            let family = ModelFamily.recognise(state).map { " (it looks like \($0))" } ?? ""
            throw CheckpointError.stateDictNotFound(reason: "\(path) is not a DiffIR stage-2 network (G.*, condition.*, denoise.*)\(family)")
        }
        let chosen = try configuration ?? detect(state)
        let bound = try state.bind(try DiffIRNetwork.parameterDeclarations(chosen),
                                   ignoreUnexpected: { name in name.hasPrefix("diffusion.") || name.hasSuffix("num_batches_tracked") })
        // The aliases must be the modules they alias; every other `diffusion.*` entry is a schedule buffer.
        var buffers: [String: [Float]] = [:]
        var problems: [String] = []
        for (name, stored) in state.tensors where name.hasPrefix("diffusion.") {
            if let (alias, target) = aliases.first(where: { name.hasPrefix($0.0) }) {
                let original = target + name.dropFirst(alias.count)
                guard let tensor = bound[original] else { problems.append("\(name) aliases \(original), which the network does not have"); continue }
                let copy = try stored.floatTensor()
                if copy.count != tensor.count || (0..<copy.count).contains(where: { copy.data[$0] != tensor.data[$0] }) {
                    problems.append("\(name) differs from \(original)")
                }
            } else if !name.dropFirst("diffusion.".count).contains(".") {
                buffers[String(name.dropFirst("diffusion.".count))] = try stored.floatTensor().values
            } else {
                problems.append("\(name) is neither an alias of denoise./condition. nor a schedule buffer")
            }
        }
        guard problems.isEmpty else {
            throw CheckpointError.stateDictNotFound(reason: "\(path): \(problems.prefix(3).joined(separator: "; "))\(problems.count > 3 ? " (and \(problems.count - 3) more)" : "")")
        }
        return Loaded(network: try DiffIRNetwork(chosen, parameters: .bound(bound)), configuration: chosen, scheduleBuffers: buffers,
                      checkpoint: checkpoint, source: state.source)
    }
}
