import Foundation

/// How fit a field is to be counted, in the spirit of CellProfiler's MeasureImageQuality,
/// measured once on the field as the file holds it and as the networks see it. Every measure
/// but `low` and `high` is unchanged by the gain and offset of the input, so that one
/// threshold holds for fields of any exposure or bit depth.
public struct FieldQuality: Sendable, Equatable, Codable {
    /// Focus: the variance of the field's Laplacian over the variance of its detail (the field
    /// less its background, the means of 32-pixel blocks). A sharp field of cells gives about
    /// 5 to 9; blurred by two pixels, below 1; pixel noise alone, 20.
    public var sharpness: Double
    /// Texture at the scale of cells: the variance of the detail's 4x4-pixel means over the
    /// detail's variance. Pixel noise alone gives 1/16; anything larger than a pixel, more.
    public var texture: Double
    /// The share of pixels at the field's own brightest or darkest value, whichever is larger:
    /// a clipped field piles up there (CellProfiler's percent maximal).
    public var saturation: Double
    /// The gray levels the middle 98 % of the field spans in the file's own units (its 99th
    /// less its 1st percentile): a field this flat is stretched from few levels to the networks.
    public var levels: Double
    /// The 1st and 99th percentiles of the field the networks see (8 bits, after the intensity
    /// rule), to hold against the training images' (`IntensityReference`).
    public var low: Double
    public var high: Double

    public init(sharpness: Double, texture: Double, saturation: Double, levels: Double, low: Double, high: Double) {
        self.sharpness = sharpness
        self.texture = texture
        self.saturation = saturation
        self.levels = levels
        self.low = low
        self.high = high
    }

    /// `raw`: the field as the file holds it; `seen`: what the networks get of it.
    public static func measure(_ raw: SampleImage, seen: GrayImage) -> FieldQuality {
        let (sharpness, texture) = detail(seen)
        let file = Histogram(raw)
        let (darkest, brightest) = (file.counts.firstIndex { $0 > 0 } ?? 0, file.counts.lastIndex { $0 > 0 } ?? 0)
        let saturation = Double(max(file.counts[darkest], file.counts[brightest])) / Double(max(file.total, 1))
        let range = file.percentiles(1, 99)
        let view = Histogram(SampleImage(seen)).percentiles(1, 99)
        return FieldQuality(sharpness: sharpness, texture: texture, saturation: saturation, levels: Double(range.high - range.low),
                            low: Double(view.low), high: Double(view.high))
    }

    /// Sharpness and texture of `image`; both 0 for a field without detail.
    static func detail(_ image: GrayImage) -> (sharpness: Double, texture: Double) {
        let (w, h) = (image.width, image.height)
        let block = 32
        let (bw, bh) = ((w + block - 1) / block, (h + block - 1) / block)
        var sums = [Double](repeating: 0, count: bw * bh), counts = [Double](repeating: 0, count: bw * bh)
        for y in 0..<h {
            for x in 0..<w {
                sums[y / block * bw + x / block] += Double(image.pixels[y * w + x])
                counts[y / block * bw + x / block] += 1
            }
        }
        var detail = [Double](repeating: 0, count: w * h)
        for y in 0..<h {
            for x in 0..<w {
                let b = y / block * bw + x / block
                detail[y * w + x] = Double(image.pixels[y * w + x]) - sums[b] / counts[b]
            }
        }
        let variance = Self.variance(detail)
        guard variance > 1e-12, w >= 3, h >= 3 else { return (0, 0) }
        // The Laplacian of the field, not of its detail: the background's block edges are not
        // the field's.
        let p = image.pixels.map(Double.init)
        var laplacian: [Double] = []
        laplacian.reserveCapacity((w - 2) * (h - 2))
        for y in 1..<(h - 1) {
            for x in 1..<(w - 1) {
                let i = y * w + x
                let around: Double = p[i - 1] + p[i + 1] + p[i - w] + p[i + w]
                laplacian.append(around - 4 * p[i])
            }
        }
        // 4x4 means of whole blocks only; 32-pixel background blocks hold whole 4x4 ones.
        var means: [Double] = []
        for by in 0..<(h / 4) {
            for bx in 0..<(w / 4) {
                var s = 0.0
                for y in (by * 4)..<(by * 4 + 4) { for x in (bx * 4)..<(bx * 4 + 4) { s += detail[y * w + x] } }
                means.append(s / 16)
            }
        }
        return (Self.variance(laplacian) / variance, means.isEmpty ? 0 : Self.variance(means) / variance)
    }

