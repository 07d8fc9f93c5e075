import Foundation
import PostgresNIO

/// The driver for many machines: one PostgreSQL database shared by workers on every host.
/// Claims skip rows other workers hold (`FOR UPDATE SKIP LOCKED`), every time is the server's
/// (`plateseg_now`), artifacts are `bytea` so that a merge on any host reads the tiles of any
/// other, and the hot operations are one statement, one round trip, one commit each.
final class PostgresDriver: StoreDriver {
    private let connections: PostgresConnections

    var location: String { connections.address.redacted }

    /// `readOnly`: a reader (status, query, …) checks the schema but never makes or changes it,
    /// so that a role that may only read can use it.
    init(address: PostgresAddress, readOnly: Bool = false) throws {
        connections = try PostgresConnections(address: address)
        if readOnly {
            try PostgresSchema.requireCurrent(connections)
        } else {
            try PostgresSchema.migrate(connections)
        }
    }

    // MARK: submit

    private struct ImageRow: Encodable {
        var path: String
        var well: String?
        var field: Int?
        var timepoint: String?
        var timepoint_order: Int?
        var channel: String?
        var plane: Int?
        var page: Int?
        var segmented: Bool
        var width: Int
        var height: Int
        var hash: String
        var error: String?
        var identity: String?
    }

    private struct JobRow: Encodable {
        var ord: Int
        var key: String
        var kind: String
        var image_id: Int64?
        var args: String
        var max_attempts: Int
    }

    private struct DependencyRow: Encodable {
        var job: String
        var dep: String
    }

    private static func json(_ value: some Encodable) -> String {
        String(decoding: try! JSONEncoder().encode(value), as: UTF8.self)
    }

