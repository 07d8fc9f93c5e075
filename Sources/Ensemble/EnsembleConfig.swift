import Foundation
import Imaging

/// The three networks of the ensemble, with the raw values of `Models.ModelKind`. An artifact's
/// `model` names one of them by prefix (case, spaces, `-` and `_` ignored): "yolox…",
/// "maskrcnn…", "upernet…".
public enum EnsembleModel: String, Sendable, Codable, CaseIterable, CodingKeyRepresentable {
    case yolox
    case maskrcnn
    case upernet

    public init?(artifactModel name: String) {
        let key = name.lowercased().filter { $0 != "-" && $0 != "_" && $0 != " " }
        guard let kind = Self.allCases.first(where: { key.hasPrefix($0.rawValue) }) else { return nil }
        self = kind
    }
}

/// Every weight and threshold of the merge, in one JSON file shipped beside the models.
/// The defaults are hand-set starting points; `WeightFitter` replaces them with values fitted
/// on a validation split and records which split and what score in `fit`.
public struct EnsembleConfig: Sendable, Equatable, Codable {
    /// The cell types the shipped networks know (the Sartorius data's), in their class order.
    public static let cellTypes = ["shsy5y", "astro", "cort"]

    /// Cell types, in the order of the class probabilities the merge reports.
    public var classes: [String] = Self.cellTypes
    /// Classes a semantic map may carry beside background and cell types that belong to no cell,
    /// such as the boundary between touching cells (training/ can add one to UPerNet).
    public var separatorClasses: [String] = ["boundary"]
    /// How much each model's vote counts, relative to the others (only ratios matter for the
    /// pixel vote; for the instance score they also scale agreement).
    public var modelWeights: [EnsembleModel: Double] = [.yolox: 1, .maskrcnn: 1, .upernet: 1]

    // Stitching
    /// A detection whose box comes within this many pixels of an inner tile edge is cut by the
    /// seam; it is used only when no tile shows that cell whole.
    public var seamMargin: Double = 1
    /// Whole detections of one model from neighbouring tiles with box IoU above this are one
    /// cell seen twice in the overlap; the more confident is kept.
    public var stitchIoU: Double = 0.6
    /// Detections below this confidence are ignored altogether.
    public var minDetectionScore: Double = 0.05

    // (a) Box consensus
    /// A box joins the cluster whose fused box it overlaps with IoU above this (weighted box fusion).
    public var boxFusionIoU: Double = 0.55
    /// Fused instances scoring below this are dropped. The score is the model-weighted mean of
    /// each detecting model's best member confidence, a model that did not see the box adding 0:
    /// so agreement between models raises it.
    public var minInstanceScore: Double = 0.3
    /// The same, for cells the detectors call this type (cell types differ in how sure the
    /// networks can be: large, faint astrocytes score low); types not listed use `minInstanceScore`.
    public var minInstanceScoreByType: [String: Double] = [:]

    // (b) Pixel vote, (c) instances
    /// A pixel belongs to an instance when the weighted vote exceeds this.
    public var pixelThreshold: Double = 0.5
    /// Pixels of slack around the cluster's boxes in which the vote is taken.
    public var boxMargin: Int = 2
    /// Connected pieces of an instance smaller than this (pixels) are dropped.
    public var minFragmentArea: Int = 8
    /// Instances smaller than this (pixels) after cleaning are dropped.
    public var minInstanceArea: Int = 20
    /// An instance left with less than this fraction of the pixels it voted for, once stronger
    /// votes took theirs, is dropped: it was mostly a neighbour seen twice, and its remnant would
    /// be a false cell. 0 keeps every remnant.
    public var minKeptFraction: Double = 0
    /// For UPerNet alone: its foreground components become instances.
    public var semanticThreshold: Double = 0.5
    /// How far cells of each type grow into free UPerNet foreground once the vote has drawn
    /// them (none by default).
    public var growth = ForegroundGrowth()

    // (d) Cell types
    /// How much each model's class call counts in a cell's type, where it should differ from its
    /// say in the masks (`modelWeights`, used when this is nil): a network may outline cells well
    /// and name them badly. Cell types do not enter the Sartorius score, so `WeightFitter` leaves
    /// these alone.
    public var typeWeights: [EnsembleModel: Double]?

