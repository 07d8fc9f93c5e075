import ArgumentParser
import Foundation
import JobStore
import Logging
import Models
import Pipeline
import Worker

struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Claim and run jobs until stopped (SIGTERM finishes the job in hand, then exits).")

    @OptionGroup var store: StoreOptions

    @Option(help: "Folder with yolox.safetensors, maskrcnn.safetensors, upernet.safetensors and ensemble.json.")
    var modelsDir: String = "models"

    @Option(help: "Jobs run at once in this process.")
    var concurrency: Int = 1

    @Option(help: "What the networks compute in: fp32, bf16, int8 (needs <network>.int8.json from calibrate-int8), or auto (per network the fastest this processor runs natively that keeps fp32's cells); then exceptions, e.g. bf16,upernet=int8.")
    var precision = PrecisionPlan()

    @Option(help: "Lease length in seconds; the worker heartbeats every third of it.")
    var lease: Double = 60

    @Flag(help: "Run one job, then exit.")
    var once = false

    @Flag(help: "Exit once no job is queued or running.")
    var exitWhenDrained = false

    @Option(help: "Work on this plate only (default: any plate).")
    var plate: String?

    @Option(name: .customLong("path-map"), help: ArgumentHelp(
        "Where this host sees a folder that images were submitted under (repeatable), e.g. /mnt/plates=/data/plates.",
        valueName: "from=to"))
    var pathMap: [String] = []

    func validate() throws {
        guard concurrency >= 1 else { throw ValidationError("--concurrency \(concurrency): give at least 1") }
        // Shorter than a few heartbeats' round trips, a lease would expire under a working job.
        guard lease >= 3, lease.isFinite else { throw ValidationError("--lease \(lease): give at least 3 seconds (a worker heartbeats every third of it)") }
    }

    func run() throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var logger = Logger(label: "plateseg.worker")
        logger.logLevel = ProcessInfo.processInfo.environment["PLATESEG_LOG"].flatMap { Logger.Level(rawValue: $0) } ?? .notice
        let paths: PathMap
        do { paths = try PathMap(parsing: pathMap) } catch { throw ValidationError("\(error)") }
        let db = try store.open()
        // A choice made here is told; one given (as `run` gives its workers) is only logged.
        let folder = ModelsFolder(modelsDir)
        logger.log(level: precision.all == .auto ? .notice : .info, "networks run in \(precision.describe(modelFiles: folder.modelFiles))")
        let handlers = try folder.jobHandlers(store: db, paths: paths, precision: precision)
        var options = WorkerLoop.Options(owner: WorkerOwner.name(slot: 0))
        (options.leaseSeconds, options.once, options.exitWhenDrained, options.plate) = (lease, once, exitWhenDrained, plate)
        if let failure = WorkerProcess.run(store: db, handlers: handlers, slots: concurrency, options: options, logger: logger) { throw failure }
    }
}

/// `--precision`: `fp32`, `bf16`, `int8` or `auto`, then `network=precision` exceptions.
extension PrecisionPlan: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}
