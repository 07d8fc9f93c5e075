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
    /// Puts failed jobs (or chosen jobs) back in the queue with a fresh attempt budget. A merge
    /// whose tile outputs were pruned takes those tiles with it.
    func retry(_ selection: RetrySelection) throws -> Int
    /// Removes the tile outputs (probability maps) of a plate's merged images; their cells stay.
    func pruneArtifacts(plate: String) throws -> PrunedArtifacts
}

/// What the queue produced and how it stands: progress, failures, artifacts, provenance, cells.
public protocol ResultStore: Sendable {
    /// Where the data lives, fit to print: a file path, or a database URL without its password.
    var location: String { get }

    func progress(plate: String?) throws -> [PlateProgress]
    func jobs(plate: String?) throws -> [JobSnapshot]
    func images(plate: String?) throws -> [StoredImage]
    func image(id: Int64) throws -> (path: String, width: Int, height: Int)?
    func unreadableImages(plate: String?) throws -> [(path: String, error: String)]
    func failedJobs(plate: String?, limit: Int) throws -> [FailedJob]
    /// Queued jobs whose last attempt failed and that will be tried again (after their back-off).
    func retryingJobs(plate: String?, limit: Int) throws -> [FailedJob]

    /// The artifact a job stored, if any.
    func artifact(of jobID: JobID) throws -> [UInt8]?
    /// The artifacts of the jobs that `jobID` waits on.
    func dependencyArtifacts(of jobID: JobID) throws -> [StoredArtifact]
    func artifactCount(plate: String?) throws -> Int

    /// The job that made each cell of an image, the jobs that fed it, and their provenance.
    func provenance(imageID: Int64) throws -> [(job: JobID, kind: String, args: String, provenance: String?)]
    /// Every succeeded job of a plate that recorded a provenance, in job order.
    func resultProvenance(plate: String) throws -> [JobProvenance]
    /// The distinct provenance records (model files, ensemble configs) of a plate's results.
    func provenanceRecords(plate: String) throws -> [String]
    /// Time spent in succeeded jobs of a plate, by job kind: (kind, jobs, seconds).
    func jobTimes(plate: String) throws -> [(kind: String, jobs: Int, seconds: Double)]

    func cells(_ query: CellQuery) throws -> [LocatedCell]
    func wellCounts(_ query: CellQuery) throws -> [WellCount]
}

/// The queue and its results behind one connection: what every command opens with `openJobStore`.
public typealias JobStore = JobQueue & ResultStore

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