    /// Where the values came from, when fitted.
    public var fit: Fit?

    public struct Fit: Sendable, Equatable, Codable {
        /// The name of the validation split the values were fitted on.
        public var split: String
        public var images: Int
        /// The Sartorius score of the fitted values on that split.
        public var score: Double
        /// The score of the starting values on that split.
        public var startScore: Double
        /// The fitted values' largest |count bias| over the cell types on that split (the median
        /// over a type's images of (cells found − cells annotated) / cells annotated).
        public var worstCountError: Double?
        /// The count tolerance the fit kept to, if it was given one.
        public var countTolerance: Double?
        /// Cell types no config tried brought within `countTolerance`, and the tolerance each was
        /// fitted with instead (what the search reached, rounded up to 5 points).
        public var widenedCountTolerance: [String: Double]?
    }

    public init() {}

    public func weight(_ model: EnsembleModel) -> Double { max(0, modelWeights[model] ?? 0) }

    func typeWeight(_ model: EnsembleModel) -> Double {
        guard let typeWeights else { return weight(model) }
        return max(0, typeWeights[model] ?? 0)
    }

    public static func load(path: String) throws -> EnsembleConfig {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw EnsembleError.badConfig(path: path, reason: "cannot read it (\(error.localizedDescription))")
        }
        // Every setting has a default, so `{}` would load as the defaults without a word: a file
        // that sets nothing is an emptied fitted config, not a choice.
        if let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], object.isEmpty {
            throw EnsembleError.badConfig(path: path, reason: "sets nothing (an empty object); restore the fitted config (models/ensemble.json ships one), fit one with `plateseg calibrate`, or remove the file to merge with the built-in defaults")
        }
        let config: EnsembleConfig
        do { config = try JSONDecoder().decode(EnsembleConfig.self, from: data) } catch {
            throw EnsembleError.badConfig(path: path, reason: "\(error)")
        }
        if let problem = config.problem { throw EnsembleError.badConfig(path: path, reason: problem) }
        return config
    }

    /// What makes the config unusable, if anything.
    public var problem: String? {
        if classes.isEmpty { return "no cell classes" }
        if Set(classes).count != classes.count { return "a cell class is listed twice in \(classes)" }
        let numbers = [seamMargin, stitchIoU, minDetectionScore, boxFusionIoU, minInstanceScore, pixelThreshold, semanticThreshold,
                       minKeptFraction]
            + modelWeights.values + minInstanceScoreByType.values + Array(typeWeights ?? [:]).map(\.value)
        if !numbers.allSatisfy(\.isFinite) { return "a weight or threshold is not a finite number" }
        if modelWeights.values.contains(where: { $0 < 0 }) || typeWeights?.values.contains(where: { $0 < 0 }) == true {
            return "a model weight is negative"
        }
        if let unknown = minInstanceScoreByType.keys.sorted().first(where: { !classes.contains($0) }) {
            return "minInstanceScoreByType names \(unknown), which is not one of \(classes)"
        }
        let fractions: [(String, Double)] = [
            ("stitchIoU", stitchIoU), ("minDetectionScore", minDetectionScore), ("boxFusionIoU", boxFusionIoU),
            ("minInstanceScore", minInstanceScore), ("pixelThreshold", pixelThreshold), ("semanticThreshold", semanticThreshold),
            ("minKeptFraction", minKeptFraction),
        ] + minInstanceScoreByType.sorted { $0.key < $1.key }.map { ("minInstanceScoreByType.\($0.key)", $0.value) }
        if let (name, value) = fractions.first(where: { !(0...1).contains($0.1) }) { return "\(name) \(value) is not between 0 and 1" }
        let sizes: [(String, Double)] = [("seamMargin", seamMargin), ("boxMargin", Double(boxMargin)),
                                         ("minFragmentArea", Double(minFragmentArea)), ("minInstanceArea", Double(minInstanceArea))]
        if let (name, value) = sizes.first(where: { $0.1 < 0 }) { return "\(name) \(value) is negative" }
        if let unknown = growth.radiusByType.keys.sorted().first(where: { !classes.contains($0) }) {
            return "growth.radiusByType names \(unknown), which is not one of \(classes)"
        }
        return growth.problem
    }

    /// Writes the config as pretty-printed JSON (sorted keys, so that fits diff cleanly).
    public func save(path: String) throws {
        do { try jsonData().write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw EnsembleError.badConfig(path: path, reason: "cannot write it (\(error.localizedDescription))")
        }
    }

    public func jsonData() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try! encoder.encode(self)  // plain numbers and strings: cannot fail
    }

    // Missing keys take their defaults, so a config written by an older version still loads.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = EnsembleConfig()
        classes = try c.decodeIfPresent([String].self, forKey: .classes) ?? d.classes
        separatorClasses = try c.decodeIfPresent([String].self, forKey: .separatorClasses) ?? d.separatorClasses
        modelWeights = try c.decodeIfPresent([EnsembleModel: Double].self, forKey: .modelWeights) ?? d.modelWeights
        seamMargin = try c.decodeIfPresent(Double.self, forKey: .seamMargin) ?? d.seamMargin
        stitchIoU = try c.decodeIfPresent(Double.self, forKey: .stitchIoU) ?? d.stitchIoU
        minDetectionScore = try c.decodeIfPresent(Double.self, forKey: .minDetectionScore) ?? d.minDetectionScore
        boxFusionIoU = try c.decodeIfPresent(Double.self, forKey: .boxFusionIoU) ?? d.boxFusionIoU
        minInstanceScore = try c.decodeIfPresent(Double.self, forKey: .minInstanceScore) ?? d.minInstanceScore
        pixelThreshold = try c.decodeIfPresent(Double.self, forKey: .pixelThreshold) ?? d.pixelThreshold
        boxMargin = try c.decodeIfPresent(Int.self, forKey: .boxMargin) ?? d.boxMargin
        minFragmentArea = try c.decodeIfPresent(Int.self, forKey: .minFragmentArea) ?? d.minFragmentArea
        minInstanceArea = try c.decodeIfPresent(Int.self, forKey: .minInstanceArea) ?? d.minInstanceArea
        semanticThreshold = try c.decodeIfPresent(Double.self, forKey: .semanticThreshold) ?? d.semanticThreshold
        minKeptFraction = try c.decodeIfPresent(Double.self, forKey: .minKeptFraction) ?? d.minKeptFraction
        minInstanceScoreByType = try c.decodeIfPresent([String: Double].self, forKey: .minInstanceScoreByType) ?? d.minInstanceScoreByType
        typeWeights = try c.decodeIfPresent([EnsembleModel: Double].self, forKey: .typeWeights)
        growth = try c.decodeIfPresent(ForegroundGrowth.self, forKey: .growth) ?? d.growth
        fit = try c.decodeIfPresent(Fit.self, forKey: .fit)
    }
}

