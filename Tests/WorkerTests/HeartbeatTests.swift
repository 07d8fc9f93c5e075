import Foundation
import JobStore
import Logging
import PlatesegTestSupport
import Testing
import Worker

/// The loop's one heartbeat thread extends the lease of every job in turn, also of a job that
/// begins after the thread has waited idle, and of none once the job has ended.
@Suite struct HeartbeatTests {
    /// Runs until the database shows its lease extended twice by the heartbeat.
    struct HoldUntilExtendedTwice: JobHandler {
        let db: String

        func run(_ job: ClaimedJob) throws -> JobResult {
            var deadlines = [job.lease.deadline]
            try waitUntil {
                let shown = try TestPostgres.psql(db, "SELECT lease_deadline FROM jobs WHERE id = \(job.id)")
                if let deadline = Double(shown), deadline > deadlines.last! { deadlines.append(deadline) }
                return deadlines.count >= 3
            }
            return JobResult()
        }
    }

    @Test func everyJobInTurnHasItsLeaseExtended() throws {
        let db = try Driver.postgres.freshLocation()
        let store = try openJobStore(db)
        let jobs = (0..<3).map { NewJob(key: "hold\($0)", kind: "hold", imagePath: nil, args: "{}") }
        _ = try store.submit(PlateSubmission(plate: "P", root: "/P", images: [], jobs: jobs))
        var options = WorkerLoop.Options(owner: "heartbeat-test")
        options.leaseSeconds = 0.6
        options.exitWhenDrained = true
        options.plate = "P"
        let loop = WorkerLoop(store: store, handlers: ["hold": HoldUntilExtendedTwice(db: db)], options: options,
                              logger: Logger(label: "test"))
        #expect(loop.run() == 3)
        #expect(try store.jobs(plate: "P").allSatisfy { $0.state == .succeeded && $0.attempts == 1 })
    }
}
