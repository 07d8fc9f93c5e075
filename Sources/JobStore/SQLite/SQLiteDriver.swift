import Foundation
import GRDB
import Synchronization

/// The embedded driver: one SQLite file in WAL mode, shared by the processes of one machine.
/// Its clock is this machine's.
final class SQLiteDriver: StoreDriver {
    private let pool: DatabasePool
    let path: String
    private let plateNames = Mutex<[Int64: String]>([:])

    var location: String { path }

    /// Opens (or, unless `mustExist`, creates) the database at `path`.
    init(path: String, mustExist: Bool) throws {
        self.path = path
        var isFolder: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isFolder)
        if isFolder.boolValue {
            throw JobStoreError.database(path: path, reason: "is a folder; pass --db a file path (it is created if missing) or a postgres:// URL")
        }
        if mustExist && !exists {
            throw JobStoreError.database(path: path, reason: "no job database here; pass --db with the file or URL that `plateseg submit` or `plateseg run` used")
        }
        var config = Configuration()
        // Several worker processes write the same file; wait for the lock rather than fail, but
        // well inside a heartbeat interval, so that a stuck writer cannot cost a lease.
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
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
                case .SQLITE_CANTOPEN where !FileManager.default.fileExists(atPath: (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent):
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
            var summary = SubmitSummary(newImages: 0, unreadableImages: 0, newJobs: 0)
            var imageIDs: [String: Int64] = [:]
            for image in s.images {
                try db.execute(
                    sql: """
                        INSERT INTO images (plate_id, path, well, field, timepoint, timepoint_order, channel, plane, page, segmented,
                                            width, height, content_hash, error, created_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT(plate_id, path) DO UPDATE SET
                            well = excluded.well, field = excluded.field, timepoint = excluded.timepoint,
                            timepoint_order = excluded.timepoint_order, channel = excluded.channel, plane = excluded.plane,
                            page = excluded.page, segmented = excluded.segmented, width = excluded.width, height = excluded.height,
                            content_hash = excluded.content_hash, error = excluded.error
                        WHERE images.error IS NOT NULL AND excluded.error IS NULL
                        """,
                    arguments: [plateID, image.path, image.well, image.field, image.timepoint?.label, image.timepoint?.order,
                                image.channel, image.plane, image.page, image.segmented, image.width, image.height,
                                image.contentHash, image.error, now])
                if db.changesCount > 0 {
                    summary.newImages += 1
                    if image.error != nil { summary.unreadableImages += 1 }
                }
                imageIDs[image.path] = try Int64.fetchOne(
                    db, sql: "SELECT id FROM images WHERE plate_id = ? AND path = ?", arguments: [plateID, image.path])
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
            try db.cachedStatement(sql: "INSERT OR REPLACE INTO artifacts (job_id, bytes, provenance, created_at) VALUES (?, ?, ?, ?)")
                .execute(arguments: [lease.jobID, Data(result.artifact ?? []), result.provenance, now])
        }
        if let cells = result.cells {
            try replaceCells(db, mergeJob: lease.jobID, cells: cells)
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
            // A merge cannot run again from tile outputs that were pruned: those tiles run again first.
            let pruned = try Int64.fetchAll(db, sql: """
                SELECT DISTINCT d.depends_on FROM job_dependencies d JOIN jobs j ON j.id = d.depends_on
                WHERE d.job_id IN (SELECT id FROM retried) AND j.state = 'succeeded'
                  AND NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.job_id = d.depends_on)
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
            let prunable = """
                SELECT j.id FROM jobs j JOIN artifacts a ON a.job_id = j.id
                WHERE j.plate_id = :plate AND j.kind = 'infer' AND j.state = 'succeeded'
                  AND EXISTS (SELECT 1 FROM jobs m WHERE m.image_id = j.image_id AND m.kind = 'merge' AND m.state = 'succeeded')
                """
            let row = try Row.fetchOne(db, sql: """
                SELECT COUNT(*), COALESCE(SUM(length(a.bytes)), 0), COUNT(DISTINCT j.image_id)
                FROM artifacts a JOIN jobs j ON j.id = a.job_id WHERE a.job_id IN (\(prunable))
                """, arguments: ["plate": plateID])!
            try db.execute(sql: "DELETE FROM artifacts WHERE job_id IN (\(prunable))", arguments: ["plate": plateID])
            return PrunedArtifacts(artifacts: row[0], bytes: row[1], images: row[2])
        }
    }

    // MARK: reading

    func progress(plate: String?, now: Double?) throws -> [PlateProgress] {
        let since = time(now) - 60
        return try reading { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT p.name,
                        (SELECT COUNT(*) FROM images i WHERE i.plate_id = p.id AND i.segmented) AS images,
                        (SELECT COUNT(*) FROM images i WHERE i.plate_id = p.id AND i.error IS NOT NULL) AS unreadable,
                        COUNT(j.id) FILTER (WHERE j.kind = 'merge' AND j.state = 'succeeded') AS merged,
                        COUNT(j.id) FILTER (WHERE j.state = 'queued') AS queued,
                        COUNT(j.id) FILTER (WHERE j.state = 'queued' AND j.waiting_on > 0) AS blocked,
                        COUNT(j.id) FILTER (WHERE j.state = 'running') AS running,
                        COUNT(j.id) FILTER (WHERE j.state = 'succeeded') AS succeeded,
                        COUNT(j.id) FILTER (WHERE j.state = 'failed') AS failed,
                        COUNT(j.id) FILTER (WHERE j.state IN ('succeeded', 'failed') AND j.finished_at >= :since) AS recent
                    FROM plates p LEFT JOIN jobs j ON j.plate_id = p.id
                    WHERE :plate IS NULL OR p.name = :plate
                    GROUP BY p.id ORDER BY p.name
                    """,
                arguments: ["since": since, "plate": plate])
            return rows.map { r in
                PlateProgress(plate: r["name"], images: r["images"], unreadableImages: r["unreadable"], imagesMerged: r["merged"],
                              queued: r["queued"],
                              blocked: r["blocked"], running: r["running"], succeeded: r["succeeded"], failed: r["failed"],
                              finishedLastMinute: r["recent"])
            }
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
                           i.timepoint, i.timepoint_order, i.channel, i.plane, i.segmented, i.page
                    FROM images i JOIN plates p ON p.id = i.plate_id
                    LEFT JOIN jobs j ON j.image_id = i.id AND j.kind = 'merge'
                    WHERE :plate IS NULL OR p.name = :plate ORDER BY p.name, i.timepoint_order, i.well, i.field, i.path
                    """,
                arguments: ["plate": plate]
            ).map { r in
                StoredImage(id: r[0], plate: r[1], path: r[2], well: r[3], field: r[4],
                            timepoint: Self.timepoint(r[11], r[12]), channel: r[13], plane: r[14], page: r[16], segmented: r[15],
                            width: r[5], height: r[6],
                            contentHash: r[7], error: r[8], mergeJobID: r[9], mergeState: (r[10] as String?).flatMap(JobState.init))
            }
        }
    }

    func artifact(of jobID: JobID) throws -> [UInt8]? {
        try reading { db in
            try Data.fetchOne(db, sql: "SELECT bytes FROM artifacts WHERE job_id = ?", arguments: [jobID]).map { [UInt8]($0) }
        }
    }

    func jobsWithErrors(state: JobState, plate: String?, limit: Int) throws -> [FailedJob] {
        try reading { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT j.id, p.name, j.kind, i.path, j.attempts, j.last_error
                    FROM jobs j JOIN plates p ON p.id = j.plate_id LEFT JOIN images i ON i.id = j.image_id
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
                    SELECT j.id, j.kind, j.args, a.bytes FROM job_dependencies d
                    JOIN jobs j ON j.id = d.depends_on JOIN artifacts a ON a.job_id = j.id
                    WHERE d.job_id = ? ORDER BY j.id
                    """,
                arguments: [jobID]
            ).map { r in
                let data: Data = r[3]
                return StoredArtifact(jobID: r[0], kind: r[1], args: r[2], bytes: [UInt8](data))
            }
        }
    }

    func provenance(imageID: Int64) throws -> [(job: JobID, kind: String, args: String, provenance: String?)] {
        try reading { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT j.id, j.kind, j.args, a.provenance FROM jobs j LEFT JOIN artifacts a ON a.job_id = j.id
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

    func resultProvenance(plate: String) throws -> [JobProvenance] {
        try reading { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT j.id, j.kind, j.args, a.provenance FROM jobs j JOIN artifacts a ON a.job_id = j.id
                    WHERE j.state = 'succeeded' AND a.provenance IS NOT NULL
                      AND j.plate_id = (SELECT id FROM plates WHERE name = ?)
                    ORDER BY j.id
                    """,
                arguments: [plate]
            ).map { JobProvenance(job: $0[0], kind: $0[1], args: $0[2], provenance: $0[3]) }
        }
    }

    func provenanceRecords(plate: String) throws -> [String] {
        try reading { db in
            try String.fetchAll(
                db,
                sql: """
                    SELECT DISTINCT a.provenance FROM artifacts a JOIN jobs j ON j.id = a.job_id
                    WHERE a.provenance IS NOT NULL AND j.plate_id = (SELECT id FROM plates WHERE name = ?)
                    ORDER BY a.provenance
                    """,
                arguments: [plate])
        }
    }

    func artifactCount(plate: String?) throws -> Int {
        try reading { db in
            try Int.fetchOne(
                db,
                sql: """
                    SELECT COUNT(*) FROM artifacts a JOIN jobs j ON j.id = a.job_id
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

    func cells(_ q: CellQuery) throws -> [LocatedCell] {
        try reading { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT p.name, i.well, i.field, i.path, i.width, i.height, c.cell_type, c.score, c.area,
                           c.box_x, c.box_y, c.box_width, c.box_height, c.centroid_x, c.centroid_y, c.rle,
                           i.timepoint, i.timepoint_order, i.channel
                    FROM cells c JOIN images i ON i.id = c.image_id JOIN plates p ON p.id = i.plate_id
                    WHERE \(Self.cellConditions)
                    ORDER BY p.name, i.timepoint_order, i.well, i.field, i.path, c.id
                    """,
                arguments: Self.cellArguments(q)
            ).map { r in
                LocatedCell(
                    plate: r[0], well: r[1], field: r[2], timepoint: Self.timepoint(r[16], r[17]), channel: r[18],
                    imagePath: r[3], imageWidth: r[4], imageHeight: r[5],
                    cell: CellRecord(cellType: r[6], score: r[7], area: r[8], box: (r[9], r[10], r[11], r[12]),
                                     centroid: (r[13], r[14]), rle: r[15]))
            }
        }
    }

    func wellCounts(_ q: CellQuery) throws -> [WellCount] {
        try reading { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT p.name, COALESCE(i.well, '?'), c.cell_type, COUNT(*), COUNT(DISTINCT i.id), AVG(c.area), AVG(c.score),
                           i.timepoint, i.timepoint_order
                    FROM cells c JOIN images i ON i.id = c.image_id JOIN plates p ON p.id = i.plate_id
                    WHERE \(Self.cellConditions)
                    GROUP BY p.name, i.well, i.timepoint_order, i.timepoint, c.cell_type
                    ORDER BY p.name, i.well, i.timepoint_order, i.timepoint, c.cell_type
                    """,
                arguments: Self.cellArguments(q)
            ).map { r in
                WellCount(plate: r[0], well: r[1], timepoint: Self.timepoint(r[7], r[8]), cellType: r[2], cells: r[3], images: r[4],
                          meanArea: r[5], meanScore: r[6])
            }
        }
    }

    private static let cellConditions = """
        (:plate IS NULL OR p.name = :plate) AND (:well IS NULL OR i.well = :well)
          AND (:type IS NULL OR c.cell_type = :type) AND (:image IS NULL OR i.path = :image)
          AND (:timepoint IS NULL OR i.timepoint = :timepoint)
        """

    private static func cellArguments(_ q: CellQuery) -> StatementArguments {
        ["plate": q.plate, "well": q.well, "type": q.cellType, "image": q.image, "timepoint": q.timepoint]
    }

    private static func timepoint(_ label: String?, _ order: Int?) -> TimePoint? {
        guard let label, let order else { return nil }
        return TimePoint(label: label, order: order)
    }
}
