import Ensemble
import Foundation
import Imaging
import JobStore
import Models
import Worker

/// Which handler runs which job kind in a `plateseg worker` process.
enum Wiring {
    static func handlers(modelsDir: String, store: any JobStore, paths: PathMap = PathMap()) throws -> [String: any JobHandler] {
        let dir = URL(fileURLWithPath: modelsDir).standardizedFileURL.path
        let cache = ModelCache { name in
            let path = "\(dir)/\(name).safetensors"
            guard FileManager.default.fileExists(atPath: path) else {
                throw PermanentJobError("\(path): no such model file; put the model there (`models/` ships the defaults) or pass --models-dir")
            }
            let hash = ContentHash.of(try Data(contentsOf: URL(fileURLWithPath: path)))
            return (try ModelLoader.load(path: path), ModelSource(file: path, contentHash: hash))
        }
        let config = try ensembleConfig(modelsDir: dir)
        let provenance = MergeProvenance(ensembleConfig: ContentHash.of(config.jsonData()),
                                         configFile: FileManager.default.fileExists(atPath: "\(dir)/ensemble.json") ? "\(dir)/ensemble.json" : "defaults")
        return [InferJob.kind: InferHandler(models: cache, paths: paths),
                MergeJob.kind: MergeHandler(store: store, merger: Merger(config: config), provenance: provenance)]
    }

    /// `ensemble.json` beside the models when there is one (fitted by `plateseg calibrate`), else the defaults.
    static func ensembleConfig(modelsDir: String) throws -> EnsembleConfig {
        let path = "\(modelsDir)/ensemble.json"
        guard FileManager.default.fileExists(atPath: path) else { return EnsembleConfig() }
        return try EnsembleConfig.load(path: path)
    }
}

/// Fuses an image's tile outputs into cells and replaces the image's stored cells with them.
/// Overlays are drawn by `plateseg report` from the stored cells: a PNG per image here would
/// cost most of the merge's time and ~300 KB of database per image.
struct MergeHandler: JobHandler {
    let store: any JobStore
    let merger: Merger
    var provenance = MergeProvenance(ensembleConfig: "", configFile: "")

    func run(_ job: ClaimedJob) throws -> JobResult {
        let args: MergeJob
        do { args = try MergeJob(jobArgs: job.args) } catch {
            throw PermanentJobError("job \(job.id): arguments are not a merge job (\(error))")
        }
        let merged = try merge(job.id, args)
        let cells = zip(merged.instances, Self.fieldMasks(merged, args)).compactMap { c, mask -> CellRecord? in
            guard !mask.isEmpty else { return nil }
            let rle = args.fieldWidth == nil ? c.rle : COCORLE(mask: mask).compressedString
            return CellRecord(cellType: c.cellType, score: c.score, area: mask.area,
                              box: (mask.box.x, mask.box.y, mask.box.width, mask.box.height), centroid: mask.centroid, rle: rle)
        }
        return JobResult(provenance: provenance.jobArgs(), cells: cells)
    }

    /// The merged cells' masks in the field's own pixels: a field resized to the networks' pixel
    /// size was merged at that size. A mask too small to survive the way back comes out empty.
    static func fieldMasks(_ merged: MergedImage, _ args: MergeJob) -> [Mask] {
        guard let w = args.fieldWidth, let h = args.fieldHeight else { return merged.instances.map(\.mask) }
        return merged.instances.map { $0.mask.rescaled(imageWidth: w, imageHeight: h) }
    }

    /// Merges with `models`, or else with every network the image's tile jobs ran (a plate may be
    /// submitted with fewer than three). Ensemble errors are bad input: retrying cannot fix them.
    func merge(_ jobID: JobID, _ args: MergeJob, models: Set<EnsembleModel>? = nil) throws -> MergedImage {
        let artifacts = try store.dependencyArtifacts(of: jobID).map { stored in
            try TileArtifact.decode(stored.bytes, name: "job \(stored.jobID) (\(args.image))")
        }
        guard !artifacts.isEmpty else {
            throw PermanentJobError("\(args.image): its tile outputs were pruned (plateseg prune); `plateseg retry --job \(jobID)` runs its tiles and this merge again")
        }
        let ran = Set(artifacts.compactMap { EnsembleModel(artifactModel: $0.model) })
        do {
            return try merger.merge(image: args.image, width: args.width, height: args.height, artifacts: artifacts,
                                    models: models ?? ran)
        } catch let e as EnsembleError {
            throw PermanentJobError(e.description)
        }
    }
}

/// The ensemble config a merge used (the model files are recorded by each infer job it read).
struct MergeProvenance: Codable {
    var ensembleConfig: String
    var configFile: String
}
