import Foundation
import JobStore
import Testing

/// The behaviour every JobStore driver must have. Each test runs once per driver.
@Suite struct ConformanceTests {
    @Test(arguments: Driver.allCases)
    func submittingTwiceAddsNothing(driver: Driver) throws {
        let store = try driver.makeStore()
        let first = try store.submit(samplePlate())
        #expect(first == SubmitSummary(newImages: 2, unreadableImages: 0, newJobs: 8))
        let again = try store.submit(samplePlate())
        #expect(again == SubmitSummary(newImages: 0, unreadableImages: 0, newJobs: 0))
        let p = try #require(try store.progress(plate: "P1").first)
        #expect(p.total == 8 && p.images == 2 && p.blocked == 2)
    }

    @Test(arguments: Driver.allCases)
    func newImageInFolderIsPickedUp(driver: Driver) throws {
        let store = try driver.makeStore()
        _ = try store.submit(samplePlate(images: 1))
        let summary = try store.submit(samplePlate(images: 2))
        #expect(summary.newImages == 1 && summary.newJobs == 4)
    }

    @Test(arguments: Driver.allCases)
    func unreadableImageIsRecordedWithItsError(driver: Driver) throws {
        let store = try driver.makeStore()
        var plate = samplePlate(images: 1)
        plate.images.append(NewImage(path: "/plates/P1/bad.png", well: "C01", field: 1, width: 0, height: 0,
                                     contentHash: "", error: "bad.png: truncated"))
        let s = try store.submit(plate)
        #expect(s.unreadableImages == 1)
        #expect(try store.unreadableImages(plate: "P1").map(\.error) == ["bad.png: truncated"])
    }

    @Test(arguments: Driver.allCases)
    func mergeIsReadyOnlyAfterAllItsTiles(driver: Driver) throws {
        let store = try driver.makeStore()
        _ = try store.submit(samplePlate(images: 1, tiles: 3))
        var kinds: [String] = []
        while let job = try store.claim(owner: "w", leaseSeconds: 30) {
            kinds.append(job.kind)
            try store.complete(job.lease, artifact: [UInt8(job.id)], cells: nil)
        }
        #expect(kinds == ["infer", "infer", "infer", "merge"])
        let p = try #require(try store.progress(plate: "P1").first)
        #expect(p.imagesMerged == 1 && p.succeeded == 4 && p.done)
    }

    @Test(arguments: Driver.allCases)
    func mergeWaitsWhileAnyTileIsUnfinished(driver: Driver) throws {
        let store = try driver.makeStore()
        _ = try store.submit(samplePlate(images: 1, tiles: 2))
        let a = try #require(try store.claim(owner: "w", leaseSeconds: 30))
        let b = try #require(try store.claim(owner: "w", leaseSeconds: 30))
        try store.complete(a.lease, artifact: [1], cells: nil)
        #expect(try store.claim(owner: "w", leaseSeconds: 30) == nil)
        try store.complete(b.lease, artifact: [2], cells: nil)
        let merge = try #require(try store.claim(owner: "w", leaseSeconds: 30))
        #expect(merge.kind == "merge")
        #expect(try store.dependencyArtifacts(of: merge.id).map(\.bytes) == [[1], [2]])
    }

    @Test(arguments: Driver.allCases)
    func expiredLeaseHolderCannotComplete(driver: Driver) throws {
        let clock = ManualClock()
        let store = try driver.makeStore(clock: .manual(clock))
        _ = try store.submit(samplePlate(images: 1, tiles: 1))
        let stale = try #require(try store.claim(owner: "slow", leaseSeconds: 0.05))
        // Claims rescue expired leases at most once a second.
        clock.advance(by: 1.05)
        let fresh = try #require(try store.claim(owner: "fast", leaseSeconds: 30))
        #expect(fresh.id == stale.id && fresh.attempt == 2 && fresh.lease.token > stale.lease.token)
        #expect(throws: JobStoreError.leaseLost(stale.id)) { try store.complete(stale.lease, artifact: [9], cells: nil) }
        #expect(throws: JobStoreError.leaseLost(stale.id)) { try store.heartbeat(stale.lease, leaseSeconds: 30) }
        #expect(throws: JobStoreError.leaseLost(stale.id)) { try store.fail(stale.lease, error: "x", retryable: true) }
        try store.complete(fresh.lease, artifact: [1], cells: nil)
        #expect(try store.artifactCount(plate: "P1") == 1)
    }

