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
        let db = try store.open(mustExist: true)
        // On a terminal the screen is redrawn; into a pipe or a file each refresh is appended,
        // flushed at once (stdout is block-buffered there, and --watch never ends on its own).
        let terminal = isatty(STDOUT_FILENO) != 0
        repeat {
            if watch && terminal { print("\u{1B}[H\u{1B}[2J", terminator: "") }
            if watch && !terminal { print("--- \(Date())") }
            try show(db)
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
        var rows = [["plate", "images", "merged", "unreadable", "queued", "blocked", "running", "succeeded", "failed", "jobs/min"]]
        for p in plates {
            rows.append([p.plate, "\(p.images)", "\(p.imagesMerged)", "\(p.unreadableImages)", "\(p.queued)", "\(p.blocked)", "\(p.running)",
                         "\(p.succeeded)", "\(p.failed)", "\(p.finishedLastMinute)"])
        }
        printTable(rows)
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
        let images = try db.images(plate: plate)
        for name in Set(images.map(\.plate)).sorted() {
            let ofPlate = images.filter { $0.plate == name }
            let times = Set(ofPlate.filter(\.segmented).compactMap(\.timepoint)).sorted()
            if times.count > 1 || !times.isEmpty && plate != nil {
                let shown = times.count <= 8 ? times.map(\.label) : times.prefix(4).map(\.label) + ["…"] + times.suffix(3).map(\.label)
                print("\n\(name): \(times.count) time point(s): \(shown.joined(separator: ", "))")
            }
            let segmented = Set(ofPlate.filter(\.segmented).compactMap(\.channel)).sorted()
            var aside: [String: Int] = [:]
            for image in ofPlate where !image.segmented { aside[image.channel ?? "?", default: 0] += 1 }
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

    func validate() throws {
        if stale && (plate == nil || job != nil || failed) {
            throw ValidationError("--stale needs --plate and goes without --job and --failed")
        }
    }

    func run() throws {
        let db = try store.open(mustExist: true)
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
    @Argument(help: "Image file name (or path) as submitted.") var image: String

    func run() throws {
        let db = try store.open(mustExist: true)
        let matches = try db.images(plate: nil).filter { $0.path == image || ($0.path as NSString).lastPathComponent == image }
        guard !matches.isEmpty else { throw ValidationError("no image \(image) in \(db.location)") }
        for m in matches {
            let time = m.timepoint.map { "  time point \($0.label)" } ?? ""
            let channel = m.channel.map { "  channel \($0)" } ?? ""
            print("\(m.path)  plate \(m.plate)  well \(m.well ?? "?")  field \(m.field.map(String.init) ?? "?")\(time)\(channel)  \(m.contentHash)")
            for j in try db.provenance(imageID: m.id) {
                print("  job \(j.job) \(j.kind) \(j.args)")
                if let p = j.provenance { print("      from \(p)") }
            }
        }
    }
}
