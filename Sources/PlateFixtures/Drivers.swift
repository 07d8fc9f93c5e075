import Foundation
import JobStore
import Synchronization

/// The drivers every store test runs against: a SQLite file, and a database on the PostgreSQL
/// server that `make test` starts (ops/postgres/test-server.sh). Without that server the
/// PostgreSQL half fails; it is never skipped.
public enum Driver: String, CaseIterable, Sendable {
    case sqlite, postgres

    /// A new, empty database: a file path or a URL, as `--db` takes it.
    public func freshLocation() throws -> String {
        switch self {
        case .sqlite: return temporaryFolder().appendingPathComponent("jobs.sqlite").path
        case .postgres: return try TestPostgres.freshDatabase()
        }
    }

    /// A store on a new, empty database.
    public func makeStore(clock: StoreClock = .database, retryPolicy: RetryPolicy = .immediate) throws -> any JobStore {
        try openJobStore(freshLocation(), settings: StoreSettings(clock: clock, retryPolicy: retryPolicy))
    }
}

/// A new folder under the temporary directory.
public func temporaryFolder(_ prefix: String = "plateseg-tests") -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

public struct TestSetupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The test PostgreSQL server: its admin URL comes from `PLATESEG_TEST_POSTGRES`.
public enum TestPostgres {
    public static var adminURL: String {
        get throws {
            guard let url = ProcessInfo.processInfo.environment["PLATESEG_TEST_POSTGRES"], !url.isEmpty else {
                throw TestSetupError("PLATESEG_TEST_POSTGRES is not set: run the tests with `make test`, or under ops/postgres/test-server.sh")
            }
            return url
        }
    }

    /// Creates a database of its own for one test and returns its URL.
    public static func freshDatabase() throws -> String {
        let admin = try adminURL
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try psql(admin, "CREATE DATABASE \(name)")
        guard let slash = admin.range(of: "/", options: .backwards) else { throw TestSetupError("\(admin): no database in the URL") }
        return admin[..<slash.upperBound] + name
    }

    /// Runs SQL with psql; throws with psql's message if it fails.
    @discardableResult
    public static func psql(_ url: String, _ sql: String) throws -> String {
        try psqlOutputs(url, sql).output
    }

    /// What the server said besides the rows (notices, `LOG` lines under `client_min_messages`).
    public static func psqlMessages(_ url: String, _ sql: String) throws -> String {
        try psqlOutputs(url, sql).messages
    }

    private static func psqlOutputs(_ url: String, _ sql: String) throws -> (output: String, messages: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
        p.arguments = [url, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Read both while psql runs: a full pipe would stop it.
        let errors = Mutex(Data())
        let read = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            errors.withLock { $0 = err.fileHandleForReading.readDataToEndOfFile() }
            read.signal()
        }
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        read.wait()
        p.waitUntilExit()
        let messages = String(decoding: errors.withLock { $0 }, as: UTF8.self)
        guard p.terminationStatus == 0 else { throw TestSetupError("psql: \(messages)") }
        return (output.trimmingCharacters(in: .whitespacesAndNewlines), messages)
    }

    /// `pg_ctl restart -m immediate`: the server dies as in a crash and starts again. It replays
    /// its write-ahead log before it answers, which on a busy machine took longer than
    /// pg_ctl's default minute: it may take ten.
    public static func crashAndRestart() throws {
        guard let pgctl = ProcessInfo.processInfo.environment["PLATESEG_TEST_PGCTL"] else {
            throw TestSetupError("PLATESEG_TEST_PGCTL is not set: run under ops/postgres/test-server.sh")
        }
        let status = try shell("\(pgctl) -w -t 600 -m immediate restart >/dev/null")
        guard status == 0 else { throw TestSetupError("pg_ctl restart failed (\(status))") }
    }
}

/// Runs a shell command and waits for it with waitpid: Foundation's `Process` never sees the
/// end of one that goes through `runuser` (its wait spins on), so this does not use it.
public func shell(_ command: String) throws -> Int32 {
    var pid: pid_t = 0
    let argv: [UnsafeMutablePointer<CChar>?] = ["/bin/sh", "-c", command].map { (arg: String) in strdup(arg) } + [nil]
    defer { argv.forEach { free($0) } }
    let spawned = posix_spawn(&pid, "/bin/sh", nil, nil, argv, environ)
    guard spawned == 0 else { throw TestSetupError("cannot run /bin/sh: \(String(cString: strerror(spawned)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
}
