import Foundation
import JobStore
import Logging
import PlateFixtures
import Testing
import Worker

/// The loop's one heartbeat thread extends the lease of every job in turn, also of a job that
/// begins after the thread has waited idle, and of none once the job has ended. The worker and
/// the store share one manual clock: a third of a lease passes when the test moves it.
@Suite struct HeartbeatTests {
    /// Moves the clock a third of a lease, twice, and each time waits until the database shows
    /// the lease extended to that moment plus a lease.
    struct HoldUntilExtendedTwice: JobHandler {
        let db: String
        let clock: ManualClock
        let leaseSeconds: Double

        func run(_ job: ClaimedJob) throws -> JobResult {
            for _ in 0..<2 {
                clock.advance(by: leaseSeconds / 3)
                let expected = clock.now + leaseSeconds
                try waitUntil {
                    let shown = try TestPostgres.psql(db, "SELECT lease_deadline FROM jobs WHERE id = \(job.id)")
                    return Double(shown).map { abs($0 - expected) < 1e-6 } ?? false
                }
            }
            return JobResult()
        }
    }

    @Test func everyJobInTurnHasItsLeaseExtended() throws {
        let db = try Driver.postgres.freshLocation()
        let clock = ManualClock()
        let store = try openJobStore(db, settings: StoreSettings(clock: .manual(clock)))
        let jobs = (0..<3).map { NewJob(key: "hold\($0)", kind: "hold", imagePath: nil, args: "{}") }
        _ = try store.submit(PlateSubmission(plate: "P", root: "/P", images: [], jobs: jobs))
        var options = WorkerLoop.Options(owner: "heartbeat-test")
        options.leaseSeconds = 60
        options.exitWhenDrained = true
        options.plate = "P"
        options.clock = clock
        let handler = HoldUntilExtendedTwice(db: db, clock: clock, leaseSeconds: options.leaseSeconds)
        let loop = WorkerLoop(store: store, handlers: ["hold": handler], options: options, logger: Logger(label: "test"))
        #expect(loop.run() == 3)
        #expect(try store.jobs(plate: "P").allSatisfy { $0.state == .succeeded && $0.attempts == 1 })
    }
}