    static func variance(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let mean = values.reduce(0, +) / Double(values.count)
        return values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)
    }
}

/// Why a field's count is not to be trusted.
public enum QualityFlag: String, Sendable, CaseIterable, Codable {
    /// No cell-like texture: an empty well, a field off the sample, a closed shutter.
    case empty
    case outOfFocus = "out of focus"
    case saturated
    /// Spread over too few gray levels: under-exposed, or a lamp that failed.
    case dim
    /// Brought to other intensities than the training images' (under `--intensity fixed` or `none`).
    case unlikeTraining = "unlike training"
}

/// Where each flag begins: fitted on training fields and the same fields blurred, clipped,
/// emptied, dimmed and shifted (`fit`), shipped beside the models as `qc.json`.
public struct QualityThresholds: Sendable, Equatable, Codable {
    /// Below: out of focus.
    public var minSharpness: Double
    /// Below: empty.
    public var minTexture: Double
    /// Above: saturated.
    public var maxSaturation: Double
    /// Below: dim.
    public var minLevels: Double
    /// Further than this (8-bit levels) from the training images' 1st or 99th percentile: unlike training.
    public var maxIntensityShift: Double
    /// The reference the shift is measured from.
    public var reference: IntensityReference
    /// What it was fitted on, for the record.
    public var fields: Int
    public var source: String

    /// The flags `q` trips; a field without texture is empty, not also out of focus or dim.
    public func flags(_ q: FieldQuality) -> [QualityFlag] {
        if q.texture < minTexture { return [.empty] }
        var flags: [QualityFlag] = []
        if q.sharpness < minSharpness { flags.append(.outOfFocus) }
        if q.saturation > maxSaturation { flags.append(.saturated) }
        if q.levels < minLevels { flags.append(.dim) }
        if abs(q.low - reference.lowValue) > maxIntensityShift || abs(q.high - reference.highValue) > maxIntensityShift {
            flags.append(.unlikeTraining)
        }
        return flags
    }

    public static func load(path: String) throws -> QualityThresholds {
        do {
            return try JSONDecoder().decode(QualityThresholds.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw ImagingError.unreadable(path: path, reason: "not QC thresholds (\(error)); refit them with `plateseg fit-qc` or restore the shipped file")
        }
    }

    public func jsonData() -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try! e.encode(self)
    }
}

extension QualityThresholds {
    /// Fits each threshold between the training `fields` (8-bit, as they are) and the same fields
    /// made faulty the way that flag names: blurred (a Gaussian of 2 pixels), over-exposed (the
    /// brightest 5 % clipped), emptied (their median plus noise of their own pixel noise's
    /// size), dimmed (to 12 % of their values), and, for the shift, brought over by `reference`
    /// and then brightened or darkened by a third of the range. Each threshold lies where the
    /// measures of the good and the faulty fields meet, halfway (geometrically for ratios)
    /// between the worst good field and the best faulty one.
    public static func fit(_ fields: [GrayImage], reference: IntensityReference, source: String) -> QualityThresholds {
        precondition(!fields.isEmpty, "fitting needs fields")
        let rule = IntensityRule.matched(reference)
        var good: [FieldQuality] = []
        var faulty: [QualityFlag: [FieldQuality]] = [:]
        for (k, field) in fields.enumerated() {
            let raw = SampleImage(field)
            good.append(.measure(raw, seen: rule.apply(raw)))
            for flag in QualityFlag.allCases {
                let fault = FieldFault(flag)
                if flag == .unlikeTraining {
                    // The file as it is; what the networks see of it, off.
                    faulty[flag, default: []].append(.measure(raw, seen: fault.apply(rule.apply(raw))))
                } else {
                    let bad = SampleImage(fault.apply(field, seed: UInt64(k)))
                    faulty[flag, default: []].append(.measure(bad, seen: rule.apply(bad)))
                }
            }
        }
        func between(_ goodWorst: Double, _ faultyBest: Double, ratio: Bool) -> Double {
            ratio ? (max(goodWorst, 1e-9) * max(faultyBest, 1e-9)).squareRoot() : (goodWorst + faultyBest) / 2
        }
        let shifts = { (q: FieldQuality) in max(abs(q.low - reference.lowValue), abs(q.high - reference.highValue)) }
        return QualityThresholds(
            minSharpness: between(good.map(\.sharpness).min()!, faulty[.outOfFocus]!.map(\.sharpness).max()!, ratio: true),
            minTexture: between(good.map(\.texture).min()!, faulty[.empty]!.map(\.texture).max()!, ratio: true),
            maxSaturation: between(good.map(\.saturation).max()!, faulty[.saturated]!.map(\.saturation).min()!, ratio: true),
            minLevels: between(good.map(\.levels).min()!, faulty[.dim]!.map(\.levels).max()!, ratio: true),
            maxIntensityShift: between(good.map(shifts).max()!, faulty[.unlikeTraining]!.map(shifts).min()!, ratio: false),
            reference: reference, fields: fields.count, source: source)
    }
}

