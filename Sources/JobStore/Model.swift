import Foundation

public typealias JobID = Int64

/// A job's place in its life: `queued` jobs with `waitingOn > 0` are blocked on other jobs.
public enum JobState: String, Sendable, Codable, CaseIterable {
    case queued, running, succeeded, failed
}

/// A claim on one job: valid while `token` is the job's current fencing token and the
/// deadline has not passed. A worker whose lease expired cannot complete, even if it wakes up.
public struct Lease: Sendable, Equatable {
    public let jobID: JobID
    public let token: Int64
    public let owner: String
    /// When the lease ends, on the database's clock (seconds since 1970).
    public let deadline: Double
    /// The attempt this lease runs (from 1), and how many the job may have: what the back-off
    /// and the give-up decision of a failure are made from.
    public let attempt: Int
    public let maxAttempts: Int

    func extended(to deadline: Double) -> Lease {
        Lease(jobID: jobID, token: token, owner: owner, deadline: deadline, attempt: attempt, maxAttempts: maxAttempts)
    }
}

public struct ClaimedJob: Sendable {
    public let id: JobID
    public let kind: String
    /// The job's arguments as JSON, as the coordinator wrote them.
    public let args: String
    public let plate: String
    public let imageID: Int64?
    public let attempt: Int
    public let maxAttempts: Int
    public let lease: Lease
}

/// An image found on a plate. `error` is set when it could not be read: it is recorded so that
/// status shows it, and no jobs are made for it. An image of a channel that is not segmented is
/// recorded too (`segmented` false), so that status can say what was left aside.
public struct NewImage: Sendable {
    public var path: String
    public var well: String?
    public var field: Int?
    public var timepoint: TimePoint?
    public var channel: String?
    public var plane: Int?
    /// The page of a multi-page TIFF that is this image (0 is the first); nil for the first.
    public var page: Int?
    public var width: Int
    public var height: Int
    public var contentHash: String
    public var error: String?
    public var segmented: Bool
    /// The file as the coordinator found it (device, inode, size, modification time): a
    /// resubmission whose file still has it is not read and hashed again.
    public var fileIdentity: String?

    public init(path: String, well: String?, field: Int?, timepoint: TimePoint? = nil, channel: String? = nil, plane: Int? = nil,
                page: Int? = nil, width: Int, height: Int, contentHash: String, error: String? = nil, segmented: Bool = true,
                fileIdentity: String? = nil) {
        self.path = path
        self.fileIdentity = fileIdentity
        self.page = page
        self.well = well
        self.field = field
        self.timepoint = timepoint
        self.channel = channel
        self.plane = plane
        self.width = width
        self.height = height
        self.contentHash = contentHash
        self.error = error
        self.segmented = segmented
    }
}

/// A job to create. `key` makes submission idempotent: a key that exists already is skipped.
public struct NewJob: Sendable {
    public var key: String
    public var kind: String
    public var imagePath: String?
    public var args: String
    public var dependsOn: [String]
    public var maxAttempts: Int

    public init(key: String, kind: String, imagePath: String?, args: String, dependsOn: [String] = [], maxAttempts: Int = 3) {
        self.key = key
        self.kind = kind
        self.imagePath = imagePath
        self.args = args
        self.dependsOn = dependsOn
        self.maxAttempts = maxAttempts
    }
}

public struct PlateSubmission: Sendable {
    public var plate: String
    public var root: String
    /// How the plate's jobs were made (tiling, networks), as text. A plate keeps the settings of
    /// its first submission: jobs made under other settings would never be merged.
    public var settings: String
    public var images: [NewImage]
    public var jobs: [NewJob]
    /// Keep the tile outputs after their merge (for `eval --model` and `calibrate`); once asked
    /// for, a plate keeps them. Without it a merge removes the outputs it read.
    public var keepTileOutputs: Bool

    public init(plate: String, root: String, settings: String = "", images: [NewImage], jobs: [NewJob], keepTileOutputs: Bool = false) {
        self.plate = plate
        self.keepTileOutputs = keepTileOutputs
        self.root = root
        self.settings = settings
        self.images = images
        self.jobs = jobs
    }
}

/// What `pruneArtifacts` removed.
public struct PrunedArtifacts: Sendable, Equatable {
    public var artifacts: Int
    public var bytes: Int
    public var images: Int

    public init(artifacts: Int, bytes: Int, images: Int) {
        self.artifacts = artifacts
        self.bytes = bytes
        self.images = images
    }
}

