import Foundation
import JobStore
import PlateFixtures
import Synchronization
import Testing

/// Real worker processes on a real database (a SQLite file, a PostgreSQL server): started,
/// killed with SIGKILL, stopped with SIGTERM, and, on PostgreSQL, the server crashed under them.
struct WorkerFixture {
    let folder = temporaryFolder("plateseg-workers")
    let db: String
    let store: any JobStore
    var log: String { folder.appendingPathComponent("events.log").path }

    init(_ driver: Driver) throws {
        db = try driver.freshLocation()
        store = try openJobStore(db)
    }

    func submitSleepJobs(count: Int, ms: Int, kind: String = "sleep", maxAttempts: Int = 3) throws {
        let jobs = (0..<count).map { i in
            NewJob(key: "job\(i)", kind: kind, imagePath: nil, args: "{\"ms\":\(ms)}", maxAttempts: maxAttempts)
        }
        _ = try store.submit(PlateSubmission(plate: "P", root: folder.path, images: [], jobs: jobs))
    }

    /// `clockAt`: where the worker's store clock stands still (seconds since 1970; default: now),
    /// so that no lease expires because the machine is slow, only when a later worker's clock is
    /// set past it. `gate`: jobs end only once that file exists.
    func startWorker(lease: Double = 60, drain: Bool = true, name: String = "worker", loops: Int = 1,
                     clockAt: Double = Date().timeIntervalSince1970, gate: String? = nil) throws -> Process {
        let p = Process()
        p.executableURL = productsDirectory.appendingPathComponent("plateseg-testworker")
        p.arguments = ["--db", db, "--log", log, "--lease", "\(lease)", "--loops", "\(loops)", "--clock-at", "\(clockAt)"]
            + (drain ? ["--exit-when-drained"] : []) + (gate.map { ["--gate", $0] } ?? [])
        let errors = folder.appendingPathComponent("\(name).err").path
        _ = FileManager.default.createFile(atPath: errors, contents: nil)
        p.standardError = FileHandle(forWritingAtPath: errors)
        try p.run()
        return p
    }

    /// (job, pid) for every start and end line.
    func events() -> (starts: [(Int64, Int32)], ends: [(Int64, Int32)]) {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        var starts: [(Int64, Int32)] = [], ends: [(Int64, Int32)] = []
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            let e = (Int64(f[1])!, Int32(f[2])!)
            if f[0] == "start" { starts.append(e) } else { ends.append(e) }
        }
        return (starts, ends)
    }
}

func waitUntil(timeout: Double = 60, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while try !condition() {
        guard Date() < deadline else { throw TestSetupError("timed out waiting") }
        Thread.sleep(forTimeInterval: 0.02)
    }
}

@Suite(.serialized) struct WorkerProcessTests {
    @Test(arguments: Driver.allCases)
    func twoProcessesNeverRunTheSameJob(driver: Driver) throws {
        let f = try WorkerFixture(driver)
        try f.submitSleepJobs(count: 40, ms: 20)
        let workers = try (0..<2).map { try f.startWorker(name: "w\($0)") }
        workers.forEach { $0.waitUntilExit() }
        #expect(workers.allSatisfy { $0.terminationStatus == 0 })
        let (starts, ends) = f.events()
        #expect(starts.count == 40 && ends.count == 40)
        #expect(Set(starts.map(\.0)).count == 40)
        #expect(Set(starts.map(\.1)).count == 2, "both processes took work")
        #expect(try f.store.jobs(plate: "P").allSatisfy { $0.state == .succeeded && $0.attempts == 1 })
        #expect(try f.store.artifactCount(plate: "P") == 40)
    }

    /// The victim's lease (60 s) expires on the survivor's clock, set an hour later: the job is
    /// taken back by the lease, not by how fast the machine happens to be.
    @Test(arguments: Driver.allCases)
    func sigkilledWorkersJobIsRedoneAndStoredOnce(driver: Driver) throws {
        let f = try WorkerFixture(driver)
        try f.submitSleepJobs(count: 4, ms: 300)
        let now = Date().timeIntervalSince1970
        let victim = try f.startWorker(drain: false, name: "victim", clockAt: now, gate: f.folder.appendingPathComponent("never").path)
        try waitUntil { f.events().starts.count == 1 }
        let killedJob = f.events().starts[0].0
        kill(victim.processIdentifier, SIGKILL)
        victim.waitUntilExit()
        #expect(victim.terminationReason == .uncaughtSignal)

        let at59 = try openJobStore(f.db, settings: StoreSettings(clock: .manual(ManualClock(now + 59))))
        #expect(try at59.rescueExpiredLeases() == 0, "its lease still runs at 59 s")
        let survivor = try f.startWorker(name: "survivor", clockAt: now + 3600)
        survivor.waitUntilExit()
        #expect(survivor.terminationStatus == 0)
        let jobs = try f.store.jobs(plate: "P")
        #expect(jobs.allSatisfy { $0.state == .succeeded })
        #expect(jobs.first { $0.id == killedJob }?.attempts == 2)
        #expect(try f.store.artifactCount(plate: "P") == 4)
        let (starts, ends) = f.events()
        #expect(starts.filter { $0.0 == killedJob }.count == 2, "started by the victim, then by the survivor")
        #expect(ends.filter { $0.0 == killedJob }.map(\.1) == [survivor.processIdentifier])
    }

