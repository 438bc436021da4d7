//! The tables, their migrations, and how a row's envelope is read back.
//!
//! The schema is versioned with `PRAGMA user_version` and migrated in place
//! when a file is opened:
//!
//! - 1: the jobs and failed-jobs tables.
//! - 2: each gains the envelope: `event_id` (the ULID as text),
//!   `occurred_at` (milliseconds since the epoch) and `metadata` (a JSON
//!   object of strings, NULL when empty). The columns are nullable: rows
//!   written before the migration, or by a process of the previous release
//!   still running on the file, have none, and read back with an envelope
//!   derived from the row itself ([`envelope`]).
//! - 3: `events_jobs.seq` is a plain `INTEGER PRIMARY KEY`, no longer
//!   `AUTOINCREMENT` (the table is rebuilt, its rows and their `seq`
//!   kept). `AUTOINCREMENT` wrote the `sqlite_sequence` table's page at
//!   every enqueue: one more page in each commit's WAL frames, for a
//!   guarantee the queue does not need (a `seq` is never reused while its
//!   row exists, and a new row's is above every existing one's, so the
//!   claim's `ORDER BY ready_at, seq` keeps its order).
//!
//! **Additions** ([`ADDITIONS`]) are tables and indexes a release adds
//! without a new version: every statement is `CREATE .. IF NOT EXISTS`,
//! and nothing an earlier release reads or writes changes shape, so a file
//! that gained them still opens with that release (which ignores the new
//! tables, while SQLite keeps the new indexes up to date for its writes). A
//! new version would lock those releases out of the file
//! ([`SqliteError::SchemaTooNew`](crate::SqliteError::SchemaTooNew)) for
//! nothing. They are created, under the write lock, only when one is
//! missing, so opening a file that has them still takes no write lock:
//!
//! - `events_workers`, `events_minutes`, `events_finished`: what workers
//!   report ([`Backend::report`](events_core::queue::Backend::report)),
//!   for the dashboard. A minute's runtime buckets are columns of their own
//!   (`runtime_0` ..), so two workers' reports add up in one
//!   `INSERT .. ON CONFLICT DO UPDATE SET runtime_0 = runtime_0 +
//!   excluded.runtime_0, ..`, with no read of the row first. Heartbeat
//!   and finishing times are nanoseconds since the epoch (`*_ns`), so a
//!   heartbeat reads back exactly as sent.
//! - `events_failed_jobs_at` (`queue, failed_at`): the failed store newest
//!   first, per queue, and its counts since a time, from the index.
//! - `events_jobs_due` (`queue, ready_at, reserved`) replaces the claim
//!   index `events_jobs_ready` (`queue, ready_at`), which is dropped: the
//!   claim reads it as it read the old one (`ORDER BY ready_at, reserved,
//!   seq`), and a listing tells delayed jobs from claimed ones, and counts
//!   them, from the index alone. A claim rewrites the row's entry anyway
//!   (its `ready_at` changes), so the flag in the key costs a write
//!   nothing; a second index holding it (a partial one of the claimed
//!   rows, tried first) cost the worker 10–20 % of its jobs per second.
//!   An earlier release on such a file claims in the same order, sorting
//!   jobs due in the same millisecond by `seq` itself.
//! - The event log of [`SqliteStore`](crate::SqliteStore), on its own
//!   file or on the queue's: `events_log` (one row per event; `position`
//!   its `INTEGER PRIMARY KEY`, handed out by the store above both the
//!   highest row and `events_log_last`, the highest position a prune
//!   deleted, so a pruned position is never handed out again, without
//!   `AUTOINCREMENT`'s write of `sqlite_sequence` at every commit; `id`
//!   the event id's 16 bytes, unique; `occurred_at` in
//!   milliseconds; `metadata` and `related` JSON or NULL; `actor` the
//!   metadata's `actor_id`), its indexes `events_log_id`,
//!   `events_log_entity` (`entity_type, entity_id, position`, partial: only
//!   events with an entity pay for it; the timeline and the stream
//!   versions), `events_log_name` (history by exact name, paged by
//!   position) and `events_log_time` (`occurred_at, name`: time ranges,
//!   prune, and the stats from the index alone); `events_log_related` (the
//!   timelines of related entities), `events_stream_tails` (the version of
//!   a stream whose newest events were pruned), `events_checkpoints`,
//!   `events_subscriptions`, `events_deliveries` and its indexes. A file of
//!   an earlier release (schema 3 without them) gains them when this
//!   build opens it, and still opens with that release.

