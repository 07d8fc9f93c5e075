import Foundation
import JobStore
import Logging
import Synchronization

/// Claim → run → complete, until stopped. The job in hand is heartbeaten from a separate
/// thread so that a long inference keeps its lease; a worker that dies stops heartbeating and
/// its job goes back to the queue when the lease expires.
public final class WorkerLoop: Sendable {
    public struct Options: Sendable {
        public var owner: String
        public var leaseSeconds: Double = 60
        public var idlePollSeconds: Double = 0.2
        /// Run at most one job, then return.
        public var once = false
        /// Return when no job is queued or running any more.
        public var exitWhenDrained = false
        /// Work on this plate only (nil: any plate).
        public var plate: String?
        /// How long a finished job's result is kept while the database cannot be reached (a
        /// restart, a cut network): the store is tried again with back-off until it answers.
        /// Past the lease the database decides: a lease still held is completed, a lease
        /// taken back is refused by its fencing token.
        public var storeRetrySeconds: Double = 600
        /// Times the heartbeat, back-off and idle waits (tests inject a `ManualClock`).
        public var clock: any WorkerClock = SystemWorkerClock()

        public init(owner: String) {
            self.owner = owner
        }
    }

    private let store: any JobStore
    private let handlers: [String: any JobHandler]
    private let options: Options
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)
    private let fatal = Mutex<JobStoreError?>(nil)

    public init(store: any JobStore, handlers: [String: any JobHandler], options: Options, logger: Logger) {
        self.store = store
        self.handlers = handlers
        self.options = options
        self.logger = logger
    }

    /// Asks the loop to stop after the job in hand; safe from any thread or signal source.
    public func stop() {
        stopping.store(true, ordering: .relaxed)
    }

    public var isStopping: Bool { stopping.load(ordering: .relaxed) }

    /// Why the loop gave up, if it did: a database that no retry can help (a damaged file).
    public var failure: JobStoreError? { fatal.withLock { $0 } }

    private func giveUp(_ error: JobStoreError) {
        fatal.withLock { $0 = error }
        stop()
    }

    /// Returns the number of jobs this loop completed.
    @discardableResult
    public func run() -> Int {
        var completed = 0
        var next: ClaimedJob?
        var backoff = Backoff()
        let heartbeat = Heartbeat(store: store, leaseSeconds: options.leaseSeconds, clock: options.clock, logger: logger)
        defer { heartbeat.close() }
        while !isStopping {
            let job: ClaimedJob?
            if let handedOver = next {
                job = handedOver
                next = nil
            } else {
                do {
                    job = try store.claim(owner: options.owner, leaseSeconds: options.leaseSeconds, plate: options.plate)
                    if backoff.failures > 0 { logger.notice("claims work again after \(backoff.failures) failed attempt(s)") }
                    backoff.reset()
                } catch let error as JobStoreError where error.isPermanent {
                    giveUp(error)
                    continue
                } catch {
                    let wait = backoff.next()
                    logger.error("claim failed (trying again in \(String(format: "%.1f", wait)) s): \(error)")
                    options.clock.sleep(wait)
                    continue
                }
            }
            guard let job else {
                if options.once { return completed }
                if options.exitWhenDrained, drained() { return completed }
                if isStopping { continue }
                options.clock.sleep(options.idlePollSeconds)
                continue
            }
            let outcome = execute(job, heartbeat)
            if outcome.succeeded { completed += 1 }
            next = outcome.next
            if options.once { return completed }
        }
        // Asked to stop just after claiming the next job: give it back untouched.
        if let next {
            do { try store.release(next.lease) } catch {
                logger.error("job \(next.id): could not give it back (\(error)); it returns to the queue when its lease expires")
            }
        }
        return completed
    }

    /// Runs a store operation until the database answers it (or refuses it: a lost lease), with
    /// back-off, for at most `storeRetrySeconds`.
    private func patiently(_ jobID: JobID, _ operation: () throws -> Void) throws {
        var backoff = Backoff()
        let giveUp = options.clock.now + options.storeRetrySeconds
        while true {
            do {
                try operation()
                if backoff.failures > 0 { logger.notice("job \(jobID): stored after \(backoff.failures) failed attempt(s)") }
                return
            } catch let error as JobStoreError {
                guard case .unavailable = error, options.clock.now < giveUp else { throw error }
                options.clock.sleep(backoff.next())
            }
        }
    }

    private func drained() -> Bool {
        let plates: [PlateProgress]
        do {
            plates = try store.progress(plate: options.plate)
        } catch let error as JobStoreError where error.isPermanent {
            giveUp(error)
            return false
        } catch {
            return false
        }
        // Blocked jobs behind a failed dependency never become ready: they do not keep us waiting.
        return plates.allSatisfy { $0.running == 0 && $0.queued - $0.blocked == 0 }
    }

    private func execute(_ job: ClaimedJob, _ heartbeat: Heartbeat) -> (succeeded: Bool, next: ClaimedJob?) {
        heartbeat.begin(job.lease)
        let started = options.clock.now
        let result: Result<JobResult, any Error>
        if let handler = handlers[job.kind] {
            result = Result { try handler.run(job) }
        } else {
            result = .failure(PermanentJobError("no handler for job kind \(job.kind) in this worker"))
        }
        let lease = heartbeat.end() ?? job.lease
        do {
            switch result {
            case let .success(output):
                var next: ClaimedJob?
                do {
                    // Decided now, not before the job ran: a stop asked for meanwhile claims nothing more.
                    if !options.once && !isStopping {
                        next = try store.completeAndClaim(lease, result: output, owner: options.owner,
                                                          leaseSeconds: options.leaseSeconds, plate: options.plate)
                    } else {
                        try store.complete(lease, result: output)
                    }
                } catch JobStoreError.unavailable(let location, let reason) {
                    logger.warning("job \(job.id): cannot store its result yet (\(location): \(reason)); trying again")
                    try patiently(job.id) { try store.complete(lease, result: output) }
                }
                logger.info("job \(job.id) \(job.kind) done in \(String(format: "%.2f", options.clock.now - started)) s")
                return (true, next)
            case let .failure(error):
                // What the handler says retrying cannot fix (bad input) fails at once.
                let permanent = error is PermanentJobError
                let message = "\(error)"
                try patiently(job.id) { try store.fail(lease, error: message, retryable: !permanent) }
                logger.warning("job \(job.id) \(job.kind) failed (attempt \(job.attempt)/\(job.maxAttempts)): \(message)")
                return (false, nil)
            }
        } catch let lost as JobStoreError where lost == .leaseLost(job.id) {
            // Someone else owns the job now; our result is discarded by design.
            logger.warning("job \(job.id): \(lost)")
            return (false, nil)
        } catch let error as JobStoreError where error.isPermanent {
            giveUp(error)
            return (false, nil)
        } catch {
            // The result could not be stored (disk full, say): record why, and let a later
            // attempt redo the job once there is room. If even that fails, the lease expires.
            logger.error("job \(job.id): cannot store its result: \(error)")
            try? store.fail(lease, error: "cannot store the result (\(error)); it is tried again later, and if that keeps failing, free disk space and run `plateseg retry`", retryable: true)
            return (false, nil)
        }
    }
}

