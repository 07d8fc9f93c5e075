import PostgresNIO

/// Versioned migrations, applied in order, each with its version row in one transaction under
/// an advisory lock: workers starting together on a new database make the schema once, and a
/// failure leaves nothing half-made. Times are seconds since 1970 (`double precision`), as on
/// the SQLite side, and always the server's unless a test injects its own.
enum PostgresSchema {
    static let migrations: [[String]] = [
        // 1: the queue and the results.
        [
            """
            CREATE FUNCTION plateseg_now(injected double precision) RETURNS double precision
            LANGUAGE sql STABLE AS $$ SELECT COALESCE(injected, extract(epoch FROM now())::double precision) $$
            """,
            """
            CREATE TABLE plates (
                id BIGSERIAL PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                root TEXT NOT NULL,
                settings TEXT NOT NULL DEFAULT '',
                created_at DOUBLE PRECISION NOT NULL
            )
            """,
            """
            CREATE TABLE images (
                id BIGSERIAL PRIMARY KEY,
                plate_id BIGINT NOT NULL REFERENCES plates(id),
                path TEXT NOT NULL,
                well TEXT,
                field INTEGER,
                width INTEGER NOT NULL,
                height INTEGER NOT NULL,
                content_hash TEXT NOT NULL,
                error TEXT,
                created_at DOUBLE PRECISION NOT NULL,
                UNIQUE (plate_id, path)
            )
            """,
            """
            CREATE TABLE jobs (
                id BIGSERIAL PRIMARY KEY,
                key TEXT NOT NULL UNIQUE,
                kind TEXT NOT NULL,
                plate_id BIGINT NOT NULL REFERENCES plates(id),
                image_id BIGINT REFERENCES images(id),
                args TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
                waiting_on INTEGER NOT NULL DEFAULT 0,
                attempts INTEGER NOT NULL DEFAULT 0,
                max_attempts INTEGER NOT NULL,
                lease_owner TEXT,
                lease_deadline DOUBLE PRECISION,
                fencing_token BIGINT NOT NULL DEFAULT 0,
                not_before DOUBLE PRECISION NOT NULL DEFAULT 0,
                last_error TEXT,
                created_at DOUBLE PRECISION NOT NULL,
                started_at DOUBLE PRECISION,
                finished_at DOUBLE PRECISION
            )
            """,
            "CREATE INDEX jobs_ready ON jobs (id) WHERE state = 'queued' AND waiting_on = 0",
            "CREATE INDEX jobs_running ON jobs (lease_deadline) WHERE state = 'running'",
            "CREATE INDEX jobs_plate ON jobs (plate_id, state)",
            "CREATE INDEX jobs_image ON jobs (image_id, kind)",
            """
            CREATE TABLE job_dependencies (
                job_id BIGINT NOT NULL REFERENCES jobs(id),
                depends_on BIGINT NOT NULL REFERENCES jobs(id),
                PRIMARY KEY (job_id, depends_on)
            )
            """,
            "CREATE INDEX job_dependants ON job_dependencies (depends_on)",
            """
            CREATE TABLE artifacts (
                job_id BIGINT PRIMARY KEY REFERENCES jobs(id),
                bytes BYTEA NOT NULL,
                provenance TEXT,
                created_at DOUBLE PRECISION NOT NULL
            )
            """,
            // The bytes are zstd already: compressing them again costs time and saves nothing.
            "ALTER TABLE artifacts ALTER COLUMN bytes SET STORAGE EXTERNAL",
            """
            CREATE TABLE cells (
                id BIGSERIAL PRIMARY KEY,
                image_id BIGINT NOT NULL REFERENCES images(id),
                merge_job_id BIGINT NOT NULL REFERENCES jobs(id),
                cell_type TEXT NOT NULL,
                score DOUBLE PRECISION NOT NULL,
                area INTEGER NOT NULL,
                box_x INTEGER NOT NULL, box_y INTEGER NOT NULL,
                box_width INTEGER NOT NULL, box_height INTEGER NOT NULL,
                centroid_x DOUBLE PRECISION NOT NULL, centroid_y DOUBLE PRECISION NOT NULL,
                rle TEXT NOT NULL
            )
            """,
            "CREATE INDEX cells_image ON cells (image_id)",
            // The by-well and by-type queries of `query`, `export` and `report`.
            "CREATE INDEX images_well ON images (plate_id, well)",
            "CREATE INDEX cells_type ON cells (cell_type, image_id)",
            // The hot path as functions: one cheap call per job, whose inner statements are
            // planned once per connection (a claim's plan costs more than running it).
            claimFunction,
            // The job succeeds under its token, its artifact is stored, a merge's cells replace
            // the image's, and its dependants wait on one job fewer; false: the lease was lost.
            """
            CREATE FUNCTION plateseg_complete(p_job bigint, p_token bigint, p_now double precision, p_store boolean,
                                              p_bytes bytea, p_provenance text, p_cells jsonb)
            RETURNS boolean
            LANGUAGE plpgsql AS $$
            #variable_conflict use_column
            DECLARE
                t double precision := plateseg_now(p_now);
                image bigint;
            BEGIN
                UPDATE jobs j SET state = 'succeeded', finished_at = t, lease_owner = NULL, lease_deadline = NULL,
                    last_error = NULL
                WHERE j.id = p_job AND j.fencing_token = p_token AND j.state = 'running'
                RETURNING j.image_id INTO image;
                IF NOT FOUND THEN
                    RETURN false;
                END IF;
                IF p_store THEN
                    INSERT INTO artifacts (job_id, bytes, provenance, created_at) VALUES (p_job, p_bytes, p_provenance, t)
                    ON CONFLICT (job_id) DO UPDATE SET bytes = excluded.bytes, provenance = excluded.provenance,
                        created_at = excluded.created_at;
                END IF;
                IF p_cells IS NOT NULL THEN
                    IF image IS NULL THEN
                        RAISE EXCEPTION 'merge job % has no image', p_job;
                    END IF;
                    DELETE FROM cells c WHERE c.image_id = image;
                    INSERT INTO cells (image_id, merge_job_id, cell_type, score, area, box_x, box_y, box_width, box_height,
                                       centroid_x, centroid_y, rle)
                    SELECT image, p_job, x.cell_type, x.score, x.area, x.box_x, x.box_y, x.box_width, x.box_height,
                           x.centroid_x, x.centroid_y, x.rle
                    FROM jsonb_array_elements(p_cells) WITH ORDINALITY AS e(cell, ord),
                         jsonb_to_record(e.cell) AS x(cell_type text, score double precision, area integer, box_x integer,
                             box_y integer, box_width integer, box_height integer, centroid_x double precision,
                             centroid_y double precision, rle text)
                    ORDER BY e.ord;
                END IF;
                UPDATE jobs j SET waiting_on = j.waiting_on - 1
                WHERE j.id IN (SELECT d.job_id FROM job_dependencies d WHERE d.depends_on = p_job) AND j.waiting_on > 0;
                RETURN true;
            END $$
            """,
            // Both in one call and one commit; the claim sees what the completion made ready.
            """
            CREATE FUNCTION plateseg_complete_and_claim(p_job bigint, p_token bigint, p_now double precision, p_store boolean,
                                                        p_bytes bytea, p_provenance text, p_cells jsonb,
                                                        p_owner text, p_lease double precision, p_plate text)
            RETURNS TABLE (completed boolean, id bigint, kind text, args text, plate text, image_id bigint, attempts integer,
                           max_attempts integer, fencing_token bigint, lease_deadline double precision)
            LANGUAGE plpgsql AS $$
            BEGIN
                completed := plateseg_complete(p_job, p_token, p_now, p_store, p_bytes, p_provenance, p_cells);
                IF completed THEN
                    RETURN QUERY SELECT true, c.* FROM plateseg_claim(p_owner, p_lease, p_plate, p_now) c;
                    IF FOUND THEN
                        RETURN;
                    END IF;
                END IF;
                RETURN NEXT;
            END $$
            """,
        ],
        // 2: image identity beyond well and field: time point, channel, plane; images of channels
        // that are not segmented are kept (for status) but get no jobs.
        [
            """
            ALTER TABLE images ADD COLUMN timepoint TEXT, ADD COLUMN timepoint_order INTEGER, ADD COLUMN channel TEXT,
                ADD COLUMN plane INTEGER, ADD COLUMN page INTEGER, ADD COLUMN segmented BOOLEAN NOT NULL DEFAULT true
            """,
            "CREATE INDEX images_time ON images (plate_id, timepoint_order, well)",
        ],
        // 3: a worker that works on one plate finds its next job in that plate's ready jobs, in
        // order, whatever the statistics say. Without it the planner, told by a recent ANALYZE
        // that few jobs are queued, walks the plate's jobs by `jobs_plate` and sorts them all on
        // every claim: 0.05 ms became 2–5 ms per claim on a 20,000-job plate.
        [
            "CREATE INDEX jobs_ready_plate ON jobs (plate_id, id) WHERE state = 'queued' AND waiting_on = 0",
        ],
        // 4: a plate's claim reads only that plate's ready jobs (see `claimFunction`).
        [claimFunction],
        // 5: a facility's night. A job's output bytes live in a table of their own, from which
        // merges delete the outputs they read unless the plate keeps them (autovacuum is told to
        // reclaim them early); counts per image and type are kept beside the cells, so that
        // counting a plate reads one row per image and type; a resubmitted file whose identity is
        // unchanged is not read again; a plate's jobs finished lately are found by time.
        [
            """
            CREATE TABLE outputs (
                job_id BIGINT PRIMARY KEY REFERENCES jobs(id),
                bytes BYTEA NOT NULL
            )
            """,
            // The bytes are zstd already: compressing them again costs time and saves nothing.
            "ALTER TABLE outputs ALTER COLUMN bytes SET STORAGE EXTERNAL",
            "INSERT INTO outputs (job_id, bytes) SELECT job_id, bytes FROM artifacts WHERE octet_length(bytes) > 0",
            "ALTER TABLE artifacts DROP COLUMN bytes",
            "ALTER TABLE plates ADD COLUMN keep_tile_outputs BOOLEAN NOT NULL DEFAULT false",
            "ALTER TABLE images ADD COLUMN file_identity TEXT",
            """
            CREATE TABLE image_counts (
                image_id BIGINT NOT NULL REFERENCES images(id),
                cell_type TEXT NOT NULL,
                cells INTEGER NOT NULL,
                area_sum BIGINT NOT NULL,
                score_sum DOUBLE PRECISION NOT NULL,
                stored_bytes BIGINT NOT NULL,
                PRIMARY KEY (image_id, cell_type)
            )
            """,
            """
            INSERT INTO image_counts (image_id, cell_type, cells, area_sum, score_sum, stored_bytes)
            SELECT image_id, cell_type, COUNT(*), SUM(area), SUM(score), SUM(octet_length(rle) + \(cellRowBytes))
            FROM cells GROUP BY image_id, cell_type
            """,
            "DROP INDEX cells_type",
            "CREATE INDEX jobs_finished ON jobs (plate_id, finished_at) WHERE finished_at IS NOT NULL",
            // A plate's jobs counted by state and kind from the index alone (status, progress).
            "DROP INDEX jobs_plate",
            "CREATE INDEX jobs_plate ON jobs (plate_id, state) INCLUDE (kind, waiting_on)",
            // A plate's tile outputs are written and deleted within minutes: vacuum them after a
            // thousand dead rows, not after a fifth of the table, and without the throttle meant
            // for large tables, so that their space is reused before the table grows further.
            """
            ALTER TABLE outputs SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
                                     autovacuum_vacuum_cost_delay = 0,
                                     toast.autovacuum_vacuum_scale_factor = 0, toast.autovacuum_vacuum_threshold = 1000,
                                     toast.autovacuum_vacuum_cost_delay = 0)
            """,
            "DROP FUNCTION plateseg_complete_and_claim(bigint, bigint, double precision, boolean, bytea, text, jsonb, text, double precision, text)",
            "DROP FUNCTION plateseg_complete(bigint, bigint, double precision, boolean, bytea, text, jsonb)",
            completeFunction,
            completeAndClaimFunction,
        ],
        // 6: provenance records stored once, pointed at by artifacts (status finds those in use
        // with a few index probes); jobs with an error found without reading every job. A record
        // is found by its text's md5: a btree entry of the text itself may exceed a page's third.
        [
            "CREATE TABLE provenances (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, text TEXT NOT NULL)",
            "CREATE UNIQUE INDEX provenances_text ON provenances (md5(text))",
            "INSERT INTO provenances (text) SELECT DISTINCT provenance FROM artifacts WHERE provenance IS NOT NULL",
            "ALTER TABLE artifacts ADD COLUMN provenance_id BIGINT REFERENCES provenances(id)",
            """
            UPDATE artifacts a SET provenance_id = pr.id FROM provenances pr
            WHERE a.provenance IS NOT NULL AND md5(pr.text) = md5(a.provenance)
            """,
            "ALTER TABLE artifacts DROP COLUMN provenance",
            "CREATE INDEX artifacts_provenance ON artifacts (provenance_id)",
            "CREATE INDEX jobs_errors ON jobs (id) WHERE last_error IS NOT NULL",
            "DROP FUNCTION plateseg_complete_and_claim(bigint, bigint, double precision, boolean, bytea, text, jsonb, boolean, text, double precision, text)",
            "DROP FUNCTION plateseg_complete(bigint, bigint, double precision, boolean, bytea, text, jsonb, boolean)",
            completeFunction,
            completeAndClaimFunction,
        ],
    ]

