import CDNNL
import Foundation

/// Thin ownership wrappers over oneDNN's C handles. oneDNN objects are immutable once created and
/// safe to execute from several threads, so the wrappers are `@unchecked Sendable`.

func check(_ status: dnnl_status_t, _ what: @autoclosure () -> String) throws {
    guard status == dnnl_success else {
        throw ModelError.backend("oneDNN \(what()) failed (status \(status.rawValue))")
    }
}

/// The one CPU engine of the process.
final class Engine: @unchecked Sendable {
    static let cpu = Engine()
    let handle: dnnl_engine_t

    private init() {
        var e: dnnl_engine_t?
        let status = dnnl_engine_create(&e, dnnl_cpu, 0)
        // Without a CPU engine nothing in this module can run; it only fails on a broken install.
        precondition(status == dnnl_success && e != nil, "oneDNN cannot create a CPU engine (status \(status.rawValue))")
        handle = e!
    }
}

/// An in-order CPU stream. One per thread: a stream must not be driven from two threads at once.
final class Stream: @unchecked Sendable {
    let handle: dnnl_stream_t
    private static let key = "plateseg.models.dnnl-stream"

    private init() throws {
        var s: dnnl_stream_t?
        try check(dnnl_stream_create(&s, Engine.cpu.handle, UInt32(dnnl_stream_default_flags.rawValue)), "stream creation")
        handle = s!
    }

    deinit { dnnl_stream_destroy(handle) }

    static func current() throws -> Stream {
        let dict = Thread.current.threadDictionary
        if let s = dict[key] as? Stream { return s }
        let s = try Stream()
        dict[key] = s
        return s
    }
}

typealias MemoryDesc = dnnl_memory_desc_t

func memoryDesc(_ dims: [Int], _ tag: dnnl_format_tag_t, _ type: dnnl_data_type_t = dnnl_f32) throws -> MemoryDesc {
    var md = MemoryDesc()
    let d = dims.map(Int64.init)
    try check(dnnl_memory_desc_init_by_tag(&md, Int32(d.count), d, type, tag), "memory descriptor \(dims)")
    return md
}

/// Channels `[first, first + count)` of an NHWC tensor of `shape`, as a descriptor of their own
/// (offset included: oneDNN primitives may write to it as to any tensor).
func channelSlice(of shape: [Int], first: Int, count: Int, _ type: dnnl_data_type_t) throws -> MemoryDesc {
    var parent = try memoryDesc(shape, dnnl_nhwc, type), md = MemoryDesc()
    let dims = [shape[0], count, shape[2], shape[3]].map(Int64.init), offsets = [0, first, 0, 0].map(Int64.init)
    try check(dnnl_memory_desc_init_submemory(&md, &parent, dims, offsets), "channel slice \(first)+\(count) of \(shape)")
    return md
}

func sameLayout(_ a: MemoryDesc, _ b: MemoryDesc) -> Bool {
    var a = a, b = b
    return dnnl_memory_desc_equal(&a, &b) != 0
}

/// A oneDNN memory object: either owning its buffer (allocated by oneDNN, aligned for its kernels)
/// or viewing a buffer owned by someone else (`keepAlive`).
final class Memory: @unchecked Sendable {
    let handle: dnnl_memory_t
    let desc: MemoryDesc
    private let keepAlive: AnyObject?

    /// Owned buffers come from `BufferPool`: activations are allocated and freed layer after layer,
    /// and fresh allocations of this size are fresh mmaps whose page faults cost a tenth of a
    /// small network's run time.
    init(_ desc: MemoryDesc) throws {
        var d = desc
        let size = dnnl_memory_desc_get_size(&d)
        let buffer = BufferPool.shared.take(size)
        var m: dnnl_memory_t?
        let status = dnnl_memory_create(&m, &d, Engine.cpu.handle, buffer.pointer)
        guard status == dnnl_success, let m else {
            BufferPool.shared.give(buffer)
            throw ModelError.backend("oneDNN memory allocation failed (status \(status.rawValue))")
        }
        handle = m
        self.desc = desc
        keepAlive = buffer
    }

