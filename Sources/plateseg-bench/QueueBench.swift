import ArgumentParser
import Foundation
import JobStore
import Logging
import Worker

/// Claim → complete throughput of the queue with N worker processes on empty jobs: what the
/// queue itself costs, with no work to hide it. SQLite and PostgreSQL in the same run.
struct QueueBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue", abstract: "Queue throughput on SQLite and PostgreSQL with 1, 2 and 8 worker processes.")

    @Option(help: "Jobs per run.") var jobs = 20_000
    @Option(help: "Runs per process count; the median is reported.") var runs = 3
    @Option(help: "Comma-separated worker process counts.") var processes = "1,2,8"
    @Option(help: ArgumentHelp("A PostgreSQL database to measure beside SQLite (default: $PLATESEG_BENCH_POSTGRES; none: SQLite only). Each run adds a plate of its own.",
                               valueName: "url"))
    var postgres: String?

    func run() throws {
        let counts = processes.split(separator: ",").compactMap { Int($0) }
        var databases: [(name: String, location: () throws -> String)] = [("SQLite (WAL)", {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("plateseg-bench-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            return dir.appendingPathComponent("queue.sqlite").path
        })]
        if let postgres = postgres ?? ProcessInfo.processInfo.environment["PLATESEG_BENCH_POSTGRES"] {
            databases.append(("PostgreSQL", { postgres }))
        }
        print("| database | worker processes | jobs | median jobs/s | runs (jobs/s) |")
        print("| --- | ---: | ---: | ---: | --- |")
        for database in databases {
            for n in counts {
                var rates: [Double] = []
                for _ in 0..<runs { rates.append(try once(on: database.location(), workers: n)) }
                let median = rates.sorted()[rates.count / 2]
                print("| \(database.name) | \(n) | \(jobs) | \(Int(median)) | \(rates.map { String(Int($0)) }.joined(separator: ", ")) |")
            }
        }
    }

    private func once(on location: String, workers: Int) throws -> Double {
        let store = try openJobStore(location)
        let plate = "bench-\(UUID().uuidString.prefix(8))"
        let newJobs = (0..<jobs).map { NewJob(key: "\(plate)/\($0)", kind: "empty", imagePath: nil, args: "{}") }
        _ = try store.submit(PlateSubmission(plate: plate, root: "/bench", images: [], jobs: newJobs))
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var environment = ProcessInfo.processInfo.environment
        environment["PLATESEG_DB"] = location
        let start = Date()
        let children = try (0..<workers).map { _ in
            let p = Process()
            p.executableURL = me
            p.arguments = ["queue-worker", "--plate", plate]
            p.environment = environment
            try p.run()
            return p
        }
        children.forEach { $0.waitUntilExit() }
        let seconds = Date().timeIntervalSince(start)
        let done = try store.progress(plate: plate).first?.succeeded ?? 0
        guard done == jobs else { throw ValidationError("only \(done) of \(jobs) jobs succeeded") }
        return Double(jobs) / seconds
    }
}

struct QueueBenchWorker: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "queue-worker", shouldDisplay: false)

    @Option var plate: String

    struct Empty: JobHandler {
        func run(_ job: ClaimedJob) throws -> JobResult { JobResult() }
    }

    func run() throws {
        guard let db = ProcessInfo.processInfo.environment["PLATESEG_DB"] else { throw ValidationError("PLATESEG_DB is not set") }
        let store = try openJobStore(db)
        var options = WorkerLoop.Options(owner: "bench:\(ProcessInfo.processInfo.processIdentifier)")
        options.exitWhenDrained = true
        options.idlePollSeconds = 0.01
        options.plate = plate
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        WorkerLoop(store: store, handlers: ["empty": Empty()], options: options, logger: logger).run()
    }
}
