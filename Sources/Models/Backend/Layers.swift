import CDNNL
import Foundation

/// Weights (floats, or int8 once quantised) at a fixed address, so oneDNN memory objects can view them.
final class PinnedBuffer<Element>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Element>

    init(_ values: [Element]) {
        pointer = .allocate(capacity: max(values.count, 1))
        values.withUnsafeBufferPointer { pointer.initialize(from: $0.baseAddress!, count: values.count) }
    }

    deinit { pointer.deallocate() }

    func memory(_ desc: MemoryDesc) throws -> Memory {
        try Memory(desc, viewing: UnsafeMutableRawPointer(pointer), owner: self)
    }
}

/// Weights packed into the layout a primitive asked for, shared by all input shapes that ask for
/// the same layout (usually all of them).
final class PackedWeights: @unchecked Sendable {
    private let source: Memory
    private var packed: [Memory] = []
    private let lock = NSLock()

    init(_ source: Memory) { self.source = source }

    func memory(for desc: MemoryDesc) throws -> Memory {
        if sameLayout(desc, source.desc) { return source }
        lock.lock()
        defer { lock.unlock() }
        if let m = packed.first(where: { sameLayout($0.desc, desc) }) { return m }
        let m = try reorder(source, to: desc)
        packed.append(m)
        return m
    }
}

private struct ShapeKey: Hashable, Sendable {
    let input: [Int]
    let residual: Bool
    /// An int8 layer's plan is made for the number formats of its source and residual: their
    /// scales are folded into its output scales and post-ops.
    var source: NumberFormat? = nil
    var residualFormat: NumberFormat? = nil
}

private final class Plan: @unchecked Sendable {
    let primitive: Primitive
    let weights: Memory
    let bias: Memory
    let output: [Int]
    /// Where the residual goes: the index of the add among the primitive's post-ops.
    let addIndex: Int?
    /// The residual add and the post-ops after it, run as a binary primitive after the layer
    /// when the layer's implementation cannot fuse them (see `Conv2D.makePlan`).
    let unfusedAdd: Primitive?

    init(primitive: Primitive, weights: Memory, bias: Memory, output: [Int], addIndex: Int? = nil, unfusedAdd: Primitive? = nil) {
        self.primitive = primitive
        self.weights = weights
        self.bias = bias
        self.output = output
        self.addIndex = addIndex
        self.unfusedAdd = unfusedAdd
    }
}

/// Runs a layer's primitive on `source` (the input in the format the primitive reads) into `y`.
private func runPlan(_ plan: Plan, _ source: Memory, residual: Tensor?, into y: Tensor) throws -> Tensor {
    var args: [(Int32, Memory)] = [
        (Int32(DNNL_ARG_SRC), source), (Int32(DNNL_ARG_WEIGHTS), plan.weights),
        (Int32(DNNL_ARG_BIAS), plan.bias), (Int32(DNNL_ARG_DST), y.memory),
    ]
    guard let i = plan.addIndex else {
        try plan.primitive.execute(args)
        return y
    }
    guard let residual, residual.shape == plan.output else {
        throw ModelError.backend("residual add needs a tensor of shape \(plan.output)")
    }
    if let add = plan.unfusedAdd {
        try plan.primitive.execute(args)
        let sum = try y.alike(shape: plan.output)
        try add.execute([(Int32(DNNL_ARG_SRC_0), y.memory), (Int32(DNNL_ARG_SRC_1), residual.memory), (Int32(DNNL_ARG_DST), sum.memory)])
        return sum
    }
    args.append((postOpSource(i), residual.memory))
    try plan.primitive.execute(args)
    return y
}

/// 2-D convolution with bias (batch norm already folded in) and fused post-ops.
final class Conv2D: @unchecked Sendable {
    let inChannels: Int
    let outChannels: Int
    let kernel: Int
    let stride: Int
    let padding: Int
    let dilation: Int
    let groups: Int
    /// Fused after the convolution, in order; `.add` takes the `residual` argument.
    let postOps: [PostOp]
    /// What it computes in: fp32 or bf16 throughout (float32 bias and accumulation), or int8
    /// (its input quantised at its calibrated range, or read as the int8 its producer wrote).
    let precision: Precision
    /// Its weights' name in the model file, which calibration records its input's range under.
    let name: String
    /// An int8 layer with a calibrated output range writes 8-bit integers at that range for the
    /// int8 layers that read them; other layers write their activations' precision.
    let output: NumberFormat
    private let weights: PackedWeights
    private let bias: Memory
    private let quantization: Quantization?
    private let plans = PrimitiveCache<ShapeKey, Plan>()

