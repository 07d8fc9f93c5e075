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
        try StatusText.show(plate: plate, modelsDir: modelsDir, watch: watch, open: store.openForReading)
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
        var n = 0
        if keepTileOutputs, let plate {
            n = try asUsageError { try TileOutputs.keep(plate: plate, in: db) }
            print("plate \(plate) keeps its tile outputs from now on; ", terminator: "")
        } else if stale, let plate {
            let found = try StaleResults.find(in: db, plate: plate, modelsDir: modelsDir)
            if !found.isEmpty { print(found.describe(plate: plate)) }
            n = try found.redo(in: db)
        } else {
            n = try db.retry(RetrySelection(jobID: job, plate: plate, failedOnly: job == nil || failed))
        }
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
        try ImageTrace.lines(db, image: image, plate: plate).forEach { print($0) }
    }
}
