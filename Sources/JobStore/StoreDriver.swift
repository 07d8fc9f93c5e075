/// What a database must do for the queue: SQL only. Time comes in as `now` (nil: the
/// database's own clock) and every decision that is not SQL (back-off, give up, when to rescue)
/// comes in made; `PolicyStore` makes them, once for every driver.
protocol StoreDriver: Sendable {
    var location: String { get }

    func submit(_ submission: PlateSubmission, now: Double?) throws -> SubmitSummary
    func claim(owner: String, leaseSeconds: Double, plate: String?, now: Double?) throws -> ClaimedJob?
    func heartbeat(_ lease: Lease, leaseSeconds: Double, now: Double?) throws -> Lease
    func complete(_ lease: Lease, result: JobResult, now: Double?) throws
    func completeAndClaim(_ lease: Lease, result: JobResult, owner: String, leaseSeconds: Double, plate: String?,
                          now: Double?) throws -> ClaimedJob?
    /// Back to the queue, not before `requeueAfter` seconds, or failed for good when that is nil.
    func fail(_ lease: Lease, error: String, requeueAfter: Double?, now: Double?) throws
    func release(_ lease: Lease) throws
    /// Running jobs back to the queue (or failed, attempts spent): those whose lease expired, or,
    /// with `ownerPrefix`, those whose lease a worker of that owner name holds. Returns their ids.
    func rescueLeases(heldBy ownerPrefix: String?, now: Double?, reason: LeaseRescuer.Reason) throws -> [JobID]
    func leaseOwners() throws -> [String]
    func retry(_ selection: RetrySelection) throws -> Int
    func pruneArtifacts(plate: String) throws -> PrunedArtifacts
    func setKeepTileOutputs(plate: String, _ keep: Bool) throws

    func plates() throws -> [PlateInfo]
    func progress(plate: String?, now: Double?) throws -> [PlateProgress]
    func jobs(plate: String?) throws -> [JobSnapshot]
    func images(plate: String?) throws -> [StoredImage]
    func identity(plate: String?) throws -> [PlateIdentity]
    func storage(plate: String?) throws -> [PlateStorage]
    func databaseBytes() throws -> Int
    func verify() throws
    func image(id: Int64) throws -> (path: String, width: Int, height: Int)?
    func unreadableImages(plate: String?) throws -> [(path: String, error: String)]
    func jobsWithErrors(state: JobState, plate: String?, limit: Int) throws -> [FailedJob]
    func artifact(of jobID: JobID) throws -> [UInt8]?
    func dependencyArtifacts(of jobID: JobID) throws -> [StoredArtifact]
    func artifactCount(plate: String?) throws -> Int
    func provenance(imageID: Int64) throws -> [(job: JobID, kind: String, args: String, provenance: String?)]
    func provenanceGroups(plate: String?) throws -> [String: [ProvenanceGroup]]
    func jobs(plate: String, kind: String, provenance: String) throws -> [JobID]
    func provenanceRecords(plate: String) throws -> [String]
    func provenancesInUse() throws -> [(kind: String, provenance: String)]
    func jobTimes(plate: String) throws -> [(kind: String, jobs: Int, seconds: Double)]
    func cells(ofImages ids: [Int64], cellType: String?) throws -> [Int64: [CellRecord]]
    func wellCounts(_ query: CellQuery) throws -> [WellCount]
}
