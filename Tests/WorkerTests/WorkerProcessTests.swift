import Foundation
import JobStore
import Testing

/// Real worker processes on a real SQLite file: started, killed with SIGKILL, stopped with SIGTERM.
@Suite(.serialized) struct WorkerProcessTests {
    let folder: URL
    let db: String
    let log: String

    init() {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("plateseg-workers-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        db = folder.appendingPathComponent("jobs.sqlite").path
        log = folder.appendingPathComponent("events.log").path
    }

    func submitSleepJobs(_ store: SQLiteJobStore, count: Int, ms: Int, kind: String = "sleep", maxAttempts: Int = 3) throws {
        let jobs = (0..<count).map { i in
            NewJob(key: "job\(i)", kind: kind, imagePath: nil, args: "{\"ms\":\(ms)}", maxAttempts: maxAttempts)
        }
        _ = try store.submit(PlateSubmission(plate: "P", root: folder.path, images: [], jobs: jobs))
    }

    func startWorker(lease: Double = 5, drain: Bool = true) throws -> Process {
        let p = Process()
        p.executableURL = productsDirectory.appendingPathComponent("plateseg-testworker")
        p.arguments = ["--db", db, "--log", log, "--lease", "\(lease)"] + (drain ? ["--exit-when-drained"] : [])
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

    func waitUntil(timeout: Double = 30, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while try !condition() {
            guard Date() < deadline else { throw TimeoutError() }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    struct TimeoutError: Error {}

    @Test func twoProcessesNeverRunTheSameJob() throws {
        let store = try SQLiteJobStore(path: db)
        try submitSleepJobs(store, count: 40, ms: 20)
        let workers = try (0..<2).map { _ in try startWorker() }
        workers.forEach { $0.waitUntilExit() }
        #expect(workers.allSatisfy { $0.terminationStatus == 0 })
        let (starts, ends) = events()
        #expect(starts.count == 40 && ends.count == 40)
        #expect(Set(starts.map(\.0)).count == 40)
        #expect(Set(starts.map(\.1)).count == 2, "both processes took work")
        #expect(try store.jobs(plate: "P").allSatisfy { $0.state == .succeeded && $0.attempts == 1 })
        #expect(try store.artifactCount(plate: "P") == 40)
    }

    @Test func sigkilledWorkersJobIsRedoneAndStoredOnce() throws {
        let store = try SQLiteJobStore(path: db)
        try submitSleepJobs(store, count: 4, ms: 1500)
        let victim = try startWorker(lease: 1, drain: false)
        try waitUntil { events().starts.count == 1 }
        let killedJob = events().starts[0].0
        kill(victim.processIdentifier, SIGKILL)
        victim.waitUntilExit()
        #expect(victim.terminationReason == .uncaughtSignal)

        let survivor = try startWorker(lease: 1)
        survivor.waitUntilExit()
        #expect(survivor.terminationStatus == 0)
        let jobs = try store.jobs(plate: "P")
        #expect(jobs.allSatisfy { $0.state == .succeeded })
        #expect(jobs.first { $0.id == killedJob }?.attempts == 2)
        #expect(try store.artifactCount(plate: "P") == 4)
        let (starts, ends) = events()
        #expect(starts.filter { $0.0 == killedJob }.count == 2, "started by the victim, then by the survivor")
        #expect(ends.filter { $0.0 == killedJob }.map(\.1) == [survivor.processIdentifier])
    }

    @Test func sigtermFinishesTheJobInHandThenExits() throws {
        let store = try SQLiteJobStore(path: db)
        try submitSleepJobs(store, count: 3, ms: 800)
        let worker = try startWorker(drain: false)
        try waitUntil { events().starts.count == 1 }
        kill(worker.processIdentifier, SIGTERM)
        worker.waitUntilExit()
        #expect(worker.terminationStatus == 0)
        let states = try store.jobs(plate: "P").map(\.state)
        #expect(states == [.succeeded, .queued, .queued])
    }

    @Test func alwaysFailingJobEndsFailedWithItsError() throws {
        let store = try SQLiteJobStore(path: db)
        try submitSleepJobs(store, count: 1, ms: 0, kind: "fail", maxAttempts: 3)
        let worker = try startWorker()
        worker.waitUntilExit()
        let failed = try store.failedJobs(plate: "P", limit: 5)
        #expect(failed.count == 1 && failed[0].attempts == 3 && failed[0].error == "this job always fails")
        #expect(try store.retry(RetrySelection(plate: "P")) == 1)
        #expect(try store.jobs(plate: "P").map(\.state) == [.queued])
    }
}

/// The folder holding the built executables, next to the test bundle.
let productsDirectory: URL = {
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    return exe.deletingLastPathComponent()
}()