public struct SubmitSummary: Sendable, Equatable {
    public var newImages: Int
    public var unreadableImages: Int
    public var newJobs: Int
    /// The plate's fields larger than one tile, and the tiles they are cut into: what a plate of
    /// large fields costs, said at submit.
    public var tiledFields = 0
    public var tilesOfTiledFields = 0
    /// Networks run on every tile.
    public var networks = 0
    /// Files submitted before whose bytes are not those segmented then.
    public var changedFiles: [String] = []

    public init(newImages: Int, unreadableImages: Int, newJobs: Int) {
        self.newImages = newImages
        self.unreadableImages = unreadableImages
        self.newJobs = newJobs
    }

    /// Alike when they stored alike; the tiling and the changed files are said, not stored.
    public static func == (a: SubmitSummary, b: SubmitSummary) -> Bool {
        (a.newImages, a.unreadableImages, a.newJobs) == (b.newImages, b.unreadableImages, b.newJobs)
    }

    /// "12 fields are larger than a tile: cut into 108 tiles, 324 network jobs and 12 merges", or nil.
    public var tilingNote: String? {
        guard tiledFields > 0 else { return nil }
        let fields = tiledFields == 1 ? "1 field is" : "\(tiledFields) fields are"
        return "\(fields) larger than a tile: cut into \(tilesOfTiledFields) tiles, \(tilesOfTiledFields * networks) network jobs and \(tiledFields) merges"
    }

    /// "note: 2 files changed since they were submitted: …", or nil.
    public var changeNote: String? {
        guard let first = changedFiles.first else { return nil }
        let shown = changedFiles.count <= 3 ? changedFiles.joined(separator: ", ") : "\(first) and \(changedFiles.count - 1) more"
        return "note: \(changedFiles.count == 1 ? "1 file" : "\(changedFiles.count) files") changed since submitted (\(shown)): the stored cells are of the earlier file; put the original back, or submit the changed plate under another --plate"
    }
}

public struct PlateProgress: Sendable, Equatable {
    public var plate: String
    public var images: Int
    public var unreadableImages: Int
    /// Images whose merge has succeeded: their cells are stored.
    public var imagesMerged: Int
    public var queued: Int
    /// Queued jobs that still wait on others (a merge whose tiles are not all done).
    public var blocked: Int
    public var running: Int
    public var succeeded: Int
    public var failed: Int
    /// Jobs finished in the last minute, for a rate and an ETA.
    public var finishedLastMinute: Int

    public var total: Int { queued + running + succeeded + failed }
    public var done: Bool { queued == 0 && running == 0 }
}

/// What a finished job leaves: an artifact (already compressed), where it came from (JSON:
/// the model file and its hash, or the ensemble config and the input jobs), and, for a merge,
/// the image's cells, which replace any stored before.
public struct JobResult: Sendable {
    public var artifact: [UInt8]?
    public var provenance: String?
    public var cells: [CellRecord]?
    /// The artifacts this job read are done with: their bytes are removed in the transaction
    /// that completes it (their provenance stays), unless the plate keeps them.
    public var dropsInputs: Bool

    public init(artifact: [UInt8]? = nil, provenance: String? = nil, cells: [CellRecord]? = nil, dropsInputs: Bool = false) {
        self.artifact = artifact
        self.provenance = provenance
        self.cells = cells
        self.dropsInputs = dropsInputs
    }
}

/// An image of a plate as stored, with the merge job that produces its cells.
public struct StoredImage: Sendable, Equatable {
    public var id: Int64
    public var plate: String
    public var path: String
    public var well: String?
    public var field: Int?
    public var timepoint: TimePoint?
    public var channel: String?
    public var plane: Int?
    public var page: Int?
    public var segmented: Bool
    public var width: Int
    public var height: Int
    public var contentHash: String
    public var error: String?
    public var mergeJobID: JobID?
    public var mergeState: JobState?
    public var fileIdentity: String?

    public init(id: Int64, plate: String, path: String, well: String?, field: Int?, timepoint: TimePoint? = nil, channel: String? = nil,
                plane: Int? = nil, page: Int? = nil, segmented: Bool = true, width: Int, height: Int, contentHash: String, error: String? = nil,
                mergeJobID: JobID? = nil, mergeState: JobState? = nil, fileIdentity: String? = nil) {
        self.id = id
        self.plate = plate
        self.path = path
        self.well = well
        self.field = field
        self.timepoint = timepoint
        self.channel = channel
        self.plane = plane
        self.page = page
        self.segmented = segmented
        self.width = width
        self.height = height
        self.contentHash = contentHash
        self.error = error
        self.mergeJobID = mergeJobID
        self.mergeState = mergeState
        self.fileIdentity = fileIdentity
    }
}

