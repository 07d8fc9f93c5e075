/// A gray field as the instrument wrote it: 8- or 16-bit samples (held as 16-bit), row-major.
/// The networks see it only after an `IntensityRule` has brought it to 8 bits.
public struct SampleImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// 8 or 16: what the file held, and so the range of `samples`.
    public let bitDepth: Int
    public var samples: [UInt16]

    public init(width: Int, height: Int, bitDepth: Int, samples: [UInt16]) {
        precondition(width > 0 && height > 0 && samples.count == width * height, "sample count must be width*height")
        precondition(bitDepth == 8 || bitDepth == 16, "8 or 16 bits")
        self.width = width
        self.height = height
        self.bitDepth = bitDepth
        self.samples = samples
    }

    public init(_ gray: GrayImage) {
        self.init(width: gray.width, height: gray.height, bitDepth: 8, samples: gray.pixels.map(UInt16.init))
    }

    public var maxValue: Int { bitDepth == 16 ? 65535 : 255 }
}
