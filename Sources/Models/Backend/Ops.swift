import CDNNL
import Foundation

/// Parameter-free operators over NCHW tensors (kept channels-last). oneDNN runs each one where it
/// has a primitive; the primitive is created once per shape.
enum Ops {
    private struct Key: Hashable, Sendable {
        let op: String
        let shapes: [[Int]]
        let params: [Int]
    }

    private static let cache = PrimitiveCache<Key, Primitive>()

    static func maxPool(_ x: Tensor, kernel: Int, stride: Int, padding: Int) throws -> Tensor {
        let out = [x.n, x.c, (x.h + 2 * padding - kernel) / stride + 1, (x.w + 2 * padding - kernel) / stride + 1]
        let type = x.format.type
        let p = try cache.value(Key(op: "maxpool", shapes: [x.shape], params: [kernel, stride, padding, Int(type.rawValue)])) {
            var src = try memoryDesc(x.shape, dnnl_nhwc, type)
            var dst = try memoryDesc(out, dnnl_nhwc, type)
            let k = [Int64(kernel), Int64(kernel)], s = [Int64(stride), Int64(stride)]
            let pad = [Int64(padding), Int64(padding)], dil: [Int64] = [0, 0]
            var desc = dnnl_pooling_v2_desc_t()
            try check(dnnl_pooling_v2_forward_desc_init(&desc, dnnl_forward_inference, dnnl_pooling_max, &src, &dst, s, k, dil, pad, pad),
                      "max pooling descriptor")
            return try Primitive(opDesc: &desc, what: "max pooling")
        }
        let y = try x.alike(shape: out)
        let ws = p.desc(dnnl_query_workspace_md)
        var args: [(Int32, Memory)] = [(Int32(DNNL_ARG_SRC), x.memory), (Int32(DNNL_ARG_DST), y.memory)]
        if ws.ndims > 0 { args.append((Int32(DNNL_ARG_WORKSPACE), try Memory(ws))) }
        try p.execute(args)
        return y
    }

    enum ResizeMode: Int, Sendable {
        case nearest
        /// Bilinear with PyTorch's `align_corners=False` (half-pixel centres, clamped at the edges).
        case bilinear
    }

    /// Integers stay integers at their scale for `.nearest`; bilinear reads floats.
    static func resize(_ x: Tensor, height: Int, width: Int, mode: ResizeMode) throws -> Tensor {
        if x.h == height && x.w == width { return x }
        let x = mode == .nearest ? x : try x.converted(to: x.precision)
        let out = [x.n, x.c, height, width]
        let type = x.format.type
        let p = try cache.value(Key(op: "resize", shapes: [x.shape, out], params: [mode.rawValue, Int(type.rawValue)])) {
            var src = try memoryDesc(x.shape, dnnl_nhwc, type)
            var dst = try memoryDesc(out, dnnl_nhwc, type)
            var desc = dnnl_resampling_desc_t()
            let alg = mode == .nearest ? dnnl_resampling_nearest : dnnl_resampling_linear
            try check(dnnl_resampling_forward_desc_init(&desc, dnnl_forward_inference, alg, nil, &src, &dst), "resampling descriptor")
            return try Primitive(opDesc: &desc, what: "resampling")
        }
        let y = try x.alike(shape: out)
        try p.execute([(Int32(DNNL_ARG_SRC), x.memory), (Int32(DNNL_ARG_DST), y.memory)])
        return y
    }

    /// Concatenation along channels, in the first tensor's precision; int8 parts give int8 at
    /// the coarsest of their scales (no part saturates).
    static func concat(_ xs: [Tensor]) throws -> Tensor {
        precondition(!xs.isEmpty)
        let first = xs[0]
        if xs.allSatisfy({ $0.precision == .int8 }) {
            let signed = xs.contains { $0.format.type == dnnl_s8 }
            let top: Float = signed ? 127 : 255
            // A part's bound is its largest integer over its scale.
            let scale = xs.map { top / ((($0.format.type == dnnl_s8) ? 127 : 255) / $0.format.scale) }.min()!
            let y = try Tensor(shape: [first.n, xs.reduce(0) { $0 + $1.c }, first.h, first.w],
                               quantised: NumberFormat(type: signed ? dnnl_s8 : dnnl_u8, scale: scale))
            try place(xs, into: y)
            return y
        }
        let xs = try xs.map { try $0.converted(to: first.precision) }
        let type = first.precision.dataType
        guard xs.allSatisfy({ $0.n == first.n && $0.h == first.h && $0.w == first.w }) else {
            throw ModelError.backend("concatenation of mismatched shapes \(xs.map(\.shape))")
        }
        let out = [first.n, xs.reduce(0) { $0 + $1.c }, first.h, first.w]
        let p = try cache.value(Key(op: "concat", shapes: xs.map(\.shape), params: [Int(type.rawValue)])) {
            let srcs = try xs.map { try memoryDesc($0.shape, dnnl_nhwc, type) }
            var dst = try memoryDesc(out, dnnl_nhwc, type)
            var pd: dnnl_primitive_desc_t?
            let attr = try Attributes()
            try srcs.withUnsafeBufferPointer { s in
                try check(dnnl_concat_primitive_desc_create(&pd, &dst, Int32(xs.count), 1, s.baseAddress, attr.handle, Engine.cpu.handle),
                          "concat descriptor")
            }
            return try Primitive(pd: pd!, what: "concat")
        }
        let y = try Tensor(shape: out, precision: first.precision)
        var args = xs.enumerated().map { (Int32(DNNL_ARG_MULTIPLE_SRC) + Int32($0.offset), $0.element.memory) }
        args.append((Int32(DNNL_ARG_DST), y.memory))
        try p.execute(args)
        return y
    }

