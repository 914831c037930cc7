import CDNNL
import Foundation

/// Padding of a 2-D convolution's input.
public enum ConvPadding: Hashable, Sendable {
    /// Zeros: `top`, `left`, `bottom`, `right` rows/columns (asymmetric (0,1,0,1) is `.zeros(0, 0, 1, 1)`).
    case zeros(top: Int, left: Int, bottom: Int, right: Int)
    /// Mirror padding without repeating the edge (PyTorch `padding_mode="reflect"`), `amount` on every side.
    case reflect(Int)

    /// The same zero padding on all four sides.
    public static func same(_ p: Int) -> ConvPadding { .zeros(top: p, left: p, bottom: p, right: p) }
}

/// A 2-D convolution on NHWC tensors through oneDNN, with PyTorch's weight layout
/// `[outChannels, inChannels / groups, kH, kW]`, optional bias, groups (depthwise when groups equals the
/// channels), and fused post-ops (residual sum, SiLU, GELU, LeakyReLU).
///
/// Weights are reordered into the layout oneDNN prefers once per input size and kept; primitives are
/// cached per input size, so a network pays the JIT and reorder cost on its first call only.
public final class Conv2D: @unchecked Sendable {
    public let inChannels: Int
    public let outChannels: Int
    public let kernelSize: (h: Int, w: Int)
    public let stride: Int
    public let groups: Int
    public let padding: ConvPadding
    public let postOps: [PostOp]
    /// The weights in PyTorch's layout (kept so that new input sizes can be prepared).
    public let weight: Tensor
    public let bias: Tensor?

    private struct Plan {
        let primitive: DNNLPrimitive
        let source: dnnl_memory_desc_t
        let destination: dnnl_memory_desc_t
        let weights: DNNLBuffer
        let bias: dnnl_memory_desc_t?
        let outputShape: [Int]
    }
    private var plans: [[Int]: Plan] = [:]
    private let lock = NSLock()

    /// Creates a convolution. `weight` has shape `[out, in / groups, kH, kW]`; `bias`, if any, `[out]`.
    public init(weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: ConvPadding,
                groups: Int = 1, postOps: [PostOp] = []) throws {
        guard weight.shape.count == 4 else {
            throw EngineError.shapeMismatch(op: "Conv2D", expected: "weight [out, in/groups, kH, kW]", found: "\(weight.shape)")
        }
        guard groups >= 1, weight.shape[0] % groups == 0, stride >= 1 else {
            throw EngineError.invalidArgument(op: "Conv2D", reason: "groups \(groups) must divide \(weight.shape[0]) output channels; stride \(stride) must be ≥ 1")
        }
        if let bias, bias.count != weight.shape[0] {
            throw EngineError.shapeMismatch(op: "Conv2D bias", expected: "[\(weight.shape[0])]", found: "\(bias.shape)")
        }
        if case .reflect(let p) = padding, p < 0 { throw EngineError.invalidArgument(op: "Conv2D", reason: "negative padding") }
        if case .zeros(let t, let l, let b, let r) = padding, min(t, l, b, r) < 0 {
            throw EngineError.invalidArgument(op: "Conv2D", reason: "negative padding")
        }
        self.weight = weight
        self.bias = bias
        self.outChannels = weight.shape[0]
        self.inChannels = weight.shape[1] * groups
        self.kernelSize = (weight.shape[2], weight.shape[3])
        self.stride = stride
        self.groups = groups
        self.padding = padding
        self.postOps = postOps
    }

    /// The output shape for an NHWC input shape.
    public func outputShape(for input: [Int]) throws -> [Int] {
        guard input.count == 4, input[3] == inChannels else {
            throw EngineError.shapeMismatch(op: "Conv2D", expected: "NHWC input with \(inChannels) channels", found: "\(input)")
        }
        let (t, l, b, r) = paddingAmounts
        let h = (input[1] + t + b - kernelSize.h) / stride + 1
        let w = (input[2] + l + r - kernelSize.w) / stride + 1
        guard input[1] + t + b >= kernelSize.h, input[2] + l + r >= kernelSize.w else {
            throw EngineError.shapeMismatch(op: "Conv2D", expected: "input at least \(kernelSize.h)×\(kernelSize.w) after padding", found: "\(input)")
        }
        return [input[0], h, w, outChannels]
    }

    private var paddingAmounts: (Int, Int, Int, Int) {
        switch padding {
        case .zeros(let t, let l, let b, let r): return (t, l, b, r)
        case .reflect(let p): return (p, p, p, p)
        }
    }