    /// `weights` in PyTorch's OIHW order (O, I/groups, k, k). `range`: what calibration recorded
    /// of its input; an int8 layer without one computes in its activations' precision.
    /// `outputRange`: of its output, given only where every reader of the output is an int8
    /// layer or an operator that keeps int8 (pooling, nearest resizing, concatenation).
    init(weights w: [Float], bias b: [Float], inChannels: Int, outChannels: Int, kernel: Int,
         stride: Int = 1, padding: Int = 0, dilation: Int = 1, groups: Int = 1, postOps: [PostOp] = [],
         precision: Precision = .fp32, name: String = "", range: LayerRange? = nil, outputRange: LayerRange? = nil) throws {
        precondition(w.count == outChannels * inChannels / groups * kernel * kernel && b.count == outChannels)
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
        self.postOps = postOps
        self.name = name
        let dims = groups == 1 ? [outChannels, inChannels, kernel, kernel] : [groups, outChannels / groups, inChannels / groups, kernel, kernel]
        let tag = groups == 1 ? dnnl_oihw : dnnl_goihw
        if precision == .int8, let range {
            let q = Quantization(weights: w, bias: b, outChannels: outChannels, input: range)
            quantization = q
            self.precision = .int8
            output = outputRange.map(NumberFormat.init(int8:)) ?? NumberFormat(type: Precision.int8.dataType)
            weights = PackedWeights(try PinnedBuffer(q.weights).memory(memoryDesc(dims, tag, dnnl_s8)))
            bias = try PinnedBuffer(b).memory(memoryDesc([outChannels], dnnl_a))
        } else {
            quantization = nil
            self.precision = precision.activations
            output = NumberFormat(type: self.precision.dataType)
            weights = PackedWeights(try PinnedBuffer(w).memory(memoryDesc(dims, tag)))
            bias = try PinnedBuffer(b).memory(memoryDesc([outChannels], dnnl_a))
        }
    }

