import ArgumentParser
import Foundation
import JobStore
import Pipeline

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Jobs per plate by state, rate, and what failed and why.")

    @OptionGroup var store: StoreOptions

    @Option(help: "Only this plate.")
    var plate: String?

    @Option(help: "Folder with the models and ensemble.json results should come from; results made by other versions are named.")
    var modelsDir: String = "models"

    @Flag(help: "Refresh every two seconds until interrupted.")
    var watch = false

    func run() throws {
        // Every page of the tables shown here is read once: a damaged database is said here, not
        // found later by the query that reaches the damaged page.
        try store.openForReading().verify()
        // On a terminal the screen is redrawn; into a pipe or a file each refresh is appended,
        // flushed at once (stdout is block-buffered there, and --watch never ends on its own).
        let terminal = isatty(STDOUT_FILENO) != 0
        repeat {
            if watch && terminal { print("\u{1B}[H\u{1B}[2J", terminator: "") }
            if watch && !terminal { print("--- \(Date())") }
            // Opened afresh each time: a reader that found no writer at work reads the file as it
            // stood, and workers may have started since.
            try show(try store.openForReading())
            if watch {
                fflush(nil)
                Thread.sleep(forTimeInterval: 2)
            }
        } while watch
    }

    private func show(_ db: any JobStore) throws {
        let plates = try db.progress(plate: plate)
        if plates.isEmpty {
            print(plate.map { "No plate named \($0) in \(db.location)." } ?? "No plates in \(db.location).")
            return
        }
        let storage = Dictionary(try db.storage(plate: plate).map { ($0.plate, $0) }, uniquingKeysWith: { a, _ in a })
        var rows = [["plate", "images", "merged", "unreadable", "queued", "blocked", "running", "succeeded", "failed", "jobs/min", "stored"]]
        for p in plates {
            rows.append([p.plate, "\(p.images)", "\(p.imagesMerged)", "\(p.unreadableImages)", "\(p.queued)", "\(p.blocked)", "\(p.running)",
                         "\(p.succeeded)", "\(p.failed)", "\(p.finishedLastMinute)", storage[p.plate].map { megabytes($0.bytes) } ?? "-"])
        }
        printTable(rows)
        let total = try db.databaseBytes()
        let kept = storage.values.filter { $0.tileOutputs > 0 }.map { "\($0.plate) \($0.tileOutputs) (\(megabytes($0.tileOutputBytes)))" }
        print("database \(megabytes(total)) in all; stored = a plate's cells and the tile outputs it still holds"
              + (kept.isEmpty ? "" : "; tile outputs: " + kept.sorted().joined(separator: ", ")))
        try describeIdentity(db)
        let unreadable = try db.unreadableImages(plate: plate)
        if !unreadable.isEmpty {
            print("\nUnreadable images (no jobs were made for them):")
            for u in unreadable { print("  \(u.error)") }
        }
        list("Retrying (the last attempt failed; tried again automatically after a back-off):",
             try db.retryingJobs(plate: plate, limit: 50))
        list("Failed jobs (fix the cause, then `plateseg retry`):", try db.failedJobs(plate: plate, limit: 50))
        let stale = try StaleResults.find(in: db, plates: plates.map(\.plate), modelsDir: modelsDir)
        if !stale.isEmpty {
            print("\nMade by other model files than those in \(modelsDir) now (`plateseg retry --stale` runs them again):")
            for (plate, s) in stale.sorted(by: { $0.key < $1.key }) { print("  \(s.describe(plate: plate))") }
        }
    }

    /// Time points and channels: what a plate holds beyond wells and fields, and which images
    /// were left aside because their channel is not the one segmented.
    private func describeIdentity(_ db: any JobStore) throws {
        for identity in try db.identity(plate: plate) {
            let name = identity.plate
            let times = identity.timepoints
            if times.count > 1 || !times.isEmpty && plate != nil {
                let shown = times.count <= 8 ? times.map(\.label) : times.prefix(4).map(\.label) + ["…"] + times.suffix(3).map(\.label)
                print("\n\(name): \(times.count) time point(s): \(shown.joined(separator: ", "))")
            }
            let segmented = Set(identity.channels.filter(\.segmented).compactMap(\.channel)).sorted()
            var aside: [String: Int] = [:]
            for c in identity.channels where !c.segmented { aside[c.channel ?? "?", default: 0] += c.images }
            if !aside.isEmpty {
                let others = aside.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value) images)" }.joined(separator: ", ")
                print("\(name): channel \(segmented.joined(separator: ", ")) segmented; not segmented: \(others)")
            }
        }
    }

    private func list(_ title: String, _ jobs: [FailedJob]) {
        guard !jobs.isEmpty else { return }
        print("\n\(title)")
        for j in jobs {
            print("  job \(j.id) [\(j.plate)] \(j.kind) \(j.imagePath ?? "") after \(j.attempts) attempt(s): \(j.error)")
        }
    }
}

