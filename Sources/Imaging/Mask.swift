/// One object's pixels in an image, stored as a bitmap over its bounding box only: a cell covers
/// a few hundred of an image's 366,080 pixels, so image-sized planes per instance would make
/// every IoU and every encoding three orders of magnitude slower.
public struct Mask: Sendable, Equatable {
    /// The size of the image the mask belongs to.
    public let imageWidth: Int
    public let imageHeight: Int
    /// The tight bounding box of the set pixels, in image coordinates; zero-sized when empty.
    public let box: PixelRect
    /// Number of set pixels.
    public let area: Int
    /// One byte per pixel of `box`, row-major, 1 = set.
    public let bits: [UInt8]

    /// A mask from a bitmap over `window` (image coordinates, may reach past the image: pixels
    /// outside the image are dropped). The stored box is tightened to the set pixels.
    public init(imageWidth: Int, imageHeight: Int, window: PixelRect, bits: [UInt8]) {
        precondition(imageWidth > 0 && imageHeight > 0, "image size must be positive")
        precondition(window.width >= 0 && window.height >= 0 && bits.count == window.width * window.height,
                     "bitmap size must match its window")
        self.imageWidth = imageWidth
        self.imageHeight = imageHeight
        let cx0 = max(window.x, 0), cy0 = max(window.y, 0)
        let cx1 = min(window.maxX, imageWidth), cy1 = min(window.maxY, imageHeight)
        var minX = Int.max, minY = Int.max, maxX = Int.min, maxY = Int.min, count = 0
        if cx1 > cx0 && cy1 > cy0 {
            for y in cy0..<cy1 {
                let row = (y - window.y) * window.width - window.x
                for x in cx0..<cx1 where bits[row + x] != 0 {
                    count += 1
                    if x < minX { minX = x }
                    if x > maxX { maxX = x }
                    if y < minY { minY = y }
                    if y > maxY { maxY = y }
                }
            }
        }
        area = count
        guard count > 0 else {
            box = PixelRect(x: 0, y: 0, width: 0, height: 0)
            self.bits = []
            return
        }
        let tight = PixelRect(x: minX, y: minY, width: maxX - minX + 1, height: maxY - minY + 1)
        box = tight
        if tight == window {
            self.bits = bits.map { $0 != 0 ? 1 : 0 }
        } else {
            var out = [UInt8](repeating: 0, count: tight.area)
            for y in 0..<tight.height {
                let src = (y + tight.y - window.y) * window.width + (tight.x - window.x)
                for x in 0..<tight.width where bits[src + x] != 0 { out[y * tight.width + x] = 1 }
            }
            self.bits = out
        }
    }

    /// A mask from an image-sized bitmap, row-major.
    public init(imageWidth: Int, imageHeight: Int, pixels: [UInt8]) {
        self.init(imageWidth: imageWidth, imageHeight: imageHeight,
                  window: PixelRect(x: 0, y: 0, width: imageWidth, height: imageHeight), bits: pixels)
    }

    /// An empty mask.
    public init(imageWidth: Int, imageHeight: Int) {
        self.init(imageWidth: imageWidth, imageHeight: imageHeight, window: PixelRect(x: 0, y: 0, width: 0, height: 0), bits: [])
    }

    public var isEmpty: Bool { area == 0 }

    public subscript(x: Int, y: Int) -> Bool {
        guard x >= box.x, x < box.maxX, y >= box.y, y < box.maxY else { return false }
        return bits[(y - box.y) * box.width + (x - box.x)] != 0
    }

    /// The mean pixel position in pixel indices (column x, row y), as scikit-image's
    /// `regionprops` reports it: a mask of the single pixel (0, 0) has its centroid at (0, 0).
    public var centroid: (x: Double, y: Double) {
        guard area > 0 else { return (0, 0) }
        var sx = 0, sy = 0
        for y in 0..<box.height {
            for x in 0..<box.width where bits[y * box.width + x] != 0 {
                sx += x
                sy += y
            }
        }
        return (Double(box.x) + Double(sx) / Double(area), Double(box.y) + Double(sy) / Double(area))
    }

    /// The image-sized bitmap, row-major.
    public func imagePixels() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: imageWidth * imageHeight)
        for y in 0..<box.height {
            let dst = (y + box.y) * imageWidth + box.x
            for x in 0..<box.width { out[dst + x] = bits[y * box.width + x] }
        }
        return out
    }

    /// Number of pixels set in both masks; only the overlap of the two boxes is visited.
    public func intersectionArea(_ other: Mask) -> Int {
        let x0 = max(box.x, other.box.x), x1 = min(box.maxX, other.box.maxX)
        let y0 = max(box.y, other.box.y), y1 = min(box.maxY, other.box.maxY)
        guard x1 > x0, y1 > y0 else { return 0 }
        var n = 0
        bits.withUnsafeBufferPointer { a in
            other.bits.withUnsafeBufferPointer { b in
                for y in y0..<y1 {
                    let ra = (y - box.y) * box.width - box.x
                    let rb = (y - other.box.y) * other.box.width - other.box.x
                    for x in x0..<x1 { n &+= Int(a[ra + x] & b[rb + x]) }
                }
            }
        }
        return n
    }

    public func iou(_ other: Mask) -> Double {
        let inter = intersectionArea(other)
        let union = area + other.area - inter
        return union > 0 ? Double(inter) / Double(union) : 0
    }
}
