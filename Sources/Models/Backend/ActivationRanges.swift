import Foundation
import Imaging

/// The range of the values each layer reads, recorded from float32 runs on calibration images:
/// what int8 quantisation scales its input by. A percentile of |x| rather than the maximum, so
/// that a few extreme activations do not waste the 8 bits on every other value.
public struct ActivationRanges: Codable, Sendable, Equatable {
    /// Per layer, by its weights' name (e.g. `backbone.body.layer1.0.conv1`): what it reads.
    public var layers: [String: LayerRange]
    /// Per convolution: what it writes (where an int8 layer writes int8 for its readers).
    public var outputs: [String: LayerRange]
    public var percentile: Double
    /// The calibration images, by file name: never those a score is read on.
    public var images: [String]
    /// The model file's content hash: ranges of another version of the network do not apply.
    public var modelFile: String
    /// Set by a person once this network in int8 was compared with fp32 on the validation images
    /// and kept its cells (`models/MODEL_CARD.md`): only then does `--precision auto` choose int8
    /// for it. New ranges start unvalidated.
    public var validated: Bool
    /// Layers that keep computing in the activations' precision (bf16 where the processor has it)
    /// in int8, each named by its weights' name or a scope of them (`backbone.backbone.dark2`):
    /// those where 8 bits move the network's output most (`models/MODEL_CARD.md`, "Precision").
    /// Their ranges stay recorded.
    public var floatLayers: [String]

    public init(layers: [String: LayerRange], outputs: [String: LayerRange] = [:], percentile: Double, images: [String],
                modelFile: String, validated: Bool = false, floatLayers: [String] = []) {
        self.layers = layers
        self.outputs = outputs
        self.percentile = percentile
        self.images = images
        self.modelFile = modelFile
        self.validated = validated
        self.floatLayers = floatLayers
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        layers = try c.decode([String: LayerRange].self, forKey: .layers)
        outputs = try c.decodeIfPresent([String: LayerRange].self, forKey: .outputs) ?? [:]
        percentile = try c.decode(Double.self, forKey: .percentile)
        images = try c.decode([String].self, forKey: .images)
        modelFile = try c.decode(String.self, forKey: .modelFile)
        validated = try c.decodeIfPresent(Bool.self, forKey: .validated) ?? false
        floatLayers = try c.decodeIfPresent([String].self, forKey: .floatLayers) ?? []
    }

    /// Whether `layer` is one of `floatLayers` or inside one of their scopes.
    public func keepsFloat(_ layer: String) -> Bool {
        floatLayers.contains { Self.scope($0, holds: layer) }
    }

    /// Whether `name` (a layer's or a tensor's) is `scope` or inside it, by whole dotted parts:
    /// `backbone.layer1` holds `backbone.layer1.0.conv1` but not `backbone.layer10`.
    public static func scope(_ scope: String, holds name: String) -> Bool {
        name == scope || name.hasPrefix(scope + ".")
    }

    /// The input ranges of the layers that compute in int8: a layer without one computes in the
    /// activations' precision.
    var int8Layers: [String: LayerRange] { layers.filter { !keepsFloat($0.key) } }
}

extension ActivationRanges {
    /// Where a model file's ranges are kept: `<network>.int8.json` beside `<network>.safetensors`.
    public static func path(besideModel file: String) -> String {
        (file.hasSuffix(".safetensors") ? String(file.dropLast(".safetensors".count)) : file) + ".int8.json"
    }

    /// The tiling `plateseg submit` uses by default: the network sees what it sees on a plate.
    static let layout = TileLayout.standard

    /// Runs the network of `file` in float32 on each of `images` (a training split, never the
    /// images a score is read on) and records its layers' input ranges; `progress` is told each
    /// image as it is done.
    public static func record(modelFile file: String, images: [String], intensity: IntensityRule, percentile: Double,
                              progress: (String) -> Void = { _ in }) throws -> ActivationRanges {
        let model = try ModelLoader.load(path: file, precision: .fp32)
        let recorder = ActivationRecorder()
        for path in images {
            let field = intensity.apply(try ImageFile.read(path))
            try recorder.recording {
                for tile in layout.tiles(width: field.width, height: field.height) { _ = try model.run(field.crop(tile)) }
            }
            progress(path)
        }
        return ActivationRanges(layers: recorder.ranges(percentile: percentile), outputs: recorder.outputRanges(percentile: percentile),
                                percentile: percentile,
                                images: images.map { PathName.file($0) },
                                modelFile: ContentHash.of(try Data(contentsOf: URL(fileURLWithPath: file))))
    }

    /// Reads a ranges file (`file` names it in errors). Every range must be one the recorder can
    /// make: finite, its bound (a percentile of |x|) not negative, or the layer's int8 scale
    /// would be meaningless and its outputs silently wrong.
    public static func decode(_ data: Data, file: String) throws -> ActivationRanges {
        let ranges: ActivationRanges
        do { ranges = try JSONDecoder().decode(ActivationRanges.self, from: data) } catch {
            throw ModelError.calibration(file: file, reason: "cannot be read as int8 ranges (\(error)); run `plateseg calibrate-int8` again")
        }
        guard ranges.percentile > 0, ranges.percentile <= 100 else {
            throw ModelError.calibration(file: file, reason: "gives percentile \(ranges.percentile), not in (0, 100]; run `plateseg calibrate-int8` again")
        }
        for (layer, range) in ranges.layers.merging(ranges.outputs, uniquingKeysWith: { a, _ in a }).sorted(by: { $0.key < $1.key })
        where !range.minimum.isFinite || !range.bound.isFinite || range.bound < 0 {
            throw ModelError.calibration(
                file: file, reason: "layer \(layer) has range minimum \(range.minimum), bound \(range.bound) (a bound must be finite and not negative); run `plateseg calibrate-int8` again")
        }
        return ranges
    }

