import Foundation
import GRDB
import Synchronization
import SystemPackage

/// The embedded driver: one SQLite file in WAL mode, shared by the processes of one machine.
/// Its clock is this machine's.
final class SQLiteDriver: StoreDriver {
    private let pool: any DatabaseWriter
    let path: String
    private let plateNames = Mutex<[Int64: String]>([:])

    var location: String { path }

    /// Opens (or, unless `mustExist`, creates) the database at `path`. `readOnly`: for commands
    /// that only read, which must work for a user who may only read the file and leave nothing
    /// beside it.
    init(path: String, mustExist: Bool, readOnly: Bool = false) throws {
        self.path = path
        var isFolder: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isFolder)
        if isFolder.boolValue {
            throw JobStoreError.database(path: path, reason: "is a folder; pass --db a file path (it is created if missing) or a postgres:// URL")
        }
        if (mustExist || readOnly) && !exists {
            throw JobStoreError.database(path: path, reason: "no job database here; pass --db with the file or URL that `plateseg submit` or `plateseg run` used")
        }
        if readOnly {
            pool = try Self.openForReading(path)
            return
        }
        var config = Configuration()
        // Several worker processes write the same file; wait for the lock rather than fail, but
        // well inside a heartbeat interval, so that a stuck writer cannot cost a lease.
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // The write-ahead log is truncated back to this after a checkpoint: a night's burst of
            // tile outputs does not leave a log as large as the burst beside the file.
            try db.execute(sql: "PRAGMA journal_size_limit = 33554432")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
        }
        var attempt = 0
        while true {
            do {
                let pool = try DatabasePool(path: path, configuration: config)
                if try pool.read({ try SQLiteSchema.migrator.hasBeenSuperseded($0) }) {
                    throw SchemaError.newer
                }
                try SQLiteSchema.migrator.migrate(pool)
                self.pool = pool
                return
            } catch SchemaError.newer {
                throw JobStoreError.database(path: path, reason: "was written by a newer plateseg (its schema is ahead of this one's); use that version or a newer one")
            } catch let error as DatabaseError where [.SQLITE_CORRUPT, .SQLITE_NOTADB, .SQLITE_READONLY, .SQLITE_CANTOPEN].contains(error.resultCode) {
                switch error.resultCode {
                case .SQLITE_CANTOPEN where !FileManager.default.fileExists(atPath: FilePath(path).removingLastComponent().isEmpty ? "." : FilePath(path).removingLastComponent().string):
                    throw JobStoreError.database(path: path, reason: "its folder does not exist; create the folder or pass --db another path")
                case .SQLITE_READONLY, .SQLITE_CANTOPEN: throw JobStoreError.database(path: path, reason: Self.readOnlyHint)
                case .SQLITE_NOTADB: throw JobStoreError.database(path: path, reason: "is not a SQLite database; pass --db a plateseg database file (or a new path, which is created) or a postgres:// URL")
                default: throw JobStoreError.damaged(location: path)
                }
            } catch {
                // Workers started together on a new file race to create the schema; the loser
                // finds it made by the winner on its next try.
                attempt += 1
                guard attempt < 4 else {
                    throw JobStoreError.database(path: path, reason: "cannot open the job database (\(error)); check the path and that it is a plateseg database")
                }
                Thread.sleep(forTimeInterval: 0.1 * Double(attempt))
            }
        }
    }

    private enum SchemaError: Error { case newer }

    /// A reader opens the file read-only and never writes beside it. While a writer is at work
    /// (its write-ahead log is there) it reads through that log and its shared memory; with no
    /// log there it reads the file as it stands (`immutable`), so that a folder it may not
    /// write is no obstacle and no `-wal` or `-shm` file is left behind. A file of an older
    /// schema is not brought up to date by a reader.
    private static func openForReading(_ path: String) throws -> DatabaseQueue {
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        guard size > 0 else {
            throw JobStoreError.database(path: path, reason: "is empty, not a job database; pass --db with the file or URL that `plateseg submit` or `plateseg run` used")
        }
        var config = Configuration()
        config.readonly = true
        config.busyMode = .timeout(10)
        let live = FileManager.default.fileExists(atPath: path + "-wal")
        let opened = live ? path : "file:" + (path.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? path) + "?immutable=1"
        do {
            let queue = try DatabaseQueue(path: opened, configuration: config)
            let (newer, complete) = try queue.read { db in
                (try SQLiteSchema.migrator.hasBeenSuperseded(db), try SQLiteSchema.migrator.hasCompletedMigrations(db))
            }
            if newer {
                throw JobStoreError.database(path: path, reason: "was written by a newer plateseg (its schema is ahead of this one's); use that version or a newer one")
            }
            guard complete else {
                throw JobStoreError.database(path: path, reason: "was written by an older plateseg; bring it up to date with a command that writes (`plateseg submit` or `plateseg worker`, with write access), then read it")
            }
            return queue
        } catch let error as DatabaseError {
            switch error.resultCode {
            case .SQLITE_NOTADB: throw JobStoreError.database(path: path, reason: "is not a SQLite database; pass --db a plateseg database file or a postgres:// URL")
            case .SQLITE_CORRUPT: throw JobStoreError.damaged(location: path)
            case .SQLITE_CANTOPEN, .SQLITE_READONLY, .SQLITE_PERM:
                throw JobStoreError.database(path: path, reason: "cannot be read (\(error.message ?? "permission denied")); give this user read access to it\(live ? " and to its -wal and -shm files" : "")")
            default: throw error
            }
        }
    }

    // A damaged file fails every operation that touches the damaged pages, now and later:
    // callers stop on it (a worker exits) instead of retrying it as a passing error.
    private func reading<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try pool.read(body) } catch let error as DatabaseError { throw translated(error) }
    }

    private func writing<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try pool.write(body) } catch let error as DatabaseError { throw translated(error) }
    }

    private func translated(_ error: DatabaseError) -> any Error {
        switch error.resultCode {
        case .SQLITE_CORRUPT, .SQLITE_NOTADB: return JobStoreError.damaged(location: path)
        case .SQLITE_READONLY: return JobStoreError.database(path: path, reason: Self.readOnlyHint)
        default: return error
        }
    }

    static let readOnlyHint = "cannot write the job database (read-only); make the file and its folder writable by this user (SQLite writes -wal and -shm files beside it)"


    private func time(_ now: Double?) -> Double { now ?? Date().timeIntervalSince1970 }

    // MARK: submit

    func submit(_ s: PlateSubmission, now: Double?) throws -> SubmitSummary {
        let now = time(now)
        return try writing { db in
            try db.execute(sql: "INSERT INTO plates (name, root, settings, created_at) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO NOTHING",
                           arguments: [s.plate, s.root, s.settings, now])
            let plate = try Row.fetchOne(db, sql: "SELECT id, settings FROM plates WHERE name = ?", arguments: [s.plate])!
            let plateID: Int64 = plate[0]
            let settings: String = plate[1]
            guard settings == s.settings else { throw JobStoreError.settingsChanged(plate: s.plate, was: settings, now: s.settings) }
            if s.keepTileOutputs { try db.execute(sql: "UPDATE plates SET keep_tile_outputs = 1 WHERE id = ?", arguments: [plateID]) }
            var summary = SubmitSummary(newImages: 0, unreadableImages: 0, newJobs: 0)
            var imageIDs: [String: Int64] = [:]
            for image in s.images {
                try db.execute(
                    sql: """
                        INSERT INTO images (plate_id, path, well, field, timepoint, timepoint_order, channel, plane, page, segmented,
                                            width, height, content_hash, error, created_at, file_identity)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT(plate_id, path) DO UPDATE SET
                            well = excluded.well, field = excluded.field, timepoint = excluded.timepoint,
                            timepoint_order = excluded.timepoint_order, channel = excluded.channel, plane = excluded.plane,
                            page = excluded.page, segmented = excluded.segmented, width = excluded.width, height = excluded.height,
                            content_hash = excluded.content_hash, error = excluded.error, file_identity = excluded.file_identity
                        WHERE images.error IS NOT NULL AND (excluded.error IS NULL OR excluded.error != images.error)
                        """,
                    arguments: [plateID, image.path, image.well, image.field, image.timepoint?.label, image.timepoint?.order,
                                image.channel, image.plane, image.page, image.segmented, image.width, image.height,
                                image.contentHash, image.error, now, image.fileIdentity])
                if db.changesCount > 0 {
                    summary.newImages += 1
                    if image.error != nil { summary.unreadableImages += 1 }
                } else if image.error == nil, let identity = image.fileIdentity {
                    // The same bytes found again under another identity (copied back, touched):
                    // remembered, so that the next resubmission need not read them either.
                    try db.cachedStatement(sql: """
                        UPDATE images SET file_identity = ? WHERE plate_id = ? AND path = ? AND content_hash = ?
                          AND file_identity IS NOT ?
                        """).execute(arguments: [identity, plateID, image.path, image.contentHash, identity])
                }
                imageIDs[image.path] = try Int64.fetchOne(
                    db, sql: "SELECT id FROM images WHERE plate_id = ? AND path = ?", arguments: [plateID, image.path])
            }
            // Errors of files this folder no longer holds or lists (a manifest row mended, a stray
            // file removed) are gone with them; an image that has jobs is never removed.
            let listed = Set(s.images.map(\.path))
            let prefix = s.root.hasSuffix("/") ? s.root : s.root + "/"
            for r in try Row.fetchAll(db, sql: """
                SELECT id, path FROM images i WHERE plate_id = ? AND error IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.image_id = i.id)
                """, arguments: [plateID]) {
                let p: String = r[1]
                if p.hasPrefix(prefix) && !listed.contains(p) { try db.execute(sql: "DELETE FROM images WHERE id = ?", arguments: [r[0] as Int64]) }
            }
            var jobIDs: [String: Int64] = [:]
            var created: [(NewJob, Int64)] = []
            for job in s.jobs {
                var imageID: Int64?
                if let p = job.imagePath {
                    guard let id = imageIDs[p] else { throw JobStoreError.unknownImage(p) }
                    imageID = id
                }
                try db.execute(
                    sql: """
                        INSERT INTO jobs (key, kind, plate_id, image_id, args, state, max_attempts, created_at)
                        VALUES (?, ?, ?, ?, ?, 'queued', ?, ?) ON CONFLICT(key) DO NOTHING
                        """,
                    arguments: [job.key, job.kind, plateID, imageID, job.args, job.maxAttempts, now])
                if db.changesCount > 0 {
                    let id = db.lastInsertedRowID
                    jobIDs[job.key] = id
                    created.append((job, id))
                }
            }
            for (job, id) in created where !job.dependsOn.isEmpty {
                for key in job.dependsOn {
                    let dep: Int64
                    if let known = jobIDs[key] {
                        dep = known
                    } else if let existing = try Int64.fetchOne(db, sql: "SELECT id FROM jobs WHERE key = ?", arguments: [key]) {
                        dep = existing
                    } else {
                        throw JobStoreError.database(path: path, reason: "job \(job.key) depends on unknown job \(key)")
                    }
                    try db.execute(sql: "INSERT OR IGNORE INTO job_dependencies (job_id, depends_on) VALUES (?, ?)", arguments: [id, dep])
                }
                try db.execute(
                    sql: """
                        UPDATE jobs SET waiting_on = (
                            SELECT COUNT(*) FROM job_dependencies d JOIN jobs j ON j.id = d.depends_on
                            WHERE d.job_id = :id AND j.state != 'succeeded')
                        WHERE id = :id
                        """,
                    arguments: ["id": id])
            }
            summary.newJobs = created.count
            return summary
        }
    }

    // MARK: the lease cycle

    func claim(owner: String, leaseSeconds: Double, plate: String?, now: Double?) throws -> ClaimedJob? {
        let now = time(now)
        return try writing { db in try claim(db, owner: owner, leaseSeconds: leaseSeconds, plate: plate, now: now) }
    }

    private func claim(_ db: Database, owner: String, leaseSeconds: Double, plate: String?, now: Double) throws -> ClaimedJob? {
        // Hot statements are compiled once per connection and reused (GRDB's statement cache).
        var arguments: StatementArguments = ["owner": owner, "deadline": now + leaseSeconds, "now": now]
        if let plate { arguments += ["plate": plate] }
        guard let row = try Row.fetchOne(db.cachedStatement(sql: SQLiteSchema.claim(ofPlate: plate != nil)), arguments: arguments)
        else { return nil }
        let id: Int64 = row["id"]
        return ClaimedJob(
            id: id, kind: row["kind"], args: row["args"], plate: try plateName(db, id: row["plate_id"]), imageID: row["image_id"],
            attempt: row["attempts"], maxAttempts: row["max_attempts"],
            lease: Lease(jobID: id, token: row["fencing_token"], owner: owner, deadline: now + leaseSeconds,
                         attempt: row["attempts"], maxAttempts: row["max_attempts"]))
    }

    private func plateName(_ db: Database, id: Int64) throws -> String {
        if let name = plateNames.withLock({ $0[id] }) { return name }
        let name = try String.fetchOne(db, sql: "SELECT name FROM plates WHERE id = ?", arguments: [id]) ?? "?"
        plateNames.withLock { $0[id] = name }
        return name
    }

    func heartbeat(_ lease: Lease, leaseSeconds: Double, now: Double?) throws -> Lease {
        let deadline = time(now) + leaseSeconds
        return try writing { db in
            try db.cachedStatement(sql: "UPDATE jobs SET lease_deadline = ? WHERE id = ? AND fencing_token = ? AND state = 'running'")
                .execute(arguments: [deadline, lease.jobID, lease.token])
            guard db.changesCount == 1 else { throw JobStoreError.leaseLost(lease.jobID) }
            return lease.extended(to: deadline)
        }
    }

    func complete(_ lease: Lease, result: JobResult, now: Double?) throws {
        let now = time(now)
        try writing { db in try complete(db, lease, result, now: now) }
    }

    /// One transaction, one commit per job for a busy worker.
    func completeAndClaim(_ lease: Lease, result: JobResult, owner: String, leaseSeconds: Double,
                          plate: String?, now: Double?) throws -> ClaimedJob? {
        let now = time(now)
        return try writing { db in
            try complete(db, lease, result, now: now)
            return try claim(db, owner: owner, leaseSeconds: leaseSeconds, plate: plate, now: now)
        }
    }

    private func complete(_ db: Database, _ lease: Lease, _ result: JobResult, now: Double) throws {
        try db.cachedStatement(sql: """
            UPDATE jobs SET state = 'succeeded', finished_at = ?, lease_owner = NULL, lease_deadline = NULL, last_error = NULL
            WHERE id = ? AND fencing_token = ? AND state = 'running'
            """).execute(arguments: [now, lease.jobID, lease.token])
        guard db.changesCount == 1 else { throw JobStoreError.leaseLost(lease.jobID) }
        if result.artifact != nil || result.provenance != nil {
            if let provenance = result.provenance {
                try db.cachedStatement(sql: "INSERT OR IGNORE INTO provenances (text) VALUES (?)").execute(arguments: [provenance])
            }
            try db.cachedStatement(sql: """
                INSERT OR REPLACE INTO artifacts (job_id, provenance_id, created_at)
                VALUES (?, (SELECT id FROM provenances WHERE text = ?), ?)
                """).execute(arguments: [lease.jobID, result.provenance, now])
            if let bytes = result.artifact, !bytes.isEmpty {
                try db.cachedStatement(sql: "INSERT OR REPLACE INTO outputs (job_id, bytes) VALUES (?, ?)")
                    .execute(arguments: [lease.jobID, Data(bytes)])
            } else {
                try db.cachedStatement(sql: "DELETE FROM outputs WHERE job_id = ?").execute(arguments: [lease.jobID])
            }
        }
        if let cells = result.cells {
            try replaceCells(db, mergeJob: lease.jobID, cells: cells)
        }
        if result.dropsInputs {
            try db.cachedStatement(sql: """
                DELETE FROM outputs WHERE job_id IN (SELECT depends_on FROM job_dependencies WHERE job_id = :job)
                  AND NOT (SELECT p.keep_tile_outputs FROM plates p JOIN jobs j ON j.plate_id = p.id WHERE j.id = :job)
                """).execute(arguments: ["job": lease.jobID])
        }
        try db.cachedStatement(sql: """
            UPDATE jobs SET waiting_on = waiting_on - 1
            WHERE id IN (SELECT job_id FROM job_dependencies WHERE depends_on = ?) AND waiting_on > 0
            """).execute(arguments: [lease.jobID])
    }

    private func replaceCells(_ db: Database, mergeJob: JobID, cells: [CellRecord]) throws {
        guard let imageID = try Int64.fetchOne(db, sql: "SELECT image_id FROM jobs WHERE id = ?", arguments: [mergeJob]) else {
            throw JobStoreError.database(path: path, reason: "merge job \(mergeJob) has no image")
        }
        try db.execute(sql: "DELETE FROM cells WHERE image_id = ?", arguments: [imageID])
        let insert = try db.makeStatement(sql: """
            INSERT INTO cells (image_id, merge_job_id, cell_type, score, area, box_x, box_y, box_width, box_height,
                               centroid_x, centroid_y, rle) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for c in cells {
            try insert.execute(arguments: [imageID, mergeJob, c.cellType, c.score, c.area, c.box.x, c.box.y,
                                           c.box.width, c.box.height, c.centroid.x, c.centroid.y, c.rle])
        }
        try db.execute(sql: "DELETE FROM image_counts WHERE image_id = ?", arguments: [imageID])
        try db.execute(sql: """
            INSERT INTO image_counts (image_id, cell_type, cells, area_sum, score_sum, stored_bytes)
            SELECT image_id, cell_type, COUNT(*), SUM(area), SUM(score), SUM(length(rle) + \(SQLiteSchema.cellRowBytes))
            FROM cells WHERE image_id = ? GROUP BY cell_type
            """, arguments: [imageID])
    }

    func fail(_ lease: Lease, error: String, requeueAfter: Double?, now: Double?) throws {
        let now = time(now)
        try writing { db in
            try db.execute(
                sql: """
                    UPDATE jobs SET
                        state = CASE WHEN :requeue THEN 'queued' ELSE 'failed' END,
                        finished_at = CASE WHEN :requeue THEN NULL ELSE :now END,
                        not_before = :notBefore,
                        last_error = :error, lease_owner = NULL, lease_deadline = NULL
                    WHERE id = :id AND fencing_token = :token AND state = 'running'
                    """,
                arguments: ["requeue": requeueAfter != nil, "now": now, "notBefore": now + (requeueAfter ?? 0), "error": error,
                            "id": lease.jobID, "token": lease.token])
            guard db.changesCount == 1 else { throw JobStoreError.leaseLost(lease.jobID) }
        }
    }

    func release(_ lease: Lease) throws {
        try writing { db in
            try db.execute(
                sql: """
                    UPDATE jobs SET state = 'queued', attempts = attempts - 1, lease_owner = NULL, lease_deadline = NULL
                    WHERE id = ? AND fencing_token = ? AND state = 'running'
                    """,
                arguments: [lease.jobID, lease.token])
            guard db.changesCount == 1 else { throw JobStoreError.leaseLost(lease.jobID) }
        }
    }

    func rescueLeases(heldBy ownerPrefix: String?, now: Double?, reason: LeaseRescuer.Reason) throws -> [JobID] {
        let now = time(now)
        return try writing { db in
            try JobID.fetchAll(
                db,
                sql: """
                    UPDATE jobs SET
                        state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
                        last_error = :before || COALESCE(lease_owner, '?') || :after
                            || CASE WHEN attempts >= max_attempts THEN :exhausted ELSE '' END,
                        finished_at = CASE WHEN attempts >= max_attempts THEN :now ELSE NULL END,
                        lease_owner = NULL, lease_deadline = NULL
                    WHERE state = 'running'
                      AND (CASE WHEN :owner IS NULL THEN lease_deadline < :now
                                ELSE substr(lease_owner, 1, length(:owner)) = :owner END)
                    RETURNING id
                    """,
                arguments: ["now": now, "before": reason.before, "after": reason.after, "exhausted": reason.exhausted,
                            "owner": ownerPrefix])
        }
    }

    func leaseOwners() throws -> [String] {
        try reading { db in
            try String.fetchAll(db, sql: """
                SELECT DISTINCT lease_owner FROM jobs INDEXED BY jobs_running
                WHERE state = 'running' AND lease_owner IS NOT NULL ORDER BY lease_owner
                """)
        }
    }

    func retry(_ selection: RetrySelection) throws -> Int {
        try writing { db in
            var conditions = ["state != 'running'"]
            var arguments: StatementArguments = [:]
            if selection.failedOnly { conditions.append("state = 'failed'") }
            if let ids = selection.jobIDs {
                guard !ids.isEmpty else { return 0 }
                // ids are integers, so they can be written into the statement safely
                conditions.append("id IN (\(ids.map(String.init).joined(separator: ",")))")
            }
            if let plate = selection.plate {
                conditions.append("plate_id = (SELECT id FROM plates WHERE name = :plate)")
                arguments += ["plate": plate]
            }
            var ids = try Int64.fetchAll(db, sql: "SELECT id FROM jobs WHERE " + conditions.joined(separator: " AND "), arguments: arguments)
            guard !ids.isEmpty else { return 0 }
            try db.execute(sql: "CREATE TEMP TABLE IF NOT EXISTS retried (id INTEGER PRIMARY KEY)")
            try db.execute(sql: "DELETE FROM retried")
            for id in ids { try db.execute(sql: "INSERT INTO retried (id) VALUES (?)", arguments: [id]) }
            // A merge cannot run again from tile outputs that were removed: those tiles run again
            // first, for the merges chosen and for those that run again because a tile they read does.
            let pruned = try Int64.fetchAll(db, sql: """
                WITH merges AS (
                    SELECT id FROM retried
                    UNION SELECT job_id FROM job_dependencies WHERE depends_on IN (SELECT id FROM retried)
                )
                SELECT DISTINCT d.depends_on FROM job_dependencies d JOIN jobs j ON j.id = d.depends_on
                WHERE d.job_id IN (SELECT id FROM merges) AND j.state = 'succeeded'
                  AND NOT EXISTS (SELECT 1 FROM outputs o WHERE o.job_id = d.depends_on)
                  AND d.depends_on NOT IN (SELECT id FROM retried)
                """)
            for id in pruned { try db.execute(sql: "INSERT INTO retried (id) VALUES (?)", arguments: [id]) }
            ids += pruned
            try db.execute(sql: """
                UPDATE jobs SET state = 'queued', attempts = 0, not_before = 0, finished_at = NULL, lease_owner = NULL,
                    lease_deadline = NULL
                WHERE id IN (SELECT id FROM retried)
                """)
            // A job run again invalidates what was made from it: its dependants wait for it again,
            // and a dependant that had already succeeded (a merge) runs again afterwards.
            try db.execute(sql: """
                UPDATE jobs SET
                    waiting_on = (SELECT COUNT(*) FROM job_dependencies d JOIN jobs j ON j.id = d.depends_on
                                  WHERE d.job_id = jobs.id AND j.state != 'succeeded'),
                    state = CASE WHEN state IN ('succeeded', 'failed') THEN 'queued' ELSE state END,
                    attempts = CASE WHEN state IN ('succeeded', 'failed') THEN 0 ELSE attempts END,
                    finished_at = CASE WHEN state IN ('succeeded', 'failed') THEN NULL ELSE finished_at END
                WHERE id IN (SELECT job_id FROM job_dependencies WHERE depends_on IN (SELECT id FROM retried))
                """)
            try db.execute(sql: "DELETE FROM retried")
            return ids.count
        }
    }

    func pruneArtifacts(plate: String) throws -> PrunedArtifacts {
        try writing { db in
            guard let plateID = try Int64.fetchOne(db, sql: "SELECT id FROM plates WHERE name = ?", arguments: [plate]) else {
                return PrunedArtifacts(artifacts: 0, bytes: 0, images: 0)
            }
            // The outputs go; their provenance stays (stale results and `trace` read it).
            let prunable = """
                SELECT d.depends_on FROM jobs m JOIN job_dependencies d ON d.job_id = m.id
                WHERE m.plate_id = :plate AND m.state = 'succeeded'
                """
            let row = try Row.fetchOne(db, sql: """
                SELECT COUNT(*), COALESCE(SUM(length(o.bytes)), 0), COUNT(DISTINCT j.image_id)
                FROM outputs o JOIN jobs j ON j.id = o.job_id WHERE o.job_id IN (\(prunable))
                """, arguments: ["plate": plateID])!
            try db.execute(sql: "DELETE FROM outputs WHERE job_id IN (\(prunable))", arguments: ["plate": plateID])
            return PrunedArtifacts(artifacts: row[0], bytes: row[1], images: row[2])
        }
    }

    // MARK: reading

    func setKeepTileOutputs(plate: String, _ keep: Bool) throws {
        try writing { db in
            try db.execute(sql: "UPDATE plates SET keep_tile_outputs = ? WHERE name = ?", arguments: [keep, plate])
        }
    }

    func plates() throws -> [PlateInfo] {
        try reading { db in
            try Row.fetchAll(db, sql: "SELECT name, root, settings, keep_tile_outputs, created_at FROM plates ORDER BY created_at, id").map { r in
                PlateInfo(name: r["name"], root: r["root"], settings: r["settings"], keepTileOutputs: r["keep_tile_outputs"],
                          created: r["created_at"])
            }
        }
    }

    /// Per plate: its images counted through `images_well`, its jobs by state through
    /// `jobs_plate`, its merges and blocked jobs through their partial indexes, the last minute's
    /// through `jobs_finished`: a refresh reads the plate's own index entries, not its jobs.
    func progress(plate: String?, now: Double?) throws -> [PlateProgress] {
        let since = time(now) - 60
        return try reading { db in
            let plates = try Row.fetchAll(
                db, sql: "SELECT id, name FROM plates" + (plate == nil ? "" : " WHERE name = ?") + " ORDER BY name",
                arguments: StatementArguments(plate.map { [$0] } ?? []))
            return try plates.map { p in
                let id: Int64 = p["id"]
                var progress = PlateProgress(plate: p["name"], images: 0, unreadableImages: 0, imagesMerged: 0, queued: 0, blocked: 0,
                                             running: 0, succeeded: 0, failed: 0, finishedLastMinute: 0)
                let images = try Row.fetchOne(db, sql: """
                    SELECT COUNT(*) FILTER (WHERE segmented), COUNT(*) FILTER (WHERE error IS NOT NULL)
                    FROM images INDEXED BY images_well WHERE plate_id = ?
                    """, arguments: [id])!
                progress.images = images[0]
                progress.unreadableImages = images[1]
                for r in try Row.fetchAll(db, sql: SQLiteSchema.plateProgress[0], arguments: [id]) {
                    let n: Int = r[1]
                    switch JobState(rawValue: r[0]) {
                    case .queued?: progress.queued += n
                    case .running?: progress.running += n
                    case .succeeded?: progress.succeeded += n
                    case .failed?, nil: progress.failed += n
                    }
                }
                progress.blocked = try Int.fetchOne(db, sql: SQLiteSchema.plateProgress[1], arguments: [id]) ?? 0
                progress.imagesMerged = try Int.fetchOne(db, sql: SQLiteSchema.plateProgress[2], arguments: [id]) ?? 0
                progress.finishedLastMinute = try Int.fetchOne(db, sql: """
                    SELECT COUNT(*) FROM jobs INDEXED BY jobs_finished
                    WHERE plate_id = ? AND finished_at >= ? AND finished_at IS NOT NULL AND state IN ('succeeded', 'failed')
                    """, arguments: [id, since]) ?? 0
                return progress
            }
        }
    }

    func identity(plate: String?) throws -> [PlateIdentity] {
        try reading { db in
            let ofPlate = plate == nil ? "" : "i.plate_id = (SELECT id FROM plates WHERE name = :plate) AND"
            let arguments: StatementArguments = plate.map { ["plate": $0] } ?? [:]
            var byPlate: [String: PlateIdentity] = [:]
            for r in try Row.fetchAll(db, sql: """
                SELECT p.name, i.timepoint, i.timepoint_order FROM images i JOIN plates p ON p.id = i.plate_id
                WHERE \(ofPlate) i.segmented AND i.timepoint IS NOT NULL
                GROUP BY p.name, i.timepoint_order, i.timepoint ORDER BY p.name, i.timepoint_order, i.timepoint
                """, arguments: arguments) {
                let name: String = r[0]
                byPlate[name, default: PlateIdentity(plate: name, timepoints: [], channels: [])].timepoints
                    .append(TimePoint(label: r[1], order: r[2]))
            }
            for r in try Row.fetchAll(db, sql: """
                SELECT p.name, i.channel, i.segmented, COUNT(*) FROM images i JOIN plates p ON p.id = i.plate_id
                WHERE \(ofPlate) 1 GROUP BY p.name, i.channel, i.segmented ORDER BY p.name, i.channel
                """, arguments: arguments) {
                let name: String = r[0]
                byPlate[name, default: PlateIdentity(plate: name, timepoints: [], channels: [])].channels
                    .append((channel: r[1], segmented: r[2], images: r[3]))
            }
            return byPlate.values.sorted { $0.plate < $1.plate }
        }
    }

    func storage(plate: String?) throws -> [PlateStorage] {
        try reading { db in
            // Two grouped passes (cells' counts by image, outputs by job), not one per plate.
            let only = plate == nil ? "" : "WHERE p.name = ?"
            let arguments = StatementArguments(plate.map { [$0] } ?? [])
            var storage = Dictionary(uniqueKeysWithValues: try String.fetchAll(db, sql: "SELECT name FROM plates p \(only)", arguments: arguments)
                .map { ($0, PlateStorage(plate: $0, cellBytes: 0, tileOutputBytes: 0, tileOutputs: 0)) })
            for r in try Row.fetchAll(db, sql: """
                SELECT p.name, SUM(c.stored_bytes) FROM image_counts c JOIN images i ON i.id = c.image_id JOIN plates p ON p.id = i.plate_id
                \(only) GROUP BY p.name
                """, arguments: arguments) { storage[r[0]]?.cellBytes = r[1] }
            for r in try Row.fetchAll(db, sql: """
                SELECT p.name, SUM(length(o.bytes)), COUNT(*) FROM outputs o JOIN jobs j ON j.id = o.job_id JOIN plates p ON p.id = j.plate_id
                \(only) GROUP BY p.name
                """, arguments: arguments) {
                storage[r[0]]?.tileOutputBytes = r[1]
                storage[r[0]]?.tileOutputs = r[2]
            }
            return storage.values.sorted { $0.plate < $1.plate }
        }
    }

    func verify() throws {
        let damaged = try reading { db in
            let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT IN ('cells', 'outputs')")
            return try tables.contains { try String.fetchAll(db, sql: "PRAGMA quick_check(\($0.quotedDatabaseIdentifier))") != ["ok"] }
        }
        guard !damaged else { throw JobStoreError.damaged(location: path) }
    }

    func databaseBytes() throws -> Int {
        [path, path + "-wal"].reduce(0) { total, file in
            total + ((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0)
        }
    }

    func jobs(plate: String?) throws -> [JobSnapshot] {
        try reading { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT id, kind, state, attempts, waiting_on, last_error FROM jobs
                    WHERE :plate IS NULL OR plate_id = (SELECT id FROM plates WHERE name = :plate) ORDER BY id
                    """,
                arguments: ["plate": plate]
            ).map { r in
                JobSnapshot(id: r[0], kind: r[1], state: JobState(rawValue: r[2]) ?? .failed, attempts: r[3],
                            waitingOn: r[4], lastError: r[5])
            }
        }
    }

    func images(plate: String?) throws -> [StoredImage] {
        try reading { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT i.id, p.name, i.path, i.well, i.field, i.width, i.height, i.content_hash, i.error, j.id, j.state,
                           i.timepoint, i.timepoint_order, i.channel, i.plane, i.segmented, i.page, i.file_identity
                    FROM images i JOIN plates p ON p.id = i.plate_id
                    LEFT JOIN jobs j ON j.image_id = i.id AND j.kind = 'merge'
                    \(plate == nil ? "" : "WHERE i.plate_id = (SELECT id FROM plates WHERE name = :plate)")
                    ORDER BY p.name, i.timepoint_order, i.well, i.field, i.path
                    """,
                arguments: ["plate": plate]
            ).map { r in
                StoredImage(id: r[0], plate: r[1], path: r[2], well: r[3], field: r[4],
                            timepoint: Self.timepoint(r[11], r[12]), channel: r[13], plane: r[14], page: r[16], segmented: r[15],
                            width: r[5], height: r[6],
                            contentHash: r[7], error: r[8], mergeJobID: r[9], mergeState: (r[10] as String?).flatMap(JobState.init),
                            fileIdentity: r[17])
            }
        }
    }

    func artifact(of jobID: JobID) throws -> [UInt8]? {
        try reading { db in
            try Data.fetchOne(db, sql: "SELECT bytes FROM outputs WHERE job_id = ?", arguments: [jobID]).map { [UInt8]($0) }
        }
    }

    func jobsWithErrors(state: JobState, plate: String?, limit: Int) throws -> [FailedJob] {
        try reading { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT j.id, p.name, j.kind, i.path, j.attempts, j.last_error
                    FROM jobs j INDEXED BY jobs_errors JOIN plates p ON p.id = j.plate_id LEFT JOIN images i ON i.id = j.image_id
                    WHERE j.state = :state AND j.last_error IS NOT NULL AND (:plate IS NULL OR p.name = :plate)
                      AND (j.state = 'failed' OR j.attempts > 0) -- a job put back by `retry` starts afresh
                    ORDER BY j.id LIMIT :limit
                    """,
                arguments: ["state": state.rawValue, "plate": plate, "limit": limit]
            ).map { r in
                FailedJob(id: r[0], plate: r[1], kind: r[2], imagePath: r[3], attempts: r[4], error: r[5] ?? "")
            }
        }
    }

    func unreadableImages(plate: String?) throws -> [(path: String, error: String)] {
        try reading { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT i.path, i.error FROM images i JOIN plates p ON p.id = i.plate_id
                    WHERE i.error IS NOT NULL AND (:plate IS NULL OR p.name = :plate) ORDER BY i.path
                    """,
                arguments: ["plate": plate]
            ).map { (path: $0[0], error: $0[1]) }
        }
    }

    func dependencyArtifacts(of jobID: JobID) throws -> [StoredArtifact] {
        try reading { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT j.id, j.kind, j.args, o.bytes FROM job_dependencies d
                    JOIN jobs j ON j.id = d.depends_on LEFT JOIN outputs o ON o.job_id = j.id
                    WHERE d.job_id = ? AND j.state = 'succeeded' ORDER BY j.id
                    """,
                arguments: [jobID]
            ).map { r in
                let data: Data? = r[3]
                return StoredArtifact(jobID: r[0], kind: r[1], args: r[2], bytes: data.map { [UInt8]($0) } ?? [])
            }
        }
    }

    func provenance(imageID: Int64) throws -> [(job: JobID, kind: String, args: String, provenance: String?)] {
        try reading { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT j.id, j.kind, j.args, pr.text FROM jobs j LEFT JOIN artifacts a ON a.job_id = j.id
                    LEFT JOIN provenances pr ON pr.id = a.provenance_id
                    WHERE j.image_id = ? ORDER BY j.kind DESC, j.id
                    """,
                arguments: [imageID]
            ).map { (job: $0[0], kind: $0[1], args: $0[2], provenance: $0[3]) }
        }
    }

    func jobTimes(plate: String) throws -> [(kind: String, jobs: Int, seconds: Double)] {
        try reading { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT kind, COUNT(*), TOTAL(finished_at - started_at) FROM jobs
                    WHERE state = 'succeeded' AND plate_id = (SELECT id FROM plates WHERE name = ?)
                    GROUP BY kind ORDER BY kind
                    """,
                arguments: [plate]
            ).map { (kind: $0[0], jobs: $0[1], seconds: $0[2]) }
        }
    }

    func provenanceGroups(plate: String?) throws -> [String: [ProvenanceGroup]] {
        try reading { db in
            var groups: [String: [ProvenanceGroup]] = [:]
            for r in try Row.fetchAll(
                db,
                sql: """
                    SELECT p.name, j.kind, pr.text, COUNT(*) FROM jobs j JOIN artifacts a ON a.job_id = j.id
                    JOIN provenances pr ON pr.id = a.provenance_id JOIN plates p ON p.id = j.plate_id
                    WHERE j.state = 'succeeded'
                      \(plate == nil ? "" : "AND j.plate_id = (SELECT id FROM plates WHERE name = ?)")
                    GROUP BY p.name, j.kind, pr.text ORDER BY p.name, j.kind, pr.text
                    """,
                arguments: StatementArguments(plate.map { [$0] } ?? [])) {
                groups[r[0], default: []].append(ProvenanceGroup(kind: r[1], provenance: r[2], jobs: r[3]))
            }
            return groups
        }
    }

    func jobs(plate: String, kind: String, provenance: String) throws -> [JobID] {
        try reading { db in
            try JobID.fetchAll(
                db,
                sql: """
                    SELECT j.id FROM artifacts a INDEXED BY artifacts_provenance JOIN jobs j ON j.id = a.job_id
                    WHERE a.provenance_id = (SELECT id FROM provenances WHERE text = ?) AND j.state = 'succeeded'
                      AND j.kind = ? AND j.plate_id = (SELECT id FROM plates WHERE name = ?)
                    ORDER BY j.id
                    """,
                arguments: [provenance, kind, plate])
        }
    }

    func provenancesInUse() throws -> [(kind: String, provenance: String)] {
        try reading { db in
            try Row.fetchAll(db, sql: SQLiteSchema.provenancesInUse).map { (kind: $0[0], provenance: $0[1]) }
        }
    }

    func provenanceRecords(plate: String) throws -> [String] {
        try reading { db in
            try String.fetchAll(
                db,
                sql: """
                    SELECT pr.text FROM provenances pr WHERE pr.id IN (
                        SELECT a.provenance_id FROM artifacts a JOIN jobs j ON j.id = a.job_id
                        WHERE j.plate_id = (SELECT id FROM plates WHERE name = ?))
                    ORDER BY pr.text
                    """,
                arguments: [plate])
        }
    }

    func artifactCount(plate: String?) throws -> Int {
        try reading { db in
            try Int.fetchOne(
                db,
                sql: """
                    SELECT COUNT(*) FROM outputs o JOIN jobs j ON j.id = o.job_id
                    WHERE :plate IS NULL OR j.plate_id = (SELECT id FROM plates WHERE name = :plate)
                    """,
                arguments: ["plate": plate]) ?? 0
        }
    }

    func image(id: Int64) throws -> (path: String, width: Int, height: Int)? {
        try reading { db in
            try Row.fetchOne(db, sql: "SELECT path, width, height FROM images WHERE id = ?", arguments: [id])
                .map { (path: $0[0], width: $0[1], height: $0[2]) }
        }
    }

    func cells(ofImages ids: [Int64], cellType: String?) throws -> [Int64: [CellRecord]] {
        guard !ids.isEmpty else { return [:] }
        return try reading { db in
            var byImage: [Int64: [CellRecord]] = [:]
            // Integers, so they can be written into the statement; `cells_image` reads only
            // these images' cells.
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT image_id, cell_type, score, area, box_x, box_y, box_width, box_height, centroid_x, centroid_y, rle
                    FROM cells INDEXED BY cells_image WHERE image_id IN (\(ids.map(String.init).joined(separator: ",")))
                    \(cellType == nil ? "" : "AND cell_type = ?") ORDER BY image_id, id
                    """,
                arguments: StatementArguments(cellType.map { [$0] } ?? []))
            while let r = try rows.next() {
                byImage[r[0], default: []].append(
                    CellRecord(cellType: r[1], score: r[2], area: r[3], box: (r[4], r[5], r[6], r[7]), centroid: (r[8], r[9]), rle: r[10]))
            }
            return byImage
        }
    }

    /// From the counts kept per image and type: a plate is counted from one row per image and
    /// type, and only the conditions given are in the statement, so that the plate's own index
    /// is used, whatever else the database holds.
    func wellCounts(_ q: CellQuery) throws -> [WellCount] {
        var conditions: [String] = []
        var arguments: StatementArguments = [:]
        if let plate = q.plate { conditions.append("i.plate_id = (SELECT id FROM plates WHERE name = :plate)"); arguments += ["plate": plate] }
        if let well = q.well { conditions.append("i.well = :well"); arguments += ["well": well] }
        if let type = q.cellType { conditions.append("c.cell_type = :type"); arguments += ["type": type] }
        if let image = q.image { conditions.append("i.path = :image"); arguments += ["image": image] }
        if let timepoint = q.timepoint { conditions.append("i.timepoint = :timepoint"); arguments += ["timepoint": timepoint] }
        return try reading { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT p.name, COALESCE(i.well, '?'), c.cell_type, SUM(c.cells), COUNT(*), 1.0 * SUM(c.area_sum) / SUM(c.cells),
                           SUM(c.score_sum) / SUM(c.cells), i.timepoint, i.timepoint_order
                    FROM image_counts c JOIN images i ON i.id = c.image_id JOIN plates p ON p.id = i.plate_id
                    \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND "))
                    GROUP BY p.name, i.well, i.timepoint_order, i.timepoint, c.cell_type
                    ORDER BY p.name, i.well, i.timepoint_order, i.timepoint, c.cell_type
                    """,
                arguments: arguments
            ).map { r in
                WellCount(plate: r[0], well: r[1], timepoint: Self.timepoint(r[7], r[8]), cellType: r[2], cells: r[3], images: r[4],
                          meanArea: r[5], meanScore: r[6])
            }
        }
    }

    private static func timepoint(_ label: String?, _ order: Int?) -> TimePoint? {
        guard let label, let order else { return nil }
        return TimePoint(label: label, order: order)
    }
}
