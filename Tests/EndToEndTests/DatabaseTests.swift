import Foundation
import PlatesegTestSupport
import Testing

/// `--db` as users get it wrong, and what they are told: one line naming what and how to fix
/// it, a non-zero exit, and nothing half-made in the database.
@Suite struct DatabaseTests {
    func plateseg(_ args: [String], environment: [String: String] = [:], expectStatus: Int32) throws -> String {
        let p = Process()
        p.executableURL = products.appendingPathComponent("plateseg")
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == expectStatus, "\(args): \(text)")
        return text
    }

    /// The error line, without ArgumentParser's "Error: " and the usage it may add.
    func errorLine(_ output: String) -> String {
        output.split(separator: "\n").first { $0.hasPrefix("Error:") }.map(String.init) ?? output
    }

    @Test func anUnreachableServerIsNamedAndTheExitIsNonZero() throws {
        let out = try plateseg(["status", "--db", "postgres://plateseg@127.0.0.1:1/plates?connect_timeout=2"], expectStatus: 1)
        #expect(errorLine(out).contains("postgres://plateseg@127.0.0.1:1/plates: database unavailable"))
        #expect(errorLine(out).contains("Connection refused"))
    }

    @Test func aWrongPasswordSaysWhereThePasswordComesFrom() throws {
        let url = try Driver.postgres.freshLocation()
        let out = try plateseg(["status", "--db", url], environment: ["PGPASSWORD": "wrong"], expectStatus: 1)
        #expect(errorLine(out).contains("password authentication failed") && errorLine(out).contains("PGPASSWORD or ~/.pgpass"))
    }

    @Test func aPasswordInTheURLIsNeverPrinted() throws {
        let url = try Driver.postgres.freshLocation()
        let password = try #require(ProcessInfo.processInfo.environment["PGPASSWORD"])
        let withPassword = url.replacingOccurrences(of: "postgres://plateseg@", with: "postgres://plateseg:\(password)@")
        let plate = temporaryFolder("plateseg-plate")
        try FileManager.default.copyItem(at: demo.appendingPathComponent("plate/0f08d640930b.png"), to: plate.appendingPathComponent("P_B02_s1.png"))
        for args in [["submit", plate.path], ["status"], ["query"], ["status", "--plate", "none"]] {
            let out = try plateseg(args + ["--db", withPassword], environment: ["PGPASSWORD": ""], expectStatus: 0)
            #expect(!out.contains(password), "\(args) printed the password")
        }
        let failing = try plateseg(["report", "--db", withPassword, "--plate", "none", "--out", plate.appendingPathComponent("r").path],
                                   environment: ["PGPASSWORD": ""], expectStatus: 64)
        #expect(failing.contains("plateseg:***@") && !failing.contains(password))
    }

    @Test func aNewerSchemaIsRefusedAndLeftAlone() throws {
        let url = try Driver.postgres.freshLocation()
        _ = try plateseg(["status", "--db", url], expectStatus: 0)
        try TestPostgres.psql(url, "INSERT INTO plateseg_schema (version) VALUES (99)")
        let out = try plateseg(["status", "--db", url], expectStatus: 1)
        #expect(errorLine(out).contains("has schema version 99, newer than this plateseg's"))
        #expect(try TestPostgres.psql(url, "SELECT max(version) FROM plateseg_schema") == "99")
    }

    @Test func aDatabaseOfAnotherProgramGetsNoHalfSchema() throws {
        let url = try Driver.postgres.freshLocation()
        try TestPostgres.psql(url, "CREATE TABLE images (id serial PRIMARY KEY, name text)")
        let out = try plateseg(["status", "--db", url], expectStatus: 1)
        #expect(errorLine(out).contains("relation \"images\" already exists"))
        let tables = try TestPostgres.psql(url, "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'")
        #expect(tables == "images", "the migration rolled back whole")
    }

    @Test func otherSchemesAndFoldersAreRefused() throws {
        #expect(errorLine(try plateseg(["status", "--db", "mysql://lab@db/plates"], expectStatus: 1))
            .contains("is neither a file path nor a postgres:// URL"))
        let folder = temporaryFolder()
        #expect(errorLine(try plateseg(["status", "--db", folder.path], expectStatus: 1)).contains("is a folder"))
        let notSQLite = folder.appendingPathComponent("notes.txt")
        try "not a database".write(to: notSQLite, atomically: true, encoding: .utf8)
        #expect(errorLine(try plateseg(["status", "--db", notSQLite.path], expectStatus: 1)).contains("check the path and that it is a plateseg database"))
    }

    @Test func theDatabaseComesFromPLATESEG_DB() throws {
        let url = try Driver.postgres.freshLocation()
        _ = try plateseg(["status"], environment: ["PLATESEG_DB": url], expectStatus: 0)
        #expect(try TestPostgres.psql(url, "SELECT max(version) FROM plateseg_schema") == "2")
    }
}
