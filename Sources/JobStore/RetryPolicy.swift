import Foundation

/// How long a job that failed with a passing cause (a full disk, a busy file server, a database
/// restart) waits before its next attempt: time for the cause to pass, instead of every attempt
/// spent at once.
public struct RetryPolicy: Sendable {
    /// Seconds to wait after the given attempt (from 1) failed.
    public let delay: @Sendable (Int) -> Double

    public init(delay: @escaping @Sendable (Int) -> Double) {
        self.delay = delay
    }

    /// 5 s, doubling per attempt, at most a minute.
    public static let standard = RetryPolicy { attempt in min(60, 5 * pow(2, Double(max(1, attempt) - 1))) }
    public static let immediate = RetryPolicy { _ in 0 }

    /// When a failure of `lease` may run again, or nil when it must stay failed.
    func requeueDelay(after lease: Lease, retryable: Bool) -> Double? {
        retryable && lease.attempt < lease.maxAttempts ? delay(lease.attempt) : nil
    }
}
