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