/// Why a merge (or a config) could not be used; names the image or file and what to do.
public enum EnsembleError: Error, Sendable, Equatable, CustomStringConvertible {
    case badConfig(path: String, reason: String)
    case missingArtifacts(image: String, model: EnsembleModel)
    /// Some of the image is in no tile of that model; `uncovered` bounds the pixels left out.
    case missingTiles(image: String, model: EnsembleModel, uncovered: PixelRect)
    case badArtifact(image: String, tile: String, reason: String)
    case badImage(image: String, reason: String)

    public var description: String {
        switch self {
        case let .badConfig(path, reason):
            return "\(path): not a usable ensemble config (\(reason)); fix the JSON or delete it to use the defaults"
        case let .missingArtifacts(image, model):
            return "image \(image): no \(model.rawValue) artifacts; rerun its \(model.rawValue) infer jobs before merging"
        case let .missingTiles(image, model, uncovered):
            return "image \(image): the \(model.rawValue) artifacts leave \(uncovered) uncovered; rerun the \(model.rawValue) infer jobs of the tiles there before merging"
        case let .badArtifact(image, tile, reason):
            return "image \(image), tile \(tile): \(reason); rerun the infer job of that tile (`plateseg retry`)"
        case let .badImage(image, reason):
            return "image \(image): \(reason); check the image's record (width, height) in the store"
        }
    }
}
