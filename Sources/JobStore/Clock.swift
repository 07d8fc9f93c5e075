import Foundation
import Synchronization

/// Where the queue's time comes from. Lease deadlines and back-offs are read on the database's
/// own clock (`now()` on the PostgreSQL server, this machine's clock for a SQLite file), so that
/// workers on many hosts agree however far their own clocks drift. Tests drive a manual clock
/// instead, and never sleep.
public struct StoreClock: Sendable {
    private let reading: (@Sendable () -> Double)?

    /// The database's clock: drivers leave the time to the database.
    public static let database = StoreClock(reading: nil)

    public static func manual(_ clock: ManualClock) -> StoreClock {
        StoreClock(reading: { clock.now })
    }

    /// The time to write into a statement, or nil for "the database's now".
    var now: Double? { reading?() }
}

/// A clock that moves only when told to. Threads may wait on it (a worker's heartbeat, its
/// back-off): they wake when it is moved, not when real time passes.
public final class ManualClock: Sendable {
    private let time: Mutex<Double>
    /// Broadcast on every move and every `poke()`; waiters check their own condition.
    private let moved = NSCondition()

    public init(_ start: Double = 1_000_000) {
        time = Mutex(start)
    }

    public var now: Double { time.withLock { $0 } }

    public func advance(by seconds: Double) {
        moved.lock()
        time.withLock { $0 += seconds }
        moved.broadcast()
        moved.unlock()
    }

    /// Blocks until the clock reads `deadline` or later (nil: no deadline) or `woken()` holds,
    /// checked whenever the clock moves or `poke()` is called. Returns whether it was woken.
    public func wait(until deadline: Double?, orUntil woken: () -> Bool) -> Bool {
        moved.lock()
        defer { moved.unlock() }
        while true {
            if woken() { return true }
            if let deadline, now >= deadline { return false }
            moved.wait()
        }
    }

    /// Makes every waiter check its condition again.
    public func poke() {
        moved.lock()
        moved.broadcast()
        moved.unlock()
    }
}
