import Foundation
import JobStore

/// The worker processes of `plateseg run`. A worker that dies (killed for memory, a crash) is
/// named with why and what it held, its leases go back to the queue at once instead of after
/// the lease, and it is replaced — at most `maxRestarts` times within `window`, so that a fault
/// that kills every worker at start does not spin forever. A worker of this host that is not
/// its own and is gone (one of a coordinator that was killed, or a `plateseg worker` stopped
/// with SIGKILL) has its leases given back too, instead of after their deadline.
public final class WorkerSupervisor {
    private let executable: URL
    private let arguments: [String]
    private let environment: [String: String]
    private let host = WorkerOwner.host
    public private(set) var processes: [Process] = []
    /// When each replacement was started, on `clock`.
    private var restarts: [Double] = []
    private let maxRestarts: Int
    private let window: Double
    private let clock: any WorkerClock
    /// Set when the user asked the workers to stop: their exits are not deaths.
    public private(set) var stopping = false
    /// Deaths, for the summary.
    public private(set) var deaths = 0
    private var handled = Set<Int32>()

    /// `window`: seconds on `clock` within which at most `maxRestarts` replacements are started.
    public init(executable: URL, arguments: [String], environment: [String: String], workers: Int,
                maxRestarts: Int? = nil, window: Double = 600, clock: any WorkerClock = SystemWorkerClock()) throws {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.maxRestarts = maxRestarts ?? max(3, 2 * workers)
        self.window = window
        self.clock = clock
        processes = try (0..<workers).map { _ in try start() }
    }

    public var anyRunning: Bool { processes.contains(where: \.isRunning) }

    public func stop() {
        stopping = true
        processes.forEach { $0.terminate() }
    }

    private func start() throws -> Process {
        let p = Process()
        p.executableURL = executable
        p.environment = environment
        p.arguments = arguments
        try p.run()
        return p
    }

    /// Looks at every worker once: the dead are reported, their leases given back, and (within
    /// the restart budget) replaced. Returns one line per event.
    public func check(_ db: any JobStore) throws -> [String] {
        let now = clock.now
        var lines: [String] = []
        for (i, p) in processes.enumerated() where !p.isRunning && !handled.contains(p.processIdentifier) {
            guard !stopping, let why = Self.describe(p) else { continue }
            handled.insert(p.processIdentifier)
            deaths += 1
            let held = try db.releaseLeases(ofWorker: "\(host):\(p.processIdentifier):", why: "process \(p.processIdentifier) \(why)")
            let jobs = held.isEmpty ? "holding no job" : "holding job \(held.map(String.init).joined(separator: ", ")), queued again at once"
            restarts = restarts.filter { now - $0 < window }
            if restarts.count < maxRestarts {
                restarts.append(now)
                let replacement = try start()
                processes[i] = replacement
                lines.append("worker process \(p.processIdentifier) \(why), \(jobs); started process \(replacement.processIdentifier) in its place")
            } else {
                lines.append("worker process \(p.processIdentifier) \(why), \(jobs); not replaced: \(maxRestarts) workers died within \(Int(window / 60)) minutes")
            }
        }
        // A database that does not answer this once is asked again at the next check.
        return lines + ((try? reclaimGoneWorkers(db)) ?? [])
    }

    /// Leases whose owner (`WorkerOwner`) is a process of this host and process namespace that no
    /// longer runs. Another host's or container's workers, and processes that still run, keep
    /// theirs: a reused pid only leaves a lease to its deadline, and a lease given back too early
    /// would cost the work again, never a result (the fencing token).
    private func reclaimGoneWorkers(_ db: any JobStore) throws -> [String] {
        let ours = Set(processes.map(\.processIdentifier))
        var lines: [String] = []
        var seen = Set<Int32>()
        for owner in try db.leaseOwners() {
            let parts = owner.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count >= 2, parts[0] == host, let pid = Int32(parts[1]), pid > 0, !ours.contains(pid),
                  !seen.contains(pid), Self.isGone(pid) else { continue }
            seen.insert(pid)
            let held = try db.releaseLeases(ofWorker: "\(host):\(pid):", why: "process \(pid) is gone")
            guard !held.isEmpty else { continue }
            lines.append("worker process \(pid) of this host is gone, holding job \(held.map(String.init).joined(separator: ", ")), queued again at once")
        }
        return lines
    }

    /// No such process, or a zombie nobody has reaped (a killed coordinator's dead worker).
    static func isGone(_ pid: Int32) -> Bool {
        if kill(pid, 0) != 0 { return errno == ESRCH }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    /// Why a worker ended, or nil when it finished as asked (exit 0: the plate is drained).
    public static func describe(_ p: Process) -> String? {
        switch p.terminationReason {
        case .uncaughtSignal:
            let sig = p.terminationStatus
            let name = [SIGKILL: "SIGKILL", SIGSEGV: "SIGSEGV", SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGILL: "SIGILL",
                        SIGTERM: "SIGTERM", SIGINT: "SIGINT", SIGFPE: "SIGFPE", SIGTRAP: "SIGTRAP"][sig]
            return "was killed by signal \(sig)" + (name.map { " (\($0)\($0 == "SIGKILL" ? ", perhaps for memory" : ""))" } ?? "")
        case .exit:
            return p.terminationStatus == 0 ? nil : "exited with status \(p.terminationStatus)"
        @unknown default:
            return "ended"
        }
    }
}