    func submit(_ s: PlateSubmission, now: Double?) throws -> SubmitSummary {
        try connections.transaction(timed: false) { tx in
            let q = Statement()
            try tx.run(q.query("""
                INSERT INTO plates (name, root, settings, created_at)
                VALUES (\(q.bind(s.plate)), \(q.bind(s.root)), \(q.bind(s.settings)), plateseg_now(\(q.bind(now))))
                ON CONFLICT (name) DO NOTHING
                """))
            let p = Statement()
            let plate = try tx.run(p.query("SELECT id, settings FROM plates WHERE name = \(p.bind(s.plate))")).first!
            let (plateID, settings) = try plate.decode((Int64, String).self)
            guard settings == s.settings else { throw JobStoreError.settingsChanged(plate: s.plate, was: settings, now: s.settings) }
            if s.keepTileOutputs {
                let k = Statement()
                try tx.run(k.query("UPDATE plates SET keep_tile_outputs = true WHERE id = \(k.bind(plateID))"))
            }

            var summary = SubmitSummary(newImages: 0, unreadableImages: 0, newJobs: 0)
            var seen = Set<String>()
            let images = s.images.filter { seen.insert($0.path).inserted }.map {
                ImageRow(path: $0.path, well: $0.well, field: $0.field, timepoint: $0.timepoint?.label, timepoint_order: $0.timepoint?.order,
                         channel: $0.channel, plane: $0.plane, page: $0.page, segmented: $0.segmented,
                         width: $0.width, height: $0.height, hash: $0.contentHash, error: $0.error, identity: $0.fileIdentity)
            }
            let i = Statement()
            let added = try tx.run(i.query("""
                INSERT INTO images (plate_id, path, well, field, timepoint, timepoint_order, channel, plane, page, segmented,
                                    width, height, content_hash, error, created_at, file_identity)
                SELECT \(i.bind(plateID)), x.path, x.well, x.field, x.timepoint, x.timepoint_order, x.channel, x.plane, x.page, x.segmented,
                       x.width, x.height, x.hash, x.error, plateseg_now(\(i.bind(now))), x.identity
                FROM jsonb_to_recordset(\(i.bind(Self.json(images)))::jsonb)
                    AS x(path text, well text, field integer, timepoint text, timepoint_order integer, channel text, plane integer,
                         page integer, segmented boolean, width integer, height integer, hash text, error text, identity text)
                ON CONFLICT (plate_id, path) DO UPDATE SET
                    well = excluded.well, field = excluded.field, timepoint = excluded.timepoint,
                    timepoint_order = excluded.timepoint_order, channel = excluded.channel, plane = excluded.plane,
                    page = excluded.page, segmented = excluded.segmented, width = excluded.width, height = excluded.height,
                    content_hash = excluded.content_hash, error = excluded.error, file_identity = excluded.file_identity
                WHERE images.error IS NOT NULL AND (excluded.error IS NULL OR excluded.error <> images.error)
                RETURNING error IS NOT NULL
                """))
            for row in added {
                summary.newImages += 1
                if try row.decode(Bool.self) { summary.unreadableImages += 1 }
            }
            // The same bytes found again under another identity (copied back, touched): remembered,
            // so that the next resubmission need not read them either.
            let r = Statement()
            try tx.run(r.query("""
                UPDATE images SET file_identity = x.identity
                FROM jsonb_to_recordset(\(r.bind(Self.json(images)))::jsonb) AS x(path text, hash text, error text, identity text)
                WHERE images.plate_id = \(r.bind(plateID)) AND images.path = x.path AND x.error IS NULL AND x.identity IS NOT NULL
                  AND images.content_hash = x.hash AND images.file_identity IS DISTINCT FROM x.identity
                """))
            // Errors of files this folder no longer holds or lists (a manifest row mended, a stray
            // file removed) are gone with them; an image that has jobs is never removed.
            let g = Statement()
            try tx.run(g.query("""
                DELETE FROM images i WHERE i.plate_id = \(g.bind(plateID)) AND i.error IS NOT NULL
                  AND starts_with(i.path, \(g.bind(s.root.hasSuffix("/") ? s.root : s.root + "/")))
                  AND i.path <> ALL(\(g.bind(images.map(\.path))))
                  AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.image_id = i.id)
                """))
            let ids = Statement()
            var imageIDs: [String: Int64] = [:]
            for row in try tx.run(ids.query("SELECT path, id FROM images WHERE plate_id = \(ids.bind(plateID))")) {
                let (path, id) = try row.decode((String, Int64).self)
                imageIDs[path] = id
            }

            let jobs = try s.jobs.enumerated().map { ord, job in
                var imageID: Int64?
                if let path = job.imagePath {
                    guard let id = imageIDs[path] else { throw JobStoreError.unknownImage(path) }
                    imageID = id
                }
                return JobRow(ord: ord, key: job.key, kind: job.kind, image_id: imageID, args: job.args, max_attempts: job.maxAttempts)
            }
            let j = Statement()
            var created: [String: Int64] = [:]
            for row in try tx.run(j.query("""
                INSERT INTO jobs (key, kind, plate_id, image_id, args, state, max_attempts, created_at)
                SELECT x.key, x.kind, \(j.bind(plateID)), x.image_id, x.args, 'queued', x.max_attempts, plateseg_now(\(j.bind(now)))
                FROM jsonb_to_recordset(\(j.bind(Self.json(jobs)))::jsonb)
                    AS x(ord integer, key text, kind text, image_id bigint, args text, max_attempts integer)
                ORDER BY x.ord
                ON CONFLICT (key) DO NOTHING
                RETURNING key, id
                """)) {
                let (key, id) = try row.decode((String, Int64).self)
                created[key] = id
            }
            summary.newJobs = created.count

            let dependencies = s.jobs.filter { created[$0.key] != nil }.flatMap { job in
                job.dependsOn.map { DependencyRow(job: job.key, dep: $0) }
            }
            guard !dependencies.isEmpty else { return summary }
            let pairs = Self.json(dependencies)
            let u = Statement()
            if let unknown = try tx.run(u.query("""
                SELECT x.job, x.dep FROM jsonb_to_recordset(\(u.bind(pairs))::jsonb) AS x(job text, dep text)
                WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE key = x.dep) LIMIT 1
                """)).first {
                let (job, dep) = try unknown.decode((String, String).self)
                throw JobStoreError.database(path: location, reason: "job \(job) depends on unknown job \(dep)")
            }
            let d = Statement()
            try tx.run(d.query("""
                INSERT INTO job_dependencies (job_id, depends_on)
                SELECT j.id, d.id FROM jsonb_to_recordset(\(d.bind(pairs))::jsonb) AS x(job text, dep text)
                JOIN jobs j ON j.key = x.job JOIN jobs d ON d.key = x.dep
                ON CONFLICT DO NOTHING
                """))
            let w = Statement()
            try tx.run(w.query("""
                UPDATE jobs SET waiting_on = (
                    SELECT COUNT(*) FROM job_dependencies d JOIN jobs j ON j.id = d.depends_on
                    WHERE d.job_id = jobs.id AND j.state <> 'succeeded')
                WHERE id = ANY(\(w.bind(Array(created.values))))
                """))
            return summary
        }
    }

    // MARK: the lease cycle

    private func claimedJob(_ row: PostgresRow, owner: String, skipping first: Bool = false) throws -> ClaimedJob {
        let (id, kind, args, plate, imageID, attempt, maxAttempts, token, deadline): (Int64, String, String, String, Int64?, Int, Int, Int64, Double)
        if first {
            (_, id, kind, args, plate, imageID, attempt, maxAttempts, token, deadline) =
                try row.decode((Bool, Int64, String, String, String, Int64?, Int, Int, Int64, Double).self)
        } else {
            (id, kind, args, plate, imageID, attempt, maxAttempts, token, deadline) =
                try row.decode((Int64, String, String, String, Int64?, Int, Int, Int64, Double).self)
        }
        return ClaimedJob(id: id, kind: kind, args: args, plate: plate, imageID: imageID, attempt: attempt, maxAttempts: maxAttempts,
                          lease: Lease(jobID: id, token: token, owner: owner, deadline: deadline, attempt: attempt, maxAttempts: maxAttempts))
    }

