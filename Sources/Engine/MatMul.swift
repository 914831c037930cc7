import CDNNL
import Foundation

/// A fully connected layer `y = x·Wᵀ + b` over the last dimension, with PyTorch's weight layout
/// `[outFeatures, inFeatures]`, through oneDNN's matmul with fused post-ops. Also serves as a 1×1
/// convolution over the pixels of an NHWC tensor (and as `nn.Conv1d(k=1)` on [B, T, C] sequences).
public final class Linear: @unchecked Sendable {
    public let inFeatures: Int
    public let outFeatures: Int
    public let postOps: [PostOp]
    /// The weights in PyTorch's layout until the first call reorders them (then nil; see `Conv2D.weight`).
    public private(set) var weight: Tensor?
    public let bias: Tensor?

    private struct Plan {
        let primitive: DNNLPrimitive
        let source: dnnl_memory_desc_t
        let destination: dnnl_memory_desc_t
        let weights: DNNLBuffer
        let bias: dnnl_memory_desc_t?
    }
    private var plans: [Int: Plan] = [:]
    private let lock = NSLock()

    /// Creates the layer. `weight` is `[out, in]` (a `[out, in, 1, 1]` 1×1 conv or `[out, in, 1]` Conv1d
    /// weight is accepted too); `bias`, if any, has `out` elements.
    public init(weight: Tensor, bias: Tensor? = nil, postOps: [PostOp] = []) throws {
        guard weight.shape.count >= 2, weight.shape.dropFirst(2).allSatisfy({ $0 == 1 }) else {
            throw EngineError.shapeMismatch(op: "Linear", expected: "weight [out, in] (or [out, in, 1, 1])", found: "\(weight.shape)")
        }
        if let bias, bias.count != weight.shape[0] {
            throw EngineError.shapeMismatch(op: "Linear bias", expected: "[\(weight.shape[0])]", found: "\(bias.shape)")
        }
        self.weight = weight
        self.bias = bias
        self.outFeatures = weight.shape[0]
        self.inFeatures = weight.shape[1]
        self.postOps = postOps
    }

    /// Applies the layer to the last dimension of `x`. With a `.sum` post-op, `residual` receives the result.
    public func callAsFunction(_ x: Tensor, residual: Tensor? = nil) throws -> Tensor {
        guard x.shape.last == inFeatures else {
            throw EngineError.shapeMismatch(op: "Linear", expected: "last dimension \(inFeatures)", found: "\(x.shape)")
        }
        let rows = x.count / inFeatures
        var outShape = x.shape
        outShape[outShape.count - 1] = outFeatures
        let output: Tensor
        if postOps.contains(where: { $0.readsDestination }) {
            guard let residual, residual.shape == outShape else {
                throw EngineError.shapeMismatch(op: "Linear residual", expected: "\(outShape)", found: "\(residual?.shape ?? [])")
            }
            output = residual
        } else {
            output = try Tensor(uninitializedShape: outShape)
        }
        let plan = try preparedPlan(rows: rows)
        var arguments: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer)] = [
            (DNNL_ARG_SRC, plan.source, UnsafeMutableRawPointer(x.data)),
            (DNNL_ARG_WEIGHTS, plan.weights.descriptor, plan.weights.pointer),
            (DNNL_ARG_DST, plan.destination, UnsafeMutableRawPointer(output.data)),
        ]
        if let md = plan.bias, let bias { arguments.append((DNNL_ARG_BIAS, md, UnsafeMutableRawPointer(bias.data))) }
        try plan.primitive.execute(arguments)
        return output
    }

    private func preparedPlan(rows: Int) throws -> Plan {
        lock.lock()
        defer { lock.unlock() }
        if let plan = plans[rows] { return plan }
        var source = try dnnlDescriptor([rows, inFeatures], dnnl_ab)
        var destination = try dnnlDescriptor([rows, outFeatures], dnnl_ab)
        // PyTorch's [out, in] row-major is the [in, out] matrix in column-major ("ba") order.
        let userWeights = try dnnlDescriptor([inFeatures, outFeatures], dnnl_ba)
        var anyWeights = try dnnlDescriptor([inFeatures, outFeatures], dnnl_format_tag_any)
        var biasDescriptor = try bias.map { _ in try dnnlDescriptor([1, outFeatures], dnnl_ab) }
        var operation = dnnl_matmul_desc_t()
        if biasDescriptor != nil {
            try dnnlCheck(dnnl_matmul_desc_init(&operation, &source, &anyWeights, &biasDescriptor!, &destination), "matmul_desc_init")
        } else {
            try dnnlCheck(dnnl_matmul_desc_init(&operation, &source, &anyWeights, nil, &destination), "matmul_desc_init")
        }
        let attributes = try DNNLAttributes(postOps: postOps)
        let primitive = try withUnsafePointer(to: &operation) {
            try DNNLPrimitive(operation: UnsafeRawPointer($0), attributes: attributes, name: "matmul")
        }
        let chosen = primitive.chosenDescriptor(dnnl_query_weights_md)
        let weights = try weightsInLayout(chosen, existing: plans.values.map(\.weights), original: weight, originalLayout: userWeights, op: "Linear")
        weight = nil  // the reordered copy now serves every input size
        let plan = Plan(primitive: primitive, source: source, destination: destination, weights: weights, bias: biasDescriptor)
        plans[rows] = plan
        return plan
    }
}

