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
        try failingAtOnceOnBadInput { try mergeCells(job) }
    }

    private func mergeCells(_ job: ClaimedJob) throws -> JobResult {
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
        return JobResult(provenance: provenance.jobArgs(), cells: cells, dropsInputs: true)
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
        let stored = try store.dependencyArtifacts(of: jobID)
        // A merge of fewer networks' outputs than the image's tiles made would pass for the
        // ensemble's cells: every output must be there.
        let removed = stored.filter(\.bytes.isEmpty).count
        guard removed == 0, !stored.isEmpty else {
            throw PermanentJobError(TileOutputs.removedMessage(image: args.image, removed: removed, of: stored.count, mergeJob: jobID))
        }
        let artifacts = try stored.map { try TileArtifact.decode($0.bytes, name: "job \($0.jobID) (\(args.image))") }
        let ran = Set(artifacts.compactMap { EnsembleModel(artifactModel: $0.model) })
        do {
            return try merger.merge(image: args.image, width: args.width, height: args.height, artifacts: artifacts,
                                    models: models ?? ran)
        } catch let e as EnsembleError {
            throw PermanentJobError(e.description)
        }
    }
}

/// Tile outputs are removed once their merge has stored the cells, unless the plate keeps them.
public enum TileOutputs {
    /// Keeps the plate's tile outputs from now on, and queues again the merges that removed
    /// theirs: each runs again the tiles it takes. Returns the jobs queued.
    public static func keep(plate: String, in db: any JobStore) throws -> Int {
        _ = try CellFilter.query(db, plate: plate, well: nil, cellType: nil, timepoint: nil)
        try db.setKeepTileOutputs(plate: plate, true)
        let merges = try db.images(plate: plate).filter { $0.mergeState == .succeeded }.compactMap(\.mergeJobID)
        return try db.retry(RetrySelection(jobIDs: merges, failedOnly: false))
    }

    static func removedMessage(image: String, removed: Int, of total: Int, mergeJob: JobID) -> String {
        "\(image): \(removed == 0 ? "its tile outputs are" : "\(removed) of its \(total) tile outputs were") removed after an earlier merge; `plateseg retry --job \(mergeJob)` runs its tiles and this merge again"
    }

    /// One line for `eval --model` and `calibrate`, which re-merge the stored tile outputs,
    /// when a plate's were removed after its merges.
    public static func neededMessage(plate: String, purpose: String) -> String {
        "plate \(plate): its tile outputs were removed after its merges (the default); \(purpose) needs them: `plateseg retry --plate \(plate) --keep-tile-outputs` keeps them from now on and runs its tiles again (or submit plates with --keep-tile-outputs)"
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
