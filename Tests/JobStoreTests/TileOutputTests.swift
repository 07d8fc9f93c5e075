import Foundation
import JobStore
import Testing

/// Tile outputs are the bulk of a plate's database (about 300 KB of a 704x520 field's 320): a
/// merge removes those it read once the cells are stored, unless the plate keeps them; what
/// made them (their provenance) stays; a merge run again takes its tiles with it.
@Suite struct TileOutputTests {
    /// Runs every ready job: tiles store 100 bytes, merges store cells and drop their inputs.
    func runAll(_ store: any JobStore, mergeDropsInputs: Bool = true) throws {
        while let job = try store.claim(owner: "w", leaseSeconds: 30) {
            if job.kind == "merge" {
                try store.complete(job.lease, result: JobResult(provenance: "config", cells: [cell("astro"), cell("cort")],
                                                                dropsInputs: mergeDropsInputs))
            } else {
                try store.complete(job.lease, result: JobResult(artifact: [UInt8](repeating: 7, count: 100), provenance: "model-\(job.args)"))
            }
        }
    }

    @Test(arguments: Driver.allCases)
    func aMergeRemovesTheOutputsItReadAndKeepsWhatMadeThem(driver: Driver) throws {
        let store = try driver.makeStore()
        _ = try store.submit(samplePlate(images: 2, tiles: 3))
        try runAll(store)
        #expect(try store.artifactCount(plate: "P1") == 0)
        #expect(try store.storage(plate: "P1").first?.tileOutputBytes == 0)
        #expect(try store.provenanceGroups(plate: "P1").map(\.jobs) == [2, 2, 2, 2], "three tiles' and the merges' records stay")
        let merge = try #require(try store.images(plate: "P1").first?.mergeJobID)
        let inputs = try store.dependencyArtifacts(of: merge)
        #expect(inputs.count == 3 && inputs.allSatisfy(\.bytes.isEmpty), "the merge's inputs are named, without their bytes")
        #expect(try store.cells(CellQuery(plate: "P1")).count == 4)
    }

    @Test(arguments: Driver.allCases)
    func aPlateSubmittedToKeepThemKeepsThem(driver: Driver) throws {
        let store = try driver.makeStore()
        var plate = samplePlate(images: 2, tiles: 3)
        plate.keepTileOutputs = true
        _ = try store.submit(plate)
        _ = try store.submit(samplePlate(images: 2, tiles: 3))  // submitted again without: still kept
        try runAll(store)
        #expect(try store.artifactCount(plate: "P1") == 6)
        #expect(try store.plates().map(\.keepTileOutputs) == [true])
        let storage = try #require(try store.storage(plate: "P1").first)
        #expect(storage.tileOutputs == 6 && storage.tileOutputBytes == 600 && storage.cellBytes > 0)
    }

    /// A merge run again (`retry`, a stale ensemble config) reruns the tiles whose outputs were
    /// removed; a stale tile rerun takes its merge and the merge's other removed tiles with it,
    /// so that a merge never fuses fewer networks than its image ran.
    @Test(arguments: Driver.allCases)
    func runningAgainTakesTheRemovedTilesAlong(driver: Driver) throws {
        let store = try driver.makeStore()
        _ = try store.submit(samplePlate(images: 2, tiles: 3))
        try runAll(store)
        let merges = try store.images(plate: "P1").compactMap(\.mergeJobID)
        #expect(try store.retry(RetrySelection(jobIDs: [merges[0]], failedOnly: false)) == 4)
        try runAll(store)
        let tile = try #require(try store.jobs(plate: "P1", kind: "infer", provenance: "model-{\"t\":1}").last)
        #expect(try store.retry(RetrySelection(jobIDs: [tile], failedOnly: false)) == 3, "the tile and the merge's two other tiles")
        let queued = try store.jobs(plate: "P1").filter { $0.state == .queued }
        #expect(queued.map(\.kind).sorted() == ["infer", "infer", "infer", "merge"])
        try runAll(store)
        #expect(try store.progress(plate: "P1").first?.imagesMerged == 2)
    }

    /// Counting a plate reads counts kept per image and type; they follow a merge run again.
    @Test(arguments: Driver.allCases)
    func countsFollowTheCellsOfAMergeRunAgain(driver: Driver) throws {
        let store = try driver.makeStore()
        _ = try store.submit(samplePlate(images: 2, tiles: 1))
        try runAll(store)
        #expect(try store.wellCounts(CellQuery(plate: "P1")).map { "\($0.well) \($0.cellType) \($0.cells)" }
                == ["B01 astro 1", "B01 cort 1", "B02 astro 1", "B02 cort 1"])
        let merge = try #require(try store.images(plate: "P1").first?.mergeJobID)
        _ = try store.retry(RetrySelection(jobIDs: [merge], failedOnly: false))
        while let job = try store.claim(owner: "w", leaseSeconds: 30) {
            if job.kind == "merge" {
                try store.complete(job.lease, result: JobResult(cells: [cell("astro", area: 50), cell("astro", area: 150)], dropsInputs: true))
            } else {
                try store.complete(job.lease, result: JobResult(artifact: [1]))
            }
        }
        let counts = try store.wellCounts(CellQuery(plate: "P1", well: "B01"))
        #expect(counts.map { "\($0.cellType) \($0.cells) \($0.images) \($0.meanArea)" } == ["astro 2 1 100.0"])
        let batch = try store.cells(ofImages: try store.images(plate: "P1").map(\.id), cellType: "astro")
        #expect(batch.values.map(\.count).sorted() == [1, 2])
    }

    /// What status shows: each plate's share, its time points and channels, its progress.
    @Test(arguments: Driver.allCases)
    func statusReadsCountsNotImages(driver: Driver) throws {
        let store = try driver.makeStore(clock: .manual(ManualClock()))
        _ = try store.submit(samplePlate(name: "P1", images: 2, tiles: 2))
        _ = try store.submit(samplePlate(name: "P2", images: 1, tiles: 1))
        try runAll(store)
        let progress = try store.progress(plate: nil)
        #expect(progress.map { "\($0.plate) \($0.images) \($0.imagesMerged) \($0.succeeded) \($0.finishedLastMinute)" } == ["P1 2 2 6 6", "P2 1 1 2 2"])
        #expect(try store.plates().map(\.name) == ["P1", "P2"], "in the order they were submitted")
        let identity = try store.identity(plate: "P2")
        #expect(identity.count == 1 && identity[0].timepoints.isEmpty && identity[0].channels.map(\.images) == [1])
        #expect(try store.databaseBytes() > 0)
    }

    /// A file found again with the same bytes under another identity is remembered under it.
    @Test(arguments: Driver.allCases)
    func fileIdentityIsRecordedAndRefreshed(driver: Driver) throws {
        let store = try driver.makeStore()
        var plate = samplePlate(images: 1, tiles: 1)
        plate.images[0].fileIdentity = "1:2:3:4.5"
        _ = try store.submit(plate)
        #expect(try store.images(plate: "P1").map(\.fileIdentity) == ["1:2:3:4.5"])
        plate.images[0].fileIdentity = "1:2:3:9.9"
        #expect(try store.submit(plate).newImages == 0)
        #expect(try store.images(plate: "P1").map(\.fileIdentity) == ["1:2:3:9.9"])
        plate.images[0].fileIdentity = "7:7:7:7.7"
        plate.images[0].contentHash = "other"
        _ = try store.submit(plate)
        #expect(try store.images(plate: "P1").map(\.fileIdentity) == ["1:2:3:9.9"], "other bytes do not pass for the ones segmented")
    }
}
