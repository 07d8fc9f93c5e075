import Foundation
import Imaging
import JobStore
import Models
import Worker

/// A plate's results made by model files, int8 ranges or an ensemble config other than those in
/// the models folder now (a model was retrained, `calibrate-int8` recorded new ranges for a
/// network run in int8, `plateseg calibrate` refitted the ensemble). Running a
/// plate again resumes it, so without this its old cells would pass for the new models' ones.
/// They are kept and named, and run again on request.
public struct StaleResults: Sendable {
    public private(set) var tiles: [JobID] = []
    public private(set) var merges: [JobID] = []
    /// The files now in the folder that differ from those that made some results.
    public private(set) var changedFiles: [String] = []

    public init() {}

    public var isEmpty: Bool { tiles.isEmpty && merges.isEmpty }

    /// Compares by content hash, so a copy of the same file in another folder is not a change.
    /// A model file missing now is not a change either: re-running could only fail. Without the
    /// folder (a report written on another machine) there is nothing to compare with. The folder
    /// is hashed once for all `plates`.
    public static func find(in db: any JobStore, plates: [String], modelsDir: String) throws -> [String: StaleResults] {
        let folder = ModelsFolder(modelsDir)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isFolder), isFolder.boolValue else { return [:] }
        // The records in use are a few whatever the night's size; only the jobs of the stale
        // ones are read.
        let records = try db.provenancesInUse()
        guard !records.isEmpty else { return [:] }
        var current = Dictionary(try folder.files().map { ($0.name, $0.hash) }, uniquingKeysWith: { a, _ in a })
        for file in folder.modelFiles {
            let ranges = ActivationRanges.path(besideModel: file)
            if let data = FileManager.default.contents(atPath: ranges) { current[PathName.file(ranges)] = ContentHash.of(data) }
        }
        let config = ContentHash.of(try folder.ensembleConfig().jsonData())
        let stale = records.compactMap { record in
            changedFile(kind: record.kind, provenance: record.provenance, modelFiles: current, ensembleConfig: config)
                .map { (record, $0) }
        }
        var found: [String: StaleResults] = [:]
        for plate in plates {
            var results = StaleResults()
            var changed = Set<String>()
            for (record, file) in stale {
                let jobs = try db.jobs(plate: plate, kind: record.kind, provenance: record.provenance)
                guard !jobs.isEmpty else { continue }
                if record.kind == MergeJob.kind { results.merges += jobs } else { results.tiles += jobs }
                changed.insert(file)
            }
            guard !results.isEmpty else { continue }
            results.tiles.sort()
            results.merges.sort()
            results.changedFiles = changed.sorted()
            found[plate] = results
        }
        return found
    }

    public static func find(in db: any JobStore, plate: String, modelsDir: String) throws -> StaleResults {
        try find(in: db, plates: [plate], modelsDir: modelsDir)[plate] ?? StaleResults()
    }

    /// The file in the folder now that differs from the one a provenance record names, if any.
    private static func changedFile(kind: String, provenance: String, modelFiles current: [String: String],
                                    ensembleConfig config: String) -> String? {
        switch kind {
        case InferJob.kind:
            guard let made = try? ModelSource(jobArgs: provenance) else { return nil }
            let model = PathName.stem(made.file)
            let weights = "\(model).safetensors", ranges = "\(model).int8.json"
            if let now = current[weights], now != made.contentHash { return weights }
            if let used = made.calibration, let now = current[ranges], now != used { return ranges }
            return nil
        case MergeJob.kind:
            guard let made = try? MergeProvenance(jobArgs: provenance), made.ensembleConfig != config else { return nil }
            return "ensemble.json"
        default:
            return nil
        }
    }

    /// "3 tiles and 3 merges of plate demo were made by other versions of maskrcnn.safetensors, ensemble.json"
    public func describe(plate: String) -> String {
        let parts = [(tiles.count, "tile"), (merges.count, "merge")].filter { $0.0 > 0 }.map { "\($0.0) \($0.1)\($0.0 == 1 ? "" : "s")" }
        return "\(parts.joined(separator: " and ")) of plate \(plate) were made by other versions of \(changedFiles.joined(separator: ", "))"
    }

    /// Queues the stale jobs again; a re-run tile takes its image's merge with it.
    public func redo(in db: any JobStore) throws -> Int {
        try db.retry(RetrySelection(jobIDs: tiles + merges, failedOnly: false))
    }
}