    @Test(arguments: Driver.allCases)
    func completeAndClaimHandsOverTheNextJob(driver: Driver) throws {
        let store = try driver.makeStore()
        _ = try store.submit(samplePlate(images: 1, tiles: 2))
        let first = try #require(try store.claim(owner: "w", leaseSeconds: 30))
        let second = try #require(try store.completeAndClaim(first.lease, artifact: [1], cells: nil, owner: "w", leaseSeconds: 30))
        #expect(second.id != first.id && second.kind == "infer")
        let merge = try #require(try store.completeAndClaim(second.lease, artifact: [2], cells: nil, owner: "w", leaseSeconds: 30))
        #expect(merge.kind == "merge")
        #expect(throws: JobStoreError.leaseLost(first.id)) {
            try store.completeAndClaim(first.lease, artifact: [3], cells: nil, owner: "w", leaseSeconds: 30)
        }
        #expect(try store.artifactCount(plate: nil) == 2)
        #expect(try store.progress(plate: "P1").first?.running == 1)
    }

    @Test(arguments: Driver.allCases)
    func heartbeatKeepsTheLease(driver: Driver) throws {
        let clock = ManualClock()
        let store = try driver.makeStore(clock: .manual(clock))
        _ = try store.submit(samplePlate(images: 1, tiles: 1))
        var job = try #require(try store.claim(owner: "w", leaseSeconds: 0.2)).lease
        for _ in 0..<4 {
            clock.advance(by: 0.1)
            job = try store.heartbeat(job, leaseSeconds: 0.2)
        }
        // 0.4 s after the claim, a 0.2 s lease kept alive by heartbeats has not expired.
        #expect(job.deadline == clock.now + 0.2)
        #expect(try store.rescueExpiredLeases() == 0)
        clock.advance(by: 0.21)
        #expect(try store.rescueExpiredLeases() == 1)
        #expect(throws: JobStoreError.leaseLost(job.jobID)) { try store.heartbeat(job, leaseSeconds: 0.2) }
    }

    /// A worker seen to die gives its leases back at once: its jobs are queued again (or failed,
    /// attempts spent) with why, long before the lease would expire; other workers keep theirs.
    @Test(arguments: Driver.allCases)
    func aDeadWorkersLeasesAreGivenBackAtOnce(driver: Driver) throws {
        let store = try driver.makeStore()
        _ = try store.submit(samplePlate(images: 1, tiles: 2, maxAttempts: 2))
        let dead = try #require(try store.claim(owner: "host:41:0", leaseSeconds: 3600))
        let alive = try #require(try store.claim(owner: "host:4:0", leaseSeconds: 3600))
        #expect(try store.releaseLeases(ofWorker: "host:4:", why: "nothing") == [alive.id], "a prefix ends at the colon")
        let back = try #require(try store.claim(owner: "host:4:0", leaseSeconds: 3600))
        #expect(back.id == alive.id)
        #expect(try store.leaseOwners() == ["host:41:0", "host:4:0"].sorted(), "who holds the running jobs, each once")
        #expect(try store.releaseLeases(ofWorker: "host:41:", why: "killed by signal 9 (SIGKILL)") == [dead.id])
        #expect(throws: JobStoreError.leaseLost(dead.id)) { try store.complete(dead.lease, artifact: [1], cells: nil) }
        let retrying = try store.retryingJobs(plate: "P1", limit: 10)
        #expect(retrying.map(\.id) == [dead.id])
        #expect(retrying.first?.error == "worker host:41:0 killed by signal 9 (SIGKILL); its lease was given back at once")
        #expect(try store.releaseLeases(ofWorker: "host:41:", why: "again") == [])
        // The attempt was counted: a job that kills its worker every time ends failed.
        let again = try #require(try store.claim(owner: "host:42:0", leaseSeconds: 3600))
        #expect(again.id == dead.id && again.attempt == 2)
        _ = try store.releaseLeases(ofWorker: "host:42:", why: "killed by signal 9 (SIGKILL)")
        #expect(try store.failedJobs(plate: "P1", limit: 10).first?.error.hasSuffix("at once; attempts exhausted") == true)
    }

    @Test(arguments: Driver.allCases)
    func alwaysFailingJobEndsFailedAndRetryRunsItAgain(driver: Driver) throws {
        let store = try driver.makeStore()
        _ = try store.submit(samplePlate(images: 1, tiles: 1, maxAttempts: 3))
        for attempt in 1...3 {
            let job = try #require(try store.claim(owner: "w", leaseSeconds: 30))
            #expect(job.attempt == attempt)
            try store.fail(job.lease, error: "boom \(attempt)", retryable: true)
            if attempt < 3 {
                #expect(try store.retryingJobs(plate: "P1", limit: 10).map(\.error) == ["boom \(attempt)"])
                #expect(try store.failedJobs(plate: "P1", limit: 10).isEmpty)
            }
        }
        #expect(try store.retryingJobs(plate: "P1", limit: 10).isEmpty)
        #expect(try store.claim(owner: "w", leaseSeconds: 30) == nil)
        let failed = try store.failedJobs(plate: "P1", limit: 10)
        #expect(failed.count == 1 && failed[0].error == "boom 3" && failed[0].attempts == 3)
        #expect(try store.retry(RetrySelection(plate: "P1")) == 1)
        let again = try #require(try store.claim(owner: "w", leaseSeconds: 30))
        #expect(again.attempt == 1 && again.kind == "infer")
        try store.complete(again.lease, artifact: [1], cells: nil)
        #expect(try store.claim(owner: "w", leaseSeconds: 30)?.kind == "merge")
    }

    @Test(arguments: Driver.allCases)
    func retryingFinishedTilesRerunsTheirMergeAfterAllOfThem(driver: Driver) throws {
        let store = try driver.makeStore()
        _ = try store.submit(samplePlate(images: 1, tiles: 3))
        while let job = try store.claim(owner: "w", leaseSeconds: 30) {
            try store.complete(job.lease, artifact: [1], cells: job.kind == "merge" ? [cell("astro")] : nil)
        }
        let infers = try store.jobs(plate: "P1").filter { $0.kind == "infer" }
        #expect(try store.retry(RetrySelection(jobID: infers[0].id, failedOnly: false)) == 1)
        #expect(try store.retry(RetrySelection(jobID: infers[1].id, failedOnly: false)) == 1)
        let merge = try #require(try store.jobs(plate: "P1").first { $0.kind == "merge" })
        #expect(merge.state == .queued && merge.waitingOn == 2)
        let first = try #require(try store.claim(owner: "w", leaseSeconds: 30))
        try store.complete(first.lease, artifact: [2], cells: nil)
        let second = try #require(try store.claim(owner: "w", leaseSeconds: 30))
        #expect(second.kind == "infer", "the merge still waits for the other retried tile")
        try store.complete(second.lease, artifact: [3], cells: nil)
        #expect(try store.claim(owner: "w", leaseSeconds: 30)?.kind == "merge")
    }

    @Test(arguments: Driver.allCases)
    func workersCanKeepToOnePlate(driver: Driver) throws {
        let store = try driver.makeStore()
        _ = try store.submit(samplePlate(name: "A", images: 1, tiles: 1))
        _ = try store.submit(samplePlate(name: "B", images: 1, tiles: 1))
        let job = try #require(try store.claim(owner: "w", leaseSeconds: 30, plate: "B"))
        #expect(job.plate == "B")
        try store.complete(job.lease, artifact: [1], cells: nil)
        #expect(try store.claim(owner: "w", leaseSeconds: 30, plate: "B")?.kind == "merge")
        #expect(try store.claim(owner: "w", leaseSeconds: 30, plate: "B") == nil)
        #expect(try store.claim(owner: "w", leaseSeconds: 30)?.plate == "A")
    }

    @Test(arguments: Driver.allCases)
    func aPlateKeepsItsSettings(driver: Driver) throws {
        let store = try driver.makeStore()
        var plate = samplePlate()
        plate.settings = "tiles 768"
        _ = try store.submit(plate)
        plate.settings = "tiles 512"
        #expect(throws: JobStoreError.settingsChanged(plate: "P1", was: "tiles 768", now: "tiles 512")) { try store.submit(plate) }
    }

    @Test(arguments: Driver.allCases)
    func aRepairedImageIsTakenOnResubmission(driver: Driver) throws {
        let store = try driver.makeStore()
        var plate = samplePlate(images: 1, tiles: 1)
        let broken = NewImage(path: "/plates/P1/late.png", well: nil, field: nil, width: 0, height: 0, contentHash: "", error: "truncated")
        plate.images.append(broken)
        _ = try store.submit(plate)
        plate.images[1] = NewImage(path: "/plates/P1/late.png", well: "C03", field: 2, width: 704, height: 520, contentHash: "h9")
        plate.jobs.append(NewJob(key: "infer/late", kind: "infer", imagePath: "/plates/P1/late.png", args: "{}"))
        let s = try store.submit(plate)
        #expect(s.newImages == 1 && s.unreadableImages == 0 && s.newJobs == 1)
        #expect(try store.unreadableImages(plate: "P1").isEmpty)
        #expect(try store.images(plate: "P1").first { $0.path.hasSuffix("late.png") }?.well == "C03")
        // A stored, readable image is not replaced by a later failed read of the same path.
        plate.images[0].error = "gone"
        #expect(try store.submit(plate).newImages == 0)
    }

    @Test(arguments: Driver.allCases)
    func permanentFailureDoesNotRetry(driver: Driver) throws {
        let store = try driver.makeStore()
        _ = try store.submit(samplePlate(images: 1, tiles: 1))
        let job = try #require(try store.claim(owner: "w", leaseSeconds: 30))
        try store.fail(job.lease, error: "corrupt PNG", retryable: false)
        #expect(try store.failedJobs(plate: nil, limit: 10).map(\.id) == [job.id])
        let p = try #require(try store.progress(plate: "P1").first)
        #expect(p.failed == 1 && p.blocked == 1)
    }

    @Test(arguments: Driver.allCases)
    func releaseReturnsTheJobWithoutSpendingAnAttempt(driver: Driver) throws {
        let store = try driver.makeStore()
        _ = try store.submit(samplePlate(images: 1, tiles: 1))
        let job = try #require(try store.claim(owner: "w", leaseSeconds: 30))
        try store.release(job.lease)
        let again = try #require(try store.claim(owner: "w2", leaseSeconds: 30))
        #expect(again.id == job.id && again.attempt == 1)
    }

    @Test(arguments: Driver.allCases)
    func concurrentClaimersNeverShareAJob(driver: Driver) throws {
        let location = try driver.freshLocation()
        let store = try openJobStore(location)
        _ = try store.submit(samplePlate(images: 10, tiles: 10))
        let claimed = ClaimLog()
        // One store (one connection pool) per claimer, as separate processes would have: the
        // database's own locking keeps them apart.
        let stores = try (0..<4).map { _ in try openJobStore(location) }
        DispatchQueue.concurrentPerform(iterations: 4) { w in
            let store = stores[w]
            while let job = try! store.claim(owner: "w\(w)", leaseSeconds: 30) {
                claimed.add(job.id)
                try! store.complete(job.lease, artifact: [1], cells: nil)
            }
        }
        // The merges became ready as tiles finished; a claimer may have stopped early, so drain.
        while let job = try store.claim(owner: "tail", leaseSeconds: 30) {
            claimed.add(job.id)
            try store.complete(job.lease, artifact: [1], cells: nil)
        }
        let ids = claimed.ids
        #expect(ids.count == 110 && Set(ids).count == 110)
        #expect(try store.artifactCount(plate: nil) == 110)
    }

    @Test(arguments: Driver.allCases)
    func resultsTellWhatMadeThemAndChosenJobsRunAgain(driver: Driver) throws {
        let store = try driver.makeStore()
        _ = try store.submit(samplePlate(images: 2, tiles: 2))
        _ = try store.submit(samplePlate(name: "P2", images: 1, tiles: 1))
        while let job = try store.claim(owner: "w", leaseSeconds: 30) {
            let made = job.kind == "merge" ? "config-1" : "model-\(job.args)"
            try store.complete(job.lease, result: JobResult(artifact: [1], provenance: made, cells: job.kind == "merge" ? [cell("astro")] : nil))
        }
        #expect(try store.provenanceGroups(plate: "P1") == [
            ProvenanceGroup(kind: "infer", provenance: "model-{\"t\":0}", jobs: 2), ProvenanceGroup(kind: "infer", provenance: "model-{\"t\":1}", jobs: 2),
            ProvenanceGroup(kind: "merge", provenance: "config-1", jobs: 2),
        ])
        let first = try store.jobs(plate: "P1", kind: "infer", provenance: "model-{\"t\":0}")
        #expect(first.count == 2)
        #expect(try store.jobs(plate: "P1", kind: "merge", provenance: "model-{\"t\":0}").isEmpty)

        #expect(try store.retry(RetrySelection(jobIDs: [], failedOnly: false)) == 0)
        #expect(try store.retry(RetrySelection(jobIDs: first, failedOnly: false)) == 2)
        let jobs = try store.jobs(plate: "P1")
        #expect(jobs.filter { $0.state == .queued }.count == 4, "the two tiles and both merges that read them")
        #expect(try store.provenanceGroups(plate: "P1") == [ProvenanceGroup(kind: "infer", provenance: "model-{\"t\":1}", jobs: 2)])
        #expect(try store.provenanceGroups(plate: "P2").count == 2, "another plate is untouched")
        #expect(try store.provenancesInUse().map { "\($0.kind) \($0.provenance)" } == ["infer model-{\"t\":0}", "infer model-{\"t\":1}", "merge config-1"],
                "P2's tile and merge still hold theirs")
        #expect(try store.provenanceRecords(plate: "P1") == ["config-1", "model-{\"t\":0}", "model-{\"t\":1}"], "records of jobs waiting to run again stay")
    }

    @Test(arguments: Driver.allCases)
    func rerunMergeReplacesCellsAndCountsByWell(driver: Driver) throws {
        let store = try driver.makeStore()
        _ = try store.submit(samplePlate(images: 2, tiles: 1))
        var merges: [ClaimedJob] = []
        while let job = try store.claim(owner: "w", leaseSeconds: 30) {
            if job.kind == "merge" {
                merges.append(job)
                try store.complete(job.lease, artifact: nil, cells: [cell("astro"), cell("astro", area: 300), cell("cort")])
            } else {
                try store.complete(job.lease, artifact: [1], cells: nil)
            }
        }
        #expect(merges.count == 2)
        #expect(try store.retry(RetrySelection(jobID: merges[0].id, failedOnly: false)) == 1)
        let rerun = try #require(try store.claim(owner: "w", leaseSeconds: 30))
        try store.complete(rerun.lease, artifact: nil, cells: [cell("astro")])
        let counts = try store.wellCounts(CellQuery(plate: "P1"))
        #expect(counts.map { "\($0.well) \($0.cellType) \($0.cells)" } == ["B01 astro 1", "B02 astro 2", "B02 cort 1"])
        let b02 = try store.wellCounts(CellQuery(well: "B02", cellType: "astro"))
        #expect(b02.count == 1 && b02[0].meanArea == 200)
        #expect(try store.cells(CellQuery(cellType: "cort")).map(\.well) == ["B02"])
    }

    /// A live-cell plate: one well scanned at three time points (the last one submitted later),
    /// a second channel kept for status but not segmented; counts come per time point, oldest first.
    @Test(arguments: Driver.allCases)
    func timePointsAndChannelsAreStoredAndCountedApart(driver: Driver) throws {
        let store = try driver.makeStore()
        func scan(_ t: Int, cells: Int) -> (PlateSubmission, Int) {
            let path = "/plates/L/VID1_Phase_B2_1_0\(t)d00h00m.tif"
            let images = [
                NewImage(path: path, well: "B02", field: 1, timepoint: TimePoint(elapsedMinutes: t * 1440), channel: "Phase",
                         width: 704, height: 520, contentHash: "h\(t)"),
                NewImage(path: "/plates/L/VID1_Green_B2_1_0\(t)d00h00m.tif", well: "B02", field: 1,
                         timepoint: TimePoint(elapsedMinutes: t * 1440), channel: "Green", width: 0, height: 0, contentHash: "",
                         segmented: false),
            ]
            let jobs = [NewJob(key: "merge/L/\(t)", kind: "merge", imagePath: path, args: "{}", maxAttempts: 3)]
            return (PlateSubmission(plate: "L", root: "/plates/L", images: images, jobs: jobs), cells)
        }
        for (t, n) in [(2, 5), (0, 2), (1, 3)] {
            let (submission, cells) = scan(t, cells: n)
            _ = try store.submit(submission)
            let job = try #require(try store.claim(owner: "w", leaseSeconds: 30))
            try store.complete(job.lease, artifact: nil, cells: Array(repeating: cell("astro"), count: cells))
        }
        let counts = try store.wellCounts(CellQuery(plate: "L"))
        #expect(counts.map { "\($0.timepoint?.label ?? "-") \($0.cells)" } == ["00d00h00m 2", "01d00h00m 3", "02d00h00m 5"])
        #expect(counts.map { $0.timepoint?.order } == [0, 1440, 2880])
        #expect(try store.wellCounts(CellQuery(plate: "L", timepoint: "01d00h00m")).map(\.cells) == [3])
        let located = try store.cells(CellQuery(timepoint: "02d00h00m"))
        #expect(located.count == 5 && located.allSatisfy { $0.channel == "Phase" && $0.timepoint == TimePoint(elapsedMinutes: 2880) })
        let images = try store.images(plate: "L")
        #expect(images.filter(\.segmented).map { $0.timepoint!.label } == ["00d00h00m", "01d00h00m", "02d00h00m"])
        #expect(images.filter { !$0.segmented }.map(\.channel) == ["Green", "Green", "Green"])
        let progress = try #require(try store.progress(plate: "L").first)
        #expect(progress.images == 3 && progress.imagesMerged == 3, "images of a channel not segmented are not the plate's work")
    }
}

