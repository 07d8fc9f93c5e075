import Foundation

/// The queue's policy over any driver: the clock, retry back-off, the give-up decision after a
/// failure, and when expired leases are rescued. Drivers only run SQL.
final class PolicyStore: JobQueue, ResultStore {
    private let driver: any StoreDriver
    private let clock: StoreClock
    private let retryPolicy: RetryPolicy
    private let rescuer: LeaseRescuer

    init(driver: any StoreDriver, clock: StoreClock, retryPolicy: RetryPolicy, rescuer: LeaseRescuer = LeaseRescuer()) {
        self.driver = driver
        self.clock = clock
        self.retryPolicy = retryPolicy
        self.rescuer = rescuer
    }

    var location: String { driver.location }

    /// Rescues on the way to a claim when due: by the injected clock if there is one, else by
    /// this process's monotonic clock (the rate limit is local; the deadlines are the database's).
    private func rescueIfDue(now: Double?) throws {
        if rescuer.isDue(at: now ?? ProcessInfo.processInfo.systemUptime) {
            _ = try driver.rescueLeases(heldBy: nil, now: now, reason: .standard)
        }
    }

    // MARK: the queue

    func submit(_ submission: PlateSubmission) throws -> SubmitSummary {
        try driver.submit(submission, now: clock.now)
    }

    func claim(owner: String, leaseSeconds: Double, plate: String?) throws -> ClaimedJob? {
        let now = clock.now
        try rescueIfDue(now: now)
        return try driver.claim(owner: owner, leaseSeconds: leaseSeconds, plate: plate, now: now)
    }

    func heartbeat(_ lease: Lease, leaseSeconds: Double) throws -> Lease {
        try driver.heartbeat(lease, leaseSeconds: leaseSeconds, now: clock.now)
    }

    func complete(_ lease: Lease, result: JobResult) throws {
        try driver.complete(lease, result: result, now: clock.now)
    }

    func completeAndClaim(_ lease: Lease, result: JobResult, owner: String, leaseSeconds: Double, plate: String?) throws -> ClaimedJob? {
        let now = clock.now
        try rescueIfDue(now: now)
        return try driver.completeAndClaim(lease, result: result, owner: owner, leaseSeconds: leaseSeconds, plate: plate, now: now)
    }

    func fail(_ lease: Lease, error: String, retryable: Bool) throws {
        try driver.fail(lease, error: error, requeueAfter: retryPolicy.requeueDelay(after: lease, retryable: retryable), now: clock.now)
    }

    func release(_ lease: Lease) throws {
        try driver.release(lease)
    }

    func rescueExpiredLeases() throws -> Int {
        try driver.rescueLeases(heldBy: nil, now: clock.now, reason: .standard).count
    }

    func releaseLeases(ofWorker ownerPrefix: String, why: String) throws -> [JobID] {
        try driver.rescueLeases(heldBy: ownerPrefix, now: clock.now, reason: .abandoned(why))
    }

    func leaseOwners() throws -> [String] { try driver.leaseOwners() }

    func retry(_ selection: RetrySelection) throws -> Int {
        try driver.retry(selection)
    }

    func pruneArtifacts(plate: String) throws -> PrunedArtifacts {
        try driver.pruneArtifacts(plate: plate)
    }

    func setKeepTileOutputs(plate: String, _ keep: Bool) throws {
        try driver.setKeepTileOutputs(plate: plate, keep)
    }

    // MARK: results

    func plates() throws -> [PlateInfo] { try driver.plates() }
    func progress(plate: String?) throws -> [PlateProgress] { try driver.progress(plate: plate, now: clock.now) }
    func jobs(plate: String?) throws -> [JobSnapshot] { try driver.jobs(plate: plate) }
    func images(plate: String?) throws -> [StoredImage] { try driver.images(plate: plate) }
    func identity(plate: String?) throws -> [PlateIdentity] { try driver.identity(plate: plate) }
    func storage(plate: String?) throws -> [PlateStorage] { try driver.storage(plate: plate) }
    func databaseBytes() throws -> Int { try driver.databaseBytes() }
    func verify() throws { try driver.verify() }
    func image(id: Int64) throws -> (path: String, width: Int, height: Int)? { try driver.image(id: id) }
    func unreadableImages(plate: String?) throws -> [(path: String, error: String)] { try driver.unreadableImages(plate: plate) }
    func failedJobs(plate: String?, limit: Int) throws -> [FailedJob] { try driver.jobsWithErrors(state: .failed, plate: plate, limit: limit) }
    func retryingJobs(plate: String?, limit: Int) throws -> [FailedJob] { try driver.jobsWithErrors(state: .queued, plate: plate, limit: limit) }
    func artifact(of jobID: JobID) throws -> [UInt8]? { try driver.artifact(of: jobID) }
    func dependencyArtifacts(of jobID: JobID) throws -> [StoredArtifact] { try driver.dependencyArtifacts(of: jobID) }
    func artifactCount(plate: String?) throws -> Int { try driver.artifactCount(plate: plate) }
    func provenance(imageID: Int64) throws -> [(job: JobID, kind: String, args: String, provenance: String?)] { try driver.provenance(imageID: imageID) }
    func provenanceGroups(plate: String?) throws -> [String: [ProvenanceGroup]] { try driver.provenanceGroups(plate: plate) }
    func jobs(plate: String, kind: String, provenance: String) throws -> [JobID] {
        try driver.jobs(plate: plate, kind: kind, provenance: provenance)
    }
    func provenanceRecords(plate: String) throws -> [String] { try driver.provenanceRecords(plate: plate) }
    func provenancesInUse() throws -> [(kind: String, provenance: String)] { try driver.provenancesInUse() }
    func jobTimes(plate: String) throws -> [(kind: String, jobs: Int, seconds: Double)] { try driver.jobTimes(plate: plate) }
    func cells(ofImages ids: [Int64], cellType: String?) throws -> [Int64: [CellRecord]] {
        try driver.cells(ofImages: ids, cellType: cellType)
    }
    func wellCounts(_ query: CellQuery) throws -> [WellCount] { try driver.wellCounts(query) }
}