use std::time::SystemTime;

use events_core::queue::{fnv1a, from_millis};
use events_core::{Envelope, EventId, Metadata};

/// The newest schema version this build knows (and migrates files to).
pub const SCHEMA_VERSION: i64 = 3;

/// Migrations, by the version they lead to.
pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE events_jobs (
            seq               INTEGER PRIMARY KEY AUTOINCREMENT,
            id                TEXT NOT NULL UNIQUE,
            queue             TEXT NOT NULL,
            listener          TEXT NOT NULL,
            event             TEXT NOT NULL,
            payload           TEXT NOT NULL,
            attempt           INTEGER NOT NULL,
            max_tries         INTEGER NOT NULL,
            available_at      INTEGER NOT NULL,
            first_enqueued_at INTEGER NOT NULL,
            last_error        TEXT,
            reserved          INTEGER NOT NULL DEFAULT 0,
            ready_at          INTEGER NOT NULL
        );
        CREATE INDEX events_jobs_ready ON events_jobs (queue, ready_at);
        CREATE TABLE events_failed_jobs (
            seq               INTEGER PRIMARY KEY AUTOINCREMENT,
            id                TEXT NOT NULL UNIQUE,
            queue             TEXT NOT NULL,
            listener          TEXT NOT NULL,
            event             TEXT NOT NULL,
            payload           TEXT NOT NULL,
            error             TEXT NOT NULL,
            attempts          INTEGER NOT NULL,
            max_tries         INTEGER NOT NULL,
            first_enqueued_at INTEGER NOT NULL,
            failed_at         INTEGER NOT NULL
        );",
    ),
    (
        2,
        "ALTER TABLE events_jobs ADD COLUMN event_id TEXT;
        ALTER TABLE events_jobs ADD COLUMN occurred_at INTEGER;
        ALTER TABLE events_jobs ADD COLUMN metadata TEXT;
        ALTER TABLE events_failed_jobs ADD COLUMN event_id TEXT;
        ALTER TABLE events_failed_jobs ADD COLUMN occurred_at INTEGER;
        ALTER TABLE events_failed_jobs ADD COLUMN metadata TEXT;",
    ),
    (
        3,
        "CREATE TABLE events_jobs_3 (
            seq               INTEGER PRIMARY KEY,
            id                TEXT NOT NULL UNIQUE,
            queue             TEXT NOT NULL,
            listener          TEXT NOT NULL,
            event             TEXT NOT NULL,
            payload           TEXT NOT NULL,
            attempt           INTEGER NOT NULL,
            max_tries         INTEGER NOT NULL,
            available_at      INTEGER NOT NULL,
            first_enqueued_at INTEGER NOT NULL,
            last_error        TEXT,
            reserved          INTEGER NOT NULL DEFAULT 0,
            ready_at          INTEGER NOT NULL,
            event_id          TEXT,
            occurred_at       INTEGER,
            metadata          TEXT
        );
        INSERT INTO events_jobs_3 (seq, id, queue, listener, event, payload, attempt, max_tries,
                                   available_at, first_enqueued_at, last_error, reserved, ready_at,
                                   event_id, occurred_at, metadata)
            SELECT seq, id, queue, listener, event, payload, attempt, max_tries, available_at,
                   first_enqueued_at, last_error, reserved, ready_at, event_id, occurred_at, metadata
            FROM events_jobs;
        DROP TABLE events_jobs;
        ALTER TABLE events_jobs_3 RENAME TO events_jobs;
        CREATE INDEX events_jobs_ready ON events_jobs (queue, ready_at);",
    ),
];

