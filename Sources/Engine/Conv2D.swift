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
    /// The weights in PyTorch's layout until the first call reorders them into oneDNN's preferred layout;
    /// then nil: later input sizes reorder from that copy, so a network holds its weights once, not twice.
    public private(set) var weight: Tensor?
    public let bias: Tensor?

    private struct Plan {
        let primitive: DNNLPrimitive
        let source: dnnl_memory_desc_t
        let destination: dnnl_memory_desc_t
        let weights: DNNLBuffer
        let bias: dnnl_memory_desc_t?
        let outputShape: [Int]
        /// Set when the convolution runs on the 8-channel-blocked layout (see `BlockedRoute`).
        let blocked: BlockedRoute?
    }

    /// On AVX2-only CPUs oneDNN 2.6's direct kernel (`jit:avx2`) is 15–30 % faster on the
    /// 8-channel-blocked layout `nChw8c` than on NHWC, reorders included (measured on Zen 3, every shape
    /// of the benchmark), so such convolutions reorder in and out around a blocked primitive, through
    /// shared scratch buffers. AVX-512 CPUs get `brgconv` on NHWC directly and skip this.
    private struct BlockedRoute {
        let toBlocked: DNNLPrimitive    // NHWC source → nChw8c
        let fromBlocked: DNNLPrimitive  // nChw8c result → NHWC
        let residualToBlocked: DNNLPrimitive?
        let plainSource: dnnl_memory_desc_t, blockedSource: dnnl_memory_desc_t
        let plainDestination: dnnl_memory_desc_t, blockedDestination: dnnl_memory_desc_t
    }
    private var plans: [[Int]: Plan] = [:]
    /// Forces the NHWC ("nhwc") or blocked ("blocked") route for this convolution, ahead of DR_CONV_LAYOUT and
    /// the CPU's choice (tests of both routes without touching the process environment). Set before first use.
    var layoutOverride: String?
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
        if let route = plan.blocked {
            try ConvScratch.shared.using(dnnlSize(route.blockedSource), dnnlSize(route.blockedDestination)) { source, destination in
                try route.toBlocked.execute([(DNNL_ARG_FROM, route.plainSource, UnsafeMutableRawPointer(input.data)),
                                             (DNNL_ARG_TO, route.blockedSource, source)])
                if let toBlocked = route.residualToBlocked {
                    try toBlocked.execute([(DNNL_ARG_FROM, route.plainDestination, UnsafeMutableRawPointer(output.data)),
                                           (DNNL_ARG_TO, route.blockedDestination, destination)])
                }
                arguments[0] = (DNNL_ARG_SRC, route.blockedSource, source)
                arguments[2] = (DNNL_ARG_DST, route.blockedDestination, destination)
                try plan.primitive.execute(arguments)
                try route.fromBlocked.execute([(DNNL_ARG_FROM, route.blockedDestination, destination),
                                               (DNNL_ARG_TO, route.plainDestination, UnsafeMutableRawPointer(output.data))])
            }
            return output
        }
        try plan.primitive.execute(arguments)
        return output
    }

    /// True when this convolution should take the blocked route, given oneDNN's NHWC choice.
    private func prefersBlockedLayout(nhwcImplementation: String) -> Bool {
        guard groups == 1, inChannels % 8 == 0, outChannels % 8 == 0 else { return false }
        // DR_CONV_LAYOUT=nhwc|blocked overrides the choice (benchmarks, and tests of both routes on any CPU).
        switch layoutOverride ?? ProcessInfo.processInfo.environment["DR_CONV_LAYOUT"] {
        case "nhwc": return false
        case "blocked": return true
        default: return nhwcImplementation.hasPrefix("jit:avx2")
        }
    }

    private func preparedPlan(for shape: [Int], original: [Int]) throws -> Plan {
        lock.lock()
        defer { lock.unlock() }
        if let plan = plans[shape] { return plan }
        let outShape = try outputShape(for: original)
        let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3])
        var (t, l, b, r) = paddingAmounts
        if case .reflect = padding { (t, l, b, r) = (0, 0, 0, 0) }

        let sourceDims = [n, c, h, w], destinationDims = [outShape[0], outChannels, outShape[1], outShape[2]]
        let weightDims: [Int] = groups == 1
            ? [outChannels, inChannels, kernelSize.h, kernelSize.w]
            : [groups, outChannels / groups, inChannels / groups, kernelSize.h, kernelSize.w]
        let userWeights = try dnnlDescriptor(weightDims, groups == 1 ? dnnl_oihw : dnnl_goihw)
        var anyWeights = try dnnlDescriptor(weightDims, dnnl_format_tag_any)
        var biasDescriptor = try bias.map { _ in try dnnlDescriptor([outChannels], dnnl_a) }
        let attributes = try DNNLAttributes(postOps: postOps)

        func makePrimitive(_ tag: dnnl_format_tag_t) throws -> (DNNLPrimitive, dnnl_memory_desc_t, dnnl_memory_desc_t) {
            var source = try dnnlDescriptor(sourceDims, tag)
            var destination = try dnnlDescriptor(destinationDims, tag)
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
            let primitive = try withUnsafePointer(to: &operation) {
                try DNNLPrimitive(operation: UnsafeRawPointer($0), attributes: attributes, name: "convolution")
            }
            return (primitive, source, destination)
        }
        var (primitive, source, destination) = try makePrimitive(dnnl_nhwc)
        var blocked: BlockedRoute?
        if prefersBlockedLayout(nhwcImplementation: primitive.implementationName) {
            let plainSource = source, plainDestination = destination
            (primitive, source, destination) = try makePrimitive(dnnl_nChw8c)
            blocked = BlockedRoute(
                toBlocked: try DNNLPrimitive(reorderFrom: plainSource, to: source),
                fromBlocked: try DNNLPrimitive(reorderFrom: destination, to: plainDestination),
                residualToBlocked: postOps.contains { $0.readsDestination } ? try DNNLPrimitive(reorderFrom: plainDestination, to: destination) : nil,
                plainSource: plainSource, blockedSource: source, plainDestination: plainDestination, blockedDestination: destination)
        }
        let chosen = primitive.chosenDescriptor(dnnl_query_weights_md)
        // Reuse an earlier reordering when the chosen layout is the same (it usually is).
        let weights = try weightsInLayout(chosen, existing: plans.values.map(\.weights), original: weight, originalLayout: userWeights, op: "Conv2D")
        weight = nil  // the reordered copy now serves every input size
        let plan = Plan(primitive: primitive, source: blocked?.plainSource ?? source, destination: blocked?.plainDestination ?? destination,
                        weights: weights, bias: biasDescriptor, outputShape: outShape, blocked: blocked)
        plans[shape] = plan
        return plan
    }

    /// The oneDNN implementation chosen for an input shape (e.g. "brgconv:avx512_core"), for reports.
    public func implementationName(for shape: [Int]) throws -> String {
        let plan = try preparedPlan(for: shape, original: shape)
        return plan.primitive.implementationName + (plan.blocked != nil ? " (nChw8c)" : "")
    }
}

