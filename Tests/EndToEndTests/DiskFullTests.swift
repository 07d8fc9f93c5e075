import Foundation
import Testing

/// A result that cannot be stored because the disk is full: the job fails with the reason, the
/// summary, `status` and the report say so, and `plateseg retry` finishes it once there is room.
/// The database lives on a real, deliberately small tmpfs (mounting one needs root and the
/// right to mount, as CI has; elsewhere the suite says why it did not run).
@Suite(.serialized, .enabled(if: TmpfsMount.allowed, "mounting a small tmpfs needs root and CAP_SYS_ADMIN"))
struct DiskFullTests {
    let work: URL
    let disk: URL

    init() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("plateseg-diskfull-\(UUID().uuidString)")
        disk = work.appendingPathComponent("disk")
        try FileManager.default.createDirectory(at: disk, withIntermediateDirectories: true)
    }

    @Test func aResultThatCannotBeStoredFailsItsJobUntilRetried() throws {
        let plate = work.appendingPathComponent("plate"), models = work.appendingPathComponent("models")
        for dir in [plate, models] { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) }
        try FileManager.default.copyItem(at: demo.appendingPathComponent("plate/0f08d640930b.png"), to: plate.appendingPathComponent("P1_B02_s1.png"))
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("maskrcnn.safetensors"), to: models.appendingPathComponent("maskrcnn.safetensors"))
        try FileManager.default.copyItem(at: intensityReference, to: models.appendingPathComponent("intensity.json"))

        _ = try run(URL(fileURLWithPath: "/bin/mount"), ["-t", "tmpfs", "-o", "size=4m", "plateseg-diskfull", disk.path])
        defer { _ = try? run(URL(fileURLWithPath: "/bin/umount"), [disk.path]) }
        let db = disk.appendingPathComponent("plate.sqlite").path
        let plateArgs = [plate.path, "--db", db, "--models", "maskrcnn", "--max-attempts", "1"]
        try plateseg(["submit"] + plateArgs)

        // Room for SQLite's 32 KiB shared-memory file and 16 pages of write-ahead log: the claim
        // and the failure record (each a page of the jobs table and one of each index its change
        // moves: 12 in all), not the result (its tile output alone is ~100 KiB with this network).
        let filler = disk.appendingPathComponent("filler")
        try fill(disk, leaving: 100 * 1024, with: filler)
        // A lease of an hour: no heartbeat writes while the tile runs, however slow the machine,
        // so what is written before the result is the claim alone.
        let out = try plateseg(["run"] + plateArgs + ["--workers", "1", "--lease", "3600", "--models-dir", models.path], expectStatus: 1)
        #expect(out.contains("Problems") && out.contains("cannot store the result"), "the summary says why:\n\(out)")
        #expect(out.contains("database or disk is full"))

        try FileManager.default.removeItem(at: filler)
        let status = try plateseg(["status", "--db", db])
        #expect(status.contains("Failed jobs") && status.contains("database or disk is full"))
        let report = work.appendingPathComponent("report")
        try plateseg(["report", "--db", db, "--out", report.path, "--models-dir", models.path])
        let html = try String(contentsOf: report.appendingPathComponent("index.html"), encoding: .utf8)
        #expect(html.contains("Problems") && html.contains("database or disk is full"))

        #expect(try plateseg(["retry", "--db", db]).contains("1 job(s) queued again"))
        let again = try plateseg(["run"] + plateArgs + ["--workers", "1", "--models-dir", models.path])
        #expect(!again.contains("Problems"))
        #expect(!(try plateseg(["status", "--db", db])).contains("Failed jobs"))
    }

    @discardableResult
    func plateseg(_ args: [String], expectStatus: Int32 = 0) throws -> String {
        try run(products.appendingPathComponent("plateseg"), args, expectStatus: expectStatus)
    }

    /// Writes `file` until `dir`'s file system has about `bytes` left.
    func fill(_ dir: URL, leaving bytes: Int, with file: URL) throws {
        var fs = statvfs()
        guard statvfs(dir.path, &fs) == 0 else { throw CommandFailed(description: "statvfs \(dir.path) failed") }
        let free = Int(fs.f_bavail) * Int(fs.f_frsize)
        try Data(count: max(0, free - bytes)).write(to: file)
    }
}

enum TmpfsMount {
    /// Whether this process may mount a tmpfs: tried once with a 64 KiB one.
    static let allowed: Bool = {
        guard getuid() == 0 else { return false }
        let probe = FileManager.default.temporaryDirectory.appendingPathComponent("plateseg-mount-probe-\(UUID().uuidString)")
        guard (try? FileManager.default.createDirectory(at: probe, withIntermediateDirectories: true)) != nil else { return false }
        defer { try? FileManager.default.removeItem(at: probe) }
        guard (try? run(URL(fileURLWithPath: "/bin/mount"), ["-t", "tmpfs", "-o", "size=64k", "plateseg-probe", probe.path])) != nil else {
            return false
        }
        _ = try? run(URL(fileURLWithPath: "/bin/umount"), [probe.path])
        return true
    }()
}