/// Waits that double from 0.1 s up to 10 s: a database that restarts is found again within
/// seconds, one that is down for long is not hammered by every worker.
struct Backoff {
    private(set) var failures = 0

    mutating func next() -> Double {
        failures += 1
        return min(10, 0.1 * pow(2, Double(min(failures, 20) - 1)))
    }

    mutating func reset() {
        failures = 0
    }
}

/// Extends the lease of the job in hand every third of a lease, on one thread that lives as
/// long as the loop: a thread started per job cost more than the queue's whole round trip for a
/// short job. A failed extension (the database busy) is tried again soon rather than a third of a
/// lease later; a lost lease is not extended again, and the job's result will be refused by the
/// fencing check.
final class Heartbeat: Sendable {
    private struct State {
        var lease: Lease?
        /// When the lease in hand is next extended, on the worker's clock.
        var due: Double = 0
        /// The thread waits for a job and must be woken for the next one.
        var idle = false
        var closed = false
    }

    private let store: any JobStore
    private let leaseSeconds: Double
    private let clock: any WorkerClock
    private let logger: Logger
    private let state = Mutex(State())
    private let wake: any WorkerAlarm

    init(store: any JobStore, leaseSeconds: Double, clock: any WorkerClock, logger: Logger) {
        self.store = store
        self.leaseSeconds = leaseSeconds
        self.clock = clock
        self.logger = logger
        wake = clock.makeAlarm()
        Thread { [self] in beat() }.start()
    }

    private func after(_ seconds: Double) -> Double {
        clock.now + max(0, seconds)
    }

    /// Starts extending `lease`: the job it belongs to is about to run.
    func begin(_ lease: Lease) {
        let waitingForJob = state.withLock { s in
            s.lease = lease
            s.due = after(leaseSeconds / 3)
            defer { s.idle = false }
            return s.idle
        }
        // A thread in a timed wait wakes by itself before this lease is due; only an idle one needs a signal.
        if waitingForJob { wake.ring() }
    }

    /// Stops extending the lease of the job that ended, and returns it as last extended (nil:
    /// no job began).
    func end() -> Lease? {
        state.withLock { s in
            defer { s.lease = nil }
            return s.lease
        }
    }

    /// Ends the thread; the loop is done.
    func close() {
        state.withLock { $0.closed = true }
        wake.ring()
    }

    private enum Step {
        case wait(until: Double?)
        case extend(Lease)
        case exit
    }

    private func beat() {
        while true {
            let step: Step = state.withLock { s in
                if s.closed { return .exit }
                // No job in hand, or its lease was lost: nothing to extend until the next job.
                guard let lease = s.lease, s.due.isFinite else {
                    s.idle = true
                    return .wait(until: nil)
                }
                return clock.now >= s.due ? .extend(lease) : .wait(until: s.due)
            }
            switch step {
            case .exit:
                return
            case .wait(until: let due):
                wake.wait(until: due)
            case .extend(let current):
                let next: (Lease?, Double)
                do {
                    next = (try store.heartbeat(current, leaseSeconds: leaseSeconds), leaseSeconds / 3)
                } catch let lost as JobStoreError where lost == .leaseLost(current.jobID) {
                    logger.warning("heartbeat: \(lost)")
                    next = (nil, .infinity)
                } catch {
                    logger.warning("heartbeat for job \(current.jobID) failed, trying again: \(error)")
                    next = (nil, min(1, leaseSeconds / 10))
                }
                state.withLock { s in
                    // The job may have ended (and another begun) while the database answered.
                    guard let held = s.lease, held.jobID == current.jobID, held.token == current.token else { return }
                    if let renewed = next.0 { s.lease = renewed }
                    s.due = next.1.isFinite ? after(next.1) : .infinity
                }
            }
        }
    }
}
