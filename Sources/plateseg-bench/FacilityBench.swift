import ArgumentParser
import Foundation
import Imaging
import JobStore
import Logging
import Pipeline
import Worker

/// A facility's night: N plates of 384 wells x 9 fields made of real fields (symbolic links),
/// submitted to one database, segmented by worker processes, then read the way a lab reads them
/// in the morning (status, query, report, export), each reader timed with its peak memory.
///
/// Networks: `shipped` runs `plateseg run` on each plate with the shipped networks; `replay`
/// runs the shipped networks once on each distinct field, then workers that hand back those
/// outputs for every field made of it and run the real merge: the database, the queue and the
/// readers see what the shipped networks make, at a small part of their cost.
struct FacilityBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "facility", abstract: "Plates of 384 wells x 9 fields end to end, and the morning's readers, at a facility's size.")

    enum Networks: String, ExpressibleByArgument { case shipped, replay }

    @Option(help: "Plates in the night.") var plates = 20
    @Option(help: "Wells per plate (96, 384 or 1536).") var wells = 384
    @Option(help: "Fields per well.") var fields = 9
    @Option(help: "Folder of real 704x520 fields the plates are made of (default: ../shared/data/sartorius/images/train, else demo/plate).")
    var images: String?
    @Option(help: "Distinct real fields used (each plate cycles through them).") var distinct = 48
    @Option(help: ArgumentHelp("Database: a SQLite path or a postgres:// URL (default: $PLATESEG_BENCH_POSTGRES).", valueName: "path-or-url"))
    var db: String?
    @Option(help: "Worker processes.") var workers = 2
    @Option(help: "shipped or replay.") var networks: Networks = .replay
    @Option(help: "Folder with the model files.") var modelsDir = "models"
    @Option(help: "Runs of each quick reader; the median is reported.") var runs = 3
    @Option(help: "Scratch folder (plates, replayed outputs, reports and exports).") var work: String?
    @Option(help: "The shipped networks' outputs recorded by an earlier `facility --networks replay` (its source.sqlite): not recomputed.")
    var replayFrom: String?

    func run() throws {
        guard let location = db ?? ProcessInfo.processInfo.environment["PLATESEG_BENCH_POSTGRES"] else {
            throw ValidationError("--db: give a SQLite path or a postgres:// URL (or set PLATESEG_BENCH_POSTGRES)")
        }
        let scratch = URL(fileURLWithPath: work ?? FileManager.default.temporaryDirectory.appendingPathComponent("plateseg-facility-\(UUID().uuidString.prefix(8))").path)
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        let sources = try sourceFields()
        print("facility: \(plates) plates of \(wells) wells x \(fields) fields from \(sources.count) real fields; \(workers) workers; networks \(networks.rawValue); database \((try? StoreLocation(parsing: location).description) ?? "?")")

        var replay: String?
        if networks == .replay, let replayFrom {
            replay = replayFrom
            print("replaying the shipped networks' outputs recorded in \(replayFrom)")
        } else if networks == .replay {
            let (path, seconds) = try shippedOutputs(of: sources, in: scratch)
            replay = path
            print(String(format: "shipped networks on the %d distinct fields: %.1f s (%.2f s a field, %d workers)", sources.count, seconds,
                         seconds / Double(sources.count), workers))
        }

        var names: [String] = []
        for p in 1...plates {
            let name = String(format: "FAC%02d", p)
            try makePlate(name, from: sources, in: scratch)
            names.append(name)
        }
        let night = try segment(names, in: scratch, db: location, replay: replay)
        try readers(names, in: scratch, db: location, night: night)
    }

    // MARK: the plates

    private func sourceFields() throws -> [URL] {
        let shared = URL(fileURLWithPath: "../shared/data/sartorius/images/train")
        let folder = images.map { URL(fileURLWithPath: $0) }
            ?? (FileManager.default.fileExists(atPath: shared.path) ? shared : URL(fileURLWithPath: "demo/plate"))
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".png") }.sorted()
        guard !files.isEmpty else { throw BenchError("\(folder.path): no PNG fields") }
        // Every n-th, so that the three cell types are all there.
        let step = max(1, files.count / distinct)
        return stride(from: 0, to: files.count, by: step).prefix(distinct).map { folder.appendingPathComponent(files[$0]).standardizedFileURL }
    }

    private var wellNames: [String] {
        let (rows, columns) = wells == 96 ? (8, 12) : wells == 1536 ? (32, 48) : (16, 24)
        return (0..<rows).flatMap { r in (1...columns).map { WellName.rowName(r) + String(format: "%02d", $0) } }
    }

    /// ImageXpress names (`F01_B03_s4.png`), each a symbolic link to a real field.
    private func makePlate(_ name: String, from sources: [URL], in scratch: URL) throws {
        let folder = scratch.appendingPathComponent("plates/\(name)")
        try? FileManager.default.removeItem(at: folder)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var i = Int(name.dropFirst(3)) ?? 0
        for well in wellNames {
            for f in 1...fields {
                try FileManager.default.createSymbolicLink(at: folder.appendingPathComponent("\(name)_\(well)_s\(f).png"),
                                                           withDestinationURL: sources[i % sources.count])
                i += 1
            }
        }
    }

    /// The shipped networks' outputs on each distinct field, kept in a SQLite file of their own.
    private func shippedOutputs(of sources: [URL], in scratch: URL) throws -> (path: String, seconds: Double) {
        let folder = scratch.appendingPathComponent("source")
        try? FileManager.default.removeItem(at: folder)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (i, source) in sources.enumerated() {
            try FileManager.default.createSymbolicLink(at: folder.appendingPathComponent("SRC_\(wellNames[i])_s1.png"), withDestinationURL: source)
        }
        let db = scratch.appendingPathComponent("source.sqlite").path
        try? FileManager.default.removeItem(atPath: db)
        let timed = try Command.run(plateseg, ["run", folder.path, "--plate", "source", "--db", db, "--models-dir", modelsDir,
                                               "--workers", "\(workers)", "--keep-tile-outputs"])
        guard timed.status == 0 else { throw BenchError("the shipped networks' run failed:\n\(timed.output)") }
        return (db, timed.seconds)
    }

    // MARK: the night

    struct Night {
        var wall: Double
        var jobs: Int
        var submitSeconds: [Double]
        var peakBytes: Int
        var endBytes: Int
        var fieldsPerHour: Double { Double(fieldCount) * 3600 / wall }
        var fieldCount: Int
    }

    private func segment(_ names: [String], in scratch: URL, db location: String, replay: String?) throws -> Night {
        var submits: [Double] = []
        let store = try openJobStore(location)
        let started = Date()
        var peak = 0
        if let replay {
            for name in names {
                let t = try Command.run(plateseg, ["submit", scratch.appendingPathComponent("plates/\(name)").path, "--plate", name, "--db", location,
                                                   "--models-dir", modelsDir])
                guard t.status == 0 else { throw BenchError("submit \(name) failed:\n\(t.output)") }
                submits.append(t.seconds)
                print(String(format: "submitted %@ in %.1f s", name, t.seconds))
            }
            let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            var environment = ProcessInfo.processInfo.environment
            environment["PLATESEG_DB"] = location
            let processes = try (0..<workers).map { _ in
                let p = Process()
                p.executableURL = me
                p.arguments = ["facility-worker", "--replay", replay, "--models-dir", modelsDir]
                p.environment = environment
                try p.run()
                return p
            }
            var lastPrint = Date.distantPast
            while processes.contains(where: \.isRunning) {
                Thread.sleep(forTimeInterval: 2)
                peak = max(peak, try store.databaseBytes())
                if Date().timeIntervalSince(lastPrint) > 60 {
                    lastPrint = Date()
                    let done = try store.progress(plate: nil).reduce(0) { $0 + $1.imagesMerged }
                    print(String(format: "%.0f s: %d fields merged, database %@", Date().timeIntervalSince(started), done, megabytes(peak)))
                }
            }
        } else {
            for name in names {
                let t = try Command.run(plateseg, ["run", scratch.appendingPathComponent("plates/\(name)").path, "--plate", name, "--db", location,
                                                   "--models-dir", modelsDir, "--workers", "\(workers)"])
                guard t.status == 0 else { throw BenchError("run \(name) failed:\n\(t.output)") }
                peak = max(peak, try store.databaseBytes())
                print(String(format: "ran %@ in %.1f s", name, t.seconds))
            }
        }
        let wall = Date().timeIntervalSince(started)
        let progress = try store.progress(plate: nil).filter { names.contains($0.plate) }
        let merged = progress.reduce(0) { $0 + $1.imagesMerged }
        let jobs = progress.reduce(0) { $0 + $1.succeeded }
        let end = try store.databaseBytes()
        peak = max(peak, end)
        guard merged == names.count * wells * fields else {
            throw BenchError("only \(merged) of \(names.count * wells * fields) fields were merged; `plateseg status` says why")
        }
        let night = Night(wall: wall, jobs: jobs, submitSeconds: submits, peakBytes: peak, endBytes: end, fieldCount: merged)
        print("\n| plates | fields | jobs | wall s | jobs/s | fields/hour | submit s (median of plates) | database at its largest | database at the end | per field |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        print(String(format: "| %d | %d | %d | %.0f | %.0f | %.0f | %@ | %@ | %@ | %.1f KB |", names.count, merged, jobs, wall, Double(jobs) / wall,
                     night.fieldsPerHour, submits.isEmpty ? "-" : String(format: "%.1f", median(submits)), megabytes(peak), megabytes(end),
                     Double(end) / Double(merged) / 1000))
        return night
    }

    // MARK: the morning

    private func readers(_ names: [String], in scratch: URL, db location: String, night: Night) throws {
        let plate = names[names.count / 2]
        let out = scratch.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let quick: [(String, [String])] = [
            ("status (all plates)", ["status"]),
            ("status --plate", ["status", "--plate", plate]),
            ("query --plate (counts per well)", ["query", "--plate", plate, "--format", "csv"]),
            ("query --plate --well B03", ["query", "--plate", plate, "--well", "B03"]),
            ("query (every plate)", ["query", "--format", "csv"]),
        ]
        let long: [(String, [String], String)] = [
            ("query --plate --cells (CSV)", ["query", "--plate", plate, "--cells", "--format", "csv"], ""),
            ("report --plate", ["report", "--plate", plate, "--out", out.appendingPathComponent("report").path, "--models-dir", modelsDir],
             out.appendingPathComponent("report").path),
            ("export --format csv", ["export", "--plate", plate, "--format", "csv", "--out", out.appendingPathComponent("cells.csv").path],
             out.appendingPathComponent("cells.csv").path),
            ("export --format coco", ["export", "--plate", plate, "--format", "coco", "--out", out.appendingPathComponent("cells.json").path],
             out.appendingPathComponent("cells.json").path),
            ("export --format labels", ["export", "--plate", plate, "--format", "labels", "--out", out.appendingPathComponent("labels").path],
             out.appendingPathComponent("labels").path),
        ]
        let cells = try openJobStore(location).wellCounts(CellQuery(plate: plate)).reduce(0) { $0 + $1.cells }
        print("\nReaders on the database of \(names.count) plates (plate \(plate): \(cells) cells):\n")
        print("| reader | seconds (median of \(runs)) | runs | peak MiB | output |")
        print("| --- | ---: | --- | ---: | ---: |")
        for (label, args) in quick {
            var timings: [Command.Timed] = []
            for _ in 0..<runs {
                let t = try Command.run(plateseg, args + ["--db", location], discardOutput: true)
                guard t.status == 0 else { throw BenchError("\(args.joined(separator: " ")) failed:\n\(t.output)") }
                timings.append(t)
            }
            print(String(format: "| `%@` | %.2f | %@ | %.0f | |", label, median(timings.map(\.seconds)),
                         timings.map { String(format: "%.2f", $0.seconds) }.joined(separator: ", "), timings.map(\.peakMiB).max() ?? 0))
        }
        for (label, args, output) in long {
            let t = try Command.run(plateseg, args + ["--db", location], discardOutput: true)
            guard t.status == 0 else { throw BenchError("\(args.joined(separator: " ")) failed:\n\(t.output)") }
            let size = output.isEmpty ? "" : megabytes(try Self.size(of: output))
            let rate = label.contains("csv") || label.contains("CSV") ? String(format: " (%.0f cells/s)", Double(cells) / t.seconds) : ""
            print(String(format: "| `%@` | %.1f%@ | 1 | %.0f | %@ |", label, t.seconds, rate, t.peakMiB, size))
        }
    }

    static func size(of path: String) throws -> Int {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else { return 0 }
        guard isFolder.boolValue else { return (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0 }
        var total = 0
        for case let file as String in FileManager.default.enumerator(atPath: path)! {
            total += (try? FileManager.default.attributesOfItem(atPath: "\(path)/\(file)")[.size] as? Int) ?? 0
        }
        return total
    }

    private var plateseg: URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("plateseg")
    }
}

