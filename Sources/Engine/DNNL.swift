import CDNNL
import Foundation

/// The process-wide oneDNN CPU engine and stream. oneDNN's JIT picks AVX2 or AVX-512 kernels at run
/// time, so one binary serves every x86-64 machine with AVX2.
final class DNNLContext: @unchecked Sendable {
    static let shared = DNNLContext()

    let engine: dnnl_engine_t
    let stream: dnnl_stream_t

    private init() {
        var engine: dnnl_engine_t?
        var stream: dnnl_stream_t?
        // Failure here means the library itself is unusable: nothing sensible can continue.
        guard dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success, let engine,
              dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue) == dnnl_success, let stream
        else { fatalError("oneDNN: cannot create the CPU engine") }
        self.engine = engine
        self.stream = stream
    }
}

/// Throws `EngineError.oneDNN` unless `status` is success.
@inline(__always)
func dnnlCheck(_ status: dnnl_status_t, _ call: String) throws {
    if status != dnnl_success { throw EngineError.oneDNN(call: call, status: Int(status.rawValue)) }
}

/// A memory descriptor for a plain tensor given its logical dims and a format tag.
func dnnlDescriptor(_ dims: [Int], _ tag: dnnl_format_tag_t) throws -> dnnl_memory_desc_t {
    var md = dnnl_memory_desc_t()
    var d = dims.map { dnnl_dim_t($0) }
    try dnnlCheck(dnnl_memory_desc_init_by_tag(&md, Int32(dims.count), &d, dnnl_f32, tag), "memory_desc_init_by_tag")
    return md
}

/// A memory descriptor for a strided view (strides in elements).
func dnnlDescriptor(_ dims: [Int], strides: [Int]) throws -> dnnl_memory_desc_t {
    var md = dnnl_memory_desc_t()
    var d = dims.map { dnnl_dim_t($0) }
    var s = strides.map { dnnl_dim_t($0) }
    try dnnlCheck(dnnl_memory_desc_init_by_strides(&md, Int32(dims.count), &d, dnnl_f32, &s), "memory_desc_init_by_strides")
    return md
}

/// Elementwise operations that oneDNN applies after a convolution or matrix product, in order.
public enum PostOp: Hashable, Sendable {
    /// Adds what the destination held before the call (a residual): `dst = op(x) + scale·dst`.
    case sum(scale: Float = 1)
    /// SiLU (swish), x·σ(x).
    case silu
    /// GELU with the exact erf.
    case geluErf
    /// LeakyReLU with the given negative slope.
    case leakyReLU(Float)
    /// ReLU.
    case relu

    /// True when the destination must already hold the tensor to add.
    var readsDestination: Bool { if case .sum = self { return true } else { return false } }
}

/// Owns an attribute object describing post-ops (and optionally an output scale).
final class DNNLAttributes {
    let attr: dnnl_primitive_attr_t

    init(postOps: [PostOp], outputScale: Float? = nil) throws {
        var attr: dnnl_primitive_attr_t?
        try dnnlCheck(dnnl_primitive_attr_create(&attr), "primitive_attr_create")
        self.attr = attr!
        if let outputScale {
            var scale = outputScale
            try dnnlCheck(dnnl_primitive_attr_set_output_scales(self.attr, 1, 0, &scale), "set_output_scales")
        }
        guard !postOps.isEmpty else { return }
        var ops: dnnl_post_ops_t?
        try dnnlCheck(dnnl_post_ops_create(&ops), "post_ops_create")
        defer { dnnl_post_ops_destroy(ops) }
        for op in postOps {
            switch op {
            case .sum(let scale): try dnnlCheck(dnnl_post_ops_append_sum(ops, scale), "append_sum")
            case .silu: try dnnlCheck(dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_swish, 1, 0), "append_eltwise")
            case .geluErf: try dnnlCheck(dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_gelu_erf, 0, 0), "append_eltwise")
            case .leakyReLU(let s): try dnnlCheck(dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_relu, s, 0), "append_eltwise")
            case .relu: try dnnlCheck(dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_relu, 0, 0), "append_eltwise")
            }
        }
        try dnnlCheck(dnnl_primitive_attr_set_post_ops(self.attr, ops), "set_post_ops")
    }

    deinit { dnnl_primitive_attr_destroy(attr) }
}

/// A created primitive with its descriptor; destroyed with the object.
final class DNNLPrimitive: @unchecked Sendable {
    let primitive: dnnl_primitive_t
    let descriptor: dnnl_primitive_desc_t

    /// Creates the primitive for an operation descriptor (convolution, matmul, …) with attributes.
    init(operation: UnsafeRawPointer, attributes: DNNLAttributes?, name: String) throws {
        let context = DNNLContext.shared
        var pd: dnnl_primitive_desc_t?
        try dnnlCheck(dnnl_primitive_desc_create(&pd, operation, attributes?.attr, context.engine, nil),
                      "\(name) primitive_desc_create")
        var prim: dnnl_primitive_t?
        let status = dnnl_primitive_create(&prim, pd)
        guard status == dnnl_success, let prim else {
            dnnl_primitive_desc_destroy(pd)
            throw EngineError.oneDNN(call: "\(name) primitive_create", status: Int(status.rawValue))
        }
        self.descriptor = pd!
        self.primitive = prim
    }