    func claim(owner: String, leaseSeconds: Double, plate: String?, now: Double?) throws -> ClaimedJob? {
        let s = Statement()
        return try connections.run(s.query(
            "SELECT * FROM plateseg_claim(\(s.bind(owner)), \(s.bind(leaseSeconds)), \(s.bind(plate)), \(s.bind(now)))"
        )).first.map { try claimedJob($0, owner: owner) }
    }

    func heartbeat(_ lease: Lease, leaseSeconds: Double, now: Double?) throws -> Lease {
        let s = Statement()
        let row = try connections.run(s.query("""
            UPDATE jobs SET lease_deadline = plateseg_now(\(s.bind(now))) + \(s.bind(leaseSeconds))
            WHERE id = \(s.bind(lease.jobID)) AND fencing_token = \(s.bind(lease.token)) AND state = 'running'
            RETURNING lease_deadline
            """)).first
        guard let row else { throw JobStoreError.leaseLost(lease.jobID) }
        return lease.extended(to: try row.decode(Double.self))
    }

    private struct CellRow: Encodable {
        var cell_type: String
        var score: Double
        var area: Int
        var box_x: Int
        var box_y: Int
        var box_width: Int
        var box_height: Int
        var centroid_x: Double
        var centroid_y: Double
        var rle: String
    }

    /// The arguments of `plateseg_complete`, in its order.
    private func completeArguments(_ s: Statement, _ lease: Lease, _ result: JobResult, now: Double?) -> String {
        let cells = result.cells.map { cells in
            Self.json(cells.map {
                CellRow(cell_type: $0.cellType, score: $0.score, area: $0.area, box_x: $0.box.x, box_y: $0.box.y, box_width: $0.box.width,
                        box_height: $0.box.height, centroid_x: $0.centroid.x, centroid_y: $0.centroid.y, rle: $0.rle)
            })
        }
        let store = result.artifact != nil || result.provenance != nil
        return [s.bind(lease.jobID), s.bind(lease.token), s.bind(now), s.bind(store),
                s.bind(ByteBuffer(bytes: result.artifact ?? [])), s.bind(result.provenance), "\(s.bind(cells))::jsonb",
                s.bind(result.dropsInputs)]
            .joined(separator: ", ")
    }

    func complete(_ lease: Lease, result: JobResult, now: Double?) throws {
        let s = Statement()
        let row = try connections.run(s.query("SELECT plateseg_complete(\(completeArguments(s, lease, result, now: now)))")).first
        guard let row, try row.decode(Bool.self) else { throw JobStoreError.leaseLost(lease.jobID) }
    }

    /// Completion and the next claim in one call: one round trip and one commit per job. The
    /// claim happens only if the completion did (a lost lease claims nothing), and sees the jobs
    /// the completion made ready (an image's last tile hands over its merge).
    func completeAndClaim(_ lease: Lease, result: JobResult, owner: String, leaseSeconds: Double, plate: String?,
                          now: Double?) throws -> ClaimedJob? {
        let s = Statement()
        let arguments = completeArguments(s, lease, result, now: now)
        let row = try connections.run(s.query("""
            SELECT * FROM plateseg_complete_and_claim(\(arguments), \(s.bind(owner)), \(s.bind(leaseSeconds)), \(s.bind(plate)))
            """)).first
        guard let row, try row.decode(Bool.self) else { throw JobStoreError.leaseLost(lease.jobID) }
        guard row.makeRandomAccess()[1].bytes != nil else { return nil }
        return try claimedJob(row, owner: owner, skipping: true)
    }

    func fail(_ lease: Lease, error: String, requeueAfter: Double?, now: Double?) throws {
        let s = Statement()
        let requeue = s.bind(requeueAfter != nil)
        let now = s.bind(now)
        let rows = try connections.run(s.query("""
            UPDATE jobs SET
                state = CASE WHEN \(requeue) THEN 'queued' ELSE 'failed' END,
                finished_at = CASE WHEN \(requeue) THEN NULL ELSE plateseg_now(\(now)) END,
                not_before = plateseg_now(\(now)) + \(s.bind(requeueAfter ?? 0)),
                last_error = \(s.bind(error)), lease_owner = NULL, lease_deadline = NULL
            WHERE id = \(s.bind(lease.jobID)) AND fencing_token = \(s.bind(lease.token)) AND state = 'running'
            RETURNING id
            """))
        guard rows.count == 1 else { throw JobStoreError.leaseLost(lease.jobID) }
    }

    func release(_ lease: Lease) throws {
        let s = Statement()
        let rows = try connections.run(s.query("""
            UPDATE jobs SET state = 'queued', attempts = attempts - 1, lease_owner = NULL, lease_deadline = NULL
            WHERE id = \(s.bind(lease.jobID)) AND fencing_token = \(s.bind(lease.token)) AND state = 'running'
            RETURNING id
            """))
        guard rows.count == 1 else { throw JobStoreError.leaseLost(lease.jobID) }
    }