final class ClaimLog: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [Int64] = []

    func add(_ id: Int64) {
        lock.lock()
        list.append(id)
        lock.unlock()
    }

    var ids: [Int64] {
        lock.lock()
        defer { lock.unlock() }
        return list
    }

    /// Pruning frees a merged image's tile outputs and keeps its cells; an image not merged yet
    /// keeps its outputs; a pruned merge asked to run again takes its tiles with it.
    @Test(arguments: Driver.allCases)
    func pruningKeepsCellsAndARetriedMergeRunsItsTilesAgain(driver: Driver) throws {
        let store = try driver.makeStore()
        _ = try store.submit(samplePlate(images: 2, tiles: 2))
        // Image 0: both tiles and its merge; image 1: its tiles only.
        var merge0: JobID?
        while let job = try store.claim(owner: "w", leaseSeconds: 30) {
            let args = job.kind == "merge" ? nil : [UInt8](repeating: 7, count: 100)
            if job.kind == "merge" {
                guard merge0 == nil else { try store.release(job.lease); break }
                merge0 = job.id
                try store.complete(job.lease, artifact: nil, cells: [cell("astro"), cell("cort")])
            } else {
                try store.complete(job.lease, artifact: args, cells: nil)
            }
        }
        let merged = try #require(merge0)
        #expect(try store.artifactCount(plate: "P1") == 4)
        #expect(try store.pruneArtifacts(plate: "P1") == PrunedArtifacts(artifacts: 2, bytes: 200, images: 1))
        #expect(try store.artifactCount(plate: "P1") == 2, "the unmerged image keeps its tile outputs")
        #expect(try store.cells(CellQuery(plate: "P1")).count == 2)
        #expect(try store.pruneArtifacts(plate: "P1") == PrunedArtifacts(artifacts: 0, bytes: 0, images: 0))
        #expect(try store.pruneArtifacts(plate: "nope") == PrunedArtifacts(artifacts: 0, bytes: 0, images: 0))

        #expect(try store.retry(RetrySelection(jobIDs: [merged], failedOnly: false)) == 3)
        let again = try #require(try store.claim(owner: "w", leaseSeconds: 30))
        #expect(again.kind == "infer", "the pruned tiles run before the merge")
    }

    /// What a user types for a well, a type or a plate is a value, never SQL.
    @Test(arguments: Driver.allCases)
    func queryValuesAreNeverSQL(driver: Driver) throws {
        let store = try driver.makeStore()
        _ = try store.submit(samplePlate(images: 1, tiles: 1))
        while let job = try store.claim(owner: "w", leaseSeconds: 30) {
            try store.complete(job.lease, artifact: nil, cells: job.kind == "merge" ? [cell("astro")] : nil)
        }
        let hostile = ["B01' OR '1'='1", "astro'; DROP TABLE cells; --", "P1\" OR 1=1 --"]
        for value in hostile {
            #expect(try store.cells(CellQuery(well: value)).isEmpty)
            #expect(try store.cells(CellQuery(cellType: value)).isEmpty)
            #expect(try store.wellCounts(CellQuery(plate: value)).isEmpty)
        }
        #expect(try store.cells(CellQuery(well: "B01", cellType: "astro")).count == 1, "the cells table is still there")
    }
}