    /// Creates a reorder primitive from one layout to another.
    init(reorderFrom source: dnnl_memory_desc_t, to destination: dnnl_memory_desc_t) throws {
        let engine = DNNLContext.shared.engine
        var pd: dnnl_primitive_desc_t?
        var s = source, d = destination
        try dnnlCheck(dnnl_reorder_primitive_desc_create(&pd, &s, engine, &d, engine, nil), "reorder_primitive_desc_create")
        var prim: dnnl_primitive_t?
        let status = dnnl_primitive_create(&prim, pd)
        guard status == dnnl_success, let prim else {
            dnnl_primitive_desc_destroy(pd)
            throw EngineError.oneDNN(call: "reorder primitive_create", status: Int(status.rawValue))
        }
        self.descriptor = pd!
        self.primitive = prim
    }

    deinit {
        dnnl_primitive_destroy(primitive)
        dnnl_primitive_desc_destroy(descriptor)
    }

    /// The kernel oneDNN chose, e.g. "jit:avx2" or "brgconv:avx512_core".
    var implementationName: String {
        var name: UnsafePointer<CChar>?
        _ = dnnl_primitive_desc_query(descriptor, dnnl_query_impl_info_str, 0, &name)
        return name.map { String(cString: $0) } ?? "unknown"
    }

    /// The memory descriptor the primitive chose for `query` (e.g. `dnnl_query_weights_md`).
    func chosenDescriptor(_ query: dnnl_query_t, index: Int32 = 0) -> dnnl_memory_desc_t {
        dnnl_primitive_desc_query_md(descriptor, query, index)!.pointee
    }

    /// Runs the primitive on raw buffers: `(argument id, descriptor, pointer)` triples.
    func execute(_ arguments: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer)]) throws {
        let context = DNNLContext.shared
        var memories: [dnnl_memory_t?] = []
        memories.reserveCapacity(arguments.count)
        defer { for m in memories { dnnl_memory_destroy(m) } }
        var args: [dnnl_exec_arg_t] = []
        for (id, md, pointer) in arguments {
            var memory: dnnl_memory_t?
            var descriptor = md
            try dnnlCheck(dnnl_memory_create(&memory, &descriptor, context.engine, pointer), "memory_create")
            memories.append(memory)
            args.append(dnnl_exec_arg_t(arg: id, memory: memory))
        }
        try dnnlCheck(dnnl_primitive_execute(primitive, context.stream, Int32(args.count), &args), "primitive_execute")
        try dnnlCheck(dnnl_stream_wait(context.stream), "stream_wait")
    }
}

/// Bytes needed for a memory descriptor.
func dnnlSize(_ md: dnnl_memory_desc_t) -> Int {
    var d = md
    return dnnl_memory_desc_get_size(&d)
}

/// True when two descriptors describe the same layout.
func dnnlEqual(_ a: dnnl_memory_desc_t, _ b: dnnl_memory_desc_t) -> Bool {
    var x = a, y = b
    return dnnl_memory_desc_equal(&x, &y) != 0
}

/// An aligned byte buffer holding data in a oneDNN-chosen layout (reordered weights).
final class DNNLBuffer: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    let descriptor: dnnl_memory_desc_t

    /// Reorders `source` (described by `sourceDescriptor`) into the layout `descriptor`.
    init(reordering source: UnsafeMutableRawPointer, from sourceDescriptor: dnnl_memory_desc_t,
         to descriptor: dnnl_memory_desc_t) throws {
        var raw: UnsafeMutableRawPointer?
        let size = max(dnnlSize(descriptor), 64)
        guard posix_memalign(&raw, 64, size) == 0, let raw else { throw EngineError.outOfMemory([size]) }
        memset(raw, 0, size)
        self.pointer = raw
        self.descriptor = descriptor
        let reorder = try DNNLPrimitive(reorderFrom: sourceDescriptor, to: descriptor)
        try reorder.execute([(DNNL_ARG_FROM, sourceDescriptor, source), (DNNL_ARG_TO, descriptor, raw)])
    }

    deinit { free(pointer) }
}

/// Weights in the layout `chosen`: an existing copy when one matches, else a reorder from the PyTorch-layout
/// `original`, or (once that is released) from an earlier reordered copy; oneDNN reorders any layout to any.
func weightsInLayout(_ chosen: dnnl_memory_desc_t, existing: [DNNLBuffer], original: Tensor?,
                     originalLayout: dnnl_memory_desc_t, op: String) throws -> DNNLBuffer {
    if let match = existing.first(where: { dnnlEqual($0.descriptor, chosen) }) { return match }
    if let original { return try DNNLBuffer(reordering: UnsafeMutableRawPointer(original.data), from: originalLayout, to: chosen) }
    guard let earlier = existing.first else {
        throw EngineError.invalidArgument(op: op, reason: "weights released before any plan was made")
    }
    return try DNNLBuffer(reordering: earlier.pointer, from: earlier.descriptor, to: chosen)
}

/// oneDNN facts for reports.
public enum OneDNN {
    /// The library version, e.g. "2.6.3".
    public static var version: String {
        guard let v = dnnl_version() else { return "unknown" }
        return "\(v.pointee.major).\(v.pointee.minor).\(v.pointee.patch)"
    }

    /// Sets oneDNN's verbosity (0 off, 1 prints each primitive's kernel and time): the same as ONEDNN_VERBOSE.
    public static func setVerbose(_ level: Int) { _ = dnnl_set_verbose(Int32(level)) }
}
