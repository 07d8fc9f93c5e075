import GRDB

enum SQLiteSchema {
    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE plates (
                    id INTEGER PRIMARY KEY,
                    name TEXT NOT NULL UNIQUE,
                    root TEXT NOT NULL,
                    settings TEXT NOT NULL DEFAULT '',
                    created_at REAL NOT NULL
                );
                CREATE TABLE images (
                    id INTEGER PRIMARY KEY,
                    plate_id INTEGER NOT NULL REFERENCES plates(id),
                    path TEXT NOT NULL,
                    well TEXT,
                    field INTEGER,
                    width INTEGER NOT NULL,
                    height INTEGER NOT NULL,
                    content_hash TEXT NOT NULL,
                    error TEXT,
                    created_at REAL NOT NULL,
                    UNIQUE (plate_id, path)
                );
                CREATE TABLE jobs (
                    id INTEGER PRIMARY KEY,
                    key TEXT NOT NULL UNIQUE,
                    kind TEXT NOT NULL,
                    plate_id INTEGER NOT NULL REFERENCES plates(id),
                    image_id INTEGER REFERENCES images(id),
                    args TEXT NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
                    waiting_on INTEGER NOT NULL DEFAULT 0,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    max_attempts INTEGER NOT NULL,
                    lease_owner TEXT,
                    lease_deadline REAL,
                    fencing_token INTEGER NOT NULL DEFAULT 0,
                    not_before REAL NOT NULL DEFAULT 0,
                    last_error TEXT,
                    created_at REAL NOT NULL,
                    started_at REAL,
                    finished_at REAL
                );
                CREATE INDEX jobs_ready ON jobs (id) WHERE state = 'queued' AND waiting_on = 0;
                CREATE INDEX jobs_running ON jobs (lease_deadline) WHERE state = 'running';
                CREATE INDEX jobs_plate ON jobs (plate_id, state);
                CREATE INDEX jobs_image ON jobs (image_id, kind);
                CREATE TABLE job_dependencies (
                    job_id INTEGER NOT NULL REFERENCES jobs(id),
                    depends_on INTEGER NOT NULL REFERENCES jobs(id),
                    PRIMARY KEY (job_id, depends_on)
                ) WITHOUT ROWID;
                CREATE INDEX job_dependants ON job_dependencies (depends_on);
                CREATE TABLE artifacts (
                    job_id INTEGER PRIMARY KEY REFERENCES jobs(id),
                    bytes BLOB NOT NULL,
                    provenance TEXT,
                    created_at REAL NOT NULL
                );
                CREATE TABLE cells (
                    id INTEGER PRIMARY KEY,
                    image_id INTEGER NOT NULL REFERENCES images(id),
                    merge_job_id INTEGER NOT NULL REFERENCES jobs(id),
                    cell_type TEXT NOT NULL,
                    score REAL NOT NULL,
                    area INTEGER NOT NULL,
                    box_x INTEGER NOT NULL, box_y INTEGER NOT NULL,
                    box_width INTEGER NOT NULL, box_height INTEGER NOT NULL,
                    centroid_x REAL NOT NULL, centroid_y REAL NOT NULL,
                    rle TEXT NOT NULL
                );
                CREATE INDEX cells_image ON cells (image_id);
                """)
        }
        // The by-well and by-type queries of `query`, `export` and `report`.
        m.registerMigration("v2") { db in
            try db.execute(sql: """
                CREATE INDEX images_well ON images (plate_id, well);
                CREATE INDEX cells_type ON cells (cell_type, image_id);
                """)
        }
        // Image identity beyond well and field: time point, channel, plane; images of channels
        // that are not segmented are kept (for status) but get no jobs.
        m.registerMigration("v3") { db in
            try db.execute(sql: """
                ALTER TABLE images ADD COLUMN timepoint TEXT;
                ALTER TABLE images ADD COLUMN timepoint_order INTEGER;
                ALTER TABLE images ADD COLUMN channel TEXT;
                ALTER TABLE images ADD COLUMN plane INTEGER;
                ALTER TABLE images ADD COLUMN page INTEGER;
                ALTER TABLE images ADD COLUMN segmented INTEGER NOT NULL DEFAULT 1;
                CREATE INDEX images_time ON images (plate_id, timepoint_order, well);
                """)
        }
        // A facility's night: a job's output bytes live in a table of their own, which merges
        // empty of the outputs they read unless the plate keeps them (whole rows deleted: their
        // pages are free for the next plate, where emptied rows would leave them near empty);
        // counts per image and type are kept beside the cells, so that counting a plate reads one
        // row per image and type, not every cell; a resubmitted file whose identity is unchanged
        // is not read again; a plate's jobs finished lately are found by time.
        m.registerMigration("v4") { db in
            try db.execute(sql: """
                CREATE TABLE outputs (
                    job_id INTEGER PRIMARY KEY REFERENCES jobs(id),
                    bytes BLOB NOT NULL
                );
                INSERT INTO outputs (job_id, bytes) SELECT job_id, bytes FROM artifacts WHERE length(bytes) > 0;
                ALTER TABLE artifacts DROP COLUMN bytes;
                ALTER TABLE plates ADD COLUMN keep_tile_outputs INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE images ADD COLUMN file_identity TEXT;
                CREATE TABLE image_counts (
                    image_id INTEGER NOT NULL REFERENCES images(id),
                    cell_type TEXT NOT NULL,
                    cells INTEGER NOT NULL,
                    area_sum INTEGER NOT NULL,
                    score_sum REAL NOT NULL,
                    stored_bytes INTEGER NOT NULL,
                    PRIMARY KEY (image_id, cell_type)
                ) WITHOUT ROWID;
                INSERT INTO image_counts (image_id, cell_type, cells, area_sum, score_sum, stored_bytes)
                    SELECT image_id, cell_type, COUNT(*), SUM(area), SUM(score), SUM(length(rle) + \(cellRowBytes))
                    FROM cells GROUP BY image_id, cell_type;
                DROP INDEX cells_type;
                CREATE INDEX jobs_finished ON jobs (plate_id, finished_at) WHERE finished_at IS NOT NULL;
                """)
        }
        // A night's jobs share a few provenance records (one per model file, precision and
        // ensemble config): each is stored once and a job's artifact points at it, so that
        // `status` learns which records are in use from a few index probes instead of grouping
        // every job's copy of them; jobs with an error are found without reading every job; a
        // plate's jobs are counted by state, its merges and blocked jobs, from indexes alone
        // (`jobs_plate` keeps (plate_id, state) only: a plate's claim walks it in id order).
        m.registerMigration("v5") { db in
            try db.execute(sql: """
                CREATE TABLE provenances (
                    id INTEGER PRIMARY KEY,
                    text TEXT NOT NULL UNIQUE
                );
                INSERT INTO provenances (text) SELECT DISTINCT provenance FROM artifacts WHERE provenance IS NOT NULL;
                ALTER TABLE artifacts ADD COLUMN provenance_id INTEGER REFERENCES provenances(id);
                UPDATE artifacts SET provenance_id = (SELECT p.id FROM provenances p WHERE p.text = artifacts.provenance)
                    WHERE provenance IS NOT NULL;
                ALTER TABLE artifacts DROP COLUMN provenance;
                CREATE INDEX artifacts_provenance ON artifacts (provenance_id);
                CREATE INDEX jobs_errors ON jobs (id) WHERE last_error IS NOT NULL;
                CREATE INDEX jobs_merges ON jobs (plate_id, state, kind) WHERE kind = 'merge';
                CREATE INDEX jobs_blocked ON jobs (plate_id, state, waiting_on) WHERE state = 'queued' AND waiting_on > 0;
                """)
        }
        return m
    }

    /// A cell's row and index entries besides its mask, in bytes: what a plate's share of the
    /// database is estimated with.
    static let cellRowBytes = 96

    /// A plate's jobs by state, its blocked jobs, its succeeded merges (argument: the plate's id),
    /// each counted from an index alone.
    static let plateProgress = [
        "SELECT state, COUNT(*) FROM jobs INDEXED BY jobs_plate WHERE plate_id = ? GROUP BY state",
        "SELECT COUNT(*) FROM jobs INDEXED BY jobs_blocked WHERE plate_id = ? AND state = 'queued' AND waiting_on > 0",
        "SELECT COUNT(*) FROM jobs INDEXED BY jobs_merges WHERE plate_id = ? AND state = 'succeeded' AND kind = 'merge'",
    ]

    /// Each provenance record with the kind of the first succeeded job that holds it: an index
    /// probe per record, not a pass over the jobs.
    static let provenancesInUse = """
        SELECT k, text FROM (
            SELECT pr.text, (SELECT j.kind FROM artifacts a INDEXED BY artifacts_provenance JOIN jobs j ON j.id = a.job_id
                             WHERE a.provenance_id = pr.id AND j.state = 'succeeded' LIMIT 1) AS k
            FROM provenances pr)
        WHERE k IS NOT NULL ORDER BY k, text
        """

    /// The next ready job, of one plate if given, read in order from an index named here: with
    /// statistics the planner may choose to walk all ready jobs, or all jobs, in id order, reading
    /// every queued job of the plates before the claimed one (or every job ever run) on every claim.
    static func claim(ofPlate: Bool) -> String {
        let ready = ofPlate
            ? "INDEXED BY jobs_plate WHERE plate_id = (SELECT id FROM plates WHERE name = :plate) AND"
            : "INDEXED BY jobs_ready WHERE"
        return """
            UPDATE jobs SET state = 'running', attempts = attempts + 1, fencing_token = fencing_token + 1,
                lease_owner = :owner, lease_deadline = :deadline, started_at = :now
            WHERE id = (SELECT id FROM jobs \(ready) state = 'queued' AND waiting_on = 0 AND not_before <= :now
                        ORDER BY id LIMIT 1)
            RETURNING id, kind, args, plate_id, image_id, attempts, max_attempts, fencing_token
            """
    }
}
