import Foundation
import Imaging
import JobStore
import Models
import Worker

/// `plateseg run` on one machine: worker processes of this program on one plate until it is
/// drained, and what is left when they are gone.
public struct PlateRun: Sendable {
    public let plate: String
    public let modelsDir: String

    public init(plate: String, modelsDir: String) {
        self.plate = plate
        self.modelsDir = modelsDir
    }

    /// What a user should know before the workers start: cells merged without a fitted config,
    /// results that other model files made (queued again when `redoStale`).
    public func notes(_ db: any JobStore, redoStale: Bool) throws -> [String] {
        var notes: [String] = []
        if !ModelsFolder(modelsDir).hasEnsembleConfig {
            notes.append("note: no ensemble.json in \(modelsDir): cells are merged with the built-in defaults, not a fitted config; copy models/ensemble.json there or fit one with `plateseg calibrate`")
        }
        let stale = try StaleResults.find(in: db, plate: plate, modelsDir: modelsDir)
        if !stale.isEmpty {
            notes.append(redoStale
                ? "\(stale.describe(plate: plate)): \(try stale.redo(in: db)) job(s) queued again, with the merges that read them"
                : "note: \(stale.describe(plate: plate)) than those in \(modelsDir) now; their cells are kept. Add --redo-stale to run them again.")
        }
        return notes
    }

    /// `workers` processes of `executable` (this program's `worker`) on the plate, each leaving
    /// once nothing of it is left to run. `database` travels in the environment, not on the
    /// command line, where `ps` would show a password in a URL.
    public func startWorkers(executable: URL, database: String, workers: Int, lease: Double, precision: PrecisionPlan,
                             environment inherited: [String: String] = ProcessInfo.processInfo.environment,
                             cores: Int = ProcessInfo.processInfo.activeProcessorCount) throws -> WorkerSupervisor {
        var environment = inherited
        // oneDNN runs on OpenMP: spinning threads at barriers waste a shared core, and N workers
        // of T threads each should not ask for more than the machine's cores. A user's own
        // settings win.
        if environment["OMP_WAIT_POLICY"] == nil { environment["OMP_WAIT_POLICY"] = "PASSIVE" }
        if environment["OMP_NUM_THREADS"] == nil { environment["OMP_NUM_THREADS"] = "\(max(1, cores / max(1, workers)))" }
        environment["PLATESEG_DB"] = database
        return try WorkerSupervisor(
            executable: executable,
            arguments: ["worker", "--models-dir", modelsDir, "--plate", plate, "--exit-when-drained", "--lease", "\(lease)",
                        "--precision", precision.description],
            environment: environment, workers: workers)
    }

    /// Watches the workers until none is left: a dead one is named (and replaced), the bar
    /// refreshed every second. Ctrl-C, SIGTERM or a closed terminal stop the workers gracefully:
    /// each finishes the job in hand and exits; `plateseg run` again resumes. Returns the
    /// plate's progress at the end. Call it on the main thread: the signals are taken there, and
    /// the wait between looks runs the main run loop.
    public func watch(_ supervisor: WorkerSupervisor, db: any JobStore, bar: ProgressBar) throws -> PlateProgress? {
        let signals = [SIGINT, SIGTERM, SIGHUP].map { sig in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .main)
            source.setEventHandler { supervisor.stop() }
            source.resume()
            return source
        }
        defer { signals.forEach { $0.cancel() } }
        // Each refresh counts the plate's jobs through its own index: its cost does not grow with
        // the other plates in the database.
        while true {
            for line in try supervisor.check(db) { bar.note(line) }
            guard supervisor.anyRunning else { break }
            if let p = try db.progress(plate: plate).first { bar.show(p) }
            RunLoop.main.run(until: Date().addingTimeInterval(1))
        }
        let final = try db.progress(plate: plate).first
        if let final { bar.finish(final) }
        return final
    }

    /// Cells per well and type of the plate, a row per well with a total; nil before any is stored.
    public func wellTable(_ db: any JobStore) throws -> [[String]]? {
        let counts = try db.wellCounts(CellQuery(plate: plate))
        guard !counts.isEmpty else { return nil }
        let types = Array(Set(counts.map(\.cellType))).sorted()
        var rows = [["well"] + types + ["total"]]
        for well in Array(Set(counts.map(\.well))).sorted() {
            let inWell = counts.filter { $0.well == well }
            let byType = types.map { t in inWell.first { $0.cellType == t }?.cells ?? 0 }
            rows.append([well] + byType.map(String.init) + [String(byType.reduce(0, +))])
        }
        return rows
    }

    /// How a run ended: whether every image was segmented, the problems to fix, and one last
    /// line that says what is left.
    public struct Outcome: Sendable {
        public var complete: Bool
        public var problems: [String]
        public var verdict: String
    }

    /// `stopped`: the user stopped the workers; `deaths`: worker processes that died.
    public func outcome(_ db: any JobStore, final: PlateProgress?, stopped: Bool, deaths: Int) throws -> Outcome {
        let failed = try db.failedJobs(plate: plate, limit: 20)
        let unreadable = try db.unreadableImages(plate: plate)
        let problems = unreadable.map { "image: \($0.error)" }
            + failed.map { "job \($0.id) \($0.kind) \($0.imagePath.map(PathName.file) ?? ""): \($0.error)" }
        let died = deaths > 0 ? "; \(deaths) worker process(es) died and their jobs were queued again" : ""
        if (final?.done ?? false) && failed.isEmpty && unreadable.isEmpty {
            return Outcome(complete: true, problems: [], verdict: "plate \(plate): complete, \(final?.imagesMerged ?? 0) images segmented\(died)")
        }
        var left: [String] = []
        let blocked = final?.blocked ?? 0
        let notRun = (final?.queued ?? 0) + (final?.running ?? 0) - blocked
        if stopped {
            left.append("stopped with \(notRun) jobs not run" + (blocked > 0 ? " and \(blocked) waiting on them" : ""))
        } else {
            if notRun > 0 { left.append("\(notRun) jobs not run (no worker left)") }
            if blocked > 0 { left.append("\(blocked) jobs wait on " + ((final?.failed ?? 0) > 0 ? "failed ones" : "jobs not run")) }
        }
        if let final, final.failed > 0 { left.append("\(final.failed) jobs failed") }
        if !unreadable.isEmpty { left.append("\(unreadable.count) images unreadable") }
        return Outcome(complete: false, problems: problems,
                       verdict: "plate \(plate): incomplete: \(left.joined(separator: ", "))\(died); `plateseg status --plate \(plate)` says why, `plateseg run` again resumes")
    }
}