    func outputSize(_ size: Int) -> Int {
        (size + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1
    }

    func flops(input: [Int]) -> Double {
        let ho = outputSize(input[2]), wo = outputSize(input[3])
        return 2 * Double(input[0] * outChannels * ho * wo * inChannels / groups * kernel * kernel)
    }

    func callAsFunction(_ x: Tensor, residual: Tensor? = nil) throws -> Tensor {
        guard x.shape.count == 4, x.c == inChannels else {
            throw ModelError.backend("convolution expects \(inChannels) input channels, got shape \(x.shape)")
        }
        FlopCounter.add(flops(input: x.shape))
        ActivationRecorder.current?.record(name, x)
        guard let q = quantization else {
            let plan = try plans.value(ShapeKey(input: x.shape, residual: residual != nil)) { try makePlan(x.shape) }
            let y = try runPlan(plan, try x.converted(to: precision).memory, residual: try residual?.converted(to: precision),
                            into: try Tensor(shape: plan.output, precision: precision))
            ActivationRecorder.current?.record(output: name, y)
            return y
        }
        let source: Tensor
        if x.precision == .int8 {
            source = x
        } else {
            source = try Tensor(shape: x.shape, quantised: q.input)
            try Reorders.run(from: x.memory, to: source.memory, scale: q.input.scale)
        }
        return try run(source, residual: residual)
    }

    /// The convolution of `parts` concatenated along channels. An int8 layer quantises each part
    /// straight into its channels of the input it reads instead of concatenating them first in
    /// the activations' precision (UPerNet's FPN fusion: the concatenation was 12 % of its time).
    func callAsFunction(concatenating parts: [Tensor]) throws -> Tensor {
        guard let q = quantization, let first = parts.first else { return try self(Ops.concat(parts)) }
        let shape = [first.n, parts.reduce(0) { $0 + $1.c }, first.h, first.w]
        guard shape[1] == inChannels, parts.allSatisfy({ $0.n == first.n && $0.h == first.h && $0.w == first.w }) else {
            throw ModelError.backend("convolution expects \(inChannels) input channels in parts of one size, got \(parts.map(\.shape))")
        }
        FlopCounter.add(flops(input: shape))
        let source = try Tensor(shape: shape, quantised: q.input)
        try Ops.place(parts, into: source)
        return try run(source, residual: nil)
    }

    /// An int8 layer on its quantised `source`. A layer that writes int8 takes an int8 residual
    /// by copying it into its output first (`PostOp.accumulate`); else the residual is added in
    /// the activations' precision.
    private func run(_ source: Tensor, residual: Tensor?) throws -> Tensor {
        let int8Residual = output.isInteger ? residual.flatMap { $0.precision == .int8 ? $0.format : nil } : nil
        // A ReLU after the add makes the output u8, but a signed residual needs a signed copy.
        let written = output.type == dnnl_u8 && int8Residual?.type == dnnl_s8
            ? NumberFormat(type: dnnl_s8, scale: output.scale * 127 / 255) : output
        let key = ShapeKey(input: source.shape, residual: residual != nil, source: source.format, residualFormat: int8Residual)
        let plan = try plans.value(key) { try makePlan(source.shape, source: source.format, output: written, int8Residual: int8Residual) }
        let y = written.isInteger ? try Tensor(shape: plan.output, quantised: written) : try Tensor(shape: plan.output, precision: precision)
        if let format = int8Residual, let residual {
            guard residual.shape == plan.output else { throw ModelError.backend("residual add needs a tensor of shape \(plan.output)") }
            if format.type == written.type {
                y.bytes.copyMemory(from: residual.bytes, byteCount: residual.memory.byteCount)
            } else {
                try Reorders.run(from: residual.memory, to: y.memory, scale: written.scale / format.scale)
            }
            return try runPlan(plan, source.memory, residual: nil, into: y)
        }
        return try runPlan(plan, source.memory, residual: try residual?.converted(to: precision), into: y)
    }

    /// `source`: the number format an int8 layer reads; `output`: what it writes;
    /// `int8Residual`: the format of a residual copied into its output before it runs.
    private func makePlan(_ input: [Int], source: NumberFormat? = nil, output: NumberFormat? = nil, int8Residual: NumberFormat? = nil) throws -> Plan {
        let output = output ?? self.output
        let out = [input[0], outChannels, outputSize(input[2]), outputSize(input[3])]
        guard out[2] > 0, out[3] > 0 else { throw ModelError.backend("input \(input) is too small for a \(kernel)x\(kernel) convolution") }
        let dst = try memoryDesc(out, dnnl_nhwc, output.type)
        let addend = try memoryDesc(out, dnnl_nhwc, precision.dataType)
        // A copy in the output's type is in its units already; one in the residual's own type
        // (the bytes as they are) is scaled on the way.
        let residualScale = int8Residual.map { $0.type == output.type ? output.scale / $0.scale : 1 }
        let ops = PostOp.scaled(postOps, output: output, residualScale: residualScale)
        let addIndex = ops.firstIndex(of: .add)
        var prim = try primitive(input: input, source: source, output: out, type: output.type, postOps: ops, addend: addend)
        var unfusedAdd: Primitive?
        // oneDNN 2.6 runs dilations above 2 as im2col + gemm on CPUs without AVX-512, and that
        // implementation reads a fused binary add's tensor at the wrong places (ConvolutionTests):
        // there the add and what follows it run as a separate binary primitive. Layers that
        // write int8 add their residual with `sum`, not a binary add.
        if let i = addIndex, prim.implementation.contains("gemm"), !output.isInteger {
            prim = try primitive(input: input, source: source, output: out, type: output.type, postOps: Array(ops[..<i]), addend: addend)
            var a = dst, b = dst, c = dst
            var desc = dnnl_binary_desc_t()
            try check(dnnl_binary_desc_init(&desc, dnnl_binary_add, &a, &b, &c), "residual add descriptor")
            unfusedAdd = try Primitive(opDesc: &desc, attr: try Attributes(postOps: Array(ops[(i + 1)...])), what: "residual add")
        }
        return Plan(primitive: prim, weights: try weights.memory(for: prim.desc(dnnl_query_weights_md)),
                    bias: try source.map { try quantization!.bias(input: $0) } ?? bias, output: out, addIndex: addIndex,
                    unfusedAdd: unfusedAdd)
    }

    private func primitive(input: [Int], source: NumberFormat?, output out: [Int], type outType: dnnl_data_type_t, postOps: [PostOp],
                           addend: MemoryDesc) throws -> Primitive {
        let type = precision.dataType
        var src = try memoryDesc(input, dnnl_nhwc, source?.type ?? type)
        var dst = try memoryDesc(out, dnnl_nhwc, outType)
        let weightType = quantization == nil ? type : dnnl_s8
        var wd = groups == 1
            ? try memoryDesc([outChannels, inChannels, kernel, kernel], dnnl_format_tag_any, weightType)
            : try memoryDesc([groups, outChannels / groups, inChannels / groups, kernel, kernel], dnnl_format_tag_any, weightType)
        var bd = bias.desc
        let s = [Int64(stride), Int64(stride)], d = [Int64(dilation - 1), Int64(dilation - 1)]
        let p = [Int64(padding), Int64(padding)]
        var desc = dnnl_convolution_desc_t()
        try check(dnnl_dilated_convolution_forward_desc_init(&desc, dnnl_forward_inference, dnnl_convolution_direct,
                                                             &src, &wd, &bd, &dst, s, d, p, p), "convolution descriptor")
        let scales = source.map { quantization!.outputScales(input: $0) }
        return try Primitive(opDesc: &desc, attr: try Attributes(postOps: postOps, addend: addend, outputScales: scales),
                             what: "convolution")
    }
}

/// An int8 convolution's numbers: weights scaled per output channel so that each channel's
/// largest fills s8, and the format its input is quantised to when it arrives in floats (its
/// calibrated range: u8 after a ReLU, else s8). oneDNN 2.x adds the bias to the integer sum
/// before the output scale, so the bias is carried in the sum's units; the output scale takes
/// the sum back to real values, before the post-ops. Both depend on the input's scale, which
/// is the calibrated one or that of the int8 tensor a producer wrote.
private struct Quantization {
    let input: NumberFormat
    let weights: [Int8]
    let weightScales: [Float]
    let realBias: [Float]

