import Foundation
import GRDB
@testable import JobStore
import Testing

/// A plate's claim reads only that plate's queued jobs, in order. A plan that walked all ready
/// jobs in id order and filtered them by plate would read every queued job of the plates before
/// the claimed one, on every claim.
@Suite struct SQLitePlanTests {
    @Test(arguments: [true, false])
    func aClaimReadsItsPlatesQueuedJobsInOrder(ofPlate: Bool) throws {
        let location = try Driver.sqlite.freshLocation()
        let store = try openJobStore(location)
        _ = try store.submit(samplePlate(name: "P1", images: 400, tiles: 3))
        _ = try store.submit(samplePlate(name: "P2", images: 400, tiles: 3))
        let db = try DatabaseQueue(path: location)
        try db.write { try $0.execute(sql: "ANALYZE") }
        var arguments: StatementArguments = ["owner": "t", "deadline": 60, "now": 0]
        if ofPlate { arguments += ["plate": "P2"] }
        let plan = try db.read { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + SQLiteSchema.claim(ofPlate: ofPlate), arguments: arguments)
                .map { $0["detail"] as String }
        }
        let jobs = try #require(plan.first { $0.contains(" jobs") && !$0.contains("PRIMARY KEY") }, "\(plan)")
        #expect(jobs == (ofPlate ? "SEARCH jobs USING INDEX jobs_plate (plate_id=? AND state=?)" : "SCAN jobs USING INDEX jobs_ready"))
        #expect(!plan.contains { $0.contains("TEMP B-TREE") }, "\(plan)")
    }
}

/// A field's cells are read through `cells_image`, and a plate's counts through its images'
/// index: neither reads the other plates' cells.
@Suite struct SQLiteCellPlanTests {
    @Test func aFieldsCellsAndAPlatesCountsReadOnlyTheirOwnRows() throws {
        let location = try Driver.sqlite.freshLocation()
        let store = try openJobStore(location)
        for plate in ["P1", "P2"] {
            _ = try store.submit(samplePlate(name: plate, images: 50, tiles: 1))
            while let job = try store.claim(owner: "t", leaseSeconds: 60, plate: plate) {
                try store.complete(job.lease, result: JobResult(cells: job.kind == "merge" ? (0..<20).map { _ in cell("astro") } : nil))
            }
        }
        let db = try DatabaseQueue(path: location)
        try db.write { try $0.execute(sql: "ANALYZE") }
        let plan = { (sql: String) in
            try db.read { db in try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql).map { $0["detail"] as String } }
        }
        let cells = try plan("SELECT rle FROM cells INDEXED BY cells_image WHERE image_id IN (1, 2) AND cell_type = 'astro' ORDER BY image_id, id")
        #expect(cells.contains { $0.contains("USING INDEX cells_image") }, "\(cells)")
        let counts = try plan("""
            SELECT SUM(c.cells) FROM image_counts c JOIN images i ON i.id = c.image_id
            WHERE i.plate_id = (SELECT id FROM plates WHERE name = 'P2') GROUP BY i.well
            """)
        #expect(!counts.contains { $0.hasPrefix("SCAN c") || $0.contains("SCAN image_counts") }, "\(counts)")
        #expect(!counts.contains { $0.contains("cells") && !$0.contains("image_counts") }, "the cells themselves are not read: \(counts)")
    }
}

/// What `status` reads of every plate: counts from indexes alone and the provenance records in
/// use by an index probe each, never a pass over the jobs (a night of 20 plates holds 276,480).
@Suite struct SQLiteStatusPlanTests {
    @Test func aPlatesProgressAndTheRecordsInUseReadIndexesOnly() throws {
        let location = try Driver.sqlite.freshLocation()
        let store = try openJobStore(location)
        _ = try store.submit(samplePlate(name: "P1", images: 50, tiles: 2))
        while let job = try store.claim(owner: "t", leaseSeconds: 60) {
            try store.complete(job.lease, result: JobResult(provenance: job.kind, cells: job.kind == "merge" ? [cell("astro")] : nil))
        }
        let db = try DatabaseQueue(path: location)
        try db.write { try $0.execute(sql: "ANALYZE") }
        let plan = { (sql: String) in
            try db.read { db in try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: [1]).map { $0["detail"] as String } }
        }
        for sql in SQLiteSchema.plateProgress {
            let steps = try plan(sql)
            #expect(steps.allSatisfy { $0.contains("USING COVERING INDEX") } && !steps.contains { $0.contains("TEMP B-TREE") }, "\(sql): \(steps)")
        }
        let inUse = try db.read { db in try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + SQLiteSchema.provenancesInUse).map { $0["detail"] as String } }
        #expect(!inUse.contains { $0.hasPrefix("SCAN j") || $0.hasPrefix("SCAN a") }, "\(inUse)")
        #expect(inUse.contains { $0.contains("INDEX artifacts_provenance") }, "\(inUse)")
        #expect(try store.provenancesInUse().map(\.kind) == ["infer", "merge"])
    }
}