    /// A worker's claim: the next ready job, of its plate if it has one. The planner takes a
    /// plate's jobs to be spread evenly among all ready jobs, so with `plate_id = …` it walks all
    /// ready jobs in id order (`jobs_ready`) and filters them by plate, reading every queued job of
    /// the plates before this one on every claim (15 ms a claim behind 55,000 of them). A range and
    /// the order `(plate_id, id)` leave `jobs_ready_plate` the only index that gives that order.
    static let claimFunction = """
    CREATE OR REPLACE FUNCTION plateseg_claim(p_owner text, p_lease double precision, p_plate text, p_now double precision)
    RETURNS TABLE (id bigint, kind text, args text, plate text, image_id bigint, attempts integer,
                   max_attempts integer, fencing_token bigint, lease_deadline double precision)
    LANGUAGE plpgsql AS $$
    #variable_conflict use_column
    DECLARE
        t double precision := plateseg_now(p_now);
        plate_key bigint;
        job bigint;
    BEGIN
        IF p_plate IS NULL THEN
            SELECT j.id INTO job FROM jobs j
            WHERE j.state = 'queued' AND j.waiting_on = 0 AND j.not_before <= t
            ORDER BY j.id LIMIT 1 FOR UPDATE SKIP LOCKED;
        ELSE
            SELECT p.id INTO plate_key FROM plates p WHERE p.name = p_plate;
            SELECT j.id INTO job FROM jobs j
            WHERE j.state = 'queued' AND j.waiting_on = 0 AND j.not_before <= t AND j.plate_id BETWEEN plate_key AND plate_key
            ORDER BY j.plate_id, j.id LIMIT 1 FOR UPDATE SKIP LOCKED;
        END IF;
        IF job IS NULL THEN
            RETURN;
        END IF;
        RETURN QUERY
            UPDATE jobs j SET state = 'running', attempts = j.attempts + 1, fencing_token = j.fencing_token + 1,
                lease_owner = p_owner, lease_deadline = t + p_lease, started_at = t
            WHERE j.id = job
            RETURNING j.id, j.kind, j.args, (SELECT p.name FROM plates p WHERE p.id = j.plate_id), j.image_id,
                      j.attempts, j.max_attempts, j.fencing_token, j.lease_deadline;
    END $$
    """

