import CPNG

/// A field with its cells outlined in the colours of their types, for a person checking a
/// segmentation: full size (RGB PNG) or as a small thumbnail (a 64-colour PNG of a few tens of
/// KB). Drawn from a label image, so that two touching cells of one type keep their border.
public struct CellPicture: Sendable {
    public let image: GrayImage
    public let labels: LabelImage
    /// The colour of each label (index 0 unused), from `Overlay.colours`.
    let colours: [(UInt8, UInt8, UInt8)]

    /// `cellTypes[i]` is the type of label `i + 1`.
    public init(image: GrayImage, labels: LabelImage, cellTypes: [String]) {
        precondition(image.width == labels.width && image.height == labels.height)
        self.image = image
        self.labels = labels
        colours = [(0, 0, 0)] + cellTypes.map { Overlay.colours[$0] ?? Overlay.otherColour }
    }

    /// A labelled pixel is outline when one of its four neighbours has another label.
    func isOutline(_ x: Int, _ y: Int) -> Bool {
        let w = labels.width, h = labels.height
        let l = labels.labels[y * w + x]
        guard l != 0 else { return false }
        return x == 0 || y == 0 || x == w - 1 || y == h - 1
            || labels.labels[y * w + x - 1] != l || labels.labels[y * w + x + 1] != l
            || labels.labels[(y - 1) * w + x] != l || labels.labels[(y + 1) * w + x] != l
    }

    /// The full-size overlay as an RGB PNG.
    public func writeOverlay(to path: String) throws {
        var rgb = [UInt8](repeating: 0, count: image.width * image.height * 3)
        for y in 0..<image.height {
            for x in 0..<image.width {
                let i = y * image.width + x
                let (r, g, b) = isOutline(x, y) ? colours[Int(labels.labels[i])] : (image.pixels[i], image.pixels[i], image.pixels[i])
                rgb[3 * i] = r
                rgb[3 * i + 1] = g
                rgb[3 * i + 2] = b
            }
        }
        try PNGCodec.writeRGB(width: image.width, height: image.height, rgb: rgb, to: path)
    }

    /// Gray levels of a thumbnail; the palette's last entries are the cell types' colours.
    static let grayLevels = 48

    /// A thumbnail whose longer side is at most `side` pixels: each of its pixels is the mean of
    /// the field's pixels it covers, stretched between the 1st and 99th percentile of those means
    /// (averaging flattens a phase-contrast field to its mid-gray), or the colour of a cell whose
    /// outline passes through them.
    public func writeThumbnail(side: Int, to path: String) throws {
        let factor = max(1, (max(image.width, image.height) + side - 1) / side)
        let tw = (image.width + factor - 1) / factor, th = (image.height + factor - 1) / factor
        let types = Array(Set(colours.dropFirst().map { [$0.0, $0.1, $0.2] })).sorted { $0.lexicographicallyPrecedes($1) }
        var palette: [UInt8] = []
        for level in 0..<Self.grayLevels {
            let v = UInt8(level * 255 / (Self.grayLevels - 1))
            palette += [v, v, v]
        }
        for colour in types { palette += colour }
        let typeIndex = Dictionary(uniqueKeysWithValues: types.enumerated().map { ($0.element, UInt8(Self.grayLevels + $0.offset)) })
        var means = [Int](repeating: 0, count: tw * th)
        var outlines = [UInt32](repeating: 0, count: tw * th)
        for ty in 0..<th {
            for tx in 0..<tw {
                var sum = 0, count = 0
                var outline: UInt32 = 0
                for y in (ty * factor)..<min((ty + 1) * factor, image.height) {
                    for x in (tx * factor)..<min((tx + 1) * factor, image.width) {
                        sum += Int(image.pixels[y * image.width + x])
                        count += 1
                        if outline == 0, isOutline(x, y) { outline = labels.labels[y * image.width + x] }
                    }
                }
                means[ty * tw + tx] = sum / max(count, 1)
                outlines[ty * tw + tx] = outline
            }
        }
        let sorted = means.sorted()
        let low = sorted[sorted.count / 100], high = max(sorted[sorted.count * 99 / 100], low + 1)
        var indices = [UInt8](repeating: 0, count: tw * th)
        for i in indices.indices {
            if outlines[i] != 0 {
                let (r, g, b) = colours[Int(outlines[i])]
                indices[i] = typeIndex[[r, g, b]]!
            } else {
                indices[i] = UInt8(min(max(means[i] - low, 0) * (Self.grayLevels - 1) / (high - low), Self.grayLevels - 1))
            }
        }
        try PNGCodec.writeIndexed(width: tw, height: th, indices: indices, palette: palette, to: path)
    }
}