    /// Views `buffer`, which must outlive the returned memory or be held by `owner`.
    init(_ desc: MemoryDesc, viewing buffer: UnsafeMutableRawPointer, owner: AnyObject?) throws {
        var d = desc
        var m: dnnl_memory_t?
        try check(dnnl_memory_create(&m, &d, Engine.cpu.handle, buffer), "memory view")
        handle = m!
        self.desc = desc
        keepAlive = owner
    }

    deinit {
        dnnl_memory_destroy(handle)
        if let b = keepAlive as? PooledBuffer { BufferPool.shared.give(b) }
    }

    var byteCount: Int {
        var d = desc
        return dnnl_memory_desc_get_size(&d)
    }

    var bytes: UnsafeMutableRawPointer {
        var p: UnsafeMutableRawPointer?
        _ = dnnl_memory_get_data_handle(handle, &p)
        return p!
    }

    var floats: UnsafeMutablePointer<Float> { bytes.assumingMemoryBound(to: Float.self) }
}

/// A created primitive and its descriptor.
final class Primitive: @unchecked Sendable {
    let handle: dnnl_primitive_t
    let pd: dnnl_primitive_desc_t

    /// Takes ownership of `pd`.
    init(pd: dnnl_primitive_desc_t, what: String) throws {
        var p: dnnl_primitive_t?
        let status = dnnl_primitive_create(&p, pd)
        guard status == dnnl_success, let p else {
            dnnl_primitive_desc_destroy(pd)
            throw ModelError.backend("oneDNN \(what) primitive creation failed (status \(status.rawValue))")
        }
        handle = p
        self.pd = pd
    }

    /// `opDesc` points to one of oneDNN's *_desc_t structures.
    convenience init(opDesc: UnsafeRawPointer, attr: Attributes? = nil, what: String) throws {
        var pd: dnnl_primitive_desc_t?
        let a = try attr ?? Attributes()
        try check(dnnl_primitive_desc_create(&pd, opDesc, a.handle, Engine.cpu.handle, nil), "\(what) descriptor")
        try self.init(pd: pd!, what: what)
    }

    deinit {
        dnnl_primitive_destroy(handle)
        dnnl_primitive_desc_destroy(pd)
    }

    /// oneDNN's name for the implementation it picked, e.g. "jit:avx2" or "x64:gemm:jit".
    var implementation: String {
        var name: UnsafePointer<CChar>?
        guard dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name) == dnnl_success, let name else { return "" }
        return String(cString: name)
    }

    func desc(_ query: dnnl_query_t) -> MemoryDesc {
        dnnl_primitive_desc_query_md(pd, query, 0).pointee
    }

    func execute(_ args: [(Int32, Memory)]) throws {
        let stream = try Stream.current()
        var args = args
        let scratchDesc = desc(dnnl_query_scratchpad_md)
        if scratchDesc.ndims > 0 {
            args.append((Int32(DNNL_ARG_SCRATCHPAD), try Scratchpad.current().memory(scratchDesc)))
        }
        var raw = args.map { dnnl_exec_arg_t(arg: $0.0, memory: $0.1.handle) }
        try check(dnnl_primitive_execute(handle, stream.handle, Int32(raw.count), &raw), "execution")
        try check(dnnl_stream_wait(stream.handle), "stream wait")
        withExtendedLifetime(args) {}
    }
}

/// Post-operations fused into a convolution or inner product, in order.
enum PostOp: Hashable, Sendable {
    case relu
    case silu
    case sigmoid
    /// Adds a tensor of the destination's shape (a residual branch).
    case add
    /// Multiplies by a constant: an int8 layer's way into its output's integers.
    case scale(Float)
    /// Adds what the destination holds before the layer runs, multiplied by `scale`: an int8
    /// layer's residual, copied there. (oneDNN 2.6's AMX int8 kernels add an s8 tensor given as
    /// a binary post-op wrongly, and ignore the data type `sum` may be told to read the
    /// destination as: the residual is copied in the output's own type, and `sum` is the add.)
    case accumulate(scale: Float)