    /// The job succeeds under its token, its artifact is stored, a merge's cells (and their
    /// counts) replace the image's, the outputs it read are emptied unless the plate keeps them,
    /// and its dependants wait on one job fewer; false: the lease was lost.
    static let completeFunction = """
    CREATE FUNCTION plateseg_complete(p_job bigint, p_token bigint, p_now double precision, p_store boolean,
                                      p_bytes bytea, p_provenance text, p_cells jsonb, p_drop_inputs boolean)
    RETURNS boolean
    LANGUAGE plpgsql AS $$
    #variable_conflict use_column
    DECLARE
        t double precision := plateseg_now(p_now);
        image bigint;
        plate bigint;
        made_by bigint;
    BEGIN
        UPDATE jobs j SET state = 'succeeded', finished_at = t, lease_owner = NULL, lease_deadline = NULL,
            last_error = NULL
        WHERE j.id = p_job AND j.fencing_token = p_token AND j.state = 'running'
        RETURNING j.image_id, j.plate_id INTO image, plate;
        IF NOT FOUND THEN
            RETURN false;
        END IF;
        IF p_store THEN
            IF p_provenance IS NOT NULL THEN
                -- Looked up first: an insert that conflicts would still use up an identity value.
                SELECT pr.id INTO made_by FROM provenances pr WHERE md5(pr.text) = md5(p_provenance);
                IF made_by IS NULL THEN
                    INSERT INTO provenances (text) VALUES (p_provenance) ON CONFLICT ((md5(text))) DO NOTHING;
                    SELECT pr.id INTO made_by FROM provenances pr WHERE md5(pr.text) = md5(p_provenance);
                END IF;
            END IF;
            INSERT INTO artifacts (job_id, provenance_id, created_at) VALUES (p_job, made_by, t)
            ON CONFLICT (job_id) DO UPDATE SET provenance_id = excluded.provenance_id, created_at = excluded.created_at;
            IF octet_length(p_bytes) > 0 THEN
                INSERT INTO outputs (job_id, bytes) VALUES (p_job, p_bytes)
                ON CONFLICT (job_id) DO UPDATE SET bytes = excluded.bytes;
            ELSE
                DELETE FROM outputs o WHERE o.job_id = p_job;
            END IF;
        END IF;
        IF p_cells IS NOT NULL THEN
            IF image IS NULL THEN
                RAISE EXCEPTION 'merge job % has no image', p_job;
            END IF;
            DELETE FROM cells c WHERE c.image_id = image;
            INSERT INTO cells (image_id, merge_job_id, cell_type, score, area, box_x, box_y, box_width, box_height,
                               centroid_x, centroid_y, rle)
            SELECT image, p_job, x.cell_type, x.score, x.area, x.box_x, x.box_y, x.box_width, x.box_height,
                   x.centroid_x, x.centroid_y, x.rle
            FROM jsonb_array_elements(p_cells) WITH ORDINALITY AS e(cell, ord),
                 jsonb_to_record(e.cell) AS x(cell_type text, score double precision, area integer, box_x integer,
                     box_y integer, box_width integer, box_height integer, centroid_x double precision,
                     centroid_y double precision, rle text)
            ORDER BY e.ord;
            DELETE FROM image_counts c WHERE c.image_id = image;
            INSERT INTO image_counts (image_id, cell_type, cells, area_sum, score_sum, stored_bytes)
            SELECT image, c.cell_type, COUNT(*), SUM(c.area), SUM(c.score), SUM(octet_length(c.rle) + \(cellRowBytes))
            FROM cells c WHERE c.image_id = image GROUP BY c.cell_type;
        END IF;
        IF p_drop_inputs AND NOT (SELECT p.keep_tile_outputs FROM plates p WHERE p.id = plate) THEN
            DELETE FROM outputs o WHERE o.job_id IN (SELECT d.depends_on FROM job_dependencies d WHERE d.job_id = p_job);
        END IF;
        UPDATE jobs j SET waiting_on = j.waiting_on - 1
        WHERE j.id IN (SELECT d.job_id FROM job_dependencies d WHERE d.depends_on = p_job) AND j.waiting_on > 0;
        RETURN true;
    END $$
    """