    func leaseOwners() throws -> [String] {
        try read { _ in
            "SELECT DISTINCT lease_owner COLLATE \"C\" FROM jobs WHERE state = 'running' AND lease_owner IS NOT NULL ORDER BY 1"
        }.map { try $0.decode(String.self) }
    }

    func rescueLeases(heldBy ownerPrefix: String?, now: Double?, reason: LeaseRescuer.Reason) throws -> [JobID] {
        let s = Statement()
        let now = s.bind(now), owner = s.bind(ownerPrefix)
        return try connections.run(s.query("""
            UPDATE jobs SET
                state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
                last_error = \(s.bind(reason.before)) || COALESCE(lease_owner, '?') || \(s.bind(reason.after))
                    || CASE WHEN attempts >= max_attempts THEN \(s.bind(reason.exhausted)) ELSE '' END,
                finished_at = CASE WHEN attempts >= max_attempts THEN plateseg_now(\(now)) ELSE NULL END,
                lease_owner = NULL, lease_deadline = NULL
            WHERE state = 'running'
              AND (CASE WHEN \(owner)::text IS NULL THEN lease_deadline < plateseg_now(\(now))
                        ELSE substr(lease_owner, 1, length(\(owner)::text)) = \(owner)::text END)
            RETURNING id
            """)).map { try $0.decode(JobID.self) }
    }

    func retry(_ selection: RetrySelection) throws -> Int {
        if let ids = selection.jobIDs, ids.isEmpty { return 0 }
        return try connections.transaction(timed: false) { tx in
            let s = Statement()
            var conditions = ["state <> 'running'"]
            if selection.failedOnly { conditions.append("state = 'failed'") }
            if let ids = selection.jobIDs { conditions.append("id = ANY(\(s.bind(ids)))") }
            if let plate = selection.plate { conditions.append("plate_id = (SELECT id FROM plates WHERE name = \(s.bind(plate)))") }
            let selected = try tx.run(s.query("SELECT id FROM jobs WHERE \(conditions.joined(separator: " AND ")) FOR UPDATE"))
                .map { try $0.decode(Int64.self) }
            guard !selected.isEmpty else { return 0 }
            // A merge cannot run again from tile outputs that were removed: those tiles run again
            // first, for the merges chosen and for those that run again because a tile they read does.
            let p = Statement()
            let chosen = p.bind(selected)
            let pruned = try tx.run(p.query("""
                WITH merges AS (
                    SELECT unnest(\(chosen)::bigint[]) AS id
                    UNION SELECT job_id FROM job_dependencies WHERE depends_on = ANY(\(chosen))
                )
                SELECT DISTINCT d.depends_on FROM job_dependencies d JOIN jobs j ON j.id = d.depends_on
                WHERE d.job_id IN (SELECT id FROM merges) AND j.state = 'succeeded'
                  AND NOT EXISTS (SELECT 1 FROM outputs o WHERE o.job_id = d.depends_on)
                  AND d.depends_on <> ALL(\(chosen))
                """)).map { try $0.decode(Int64.self) }
            let ids = selected + pruned
            let u = Statement()
            try tx.run(u.query("""
                UPDATE jobs SET state = 'queued', attempts = 0, not_before = 0, finished_at = NULL, lease_owner = NULL,
                    lease_deadline = NULL
                WHERE id = ANY(\(u.bind(ids)))
                """))
            // A job run again invalidates what was made from it: its dependants wait for it again,
            // and a dependant that had already succeeded (a merge) runs again afterwards.
            let d = Statement()
            try tx.run(d.query("""
                UPDATE jobs SET
                    waiting_on = (SELECT COUNT(*) FROM job_dependencies x JOIN jobs j ON j.id = x.depends_on
                                  WHERE x.job_id = jobs.id AND j.state <> 'succeeded'),
                    state = CASE WHEN state IN ('succeeded', 'failed') THEN 'queued' ELSE state END,
                    attempts = CASE WHEN state IN ('succeeded', 'failed') THEN 0 ELSE attempts END,
                    finished_at = CASE WHEN state IN ('succeeded', 'failed') THEN NULL ELSE finished_at END
                WHERE id IN (SELECT job_id FROM job_dependencies WHERE depends_on = ANY(\(d.bind(ids))))
                """))
            return ids.count
        }
    }

