import Ensemble
import Foundation
import Imaging
import JobStore
import Worker

/// Fuses an image's tile outputs into cells and replaces the image's stored cells with them.
/// Overlays are drawn by `plateseg report` from the stored cells: a PNG per image here would
/// cost most of the merge's time and ~300 KB of database per image.
public struct MergeHandler: JobHandler {
    let store: any JobStore
    let merger: Merger
    let provenance: MergeProvenance

    public init(store: any JobStore, merger: Merger, provenance: MergeProvenance = MergeProvenance(ensembleConfig: "", configFile: "")) {
        self.store = store
        self.merger = merger
        self.provenance = provenance
    }

    public func run(_ job: ClaimedJob) throws -> JobResult {
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

    /// The cells of the image of merge job `jobID` in the field's pixels, merged with `models`
    /// (or else with every network its tile jobs ran: a plate may be submitted with fewer than
    /// three). Ensemble errors are bad input: retrying cannot fix them.
    func fieldMasks(of jobID: JobID, _ args: MergeJob, models: Set<EnsembleModel>? = nil) throws -> [Mask] {
        Self.fieldMasks(try merge(jobID, args, models: models), args).filter { !$0.isEmpty }
    }

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
public struct MergeProvenance: Codable, Sendable {
    var ensembleConfig: String
    var configFile: String

    public init(ensembleConfig: String, configFile: String) {
        self.ensembleConfig = ensembleConfig
        self.configFile = configFile
    }
}
