import Foundation
@testable import JobStore
import Testing

@Suite struct StoreLocationTests {
    @Test func aPathIsSQLiteAndAPostgresURLIsPostgres() throws {
        #expect(try StoreLocation(parsing: "plates/run.sqlite") == .sqlite(path: FileManager.default.currentDirectoryPath + "/plates/run.sqlite"))
        guard case let .postgres(a) = try StoreLocation(parsing: "postgresql://lab@db.example.org:6543/plates?sslmode=disable") else {
            Issue.record("not postgres")
            return
        }
        #expect(a.host == "db.example.org" && a.port == 6543 && a.user == "lab" && a.database == "plates" && a.tls == .disable)
        #expect(a.redacted == "postgres://lab@db.example.org:6543/plates")
    }

    @Test func defaultsFollowPostgreSQLsOwnTools() throws {
        let a = try PostgresAddress(url: "postgres://db", environment: ["PGUSER": "imaging", "PGPORT": "5433"], home: "/nonexistent")
        #expect(a.user == "imaging" && a.port == 5433 && a.database == "imaging" && a.tls == .prefer && a.timeout == 10)
        #expect(a.password == nil)
    }

    @Test func aPasswordIsNeverShown() throws {
        let text = "postgres://lab:s3cret@10.0.0.5/plates"
        let location = try StoreLocation(parsing: text)
        #expect(location.description == "postgres://lab:***@10.0.0.5:5432/plates")
        guard case let .postgres(a) = location else { return }
        #expect(a.password == "s3cret")
        #expect(StoreLocation.redact(text) == "postgres://lab:***@10.0.0.5/plates")
        #expect(throws: JobStoreError.self) { try StoreLocation(parsing: "postgres://lab:s3cret@10.0.0.5/plates?sslmode=maybe") }
        do { _ = try StoreLocation(parsing: "postgres://lab:s3cret@10.0.0.5/plates?sslmode=maybe") } catch {
            #expect(!"\(error)".contains("s3cret"))
        }
    }

    @Test func thePasswordComesFromPGPASSWORDThenThePasswordFile() throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("pgpass-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        let file = home.appendingPathComponent(".pgpass").path
        try "# comment\nother:*:*:*:nope\n10.0.0.5:5432:plates:lab:from\\:file\n*:*:*:lab:fallback\n".write(toFile: file, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file)
        let url = "postgres://lab@10.0.0.5/plates"
        #expect(try PostgresAddress(url: url, environment: ["PGPASSWORD": "env"], home: home.path).password == "env")
        #expect(try PostgresAddress(url: url, environment: [:], home: home.path).password == "from:file")
        #expect(try PostgresAddress(url: "postgres://lab@10.0.0.6/x", environment: [:], home: home.path).password == "fallback")
        // Like libpq: a password file others can read is not used.
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: file)
        #expect(try PostgresAddress(url: url, environment: [:], home: home.path).password == nil)
    }

    @Test func badLocationsSayWhatIsWrong() {
        for (text, words) in [
            ("mysql://lab@db/plates", "neither a file path nor a postgres:// URL"),
            ("postgres:///plates", "names no host"),
            ("postgres://db/plates?pool=3", "unknown parameter pool"),
            ("postgres://db/plates?connect_timeout=0", "connect_timeout"),
            ("", "is empty"),
        ] {
            #expect { try StoreLocation(parsing: text) } throws: { "\($0)".contains(words) }
        }
    }
}
