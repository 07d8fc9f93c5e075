import Foundation
import PlateFixtures
import Testing

/// `--db` as users get it wrong, and what they are told: one line naming what and how to fix
/// it, a non-zero exit, and nothing half-made in the database.
@Suite struct DatabaseTests {
    func plateseg(_ args: [String], environment: [String: String] = [:], expectStatus: Int32) throws -> String {
        let (status, text) = try launch(products.appendingPathComponent("plateseg"), args, environment: environment)
        #expect(status == expectStatus, "\(args): \(text)")
        return text
    }

    /// Runs a program to its end: its exit status, and its standard output and error together.
    func launch(_ executable: URL, _ args: [String], environment: [String: String] = [:]) throws -> (status: Int32, text: String) {
        let p = Process()
        p.executableURL = executable
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, text)
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
                                   environment: ["PGPASSWORD": ""], expectStatus: 1)
        #expect(failing.contains("plateseg:***@") && !failing.contains(password))
    }

    @Test func aNewerSchemaIsRefusedAndLeftAlone() throws {
        let url = try Driver.postgres.freshLocation()
        // A reader makes no schema; a command that writes does.
        #expect(errorLine(try plateseg(["status", "--db", url], expectStatus: 1)).contains("holds no plateseg tables"))
        _ = try plateseg(["retry", "--db", url], expectStatus: 0)
        _ = try plateseg(["status", "--db", url], expectStatus: 0)
        try TestPostgres.psql(url, "INSERT INTO plateseg_schema (version) VALUES (99)")
        let out = try plateseg(["status", "--db", url], expectStatus: 1)
        #expect(errorLine(out).contains("has schema version 99, newer than this plateseg's"))
        #expect(try TestPostgres.psql(url, "SELECT max(version) FROM plateseg_schema") == "99")
    }

    @Test func aDatabaseOfAnotherProgramGetsNoHalfSchema() throws {
        let url = try Driver.postgres.freshLocation()
        try TestPostgres.psql(url, "CREATE TABLE images (id serial PRIMARY KEY, name text)")
        let out = try plateseg(["retry", "--db", url], expectStatus: 1)
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
        #expect(errorLine(try plateseg(["status", "--db", notSQLite.path], expectStatus: 1)).contains("is not a SQLite database; pass --db a plateseg database file"))
    }

    @Test func theDatabaseComesFromPLATESEG_DB() throws {
        let url = try Driver.postgres.freshLocation()
        _ = try plateseg(["retry"], environment: ["PLATESEG_DB": url], expectStatus: 0)
        // `retry` made the schema there: every version from 1 is applied.
        #expect(try TestPostgres.psql(url, "SELECT min(version) = 1 AND max(version) = count(*) FROM plateseg_schema") == "t")
    }

    /// A small plate submitted into a fresh SQLite file; returns the file.
    func submittedDatabase(images: [String: String] = ["P_B02_s1.png": "0f08d640930b", "P_C02_s1.png": "08f52aa2add3"]) throws -> URL {
        let folder = temporaryFolder("plateseg-plate")
        for (name, source) in images {
            try FileManager.default.copyItem(at: demo.appendingPathComponent("plate/\(source).png"), to: folder.appendingPathComponent(name))
        }
        let db = temporaryFolder("plateseg-db").appendingPathComponent("plate.sqlite")
        _ = try plateseg(["submit", folder.path, "--db", db.path, "--models", "yolox"], expectStatus: 0)
        return db
    }

    /// A damaged file is not a passing error: a worker stops at once saying so (instead of
    /// retrying its claim forever), and every command names the file and what to do.
    @Test func aDamagedDatabaseStopsTheWorkerAndIsNamed() throws {
        let db = try submittedDatabase()
        // Overwrite every page after the first (the header stays valid: SQLite opens the file).
        let handle = try FileHandle(forUpdating: db)
        let size = try handle.seekToEnd()
        try handle.seek(toOffset: 4096)
        try handle.write(contentsOf: Data(repeating: 0x5A, count: Int(size) - 4096))
        try handle.close()
        let damaged = "\(db.path): the job database is damaged"
        let worker = try plateseg(["worker", "--db", db.path, "--exit-when-drained", "--models-dir", fixtures.path], expectStatus: 1)
        #expect(errorLine(worker).contains(damaged) && errorLine(worker).contains(".recover"), "\(worker)")
        for args in [["status"], ["query"], ["retry"]] {
            let out = try plateseg(args + ["--db", db.path], expectStatus: 1)
            #expect(errorLine(out).contains(damaged), "\(args): \(out)")
            #expect(!out.contains("SELECT") && !out.contains("while executing"), "no SQL shown")
        }
    }

    /// Root ignores file modes, so the read-only cases run as the unprivileged `nobody`: the
    /// commands that only read work for a user who may only read, and leave nothing beside the
    /// file; one that writes says what must be writable.
    @Test func readersNeedOnlyReadAccessAndWritersSayWhatMustBeWritable() throws {
        let db = try submittedDatabase()
        let folder = db.deletingLastPathComponent()
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: folder.path)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: db.path)
        for args in [["status"], ["query"], ["query", "--cells", "--format", "csv"], ["trace", "P_B02_s1.png"]] {
            let out = try asNobody(args + ["--db", db.path])
            #expect(out.status == 0, "\(args): \(out.text)")
        }
        let csv = FileManager.default.temporaryDirectory.appendingPathComponent("plateseg-ro-\(UUID().uuidString).csv")
        let exported = try asNobody(["export", "--db", db.path, "--out", csv.path])
        #expect(exported.status == 0 && exported.text.contains("wrote 0 cells"), "\(exported.text)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["plate.sqlite"], "no -wal or -shm left beside it")
        let plate = temporaryFolder("plateseg-plate")
        try FileManager.default.copyItem(at: demo.appendingPathComponent("plate/0f08d640930b.png"), to: plate.appendingPathComponent("P_B03_s1.png"))
        let writer = try asNobody(["submit", plate.path, "--plate", "P2", "--db", db.path, "--models", "yolox"])
        #expect(writer.status == 1 && errorLine(writer.text).contains("\(db.path): cannot write the job database (read-only)"), "\(writer.text)")
        #expect(errorLine(writer.text).contains("make the file and its folder writable"))
    }

    /// A reader never makes a database: a missing or empty `--db` is named, and stays so.
    @Test func aReaderNeverCreatesADatabase() throws {
        let folder = temporaryFolder("plateseg-db")
        let empty = folder.appendingPathComponent("empty.sqlite")
        _ = FileManager.default.createFile(atPath: empty.path, contents: nil)
        for args in [["status"], ["query"], ["report", "--out", folder.appendingPathComponent("r").path]] {
            let out = try plateseg(args + ["--db", empty.path], expectStatus: 1)
            #expect(errorLine(out).contains("\(empty.path): is empty, not a job database"), "\(out)")
        }
        let export = try plateseg(["export", "--db", empty.path, "--out", folder.appendingPathComponent("x.csv").path], expectStatus: 1)
        #expect(errorLine(export).contains("is empty, not a job database"))
        #expect(try Data(contentsOf: empty).isEmpty && !FileManager.default.fileExists(atPath: folder.appendingPathComponent("x.csv").path))
        let missing = folder.appendingPathComponent("missing.sqlite")
        #expect(errorLine(try plateseg(["query", "--db", missing.path], expectStatus: 1)).contains("no job database here"))
        #expect(!FileManager.default.fileExists(atPath: missing.path))
    }

    @Test func aWriterSaysWhatMustBeWritableAndAMissingFolderIsNamed() throws {
        let db = try submittedDatabase()
        let folder = db.deletingLastPathComponent()
        let plate = temporaryFolder("plateseg-plate")
        try FileManager.default.copyItem(at: demo.appendingPathComponent("plate/0f08d640930b.png"), to: plate.appendingPathComponent("P_B02_s1.png"))
        let missing = try plateseg(["submit", plate.path, "--db", folder.appendingPathComponent("no/such/folder/x.sqlite").path], expectStatus: 1)
        #expect(errorLine(missing).contains("its folder does not exist; create the folder"), "\(missing)")
    }

    func asNobody(_ args: [String]) throws -> (status: Int32, text: String) {
        let plateseg = products.appendingPathComponent("plateseg")
        guard getuid() == 0 else { return try launch(plateseg, args) }
        return try launch(URL(fileURLWithPath: "/usr/bin/setpriv"), ["--reuid=65534", "--regid=65534", "--clear-groups", plateseg.path] + args)
    }

    /// Truth that cannot be used is named row by row; when nothing is left the one error line
    /// says so (not a usage text), and a truth of another size is not scored as if it fitted.
    @Test func unusableTruthIsNamedAndNeverScored() throws {
        let db = try submittedDatabase()
        let truth = temporaryFolder().appendingPathComponent("train.csv")
        try "id,annotation,width,height,cell_type\nP_B02_s1,abc 3,704,520,astro\n".write(to: truth, atomically: true, encoding: .utf8)
        let bad = try plateseg(["eval", "--db", db.path, "--truth", truth.path, "--models-dir", repositoryRoot.appendingPathComponent("models").path], expectStatus: 1)
        #expect(bad.contains("row 2 (image P_B02_s1): bad run-length encoding"))
        #expect(errorLine(bad).contains("nothing left to score") && !bad.contains("USAGE"), "\(bad)")
        try "id,annotation,width,height,cell_type\nP_B02_s1,1 3,520,704,astro\nP_C02_s1,1 3,704,520,astro\n"
            .write(to: truth, atomically: true, encoding: .utf8)
        // Every image left out: not an empty table and exit 0, but one line and exit 1.
        let swapped = try plateseg(["eval", "--db", db.path, "--truth", truth.path, "--models-dir", repositoryRoot.appendingPathComponent("models").path], expectStatus: 1)
        #expect(swapped.contains("P_B02_s1.png: 704x520 pixels, but its annotations in \(truth.path) are 520x704; left out"), "\(swapped)")
        #expect(swapped.contains("P_C02_s1.png: not merged yet"))
        #expect(errorLine(swapped).contains("nothing scored: each of the 2 annotated image(s) was left out") && !swapped.contains("+0.0 %"), "\(swapped)")
    }
}
