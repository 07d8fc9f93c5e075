import Imaging
import Testing
@testable import Models

/// Operators against values PyTorch / torchvision print for the same inputs.
@Suite struct OpsTests {
    private func close(_ a: [Float], _ b: [Float], _ tol: Float = 1e-4) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= tol }
    }

    @Test func bilinearResizeIsAlignCornersFalse() throws {
        let x = try Tensor(shape: [1, 1, 2, 3], nchw: [0, 1, 2, 3, 4, 5])
        let y = try Ops.resize(x, height: 3, width: 5, mode: .bilinear)
        // F.interpolate(x, size=(3, 5), mode="bilinear", align_corners=False)
        #expect(close(try y.nchw(), [0, 0.4, 1, 1.6, 2, 1.5, 1.9, 2.5, 3.1, 3.5, 3, 3.4, 4, 4.6, 5]))
    }

    @Test func nearestResizeRepeatsPixels() throws {
        let x = try Tensor(shape: [1, 1, 2, 3], nchw: [0, 1, 2, 3, 4, 5])
        let y = try Ops.resize(x, height: 4, width: 6, mode: .nearest)
        #expect(try y.nchw() == [0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 3, 3, 4, 4, 5, 5])
    }

    @Test func elementwiseAddMulAndConcat() throws {
        let a = try Tensor(shape: [1, 2, 1, 2], nchw: [1, 2, 3, 4])
        let b = try Tensor(shape: [1, 2, 1, 2], nchw: [10, 20, 30, 40])
        #expect(try Ops.add(a, b).nchw() == [11, 22, 33, 44])
        #expect(try Ops.mul(a, b).nchw() == [10, 40, 90, 160])
        #expect(try Ops.concat([a, b]).nchw() == [1, 2, 3, 4, 10, 20, 30, 40])
        #expect(throws: ModelError.self) { try Ops.add(a, Tensor(shape: [1, 1, 1, 2])) }
    }

    @Test func adaptiveAveragePoolHasOverlappingBins() throws {
        // 1x5 row pooled to 3 bins: [0,2) [1,4) [3,5) as PyTorch's AdaptiveAvgPool2d
        let x = try Tensor(shape: [1, 1, 1, 5], nchw: [1, 2, 3, 4, 5])
        let y = try Ops.adaptiveAveragePool(x, size: 3)
        #expect(y.shape == [1, 1, 3, 3])
        #expect(close(Array(try y.nchw()[0..<3]), [1.5, 3, 4.5]))
    }

    /// torchvision.ops.roi_align(f, boxes, output_size=2, spatial_scale=1, sampling_ratio, aligned)
    @Test(arguments: [(true, 2), (false, 2), (false, 0)])
    func roiAlignMatchesTorchvision(aligned: Bool, samplingRatio: Int) throws {
        var values = (0..<60).map { Float($0) * 0.5 - 3 }
        for y in 0..<5 {  // channel 1: rows flipped and scaled by 0.7
            for x in 0..<6 { values[30 + y * 6 + x] = (Float(30 + y * 6 + (5 - x)) * 0.5 - 3) * 0.7 }
        }
        let f = try Tensor(shape: [1, 2, 5, 6], nchw: values)
        let boxes = [Box(x0: 1.3, y0: 0.7, x1: 4.6, y1: 3.9), Box(x0: -0.8, y0: 2.2, x1: 3.1, y1: 5.5),
                     Box(x0: 0.2, y0: 0.1, x1: 5.9, y1: 4.9)]
        let expected: [Float] = switch (aligned, samplingRatio) {
        case (true, _): [0.8125, 1.6375, 5.6125, 6.4375, 11.68125, 11.10375, 15.04125, 14.46375, 4.61562, 5.3875, 8.68437, 9.45625,
                         15.42406, 14.88375, 18.27219, 17.73187, -0.0375, 1.3875, 7.1625, 8.5875, 11.43625, 10.43875, 16.47625, 15.47875]
        case (false, 2): [2.5625, 3.3875, 7.3625, 8.1875, 12.55625, 11.97875, 15.91625, 15.33875, 6.24062, 7.1375, 4.58281, 5.03125,
                          16.38656, 15.75875, 9.21703, 8.90313, 1.7125, 3.09063, 8.4625, 9.84062, 12.31125, 11.34656, 17.03625, 16.07156]
        default: [2.5625, 3.3875, 7.3625, 8.1875, 12.55625, 11.97875, 15.91625, 15.33875, 6.24062, 7.1375, 4.58281, 5.03125,
                  16.38656, 15.75875, 9.21703, 8.90313, 1.7125, 3.06667, 8.4125, 9.76667, 12.31125, 11.36333, 17.00125, 16.05333]
        }
        let out = try Tensor(shape: [3, 2, 2, 2])
        RoIAlign(outputSize: 2, samplingRatio: samplingRatio, aligned: aligned)
            .pool(boxes, levels: [0, 0, 0], features: [f], strides: [1], into: out.data)
        let got = try out.nchw()
        #expect(close(got, expected), "\(got)")
    }
}