    /// Writes `parts` one after the other into the channels of `y`, converted to its number
    /// format (an int8 part rescaled from its scale to `y`'s, a float part quantised).
    static func place(_ parts: [Tensor], into y: Tensor) throws {
        guard parts.reduce(0, { $0 + $1.c }) == y.c, parts.allSatisfy({ $0.n == y.n && $0.h == y.h && $0.w == y.w }) else {
            throw ModelError.backend("parts \(parts.map(\.shape)) do not make up a tensor of shape \(y.shape)")
        }
        var channel = 0
        for part in parts {
            let slice = try Memory(channelSlice(of: y.shape, first: channel, count: part.c, y.format.type), viewing: y.bytes, owner: y.memory)
            let ratio = y.format.scale / part.format.scale
            try Reorders.run(from: part.memory, to: slice, scale: ratio == 1 ? nil : ratio)
            channel += part.c
        }
    }

    static func add(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary(a, b, dnnl_binary_add, "add") }

    static func mul(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary(a, b, dnnl_binary_mul, "mul") }

    private static func binary(_ a: Tensor, _ b: Tensor, _ alg: dnnl_alg_kind_t, _ name: String) throws -> Tensor {
        guard a.shape == b.shape else { throw ModelError.backend("\(name) of shapes \(a.shape) and \(b.shape)") }
        let a = try a.converted(to: a.precision), b = try b.converted(to: a.precision)
        let type = a.precision.dataType
        let p = try cache.value(Key(op: name, shapes: [a.shape], params: [Int(type.rawValue)])) {
            var s0 = try memoryDesc(a.shape, Tensor.tag(rank: a.shape.count), type)
            var s1 = s0, dst = s0
            var desc = dnnl_binary_desc_t()
            try check(dnnl_binary_desc_init(&desc, alg, &s0, &s1, &dst), "binary \(name) descriptor")
            return try Primitive(opDesc: &desc, what: "binary \(name)")
        }
        let y = try Tensor(shape: a.shape, precision: a.precision)
        try p.execute([(Int32(DNNL_ARG_SRC_0), a.memory), (Int32(DNNL_ARG_SRC_1), b.memory), (Int32(DNNL_ARG_DST), y.memory)])
        return y
    }

    /// PyTorch's AdaptiveAvgPool2d: bin i spans [floor(i*H/s), ceil((i+1)*H/s)). The bins overlap
    /// and differ in size, which no oneDNN pooling expresses, so it is a loop (it reads the input once
    /// per scale, negligible next to the convolutions).
    static func adaptiveAveragePool(_ x: Tensor, size: Int) throws -> Tensor {
        let x = try x.floats()
        let y = try Tensor(shape: [x.n, x.c, size, size])
        let C = x.c, src = x.data, dst = y.data
        for n in 0..<x.n {
            for oy in 0..<size {
                let y0 = oy * x.h / size, y1 = ((oy + 1) * x.h + size - 1) / size
                for ox in 0..<size {
                    let x0 = ox * x.w / size, x1 = ((ox + 1) * x.w + size - 1) / size
                    let out = dst + ((n * size + oy) * size + ox) * C
                    for c in 0..<C { out[c] = 0 }
                    for iy in y0..<y1 {
                        for ix in x0..<x1 {
                            let row = src + ((n * x.h + iy) * x.w + ix) * C
                            for c in 0..<C { out[c] += row[c] }
                        }
                    }
                    let inv = 1 / Float((y1 - y0) * (x1 - x0))
                    for c in 0..<C { out[c] *= inv }
                }
            }
        }
        withExtendedLifetime(x) {}
        return y
    }

    /// Softmax over channels at every pixel, in place.
    static func softmaxChannels(_ x: Tensor) {
        let C = x.c, p = x.data
        for i in 0..<(x.count / C) {
            let v = p + i * C
            var m = v[0]
            for c in 1..<C { m = max(m, v[c]) }
            var s: Float = 0
            for c in 0..<C {
                v[c] = expf(v[c] - m)
                s += v[c]
            }
            for c in 0..<C { v[c] /= s }
        }
    }
}
