import Checkpoints
import Engine
import Foundation

/// Where a network's parameters come from while it is built. Networks ask for each tensor by its
/// official name and shape, in one code path, so the names they declare and the names they load can
/// never drift apart:
/// - `.declaring`: records the (name, shape) list and hands out uninitialised buffers (virtual memory
///   only: nothing is touched, so declaring even a 550 M-parameter network costs no RSS);
/// - `.bound`: the Float32 tensors a checkpoint's `StateDict.bind` produced;
/// - `.random`: seeded Gaussian weights (benchmarks, tests of shapes).
public final class ParameterSource {
    enum Mode {
        case declaring
        case bound([String: Tensor])
        case random(SplitMix64, scale: Float)
    }

    private var mode: Mode
    /// The parameters asked for so far, in order.
    public private(set) var declarations: [ParameterDeclaration] = []
    private var names = Set<String>()

    private init(_ mode: Mode) { self.mode = mode }

    /// A source that only records what is asked for.
    public static func declaring() -> ParameterSource { ParameterSource(.declaring) }

    /// A source serving bound checkpoint tensors.
    public static func bound(_ tensors: [String: Tensor]) -> ParameterSource { ParameterSource(.bound(tensors)) }

    /// Gaussian weights N(0, (scale/√fan_in)²) for matrices and kernels, N(0, 0.01) for vectors; seeded.
    public static func random(seed: UInt64, scale: Float = 1) -> ParameterSource { ParameterSource(.random(SplitMix64(seed: seed), scale: scale)) }

    /// The tensor named `name`, of `shape`.
    public func tensor(_ name: String, _ shape: [Int]) throws -> Tensor {
        guard names.insert(name).inserted else { throw EngineError.invalidArgument(op: "ParameterSource", reason: "parameter \(name) asked for twice") }
        declarations.append(ParameterDeclaration(name, shape))
        switch mode {
        case .declaring:
            return try Tensor(uninitializedShape: shape)
        case .bound(let tensors):
            guard let tensor = tensors[name] else {
                throw CheckpointError.bindingFailed(problems: [.missing(key: name, expected: shape)])
            }
            return tensor.shape == shape ? tensor : try tensor.view(as: shape)
        case .random(var generator, let scale):
            let tensor = try Tensor(uninitializedShape: shape)
            let fanIn = shape.count > 1 ? shape.dropFirst().reduce(1, *) : 0
            let sigma = fanIn > 0 ? scale / Float(fanIn).squareRoot() : 0.1
            for i in 0..<tensor.count { tensor.data[i] = sigma * Float(generator.nextGaussian()) }
            mode = .random(generator, scale: scale)
            return tensor
        }
    }
}

/// An architecture built from a `ParameterSource`: its declarations (names and shapes in construction order,
/// the official state-dict order) come from building it once in declaring mode — written once, here, for
/// every network, so the declared and the loaded names cannot drift apart.
public protocol ParameterDeclaring {
    associatedtype Configuration
    init(_ configuration: Configuration, parameters: ParameterSource) throws
}

extension ParameterDeclaring {
    /// The parameter names and shapes of `configuration`, in construction order (no memory is touched).
    public static func parameterDeclarations(_ configuration: Configuration) throws -> [ParameterDeclaration] {
        let source = ParameterSource.declaring()
        _ = try Self(configuration, parameters: source)
        return source.declarations
    }
}