    /// The job in hand ends only after the worker has taken the signal in (its log says so).
    @Test(arguments: Driver.allCases)
    func sigtermFinishesTheJobInHandThenExits(driver: Driver) throws {
        let f = try WorkerFixture(driver)
        try f.submitSleepJobs(count: 3, ms: 0)
        let gate = f.folder.appendingPathComponent("gate").path
        let worker = try f.startWorker(drain: false, gate: gate)
        try waitUntil { f.events().starts.count == 1 }
        kill(worker.processIdentifier, SIGTERM)
        let errors = f.folder.appendingPathComponent("worker.err")
        try waitUntil { (try? String(contentsOf: errors, encoding: .utf8))?.contains("finishing the job in hand") == true }
        _ = FileManager.default.createFile(atPath: gate, contents: nil)
        worker.waitUntilExit()
        #expect(worker.terminationStatus == 0)
        let states = try f.store.jobs(plate: "P").map(\.state)
        #expect(states == [.succeeded, .queued, .queued])
    }

    @Test(arguments: Driver.allCases)
    func alwaysFailingJobEndsFailedWithItsError(driver: Driver) throws {
        let f = try WorkerFixture(driver)
        try f.submitSleepJobs(count: 1, ms: 0, kind: "fail", maxAttempts: 3)
        let worker = try f.startWorker()
        worker.waitUntilExit()
        let failed = try f.store.failedJobs(plate: "P", limit: 5)
        #expect(failed.count == 1 && failed[0].attempts == 3 && failed[0].error == "this job always fails")
        #expect(try f.store.retry(RetrySelection(plate: "P")) == 1)
        #expect(try f.store.jobs(plate: "P").map(\.state) == [.queued])
    }

    /// The server dies as in a crash (`pg_ctl restart -m immediate`) while two workers run a
    /// plate: they reconnect (with back-off while it is down), results in flight are stored once
    /// it is back, and every job ends succeeded with its artifact stored exactly once.
    @Test func postgresRestartedMidPlateLosesAndDuplicatesNothing() throws {
        let f = try WorkerFixture(.postgres)
        try f.submitSleepJobs(count: 60, ms: 50)
        let workers = try (0..<2).map { try f.startWorker(name: "w\($0)") }
        let startedAt = "SELECT pg_postmaster_start_time()"
        let before = try TestPostgres.psql(f.db, startedAt)
        try waitUntil { f.events().ends.count >= 10 }
        try TestPostgres.crashAndRestart()
        #expect(try TestPostgres.psql(f.db, startedAt) != before, "the server restarted")
        let endsAtRestart = f.events().ends.count
        workers.forEach { $0.waitUntilExit() }
        #expect(workers.allSatisfy { $0.terminationStatus == 0 })
        #expect(endsAtRestart < 60, "the restart came mid-plate")
        let jobs = try f.store.jobs(plate: "P")
        #expect(jobs.count == 60 && jobs.allSatisfy { $0.state == .succeeded })
        #expect(try f.store.artifactCount(plate: "P") == 60)
        for job in jobs {
            #expect(try f.store.artifact(of: job.id) == Array("job \(job.id)".utf8))
        }
    }
}

/// A facility's many workers on one server: each worker process holds one connection at most
/// (its loops and their heartbeats share it), so 64 of them, two loops each, fit what a server
/// with the default `max_connections` (100, 3 kept for superusers) lets plateseg's role open.
@Suite(.serialized) struct ManyWorkersTests {
    @Test func sixtyFourWorkerProcessesFitADefaultServerAndRunEveryJobOnce() throws {
        let f = try WorkerFixture(.postgres)
        // Jobs longer than a heartbeat interval (lease 3 s: a heartbeat a second), so that each
        // worker's heartbeat talks to the server while its loop holds a job. The store clocks
        // stand still: however late a heartbeat on a loaded machine, no lease expires.
        try f.submitSleepJobs(count: 256, ms: 1300)
        final class Sampling: Sendable {
            let peak = Mutex(0)
            let going = Atomic<Bool>(true)
        }
        let sampling = Sampling()
        let db = f.db
        let sampler = Thread {
            while sampling.going.load(ordering: .relaxed) {
                // Less the sampler's own connection.
                let n = (try? TestPostgres.psql(db, "SELECT count(*) - 1 FROM pg_stat_activity WHERE datname = current_database()"))
                    .flatMap { Int($0) } ?? 0
                sampling.peak.withLock { $0 = max($0, n) }
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
        sampler.start()
        // One stopped clock for all: each worker's own start time, on a machine slow to start 64
        // processes, put later ones past the leases of the first and made them take jobs again.
        let now = Date().timeIntervalSince1970
        let workers = try (0..<64).map { try f.startWorker(lease: 3, name: "w\($0)", loops: 2, clockAt: now) }
        workers.forEach { $0.waitUntilExit() }
        sampling.going.store(false, ordering: .relaxed)
        #expect(workers.allSatisfy { $0.terminationStatus == 0 })
        let jobs = try f.store.jobs(plate: "P")
        #expect(jobs.count == 256 && jobs.allSatisfy { $0.state == .succeeded && $0.attempts == 1 })
        let events = f.events()
        #expect(events.starts.count == 256 && Set(events.starts.map(\.0)).count == 256, "every job ran once")
        let errors = try (0..<64).map { try String(contentsOf: f.folder.appendingPathComponent("w\($0).err"), encoding: .utf8) }.joined()
        #expect(!errors.contains("connection") && !errors.contains("unavailable"), "\(errors.prefix(2000))")
        // 64 workers and the test's own store: well inside the 97 of a default server (the test
        // server allows more, so that this is measured rather than refused).
        #expect(sampling.peak.withLock { $0 } <= 65, "at most one connection a worker")
    }
}

/// The folder holding the built executables, next to the test bundle.
let productsDirectory: URL = {
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    return exe.deletingLastPathComponent()
}()
