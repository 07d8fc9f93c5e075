import ArgumentParser
import Foundation
import JobStore
import Logging
import Worker

/// Claim → complete throughput of the SQLite queue with N worker processes on empty jobs:
/// what the queue itself costs, with no work to hide it.
struct QueueBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "queue", abstract: "Queue throughput with 1, 2 and 8 worker processes.")

    @Option(help: "Jobs per run.") var jobs = 20_000
    @Option(help: "Runs per process count; the median is reported.") var runs = 3
    @Option(help: "Comma-separated worker process counts.") var processes = "1,2,8"

    func run() throws {
        let counts = processes.split(separator: ",").compactMap { Int($0) }
        print("| worker processes | jobs | median jobs/s | runs (jobs/s) |")
        print("| ---: | ---: | ---: | --- |")
        for n in counts {
            var rates: [Double] = []
            for _ in 0..<runs { rates.append(try once(workers: n)) }
            let median = rates.sorted()[rates.count / 2]
            print("| \(n) | \(jobs) | \(Int(median)) | \(rates.map { String(Int($0)) }.joined(separator: ", ")) |")
        }
    }

    private func once(workers: Int) throws -> Double {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("plateseg-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("queue.sqlite").path
        let store = try SQLiteJobStore(path: path)
        let newJobs = (0..<jobs).map { NewJob(key: "j\($0)", kind: "empty", imagePath: nil, args: "{}") }
        _ = try store.submit(PlateSubmission(plate: "bench", root: dir.path, images: [], jobs: newJobs))
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let start = Date()
        let children = try (0..<workers).map { _ in
            let p = Process()
            p.executableURL = me
            p.arguments = ["queue-worker", "--db", path]
            try p.run()
            return p
        }
        children.forEach { $0.waitUntilExit() }
        let seconds = Date().timeIntervalSince(start)
        let done = try store.jobs(plate: "bench").filter { $0.state == .succeeded }.count
        guard done == jobs else { throw ValidationError("only \(done) of \(jobs) jobs succeeded") }
        return Double(jobs) / seconds
    }
}

struct QueueBenchWorker: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "queue-worker", shouldDisplay: false)

    @Option var db: String

    struct Empty: JobHandler {
        func run(_ job: ClaimedJob) throws -> JobResult { JobResult() }
    }

    func run() throws {
        let store = try SQLiteJobStore(path: db)
        var options = WorkerLoop.Options(owner: "bench:\(ProcessInfo.processInfo.processIdentifier)")
        options.exitWhenDrained = true
        options.idlePollSeconds = 0.01
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        WorkerLoop(store: store, handlers: ["empty": Empty()], options: options, logger: logger).run()
    }
}