    func pruneArtifacts(plate: String) throws -> PrunedArtifacts {
        try connections.transaction(timed: false) { tx in
            let s = Statement()
            // The outputs go; their provenance stays (stale results and `trace` read it).
            let row = try tx.run(s.query("""
                WITH read AS (
                    SELECT d.depends_on AS job FROM jobs m JOIN job_dependencies d ON d.job_id = m.id
                    WHERE m.plate_id = (SELECT id FROM plates WHERE name = \(s.bind(plate))) AND m.state = 'succeeded'
                ), gone AS (
                    DELETE FROM outputs o USING jobs j WHERE o.job_id = j.id AND o.job_id IN (SELECT job FROM read)
                    RETURNING octet_length(o.bytes) AS size, j.image_id
                )
                SELECT COUNT(*)::bigint, COALESCE(SUM(size), 0)::bigint, COUNT(DISTINCT image_id)::bigint FROM gone
                """)).first
            let (artifacts, bytes, images) = try row?.decode((Int, Int, Int).self) ?? (0, 0, 0)
            return PrunedArtifacts(artifacts: artifacts, bytes: bytes, images: images)
        }
    }

    // MARK: reading

    /// Reads may be long (a whole plate's cells) and are not bounded by the queue's timeout.
    private func read(_ build: (Statement) -> String) throws -> PostgresQueryResult {
        let s = Statement()
        let sql = build(s)
        return try connections.run(s.query(sql), timed: false)
    }

    func setKeepTileOutputs(plate: String, _ keep: Bool) throws {
        let s = Statement()
        _ = try connections.run(s.query("UPDATE plates SET keep_tile_outputs = \(s.bind(keep)) WHERE name = \(s.bind(plate))"))
    }

    func plates() throws -> [PlateInfo] {
        try read { _ in "SELECT name, root, settings, keep_tile_outputs, created_at FROM plates ORDER BY created_at, id" }.map { row in
            let (name, root, settings, keep, created) = try row.decode((String, String, String, Bool, Double).self)
            return PlateInfo(name: name, root: root, settings: settings, keepTileOutputs: keep, created: created)
        }
    }

    /// Per plate: its images, its jobs by state and kind (`jobs_plate`), the last minute's
    /// (`jobs_finished`): a refresh reads the plate's own rows, whatever else the database holds.
    func progress(plate: String?, now: Double?) throws -> [PlateProgress] {
        try read { s in
            let filter = plate.map { "WHERE p.name = \(s.bind($0))" } ?? ""
            return """
                SELECT p.name, i.images, i.unreadable, j.merged, j.queued, j.blocked, j.running, j.succeeded, j.failed,
                    (SELECT COUNT(*) FROM jobs r WHERE r.plate_id = p.id AND r.finished_at >= plateseg_now(\(s.bind(now))) - 60
                        AND r.state IN ('succeeded', 'failed'))
                FROM plates p
                CROSS JOIN LATERAL (
                    SELECT COUNT(*) FILTER (WHERE segmented) AS images, COUNT(*) FILTER (WHERE error IS NOT NULL) AS unreadable
                    FROM images WHERE plate_id = p.id) i
                CROSS JOIN LATERAL (
                    SELECT COUNT(*) FILTER (WHERE kind = 'merge' AND state = 'succeeded') AS merged,
                           COUNT(*) FILTER (WHERE state = 'queued') AS queued,
                           COUNT(*) FILTER (WHERE state = 'queued' AND waiting_on > 0) AS blocked,
                           COUNT(*) FILTER (WHERE state = 'running') AS running,
                           COUNT(*) FILTER (WHERE state = 'succeeded') AS succeeded,
                           COUNT(*) FILTER (WHERE state = 'failed') AS failed
                    FROM jobs WHERE plate_id = p.id) j
                \(filter)
                ORDER BY p.name COLLATE "C"
                """
        }.map { row in
            let (name, images, unreadable, merged, queued, blocked, running, succeeded, failed, recent) =
                try row.decode((String, Int, Int, Int, Int, Int, Int, Int, Int, Int).self)
            return PlateProgress(plate: name, images: images, unreadableImages: unreadable, imagesMerged: merged, queued: queued,
                                 blocked: blocked, running: running, succeeded: succeeded, failed: failed, finishedLastMinute: recent)
        }
    }

    func identity(plate: String?) throws -> [PlateIdentity] {
        var byPlate: [String: PlateIdentity] = [:]
        let times = try read { s in
            """
            SELECT p.name, i.timepoint, i.timepoint_order FROM images i JOIN plates p ON p.id = i.plate_id
            WHERE \(plate.map { "p.name = \(s.bind($0)) AND" } ?? "") i.segmented AND i.timepoint IS NOT NULL
            GROUP BY p.name, i.timepoint_order, i.timepoint ORDER BY p.name COLLATE "C", i.timepoint_order, i.timepoint COLLATE "C"
            """
        }
        for row in times {
            let (name, label, order) = try row.decode((String, String, Int).self)
            byPlate[name, default: PlateIdentity(plate: name, timepoints: [], channels: [])].timepoints.append(TimePoint(label: label, order: order))
        }
        let channels = try read { s in
            """
            SELECT p.name, i.channel, i.segmented, COUNT(*) FROM images i JOIN plates p ON p.id = i.plate_id
            \(plate.map { "WHERE p.name = \(s.bind($0))" } ?? "")
            GROUP BY p.name, i.channel, i.segmented ORDER BY p.name COLLATE "C", i.channel COLLATE "C" NULLS FIRST
            """
        }
        for row in channels {
            let (name, channel, segmented, images) = try row.decode((String, String?, Bool, Int).self)
            byPlate[name, default: PlateIdentity(plate: name, timepoints: [], channels: [])].channels
                .append((channel: channel, segmented: segmented, images: images))
        }
        return byPlate.values.sorted { $0.plate < $1.plate }
    }

