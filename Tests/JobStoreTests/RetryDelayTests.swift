import Foundation
import JobStore
import Testing

@Suite struct RetryDelayTests {
    @Test(arguments: Driver.allCases)
    func aRetryableFailureWaitsBeforeItsNextAttempt(driver: Driver) throws {
        let clock = ManualClock()
        let store = try driver.makeStore(clock: .manual(clock), retryPolicy: RetryPolicy { attempt in 0.3 * Double(attempt) })
        _ = try store.submit(samplePlate(images: 1, tiles: 1))
        let job = try #require(try store.claim(owner: "w", leaseSeconds: 30))
        try store.fail(job.lease, error: "disk full", retryable: true)
        clock.advance(by: 0.29)
        #expect(try store.claim(owner: "w", leaseSeconds: 30) == nil, "not before its delay")
        clock.advance(by: 0.02)
        let again = try #require(try store.claim(owner: "w", leaseSeconds: 30))
        #expect(again.id == job.id && again.attempt == 2)
        try store.fail(again.lease, error: "disk full", retryable: true)
        clock.advance(by: 0.59)
        #expect(try store.claim(owner: "w", leaseSeconds: 30) == nil, "the second attempt's delay is the policy's for attempt 2")
        clock.advance(by: 0.02)
        #expect(try store.claim(owner: "w", leaseSeconds: 30)?.attempt == 3)
    }

    @Test(arguments: Driver.allCases)
    func retryClearsTheDelay(driver: Driver) throws {
        let store = try driver.makeStore(retryPolicy: RetryPolicy { _ in 3600 })
        _ = try store.submit(samplePlate(images: 1, tiles: 1, maxAttempts: 1))
        let job = try #require(try store.claim(owner: "w", leaseSeconds: 30))
        try store.fail(job.lease, error: "disk full", retryable: true)
        #expect(try store.failedJobs(plate: "P1", limit: 5).map(\.id) == [job.id], "its only attempt is spent")
        #expect(try store.retry(RetrySelection(plate: "P1")) == 1)
        #expect(try store.claim(owner: "w", leaseSeconds: 30)?.id == job.id)
    }

    @Test func theStandardDelayGrowsAndIsCapped() {
        let delays = (1...6).map(RetryPolicy.standard.delay)
        #expect(delays == [5, 10, 20, 40, 60, 60])
    }
}
