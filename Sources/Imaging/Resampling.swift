/// Fields imaged at another magnification than the training images are brought to the
/// networks' scale before they see them, and the cells found are mapped back to the field.
extension GrayImage {
    /// The image at `width` x `height`, pixel centres aligned (PyTorch's `align_corners=False`).
    /// Shrinking averages every source pixel whose centre falls in a target pixel's footprint,
    /// so that fine texture is not aliased; enlarging interpolates bilinearly.
    public func resampled(width w: Int, height h: Int) -> GrayImage {
        precondition(w > 0 && h > 0, "size must be positive")
        if w == width && h == height { return self }
        return w <= width && h <= height ? areaAveraged(width: w, height: h) : bilinear(width: w, height: h)
    }

    private func areaAveraged(width w: Int, height h: Int) -> GrayImage {
        let sx = Double(width) / Double(w), sy = Double(height) / Double(h)
        // Source columns (rows) whose centres fall in target column (row) i: [lo, hi).
        func span(_ i: Int, _ s: Double, _ n: Int) -> Range<Int> {
            let lo = min(n - 1, max(0, Int((Double(i) * s - 0.5).rounded(.up))))
            let hi = min(n, max(lo + 1, Int((Double(i + 1) * s - 0.5).rounded(.up))))
            return lo..<hi
        }
        let columns = (0..<w).map { span($0, sx, width) }
        var out = [UInt8](repeating: 0, count: w * h)
        for y in 0..<h {
            let rows = span(y, sy, height)
            for x in 0..<w {
                var sum = 0
                for r in rows {
                    let base = r * width
                    for c in columns[x] { sum += Int(pixels[base + c]) }
                }
                let n = rows.count * columns[x].count
                out[y * w + x] = UInt8((sum + n / 2) / n)
            }
        }
        return GrayImage(width: w, height: h, pixels: out)
    }

    private func bilinear(width w: Int, height h: Int) -> GrayImage {
        func taps(_ i: Int, _ scale: Double, _ n: Int) -> (Int, Int, Double) {
            let p = max(0, (Double(i) + 0.5) * scale - 0.5)
            let i0 = min(Int(p), n - 1)
            return (i0, min(i0 + 1, n - 1), p - Double(i0))
        }
        let xs = (0..<w).map { taps($0, Double(width) / Double(w), width) }
        var out = [UInt8](repeating: 0, count: w * h)
        for y in 0..<h {
            let (y0, y1, fy) = taps(y, Double(height) / Double(h), height)
            for x in 0..<w {
                let (x0, x1, fx) = xs[x]
                let top = Double(pixels[y0 * width + x0]) * (1 - fx) + Double(pixels[y0 * width + x1]) * fx
                let bottom = Double(pixels[y1 * width + x0]) * (1 - fx) + Double(pixels[y1 * width + x1]) * fx
                out[y * w + x] = UInt8(min(255, max(0, (top * (1 - fy) + bottom * fy).rounded())))
            }
        }
        return GrayImage(width: w, height: h, pixels: out)
    }
}

extension Mask {
    /// The mask on an image of `width` x `height` covering the same scene: each target pixel
    /// takes the source pixel its centre falls in. Masks that did not overlap still do not.
    public func rescaled(imageWidth w: Int, imageHeight h: Int) -> Mask {
        guard area > 0 else { return Mask(imageWidth: w, imageHeight: h) }
        let sx = Double(imageWidth) / Double(w), sy = Double(imageHeight) / Double(h)
        // The target pixels whose centres fall in the source box.
        let x0 = max(0, Int((Double(box.x) / sx - 0.5).rounded(.down))), x1 = min(w, Int((Double(box.maxX) / sx + 0.5).rounded(.up)))
        let y0 = max(0, Int((Double(box.y) / sy - 0.5).rounded(.down))), y1 = min(h, Int((Double(box.maxY) / sy + 0.5).rounded(.up)))
        guard x1 > x0, y1 > y0 else { return Mask(imageWidth: w, imageHeight: h) }
        let window = PixelRect(x: x0, y: y0, width: x1 - x0, height: y1 - y0)
        var bits = [UInt8](repeating: 0, count: window.area)
        let sourceX = (x0..<x1).map { min(imageWidth - 1, Int((Double($0) + 0.5) * sx)) }
        for y in y0..<y1 {
            let sourceY = min(imageHeight - 1, Int((Double(y) + 0.5) * sy))
            for (i, x) in sourceX.enumerated() where self[x, sourceY] {
                bits[(y - y0) * window.width + i] = 1
            }
        }
        return Mask(imageWidth: w, imageHeight: h, window: window, bits: bits)
    }
}

/// How much a field is resized to reach the networks' pixel size: the field's µm per pixel
/// over the training images'. One rounding rule, shared by the submitter (which cuts tiles of
/// the resized field) and the workers (which resize it).
public struct FieldScale: Sendable, Equatable, Codable {
    public let factor: Double

    public init(fieldPixelSize: Double, networkPixelSize: Double) {
        factor = fieldPixelSize / networkPixelSize
    }

    public init(factor: Double) {
        self.factor = factor
    }

    public func size(width: Int, height: Int) -> (width: Int, height: Int) {
        (max(1, Int((Double(width) * factor).rounded())), max(1, Int((Double(height) * factor).rounded())))
    }
}
