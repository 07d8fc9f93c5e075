import Foundation
import PostgresNIO

/// The driver for many machines: one PostgreSQL database shared by workers on every host.
/// Claims skip rows other workers hold (`FOR UPDATE SKIP LOCKED`), every time is the server's
/// (`plateseg_now`), artifacts are `bytea` so that a merge on any host reads the tiles of any
/// other, and the hot operations are one statement, one round trip, one commit each.
final class PostgresDriver: StoreDriver {
    private let connections: PostgresConnections

    var location: String { connections.address.redacted }

    init(address: PostgresAddress) throws {
        connections = try PostgresConnections(address: address)
        try PostgresSchema.migrate(connections)
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

            var summary = SubmitSummary(newImages: 0, unreadableImages: 0, newJobs: 0)
            var seen = Set<String>()
            let images = s.images.filter { seen.insert($0.path).inserted }.map {
                ImageRow(path: $0.path, well: $0.well, field: $0.field, timepoint: $0.timepoint?.label, timepoint_order: $0.timepoint?.order,
                         channel: $0.channel, plane: $0.plane, page: $0.page, segmented: $0.segmented,
                         width: $0.width, height: $0.height, hash: $0.contentHash, error: $0.error)
            }
            let i = Statement()
            let added = try tx.run(i.query("""
                INSERT INTO images (plate_id, path, well, field, timepoint, timepoint_order, channel, plane, page, segmented,
                                    width, height, content_hash, error, created_at)
                SELECT \(i.bind(plateID)), x.path, x.well, x.field, x.timepoint, x.timepoint_order, x.channel, x.plane, x.page, x.segmented,
                       x.width, x.height, x.hash, x.error, plateseg_now(\(i.bind(now)))
                FROM jsonb_to_recordset(\(i.bind(Self.json(images)))::jsonb)
                    AS x(path text, well text, field integer, timepoint text, timepoint_order integer, channel text, plane integer,
                         page integer, segmented boolean, width integer, height integer, hash text, error text)
                ON CONFLICT (plate_id, path) DO UPDATE SET
                    well = excluded.well, field = excluded.field, timepoint = excluded.timepoint,
                    timepoint_order = excluded.timepoint_order, channel = excluded.channel, plane = excluded.plane,
                    page = excluded.page, segmented = excluded.segmented, width = excluded.width, height = excluded.height,
                    content_hash = excluded.content_hash, error = excluded.error
                WHERE images.error IS NOT NULL AND excluded.error IS NULL
                RETURNING error IS NOT NULL
                """))
            for row in added {
                summary.newImages += 1
                if try row.decode(Bool.self) { summary.unreadableImages += 1 }
            }
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
                s.bind(ByteBuffer(bytes: result.artifact ?? [])), s.bind(result.provenance), "\(s.bind(cells))::jsonb"]
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
            // A merge cannot run again from tile outputs that were pruned: those tiles run again first.
            let p = Statement()
            let pruned = try tx.run(p.query("""
                SELECT DISTINCT d.depends_on FROM job_dependencies d JOIN jobs j ON j.id = d.depends_on
                WHERE d.job_id = ANY(\(p.bind(selected))) AND j.state = 'succeeded'
                  AND NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.job_id = d.depends_on)
                  AND d.depends_on <> ALL(\(p.bind(selected)))
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
            let row = try tx.run(s.query("""
                WITH gone AS (
                    DELETE FROM artifacts a USING jobs j
                    WHERE a.job_id = j.id AND j.plate_id = (SELECT id FROM plates WHERE name = \(s.bind(plate)))
                      AND j.kind = 'infer' AND j.state = 'succeeded'
                      AND EXISTS (SELECT 1 FROM jobs m WHERE m.image_id = j.image_id AND m.kind = 'merge' AND m.state = 'succeeded')
                    RETURNING octet_length(a.bytes) AS size, j.image_id
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

    func progress(plate: String?, now: Double?) throws -> [PlateProgress] {
        try read { s in
            let plate = s.bind(plate)
            return """
                SELECT p.name,
                    (SELECT COUNT(*) FROM images i WHERE i.plate_id = p.id AND i.segmented),
                    (SELECT COUNT(*) FROM images i WHERE i.plate_id = p.id AND i.error IS NOT NULL),
                    COUNT(j.id) FILTER (WHERE j.kind = 'merge' AND j.state = 'succeeded'),
                    COUNT(j.id) FILTER (WHERE j.state = 'queued'),
                    COUNT(j.id) FILTER (WHERE j.state = 'queued' AND j.waiting_on > 0),
                    COUNT(j.id) FILTER (WHERE j.state = 'running'),
                    COUNT(j.id) FILTER (WHERE j.state = 'succeeded'),
                    COUNT(j.id) FILTER (WHERE j.state = 'failed'),
                    COUNT(j.id) FILTER (WHERE j.state IN ('succeeded', 'failed') AND j.finished_at >= plateseg_now(\(s.bind(now))) - 60)
                FROM plates p LEFT JOIN jobs j ON j.plate_id = p.id
                WHERE \(plate)::text IS NULL OR p.name = \(plate)::text
                GROUP BY p.id ORDER BY p.name COLLATE "C"
                """
        }.map { row in
            let (name, images, unreadable, merged, queued, blocked, running, succeeded, failed, recent) =
                try row.decode((String, Int, Int, Int, Int, Int, Int, Int, Int, Int).self)
            return PlateProgress(plate: name, images: images, unreadableImages: unreadable, imagesMerged: merged, queued: queued,
                                 blocked: blocked, running: running, succeeded: succeeded, failed: failed, finishedLastMinute: recent)
        }
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
            let p = s.bind(plate)
            return """
                SELECT i.id, p.name, i.path, i.well, i.field, i.width, i.height, i.content_hash, i.error, j.id, j.state,
                       i.timepoint, i.timepoint_order, i.channel, i.plane, i.segmented, i.page
                FROM images i JOIN plates p ON p.id = i.plate_id
                LEFT JOIN jobs j ON j.image_id = i.id AND j.kind = 'merge'
                WHERE \(p)::text IS NULL OR p.name = \(p)::text
                ORDER BY p.name COLLATE "C", i.timepoint_order NULLS FIRST, i.well COLLATE "C" NULLS FIRST, i.field NULLS FIRST,
                         i.path COLLATE "C"
                """
        }.map { row in
            let (id, plate, path, well, field, width, height, hash, error, mergeID, mergeState, timepoint, order, channel, plane, segmented,
                 page) = try row.decode((Int64, String, String, String?, Int?, Int, Int, String, String?, Int64?, String?,
                                        String?, Int?, String?, Int?, Bool, Int?).self)
            return StoredImage(id: id, plate: plate, path: path, well: well, field: field,
                               timepoint: Self.timepoint(timepoint, order), channel: channel, plane: plane, page: page, segmented: segmented,
                               width: width, height: height,
                               contentHash: hash, error: error, mergeJobID: mergeID, mergeState: mergeState.flatMap(JobState.init))
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
        try read { s in "SELECT bytes FROM artifacts WHERE job_id = \(s.bind(jobID))" }.first.map { row in
            [UInt8](try row.decode(ByteBuffer.self).readableBytesView)
        }
    }

    func dependencyArtifacts(of jobID: JobID) throws -> [StoredArtifact] {
        try read { s in
            """
            SELECT j.id, j.kind, j.args, a.bytes FROM job_dependencies d
            JOIN jobs j ON j.id = d.depends_on JOIN artifacts a ON a.job_id = j.id
            WHERE d.job_id = \(s.bind(jobID)) ORDER BY j.id
            """
        }.map { row in
            let (id, kind, args, bytes) = try row.decode((Int64, String, String, ByteBuffer).self)
            return StoredArtifact(jobID: id, kind: kind, args: args, bytes: [UInt8](bytes.readableBytesView))
        }
    }

    func artifactCount(plate: String?) throws -> Int {
        try read { s in
            "SELECT COUNT(*) FROM artifacts a JOIN jobs j ON j.id = a.job_id WHERE \(Self.plateCondition(s, plate, column: "j.plate_id"))"
        }.first?.decode(Int.self) ?? 0
    }

    func provenance(imageID: Int64) throws -> [(job: JobID, kind: String, args: String, provenance: String?)] {
        try read { s in
            """
            SELECT j.id, j.kind, j.args, a.provenance FROM jobs j LEFT JOIN artifacts a ON a.job_id = j.id
            WHERE j.image_id = \(s.bind(imageID)) ORDER BY j.kind COLLATE "C" DESC, j.id
            """
        }.map { row in
            let (id, kind, args, provenance) = try row.decode((Int64, String, String, String?).self)
            return (job: id, kind: kind, args: args, provenance: provenance)
        }
    }

    func resultProvenance(plate: String) throws -> [JobProvenance] {
        try read { s in
            """
            SELECT j.id, j.kind, j.args, a.provenance FROM jobs j JOIN artifacts a ON a.job_id = j.id
            WHERE j.state = 'succeeded' AND a.provenance IS NOT NULL
              AND j.plate_id = (SELECT id FROM plates WHERE name = \(s.bind(plate)))
            ORDER BY j.id
            """
        }.map { row in
            let (id, kind, args, provenance) = try row.decode((Int64, String, String, String).self)
            return JobProvenance(job: id, kind: kind, args: args, provenance: provenance)
        }
    }

    func provenanceRecords(plate: String) throws -> [String] {
        try read { s in
            """
            SELECT DISTINCT a.provenance COLLATE "C" FROM artifacts a JOIN jobs j ON j.id = a.job_id
            WHERE a.provenance IS NOT NULL AND j.plate_id = (SELECT id FROM plates WHERE name = \(s.bind(plate)))
            ORDER BY 1
            """
        }.map { try $0.decode(String.self) }
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

    private static func cellConditions(_ s: Statement, _ q: CellQuery) -> String {
        let plate = s.bind(q.plate), well = s.bind(q.well), type = s.bind(q.cellType), image = s.bind(q.image)
        let timepoint = s.bind(q.timepoint)
        return """
            (\(plate)::text IS NULL OR p.name = \(plate)::text) AND (\(well)::text IS NULL OR i.well = \(well)::text)
            AND (\(type)::text IS NULL OR c.cell_type = \(type)::text) AND (\(image)::text IS NULL OR i.path = \(image)::text)
            AND (\(timepoint)::text IS NULL OR i.timepoint = \(timepoint)::text)
            """
    }

    private static func timepoint(_ label: String?, _ order: Int?) -> TimePoint? {
        guard let label, let order else { return nil }
        return TimePoint(label: label, order: order)
    }

    func cells(_ q: CellQuery) throws -> [LocatedCell] {
        try read { s in
            """
            SELECT p.name, i.well, i.field, i.path, i.width, i.height, c.cell_type, c.score, c.area,
                   c.box_x, c.box_y, c.box_width, c.box_height, c.centroid_x, c.centroid_y, c.rle,
                   i.timepoint, i.timepoint_order, i.channel
            FROM cells c JOIN images i ON i.id = c.image_id JOIN plates p ON p.id = i.plate_id
            WHERE \(Self.cellConditions(s, q))
            ORDER BY p.name COLLATE "C", i.timepoint_order NULLS FIRST, i.well COLLATE "C" NULLS FIRST, i.field NULLS FIRST,
                     i.path COLLATE "C", c.id
            """
        }.map { row in
            let (plate, well, field, path, width, height, type, score, area, bx, by, bw, bh, cx, cy, rle, timepoint, order, channel) =
                try row.decode((String, String?, Int?, String, Int, Int, String, Double, Int, Int, Int, Int, Int, Double, Double, String,
                                String?, Int?, String?).self)
            return LocatedCell(plate: plate, well: well, field: field, timepoint: Self.timepoint(timepoint, order), channel: channel,
                               imagePath: path, imageWidth: width, imageHeight: height,
                               cell: CellRecord(cellType: type, score: score, area: area, box: (bx, by, bw, bh), centroid: (cx, cy), rle: rle))
        }
    }

    func wellCounts(_ q: CellQuery) throws -> [WellCount] {
        try read { s in
            """
            SELECT p.name, COALESCE(i.well, '?'), c.cell_type, COUNT(*), COUNT(DISTINCT i.id),
                   AVG(c.area)::double precision, AVG(c.score), i.timepoint, i.timepoint_order
            FROM cells c JOIN images i ON i.id = c.image_id JOIN plates p ON p.id = i.plate_id
            WHERE \(Self.cellConditions(s, q))
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
