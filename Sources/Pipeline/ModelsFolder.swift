import Ensemble
import Foundation
import Imaging
import JobStore
import Models
import Worker

/// A folder of model files and, when fitted, the `ensemble.json` beside them: what a worker runs
/// and what the results' provenance is compared with.
public struct ModelsFolder: Sendable {
    /// Standardised, so that the same folder named two ways records one path.
    public let path: String

    public init(_ path: String) {
        self.path = URL(fileURLWithPath: path).standardizedFileURL.path
    }

    var ensembleConfigPath: String { "\(path)/ensemble.json" }

    public var hasEnsembleConfig: Bool { FileManager.default.fileExists(atPath: ensembleConfigPath) }

    /// `ensemble.json` when there is one (fitted by `plateseg calibrate`), else the defaults.
    public func ensembleConfig() throws -> EnsembleConfig {
        guard hasEnsembleConfig else { return EnsembleConfig() }
        return try EnsembleConfig.load(path: ensembleConfigPath)
    }

    /// The model files and ensemble config here, with content hashes, for provenance.
    public func files() throws -> [ModelFile] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return try names.filter { $0.hasSuffix(".safetensors") || $0 == "ensemble.json" }.sorted().map { name in
            let data = try Data(contentsOf: URL(fileURLWithPath: "\(path)/\(name)"))
            return ModelFile(name: name, hash: ContentHash.of(data), bytes: data.count)
        }
    }

    /// The networks' files here (`<network>.safetensors`).
    public var modelFiles: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.filter { $0.hasSuffix(".safetensors") }.sorted().map { "\(path)/\($0)" }
    }

    /// The handler of each job kind a `plateseg worker` process runs with these models, each
    /// network computing in the precision `plan` gives its file.
    public func jobHandlers(store: any JobStore, paths: PathMap = PathMap(), precision plan: PrecisionPlan = PrecisionPlan(.fixed(.fp32))) throws -> [String: any JobHandler] {
        let dir = path
        let cache = ModelCache { name in
            let file = "\(dir)/\(name).safetensors"
            guard FileManager.default.fileExists(atPath: file) else {
                throw PermanentJobError("\(file): no such model file; put the model there (`models/` ships the defaults) or pass --models-dir")
            }
            let hash = ContentHash.of(try Data(contentsOf: URL(fileURLWithPath: file)))
            let precision = plan.precision(forModel: file)
            let model = try ModelLoader.load(path: file, precision: precision, as: ModelKind(rawValue: name))
            // Recalibrated ranges change an int8 network's cells as a retrained file does.
            let ranges = precision == .int8
                ? ContentHash.of(try Data(contentsOf: URL(fileURLWithPath: ActivationRanges.path(besideModel: file)))) : nil
            return (model, ModelSource(file: file, contentHash: hash, precision: precision.rawValue, calibration: ranges))
        }
        return [InferJob.kind: InferHandler(models: cache, paths: paths), MergeJob.kind: try mergeHandler(store: store)]
    }

    /// Merges with this folder's ensemble config, recording it.
    public func mergeHandler(store: any JobStore) throws -> MergeHandler {
        let config = try ensembleConfig()
        let provenance = MergeProvenance(ensembleConfig: ContentHash.of(config.jsonData()),
                                         configFile: hasEnsembleConfig ? ensembleConfigPath : "defaults")
        return MergeHandler(store: store, merger: Merger(config: config), provenance: provenance)
    }
}

/// One file of a models folder.
public struct ModelFile: Sendable, Equatable {
    public var name: String
    public var hash: String
    public var bytes: Int
}

extension ModelsFolder {
    /// The networks a plate runs by default: all three.
    public static let networks = ModelKind.allCases.map(\.rawValue)

    /// How fields of `pixelSize` µm are resized to the pixel size of the networks in `dir`, which
    /// every model file must record and agree on; nil without a pixel size or when they match.
    public static func fieldScale(pixelSize: Double?, networks: [String], in dir: String) throws -> FieldScale? {
        guard let pixelSize else { return nil }
        var sizes: [String: Double] = [:]
        for name in networks {
            let path = "\(dir)/\(name).safetensors"
            guard FileManager.default.fileExists(atPath: path) else {
                throw ModelsFolderError("\(path): no such model file; --pixel-size reads the training images' pixel size from it (pass --models-dir)")
            }
            guard let size = try ModelLoader.pixelSize(path: path) else {
                throw ModelsFolderError("\(path) does not record the pixel size of its training images (metadata `pixel_size`); re-export it with training/, or leave out --pixel-size")
            }
            sizes[path] = size
        }
        guard let network = sizes.values.first else { return nil }
        guard sizes.values.allSatisfy({ abs($0 - network) < 1e-9 }) else {
            throw ModelsFolderError("the model files were trained at different pixel sizes (\(sizes.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value) µm" }.joined(separator: ", "))); use files of one scale")
        }
        let scale = FieldScale(fieldPixelSize: pixelSize, networkPixelSize: network)
        return abs(scale.factor - 1) < 1e-9 ? nil : scale
    }

    /// The intensity rule `text` names (`auto`, `fixed:LO,HI`, `none`); `auto` needs the
    /// training images' reference, `intensity.json` in `dir`.
    public static func intensityRule(_ text: String, in dir: String) throws -> IntensityRule {
        let reference = "\(dir)/intensity.json"
        return try IntensityRule(parsing: text, reference: try {
            guard FileManager.default.fileExists(atPath: reference) else {
                throw ModelsFolderError("\(reference): no intensity reference for --intensity auto; restore it (models/ ships one), fit one with `plateseg fit-intensity`, or pass --intensity none or fixed:LO,HI")
            }
            return try IntensityReference.load(path: reference)
        }())
    }
}

public struct ModelsFolderError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
