import Foundation
import Logging
import NIOPosix
import NIOSSL
import PostgresNIO
import Synchronization

/// A statement and its parameters, numbered as they are added: `s.query("... = \(s.bind(x))")`.
/// A class, so that the binds made while the text is built are there when `query` reads them.
final class Statement {
    private(set) var bindings = PostgresBindings()

    func bind<Value: PostgresDynamicTypeEncodable>(_ value: Value) -> String {
        bindings.append(value)
        return "$\(bindings.count)"
    }

    func bind<Value: PostgresDynamicTypeEncodable>(_ value: Value?) -> String {
        bindings.append(value)
        return "$\(bindings.count)"
    }

    func query(_ sql: String) -> PostgresQuery {
        PostgresQuery(unsafeSQL: sql, binds: bindings)
    }
}

/// The connections of one process to one database, opened on demand and kept for reuse by the
/// threads of the process (the worker loops, their heartbeats, a command's reads). Calls block
/// their thread: plateseg's workers are threads, not tasks. A connection that failed is closed,
/// never reused; the next call opens a new one, so a database that restarted or a network that
/// came back is picked up again by whoever asks next.
///
/// A process holds at most `limit` connections (one by default): a facility's hundreds of
/// worker processes fit the server's `max_connections`, and a heartbeat waits the few
/// milliseconds a claim or a completion takes.
final class PostgresConnections: Sendable {
    let address: PostgresAddress
    private let configuration: PostgresConnection.Configuration
    private let idle = Mutex<[PostgresConnection]>([])
    private let slots: DispatchSemaphore
    private let nextID = Atomic<Int>(1)
    private let logger = Logger(label: "plateseg.postgres", factory: { _ in SwiftLogNoOpLogHandler() })

    init(address: PostgresAddress, limit: Int = 1) throws {
        self.address = address
        slots = DispatchSemaphore(value: max(1, limit))
        let tls: PostgresConnection.Configuration.TLS
        switch address.tls {
        case .disable:
            tls = .disable
        case .prefer, .require:
            // As PostgreSQL's own clients do for these modes: encrypted, certificate not verified.
            var config = TLSConfiguration.makeClientConfiguration()
            config.certificateVerification = .none
            let context = try NIOSSLContext(configuration: config)
            tls = address.tls == .require ? .require(context) : .prefer(context)
        }
        var configuration = PostgresConnection.Configuration(
            host: address.host, port: address.port, username: address.user, password: address.password,
            database: address.database, tls: tls)
        configuration.options.connectTimeout = .milliseconds(Int64(address.timeout * 1000))
        // plateseg's statements are short, or read one plate: compiling them to machine code
        // (the planner's estimate of a status over twenty plates passes `jit_above_cost`) costs
        // a third of a second, more than running them.
        configuration.options.additionalStartupParameters = [("jit", "off")]
        self.configuration = configuration
    }

    deinit {
        for connection in idle.withLock({ $0 }) { Self.drop(connection) }
    }

    /// Closes without waiting: the connection is done with, whatever state it is in.
    private static func drop(_ connection: PostgresConnection) {
        let closing: EventLoopFuture<Void> = connection.close()
        // Held until closed: a connection may not be freed open.
        closing.whenComplete { _ in withExtendedLifetime(connection) {} }
    }

