import Checkpoints
import Engine
import Foundation

/// Loads ResShift networks and autoencoders from official `.pth` files or our own `.safetensors` exports.
/// The official loader (`utils/util_net.py:86-98`) copies every key of the model's state dict, unwrapping
/// `state_dict` and `module.` / `_orig_mod.`; the buffers `relative_position_index` and `attn_mask` that the
/// files also carry are recomputed here (bit-exactly, quirk included) and so are skipped.
public enum ResShiftLoader {
    static func isRecomputedBuffer(_ name: String) -> Bool {
        name.hasSuffix("relative_position_index") || name.hasSuffix("attn_mask") || name.hasSuffix("num_batches_tracked")
    }

    /// Entries the official loader would not copy either: a training loss (the CompVis autoencoders carry their
    /// discriminator and LPIPS under `loss.`) and an EMA copy (`model_ema.`), besides the recomputed buffers.
    static func isIgnorable(_ name: String) -> Bool {
        isRecomputedBuffer(name) || name.hasPrefix("loss.") || name.hasPrefix("model_ema.")
    }

    /// The network in `path`. Its configuration: the one given, else the file's metadata "config" (our exports),
    /// else the released ×4 SR architecture when the names and shapes match it exactly.
    public static func loadUNet(path: String, configuration: ResShiftUNetConfiguration? = nil) throws
        -> (network: ResShiftUNet, configuration: ResShiftUNetConfiguration, checkpoint: Checkpoint) {
        try loadUNet(checkpoint: try Checkpoint(path: path), configuration: configuration)
    }

    /// The same from a checkpoint already open (its metadata read by the caller).
    public static func loadUNet(checkpoint: Checkpoint, configuration: ResShiftUNetConfiguration? = nil) throws
        -> (network: ResShiftUNet, configuration: ResShiftUNetConfiguration, checkpoint: Checkpoint) {
        let path = checkpoint.path
        let state = try checkpoint.stateDict()
        var chosen = configuration
        if chosen == nil, let json = checkpoint.metadata["config"] {
            do {
                chosen = try JSONDecoder().decode(ResShiftUNetConfiguration.self, from: Data(json.utf8))
            } catch {
                throw CheckpointError.stateDictNotFound(reason: "\(path): metadata \"config\" is not a UNetModelSwin configuration (\(error))")
            }
        }
        if chosen == nil {
            let stored = Dictionary(state.tensors.map { ($0.name, $0.tensor.shape) }, uniquingKeysWith: { a, _ in a })
            let declared = try ResShiftUNet.parameterDeclarations(.realSRx4)
            if declared.allSatisfy({ d in stored[d.name].map { StateDict.shapesMatch(d.shape, $0) } ?? false }) { chosen = .realSRx4 }
        }
        guard let configuration = chosen else {
            let family = ModelFamily.recognise(state).map { " (looks like \($0))" } ?? ""
            throw CheckpointError.stateDictNotFound(reason: "\(path) is not a ResShift ×4 SR network (UNetModelSwin, 118.6 M parameters) and carries no configuration\(family)")
        }
        let bound = try state.bind(try ResShiftUNet.parameterDeclarations(configuration), ignoreUnexpected: isRecomputedBuffer)
        return (try ResShiftUNet(configuration, parameters: .bound(bound)), configuration, checkpoint)
    }

    /// The VQ autoencoder in `path` (default: the VQ-f4 of `autoencoder_vq_f4.pth`).
    public static func loadAutoencoder(path: String, configuration: AutoencoderConfiguration = .vqF4) throws -> VQAutoencoder {
        let checkpoint = try Checkpoint(path: path)
        let state = try checkpoint.stateDict()
        let bound = try state.bind(try VQAutoencoder.parameterDeclarations(configuration), ignoreUnexpected: isIgnorable)
        return try VQAutoencoder(configuration, parameters: .bound(bound))
    }
}
