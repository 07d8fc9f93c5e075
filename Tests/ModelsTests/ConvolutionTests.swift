import Foundation
import Testing
@testable import Models

/// `Conv2D` against a plain loop over the definition, for the shapes the architectures use:
/// which oneDNN implementation runs depends on the CPU (a dilated 3x3 runs as jit:avx512 on one
/// machine and as gemm on an AVX2-only one), so each must give the same numbers.
@Suite struct ConvolutionTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var channels: Int
        var height: Int
        var width: Int
        var dilation: Int
        var postOps: [PostOp]
        var testDescription: String { "\(channels)ch \(height)x\(width) dilation \(dilation) \(postOps)" }
    }

    static let cases: [Case] = [1, 2, 4].flatMap { d in
        [[], [.relu], [.add, .relu], [.relu, .add]].flatMap { ops in
            [Case(channels: 8, height: 13, width: 17, dilation: d, postOps: ops),
             Case(channels: 32, height: 21, width: 30, dilation: d, postOps: ops)]
        }
    }

    @Test(arguments: cases)
    func matchesTheDefinition(_ c: Case) throws {
        let n = c.channels, k = 3, pad = c.dilation
        // Fixed values in [-1, 1] with no pattern a misplaced read could hide in.
        func values(_ count: Int, _ salt: Double) -> [Float] { (0..<count).map { Float(sin(Double($0) * 12.9898 + salt)) } }
        let weights = values(n * n * k * k, 1).map { $0 * 0.2 }
        let bias = values(n, 2)
        let input = values(n * c.height * c.width, 3)
        let residual = values(n * c.height * c.width, 4)
        let conv = try Conv2D(weights: weights, bias: bias, inChannels: n, outChannels: n, kernel: k,
                              padding: pad, dilation: c.dilation, postOps: c.postOps)
        let x = try Tensor(shape: [1, n, c.height, c.width], nchw: input)
        let r = try Tensor(shape: [1, n, c.height, c.width], nchw: residual)
        let got = try conv(x, residual: c.postOps.contains(.add) ? r : nil).nchw()

        let plane = c.height * c.width
        var worst: Float = 0
        for o in 0..<n {
            for y in 0..<c.height {
                for xx in 0..<c.width {
                    var s = bias[o]
                    for i in 0..<n {
                        for ky in 0..<k {
                            let iy = y - pad + ky * c.dilation
                            guard iy >= 0 && iy < c.height else { continue }
                            for kx in 0..<k {
                                let ix = xx - pad + kx * c.dilation
                                guard ix >= 0 && ix < c.width else { continue }
                                s += weights[((o * n + i) * k + ky) * k + kx] * input[i * plane + iy * c.width + ix]
                            }
                        }
                    }
                    let p = o * plane + y * c.width + xx
                    for op in c.postOps {
                        switch op {
                        case .relu: s = max(s, 0)
                        case .add: s += residual[p]
                        default: Issue.record("post-op \(op) not covered here")
                        }
                    }
                    worst = max(worst, abs(got[p] - s))
                }
            }
        }
        #expect(worst < 1e-3, "largest difference \(worst)")
    }
}