    /// Runs `body` on one connection. A connection whose call failed as `unavailable` is dropped.
    func withConnection<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        slots.wait()
        defer { slots.signal() }
        let connection = try checkout()
        do {
            let value = try body(connection)
            idle.withLock { $0.append(connection) }
            return value
        } catch {
            if case JobStoreError.unavailable = error { Self.drop(connection) } else { idle.withLock { $0.append(connection) } }
            throw error
        }
    }

    /// One statement. `timed`: bounded by the address's timeout (queue operations: a lease must
    /// never wait on a cut network); reads that may be long (a whole plate's cells) are not.
    func run(_ query: PostgresQuery, on connection: PostgresConnection, timed: Bool = true) throws -> PostgresQueryResult {
        let loop = connection.eventLoop
        let timeout = TimeAmount.milliseconds(Int64(address.timeout * 1000))
        let logger = self.logger
        // The query and its timer start on the connection's event loop in one hop: a queue
        // operation costs one wake-up of the loop and one of this thread.
        let result = loop.flatSubmit {
            let answer = connection.query(query, logger: logger)
            if timed {
                let timer = loop.scheduleTask(in: timeout) { Self.drop(connection) }
                answer.whenComplete { _ in timer.cancel() }
            }
            return answer
        }
        do {
            return try result.wait()
        } catch {
            throw classify(error)
        }
    }

    func run(_ query: PostgresQuery, timed: Bool = true) throws -> PostgresQueryResult {
        try withConnection { try run(query, on: $0, timed: timed) }
    }

    /// `body` between BEGIN and COMMIT; any error rolls back (or drops the connection).
    func transaction<T>(timed: Bool = true, _ body: (Transaction) throws -> T) throws -> T {
        try withConnection { connection in
            _ = try run("BEGIN", on: connection, timed: timed)
            do {
                let value = try body(Transaction(connections: self, connection: connection, timed: timed))
                _ = try run("COMMIT", on: connection, timed: timed)
                return value
            } catch {
                // A broken connection is dropped by withConnection; a live one ends the transaction
                // before it is reused (and if even that fails, that failure drops it).
                if case JobStoreError.unavailable = error { throw error }
                _ = try run("ROLLBACK", on: connection, timed: timed)
                throw error
            }
        }
    }

    struct Transaction {
        let connections: PostgresConnections
        let connection: PostgresConnection
        let timed: Bool

        @discardableResult
        func run(_ query: PostgresQuery) throws -> PostgresQueryResult {
            try connections.run(query, on: connection, timed: timed)
        }
    }

    /// An idle connection, or a new one. A server that refuses connections for a moment (it is
    /// restarting, or starting up) is asked again with back-off for up to the address's timeout.
    private func checkout() throws -> PostgresConnection {
        while let connection = idle.withLock({ $0.popLast() }) {
            if !connection.isClosed { return connection }
        }
        let giveUp = Date().addingTimeInterval(address.timeout)
        var wait = 0.05
        while true {
            let id = nextID.add(1, ordering: .relaxed).oldValue
            do {
                return try PostgresConnection.connect(
                    on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration, id: id, logger: logger
                ).wait()
            } catch {
                let failure = classify(error)
                guard case .unavailable = failure, Date().addingTimeInterval(wait) < giveUp else { throw failure }
                Thread.sleep(forTimeInterval: wait)
                wait = min(wait * 2, 1)
            }
        }
    }

    /// Transient errors (the connection, the server going down or starting, a lost race) are
    /// `unavailable`: the caller may try again. The rest name what is wrong and how to fix it.
    private func classify(_ error: any Error) -> JobStoreError {
        let location = address.redacted
        guard let e = error as? PSQLError else {
            return .unavailable(location: location, reason: "\(error)")
        }
        guard e.code == .server, let info = e.serverInfo else {
            let cause = e.underlying.map { "\($0)" } ?? e.code.description
            return .unavailable(location: location, reason: "connection: \(cause)")
        }
        let state = info[.sqlState] ?? ""
        let message = info[.message] ?? "server error"
        switch state {
        case "28P01", "28000":
            return .database(path: location, reason: "\(message); give the password in PGPASSWORD or ~/.pgpass (never in a shared script)")
        case "3D000":
            return .database(path: location, reason: "\(message); create it (createdb \(address.database)) or name another database in the URL")
        default:
            break
        }
        // 08: connection exception; 57P: the server is shutting down or starting; 53300: too
        // many connections; 40001/40P01: serialization failure or deadlock, worth a retry.
        if state.hasPrefix("08") || state.hasPrefix("57P") || state == "53300" || state == "40001" || state == "40P01" {
            return .unavailable(location: location, reason: "\(message) (SQLSTATE \(state))")
        }
        return .database(path: location, reason: "\(message) (SQLSTATE \(state))")
    }
}
