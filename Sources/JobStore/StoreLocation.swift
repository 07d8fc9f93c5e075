import Foundation

/// What `--db` (or `PLATESEG_DB`) names: a SQLite file on this machine, or a PostgreSQL database
/// that workers on many machines share.
public enum StoreLocation: Sendable, Equatable {
    case sqlite(path: String)
    case postgres(PostgresAddress)

    /// A `postgres://` or `postgresql://` URL is PostgreSQL; anything else without a scheme is a file path.
    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else {
            throw JobStoreError.database(path: "--db", reason: "is empty; pass a SQLite file path or a postgres://user@host:port/database URL")
        }
        if let schemeEnd = trimmed.range(of: "://") {
            let scheme = trimmed[..<schemeEnd.lowerBound].lowercased()
            guard scheme == "postgres" || scheme == "postgresql" else {
                throw JobStoreError.database(
                    path: Self.redact(trimmed),
                    reason: "is neither a file path nor a postgres:// URL; pass a SQLite file path or postgres://user@host:port/database")
            }
            self = .postgres(try PostgresAddress(url: trimmed))
        } else {
            self = .sqlite(path: URL(fileURLWithPath: trimmed).standardizedFileURL.path)
        }
    }

    /// Fit for logs, status and reports: never a password.
    public var description: String {
        switch self {
        case let .sqlite(path): return path
        case let .postgres(address): return address.redacted
        }
    }

    /// A URL with its password replaced by `***`, or the text unchanged when it has none.
    static func redact(_ text: String) -> String {
        guard let schemeEnd = text.range(of: "://"), let at = text[schemeEnd.upperBound...].firstIndex(of: "@") else { return text }
        let userInfo = text[schemeEnd.upperBound..<at]
        guard let colon = userInfo.firstIndex(of: ":") else { return text }
        return String(text[..<colon]) + ":***" + String(text[at...])
    }
}

/// Where a PostgreSQL database is and who connects. The password comes from the URL, else
/// `PGPASSWORD`, else the `~/.pgpass` file (or `PGPASSFILE`), as with PostgreSQL's own tools;
/// it is never part of what is shown.
public struct PostgresAddress: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var user: String
    public var database: String
    var password: String?
    var tls: TLSMode
    /// Seconds allowed to connect, and for one round trip of a queue operation: past it the
    /// connection is dropped and the operation fails as `unavailable`, so that a cut network
    /// cannot hang a worker on a lease it no longer holds.
    var timeout: Double
    var passwordInURL: Bool

    enum TLSMode: String, Sendable {
        case disable, prefer, require
    }

    init(url text: String, environment: [String: String] = ProcessInfo.processInfo.environment,
         home: String = NSHomeDirectory()) throws {
        let shown = StoreLocation.redact(text)
        func bad(_ why: String) -> JobStoreError {
            JobStoreError.database(path: shown, reason: "\(why); the form is postgres://user@host:port/database")
        }
        guard let url = URLComponents(string: text) else { throw bad("is not a valid URL") }
        guard let host = url.host, !host.isEmpty else { throw bad("names no host") }
        self.host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        port = url.port ?? Int(environment["PGPORT"] ?? "") ?? 5432
        user = url.user?.removingPercentEncoding ?? environment["PGUSER"] ?? NSUserName()
        let path = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        database = path.isEmpty ? user : (path.removingPercentEncoding ?? path)
        var tls = TLSMode.prefer
        var timeout = 10.0
        for item in url.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                switch item.value ?? "" {
                case "disable", "allow": tls = .disable
                case "prefer": tls = .prefer
                case "require": tls = .require
                default: throw bad("sslmode=\(item.value ?? "") is not one of disable, prefer, require")
                }
            case "connect_timeout":
                guard let seconds = Double(item.value ?? ""), seconds > 0 else { throw bad("connect_timeout must be a number of seconds above 0") }
                timeout = seconds
            case "application_name":
                break
            default:
                throw bad("unknown parameter \(item.name) (known: sslmode, connect_timeout, application_name)")
            }
        }
        self.tls = tls
        self.timeout = timeout
        if let p = url.password {
            password = p.removingPercentEncoding ?? p
            passwordInURL = true
        } else {
            passwordInURL = false
            password = environment["PGPASSWORD"]
                ?? PgPass.lookup(file: environment["PGPASSFILE"] ?? "\(home)/.pgpass",
                                 host: self.host, port: port, database: database, user: user)
        }
    }

    /// The URL as a user may see it.
    public var redacted: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "postgres://\(user)\(passwordInURL ? ":***" : "")@\(shownHost):\(port)/\(database)"
    }
}

/// Reads PostgreSQL's password file: lines `host:port:database:user:password`, `*` matching
/// anything, `\` escaping `:` and `\`. Like libpq, a file others can read is ignored.
enum PgPass {
    static func lookup(file: String, host: String, port: Int, database: String, user: String) -> String? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: file),
              let mode = attributes[.posixPermissions] as? Int, mode & 0o077 == 0,
              let text = try? String(contentsOfFile: file, encoding: .utf8)
        else { return nil }
        for line in text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            let fields = split(String(line))
            guard fields.count == 5 else { continue }
            let wanted = [host, String(port), database, user]
            if zip(fields.prefix(4), wanted).allSatisfy({ $0 == "*" || $0 == $1 }) { return fields[4] }
        }
        return nil
    }

    private static func split(_ line: String) -> [String] {
        var fields: [String] = []
        var current = ""
        var escaped = false
        for c in line {
            if escaped {
                current.append(c)
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else if c == ":" && fields.count < 4 {
                fields.append(current)
                current = ""
            } else {
                current.append(c)
            }
        }
        fields.append(current)
        return fields
    }
}

/// How a store keeps time and retries; tests inject a manual clock and short back-offs.
public struct StoreSettings: Sendable {
    public var clock: StoreClock
    public var retryPolicy: RetryPolicy
    /// Refuse to create a new SQLite file (commands that act on an existing plate).
    public var mustExist: Bool
    /// Only read: never create, migrate or write (status, query, export, report, eval, trace).
    public var readOnly: Bool

    public init(clock: StoreClock = .database, retryPolicy: RetryPolicy = .standard, mustExist: Bool = false, readOnly: Bool = false) {
        self.clock = clock
        self.retryPolicy = retryPolicy
        self.mustExist = mustExist
        self.readOnly = readOnly
    }
}

/// The one place that knows the drivers: opens the store `--db` names, bringing its schema up to
/// date (in one transaction: a failure leaves nothing half-made).
public func openJobStore(_ location: StoreLocation, settings: StoreSettings = StoreSettings()) throws -> any JobStore {
    let driver: any StoreDriver
    switch location {
    case let .sqlite(path): driver = try SQLiteDriver(path: path, mustExist: settings.mustExist, readOnly: settings.readOnly)
    case let .postgres(address): driver = try PostgresDriver(address: address, readOnly: settings.readOnly)
    }
    return PolicyStore(driver: driver, clock: settings.clock, retryPolicy: settings.retryPolicy)
}

public func openJobStore(_ text: String, settings: StoreSettings = StoreSettings()) throws -> any JobStore {
    try openJobStore(StoreLocation(parsing: text), settings: settings)
}
