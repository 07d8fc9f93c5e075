import Foundation
import Testing
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

    @Test func aLayerWithoutACalibratedRangeRunsInItsActivationsPrecision() throws {
        let conv = try Conv2D(weights: values(8 * 8 * 9, 1), bias: values(8, 2), inChannels: 8, outChannels: 8, kernel: 3, padding: 1,
                              precision: .int8)
        #expect(conv.precision == Precision.int8.activations)
    }
}