/// "112 MB": bytes as a person reads a database's size.
func megabytes(_ bytes: Int) -> String {
    bytes >= 10_000_000 ? "\(bytes / 1_000_000) MB" : String(format: "%.1f MB", Double(bytes) / 1e6)
}

struct Retry: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Put failed jobs (or one job) back in the queue with fresh attempts.")

    @OptionGroup var store: StoreOptions

    @Flag(help: "Every failed job (the default when no --job is given).")
    var failed = false

    @Option(help: "This job, whatever its state (unless running).")
    var job: Int64?

    @Option(help: "Only jobs of this plate.")
    var plate: String?

    @Flag(help: "The plate's results made by other model files or another ensemble.json than those in --models-dir (needs --plate).")
    var stale = false

    @Option(help: "With --stale: the folder whose model files and ensemble.json are current.")
    var modelsDir: String = "models"

    @Flag(help: "Keep the plate's tile outputs from now on (for `eval --model` and `calibrate`), and run again the tiles whose outputs were removed, with their merges (needs --plate).")
    var keepTileOutputs = false

    func validate() throws {
        if stale && (plate == nil || job != nil || failed) {
            throw ValidationError("--stale needs --plate and goes without --job and --failed")
        }
        if keepTileOutputs && (plate == nil || job != nil || failed || stale) {
            throw ValidationError("--keep-tile-outputs needs --plate and goes without --job, --failed and --stale")
        }
    }

    func run() throws {
        let db = try store.open(mustExist: true)
        if keepTileOutputs, let plate {
            guard try !db.progress(plate: plate).isEmpty else { throw ValidationError("--plate \(plate): no such plate in \(db.location)") }
            try db.setKeepTileOutputs(plate: plate, true)
            // A merge run again takes the tiles whose outputs were removed with it.
            let merges = try db.images(plate: plate).filter { $0.mergeState == .succeeded }.compactMap(\.mergeJobID)
            let n = try db.retry(RetrySelection(jobIDs: merges, failedOnly: false))
            print("plate \(plate) keeps its tile outputs from now on; \(n) job(s) queued again; start workers (`plateseg worker` or `plateseg run`) to run them")
            return
        }
        if stale, let plate {
            let found = try StaleResults.find(in: db, plate: plate, modelsDir: modelsDir)
            if !found.isEmpty { print(found.describe(plate: plate)) }
            print("\(try found.redo(in: db)) job(s) queued again; start workers (`plateseg worker` or `plateseg run`) to run them")
            return
        }
        let n = try db.retry(RetrySelection(jobID: job, plate: plate, failedOnly: job == nil || failed))
        print("\(n) job(s) queued again; start workers (`plateseg worker` or `plateseg run`) to run them")
    }
}

struct Trace: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Where an image's cells came from: the image's hash, its tile jobs and model files, the merge and its config.")

    @OptionGroup var store: StoreOptions
    @Option(help: "Only images of this plate.") var plate: String?
    @Argument(help: "The image: its path in the plate folder (as export and the report name it), or its file name if no other image has it.")
    var image: String

    func run() throws {
        let db = try store.openForReading()
        let names = ImageNames(try db.images(plate: plate), plates: try db.plates())
        guard let m = try names.image(named: image) else { throw CommandError("no image \(image) in \(db.location)\(plate.map { " plate \($0)" } ?? "")") }
        let time = m.timepoint.map { "  time point \($0.label)" } ?? ""
        let channel = m.channel.map { "  channel \($0)" } ?? ""
        print("\(names.name(of: m))  plate \(m.plate)  well \(m.well ?? "?")  field \(m.field.map(String.init) ?? "?")\(time)\(channel)  \(m.contentHash)")
        print("  file \(m.path)")
        for j in try db.provenance(imageID: m.id) {
            print("  job \(j.job) \(j.kind) \(j.args)")
            if let p = j.provenance { print("      from \(p)") }
        }
    }
}