/// A benchmark that cannot go on: one line.
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

func megabytes(_ bytes: Int) -> String { String(format: "%.0f MB", Double(bytes) / 1e6) }

/// A command run to its end, timed, with its own peak memory (wait4's rusage of that process).
enum Command {
    struct Timed {
        var status: Int32
        var seconds: Double
        var peakMiB: Double
        var output: String
    }

    static func run(_ executable: URL, _ args: [String], discardOutput: Bool = false) throws -> Timed {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("plateseg-bench-\(UUID().uuidString).log")
        var actions: posix_spawn_file_actions_t = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, discardOutput ? "/dev/null" : log.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, log.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable.path] + args).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let start = Date()
        let spawned = posix_spawn(&pid, executable.path, &actions, nil, argv, environ)
        guard spawned == 0 else { throw BenchError("cannot start \(executable.path): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) == -1 && errno == EINTR {}
        let seconds = Date().timeIntervalSince(start)
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(at: log)
        let exit = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Timed(status: exit, seconds: seconds, peakMiB: Double(usage.ru_maxrss) / 1024, output: output)
    }
}

/// A worker of the facility bench: the infer jobs hand back the shipped networks' outputs on
/// the same field (by content hash and network), recorded once; merges run for real.
struct FacilityWorker: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "facility-worker", abstract: "A worker of `facility --networks replay` (started by it).")

    @Option(help: "The SQLite file of the shipped networks' outputs.") var replay: String
    @Option var modelsDir = "models"

    func run() throws {
        var logger = Logger(label: "plateseg.bench")
        logger.logLevel = .warning
        let db = try openJobStore(ProcessInfo.processInfo.environment["PLATESEG_DB"] ?? "", settings: StoreSettings(mustExist: true))
        let source = try openJobStore(replay, settings: StoreSettings(mustExist: true))
        var outputs: [String: (bytes: [UInt8], provenance: String?)] = [:]
        let provenance = Dictionary(try source.provenanceGroups(plate: "source").flatMap { group in
            try source.jobs(plate: "source", kind: group.kind, provenance: group.provenance).map { ($0, group.provenance) }
        }, uniquingKeysWith: { a, _ in a })
        for image in try source.images(plate: "source") {
            guard let merge = image.mergeJobID else { continue }
            for artifact in try source.dependencyArtifacts(of: merge) {
                let job = try InferJob(jobArgs: artifact.args)
                outputs["\(image.contentHash)/\(job.model)"] = (artifact.bytes, provenance[artifact.jobID])
            }
        }
        let handlers: [String: any JobHandler] = [InferJob.kind: Replay(outputs: outputs),
                                                  MergeJob.kind: try ModelsFolder(modelsDir).mergeHandler(store: db)]
        var options = WorkerLoop.Options(owner: "\(ProcessInfo.processInfo.hostName):\(getpid()):0")
        options.exitWhenDrained = true
        WorkerProcess.run([WorkerLoop(store: db, handlers: handlers, options: options, logger: logger)], logger: logger)
    }

    struct Replay: JobHandler {
        let outputs: [String: (bytes: [UInt8], provenance: String?)]

        func run(_ job: ClaimedJob) throws -> JobResult {
            let args = try InferJob(jobArgs: job.args)
            guard let output = outputs["\(args.contentHash)/\(args.model)"] else {
                throw PermanentJobError("\(args.image): no recorded output of \(args.model) for this field")
            }
            return JobResult(artifact: output.bytes, provenance: output.provenance)
        }
    }
}
