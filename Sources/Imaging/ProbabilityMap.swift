/// Per-pixel probabilities for `channels` planes, quantized to 8 bits (p × 255, rounded):
/// half a step of error (0.002) is far below what any threshold in the ensemble resolves,
/// and it makes the maps four times smaller than Float32 before compression.
public struct ProbabilityMap: Sendable, Equatable {
    public let channels: Int
    public let width: Int
    public let height: Int
    /// Planar, channel-major, row-major inside a plane.
    public var values: [UInt8]

    public init(channels: Int, width: Int, height: Int, values: [UInt8]) {
        precondition(values.count == channels * width * height)
        self.channels = channels
        self.width = width
        self.height = height
        self.values = values
    }

    public init(channels: Int, width: Int, height: Int, probabilities: [Float]) {
        precondition(probabilities.count == channels * width * height)
        self.init(channels: channels, width: width, height: height,
                  values: probabilities.map(Self.quantize))
    }

    @inlinable
    public static func quantize(_ p: Float) -> UInt8 {
        UInt8(max(0, min(255, (p * 255).rounded())))
    }

    /// The probability a stored level stands for; a level interpolated between stored ones too.
    @inlinable
    public static func probability(level: Float) -> Float {
        level / 255
    }

    @inlinable
    public func probability(channel: Int, x: Int, y: Int) -> Float {
        Self.probability(level: Float(values[(channel * height + y) * width + x]))
    }

    /// A square one-channel map (a soft mask) spread over `grid`'s box, read bilinearly.
    @inlinable
    public func probability(in grid: BoxGrid, row: BoxGrid.Stop, column: BoxGrid.Stop) -> Float {
        values.withUnsafeBufferPointer { v in Self.probability(level: grid.interpolate(row, column) { Float(v[$0]) }) }
    }

    /// A soft mask over `box` at image point (x, y); 0 outside the box, where Mask R-CNN places
    /// no part of its cell.
    @inlinable
    public func softMaskProbability(over box: Box, x: Float, y: Float) -> Float {
        let grid = BoxGrid(cells: width, over: box)
        guard grid.contains(x: x, y: y) else { return 0 }
        return probability(in: grid, row: grid.row(atY: y), column: grid.column(atX: x))
    }

    public func plane(_ channel: Int) -> ArraySlice<UInt8> {
        values[(channel * width * height)..<((channel + 1) * width * height)]
    }
}

/// Row-wise delta filter: neighbouring probabilities are close, so their differences cluster
/// near zero and zstd compresses them about twice as well as the raw bytes.
enum RowDelta {
    static func encode(_ bytes: inout [UInt8], rowLength: Int) {
        guard rowLength > 1 else { return }
        bytes.withUnsafeMutableBufferPointer { b in
            var row = 0
            while row < b.count {
                var i = min(row + rowLength, b.count) - 1
                while i > row {
                    b[i] = b[i] &- b[i - 1]
                    i -= 1
                }
                row += rowLength
            }
        }
    }

    static func decode(_ bytes: inout [UInt8], rowLength: Int) {
        guard rowLength > 1 else { return }
        bytes.withUnsafeMutableBufferPointer { b in
            var row = 0
            while row < b.count {
                let end = min(row + rowLength, b.count)
                var i = row + 1
                while i < end {
                    b[i] = b[i] &+ b[i - 1]
                    i += 1
                }
                row += rowLength
            }
        }
    }
}