    /// Two grouped passes (cells' counts by image, outputs by job), not one per plate.
    func storage(plate: String?) throws -> [PlateStorage] {
        try read { s in
            let only = plate.map { "WHERE p.name = \(s.bind($0))" } ?? ""
            return """
                WITH cells AS (
                    SELECT i.plate_id, SUM(c.stored_bytes)::bigint AS bytes FROM image_counts c JOIN images i ON i.id = c.image_id GROUP BY 1
                ), outs AS (
                    SELECT j.plate_id, SUM(octet_length(o.bytes))::bigint AS bytes, COUNT(*) AS n FROM outputs o JOIN jobs j ON j.id = o.job_id GROUP BY 1
                )
                SELECT p.name, COALESCE(c.bytes, 0), COALESCE(o.bytes, 0), COALESCE(o.n, 0)
                FROM plates p LEFT JOIN cells c ON c.plate_id = p.id LEFT JOIN outs o ON o.plate_id = p.id
                \(only) ORDER BY p.name COLLATE "C"
                """
        }.map { row in
            let (name, cells, outputs, count) = try row.decode((String, Int, Int, Int).self)
            return PlateStorage(plate: name, cellBytes: cells, tileOutputBytes: outputs, tileOutputs: count)
        }
    }

    func verify() throws {}

    func databaseBytes() throws -> Int {
        try read { _ in "SELECT pg_database_size(current_database())" }.first?.decode(Int.self) ?? 0
    }

    /// `plate_id = …` for an optional plate name, as a condition.
    private static func plateCondition(_ s: Statement, _ plate: String?, column: String = "plate_id") -> String {
        let p = s.bind(plate)
        return "(\(p)::text IS NULL OR \(column) = (SELECT id FROM plates WHERE name = \(p)::text))"
    }

    func jobs(plate: String?) throws -> [JobSnapshot] {
        try read { s in
            "SELECT id, kind, state, attempts, waiting_on, last_error FROM jobs WHERE \(Self.plateCondition(s, plate)) ORDER BY id"
        }.map { row in
            let (id, kind, state, attempts, waitingOn, lastError) = try row.decode((Int64, String, String, Int, Int, String?).self)
            return JobSnapshot(id: id, kind: kind, state: JobState(rawValue: state) ?? .failed, attempts: attempts,
                               waitingOn: waitingOn, lastError: lastError)
        }
    }

    func images(plate: String?) throws -> [StoredImage] {
        try read { s in
            """
                SELECT i.id, p.name, i.path, i.well, i.field, i.width, i.height, i.content_hash, i.error, j.id, j.state,
                       i.timepoint, i.timepoint_order, i.channel, i.plane, i.segmented, i.page, i.file_identity
                FROM images i JOIN plates p ON p.id = i.plate_id
                LEFT JOIN jobs j ON j.image_id = i.id AND j.kind = 'merge'
                \(plate.map { "WHERE i.plate_id = (SELECT id FROM plates WHERE name = \(s.bind($0)))" } ?? "")
                ORDER BY p.name COLLATE "C", i.timepoint_order NULLS FIRST, i.well COLLATE "C" NULLS FIRST, i.field NULLS FIRST,
                         i.path COLLATE "C"
                """
        }.map { row in
            let (id, plate, path, well, field, width, height, hash, error, mergeID, mergeState, timepoint, order, channel, plane, segmented,
                 page, identity) = try row.decode((Int64, String, String, String?, Int?, Int, Int, String, String?, Int64?, String?,
                                                  String?, Int?, String?, Int?, Bool, Int?, String?).self)
            return StoredImage(id: id, plate: plate, path: path, well: well, field: field,
                               timepoint: Self.timepoint(timepoint, order), channel: channel, plane: plane, page: page, segmented: segmented,
                               width: width, height: height,
                               contentHash: hash, error: error, mergeJobID: mergeID, mergeState: mergeState.flatMap(JobState.init),
                               fileIdentity: identity)
        }
    }

    func image(id: Int64) throws -> (path: String, width: Int, height: Int)? {
        try read { s in "SELECT path, width, height FROM images WHERE id = \(s.bind(id))" }.first.map { row in
            let (path, width, height) = try row.decode((String, Int, Int).self)
            return (path: path, width: width, height: height)
        }
    }

    func unreadableImages(plate: String?) throws -> [(path: String, error: String)] {
        try read { s in
            """
            SELECT path, error FROM images WHERE error IS NOT NULL AND \(Self.plateCondition(s, plate))
            ORDER BY path COLLATE "C"
            """
        }.map { row in
            let (path, error) = try row.decode((String, String).self)
            return (path: path, error: error)
        }
    }