/// Two process-wide scratch buffers for the blocked route (source and result in `nChw8c`), grown to the
/// largest activation seen and reused by every convolution, so they cost two activations of memory in all
/// and no page faults per call. Held for the duration of one convolution.
final class ConvScratch: @unchecked Sendable {
    static let shared = ConvScratch()
    private let lock = NSLock()
    private var buffers: [(pointer: UnsafeMutableRawPointer, size: Int)] = []

    func using<T>(_ firstBytes: Int, _ secondBytes: Int, _ body: (UnsafeMutableRawPointer, UnsafeMutableRawPointer) throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        let first = try buffer(0, firstBytes), second = try buffer(1, secondBytes)
        return try body(first, second)
    }

    private func buffer(_ slot: Int, _ bytes: Int) throws -> UnsafeMutableRawPointer {
        while buffers.count <= slot { buffers.append((UnsafeMutableRawPointer(bitPattern: 64)!, 0)) }
        if buffers[slot].size < bytes {
            if buffers[slot].size > 0 { free(buffers[slot].pointer) }
            var raw: UnsafeMutableRawPointer?
            guard posix_memalign(&raw, 64, bytes) == 0, let raw else { throw EngineError.outOfMemory([bytes]) }
            buffers[slot] = (raw, bytes)
        }
        return buffers[slot].pointer
    }
}
