import Checkpoints
import Foundation
import Networks

/// What a model file is: its container, the weights found in it, the family and preset they match, and our
/// own card (the metadata our exports carry). The one answer to "what model is this file", for `inspect`,
/// `convert` and the loaders.
public struct ModelDescription {
    public let path: String
    public let checkpoint: Checkpoint
    public let stateDict: StateDict
    /// The network family recognised from key names and shapes (nil: none of ours).
    public let family: ModelFamily?
    /// The preset whose declared keys and shapes the weights match exactly.
    public let preset: NetworkPreset?
    /// Our own exports name their family in the metadata ("resshift-swin", "adm", …).
    public var ownFamily: String? { checkpoint.metadata["family"] }
    /// Tensors in the file outside the chosen state dict (optimizer state, EMA copies).
    public var otherTensorCount: Int { checkpoint.tensorCount - stateDict.tensors.count }
}

public enum ModelCatalog {
    /// The family our ResShift exports declare (Tools/train/train_resshift.py): configuration, diffusion and first
    /// stage in the metadata.
    public static let ownResShiftFamily = "resshift-swin"

    /// Reads `path` (nothing in it is executed) and describes it; `selection` picks the weights (default: the
    /// usual wrappers, see `StateDictSelection`).
    public static func describe(path: String, selection: StateDictSelection = .auto) throws -> ModelDescription {
        let checkpoint = try Checkpoint(path: path)
        let state = try checkpoint.stateDict(selection)
        return ModelDescription(path: path, checkpoint: checkpoint, stateDict: state, family: ModelFamily.recognise(state),
                                preset: try NetworkPreset.detect(state))
    }

    /// The metadata a converted file carries: where it came from and, when recognised, its family.
    public static func conversionMetadata(_ description: ModelDescription, tool: String) -> [String: String] {
        var metadata = ["source": (description.path as NSString).lastPathComponent, "source_format": description.checkpoint.format.rawValue,
                        "state_dict": description.stateDict.source, "converted_by": tool]
        if let family = description.family { metadata["family"] = family.name }
        return metadata
    }
}
