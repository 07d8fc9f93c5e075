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

    @inlinable
    public func probability(channel: Int, x: Int, y: Int) -> Float {
        Float(values[(channel * height + y) * width + x]) / 255
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
