/// An 8-bit single-channel image, row-major, as phase-contrast microscopes deliver them.
public struct GrayImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0 && pixels.count == width * height, "pixel count must be width*height")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    public init(width: Int, height: Int, fill: UInt8 = 0) {
        self.init(width: width, height: height, pixels: [UInt8](repeating: fill, count: width * height))
    }

    public subscript(x: Int, y: Int) -> UInt8 {
        get { pixels[y * width + x] }
        set { pixels[y * width + x] = newValue }
    }

    /// The pixels of `region`, zero-padded where the region reaches past the image.
    public func crop(_ region: PixelRect) -> GrayImage {
        var out = GrayImage(width: region.width, height: region.height)
        let x0 = max(region.x, 0), x1 = min(region.x + region.width, width)
        guard x1 > x0 else { return out }
        for y in max(region.y, 0)..<min(region.y + region.height, height) {
            let src = y * width
            let dst = (y - region.y) * region.width - region.x
            for x in x0..<x1 { out.pixels[dst + x] = pixels[src + x] }
        }
        return out
    }
}

/// An axis-aligned rectangle in whole pixels.
public struct PixelRect: Sendable, Hashable, Codable, CustomStringConvertible {
    public var x: Int
    public var y: Int
    public var width: Int
    public var height: Int

    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
    }

    public var area: Int { width * height }
    public var maxX: Int { x + width }
    public var maxY: Int { y + height }
    public var description: String { "\(width)x\(height)+\(x)+\(y)" }
}
