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