    /// Both in one call and one commit; the claim sees what the completion made ready.
    static let completeAndClaimFunction = """
    CREATE FUNCTION plateseg_complete_and_claim(p_job bigint, p_token bigint, p_now double precision, p_store boolean,
                                                p_bytes bytea, p_provenance text, p_cells jsonb, p_drop_inputs boolean,
                                                p_owner text, p_lease double precision, p_plate text)
    RETURNS TABLE (completed boolean, id bigint, kind text, args text, plate text, image_id bigint, attempts integer,
                   max_attempts integer, fencing_token bigint, lease_deadline double precision)
    LANGUAGE plpgsql AS $$
    BEGIN
        completed := plateseg_complete(p_job, p_token, p_now, p_store, p_bytes, p_provenance, p_cells, p_drop_inputs);
        IF completed THEN
            RETURN QUERY SELECT true, c.* FROM plateseg_claim(p_owner, p_lease, p_plate, p_now) c;
            IF FOUND THEN
                RETURN;
            END IF;
        END IF;
        RETURN NEXT;
    END $$
    """

    /// A cell's row and index entries besides its mask, in bytes: what a plate's share of the
    /// database is estimated with.
    static let cellRowBytes = 96

    /// Any number will do, as long as nothing else in the database takes the same lock.
    static let lockKey: Int64 = 0x706C_6174_6573_6567

