import Foundation
import JobStore
import Testing

@Suite struct LeaseRescuerTests {
    @Test func expiredLeaseGoesBackToTheQueueKeepingItsAttempt() throws {
        let store = try SQLiteJobStore(path: temporaryDatabasePath())
        _ = try store.submit(samplePlate(images: 1, tiles: 1))
        let job = try #require(try store.claim(owner: "dead", leaseSeconds: 10))
        #expect(try store.rescueExpiredLeases(now: Date().timeIntervalSince1970) == 0)
        #expect(try store.rescueExpiredLeases(now: job.lease.deadline + 1) == 1)
        let p = try #require(try store.progress(plate: "P1").first)
        #expect(p.running == 0 && p.queued == 2)
        let again = try #require(try store.claim(owner: "alive", leaseSeconds: 10))
        #expect(again.id == job.id && again.attempt == 2)
    }

    @Test func expiredLeaseOnTheLastAttemptFailsWithTheReason() throws {
        let store = try SQLiteJobStore(path: temporaryDatabasePath())
        _ = try store.submit(samplePlate(images: 1, tiles: 1, maxAttempts: 1))
        let job = try #require(try store.claim(owner: "w-42", leaseSeconds: 10))
        #expect(try store.rescueExpiredLeases(now: job.lease.deadline + 1) == 1)
        let failed = try store.failedJobs(plate: nil, limit: 5)
        #expect(failed.map(\.id) == [job.id])
        #expect(failed[0].error.contains("lease of w-42 expired") && failed[0].error.contains("attempts exhausted"))
    }
}