/// How many runtime buckets a minute row holds (columns `runtime_0` ..).
pub(crate) const BUCKETS: usize = events_core::queue::activity::RUNTIME_BUCKETS_MS.len() + 1;

// The columns are in the file: a change in events-core's buckets needs
// columns added here (an addition), not a silent mismatch.
const _: () = assert!(BUCKETS == 16, "events_minutes has 16 runtime columns");

/// Tables and indexes added without a schema version (see the module's
/// docs), by name: each is created when missing.
pub(crate) const ADDITIONS: &[(&str, &str)] = &[
    (
        "events_workers",
        "CREATE TABLE IF NOT EXISTS events_workers (
            id          TEXT PRIMARY KEY,
            host        TEXT NOT NULL,
            pid         INTEGER NOT NULL,
            queues      TEXT NOT NULL,
            concurrency INTEGER NOT NULL,
            started_ns  INTEGER NOT NULL,
            seen_ns     INTEGER NOT NULL,
            every_ns    INTEGER NOT NULL,
            running     INTEGER NOT NULL,
            processed   INTEGER NOT NULL,
            failed      INTEGER NOT NULL
        )",
    ),
    (
        "events_minutes",
        "CREATE TABLE IF NOT EXISTS events_minutes (
            minute      INTEGER NOT NULL,
            queue       TEXT NOT NULL,
            listener    TEXT NOT NULL,
            succeeded   INTEGER NOT NULL,
            retried     INTEGER NOT NULL,
            failed      INTEGER NOT NULL,
            runtime_ms  INTEGER NOT NULL,
            runtime_0   INTEGER NOT NULL, runtime_1  INTEGER NOT NULL, runtime_2  INTEGER NOT NULL,
            runtime_3   INTEGER NOT NULL, runtime_4  INTEGER NOT NULL, runtime_5  INTEGER NOT NULL,
            runtime_6   INTEGER NOT NULL, runtime_7  INTEGER NOT NULL, runtime_8  INTEGER NOT NULL,
            runtime_9   INTEGER NOT NULL, runtime_10 INTEGER NOT NULL, runtime_11 INTEGER NOT NULL,
            runtime_12  INTEGER NOT NULL, runtime_13 INTEGER NOT NULL, runtime_14 INTEGER NOT NULL,
            runtime_15  INTEGER NOT NULL,
            wait_ms     INTEGER NOT NULL,
            wait_max_ms INTEGER NOT NULL,
            claims      INTEGER NOT NULL,
            PRIMARY KEY (minute, queue, listener)
        ) WITHOUT ROWID",
    ),
    (
        "events_finished",
        "CREATE TABLE IF NOT EXISTS events_finished (
            seq         INTEGER PRIMARY KEY,
            id          TEXT NOT NULL,
            queue       TEXT NOT NULL,
            listener    TEXT NOT NULL,
            event       TEXT NOT NULL,
            attempt     INTEGER NOT NULL,
            outcome     TEXT NOT NULL,
            took_ns     INTEGER NOT NULL,
            finished_ns INTEGER NOT NULL,
            worker      TEXT NOT NULL
        )",
    ),
    (
        "events_failed_jobs_at",
        "CREATE INDEX IF NOT EXISTS events_failed_jobs_at ON events_failed_jobs (queue, failed_at)",
    ),
    // The event log (`SqliteStore`): see `crate::store`.
    (
        "events_log",
        "CREATE TABLE IF NOT EXISTS events_log (
            position       INTEGER PRIMARY KEY,
            id             BLOB NOT NULL,
            name           TEXT NOT NULL,
            version        INTEGER NOT NULL,
            payload        TEXT NOT NULL,
            occurred_at    INTEGER NOT NULL,
            metadata       TEXT,
            entity_type    TEXT,
            entity_id      TEXT,
            entity_version INTEGER,
            related        TEXT,
            actor          TEXT
        )",
    ),
    (
        "events_log_last",
        "CREATE TABLE IF NOT EXISTS events_log_last (
            id       INTEGER PRIMARY KEY CHECK (id = 1),
            position INTEGER NOT NULL
        )",
    ),
    (
        "events_log_id",
        "CREATE UNIQUE INDEX IF NOT EXISTS events_log_id ON events_log (id)",
    ),
    (
        "events_log_entity",
        "CREATE INDEX IF NOT EXISTS events_log_entity ON events_log (entity_type, entity_id, position)
            WHERE entity_type IS NOT NULL",
    ),
    (
        "events_log_name",
        "CREATE INDEX IF NOT EXISTS events_log_name ON events_log (name)",
    ),
    (
        "events_log_time",
        "CREATE INDEX IF NOT EXISTS events_log_time ON events_log (occurred_at, name)",
    ),
    (
        "events_log_related",
        "CREATE TABLE IF NOT EXISTS events_log_related (
            entity_type TEXT NOT NULL,
            entity_id   TEXT NOT NULL,
            position    INTEGER NOT NULL,
            PRIMARY KEY (entity_type, entity_id, position)
        ) WITHOUT ROWID",
    ),
    (
        "events_stream_tails",
        "CREATE TABLE IF NOT EXISTS events_stream_tails (
            entity_type TEXT NOT NULL,
            entity_id   TEXT NOT NULL,
            version     INTEGER NOT NULL,
            PRIMARY KEY (entity_type, entity_id)
        ) WITHOUT ROWID",
    ),
    (
        "events_checkpoints",
        "CREATE TABLE IF NOT EXISTS events_checkpoints (
            projector  TEXT PRIMARY KEY,
            position   INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        ) WITHOUT ROWID",
    ),
    (
        "events_subscriptions",
        "CREATE TABLE IF NOT EXISTS events_subscriptions (
            seq                  INTEGER PRIMARY KEY,
            id                   TEXT NOT NULL UNIQUE,
            url                  TEXT NOT NULL,
            event_names          TEXT NOT NULL,
            filters              TEXT,
            active               INTEGER NOT NULL,
            secret               TEXT NOT NULL,
            description          TEXT,
            created_at           INTEGER NOT NULL,
            consecutive_failures INTEGER NOT NULL,
            disabled_reason      TEXT
        )",
    ),
    (
        "events_deliveries",
        "CREATE TABLE IF NOT EXISTS events_deliveries (
            seq             INTEGER PRIMARY KEY,
            id              TEXT NOT NULL,
            webhook_id      TEXT NOT NULL,
            subscription_id TEXT NOT NULL,
            event_id        TEXT NOT NULL,
            event_name      TEXT NOT NULL,
            url             TEXT NOT NULL,
            attempt         INTEGER NOT NULL,
            at              INTEGER NOT NULL,
            status          INTEGER,
            latency_ms      INTEGER NOT NULL,
            response        TEXT,
            error           TEXT,
            succeeded       INTEGER NOT NULL,
            replay          INTEGER NOT NULL
        )",
    ),
    (
        "events_deliveries_at",
        "CREATE INDEX IF NOT EXISTS events_deliveries_at ON events_deliveries (at)",
    ),
    (
        "events_deliveries_subscription",
        "CREATE INDEX IF NOT EXISTS events_deliveries_subscription
            ON events_deliveries (subscription_id, at)",
    ),
    (
        "events_jobs_due",
        "CREATE INDEX IF NOT EXISTS events_jobs_due ON events_jobs (queue, ready_at, reserved);
        DROP INDEX IF EXISTS events_jobs_ready;",
    ),
];

