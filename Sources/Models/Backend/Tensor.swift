import CDNNL

/// An activation: float32, bfloat16, or 8-bit integers at a scale. Logically NCHW (or NC for
/// fully connected layers); physically kept in oneDNN's channels-last layout (nhwc) from the
/// first layer to the last, so convolutions never pay for a reorder between layers.
final class Tensor: @unchecked Sendable {
    /// Logical dimensions: [N, C, H, W] or [N, C].
    let shape: [Int]
    /// fp32 or bf16, or int8 for values quantised as `format` says.
    let precision: Precision
    /// The number format of the elements, and for int8 the scale: stored = real x scale.
    let format: NumberFormat
    let memory: Memory

    /// `precision`: of the network; the tensor holds its activations' format (int8 networks
    /// keep bf16 or fp32 where a layer does not write int8).
    init(shape: [Int], precision: Precision = .fp32) throws {
        precondition(shape.count == 4 || shape.count == 2, "tensors are NCHW or NC")
        self.shape = shape
        self.precision = precision.activations
        format = NumberFormat(type: precision.dataType)
        memory = try Memory(memoryDesc(shape, Tensor.tag(rank: shape.count), format.type))
    }

    /// A tensor of 8-bit integers (`format`: s8 or u8, at its scale).
    init(shape: [Int], quantised format: NumberFormat) throws {
        precondition(format.isInteger, "a quantised tensor holds s8 or u8")
        self.shape = shape
        precision = .int8
        self.format = format
        memory = try Memory(memoryDesc(shape, Tensor.tag(rank: shape.count), format.type))
    }

    /// An empty tensor of `shape` in this tensor's number format (and scale).
    func alike(shape: [Int]) throws -> Tensor {
        precision == .int8 ? try Tensor(shape: shape, quantised: format) : try Tensor(shape: shape, precision: precision)
    }

    /// This tensor in `precision`'s activations (never int8): itself when it is in it already,
    /// else a converted copy.
    func converted(to precision: Precision) throws -> Tensor {
        let precision = precision.activations
        guard precision != self.precision else { return self }
        let y = try Tensor(shape: shape, precision: precision)
        try Reorders.run(from: memory, to: y.memory, scale: format.isInteger ? 1 / format.scale : nil)
        return y
    }

    /// This tensor as float32, for code that reads its numbers.
    func floats() throws -> Tensor { try converted(to: .fp32) }

    /// `body` on this tensor's float32 elements. A converted copy lives until `body` returns: a
    /// pointer into a copy that was released reads a buffer the pool may already have handed to
    /// another thread (a bf16 or int8 network's outputs came out changed when two threads ran
    /// networks in one process).
    func withFloats<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) throws -> R {
        let f = try floats()
        return try withExtendedLifetime(f) { try body(f.data) }
    }

    /// The size of one element in bytes.
    var elementSize: Int { format.size }

    static func tag(rank: Int) -> dnnl_format_tag_t { rank == 4 ? dnnl_nhwc : dnnl_nc }

    var n: Int { shape[0] }
    var c: Int { shape[1] }
    var h: Int { shape.count == 4 ? shape[2] : 1 }
    var w: Int { shape.count == 4 ? shape[3] : 1 }
    var count: Int { shape.reduce(1, *) }
    /// The float32 elements; only for a float32 tensor (`floats()`).
    var data: UnsafeMutablePointer<Float> {
        precondition(precision == .fp32, "a \(precision) tensor read as float32: convert it with floats()")
        return memory.floats
    }

    var bytes: UnsafeMutableRawPointer { memory.bytes }

    /// Builds a tensor from planar NCHW values.
    convenience init(shape: [Int], nchw values: [Float]) throws {
        try self.init(shape: shape)
        precondition(values.count == count, "value count must match the shape")
        let (C, HW) = (c, h * w)
        let p = data
        values.withUnsafeBufferPointer { v in
            for n in 0..<n {
                for ch in 0..<C {
                    let src = (n * C + ch) * HW
                    for i in 0..<HW { p[(n * HW + i) * C + ch] = v[src + i] }
                }
            }
        }
    }

    /// The values in planar NCHW order.
    func nchw() throws -> [Float] {
        let (C, HW) = (c, h * w)
        var out = [Float](repeating: 0, count: count)
        try withFloats { p in
            out.withUnsafeMutableBufferPointer { o in
                for n in 0..<n {
                    for ch in 0..<C {
                        let dst = (n * C + ch) * HW
                        for i in 0..<HW { o[dst + i] = p[(n * HW + i) * C + ch] }
                    }
                }
            }
        }
        return out
    }

    /// Element (n, c, y, x) of a 4-D tensor.
    @inline(__always)
    func at(_ n: Int, _ ch: Int, _ y: Int, _ x: Int) -> Float {
        data[((n * h + y) * w + x) * c + ch]
    }
}

/// How an activation's numbers are stored: float32, bfloat16, or 8-bit integers with a scale
/// (stored = real x scale, rounded and saturated).
struct NumberFormat: Hashable, Sendable {
    let type: dnnl_data_type_t
    /// 1 for floats.
    let scale: Float

    init(type: dnnl_data_type_t, scale: Float = 1) {
        self.type = type
        self.scale = scale
    }

    /// The 8-bit format that holds `range` at full resolution: u8 for values never negative
    /// (after a ReLU), else s8, the range's bound mapped to the largest integer.
    init(int8 range: LayerRange) {
        let unsigned = range.minimum >= 0
        self.init(type: unsigned ? dnnl_u8 : dnnl_s8, scale: (unsigned ? 255 : 127) / max(range.bound, 1e-6))
    }

    var isInteger: Bool { type == dnnl_s8 || type == dnnl_u8 }

    var size: Int {
        switch type {
        case dnnl_f32: return 4
        case dnnl_bf16: return 2
        default: return 1
        }
    }

    static func == (a: NumberFormat, b: NumberFormat) -> Bool { a.type.rawValue == b.type.rawValue && a.scale == b.scale }
    func hash(into h: inout Hasher) {
        h.combine(type.rawValue)
        h.combine(scale)
    }
}