    /// Convolves `x` (NHWC). When the post-ops contain `.sum`, pass the tensor to add as `residual`:
    /// it is overwritten with the result and returned (no copy).
    public func callAsFunction(_ x: Tensor, residual: Tensor? = nil) throws -> Tensor {
        let needsResidual = postOps.contains { $0.readsDestination }
        var input = x
        if case .reflect(let p) = padding, p > 0 { input = try pad(x, left: p, right: p, top: p, bottom: p, mode: .reflect) }
        let plan = try preparedPlan(for: input.shape, original: x.shape)
        let output: Tensor
        if needsResidual {
            guard let residual else {
                throw EngineError.invalidArgument(op: "Conv2D", reason: "a .sum post-op needs a residual tensor")
            }
            guard residual.shape == plan.outputShape else {
                throw EngineError.shapeMismatch(op: "Conv2D residual", expected: "\(plan.outputShape)", found: "\(residual.shape)")
            }
            output = residual
        } else {
            output = try Tensor(uninitializedShape: plan.outputShape)
        }
        var arguments: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer)] = [
            (DNNL_ARG_SRC, plan.source, UnsafeMutableRawPointer(input.data)),
            (DNNL_ARG_WEIGHTS, plan.weights.descriptor, plan.weights.pointer),
            (DNNL_ARG_DST, plan.destination, UnsafeMutableRawPointer(output.data)),
        ]
        if let md = plan.bias, let bias { arguments.append((DNNL_ARG_BIAS, md, UnsafeMutableRawPointer(bias.data))) }
        try plan.primitive.execute(arguments)
        return output
    }

    private func preparedPlan(for shape: [Int], original: [Int]) throws -> Plan {
        lock.lock()
        defer { lock.unlock() }
        if let plan = plans[shape] { return plan }
        let outShape = try outputShape(for: original)
        let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3])
        var (t, l, b, r) = paddingAmounts
        if case .reflect = padding { (t, l, b, r) = (0, 0, 0, 0) }

        var source = try dnnlDescriptor([n, c, h, w], dnnl_nhwc)
        var destination = try dnnlDescriptor([outShape[0], outChannels, outShape[1], outShape[2]], dnnl_nhwc)
        let weightDims: [Int] = groups == 1
            ? [outChannels, inChannels, kernelSize.h, kernelSize.w]
            : [groups, outChannels / groups, inChannels / groups, kernelSize.h, kernelSize.w]
        let userWeights = try dnnlDescriptor(weightDims, groups == 1 ? dnnl_oihw : dnnl_goihw)
        var anyWeights = try dnnlDescriptor(weightDims, dnnl_format_tag_any)
        var biasDescriptor = try bias.map { _ in try dnnlDescriptor([outChannels], dnnl_a) }

        var operation = dnnl_convolution_desc_t()
        var strides: [dnnl_dim_t] = [dnnl_dim_t(stride), dnnl_dim_t(stride)]
        var padL: [dnnl_dim_t] = [dnnl_dim_t(t), dnnl_dim_t(l)]
        var padR: [dnnl_dim_t] = [dnnl_dim_t(b), dnnl_dim_t(r)]
        if biasDescriptor != nil {
            try dnnlCheck(dnnl_convolution_forward_desc_init(&operation, dnnl_forward_inference, dnnl_convolution_direct,
                                                             &source, &anyWeights, &biasDescriptor!, &destination,
                                                             &strides, &padL, &padR), "convolution_forward_desc_init")
        } else {
            try dnnlCheck(dnnl_convolution_forward_desc_init(&operation, dnnl_forward_inference, dnnl_convolution_direct,
                                                             &source, &anyWeights, nil, &destination,
                                                             &strides, &padL, &padR), "convolution_forward_desc_init")
        }
        let attributes = try DNNLAttributes(postOps: postOps)
        let primitive = try withUnsafePointer(to: &operation) {
            try DNNLPrimitive(operation: UnsafeRawPointer($0), attributes: attributes, name: "convolution")
        }
        let chosen = primitive.chosenDescriptor(dnnl_query_weights_md)
        // Reuse an earlier reordering when the chosen layout is the same (it usually is).
        let weights = try plans.values.first(where: { dnnlEqual($0.weights.descriptor, chosen) })?.weights
            ?? DNNLBuffer(reordering: UnsafeMutableRawPointer(weight.data), from: userWeights, to: chosen)
        let plan = Plan(primitive: primitive, source: source, destination: destination,
                        weights: weights, bias: biasDescriptor, outputShape: outShape)
        plans[shape] = plan
        return plan
    }

    /// The oneDNN implementation chosen for an input shape (e.g. "brgconv:avx512_core"), for reports.
    public func implementationName(for shape: [Int]) throws -> String {
        let plan = try preparedPlan(for: shape, original: shape)
        var name: UnsafePointer<CChar>?
        _ = dnnl_primitive_desc_query(plan.primitive.descriptor, dnnl_query_impl_info_str, 0, &name)
        return name.map { String(cString: $0) } ?? "unknown"
    }
}
