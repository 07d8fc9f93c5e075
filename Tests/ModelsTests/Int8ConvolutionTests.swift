import Foundation
import Testing
import CDNNL
@testable import Models

/// An int8 convolution against the same convolution in float32: the input quantised at its
/// range (u8 when it is never negative, s8 otherwise), the weights per output channel, the bias
/// and the residual add in real units. 8 bits carry about 1 % of the range: the outputs agree to
/// 3 % of the largest output.
@Suite(.enabled(if: Precision.int8.isNative, "this processor has no int8 dot-product instructions (VNNI)"))
struct Int8ConvolutionTests {
    func values(_ count: Int, _ salt: Double) -> [Float] { (0..<count).map { Float(sin(Double($0) * 12.9898 + salt)) } }

    @Test(arguments: [false, true], [[PostOp](), [.relu], [.add, .relu]])
    func matchesFloat32(nonNegative: Bool, postOps: [PostOp]) throws {
        let n = 32, h = 19, w = 23
        let weights = values(n * n * 9, 1).map { $0 * 0.1 }, bias = values(n, 2)
        let input = values(n * h * w, 3).map { nonNegative ? abs($0) * 2 : $0 * 2 }
        let residual = values(n * h * w, 4)
        let range = LayerRange(minimum: input.min()!, bound: input.map(abs).max()!)
        let reference = try Conv2D(weights: weights, bias: bias, inChannels: n, outChannels: n, kernel: 3, padding: 1, postOps: postOps)
        let quantised = try Conv2D(weights: weights, bias: bias, inChannels: n, outChannels: n, kernel: 3, padding: 1, postOps: postOps,
                                   precision: .int8, range: range)
        #expect(quantised.precision == .int8)
        let x = try Tensor(shape: [1, n, h, w], nchw: input), r = try Tensor(shape: [1, n, h, w], nchw: residual)
        let add = postOps.contains(.add) ? r : nil
        let want = try reference(x, residual: add).nchw()
        let got = try quantised(x, residual: add).nchw()
        let largest = want.map(abs).max()!
        let worst = zip(got, want).map { abs($0 - $1) }.max()!
        #expect(worst < 0.03 * largest, "worst difference \(worst) of outputs up to \(largest)")
    }

    /// Parts quantised into their channels of the input give what the concatenation gives, and
    /// parts of a shape the layer does not take are refused.
    @Test func partsQuantisedInPlaceEqualTheirConcatenation() throws {
        let (h, w) = (11, 13), sizes = [16, 32, 16]
        let n = sizes.reduce(0, +)
        let parts = try sizes.enumerated().map { i, c in try Tensor(shape: [1, c, h, w], nchw: values(c * h * w, Double(i) + 5)) }
        let range = LayerRange(minimum: -1, bound: 1)
        let conv = try Conv2D(weights: values(8 * n * 9, 1).map { $0 * 0.1 }, bias: values(8, 2), inChannels: n, outChannels: 8, kernel: 3,
                              padding: 1, postOps: [.relu], precision: .int8, range: range)
        let want = try conv(Ops.concat(parts)).nchw()
        let got = try conv(concatenating: parts).nchw()
        #expect(got == want)
        #expect(throws: ModelError.self) { try conv(concatenating: Array(parts.dropLast())) }
    }

    /// Two int8 layers passing int8 between them, the second adding the first's int8 output as
    /// its residual: YOLOX's bottleneck (SiLU, then SiLU and the add: s8 throughout) and
    /// ResNet's downsampled block (no activation: s8, then the add and a ReLU: u8 out of a signed
    /// residual). Against the same two layers in float32, writing int8 at a calibrated output
    /// range or floats.
    @Test(arguments: [[PostOp.silu], []], [false, true])
    func int8BetweenLayersMatchesFloat32(first: [PostOp], int8Output: Bool) throws {
        let second: [PostOp] = first.isEmpty ? [.add, .relu] : [.silu, .add]
        let n = 32, h = 19, w = 23
        let input = values(n * h * w, 3).map { $0 * 2 }
        let (w1, b1) = (values(n * n * 9, 1).map { $0 * 0.1 }, values(n, 2))
        let (w2, b2) = (values(n * n * 9, 5).map { $0 * 0.1 }, values(n, 6))
        let f1 = try Conv2D(weights: w1, bias: b1, inChannels: n, outChannels: n, kernel: 3, padding: 1, postOps: first)
        let f2 = try Conv2D(weights: w2, bias: b2, inChannels: n, outChannels: n, kernel: 3, padding: 1, postOps: second)
        let x = try Tensor(shape: [1, n, h, w], nchw: input)
        let a = try f1(x), want = try f2(a, residual: a).nchw()
        func range(_ v: [Float]) -> LayerRange { LayerRange(minimum: v.min()!, bound: v.map(abs).max()!) }
        let q1 = try Conv2D(weights: w1, bias: b1, inChannels: n, outChannels: n, kernel: 3, padding: 1, postOps: first,
                            precision: .int8, range: range(input), outputRange: range(try a.nchw()))
        let q2 = try Conv2D(weights: w2, bias: b2, inChannels: n, outChannels: n, kernel: 3, padding: 1, postOps: second,
                            precision: .int8, range: range(try a.nchw()), outputRange: int8Output ? range(want) : nil)
        let qa = try q1(x)
        #expect(qa.precision == .int8 && qa.format.type == dnnl_s8, "negative in places: s8")
        let y = try q2(qa, residual: qa)
        #expect((y.precision == .int8) == int8Output)
        let got = try y.nchw()
        let largest = want.map(abs).max()!
        let worst = zip(got, want).map { abs($0 - $1) }.max()!
        #expect(worst < 0.04 * largest, "worst difference \(worst) of outputs up to \(largest)")
    }

