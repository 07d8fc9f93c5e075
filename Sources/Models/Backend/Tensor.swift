import CDNNL

/// An activation, float32 or bfloat16. Logically NCHW (or NC for fully connected layers);
/// physically kept in oneDNN's channels-last layout (nhwc) from the first layer to the last, so
/// convolutions never pay for a reorder between layers.
final class Tensor: @unchecked Sendable {
    /// Logical dimensions: [N, C, H, W] or [N, C].
    let shape: [Int]
    let precision: Precision
    let memory: Memory

    /// `precision`: of the network; the tensor holds its activations' format (int8 networks
    /// keep bf16 or fp32 between layers).
    init(shape: [Int], precision: Precision = .fp32) throws {
        precondition(shape.count == 4 || shape.count == 2, "tensors are NCHW or NC")
        self.shape = shape
        self.precision = precision.activations
        memory = try Memory(memoryDesc(shape, Tensor.tag(rank: shape.count), precision.dataType))
    }

    /// This tensor in `precision`: itself when it is in it already, else a converted copy.
    func converted(to precision: Precision) throws -> Tensor {
        let precision = precision.activations
        guard precision != self.precision else { return self }
        let y = try Tensor(shape: shape, precision: precision)
        try Reorders.run(from: memory, to: y.memory)
        return y
    }

    /// This tensor as float32, for code that reads its numbers.
    func floats() throws -> Tensor { try converted(to: .fp32) }

    /// The size of one element in bytes.
    var elementSize: Int { precision == .fp32 ? 4 : 2 }

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
        let p = try floats().data
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { o in
            for n in 0..<n {
                for ch in 0..<C {
                    let dst = (n * C + ch) * HW
                    for i in 0..<HW { o[dst + i] = p[(n * HW + i) * C + ch] }
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