/// A field made faulty the way a flag names, for fitting and testing the thresholds.
public struct FieldFault: Sendable {
    public let flag: QualityFlag

    public init(_ flag: QualityFlag) { self.flag = flag }

    public func apply(_ field: GrayImage, seed: UInt64 = 0) -> GrayImage {
        let pixels = field.pixels.map(Double.init)
        let sorted = pixels.sorted()
        let median = sorted[pixels.count / 2]
        let out: [Double]
        switch flag {
        case .outOfFocus:
            out = Self.blur(pixels, width: field.width, height: field.height, sigma: 2)
        case .saturated:
            // Over-exposed: the brightest 5 % clip.
            let bright = max(sorted[pixels.count * 95 / 100], 1)
            out = pixels.map { $0 * 255 / bright }
        case .empty:
            // Noise as large as the field's own pixel noise: what it differs from its smoothed self by.
            let smooth = Self.blur(pixels, width: field.width, height: field.height, sigma: 1)
            let sigma = FieldQuality.variance(zip(pixels, smooth).map { $0 - $1 }).squareRoot()
            var random = SeededRandom(seed: seed)
            out = pixels.map { _ in median + sigma * random.gaussian() }
        case .dim:
            out = pixels.map { $0 * 0.12 }
        case .unlikeTraining:
            // A third of the range brighter or darker.
            out = pixels.map { $0 + (median < 128 ? 85 : -85) }
        }
        return GrayImage(width: field.width, height: field.height, pixels: out.map { UInt8(min(255, max(0, $0.rounded()))) })
    }

    /// A separable Gaussian, edges repeated.
    static func blur(_ values: [Double], width: Int, height: Int, sigma: Double) -> [Double] {
        let r = Int((3 * sigma).rounded(.up))
        var kernel = (-r...r).map { exp(-Double($0 * $0) / (2 * sigma * sigma)) }
        let total = kernel.reduce(0, +)
        kernel = kernel.map { $0 / total }
        var rows = [Double](repeating: 0, count: values.count), out = rows
        for y in 0..<height {
            for x in 0..<width {
                var s = 0.0
                for k in -r...r { s += kernel[k + r] * values[y * width + min(width - 1, max(0, x + k))] }
                rows[y * width + x] = s
            }
        }
        for y in 0..<height {
            for x in 0..<width {
                var s = 0.0
                for k in -r...r { s += kernel[k + r] * rows[min(height - 1, max(0, y + k)) * width + x] }
                out[y * width + x] = s
            }
        }
        return out
    }
}

/// SplitMix64: the same numbers from the same seed on every machine (a fault for a field, the
/// kills of a chaos run, noise in tests), with Gaussian draws.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Box–Muller.
    public mutating func gaussian() -> Double {
        let u = (Double(next() >> 11) + 1) / Double(1 << 53)
        let v = Double(next() >> 11) / Double(1 << 53)
        return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
    }
}
