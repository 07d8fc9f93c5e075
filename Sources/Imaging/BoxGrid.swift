/// An n x n grid of values spread over a box, as Mask R-CNN's soft masks are: cell k's centre
/// lies at (k + 0.5) / n of the box's width (height), and beyond the outermost centres the edge
/// values hold. Read bilinearly; the one rule for every place that reads such a grid (pasting a
/// mask into the image, joining the pieces of a cell cut by tile seams, fusing a mirrored look).
public struct BoxGrid: Sendable {
    public let cells: Int
    public let box: Box

    public init(cells: Int, over box: Box) {
        precondition(cells >= 1)
        self.cells = cells
        self.box = box
    }

    /// Where a coordinate falls between two neighbouring columns (rows) of the grid.
    public struct Stop: Sendable {
        public let lower: Int
        public let upper: Int
        /// The upper one's weight.
        public let fraction: Float

        @usableFromInline init(lower: Int, upper: Int, fraction: Float) {
            self.lower = lower
            self.upper = upper
            self.fraction = fraction
        }
    }

    @inlinable public func column(atX x: Float) -> Stop { Self.stop(x, box.x0, box.x1, cells) }

    @inlinable public func row(atY y: Float) -> Stop { Self.stop(y, box.y0, box.y1, cells) }

    /// Whether an image point lies inside the box (x0, y0 inclusive; x1, y1 exclusive).
    @inlinable public func contains(x: Float, y: Float) -> Bool {
        x >= box.x0 && x < box.x1 && y >= box.y0 && y < box.y1
    }

    @inlinable static func stop(_ p: Float, _ lo: Float, _ hi: Float, _ n: Int) -> Stop {
        // A degenerate box reads its first cell rather than dividing by zero.
        let g = min(max((p - lo) / max(hi - lo, 1e-6) * Float(n) - 0.5, 0), Float(n - 1))
        let i = min(Int(g), max(n - 2, 0))
        return Stop(lower: i, upper: min(i + 1, n - 1), fraction: g - Float(i))
    }

    /// The value at (row, column) of a row-major grid whose values `value` reads by index.
    @inlinable public func interpolate(_ row: Stop, _ column: Stop, _ value: (Int) -> Float) -> Float {
        let n = cells
        let top = value(row.lower * n + column.lower) * (1 - column.fraction) + value(row.lower * n + column.upper) * column.fraction
        let bottom = value(row.upper * n + column.lower) * (1 - column.fraction) + value(row.upper * n + column.upper) * column.fraction
        return top * (1 - row.fraction) + bottom * row.fraction
    }
}
