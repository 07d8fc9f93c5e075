import Foundation
import JobStore
import Logging
import Worker

// plateseg-testworker --db PATH --lease SECONDS --log FILE [--loops N] [--exit-when-drained]
//                     [--clock-at SECONDS] [--gate FILE]
// Job kinds: "sleep" ({"ms": N}) sleeps then returns an artifact; "fail" always throws.
// Every execution appends "start|end <job> <pid>" to the log file so tests can see overlaps.
// --clock-at: the store's clock stands still at that time (seconds since 1970), so no lease
// expires while this process runs however slow the machine, and leases of earlier processes
// that end before it are expired to it. --gate: a job, once started, ends only when FILE exists.

struct SleepArgs: Codable { var ms: Int }

final class EventLog: Sendable {
    let path: String
    init(path: String) { self.path = path }

    func write(_ line: String) {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        guard fd >= 0 else { return }
        _ = (line + "\n").withCString { Foundation.write(fd, $0, strlen($0)) }
        close(fd)
    }
}

struct SleepHandler: JobHandler {
    let log: EventLog
    let gate: String?

    func run(_ job: ClaimedJob) throws -> JobResult {
        let args = try SleepArgs(jobArgs: job.args)
        let pid = ProcessInfo.processInfo.processIdentifier
        log.write("start \(job.id) \(pid)")
        Thread.sleep(forTimeInterval: Double(args.ms) / 1000)
        while let gate, !FileManager.default.fileExists(atPath: gate) { Thread.sleep(forTimeInterval: 0.01) }
        log.write("end \(job.id) \(pid)")
        return JobResult(artifact: Array("job \(job.id)".utf8))
    }
}

struct FailHandler: JobHandler {
    struct AlwaysFails: Error, CustomStringConvertible { var description: String { "this job always fails" } }
    func run(_ job: ClaimedJob) throws -> JobResult { throw AlwaysFails() }
}

var arguments = [String: String]()
var flags = Set<String>()
var it = CommandLine.arguments.dropFirst().makeIterator()
while let a = it.next() {
    if a == "--exit-when-drained" { flags.insert(a) } else { arguments[a] = it.next() }
}
guard let db = arguments["--db"], let logPath = arguments["--log"] else {
    FileHandle.standardError.write(Data("usage: plateseg-testworker --db PATH --log FILE [--lease S] [--exit-when-drained]\n".utf8))
    exit(2)
}
let delay = Double(arguments["--retry-delay"] ?? "0") ?? 0
let clock: StoreClock = arguments["--clock-at"].flatMap(Double.init).map { .manual(ManualClock($0)) } ?? .database
let store = try openJobStore(db, settings: StoreSettings(clock: clock, retryPolicy: RetryPolicy { _ in delay }))
let log = EventLog(path: logPath)
LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
let logger = Logger(label: "testworker")
// Loops of one process share its store, as `plateseg worker --concurrency N` does.
let loops = (0..<(Int(arguments["--loops"] ?? "1") ?? 1)).map { i in
    var options = WorkerLoop.Options(owner: "test:\(ProcessInfo.processInfo.processIdentifier):\(i)")
    options.leaseSeconds = Double(arguments["--lease"] ?? "5") ?? 5
    options.idlePollSeconds = 0.05
    options.exitWhenDrained = flags.contains("--exit-when-drained")
    return WorkerLoop(store: store, handlers: ["sleep": SleepHandler(log: log, gate: arguments["--gate"]), "fail": FailHandler()], options: options, logger: logger)
}
WorkerProcess.run(loops, logger: logger)
