import ArgumentParser
import Foundation
import JobStore
import Models
import Pipeline
import Worker
import SystemPackage

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Submit a plate, run worker processes on this machine until it is done, and summarise (again: resumes).")

    @OptionGroup var store: StoreOptions
    @OptionGroup var plate: PlateOptions

    @Option(help: "Worker processes to start.")
    var workers: Int = 2

    @Option(help: "Seconds a worker's claim on a job lasts without a heartbeat (every third of it): how long a job of a worker that vanished waits before another takes it, unless a `run` on the worker's host sees its process gone first.")
    var lease: Double = 60

    @Flag(help: "Run again the tiles and merges of this plate that other model files or another ensemble.json made.")
    var redoStale = false

    @Option(help: "What the networks compute in: fp32, bf16, int8 (needs <network>.int8.json from calibrate-int8), or auto (per network the fastest this processor runs natively that keeps fp32's cells); then exceptions, e.g. bf16,upernet=int8.")
    var precision = PrecisionPlan()

    func validate() throws {
        guard workers >= 1 else { throw ValidationError("--workers \(workers): give at least 1 worker process") }
        guard lease >= 3, lease.isFinite else { throw ValidationError("--lease \(lease): give at least 3 seconds (a worker heartbeats every third of it)") }
    }

    func run() throws {
        let location = try StoreLocation(parsing: store.db)
        let db = try openJobStore(location)
        let s = try plate.submit(to: db)
        let name = plate.plateName
        // Unbuffered, so that it comes before the progress bar (stderr) also when piped to a log.
        FileHandle.standardOutput.write(Data("plate \(name): \(s.newImages) new images (\(s.unreadableImages) unreadable), \(s.newJobs) new jobs; \(workers) workers; database \(db.location)\n".utf8))
        for note in [s.tilingNote, s.changeNote].compactMap({ $0 }) { FileHandle.standardOutput.write(Data("\(note)\n".utf8)) }
        FileHandle.standardOutput.write(Data("networks in \(precision.describe(modelFiles: plate.modelNames.map { "\(ModelsFolder(plate.modelsDir).path)/\($0).safetensors" }))\n".utf8))
        if !FileManager.default.fileExists(atPath: "\(plate.modelsDir)/ensemble.json") {
            FileHandle.standardOutput.write(Data("note: no ensemble.json in \(plate.modelsDir): cells are merged with the built-in defaults, not a fitted config; copy models/ensemble.json there or fit one with `plateseg calibrate`\n".utf8))
        }
        let stale = try StaleResults.find(in: db, plate: name, modelsDir: plate.modelsDir)
        if !stale.isEmpty {
            let note = redoStale
                ? "\(stale.describe(plate: name)): \(try stale.redo(in: db)) job(s) queued again, with the merges that read them\n"
                : "note: \(stale.describe(plate: name)) than those in \(plate.modelsDir) now; their cells are kept. Add --redo-stale to run them again.\n"
            FileHandle.standardOutput.write(Data(note.utf8))
        }
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        // oneDNN runs on OpenMP: spinning threads at barriers waste a shared core, and N workers
        // of T threads each should not ask for more than the machine's cores. A user's own
        // settings win.
        var environment = ProcessInfo.processInfo.environment
        let cores = ProcessInfo.processInfo.activeProcessorCount
        if environment["OMP_WAIT_POLICY"] == nil { environment["OMP_WAIT_POLICY"] = "PASSIVE" }
        if environment["OMP_NUM_THREADS"] == nil { environment["OMP_NUM_THREADS"] = "\(max(1, cores / max(1, workers)))" }
        // Through the environment, not the command line, where `ps` would show a password in a URL.
        if case let .sqlite(path) = location { environment["PLATESEG_DB"] = path } else { environment["PLATESEG_DB"] = store.db }
        let supervisor = try WorkerSupervisor(
            executable: me, arguments: ["worker", "--models-dir", plate.modelsDir, "--plate", name, "--exit-when-drained", "--lease", "\(lease)",
                                   "--precision", precision.description],
            environment: environment, workers: workers)
        // Ctrl-C, SIGTERM or a closed terminal stop the workers gracefully: each finishes the
        // job in hand and exits; `plateseg run` again resumes. A second signal does the same.
        let signals = [SIGINT, SIGTERM, SIGHUP].map { sig in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .main)
            source.setEventHandler { supervisor.stop() }
            source.resume()
            return source
        }

        let started = Date()
        let bar = ProgressBar(plate: name)
        // Each refresh counts the plate's jobs through its own index: its cost does not grow with
        // the other plates in the database.
        while true {
            for line in try supervisor.check(db) { bar.note(line) }
            guard supervisor.anyRunning else { break }
            if let p = try db.progress(plate: name).first { bar.show(p) }
            RunLoop.main.run(until: Date().addingTimeInterval(1))
        }
        signals.forEach { $0.cancel() }
        let final = try db.progress(plate: name).first
        if let final { bar.finish(final) }
        try printSummary(db, plate: name)
        let elapsed = Date().timeIntervalSince(started)
        var usage = rusage(), own = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &usage)
        getrusage(RUSAGE_SELF.rawValue, &own)
        let merged = final?.imagesMerged ?? 0
        let cpu = Double(own.ru_utime.tv_sec + own.ru_stime.tv_sec) + Double(own.ru_utime.tv_usec + own.ru_stime.tv_usec) / 1e6
        print(String(format: "\n%.1f s for %d images merged in this run's plate (%.0f images/hour); peak worker memory %.0f MiB; this process %.1f s of CPU",
                     elapsed, merged, elapsed > 0 ? Double(merged) / elapsed * 3600 : 0, Double(usage.ru_maxrss) / 1024, cpu))
        let failed = try db.failedJobs(plate: name, limit: 20)
        let unreadable = try db.unreadableImages(plate: name)
        if !failed.isEmpty || !unreadable.isEmpty {
            print("\nProblems (see `plateseg status`, fix the cause, then `plateseg retry --plate \(name)` or submit again):")
            for u in unreadable { print("  image: \(u.error)") }
            for f in failed { print("  job \(f.id) \(f.kind) \(f.imagePath.map { FilePath($0).lastComponent?.string ?? $0 } ?? ""): \(f.error)") }
        }
        // Scripts can tell: 0 = every image segmented, 1 = something failed or was left undone;
        // the last line says which, and what is left.
        let complete = (final?.done ?? false) && failed.isEmpty && unreadable.isEmpty
        let died = supervisor.deaths > 0 ? "; \(supervisor.deaths) worker process(es) died and their jobs were queued again" : ""
        if complete {
            print("\nplate \(name): complete, \(merged) images segmented\(died)")
            return
        }
        var left: [String] = []
        let notRun = (final?.queued ?? 0) + (final?.running ?? 0) - (final?.blocked ?? 0)
        if supervisor.stopping {
            left.append("stopped with \(notRun) jobs not run" + ((final?.blocked ?? 0) > 0 ? " and \(final!.blocked) waiting on them" : ""))
        } else {
            if notRun > 0 { left.append("\(notRun) jobs not run (no worker left)") }
            if let final, final.blocked > 0 {
                left.append("\(final.blocked) jobs wait on " + (final.failed > 0 ? "failed ones" : "jobs not run"))
            }
        }
        if let final, final.failed > 0 { left.append("\(final.failed) jobs failed") }
        if !unreadable.isEmpty { left.append("\(unreadable.count) images unreadable") }
        print("\nplate \(name): incomplete: \(left.joined(separator: ", "))\(died); `plateseg status --plate \(name)` says why, `plateseg run` again resumes")
        throw ExitCode(1)
    }
}

