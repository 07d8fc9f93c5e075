import Foundation
import Imaging
import JobStore

/// A plate run while everything around it dies: worker processes SIGKILLed at random moments,
/// the coordinator (`plateseg run`) killed mid-submit and mid-run and started again, and, on
/// PostgreSQL, the server crashed and restarted (`pg_ctl restart -m immediate`). Seeded, so a
/// failure can be replayed. Shared by the chaos test of `make test` and `plateseg-bench chaos`.
public struct ChaosPlan: Sendable {
    public var seed: UInt64
    public var workerKills: Int
    /// PostgreSQL server crashes (needs `PLATESEG_TEST_PGCTL`, set by ops/postgres/test-server.sh).
    public var databaseRestarts: Int
    /// Worker processes per coordinator.
    public var workers: Int
    /// Seconds between kills, drawn uniformly from this range.
    public var killInterval: ClosedRange<Double>
    /// The run is abandoned (and reported as a problem) past this.
    public var timeoutSeconds: Double
    /// `run --lease`. A worker killed while no coordinator watched it (an orphan of a killed
    /// coordinator) has its job given back by the next coordinator, which sees it gone, not by its
    /// lease expiring: a lease this long is a backstop, and a loaded machine's late heartbeat
    /// cannot lose one.
    public var leaseSeconds: Double
    /// `run --max-attempts`: each kill of a job's worker counts an attempt (a job that kills
    /// every worker must end failed), so a chaos of many kills needs more than the default 3.
    public var maxAttempts: Int

    public init(seed: UInt64, workerKills: Int, databaseRestarts: Int, workers: Int = 2,
                killInterval: ClosedRange<Double> = 0.2...1.2, timeoutSeconds: Double = 1200, leaseSeconds: Double = 60, maxAttempts: Int = 100) {
        self.leaseSeconds = leaseSeconds
        self.maxAttempts = maxAttempts
        self.seed = seed
        self.workerKills = workerKills
        self.databaseRestarts = databaseRestarts
        self.workers = workers
        self.killInterval = killInterval
        self.timeoutSeconds = timeoutSeconds
    }
}

/// What a chaos run did and what it left; `problems` is empty when nothing was lost or doubled.
public struct ChaosOutcome: Sendable, CustomStringConvertible {
    public var workerKills = 0
    public var coordinatorKills = 0
    public var coordinatorStarts = 0
    public var databaseRestarts = 0
    /// Where the kill during submit landed: before its commit (nothing stored) or after (all).
    public var submitKill = ""
    public var jobs = 0
    public var attempts = 0
    public var cells = 0
    public var seconds = 0.0
    public var undisturbedSeconds = 0.0
    public var problems: [String] = []

    public var jobsRedone: Int { attempts - jobs }

    public var description: String {
        let lines = [
            "worker processes SIGKILLed  \(workerKills)",
            "coordinator kills           \(coordinatorKills) (mid-submit: \(submitKill); then mid-run)",
            "coordinator starts          \(coordinatorStarts)",
            "database server crashes     \(databaseRestarts)",
            "jobs                        \(jobs), attempts \(attempts): \(jobsRedone) redone",
            "cells                       \(cells)",
            String(format: "time                        %.1f s undisturbed, %.1f s under chaos (%.1f s lost)",
                   undisturbedSeconds, seconds, seconds - undisturbedSeconds),
            problems.isEmpty ? "result                      every job succeeded once; export identical to the undisturbed run's"
                : "PROBLEMS:\n  " + problems.joined(separator: "\n  "),
        ]
        return lines.joined(separator: "\n")
    }
}

public final class ChaosRun {
    let plateseg: URL
    let plate: URL
    let models: URL
    let plan: ChaosPlan
    let log: (String) -> Void
    private var random: SeededRandom
    private let marker = UUID().uuidString

    public init(plateseg: URL, plate: URL, models: URL, plan: ChaosPlan, log: @escaping (String) -> Void = { _ in }) {
        self.plateseg = plateseg
        self.plate = plate
        self.models = models
        self.plan = plan
        self.log = log
        random = SeededRandom(seed: plan.seed)
    }