/// Indexes [`ADDITIONS`] replaced: dropped when found.
pub(crate) const RETIRED: &[&str] = &["events_jobs_ready"];

/// The page size of files this build creates (`PRAGMA page_size`, set
/// before the first table; a file keeps the size it was created with).
/// SQLite's default is 4096; a commit writes each page it changed to the
/// WAL whole and checksums it, and an enqueue changes about three (the
/// table's leaf and one leaf of each index) to store a row of a few hundred
/// bytes. Measured with one-row transactions on this table: 2048 commits
/// about 1.5x as many per second as 4096 (1024 a little more again, but
/// payloads over about 1 KB would then spill to overflow pages).
pub(crate) const PAGE_SIZE: i64 = 2048;

/// The envelope stored in a row's `event_id`, `occurred_at` and `metadata`
/// (at `columns`, in that order), or, for a row written before schema 2,
/// one derived from the row: the event id's time is when the job was first
/// enqueued and its low 64 bits a hash of the job's id (the 16 between are
/// zero), it occurred when the job was first enqueued, and it has no
/// metadata. A stored envelope that cannot be read costs its job only what
/// could not be read (see [`UNREADABLE`]). The same row always
/// reads back the same envelope, so it stays put across retries, and is
/// written out whole when the job moves to or from the failed store.
pub(crate) fn envelope(
    row: &rusqlite::Row<'_>,
    columns: usize,
    job_id: &str,
    first_enqueued_at: i64,
) -> rusqlite::Result<Envelope> {
    let id: Option<String> = row.get(columns)?;
    let occurred_at: Option<i64> = row.get(columns + 1)?;
    let metadata: Option<String> = row.get(columns + 2)?;
    let Some(id) = id else {
        return Ok(legacy_envelope(job_id, first_enqueued_at));
    };
    // One unreadable envelope must not fail a claim of many jobs (nor stop
    // every worker): the job keeps running with what can be read, and the
    // text that could not goes into its metadata, in words.
    let mut envelope = match id.parse::<EventId>() {
        Ok(id) => Envelope::from_parts(
            id,
            occurred_at.map_or_else(|| id.timestamp(), from_millis),
            Metadata::new(),
        ),
        Err(error) => {
            tracing::warn!(job = %job_id, %error, "a stored event id is unreadable; the job keeps one derived from its row");
            let mut envelope = legacy_envelope(job_id, first_enqueued_at);
            envelope
                .metadata
                .insert(UNREADABLE, format!("event id `{id}`"));
            envelope
        }
    };
    if let Some(json) = metadata {
        match Metadata::from_json(&json) {
            Ok(metadata) => {
                let unreadable = envelope.metadata.remove(UNREADABLE);
                envelope.metadata = metadata;
                if let Some(unreadable) = unreadable {
                    envelope.metadata.insert(UNREADABLE, unreadable);
                }
            }
            Err(error) => {
                tracing::warn!(job = %job_id, %error, "a job's stored metadata is unreadable; it runs without it");
                envelope
                    .metadata
                    .insert(UNREADABLE, format!("metadata `{json}`: {error}"));
            }
        }
    }
    Ok(envelope)
}