    init(weights w: [Float], bias b: [Float], outChannels: Int, input range: LayerRange) {
        input = NumberFormat(int8: range)
        let per = w.count / outChannels
        var q = [Int8](repeating: 0, count: w.count)
        var scales = [Float](repeating: 0, count: outChannels)
        for o in 0..<outChannels {
            let largest = w[(o * per)..<((o + 1) * per)].reduce(Float(0)) { max($0, abs($1)) }
            let scale = 127 / max(largest, 1e-12)
            for i in (o * per)..<((o + 1) * per) { q[i] = Int8(max(-127, min(127, (w[i] * scale).rounded()))) }
            scales[o] = scale
        }
        weights = q
        weightScales = scales
        realBias = b
    }

    func bias(input: NumberFormat) throws -> Memory {
        let b = zip(realBias, weightScales).map { $0 * input.scale * $1 }
        return try PinnedBuffer(b).memory(memoryDesc([b.count], dnnl_a))
    }

    func outputScales(input: NumberFormat) -> [Float] { weightScales.map { 1 / (input.scale * $0) } }
}

/// Transposed convolution with kernel = stride and no padding (the mask head's 2x2/2 upsampling).
/// Each input pixel feeds a disjoint k x k output patch, so it is a 1x1 convolution to k²·O
/// channels followed by a depth-to-space copy; oneDNN's deconvolution kernel for this shape ran
/// about 20 times slower than its 1x1 convolution.
final class Deconv2D: @unchecked Sendable {
    let inChannels: Int
    let outChannels: Int
    let kernel: Int
    private let pointwise: Conv2D