    /// Runs the plate undisturbed into `reference`, then under chaos into `db`, and compares.
    public func run(db: String, reference: String, scratch: URL) throws -> ChaosOutcome {
        var outcome = ChaosOutcome()
        let plateName = plate.lastPathComponent

        let started = Date()
        let undisturbed = try start(["run", plate.path, "--workers", "\(plan.workers)", "--db", reference])
        undisturbed.waitUntilExit()
        outcome.undisturbedSeconds = Date().timeIntervalSince(started)
        guard undisturbed.terminationStatus == 0 else { throw TestSetupError("the undisturbed run failed (\(undisturbed.terminationStatus))") }
        let expectedJobs = try openJobStore(reference).progress(plate: plateName).first?.total ?? 0

        let chaosStarted = Date()
        let deadline = chaosStarted.addingTimeInterval(plan.timeoutSeconds)
        // The coordinator killed while it submits: the plate is stored whole or not at all.
        var coordinator = try start(["run", plate.path, "--workers", "\(plan.workers)", "--db", db])
        outcome.coordinatorStarts += 1
        Thread.sleep(forTimeInterval: uniform(0.05...0.5))
        kill(coordinator.processIdentifier, SIGKILL)
        coordinator.waitUntilExit()
        outcome.coordinatorKills += 1
        let stored = (try? openJobStore(db).progress(plate: plateName).first?.total) ?? 0
        outcome.submitKill = stored == 0 ? "before its commit, nothing stored" : "after its commit, all \(stored) jobs stored"
        if stored != 0 && stored != expectedJobs {
            outcome.problems.append("a submit killed half-way left \(stored) of \(expectedJobs) jobs")
        }
        log("coordinator killed during submit: \(outcome.submitKill)")

        let restartsAt = Set((1...max(1, plan.databaseRestarts)).map { plan.workerKills * $0 / (plan.databaseRestarts + 1) }
            .prefix(plan.databaseRestarts))
        let coordinatorKillAt = plan.workerKills / 2
        coordinator = try start(["run", plate.path, "--workers", "\(plan.workers)", "--db", db])
        outcome.coordinatorStarts += 1
        while true {
            guard Date() < deadline else {
                outcome.problems.append("not complete after \(Int(plan.timeoutSeconds)) s")
                break
            }
            if !coordinator.isRunning {
                // Complete (the test says whether the kills planned all happened before that).
                if coordinator.terminationStatus == 0 { break }
                // Its workers spent (each death is replaced only so often), or the database
                // gone under it: start it again.
                log("coordinator exited \(coordinator.terminationStatus); starting it again")
                coordinator = try start(["run", plate.path, "--workers", "\(plan.workers)", "--db", db])
                outcome.coordinatorStarts += 1
                continue
            }
            guard outcome.workerKills < plan.workerKills else {
                Thread.sleep(forTimeInterval: 0.2)
                continue
            }
            Thread.sleep(forTimeInterval: uniform(plan.killInterval))
            let workers = workerProcesses()
            guard !workers.isEmpty else { continue }
            let victim = workers[Int(random.next() % UInt64(workers.count))]
            guard kill(victim, SIGKILL) == 0 else { continue }
            outcome.workerKills += 1
            if outcome.workerKills == coordinatorKillAt {
                kill(coordinator.processIdentifier, SIGKILL)
                coordinator.waitUntilExit()
                outcome.coordinatorKills += 1
                log("coordinator killed mid-run")
            }
            if restartsAt.contains(outcome.workerKills) {
                try TestPostgres.crashAndRestart()
                outcome.databaseRestarts += 1
                log("database server crashed and restarted")
            }
        }
        // Workers orphaned by a killed coordinator end when the plate is drained; any left are stopped.
        for pid in workerProcesses() { kill(pid, SIGKILL) }
        outcome.seconds = Date().timeIntervalSince(chaosStarted)

        let store = try openJobStore(db)
        let progress = try store.progress(plate: plateName).first
        let jobs = try store.jobs(plate: plateName)
        outcome.jobs = jobs.count
        outcome.attempts = jobs.reduce(0) { $0 + $1.attempts }
        if jobs.count != expectedJobs { outcome.problems.append("\(jobs.count) jobs, the undisturbed run had \(expectedJobs)") }
        let unfinished = jobs.filter { $0.state != .succeeded }
        if !unfinished.isEmpty {
            outcome.problems.append("\(unfinished.count) jobs did not succeed: "
                + unfinished.prefix(3).map { "job \($0.id) \($0.state.rawValue) \($0.lastError ?? "")" }.joined(separator: "; "))
        }
        if let progress, progress.imagesMerged != progress.images {
            outcome.problems.append("\(progress.imagesMerged) of \(progress.images) images merged")
        }
        let artifacts = try store.artifactCount(plate: plateName)
        let expectedArtifacts = try openJobStore(reference).artifactCount(plate: plateName)
        if artifacts != expectedArtifacts { outcome.problems.append("\(artifacts) job results stored, the undisturbed run stored \(expectedArtifacts)") }

        let exported = try export(db, to: scratch.appendingPathComponent("chaos.csv"))
        let expected = try export(reference, to: scratch.appendingPathComponent("undisturbed.csv"))
        outcome.cells = exported.count - 1
        if exported != expected {
            outcome.problems.append("the export differs from the undisturbed run's: \(exported.count - 1) cells, not \(expected.count - 1)")
        }
        return outcome
    }

    /// The export's lines, sorted: cell order within an image is not part of the result.
    private func export(_ db: String, to file: URL) throws -> [String] {
        let p = try start(["export", "--db", db, "--out", file.path])
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw TestSetupError("plateseg export --db \(db) failed (\(p.terminationStatus))") }
        return try String(contentsOf: file, encoding: .utf8).split(separator: "\n").map(String.init).sorted()
    }

    private func start(_ arguments: [String]) throws -> Process {
        let p = Process()
        p.executableURL = plateseg
        p.arguments = arguments + (arguments.first == "run" ? ["--models-dir", models.path, "--lease", "\(plan.leaseSeconds)", "--max-attempts", "\(plan.maxAttempts)"] : [])
        var environment = ProcessInfo.processInfo.environment
        environment["PLATESEG_CHAOS"] = marker
        p.environment = environment
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    /// `plateseg worker` processes started for this run (by any of its coordinators), from /proc.
    private func workerProcesses() -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        let tag = Data("PLATESEG_CHAOS=\(marker)\0".utf8)
        return entries.compactMap { pid_t($0) }.filter { pid in
            guard let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
                  cmdline.split(separator: 0).dropFirst().first.map({ String(decoding: $0, as: UTF8.self) }) == "worker",
                  let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
            return environ.range(of: tag) != nil
        }.sorted()
    }

    private func uniform(_ range: ClosedRange<Double>) -> Double {
        range.lowerBound + (range.upperBound - range.lowerBound) * Double(random.next() >> 11) / Double(1 << 53)
    }
}

