import Foundation
import JobStore
import Testing

@Suite struct RetryDelayTests {
    @Test func aRetryableFailureWaitsBeforeItsNextAttempt() throws {
        let store = try SQLiteJobStore(path: temporaryDatabasePath(), retryDelay: { attempt in 0.3 * Double(attempt) })
        _ = try store.submit(samplePlate(images: 1, tiles: 1))
        let job = try #require(try store.claim(owner: "w", leaseSeconds: 30))
        try store.fail(job.lease, error: "disk full", retryable: true)
        #expect(try store.claim(owner: "w", leaseSeconds: 30) == nil, "not before its delay")
        Thread.sleep(forTimeInterval: 0.35)
        let again = try #require(try store.claim(owner: "w", leaseSeconds: 30))
        #expect(again.id == job.id && again.attempt == 2)
    }

    @Test func retryClearsTheDelay() throws {
        let store = try SQLiteJobStore(path: temporaryDatabasePath(), retryDelay: { _ in 3600 })
        _ = try store.submit(samplePlate(images: 1, tiles: 1, maxAttempts: 1))
        let job = try #require(try store.claim(owner: "w", leaseSeconds: 30))
        try store.fail(job.lease, error: "disk full", retryable: true)
        #expect(try store.retry(RetrySelection(plate: "P1")) == 1)
        #expect(try store.claim(owner: "w", leaseSeconds: 30)?.id == job.id)
    }

    @Test func theDefaultDelayGrowsAndIsCapped() {
        let delays = (1...6).map(SQLiteJobStore.defaultRetryDelay)
        #expect(delays == [5, 10, 20, 40, 60, 60])
    }
}