    /// For readers: the schema must be this plateseg's.
    static func requireCurrent(_ connections: PostgresConnections) throws {
        let exists = try connections.run("SELECT to_regclass('plateseg_schema') IS NOT NULL").first?.decode(Bool.self) ?? false
        let current = exists ? try connections.run("SELECT COALESCE(max(version), 0) FROM plateseg_schema").first?.decode(Int.self) ?? 0 : 0
        let location = connections.address.redacted
        if current > migrations.count {
            throw JobStoreError.database(path: location, reason: "has schema version \(current), newer than this plateseg's \(migrations.count); use that plateseg version or a newer one")
        }
        if current == 0 {
            throw JobStoreError.database(path: location, reason: "holds no plateseg tables; pass --db with the URL that `plateseg submit` or the workers used")
        }
        if current < migrations.count {
            throw JobStoreError.database(path: location, reason: "has schema version \(current), older than this plateseg's \(migrations.count); bring it up to date with a command that writes (`plateseg submit` or `plateseg worker`), then read it")
        }
    }

    static func migrate(_ connections: PostgresConnections) throws {
        try connections.transaction(timed: false) { tx in
            let s = Statement()
            try tx.run(s.query("SELECT pg_advisory_xact_lock(\(s.bind(lockKey)))"))
            try tx.run("""
                CREATE TABLE IF NOT EXISTS plateseg_schema (
                    version INTEGER PRIMARY KEY,
                    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )
                """)
            let current = try tx.run("SELECT COALESCE(max(version), 0) FROM plateseg_schema").first?.decode(Int.self) ?? 0
            guard current <= migrations.count else {
                throw JobStoreError.database(
                    path: connections.address.redacted,
                    reason: "has schema version \(current), newer than this plateseg's \(migrations.count); use that plateseg version or a newer one")
            }
            for (index, statements) in migrations.enumerated().dropFirst(current) {
                for sql in statements { try tx.run(PostgresQuery(unsafeSQL: sql)) }
                let v = Statement()
                try tx.run(v.query("INSERT INTO plateseg_schema (version) VALUES (\(v.bind(index + 1)))"))
            }
        }
    }
}
