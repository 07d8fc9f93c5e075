/// A picture for a person checking a segmentation: the gray image with each instance's outline
/// drawn in the colour of its cell type.
public enum Overlay {
    /// Outline colours (RGB) by cell type; chosen to stay distinct on gray and for the common
    /// forms of colour blindness (Okabe–Ito palette).
    public static let colours: [String: (UInt8, UInt8, UInt8)] = [
        "shsy5y": (0, 158, 115),   // bluish green
        "astro": (230, 159, 0),    // orange
        "cort": (204, 121, 167),   // reddish purple
    ]
    /// For a cell type without a colour of its own.
    public static let otherColour: (UInt8, UInt8, UInt8) = (86, 180, 233)  // sky blue

    /// RGBA pixels, row-major, opaque: a mask pixel is outline when one of its four neighbours is
    /// outside the mask (or outside the image). Mask pixels outside `image` are not drawn.
    public static func render(_ image: GrayImage, instances: [(mask: Mask, cellType: String)]) -> [UInt8] {
        var rgba = [UInt8](repeating: 255, count: image.width * image.height * 4)
        for (i, v) in image.pixels.enumerated() {
            rgba[4 * i] = v
            rgba[4 * i + 1] = v
            rgba[4 * i + 2] = v
        }
        for (mask, cellType) in instances {
            let (r, g, b) = colours[cellType] ?? otherColour
            let box = mask.box
            for y in 0..<box.height where box.y + y < image.height {
                for x in 0..<box.width where mask.bits[y * box.width + x] != 0 && box.x + x < image.width {
                    let ix = box.x + x, iy = box.y + y
                    let edge = !mask[ix - 1, iy] || !mask[ix + 1, iy] || !mask[ix, iy - 1] || !mask[ix, iy + 1]
                    guard edge else { continue }
                    let o = 4 * (iy * image.width + ix)
                    rgba[o] = r
                    rgba[o + 1] = g
                    rgba[o + 2] = b
                }
            }
        }
        return rgba
    }

    /// Writes the overlay PNG; refuses masks made for another image size (the wrong image was read).
    public static func write(_ image: GrayImage, instances: [(mask: Mask, cellType: String)], to path: String) throws {
        if let m = instances.first(where: { $0.mask.imageWidth != image.width || $0.mask.imageHeight != image.height })?.mask {
            throw OverlayError(path: path, reason: "the cells were found on a \(m.imageWidth)x\(m.imageHeight) image, the image given is \(image.width)x\(image.height)")
        }
        try PNGCodec.writeRGBA(width: image.width, height: image.height, rgba: render(image, instances: instances), to: path)
    }
}

/// An overlay asked of cells and an image that do not belong together.
public struct OverlayError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var reason: String

    public var description: String {
        "\(path): overlay not written (\(reason)); draw it on the image the cells were merged for"
    }
}