func printSummary(_ db: any JobStore, plate: String) throws {
    let counts = try db.wellCounts(CellQuery(plate: plate))
    guard !counts.isEmpty else {
        print("No cells stored yet for plate \(plate).")
        return
    }
    let types = Array(Set(counts.map(\.cellType))).sorted()
    let wells = Array(Set(counts.map(\.well))).sorted()
    var rows = [["well"] + types + ["total"]]
    for well in wells {
        let inWell = counts.filter { $0.well == well }
        let byType = types.map { t in inWell.first { $0.cellType == t }?.cells ?? 0 }
        rows.append([well] + byType.map(String.init) + [String(byType.reduce(0, +))])
    }
    print("\nCells per well:")
    printTable(rows)
}

func printTable(_ rows: [[String]]) {
    guard let first = rows.first else { return }
    let widths = first.indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
    for (i, row) in rows.enumerated() {
        print(row.enumerated().map { c, v in c == 0 ? v.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                                                      : String(repeating: " ", count: widths[c] - v.count) + v }
              .joined(separator: "  "))
        if i == 0 { print(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
    }
}

/// One line, rewritten in place on a terminal; a line every few seconds into a log.
final class ProgressBar {
    private let plate: String
    private let started = Date()
    private var lastPrinted = Date.distantPast
    private let interactive = isatty(STDERR_FILENO) != 0
    private var firstDone: Int?

    init(plate: String) {
        self.plate = plate
    }

    func show(_ p: PlateProgress) {
        let now = Date()
        guard interactive || now.timeIntervalSince(lastPrinted) >= 5 else { return }
        lastPrinted = now
        let line = render(p, now: now)
        FileHandle.standardError.write(Data((interactive ? "\r\u{1B}[K" + line : line + "\n").utf8))
    }

    /// A line that stays, above the progress line.
    func note(_ line: String) {
        FileHandle.standardError.write(Data(((interactive ? "\r\u{1B}[K" : "") + line + "\n").utf8))
    }

    func finish(_ p: PlateProgress) {
        let line = render(p, now: Date())
        FileHandle.standardError.write(Data(((interactive ? "\r\u{1B}[K" : "") + line + "\n").utf8))
    }

    private func render(_ p: PlateProgress, now: Date) -> String {
        let done = p.succeeded + p.failed
        if firstDone == nil { firstDone = done }
        let elapsed = now.timeIntervalSince(started)
        let rate = elapsed > 1 ? Double(done - (firstDone ?? 0)) / elapsed : 0
        let left = p.queued + p.running
        let eta = rate > 0 ? format(Double(left) / rate) : "--:--"
        let width = 30
        let filled = p.total > 0 ? width * done / p.total : 0
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let images = p.images - p.unreadableImages
        return "\(plate) [\(bar)] images \(p.imagesMerged)/\(images)  jobs \(done)/\(p.total)  \(p.running) running  \(String(format: "%.1f", rate)) jobs/s  ETA \(eta)  failed \(p.failed)"
    }

    private func format(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
