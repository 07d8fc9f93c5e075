import Foundation
import Imaging

/// RoIAlign (He et al. 2017) as torchvision's CPU kernel computes it: each output bin averages
/// `samplingRatio`² bilinear samples; with `aligned == false` (torchvision's MultiScaleRoIAlign)
/// boxes are not shifted by half a pixel and are at least one feature pixel wide. oneDNN has no
/// such primitive. Reading channels-last features, every sample is one contiguous channel vector.
struct RoIAlign {
    let outputSize: Int
    let samplingRatio: Int
    let aligned: Bool

    /// Pools each box from `features[level[i]]` (scale 1 / `strides[level]`) into `out`, laid out
    /// (box, y, x, channel): the memory order of an NHWC [boxes, C, size, size] tensor.
    func pool(_ boxes: [Box], levels: [Int], features: [Tensor], strides: [Int], into out: UnsafeMutablePointer<Float>) {
        let P = outputSize
        let C = features[0].c
        for (r, box) in boxes.enumerated() {
            let f = features[levels[r]]
            let scale = 1 / Float(strides[levels[r]])
            let H = f.h, W = f.w, src = f.data
            let offset: Float = aligned ? 0.5 : 0
            let x0 = box.x0 * scale - offset, y0 = box.y0 * scale - offset
            var rw = box.x1 * scale - offset - x0, rh = box.y1 * scale - offset - y0
            if !aligned {
                rw = max(rw, 1)
                rh = max(rh, 1)
            }
            let binW = rw / Float(P), binH = rh / Float(P)
            let gridH = samplingRatio > 0 ? samplingRatio : Int((rh / Float(P)).rounded(.up))
            let gridW = samplingRatio > 0 ? samplingRatio : Int((rw / Float(P)).rounded(.up))
            let inv = 1 / Float(max(gridH * gridW, 1))
            let roiOut = out + r * P * P * C
            for ph in 0..<P {
                for pw in 0..<P {
                    let bin = roiOut + (ph * P + pw) * C
                    for c in 0..<C { bin[c] = 0 }
                    for iy in 0..<gridH {
                        let yy = y0 + Float(ph) * binH + (Float(iy) + 0.5) * binH / Float(gridH)
                        for ix in 0..<gridW {
                            let xx = x0 + Float(pw) * binW + (Float(ix) + 0.5) * binW / Float(gridW)
                            guard let s = BilinearSample(y: yy, x: xx, height: H, width: W) else { continue }
                            let v1 = src + (s.yLow * W + s.xLow) * C, v2 = src + (s.yLow * W + s.xHigh) * C
                            let v3 = src + (s.yHigh * W + s.xLow) * C, v4 = src + (s.yHigh * W + s.xHigh) * C
                            for c in 0..<C { bin[c] += s.w1 * v1[c] + s.w2 * v2[c] + s.w3 * v3[c] + s.w4 * v4[c] }
                        }
                    }
                    for c in 0..<C { bin[c] *= inv }
                }
            }
        }
    }
}

/// torchvision's bilinear_interpolate: samples more than a pixel outside contribute nothing,
/// others are clamped to the border.
private struct BilinearSample {
    let yLow: Int, yHigh: Int, xLow: Int, xHigh: Int
    let w1: Float, w2: Float, w3: Float, w4: Float

    init?(y: Float, x: Float, height: Int, width: Int) {
        guard y >= -1, y <= Float(height), x >= -1, x <= Float(width) else { return nil }
        var y = max(y, 0), x = max(x, 0)
        var yl = Int(y), xl = Int(x), yh: Int, xh: Int
        if yl >= height - 1 {
            yl = height - 1
            yh = yl
            y = Float(yl)
        } else {
            yh = yl + 1
        }
        if xl >= width - 1 {
            xl = width - 1
            xh = xl
            x = Float(xl)
        } else {
            xh = xl + 1
        }
        let ly = y - Float(yl), lx = x - Float(xl), hy = 1 - ly, hx = 1 - lx
        (yLow, yHigh, xLow, xHigh) = (yl, yh, xl, xh)
        (w1, w2, w3, w4) = (hy * hx, hy * lx, ly * hx, ly * lx)
    }
}

/// torchvision's BoxCoder: deltas (dx, dy, dw, dh) / weights applied to a reference box.
struct BoxCoder {
    let weights: (Float, Float, Float, Float)
    /// log(1000 / 16): no box grows more than 62.5 times its reference.
    static let clip = logf(1000.0 / 16.0)

    func decode(_ d: (Float, Float, Float, Float), reference b: Box) -> Box {
        let w = b.x1 - b.x0, h = b.y1 - b.y0
        let cx = b.x0 + 0.5 * w, cy = b.y0 + 0.5 * h
        let dx = d.0 / weights.0, dy = d.1 / weights.1
        let dw = min(d.2 / weights.2, Self.clip), dh = min(d.3 / weights.3, Self.clip)
        let pcx = dx * w + cx, pcy = dy * h + cy
        let pw = expf(dw) * w, ph = expf(dh) * h
        return Box(x0: pcx - 0.5 * pw, y0: pcy - 0.5 * ph, x1: pcx + 0.5 * pw, y1: pcy + 0.5 * ph)
    }
}

extension Box {
    func clipped(width: Float, height: Float) -> Box {
        Box(x0: min(max(x0, 0), width), y0: min(max(y0, 0), height), x1: min(max(x1, 0), width), y1: min(max(y1, 0), height))
    }
}
