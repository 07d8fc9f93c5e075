import Dispatch
import Foundation
import JobStore
import Synchronization

/// The worker's own time: when the lease in hand is next extended, how long to back off from a
/// database that does not answer, how long to idle while no job is ready, how long a job took.
/// Lease deadlines themselves are the store's (`StoreClock`). Tests drive both from one
/// `ManualClock`, so that a lease expires when the test says so, never because a loaded machine
/// was slow.
public protocol WorkerClock: Sendable {
    /// Seconds on a clock that only moves forward.
    var now: Double { get }
    /// A wait that another thread can cut short.
    func makeAlarm() -> any WorkerAlarm
}

public protocol WorkerAlarm: Sendable {
    /// Returns when the clock reads `deadline` (nil: never) or once `ring()` was called, whichever
    /// comes first. A ring while nobody waits is kept for the next wait.
    func wait(until deadline: Double?)
    func ring()
}

extension WorkerClock {
    func sleep(_ seconds: Double) {
        makeAlarm().wait(until: now + max(0, seconds))
    }
}

/// This machine's monotonic clock.
public struct SystemWorkerClock: WorkerClock {
    public init() {}

    public var now: Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    public func makeAlarm() -> any WorkerAlarm { SemaphoreAlarm() }

    private final class SemaphoreAlarm: WorkerAlarm {
        private let semaphore = DispatchSemaphore(value: 0)

        func wait(until deadline: Double?) {
            guard let deadline else { return semaphore.wait() }
            _ = semaphore.wait(timeout: DispatchTime(uptimeNanoseconds: UInt64(max(0, deadline) * 1e9)))
        }

        func ring() { semaphore.signal() }
    }
}

extension ManualClock: WorkerClock {
    public func makeAlarm() -> any WorkerAlarm { ManualAlarm(clock: self) }

    private final class ManualAlarm: WorkerAlarm {
        let clock: ManualClock
        private let rings = Mutex(0)

        init(clock: ManualClock) { self.clock = clock }

        func wait(until deadline: Double?) {
            _ = clock.wait(until: deadline) {
                rings.withLock { n in
                    guard n > 0 else { return false }
                    n -= 1
                    return true
                }
            }
        }

        func ring() {
            rings.withLock { $0 += 1 }
            clock.poke()
        }
    }
}
