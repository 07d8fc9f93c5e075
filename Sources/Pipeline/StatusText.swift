import Foundation
import JobStore

/// What `plateseg status` says of the plates in a database: their jobs by state, sizes, time
/// points and channels, unreadable images, jobs retrying and failed, results made by other
/// model files.
public enum StatusText {
    /// Prints the lines once, or with `watch` every two seconds until interrupted: on a terminal
    /// the screen is redrawn; into a pipe or a file each refresh is appended, flushed at once
    /// (stdout is block-buffered there, and a watch never ends on its own).
    public static func show(plate: String?, modelsDir: String, watch: Bool, open: () throws -> any JobStore) throws {
        // Every page of the tables shown here is read once: a damaged database is said here, not
        // found later by the query that reaches the damaged page.
        try open().verify()
        let terminal = isatty(STDOUT_FILENO) != 0
        repeat {
            if watch { print(terminal ? "\u{1B}[H\u{1B}[2J" : "--- \(Date())\n", terminator: "") }
            // Opened afresh each time: a reader that found no writer at work reads the file as it
            // stood, and workers may have started since.
            try lines(try open(), plate: plate, modelsDir: modelsDir).forEach { print($0) }
            if watch {
                fflush(nil)
                Thread.sleep(forTimeInterval: 2)
            }
        } while watch
    }

    /// Lines for `plate` (every plate when nil); `modelsDir` holds the files results should come from.
    public static func lines(_ db: any JobStore, plate: String?, modelsDir: String) throws -> [String] {
        let plates = try db.progress(plate: plate)
        if plates.isEmpty {
            return [plate.map { "No plate named \($0) in \(db.location)." } ?? "No plates in \(db.location)."]
        }
        let storage = Dictionary(try db.storage(plate: plate).map { ($0.plate, $0) }, uniquingKeysWith: { a, _ in a })
        var rows = [["plate", "images", "merged", "unreadable", "queued", "blocked", "running", "succeeded", "failed", "jobs/min", "stored"]]
        for p in plates {
            rows.append([p.plate, "\(p.images)", "\(p.imagesMerged)", "\(p.unreadableImages)", "\(p.queued)", "\(p.blocked)", "\(p.running)",
                         "\(p.succeeded)", "\(p.failed)", "\(p.finishedLastMinute)", storage[p.plate].map { megabytes($0.bytes) } ?? "-"])
        }
        var lines = TextTable.lines(rows)
        let kept = storage.values.filter { $0.tileOutputs > 0 }.map { "\($0.plate) \($0.tileOutputs) (\(megabytes($0.tileOutputBytes)))" }
        lines.append("database \(megabytes(try db.databaseBytes())) in all; stored = a plate's cells and the tile outputs it still holds"
                     + (kept.isEmpty ? "" : "; tile outputs: " + kept.sorted().joined(separator: ", ")))
        lines += try identity(db, plate: plate)
        let unreadable = try db.unreadableImages(plate: plate)
        if !unreadable.isEmpty {
            lines += ["", "Unreadable images (no jobs were made for them):"] + unreadable.map { "  \($0.error)" }
        }
        lines += jobs("Retrying (the last attempt failed; tried again automatically after a back-off):", try db.retryingJobs(plate: plate, limit: 50))
        lines += jobs("Failed jobs (fix the cause, then `plateseg retry`):", try db.failedJobs(plate: plate, limit: 50))
        let stale = try StaleResults.find(in: db, plates: plates.map(\.plate), modelsDir: modelsDir)
        if !stale.isEmpty {
            lines += ["", "Made by other model files than those in \(modelsDir) now (`plateseg retry --stale` runs them again):"]
                + stale.sorted(by: { $0.key < $1.key }).map { "  \($1.describe(plate: $0))" }
        }
        return lines
    }

    /// Time points and channels: what a plate holds beyond wells and fields, and which images
    /// were left aside because their channel is not the one segmented.
    static func identity(_ db: any JobStore, plate: String?) throws -> [String] {
        var lines: [String] = []
        for identity in try db.identity(plate: plate) {
            let name = identity.plate
            let times = identity.timepoints
            if times.count > 1 || !times.isEmpty && plate != nil {
                let shown = times.count <= 8 ? times.map(\.label) : times.prefix(4).map(\.label) + ["…"] + times.suffix(3).map(\.label)
                lines += ["", "\(name): \(times.count) time point(s): \(shown.joined(separator: ", "))"]
            }
            let segmented = Set(identity.channels.filter(\.segmented).compactMap(\.channel)).sorted()
            var aside: [String: Int] = [:]
            for c in identity.channels where !c.segmented { aside[c.channel ?? "?", default: 0] += c.images }
            if !aside.isEmpty {
                let others = aside.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value) images)" }.joined(separator: ", ")
                lines.append("\(name): channel \(segmented.joined(separator: ", ")) segmented; not segmented: \(others)")
            }
        }
        return lines
    }

    static func jobs(_ title: String, _ jobs: [FailedJob]) -> [String] {
        guard !jobs.isEmpty else { return [] }
        return ["", title] + jobs.map { "  job \($0.id) [\($0.plate)] \($0.kind) \($0.imagePath ?? "") after \($0.attempts) attempt(s): \($0.error)" }
    }

    /// "112 MB": bytes as a person reads a database's size.
    static func megabytes(_ bytes: Int) -> String {
        bytes >= 10_000_000 ? "\(bytes / 1_000_000) MB" : String(format: "%.1f MB", Double(bytes) / 1e6)
    }
}

/// Rows as aligned columns: the first column to the left, the others to the right, a rule under
/// the header (the first row).
public enum TextTable {
    public static func lines(_ rows: [[String]]) -> [String] {
        guard let first = rows.first else { return [] }
        let widths = first.indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        var lines: [String] = []
        for (i, row) in rows.enumerated() {
            lines.append(row.enumerated().map { c, v in c == 0 ? v.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                                                                : String(repeating: " ", count: widths[c] - v.count) + v }
                .joined(separator: "  "))
            if i == 0 { lines.append(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
        }
        return lines
    }
}