    /// `ops` for an int8 layer that writes `output` (integers at their scale, or floats), with
    /// `residualScale` when its int8 residual was copied into the output first (output units
    /// per stored unit of the copy): the post-ops before the add run in real units, the
    /// residual is accumulated in the output's units, and the result is brought to them last.
    /// Floats out leave `ops` as they are.
    static func scaled(_ ops: [PostOp], output: NumberFormat, residualScale: Float? = nil) -> [PostOp] {
        guard output.isInteger else { return ops }
        guard let r = residualScale, let i = ops.firstIndex(of: .add) else { return merged(ops + [.scale(output.scale)]) }
        let after = Array(ops[(i + 1)...])
        // A ReLU commutes with a positive scale: after the add the chain stays in the output's
        // units. (oneDNN 2.6's AMX int8 kernel also computed `sum` followed by scale, ReLU, scale wrongly.)
        let tail = after.allSatisfy { $0 == .relu } ? after : [.scale(1 / output.scale)] + after + [.scale(output.scale)]
        return merged(Array(ops[..<i]) + [.scale(output.scale), .accumulate(scale: r)] + tail)
    }

    /// Adjacent scalings multiplied together; scalings by 1 left out.
    private static func merged(_ chain: [PostOp]) -> [PostOp] {
        var merged: [PostOp] = []
        for op in chain {
            if case let .scale(b) = op, let last = merged.last, case let .scale(a) = last {
                merged[merged.count - 1] = .scale(a * b)
            } else {
                merged.append(op)
            }
        }
        return merged.filter { $0 != .scale(1) }
    }
}

/// Primitive attributes. Every primitive gets a user-managed scratchpad: oneDNN's default shares one
/// library scratchpad between distinct primitives, which corrupts results when two threads run
/// different primitives at once (worker threads, parallel tests).
final class Attributes: @unchecked Sendable {
    let handle: dnnl_primitive_attr_t

    /// `outputScales`: one per output channel (an int8 layer's way back to real values).
    init(postOps: [PostOp] = [], addend: MemoryDesc? = nil, outputScales: [Float]? = nil, commonScale: Float? = nil) throws {
        var a: dnnl_primitive_attr_t?
        try check(dnnl_primitive_attr_create(&a), "attribute creation")
        handle = a!
        try check(dnnl_primitive_attr_set_scratchpad_mode(handle, dnnl_scratchpad_mode_user), "scratchpad mode")
        if let outputScales {
            try check(dnnl_primitive_attr_set_output_scales(handle, Int64(outputScales.count), 1 << 1, outputScales), "output scales")
        }
        if let commonScale {
            try check(dnnl_primitive_attr_set_output_scales(handle, 1, 0, [commonScale]), "output scale")
        }
        var ops: dnnl_post_ops_t?
        try check(dnnl_post_ops_create(&ops), "post-op creation")
        defer { dnnl_post_ops_destroy(ops) }
        for op in postOps {
            switch op {
            case .relu: try check(dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_relu, 0, 0), "relu post-op")
            case .silu: try check(dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_swish, 1, 0), "silu post-op")
            case .sigmoid: try check(dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_logistic, 0, 0), "sigmoid post-op")
            case let .scale(alpha): try check(dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_linear, alpha, 0), "scale post-op")
            case let .accumulate(scale): try check(dnnl_post_ops_append_sum(ops, scale), "sum post-op")
            case .add:
                var md = addend!
                try check(dnnl_post_ops_append_binary(ops, dnnl_binary_add, &md), "add post-op")
            }
        }
        try check(dnnl_primitive_attr_set_post_ops(handle, ops), "post-op attribute")
    }

    deinit { dnnl_primitive_attr_destroy(handle) }
}

/// The execution argument of the binary post-op at `index` (DNNL_ARG_ATTR_MULTIPLE_POST_OP(i) | SRC_1,
/// a function-like macro Swift cannot import).
func postOpSource(_ index: Int) -> Int32 {
    Int32(DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE) * Int32(index + 1) | Int32(DNNL_ARG_SRC_1)
}

/// Copies `src` into a new memory of layout `desc`.
func reorder(_ src: Memory, to desc: MemoryDesc) throws -> Memory {
    var s = src.desc, d = desc
    var pd: dnnl_primitive_desc_t?
    let attr = try Attributes()
    try check(dnnl_reorder_primitive_desc_create(&pd, &s, Engine.cpu.handle, &d, Engine.cpu.handle, attr.handle), "reorder descriptor")
    let p = try Primitive(pd: pd!, what: "reorder")
    let dst = try Memory(desc)
    try p.execute([(Int32(DNNL_ARG_SRC), src), (Int32(DNNL_ARG_DST), dst)])
    return dst
}