extension PlateRun {
    /// Time, images an hour, the workers' peak memory and this process's own CPU time, for the
    /// summary of a run that took `seconds` and merged `merged` images.
    public static func resourceLine(seconds: Double, merged: Int) -> String {
        var usage = rusage(), own = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &usage)
        getrusage(RUSAGE_SELF.rawValue, &own)
        let cpu = Double(own.ru_utime.tv_sec + own.ru_stime.tv_sec) + Double(own.ru_utime.tv_usec + own.ru_stime.tv_usec) / 1e6
        return String(format: "%.1f s for %d images merged in this run's plate (%.0f images/hour); peak worker memory %.0f MiB; this process %.1f s of CPU",
                      seconds, merged, seconds > 0 ? Double(merged) / seconds * 3600 : 0, Double(usage.ru_maxrss) / 1024, cpu)
    }
}

/// A plate's progress in one line, rewritten in place on a terminal and written every few
/// seconds into a log: a bar, images merged, jobs done, the rate since the first look and the
/// time left at that rate.
public final class ProgressBar {
    private let plate: String
    private let started = Date()
    private var lastPrinted = Date.distantPast
    private let interactive = isatty(STDERR_FILENO) != 0
    private var firstDone: Int?

    public init(plate: String) { self.plate = plate }

    public func show(_ p: PlateProgress) {
        let now = Date()
        guard interactive || now.timeIntervalSince(lastPrinted) >= 5 else { return }
        lastPrinted = now
        let text = render(p, elapsed: now.timeIntervalSince(started))
        FileHandle.standardError.write(Data((interactive ? "\r\u{1B}[K" + text : text + "\n").utf8))
    }

    /// A line that stays, above the progress line.
    public func note(_ text: String) {
        FileHandle.standardError.write(Data(((interactive ? "\r\u{1B}[K" : "") + text + "\n").utf8))
    }

    public func finish(_ p: PlateProgress) { note(render(p, elapsed: Date().timeIntervalSince(started))) }

    func render(_ p: PlateProgress, elapsed: Double) -> String {
        let done = p.succeeded + p.failed
        if firstDone == nil { firstDone = done }
        let rate = elapsed > 1 ? Double(done - (firstDone ?? 0)) / elapsed : 0
        let eta = rate > 0 ? Self.clock(Double(p.queued + p.running) / rate) : "--:--"
        let width = 30
        let filled = p.total > 0 ? width * done / p.total : 0
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        return "\(plate) [\(bar)] images \(p.imagesMerged)/\(p.images - p.unreadableImages)  jobs \(done)/\(p.total)  \(p.running) running  \(String(format: "%.1f", rate)) jobs/s  ETA \(eta)  failed \(p.failed)"
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
