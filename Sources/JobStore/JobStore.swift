/// The durable queue: what coordinators and workers do to jobs. Every operation that finishes a
/// job checks the lease's fencing token, so a worker whose lease was taken back cannot write.
public protocol JobQueue: Sendable {
    /// Writes a plate's images, jobs and dependencies in one transaction; existing ones are kept.
    func submit(_ submission: PlateSubmission) throws -> SubmitSummary

    /// Claims the oldest ready job (of `plate`, or of any plate), or nil when none is ready.
    /// Expired leases are rescued first.
    func claim(owner: String, leaseSeconds: Double, plate: String?) throws -> ClaimedJob?
    /// Extends a lease; throws `leaseLost` if the job is no longer held under this token.
    func heartbeat(_ lease: Lease, leaseSeconds: Double) throws -> Lease
    /// Stores the artifact (and, for a merge, replaces the image's cells), marks the job
    /// succeeded and releases its dependants: all or nothing, and only under a valid lease.
    func complete(_ lease: Lease, result: JobResult) throws
    /// `complete`, then `claim`: a busy worker pays for as few round trips as the database allows.
    /// If the lease was lost nothing is written and `leaseLost` is thrown.
    func completeAndClaim(_ lease: Lease, result: JobResult, owner: String, leaseSeconds: Double, plate: String?) throws -> ClaimedJob?
    /// Records a failure: back to the queue (after a back-off) while attempts remain and
    /// `retryable`, else failed with `error`, visible until retried.
    func fail(_ lease: Lease, error: String, retryable: Bool) throws
    /// Gives a job back untouched (a worker asked to stop); the attempt is not counted.
    func release(_ lease: Lease) throws
    /// Returns jobs whose lease deadline passed to the queue (or fails them past max attempts).
    func rescueExpiredLeases() throws -> Int
    /// A worker seen to die (its process exited): the jobs whose leases owners starting with
    /// `ownerPrefix` hold go back to the queue at once, the attempt counted, with `why` as their
    /// error. Returns their ids.
    func releaseLeases(ofWorker ownerPrefix: String, why: String) throws -> [JobID]
    /// Who holds the leases of the running jobs now, each owner once.
    func leaseOwners() throws -> [String]
    /// Puts failed jobs (or chosen jobs) back in the queue with a fresh attempt budget. A merge
    /// run again whose tile outputs were removed takes those tiles with it.
    func retry(_ selection: RetrySelection) throws -> Int
    /// Removes the tile outputs (probability maps) of a plate's merged images; their cells and
    /// the outputs' provenance stay.
    func pruneArtifacts(plate: String) throws -> PrunedArtifacts
    /// From now on the plate keeps its tile outputs after their merges (or, `false`, no longer).
    func setKeepTileOutputs(plate: String, _ keep: Bool) throws
}

/// What the queue produced and how it stands: progress, failures, artifacts, provenance, cells.
public protocol ResultStore: Sendable {
    /// Where the data lives, fit to print: a file path, or a database URL without its password.
    var location: String { get }

    func plates() throws -> [PlateInfo]
    func progress(plate: String?) throws -> [PlateProgress]
    func jobs(plate: String?) throws -> [JobSnapshot]
    func images(plate: String?) throws -> [StoredImage]
    /// Time points and channels per plate, counted by the database.
    func identity(plate: String?) throws -> [PlateIdentity]
    /// Each plate's share of the database.
    func storage(plate: String?) throws -> [PlateStorage]
    /// The database's size in bytes (SQLite: the file and its write-ahead log).
    func databaseBytes() throws -> Int
    /// Reads every page of what `status` reads (SQLite's `quick_check` of every table but the
    /// cells and the tile outputs, whose readers meet damage themselves: checking them grew with
    /// the plates held, 2.8 s for twenty) and throws `damaged` if one is; the server checks its
    /// own pages (PostgreSQL).
    func verify() throws
    func image(id: Int64) throws -> (path: String, width: Int, height: Int)?
    func unreadableImages(plate: String?) throws -> [(path: String, error: String)]
    func failedJobs(plate: String?, limit: Int) throws -> [FailedJob]
    /// Queued jobs whose last attempt failed and that will be tried again (after their back-off).
    func retryingJobs(plate: String?, limit: Int) throws -> [FailedJob]