/// Conversions between activations' number formats, one cached primitive per shape and pair
/// of formats: they run on every tile.
enum Reorders {
    private struct Key: Hashable, Sendable {
        let dims: [Int64]
        let from: UInt32
        let to: UInt32
        let scale: UInt32?
        /// Where the destination starts and how it strides: a channel slice of a wider tensor
        /// needs a primitive of its own.
        let destination: [Int64]
    }

    private static let cache = PrimitiveCache<Key, Primitive>()

    /// `scale`: multiplies each value on the way (quantising to int8 rounds and saturates).
    static func run(from src: Memory, to dst: Memory, scale: Float? = nil) throws {
        var s = src.desc, d = dst.desc
        let dims = withUnsafeBytes(of: s.dims) { Array($0.bindMemory(to: Int64.self).prefix(Int(s.ndims))) }
        let strides = withUnsafeBytes(of: d.format_desc.blocking.strides) { Array($0.bindMemory(to: Int64.self).prefix(Int(d.ndims))) }
        let p = try cache.value(Key(dims: dims, from: s.data_type.rawValue, to: d.data_type.rawValue, scale: scale?.bitPattern,
                                    destination: [d.offset0] + strides)) {
            var pd: dnnl_primitive_desc_t?
            let attr = try Attributes(commonScale: scale)
            try check(dnnl_reorder_primitive_desc_create(&pd, &s, Engine.cpu.handle, &d, Engine.cpu.handle, attr.handle), "reorder descriptor")
            return try Primitive(pd: pd!, what: "reorder")
        }
        try p.execute([(Int32(DNNL_ARG_SRC), src), (Int32(DNNL_ARG_DST), dst)])
    }
}

/// 64-byte aligned storage handed out by `BufferPool`.
final class PooledBuffer: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    let size: Int

    init(size: Int) {
        self.size = size
        pointer = .allocate(byteCount: max(size, 64), alignment: 64)
    }

    deinit { pointer.deallocate() }
}

/// Keeps released activation buffers for reuse by size, up to `limit` bytes in all.
final class BufferPool: @unchecked Sendable {
    static let shared = BufferPool(limit: 2 << 30)
    private var free: [Int: [PooledBuffer]] = [:]
    private var held = 0
    private let limit: Int
    private let lock = NSLock()

    init(limit: Int) { self.limit = limit }

    func take(_ size: Int) -> PooledBuffer {
        lock.lock()
        if let b = free[size]?.popLast() {
            held -= size
            lock.unlock()
            return b
        }
        lock.unlock()
        return PooledBuffer(size: size)
    }

    func drain() {
        lock.lock()
        free = [:]
        held = 0
        lock.unlock()
    }

    func give(_ b: PooledBuffer) {
        lock.lock()
        defer { lock.unlock() }
        guard held + b.size <= limit else { return }
        free[b.size, default: []].append(b)
        held += b.size
    }
}

/// A per-thread scratch buffer that grows to the largest scratchpad any primitive asked for.
final class Scratchpad: @unchecked Sendable {
    private static let key = "plateseg.models.dnnl-scratchpad"
    private var buffer: UnsafeMutableRawPointer?
    private var capacity = 0

    static func current() -> Scratchpad {
        let dict = Thread.current.threadDictionary
        if let s = dict[key] as? Scratchpad { return s }
        let s = Scratchpad()
        dict[key] = s
        return s
    }

    deinit { buffer?.deallocate() }

    /// A view of the buffer; valid until the next call on this thread.
    func memory(_ desc: MemoryDesc) throws -> Memory {
        var d = desc
        let size = dnnl_memory_desc_get_size(&d)
        if size > capacity {
            buffer?.deallocate()
            buffer = .allocate(byteCount: size, alignment: 64)
            capacity = size
        }
        return try Memory(desc, viewing: buffer!, owner: self)
    }
}

/// Primitives keyed by what determines them (shapes and parameters), created on first use.
final class PrimitiveCache<Key: Hashable & Sendable, Value>: @unchecked Sendable {
    private var entries: [Key: Value] = [:]
    private let lock = NSLock()

    func value(_ key: Key, make: () throws -> Value) rethrows -> Value {
        lock.lock()
        defer { lock.unlock() }
        if let v = entries[key] { return v }
        let v = try make()
        entries[key] = v
        return v
    }

    var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return entries.count
    }
}
