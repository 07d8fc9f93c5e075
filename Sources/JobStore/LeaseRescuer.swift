import GRDB

/// Maintenance: a running job whose worker stopped heartbeating goes back to the queue, or,
/// when its attempts are spent, fails with the reason. Attempts are counted at claim time, so
/// a rescued job already carries the attempt it lost.
enum LeaseRescuer {
    static func rescue(_ db: Database, now: Double) throws -> Int {
        try db.execute(
            sql: """
                UPDATE jobs SET
                    state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
                    last_error = 'lease of ' || COALESCE(lease_owner, '?') || ' expired (worker stopped or was killed)'
                        || CASE WHEN attempts >= max_attempts THEN '; attempts exhausted' ELSE '' END,
                    finished_at = CASE WHEN attempts >= max_attempts THEN :now ELSE NULL END,
                    lease_owner = NULL, lease_deadline = NULL
                WHERE state = 'running' AND lease_deadline < :now
                """,
            arguments: ["now": now])
        return db.changesCount
    }
}