    /// The artifact a job stored, if any.
    func artifact(of jobID: JobID) throws -> [UInt8]?
    /// The artifacts of the jobs that `jobID` waits on, one per dependency that succeeded; empty
    /// bytes where the output was removed.
    func dependencyArtifacts(of jobID: JobID) throws -> [StoredArtifact]
    /// Tile outputs stored (not removed).
    func artifactCount(plate: String?) throws -> Int

    /// The job that made each cell of an image, the jobs that fed it, and their provenance.
    func provenance(imageID: Int64) throws -> [(job: JobID, kind: String, args: String, provenance: String?)]
    /// The succeeded jobs that recorded a provenance, by plate (of one plate, or of every plate
    /// in one pass), grouped by kind and provenance.
    func provenanceGroups(plate: String?) throws -> [String: [ProvenanceGroup]]
    /// The succeeded jobs of a plate of one kind made from one provenance record.
    func jobs(plate: String, kind: String, provenance: String) throws -> [JobID]
    /// The distinct provenance records (model files, ensemble configs) of a plate's results.
    func provenanceRecords(plate: String) throws -> [String]
    /// Every provenance record some succeeded job holds, with that job's kind, whatever the
    /// plates: a few (one per model file, precision and ensemble config), found without reading
    /// the jobs.
    func provenancesInUse() throws -> [(kind: String, provenance: String)]
    /// Time spent in succeeded jobs of a plate, by job kind: (kind, jobs, seconds).
    func jobTimes(plate: String) throws -> [(kind: String, jobs: Int, seconds: Double)]

    /// The cells of these images (of one type if given), by image, in the order they were stored.
    func cells(ofImages ids: [Int64], cellType: String?) throws -> [Int64: [CellRecord]]
    func wellCounts(_ query: CellQuery) throws -> [WellCount]
}

/// The queue and its results behind one connection: what every command opens with `openJobStore`.
public typealias JobStore = JobQueue & ResultStore

extension ResultStore {
    /// One plate's groups of `provenanceGroups(plate:)`.
    public func provenanceGroups(plate: String) throws -> [ProvenanceGroup] {
        try provenanceGroups(plate: Optional(plate))[plate] ?? []
    }

    /// Every cell the query selects, image by image in the plate's order (plate, time point,
    /// well, field, path), a few hundred images' cells in memory at a time, whatever the plate's size.
    public func forEachCell(_ q: CellQuery, imagesAtOnce: Int = 256, _ body: (LocatedCell) throws -> Void) throws {
        let images = try self.images(q)
        for start in stride(from: 0, to: images.count, by: imagesAtOnce) {
            let batch = images[start..<min(start + imagesAtOnce, images.count)]
            let cells = try self.cells(ofImages: batch.map(\.id), cellType: q.cellType)
            for image in batch {
                for cell in cells[image.id] ?? [] {
                    try body(LocatedCell(plate: image.plate, well: image.well, field: image.field, timepoint: image.timepoint,
                                         channel: image.channel, imagePath: image.path, imageWidth: image.width,
                                         imageHeight: image.height, cell: cell))
                }
            }
        }
    }

    /// The merged images the query selects (its cell type aside), in the plate's order.
    public func images(_ q: CellQuery) throws -> [StoredImage] {
        try images(plate: q.plate).filter { image in
            image.mergeState == .succeeded && (q.well == nil || image.well == q.well)
                && (q.image == nil || image.path == q.image) && (q.timepoint == nil || image.timepoint?.label == q.timepoint)
        }
    }

    /// Every cell the query selects, in memory: for a few images; `forEachCell` for a plate.
    public func cells(_ q: CellQuery) throws -> [LocatedCell] {
        var cells: [LocatedCell] = []
        try forEachCell(q) { cells.append($0) }
        return cells
    }
}

extension JobQueue {
    public func claim(owner: String, leaseSeconds: Double) throws -> ClaimedJob? {
        try claim(owner: owner, leaseSeconds: leaseSeconds, plate: nil)
    }

    public func complete(_ lease: Lease, artifact: [UInt8]?, cells: [CellRecord]?) throws {
        try complete(lease, result: JobResult(artifact: artifact, cells: cells))
    }

    public func completeAndClaim(_ lease: Lease, artifact: [UInt8]?, cells: [CellRecord]?, owner: String,
                                 leaseSeconds: Double) throws -> ClaimedJob? {
        try completeAndClaim(lease, result: JobResult(artifact: artifact, cells: cells), owner: owner, leaseSeconds: leaseSeconds, plate: nil)
    }
}