/// The layout of one operand of a batched matrix product: a `[batch, rows, cols]` view of a buffer with
/// arbitrary element strides, so per-head slices of interleaved [T, heads·d] activations need no copy.
public struct MatrixView: Hashable, Sendable {
    public var batch: Int, rows: Int, cols: Int
    public var batchStride: Int, rowStride: Int, colStride: Int

    public init(batch: Int, rows: Int, cols: Int, batchStride: Int, rowStride: Int, colStride: Int) {
        (self.batch, self.rows, self.cols) = (batch, rows, cols)
        (self.batchStride, self.rowStride, self.colStride) = (batchStride, rowStride, colStride)
    }

    /// A dense row-major `[batch, rows, cols]` block.
    public static func dense(batch: Int, rows: Int, cols: Int) -> MatrixView {
        MatrixView(batch: batch, rows: rows, cols: cols, batchStride: rows * cols, rowStride: cols, colStride: 1)
    }

    /// The same view with rows and columns swapped (a transpose without moving data).
    public var transposed: MatrixView {
        MatrixView(batch: batch, rows: cols, cols: rows, batchStride: batchStride, rowStride: colStride, colStride: rowStride)
    }

    func descriptor() throws -> dnnl_memory_desc_t {
        try dnnlDescriptor([batch, rows, cols], strides: [batchStride, rowStride, colStride])
    }
}

/// Batched matrix products `C[b] = scale · A[b]·B[b]` on strided views, with primitives cached per
/// layout (attention calls the same few shapes at every step).
public final class BatchedMatMul: @unchecked Sendable {
    private struct Key: Hashable { let a: MatrixView, b: MatrixView, c: MatrixView, scale: Float, accumulate: Bool }
    private var cache: [Key: DNNLPrimitive] = [:]
    private let lock = NSLock()

    public init() {}

    /// Computes `C = scale·A·B` (or `C += scale·A·B` when `accumulate`) for every batch entry.
    public func multiply(_ a: UnsafeMutablePointer<Float>, _ aView: MatrixView,
                         _ b: UnsafeMutablePointer<Float>, _ bView: MatrixView,
                         into c: UnsafeMutablePointer<Float>, _ cView: MatrixView,
                         scale: Float = 1, accumulate: Bool = false) throws {
        guard aView.cols == bView.rows, aView.rows == cView.rows, bView.cols == cView.cols,
              aView.batch == bView.batch, aView.batch == cView.batch else {
            throw EngineError.shapeMismatch(op: "BatchedMatMul", expected: "[b,m,k]·[b,k,n] = [b,m,n]",
                                            found: "\([aView.batch, aView.rows, aView.cols])·\([bView.batch, bView.rows, bView.cols]) → \([cView.batch, cView.rows, cView.cols])")
        }
        let key = Key(a: aView, b: bView, c: cView, scale: scale, accumulate: accumulate)
        let primitive = try self.primitive(for: key)
        try primitive.execute([
            (DNNL_ARG_SRC, try aView.descriptor(), UnsafeMutableRawPointer(a)),
            (DNNL_ARG_WEIGHTS, try bView.descriptor(), UnsafeMutableRawPointer(b)),
            (DNNL_ARG_DST, try cView.descriptor(), UnsafeMutableRawPointer(c)),
        ])
    }

    private func primitive(for key: Key) throws -> DNNLPrimitive {
        lock.lock()
        defer { lock.unlock() }
        if let p = cache[key] { return p }
        var a = try key.a.descriptor(), b = try key.b.descriptor(), c = try key.c.descriptor()
        var operation = dnnl_matmul_desc_t()
        try dnnlCheck(dnnl_matmul_desc_init(&operation, &a, &b, nil, &c), "matmul_desc_init")
        let attributes = try DNNLAttributes(postOps: key.accumulate ? [.sum()] : [],
                                            outputScale: key.scale == 1 ? nil : key.scale)
        let p = try withUnsafePointer(to: &operation) {
            try DNNLPrimitive(operation: UnsafeRawPointer($0), attributes: attributes, name: "batched matmul")
        }
        cache[key] = p
        return p
    }
}
