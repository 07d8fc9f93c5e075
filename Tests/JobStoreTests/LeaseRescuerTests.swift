import Foundation
@testable import JobStore
import Testing

@Suite struct LeaseRescuerTests {
    @Test(arguments: Driver.allCases)
    func expiredLeaseGoesBackToTheQueueKeepingItsAttempt(driver: Driver) throws {
        let clock = ManualClock()
        let store = try driver.makeStore(clock: .manual(clock))
        _ = try store.submit(samplePlate(images: 1, tiles: 1))
        let job = try #require(try store.claim(owner: "dead", leaseSeconds: 10))
        clock.advance(by: 9.9)
        #expect(try store.rescueExpiredLeases() == 0)
        clock.advance(by: 0.2)
        #expect(try store.rescueExpiredLeases() == 1)
        let p = try #require(try store.progress(plate: "P1").first)
        #expect(p.running == 0 && p.queued == 2)
        #expect(try store.retryingJobs(plate: "P1", limit: 5).first?.error == "lease of dead expired (worker stopped or was killed)")
        let again = try #require(try store.claim(owner: "alive", leaseSeconds: 10))
        #expect(again.id == job.id && again.attempt == 2)
    }

    @Test(arguments: Driver.allCases)
    func expiredLeaseOnTheLastAttemptFailsWithTheReason(driver: Driver) throws {
        let clock = ManualClock()
        let store = try driver.makeStore(clock: .manual(clock))
        _ = try store.submit(samplePlate(images: 1, tiles: 1, maxAttempts: 1))
        let job = try #require(try store.claim(owner: "w-42", leaseSeconds: 10))
        clock.advance(by: 11)
        #expect(try store.rescueExpiredLeases() == 1)
        let failed = try store.failedJobs(plate: nil, limit: 5)
        #expect(failed.map(\.id) == [job.id])
        #expect(failed[0].error == "lease of w-42 expired (worker stopped or was killed); attempts exhausted")
    }

    /// Claims rescue on the way, but at most once per interval: a second claim a moment later
    /// does not pay for another rescue.
    @Test(arguments: Driver.allCases)
    func claimsRescueAtMostOncePerInterval(driver: Driver) throws {
        let clock = ManualClock()
        let store = try driver.makeStore(clock: .manual(clock))
        _ = try store.submit(samplePlate(images: 1, tiles: 2))
        let first = try #require(try store.claim(owner: "dead", leaseSeconds: 0.5))
        clock.advance(by: 0.6)
        // The first claim's rescue ran 0.6 s ago: this one takes the other tile, not the expired one.
        let second = try #require(try store.claim(owner: "w", leaseSeconds: 30))
        #expect(second.id != first.id)
        clock.advance(by: 0.5)
        let third = try #require(try store.claim(owner: "w", leaseSeconds: 30))
        #expect(third.id == first.id && third.attempt == 2)
    }

    @Test func isDueOncePerInterval() {
        let rescuer = LeaseRescuer(interval: 1)
        #expect(rescuer.isDue(at: 100))
        #expect(!rescuer.isDue(at: 100.5))
        #expect(!rescuer.isDue(at: 100.99))
        #expect(rescuer.isDue(at: 101))
        #expect(!rescuer.isDue(at: 101.2))
    }
}