    func jobsWithErrors(state: JobState, plate: String?, limit: Int) throws -> [FailedJob] {
        try read { s in
            let p = s.bind(plate)
            return """
                SELECT j.id, p.name, j.kind, i.path, j.attempts, j.last_error
                FROM jobs j JOIN plates p ON p.id = j.plate_id LEFT JOIN images i ON i.id = j.image_id
                WHERE j.state = \(s.bind(state.rawValue)) AND j.last_error IS NOT NULL
                  AND (\(p)::text IS NULL OR p.name = \(p)::text)
                  AND (j.state = 'failed' OR j.attempts > 0) -- a job put back by `retry` starts afresh
                ORDER BY j.id LIMIT \(s.bind(limit))
                """
        }.map { row in
            let (id, plate, kind, path, attempts, error) = try row.decode((Int64, String, String, String?, Int, String?).self)
            return FailedJob(id: id, plate: plate, kind: kind, imagePath: path, attempts: attempts, error: error ?? "")
        }
    }

    func artifact(of jobID: JobID) throws -> [UInt8]? {
        try read { s in "SELECT bytes FROM outputs WHERE job_id = \(s.bind(jobID))" }.first.map { row in
            [UInt8](try row.decode(ByteBuffer.self).readableBytesView)
        }
    }

    func dependencyArtifacts(of jobID: JobID) throws -> [StoredArtifact] {
        try read { s in
            """
            SELECT j.id, j.kind, j.args, o.bytes FROM job_dependencies d
            JOIN jobs j ON j.id = d.depends_on LEFT JOIN outputs o ON o.job_id = j.id
            WHERE d.job_id = \(s.bind(jobID)) AND j.state = 'succeeded' ORDER BY j.id
            """
        }.map { row in
            let (id, kind, args, bytes) = try row.decode((Int64, String, String, ByteBuffer?).self)
            return StoredArtifact(jobID: id, kind: kind, args: args, bytes: bytes.map { [UInt8]($0.readableBytesView) } ?? [])
        }
    }

    func artifactCount(plate: String?) throws -> Int {
        try read { s in
            """
            SELECT COUNT(*) FROM outputs o JOIN jobs j ON j.id = o.job_id WHERE \(Self.plateCondition(s, plate, column: "j.plate_id"))
            """
        }.first?.decode(Int.self) ?? 0
    }

    func provenance(imageID: Int64) throws -> [(job: JobID, kind: String, args: String, provenance: String?)] {
        try read { s in
            """
            SELECT j.id, j.kind, j.args, pr.text FROM jobs j LEFT JOIN artifacts a ON a.job_id = j.id
            LEFT JOIN provenances pr ON pr.id = a.provenance_id
            WHERE j.image_id = \(s.bind(imageID)) ORDER BY j.kind COLLATE "C" DESC, j.id
            """
        }.map { row in
            let (id, kind, args, provenance) = try row.decode((Int64, String, String, String?).self)
            return (job: id, kind: kind, args: args, provenance: provenance)
        }
    }

    func provenanceGroups(plate: String?) throws -> [String: [ProvenanceGroup]] {
        var groups: [String: [ProvenanceGroup]] = [:]
        for row in try read({ s in
            """
            SELECT p.name, j.kind, pr.text, COUNT(*) FROM jobs j JOIN artifacts a ON a.job_id = j.id
            JOIN provenances pr ON pr.id = a.provenance_id JOIN plates p ON p.id = j.plate_id
            WHERE j.state = 'succeeded'
              \(plate.map { "AND j.plate_id = (SELECT id FROM plates WHERE name = \(s.bind($0)))" } ?? "")
            GROUP BY p.name, j.kind, pr.text ORDER BY p.name COLLATE "C", j.kind COLLATE "C", pr.text COLLATE "C"
            """
        }) {
            let (name, kind, provenance, jobs) = try row.decode((String, String, String, Int).self)
            groups[name, default: []].append(ProvenanceGroup(kind: kind, provenance: provenance, jobs: jobs))
        }
        return groups
    }

    func jobs(plate: String, kind: String, provenance: String) throws -> [JobID] {
        try read { s in
            """
            SELECT j.id FROM jobs j JOIN artifacts a ON a.job_id = j.id
            WHERE j.state = 'succeeded' AND j.kind = \(s.bind(kind))
              AND a.provenance_id = (SELECT id FROM provenances WHERE md5(text) = md5(\(s.bind(provenance))))
              AND j.plate_id = (SELECT id FROM plates WHERE name = \(s.bind(plate)))
            ORDER BY j.id
            """
        }.map { try $0.decode(JobID.self) }
    }

