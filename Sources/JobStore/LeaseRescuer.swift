import Foundation
import Synchronization

/// Maintenance: a running job whose worker stopped heartbeating goes back to the queue, or,
/// when its attempts are spent, fails with the reason. Attempts are counted at claim time, so
/// a rescued job already carries the attempt it lost. Claims run the rescue on the way, at most
/// once per `interval` per process: with leases of tens of seconds that is plenty, and
/// rescuing on every claim would double a claim's cost.
final class LeaseRescuer: Sendable {
    let interval: Double
    private let lastRun = Mutex<Double?>(nil)

    init(interval: Double = 1) {
        self.interval = interval
    }

    /// Whether a rescue is due at `now` (seconds on any clock that only moves forward); if so,
    /// it counts as run.
    func isDue(at now: Double) -> Bool {
        lastRun.withLock { last in
            if let last, now - last < interval { return false }
            last = now
            return true
        }
    }

    /// The reason a rescued job carries: `before` + the lease's owner + `after` (+ `exhausted`
    /// when it fails for good). Drivers bind these into their SQL, so the words live here.
    struct Reason: Sendable {
        static let standard = Reason()
        var before = "lease of "
        var after = " expired (worker stopped or was killed)"
        var exhausted = "; attempts exhausted"

        /// A worker seen to die: its leases are given back at once, not when they expire.
        static func abandoned(_ why: String) -> Reason {
            Reason(before: "worker ", after: " \(why); its lease was given back at once")
        }
    }
}