    /// The post-ops run in real units and end in the output's; an int8 residual is accumulated
    /// in the output's units; floats out leave the post-ops alone.
    @Test func postOpsAroundInt8() {
        let out = NumberFormat(type: dnnl_u8, scale: 8), float = NumberFormat(type: dnnl_f32)
        #expect(PostOp.scaled([.silu, .add], output: float, residualScale: 4) == [.silu, .add])
        #expect(PostOp.scaled([.silu, .add], output: out) == [.silu, .add, .scale(8)])
        #expect(PostOp.scaled([.silu, .add], output: out, residualScale: 4) == [.silu, .scale(8), .accumulate(scale: 4)])
        #expect(PostOp.scaled([.add, .relu], output: out, residualScale: 1) == [.scale(8), .accumulate(scale: 1), .relu])
        #expect(PostOp.scaled([.add, .silu], output: out, residualScale: 1) == [.scale(8), .accumulate(scale: 1), .scale(0.125), .silu, .scale(8)])
    }

    /// Operators between int8 layers keep int8: pooling and nearest resizing at the input's
    /// scale, concatenation at the coarsest of its parts' scales; each within half a step of
    /// the float result.
    @Test func operatorsKeepInt8() throws {
        let (c, h, w) = (8, 9, 10)
        let a = values(c * h * w, 7), b = values(c * h * w, 8).map { $0 * 3 }
        func quantised(_ v: [Float], bound: Float) throws -> Tensor {
            let x = try Tensor(shape: [1, c, h, w], nchw: v)
            let q = try Tensor(shape: x.shape, quantised: NumberFormat(int8: LayerRange(minimum: -1, bound: bound)))
            try Reorders.run(from: x.memory, to: q.memory, scale: q.format.scale)
            return q
        }
        let qa = try quantised(a, bound: 1), qb = try quantised(b, bound: 3)
        let fa = try Tensor(shape: [1, c, h, w], nchw: a), fb = try Tensor(shape: [1, c, h, w], nchw: b)
        func agree(_ q: Tensor, _ f: Tensor, step: Float) throws {
            #expect(q.precision == .int8)
            #expect(q.shape == f.shape)
            let worst = zip(try q.nchw(), try f.nchw()).map { abs($0 - $1) }.max()!
            #expect(worst <= step * 0.51, "worst difference \(worst), step \(step)")
        }
        try agree(Ops.maxPool(qa, kernel: 3, stride: 2, padding: 1), Ops.maxPool(fa, kernel: 3, stride: 2, padding: 1), step: 1 / 127)
        try agree(Ops.resize(qa, height: 2 * h, width: 2 * w, mode: .nearest), Ops.resize(fa, height: 2 * h, width: 2 * w, mode: .nearest),
                  step: 1 / 127)
        let joined = try Ops.concat([qa, qb])
        #expect(joined.format.scale == qb.format.scale)
        // qa's values rounded once more at qb's coarser step.
        try agree(joined, Ops.concat([fa, fb]), step: 1 / 127 + 3 / 127)
    }

    @Test func aLayerWithoutACalibratedRangeRunsInItsActivationsPrecision() throws {
        let conv = try Conv2D(weights: values(8 * 8 * 9, 1), bias: values(8, 2), inChannels: 8, outChannels: 8, kernel: 3, padding: 1,
                              precision: .int8)
        #expect(conv.precision == Precision.int8.activations)
    }
}