    func provenanceRecords(plate: String) throws -> [String] {
        try read { s in
            """
            SELECT pr.text COLLATE "C" FROM provenances pr WHERE pr.id IN (
                SELECT a.provenance_id FROM artifacts a JOIN jobs j ON j.id = a.job_id
                WHERE j.plate_id = (SELECT id FROM plates WHERE name = \(s.bind(plate))))
            ORDER BY 1
            """
        }.map { try $0.decode(String.self) }
    }

    func provenancesInUse() throws -> [(kind: String, provenance: String)] {
        // Per record, the first succeeded job that holds it (an index probe, not a scan).
        try read { _ in
            """
            SELECT k, text FROM (
                SELECT pr.text, (SELECT j.kind FROM artifacts a JOIN jobs j ON j.id = a.job_id
                                 WHERE a.provenance_id = pr.id AND j.state = 'succeeded' LIMIT 1) AS k
                FROM provenances pr) x
            WHERE k IS NOT NULL ORDER BY k COLLATE "C", text COLLATE "C"
            """
        }.map { row in
            let (kind, provenance) = try row.decode((String, String).self)
            return (kind: kind, provenance: provenance)
        }
    }

    func jobTimes(plate: String) throws -> [(kind: String, jobs: Int, seconds: Double)] {
        try read { s in
            """
            SELECT kind, COUNT(*), COALESCE(SUM(finished_at - started_at), 0) FROM jobs
            WHERE state = 'succeeded' AND plate_id = (SELECT id FROM plates WHERE name = \(s.bind(plate)))
            GROUP BY kind ORDER BY kind COLLATE "C"
            """
        }.map { row in
            let (kind, jobs, seconds) = try row.decode((String, Int, Double).self)
            return (kind: kind, jobs: jobs, seconds: seconds)
        }
    }

    private static func timepoint(_ label: String?, _ order: Int?) -> TimePoint? {
        guard let label, let order else { return nil }
        return TimePoint(label: label, order: order)
    }

    func cells(ofImages ids: [Int64], cellType: String?) throws -> [Int64: [CellRecord]] {
        guard !ids.isEmpty else { return [:] }
        var byImage: [Int64: [CellRecord]] = [:]
        let rows = try read { s in
            _ = s.bind(ids)
            if let cellType { _ = s.bind(cellType) }
            return Self.cellsOfImages(ofType: cellType != nil)
        }
        for row in rows {
            let (image, type, score, area, bx, by, bw, bh, cx, cy, rle) =
                try row.decode((Int64, String, Double, Int, Int, Int, Int, Int, Double, Double, String).self)
            byImage[image, default: []].append(CellRecord(cellType: type, score: score, area: area, box: (bx, by, bw, bh), centroid: (cx, cy), rle: rle))
        }
        return byImage
    }

    /// The cells of the images in $1 (of the type $2): read through `cells_image`, whatever else
    /// the database holds.
    static func cellsOfImages(ofType: Bool) -> String {
        """
        SELECT image_id, cell_type, score, area, box_x, box_y, box_width, box_height, centroid_x, centroid_y, rle
        FROM cells WHERE image_id = ANY($1) \(ofType ? "AND cell_type = $2" : "") ORDER BY image_id, id
        """
    }

    /// From the counts kept per image and type: a plate is counted from one row per image and
    /// type, and only the conditions given are in the statement, so that the plate's own index
    /// is used, whatever else the database holds.
    func wellCounts(_ q: CellQuery) throws -> [WellCount] {
        try read { s in
            var conditions: [String] = []
            if let plate = q.plate { conditions.append("i.plate_id = (SELECT id FROM plates WHERE name = \(s.bind(plate)))") }
            if let well = q.well { conditions.append("i.well = \(s.bind(well))") }
            if let type = q.cellType { conditions.append("c.cell_type = \(s.bind(type))") }
            if let image = q.image { conditions.append("i.path = \(s.bind(image))") }
            if let timepoint = q.timepoint { conditions.append("i.timepoint = \(s.bind(timepoint))") }
            return """
                SELECT p.name, COALESCE(i.well, '?'), c.cell_type, SUM(c.cells)::bigint, COUNT(*),
                       SUM(c.area_sum)::double precision / SUM(c.cells), SUM(c.score_sum) / SUM(c.cells), i.timepoint, i.timepoint_order
                FROM image_counts c JOIN images i ON i.id = c.image_id JOIN plates p ON p.id = i.plate_id
                \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND "))
                GROUP BY p.name, i.well, i.timepoint_order, i.timepoint, c.cell_type
                ORDER BY p.name COLLATE "C", i.well COLLATE "C" NULLS FIRST, i.timepoint_order NULLS FIRST, i.timepoint COLLATE "C",
                         c.cell_type COLLATE "C"
                """
        }.map { row in
            let (plate, well, type, cells, images, meanArea, meanScore, timepoint, order) =
                try row.decode((String, String, String, Int, Int, Double, Double, String?, Int?).self)
            return WellCount(plate: plate, well: well, timepoint: Self.timepoint(timepoint, order), cellType: type, cells: cells, images: images, meanArea: meanArea, meanScore: meanScore)
        }
    }
}
