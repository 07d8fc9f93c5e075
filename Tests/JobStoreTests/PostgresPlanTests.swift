import Foundation
@testable import JobStore
import Testing

/// The claim's plan does not depend on what the last ANALYZE saw. After a finished plate, the
/// statistics say that hardly any job is queued; a planner that believes them for the next plate
/// walks all its jobs through `jobs_plate` and sorts them on every claim.
@Suite struct PostgresPlanTests {
    @Test func aPlatesClaimWalksThatPlatesReadyJobsWhateverTheStatisticsSay() throws {
        let location = try Driver.postgres.freshLocation()
        let store = try openJobStore(location)
        _ = try store.submit(samplePlate(name: "P1", images: 400, tiles: 3))
        while let job = try store.claim(owner: "t", leaseSeconds: 60, plate: "P1") {
            try store.complete(job.lease, result: JobResult())
        }
        try TestPostgres.psql(location, "ANALYZE jobs")
        _ = try store.submit(samplePlate(name: "P2", images: 400, tiles: 3))

        // auto_explain shows the plans of the statements inside plateseg_claim as they run.
        let plans = try TestPostgres.psqlMessages(location, """
            LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on;
            SET client_min_messages = log; SELECT id FROM plateseg_claim('t', 60, 'P2', NULL)
            """)
        let claim = try #require(plans.components(separatedBy: "LOG:").first { $0.contains("FOR UPDATE SKIP LOCKED") })
        #expect(claim.contains("jobs_ready_plate"), "\(claim)")
        #expect(!claim.contains("Sort"), "\(claim)")
    }

    /// A plate's claim reads only that plate's ready jobs, in the plan PL/pgSQL keeps for any plate
    /// after a connection's fifth call too. The planner takes a plate's jobs to be spread evenly
    /// among the ready ones, so it would walk all ready jobs in id order and filter them by plate,
    /// reading every queued job of the plates before it on every claim.
    @Test func aPlatesClaimReadsOnlyThatPlatesReadyJobsWhenEarlierPlatesWait() throws {
        let location = try Driver.postgres.freshLocation()
        let store = try openJobStore(location)
        _ = try store.submit(samplePlate(name: "P1", images: 400, tiles: 3))
        _ = try store.submit(samplePlate(name: "P2", images: 400, tiles: 3))
        try TestPostgres.psql(location, "ANALYZE jobs")

        let plans = try TestPostgres.psqlMessages(location, """
            LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on;
            SET plan_cache_mode = force_generic_plan;
            SET client_min_messages = log; SELECT id FROM plateseg_claim('t', 60, 'P2', NULL); SELECT id FROM plateseg_claim('t', 60, NULL, NULL)
            """)
        let claims = plans.components(separatedBy: "LOG:").filter { $0.contains("FOR UPDATE SKIP LOCKED") }
        try #require(claims.count == 2, "\(plans)")
        let (ofP2, ofAny) = (claims[0], claims[1])
        #expect(ofP2.contains("Index Scan using jobs_ready_plate") && ofP2.contains("Index Cond: ((plate_id >= "), "\(ofP2)")
        #expect(!ofP2.contains("Sort"), "\(ofP2)")
        #expect(ofAny.contains("Index Scan using jobs_ready ") && !ofAny.contains("Sort"), "\(ofAny)")
    }
}

/// A field's cells are read through `cells_image`: their cost does not depend on the other
/// plates' cells (the report, `eval` and the exports read a plate field by field).
@Suite struct PostgresCellPlanTests {
    @Test func aFieldsCellsAreReadByItsIndexWhateverElseTheDatabaseHolds() throws {
        let location = try Driver.postgres.freshLocation()
        let store = try openJobStore(location)
        for plate in ["P1", "P2", "P3"] {
            _ = try store.submit(samplePlate(name: plate, images: 100, tiles: 1))
            while let job = try store.claim(owner: "t", leaseSeconds: 60, plate: plate) {
                try store.complete(job.lease, result: JobResult(cells: job.kind == "merge" ? (0..<20).map { _ in cell("astro") } : nil))
            }
        }
        try TestPostgres.psql(location, "ANALYZE")
        let ids = try store.images(plate: "P3").prefix(3).map { String($0.id) }.joined(separator: ",")
        for typed in [false, true] {
            let plan = try TestPostgres.psql(location, """
                SET plan_cache_mode = force_generic_plan;
                PREPARE q(bigint[]\(typed ? ", text" : "")) AS \(PostgresDriver.cellsOfImages(ofType: typed));
                EXPLAIN EXECUTE q('{\(ids)}'\(typed ? ", 'astro'" : ""))
                """)
            #expect(plan.contains("cells_image") && !plan.contains("Seq Scan"), "\(plan)")
        }
        #expect(try store.cells(ofImages: try store.images(plate: "P3").prefix(3).map(\.id), cellType: nil).values.map(\.count) == [20, 20, 20])
    }
}