/// A plate as submitted.
public struct PlateInfo: Sendable, Equatable {
    public var name: String
    /// The plate folder as the coordinator saw it; image paths lie under it.
    public var root: String
    public var settings: String
    public var keepTileOutputs: Bool
    /// When it was first submitted (seconds since 1970).
    public var created: Double

    public init(name: String, root: String, settings: String, keepTileOutputs: Bool, created: Double) {
        self.name = name
        self.root = root
        self.settings = settings
        self.keepTileOutputs = keepTileOutputs
        self.created = created
    }
}

/// What a plate holds beyond wells and fields: its time points, and its images by channel.
public struct PlateIdentity: Sendable, Equatable {
    public var plate: String
    /// The time points of its segmented images, oldest first.
    public var timepoints: [TimePoint]
    /// Images by channel (nil: the names give none) and whether that channel is segmented.
    public var channels: [(channel: String?, segmented: Bool, images: Int)]

    public static func == (a: PlateIdentity, b: PlateIdentity) -> Bool {
        a.plate == b.plate && a.timepoints == b.timepoints
            && a.channels.map { "\($0.channel ?? "-")|\($0.segmented)|\($0.images)" } == b.channels.map { "\($0.channel ?? "-")|\($0.segmented)|\($0.images)" }
    }
}

/// How much of the database a plate's results take: its cells (with their rows and index
/// entries, estimated) and the tile outputs still stored.
public struct PlateStorage: Sendable, Equatable {
    public var plate: String
    public var cellBytes: Int
    public var tileOutputBytes: Int
    public var tileOutputs: Int

    public var bytes: Int { cellBytes + tileOutputBytes }
}

/// Results of one kind made from one provenance record (a model file, an ensemble config), and how many.
public struct ProvenanceGroup: Sendable, Equatable {
    public var kind: String
    public var provenance: String
    public var jobs: Int

    public init(kind: String, provenance: String, jobs: Int) {
        self.kind = kind
        self.provenance = provenance
        self.jobs = jobs
    }
}

/// One job as it stands now.
public struct JobSnapshot: Sendable, Equatable {
    public var id: JobID
    public var kind: String
    public var state: JobState
    public var attempts: Int
    public var waitingOn: Int
    public var lastError: String?
}

public struct FailedJob: Sendable, Equatable {
    public var id: JobID
    public var plate: String
    public var kind: String
    public var imagePath: String?
    public var attempts: Int
    public var error: String
}

/// What a job left behind: bytes (zstd-compressed by whoever made them) and its job's kind and
/// args. Empty bytes: the output was removed after the merge that read it (or never stored).
public struct StoredArtifact: Sendable {
    public var jobID: JobID
    public var kind: String
    public var args: String
    public var bytes: [UInt8]
}

public struct RetrySelection: Sendable {
    /// These jobs only (nil: every job of the selection's plate, or of all plates).
    public var jobIDs: [JobID]?
    public var plate: String?
    public var failedOnly: Bool

    public init(jobID: JobID? = nil, plate: String? = nil, failedOnly: Bool = true) {
        self.init(jobIDs: jobID.map { [$0] }, plate: plate, failedOnly: failedOnly)
    }

    public init(jobIDs: [JobID]?, plate: String? = nil, failedOnly: Bool = true) {
        self.jobIDs = jobIDs
        self.plate = plate
        self.failedOnly = failedOnly
    }
}

public enum JobStoreError: Error, Equatable, CustomStringConvertible {
    /// The lease was taken back (expired and rescued, or the job was claimed again).
    case leaseLost(JobID)
    case unknownImage(String)
    case settingsChanged(plate: String, was: String, now: String)
    case database(path: String, reason: String)
    /// The database could not be reached or dropped the connection; the operation may be tried again.
    case unavailable(location: String, reason: String)
    /// The database file is damaged: no retry helps, the file must be restored.
    case damaged(location: String)

    /// No retry helps: whoever meets it stops and says why.
    public var isPermanent: Bool {
        if case .damaged = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case let .leaseLost(id): return "job \(id): lease lost (it expired and the job went back to the queue); the result was discarded"
        case let .unknownImage(path): return "job refers to image \(path), which this submission does not list"
        case let .settingsChanged(plate, was, now):
            return "plate \(plate) was submitted with \(was), not \(now); submit with the same settings, or under another name (--plate)"
        case let .database(path, reason): return "\(path): \(reason)"
        case let .unavailable(location, reason): return "\(location): database unavailable (\(reason))"
        case let .damaged(location):
            return "\(location): the job database is damaged (SQLite: malformed disk image); stop its workers and restore it from a backup, or save what it holds with: sqlite3 \(location) .recover | sqlite3 recovered.sqlite"
        }
    }
}
