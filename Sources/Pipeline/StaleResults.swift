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
        var current = Dictionary(try folder.files().map { ($0.name, $0.hash) }, uniquingKeysWith: { a, _ in a })
        for file in folder.modelFiles {
            let ranges = ActivationRanges.path(besideModel: file)
            if let data = FileManager.default.contents(atPath: ranges) { current[(ranges as NSString).lastPathComponent] = ContentHash.of(data) }
        }
        let config = ContentHash.of(try folder.ensembleConfig().jsonData())
        // Every plate's records in one pass when there are several.
        let groups = try plates.count == 1 ? [plates[0]: db.provenanceGroups(plate: plates[0])] : db.provenanceGroups(plate: nil)
        var found: [String: StaleResults] = [:]
        for plate in plates {
            let stale = try find(in: db, plate: plate, groups: groups[plate] ?? [], modelFiles: current, ensembleConfig: config)
            if !stale.isEmpty { found[plate] = stale }
        }
        return found
    }

    public static func find(in db: any JobStore, plate: String, modelsDir: String) throws -> StaleResults {
        try find(in: db, plates: [plate], modelsDir: modelsDir)[plate] ?? StaleResults()
    }

    /// Reads the plate's distinct provenance records (a few: one per model file and precision,
    /// one per ensemble config), then only the jobs of those that are stale.
    private static func find(in db: any JobStore, plate: String, groups: [ProvenanceGroup], modelFiles current: [String: String],
                             ensembleConfig config: String) throws -> StaleResults {
        var stale = StaleResults()
        var changed = Set<String>()
        for group in groups {
            switch group.kind {
            case InferJob.kind:
                guard let made = try? ModelSource(jobArgs: group.provenance) else { continue }
                let model = ((made.file as NSString).lastPathComponent as NSString).deletingPathExtension
                let weights = "\(model).safetensors", ranges = "\(model).int8.json"
                let differs: String?
                if let now = current[weights], now != made.contentHash {
                    differs = weights
                } else if let used = made.calibration, let now = current[ranges], now != used {
                    differs = ranges
                } else {
                    differs = nil
                }
                guard let differs else { continue }
                stale.tiles += try db.jobs(plate: plate, kind: group.kind, provenance: group.provenance)
                changed.insert(differs)
            case MergeJob.kind:
                guard let made = try? MergeProvenance(jobArgs: group.provenance), made.ensembleConfig != config else { continue }
                stale.merges += try db.jobs(plate: plate, kind: group.kind, provenance: group.provenance)
                changed.insert("ensemble.json")
            default:
                continue
            }
        }
        stale.tiles.sort()
        stale.merges.sort()
        stale.changedFiles = changed.sorted()
        return stale
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
