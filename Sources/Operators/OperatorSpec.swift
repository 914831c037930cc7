import Engine
import Foundation

/// The text specs of degradation operators, one grammar for every command:
/// `pool:S`, `gray`, `mask:FILE`, `noise`, and comma-separated compositions applied left to right
/// (`mask:holes.png,gray,pool:2`).
public enum OperatorSpec {
    /// The spec forms this build understands, for help texts.
    public static let forms = ["pool:S (average-pooling SR ×S)", "gray (colorization)", "mask:FILE (inpainting; white = hole)",
                               "noise (denoising; pair with --sigma-y)", "A,B,… (composition, applied left to right)"]

    /// Which official sampler the operators are built for (they differ only in colorization's weights).
    public enum Path: Sendable { case svd, simplified }

    /// Builds the operator; `loadMask(path)` returns the keep-mask [H, W] (1 = known) for `mask:` parts.
    public static func parse(_ text: String, path: Path = .svd, loadMask: (String) throws -> Tensor) throws -> any DegradationOperator {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingCharacters(in: .whitespaces) }
        guard !parts.isEmpty, !parts.contains(where: \.isEmpty) else { throw OperatorError("empty degradation spec \(text.debugDescription)") }
        let operators = try parts.map { part -> any DegradationOperator in
            let fields = part.split(separator: ":", maxSplits: 1).map(String.init)
            switch fields[0] {
            case "pool":
                guard fields.count == 2, let s = Int(fields[1]) else { throw OperatorError("pool needs an integer factor, e.g. pool:4 (got \(part.debugDescription))") }
                return try AveragePoolingOperator(factor: s)
            case "gray", "grey":
                guard fields.count == 1 else { throw OperatorError("gray takes no argument (got \(part.debugDescription))") }
                return path == .svd ? GrayscaleOperator(weights: GrayscaleOperator.svdWeights) : GrayscaleOperator()
            case "noise", "denoise":
                guard fields.count == 1 else { throw OperatorError("noise takes no argument (got \(part.debugDescription))") }
                return IdentityOperator()
            case "mask":
                guard fields.count == 2, !fields[1].isEmpty else { throw OperatorError("mask needs a file, e.g. mask:holes.png (got \(part.debugDescription))") }
                return try MaskOperator(keep: try loadMask(fields[1]), source: fields[1])
            default:
                throw OperatorError("unknown degradation \(fields[0].debugDescription); known: \(forms.joined(separator: "; "))")
            }
        }
        return operators.count == 1 ? operators[0] : CompositeOperator(operators)
    }
}