/// The metadata key under which a job whose stored envelope could not be
/// read keeps the unreadable text.
pub const UNREADABLE: &str = "events.unreadable_envelope";

/// The envelope of a job stored before envelopes were.
pub(crate) fn legacy_envelope(job_id: &str, first_enqueued_at: i64) -> Envelope {
    let at: SystemTime = from_millis(first_enqueued_at);
    let time = (first_enqueued_at.max(0) as u128) & ((1 << 48) - 1);
    let id = EventId::from_u128((time << 80) | u128::from(fnv1a(job_id.as_bytes())));
    Envelope::from_parts(id, at, Metadata::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_envelopes_are_stable_and_dated_by_the_row() {
        let a = legacy_envelope("job-1", 1_700_000_000_123);
        assert_eq!(a, legacy_envelope("job-1", 1_700_000_000_123));
        assert_ne!(a.id, legacy_envelope("job-2", 1_700_000_000_123).id);
        assert_eq!(a.occurred_at, from_millis(1_700_000_000_123));
        assert_eq!(a.id.timestamp(), a.occurred_at);
        assert!(a.metadata.is_empty());
        // Pinned: the derivation must not change between releases.
        assert_eq!(a.id.to_string(), "01HF7YAT3V000F5GQ8G0G0HX7P");
    }
}
