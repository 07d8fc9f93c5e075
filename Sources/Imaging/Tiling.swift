/// How an image is cut into tiles: tiles of at most `size` pixels a side that overlap by
/// `overlap`, so that any cell smaller than the overlap lies whole in at least one tile.
public struct TileLayout: Sendable, Hashable, Codable {
    public let size: Int
    public let overlap: Int

    /// `plateseg submit`'s: a whole 704x520 Sartorius field in one tile, larger fields cut with
    /// an overlap larger than the largest cell.
    public static let standard = TileLayout(size: 768, overlap: 96)

    public init(size: Int, overlap: Int) {
        precondition(size > 0 && overlap >= 0 && overlap < size, "tile overlap must be smaller than the tile")
        self.size = size
        self.overlap = overlap
    }

    /// The tiles of a `width` x `height` image, row by row. The last tile of a row or column is
    /// moved back to end at the image edge rather than padded, so no tile holds blank margin.
    public func tiles(width: Int, height: Int) -> [PixelRect] {
        let xs = starts(length: width), ys = starts(length: height)
        return ys.flatMap { y in
            xs.map { x in PixelRect(x: x, y: y, width: min(size, width), height: min(size, height)) }
        }
    }

    private func starts(length: Int) -> [Int] {
        guard length > size else { return [0] }
        let stride = size - overlap
        var out: [Int] = []
        var s = 0
        while s + size < length {
            out.append(s)
            s += stride
        }
        out.append(length - size)
        return out
    }
}
