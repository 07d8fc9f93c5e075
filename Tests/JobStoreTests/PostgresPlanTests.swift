import Foundation
import JobStore
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
}
