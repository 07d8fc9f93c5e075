import ArgumentParser
import Foundation
import JobStore
import Models
import Pipeline
import Worker

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
        let night = PlateRun(plate: name, modelsDir: plate.modelsDir)
        // Unbuffered, so that it comes before the progress bar (stderr) also when piped to a log.
        say("plate \(name): \(s.newImages) new images (\(s.unreadableImages) unreadable), \(s.newJobs) new jobs; \(workers) workers; database \(db.location)")
        [s.tilingNote, s.changeNote].compactMap { $0 }.forEach(say)
        say("networks in \(precision.describe(modelFiles: plate.modelNames.map { "\(ModelsFolder(plate.modelsDir).path)/\($0).safetensors" }))")
        try night.notes(db, redoStale: redoStale).forEach(say)
        let database: String
        if case let .sqlite(path) = location { database = path } else { database = store.db }
        let supervisor = try night.startWorkers(executable: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath(),
                                                database: database, workers: workers, lease: lease, precision: precision)
        let started = Date()
        let final = try night.watch(supervisor, db: db, bar: ProgressBar(plate: name))
        if let table = try night.wellTable(db) {
            print("\nCells per well:")
            printTable(table)
        } else {
            print("No cells stored yet for plate \(name).")
        }
        print("\n" + PlateRun.resourceLine(seconds: Date().timeIntervalSince(started), merged: final?.imagesMerged ?? 0))
        let outcome = try night.outcome(db, final: final, stopped: supervisor.stopping, deaths: supervisor.deaths)
        if !outcome.problems.isEmpty {
            print("\nProblems (see `plateseg status`, fix the cause, then `plateseg retry --plate \(name)` or submit again):")
            outcome.problems.forEach { print("  \($0)") }
        }
        // Scripts can tell: 0 = every image segmented, 1 = something failed or was left undone;
        // the last line says which, and what is left.
        print("\n" + outcome.verdict)
        if !outcome.complete { throw ExitCode(1) }
    }

    private func say(_ line: String) { FileHandle.standardOutput.write(Data("\(line)\n".utf8)) }
}

func printTable(_ rows: [[String]]) { TextTable.lines(rows).forEach { print($0) } }
