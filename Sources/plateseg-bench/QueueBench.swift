import ArgumentParser
import Foundation
import JobStore
import Logging
import Worker

/// Claim → complete throughput of the queue with N worker processes on empty jobs: what the
/// queue itself costs, with no work to hide it. SQLite and PostgreSQL in the same run, and beside
/// them PostgreSQL's own `pgbench` (C, prepared statements) making the same call per job with N
/// clients: what the server does when the client costs next to nothing.
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
        func row(_ name: String, _ n: Int, _ rate: () throws -> Double) rethrows {
            var rates: [Double] = []
            for _ in 0..<runs { rates.append(try rate()) }
            let median = rates.sorted()[rates.count / 2]
            print("| \(name) | \(n) | \(jobs) | \(Int(median)) | \(rates.map { String(Int($0)) }.joined(separator: ", ")) |")
        }
        for database in databases {
            for n in counts { try row(database.name, n) { try once(on: database.location(), workers: n) } }
        }
        guard let postgres = databases.dropFirst().first else { return }
        guard let pgbench = Self.pgbench() else {
            print("\npgbench not found (Debian's postgresql package has it): no reference rows.")
            return
        }
        for n in counts {
            try row("PostgreSQL, pgbench clients (reference)", n) { try referenceRate(pgbench, on: postgres.location(), clients: n) }
        }
    }

    private static func pgbench() -> String? {
        let candidates = ["/usr/bin/pgbench"] + ((try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? [])
            .sorted { $0.compare($1, options: .numeric) == .orderedDescending }.map { "/usr/lib/postgresql/\($0)/bin/pgbench" }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    private func submitPlate(_ store: any JobStore) throws -> String {
        let plate = "bench-\(UUID().uuidString.prefix(8))"
        let newJobs = (0..<jobs).map { NewJob(key: "\(plate)/\($0)", kind: "empty", imagePath: nil, args: "{}") }
        _ = try store.submit(PlateSubmission(plate: plate, root: "/bench", images: [], jobs: newJobs))
        return plate
    }

    /// `plateseg_complete_and_claim` per job from `clients` pgbench clients, as a worker calls it:
    /// each client's first call only claims. Returns pgbench's transactions per second.
    private func referenceRate(_ pgbench: String, on location: String, clients: Int) throws -> Double {
        let plate = try submitPlate(try openJobStore(location))
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("plateseg-bench-\(plate).sql")
        try """
            \\if :job = 0
            SELECT id AS job, fencing_token AS token FROM plateseg_claim('pgbench', 60, '\(plate)', NULL) \\gset
            \\else
            SELECT id AS job, fencing_token AS token
            FROM plateseg_complete_and_claim(:job, :token, NULL, false, NULL, NULL, NULL, 'pgbench', 60, '\(plate)') \\gset
            \\endif

            """.write(to: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: script) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: pgbench)
        p.arguments = ["--no-vacuum", "--protocol=prepared", "--define=job=0", "--define=token=0", "--client=\(clients)",
                       "--jobs=\(clients)", "--transactions=\(jobs / clients)", "--file=\(script.path)", location]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0,
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("tps = ") }),
              let tps = Double(line.dropFirst(6).prefix { $0 != " " })
        else { throw ValidationError("pgbench failed (\(p.terminationStatus)): \(text)") }
        return tps
    }

    private func once(on location: String, workers: Int) throws -> Double {
        let store = try openJobStore(location)
        let plate = try submitPlate(store)
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
