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
