import CDNNL

/// A float32 activation. Logically NCHW (or NC for fully connected layers); physically kept in
/// oneDNN's channels-last layout (nhwc) from the first layer to the last, so convolutions never pay
/// for a reorder between layers.
final class Tensor: @unchecked Sendable {
    /// Logical dimensions: [N, C, H, W] or [N, C].
    let shape: [Int]
    let memory: Memory

    init(shape: [Int]) throws {
        precondition(shape.count == 4 || shape.count == 2, "tensors are NCHW or NC")
        self.shape = shape
        memory = try Memory(memoryDesc(shape, Tensor.tag(rank: shape.count)))
    }

    static func tag(rank: Int) -> dnnl_format_tag_t { rank == 4 ? dnnl_nhwc : dnnl_nc }

    var n: Int { shape[0] }
    var c: Int { shape[1] }
    var h: Int { shape.count == 4 ? shape[2] : 1 }
    var w: Int { shape.count == 4 ? shape[3] : 1 }
    var count: Int { shape.reduce(1, *) }
    var data: UnsafeMutablePointer<Float> { memory.floats }

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
    func nchw() -> [Float] {
        let (C, HW) = (c, h * w)
        let p = data
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