    /// Those of `scopes` (layers, or scopes of them) that name no layer of the network in `file`:
    /// a layer is named by its weights without ".weight" (convolutions and fully connected).
    public static func unknownLayers(_ scopes: [String], of file: String) throws -> [String] {
        let layers = try SafeTensorsFile(path: file).entries.filter { $0.key.hasSuffix(".weight") && $0.value.shape.count >= 2 }
            .keys.map { String($0.dropLast(".weight".count)) }
        return scopes.filter { scope in !layers.contains { Self.scope(scope, holds: $0) } }
    }

    /// Records the ranges of the network in `file` (as `record`) and writes them beside it.
    /// `floatLayers`: layers, or scopes of them, that keep the activations' precision in int8
    /// (`unknownLayers` checks them). `inputsOnly`: no output ranges, so that in int8 the layers
    /// keep bf16 between them.
    public static func calibrate(modelFile file: String, images: [String], intensity: IntensityRule, percentile: Double,
                                 floatLayers: [String] = [], inputsOnly: Bool = false,
                                 progress: (String) -> Void = { _ in }) throws -> ActivationRanges {
        var ranges = try record(modelFile: file, images: images, intensity: intensity, percentile: percentile, progress: progress)
        if inputsOnly { ranges.outputs = [:] }
        ranges.floatLayers = floatLayers
        try ranges.write(besideModel: file)
        return ranges
    }

    /// Writes the ranges beside the model file they were recorded for.
    public func write(besideModel file: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: Self.path(besideModel: file)))
    }
}

public struct LayerRange: Codable, Sendable, Equatable {
    /// The smallest value seen: 0 or more means the layer reads unsigned values (after a ReLU).
    public var minimum: Float
    /// The percentile of |x|.
    public var bound: Float
}

/// Collects, per layer, a histogram of |x| with 64 bins per octave (1 % wide), so any
/// percentile can be read afterwards without keeping the values.
public final class ActivationRecorder: @unchecked Sendable {
    static let binsPerOctave: Float = 64
    /// 2^-40 … 2^40: beyond, values are counted in the end bins.
    static let octaves = 40
    private var histograms: [String: Histogram] = [:]
    private var outputHistograms: [String: Histogram] = [:]
    private let lock = NSLock()

    struct Histogram {
        var counts = [UInt64](repeating: 0, count: 2 * ActivationRecorder.octaves * Int(ActivationRecorder.binsPerOctave) + 1)
        /// Exact zeros (after a ReLU, most of a layer's input) are counted apart.
        var zeros: UInt64 = 0
        var minimum = Float.infinity
    }

    public init() {}

    /// Records what `layer` reads.
    func record(_ layer: String, _ x: Tensor) { record(x, into: \.histograms, layer) }

    /// Records what `layer` writes.
    func record(output layer: String, _ y: Tensor) { record(y, into: \.outputHistograms, layer) }

    private func record(_ x: Tensor, into table: ReferenceWritableKeyPath<ActivationRecorder, [String: Histogram]>, _ layer: String) {
        guard x.precision == .fp32, !layer.isEmpty else { return }
        var h = Histogram()
        let p = x.data, n = x.count
        let top = h.counts.count - 1
        for i in 0..<n {
            let v = p[i]
            h.minimum = min(h.minimum, v)
            let a = abs(v)
            guard a > 0 else { h.zeros += 1; continue }
            let bin = Int((log2(a) + Float(Self.octaves)) * Self.binsPerOctave)
            h.counts[min(max(bin, 0), top)] += 1
        }
        lock.lock()
        defer { lock.unlock() }
        if var old = self[keyPath: table][layer] {
            for i in old.counts.indices { old.counts[i] += h.counts[i] }
            old.zeros += h.zeros
            old.minimum = min(old.minimum, h.minimum)
            self[keyPath: table][layer] = old
        } else {
            self[keyPath: table][layer] = h
        }
    }

    /// Each layer's input range at `percentile` of |x| (the upper edge of the bin it falls in).
    public func ranges(percentile: Double) -> [String: LayerRange] { ranges(of: \.histograms, percentile) }

    /// Each convolution's output range, as `ranges(percentile:)`.
    public func outputRanges(percentile: Double) -> [String: LayerRange] { ranges(of: \.outputHistograms, percentile) }

    private func ranges(of table: KeyPath<ActivationRecorder, [String: Histogram]>, _ percentile: Double) -> [String: LayerRange] {
        lock.lock()
        defer { lock.unlock() }
        return self[keyPath: table].mapValues { h in
            let total = h.counts.reduce(h.zeros, +)
            let wanted = UInt64((Double(total) * percentile / 100).rounded(.up))
            var seen = h.zeros, bin = 0
            while seen < wanted && bin < h.counts.count {
                seen += h.counts[bin]
                bin += 1
            }
            let bound = seen <= h.zeros && bin == 0 ? 0 : exp2(Float(bin) / Self.binsPerOctave - Float(Self.octaves))
            return LayerRange(minimum: h.minimum, bound: bound)
        }
    }

    private static let key = "plateseg.models.activation-recorder"

    static var current: ActivationRecorder? { Thread.current.threadDictionary[key] as? ActivationRecorder }

    /// Runs `body` with this recorder seeing every layer's input on this thread.
    public func recording<T>(_ body: () throws -> T) rethrows -> T {
        let dict = Thread.current.threadDictionary
        dict[Self.key] = self
        defer { dict.removeObject(forKey: Self.key) }
        return try body()
    }
}