    /// `weights` in PyTorch's ConvTranspose2d order (I, O, k, k). `postOps` must be element-wise.
    init(weights w: [Float], bias b: [Float], inChannels: Int, outChannels: Int, kernel: Int, postOps: [PostOp] = [],
         precision: Precision = .fp32, name: String = "", range: LayerRange? = nil, outputRange: LayerRange? = nil) throws {
        precondition(w.count == inChannels * outChannels * kernel * kernel && b.count == outChannels && !postOps.contains(.add))
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        let kk = kernel * kernel
        var pw = [Float](repeating: 0, count: kk * outChannels * inChannels)
        for i in 0..<inChannels {
            for o in 0..<outChannels {
                for k in 0..<kk { pw[(k * outChannels + o) * inChannels + i] = w[(i * outChannels + o) * kk + k] }
            }
        }
        pointwise = try Conv2D(weights: pw, bias: (0..<kk).flatMap { _ in b }, inChannels: inChannels,
                               outChannels: kk * outChannels, kernel: 1, postOps: postOps, precision: precision, name: name, range: range,
                               outputRange: outputRange)
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let t = try pointwise(x)
        let k = kernel, O = outChannels, H = x.h, W = x.w
        let y = try t.alike(shape: [x.n, O, H * k, W * k])
        // Whole pixels of O channels move; their number format does not matter.
        let e = t.elementSize, src = t.bytes, dst = y.bytes
        for n in 0..<x.n {
            for yy in 0..<H {
                for xx in 0..<W {
                    let s = src + ((n * H + yy) * W + xx) * k * k * O * e
                    for ky in 0..<k {
                        for kx in 0..<k {
                            (dst + ((n * H * k + yy * k + ky) * W * k + xx * k + kx) * O * e).copyMemory(from: s + (ky * k + kx) * O * e, byteCount: O * e)
                        }
                    }
                }
            }
        }
        withExtendedLifetime(t) {}
        return y
    }
}

/// Fully connected layer over NC rows.
final class Linear: @unchecked Sendable {
    let inFeatures: Int
    let outFeatures: Int
    let postOps: [PostOp]
    let precision: Precision
    /// Its weights' name in the model file, which calibration records its input's range under.
    let name: String
    private let weights: PackedWeights
    private let bias: Memory
    private let plans = PrimitiveCache<ShapeKey, Plan>()

    /// `weights` in PyTorch's (out, in) order.
    init(weights w: [Float], bias b: [Float], inFeatures: Int, outFeatures: Int, postOps: [PostOp] = [],
         precision: Precision = .fp32, name: String = "") throws {
        precondition(w.count == inFeatures * outFeatures && b.count == outFeatures)
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.postOps = postOps
        // The box head's fully connected layers read RoIAlign's float32 output; int8 networks run
        // them in their activations' precision.
        self.precision = precision.activations
        self.name = name
        weights = PackedWeights(try PinnedBuffer(w).memory(memoryDesc([outFeatures, inFeatures], dnnl_oi)))
        bias = try PinnedBuffer(b).memory(memoryDesc([outFeatures], dnnl_a))
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard x.shape.count == 2, x.c == inFeatures else {
            throw ModelError.backend("fully connected layer expects \(inFeatures) features, got shape \(x.shape)")
        }
        FlopCounter.add(2 * Double(x.n * inFeatures * outFeatures))
        ActivationRecorder.current?.record(name, x)
        let plan = try plans.value(ShapeKey(input: x.shape, residual: false)) {
            let out = [x.n, outFeatures]
            var src = try memoryDesc(x.shape, dnnl_nc, precision.dataType)
            var dst = try memoryDesc(out, dnnl_nc, precision.dataType)
            var wd = try memoryDesc([outFeatures, inFeatures], dnnl_format_tag_any, precision.dataType)
            var bd = bias.desc
            var desc = dnnl_inner_product_desc_t()
            try check(dnnl_inner_product_forward_desc_init(&desc, dnnl_forward_inference, &src, &wd, &bd, &dst), "inner product descriptor")
            let prim = try Primitive(opDesc: &desc, attr: try Attributes(postOps: postOps, addend: nil), what: "inner product")
            return Plan(primitive: prim, weights: try weights.memory(for: prim.desc(dnnl_query_weights_md)), bias: bias, output: out)
        }
        return try runPlan(plan, try x.converted(to: precision).memory, residual: nil, into: try Tensor(shape: plan.output, precision: precision))
    }
}

/// Counts the floating-point operations of the convolutions and matrix products run on this
/// thread, for the benchmark's GFLOP/s.
enum FlopCounter {
    private static let key = "plateseg.models.flops"

    static func add(_ flops: Double) {
        let dict = Thread.current.threadDictionary
        dict[key] = ((dict[key] as? Double) ?? 0) + flops
    }

    /// Returns the count since the last reset and starts again from zero.
    static func reset() -> Double {
        let dict = Thread.current.threadDictionary
        let v = (dict[key] as? Double) ?? 0
        dict[key] = 0.0
        return v
    }
}
