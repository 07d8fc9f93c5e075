import Foundation

/// Where the training images' intensities lie: their low and high percentiles, averaged over the
/// images the networks were trained on. Fitted once (`plateseg fit-intensity`) and shipped beside
/// the model files as `intensity.json`.
public struct IntensityReference: Sendable, Equatable, Codable {
    public var lowPercentile: Double
    public var highPercentile: Double
    /// The 8-bit values the training images' percentiles take, on average.
    public var lowValue: Double
    public var highValue: Double
    /// What it was fitted on, for the record.
    public var images: Int
    public var source: String

    public init(lowPercentile: Double, highPercentile: Double, lowValue: Double, highValue: Double, images: Int, source: String) {
        self.lowPercentile = lowPercentile
        self.highPercentile = highPercentile
        self.lowValue = lowValue
        self.highValue = highValue
        self.images = images
        self.source = source
    }

    /// Fits the reference: the mean over `images` of each one's percentiles.
    public static func fit(_ images: [SampleImage], lowPercentile: Double = 1, highPercentile: Double = 99, source: String) -> IntensityReference {
        precondition(!images.isEmpty, "fitting needs images")
        let ranges = images.map { Histogram($0).percentiles(lowPercentile, highPercentile) }
        let n = Double(images.count)
        return IntensityReference(lowPercentile: lowPercentile, highPercentile: highPercentile,
                                  lowValue: ranges.map { Double($0.low) }.reduce(0, +) / n,
                                  highValue: ranges.map { Double($0.high) }.reduce(0, +) / n,
                                  images: images.count, source: source)
    }

    public static func load(path: String) throws -> IntensityReference {
        do {
            return try JSONDecoder().decode(IntensityReference.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw ImagingError.unreadable(path: path, reason: "not an intensity reference (\(error)); refit it with `plateseg fit-intensity` or restore the shipped file")
        }
    }

    public func jsonData() -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try! e.encode(self)
    }
}

/// How a field's samples become the 8-bit intensities the networks were trained on. One rule per
/// plate, recorded with every result it made.
public enum IntensityRule: Sendable, Equatable, Codable, CustomStringConvertible {
    /// The field's own low and high percentiles are mapped to the values the training images'
    /// percentiles take: a field of any bit depth, gain, offset or exposure lands where the
    /// training images were. Linear, and unchanged by any gain and offset of the input.
    case matched(IntensityReference)
    /// One window for the whole plate: `low` and below to 0, `high` and above to 255.
    case fixed(low: Double, high: Double)
    /// As the file holds it: 8-bit samples unchanged, 16-bit ones divided by 257.
    case none

    /// `auto` (the matched rule on `reference`), `fixed:LO,HI` or `none`, as `--intensity` takes it.
    public init(parsing text: String, reference: @autoclosure () throws -> IntensityReference) throws {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        if t == "auto" {
            self = .matched(try reference())
        } else if t == "none" {
            self = .none
        } else if t.hasPrefix("fixed:") {
            let parts = t.dropFirst("fixed:".count).split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 2, let low = parts[0], let high = parts[1], high > low, low >= 0 else {
                throw ImagingError.unsupportedFormat(path: "--intensity", reason: "\(text): expected fixed:LO,HI with 0 <= LO < HI, in the file's own units (0-255 or 0-65535)")
            }
            self = .fixed(low: low, high: high)
        } else {
            throw ImagingError.unsupportedFormat(path: "--intensity", reason: "\(text): expected auto, fixed:LO,HI or none")
        }
    }

    public var description: String {
        switch self {
        case let .matched(r):
            return String(format: "matched: percentiles %g and %g to %.1f and %.1f (the mean of %d training images)",
                          r.lowPercentile, r.highPercentile, r.lowValue, r.highValue, r.images)
        case let .fixed(low, high): return String(format: "fixed: %g..%g to 0..255", low, high)
        case .none: return "none: 8-bit as is, 16-bit divided by 257"
        }
    }

    public func apply(_ image: SampleImage) -> GrayImage {
        let (from, to): ((low: Double, high: Double), (low: Double, high: Double))
        switch self {
        case let .matched(r):
            let p = Histogram(image).percentiles(r.lowPercentile, r.highPercentile)
            from = (Double(p.low), Double(p.high))
            to = (r.lowValue, r.highValue)
        case let .fixed(low, high):
            from = (low, high)
            to = (0, 255)
        case .none:
            from = (0, Double(image.maxValue))
            to = (0, 255)
        }
        // (v - low) / (high - low) is computed from exact integers, so a field multiplied by a
        // gain (x·257 for 8 → 16 bits) and shifted gives the very same 8-bit result.
        let span = max(from.high - from.low, 1)
        let scale = to.high - to.low
        var lookup = [UInt8](repeating: 0, count: image.maxValue + 1)
        for v in lookup.indices {
            let mapped = to.low + (Double(v) - from.low) / span * scale
            lookup[v] = UInt8(min(255, max(0, mapped.rounded())))
        }
        return GrayImage(width: image.width, height: image.height, pixels: image.samples.map { lookup[Int($0)] })
    }
}

/// Counts of each sample value, for percentiles in one pass.
struct Histogram {
    var counts: [Int]
    var total: Int

    init(_ image: SampleImage) {
        counts = [Int](repeating: 0, count: image.maxValue + 1)
        for s in image.samples { counts[Int(s)] += 1 }
        total = image.samples.count
    }

    /// The smallest values with at least `low`% and `high`% of the samples at or below them: by
    /// rank, so any increasing map of the input (a gain, an offset) maps them alike.
    func percentiles(_ low: Double, _ high: Double) -> (low: Int, high: Int) {
        (value(atPercent: low), value(atPercent: high))
    }

    private func value(atPercent p: Double) -> Int {
        let rank = max(1, Int((p / 100 * Double(total)).rounded(.up)))
        var seen = 0
        for (v, c) in counts.enumerated() {
            seen += c
            if seen >= rank { return v }
        }
        return counts.count - 1
    }
}
