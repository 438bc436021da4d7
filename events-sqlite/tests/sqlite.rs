//! What a file gives beyond the conformance suite: durability across
//! opens, WAL, a versioned schema migrated in place, and one transaction per
//! batch.

use std::error::Error;
use std::time::Duration;

use events_core::queue::{Job, Queue, QueueError, from_millis};
use events_core::{Envelope, EventId, Metadata};
use events_sqlite::{SCHEMA_VERSION, SqliteBackend, SqliteError};

const LEASE: Duration = Duration::from_secs(30);

fn job(id: &str) -> Job {
    let mut job = Job::from_parts(
        id,
        "a",
        "tests::listener",
        "test.event",
        "{}",
        Envelope::new(),
    );
    job.max_tries = 3;
    job
}

async fn claim(queue: &Queue, limit: usize) -> Vec<Job> {
    queue
        .backend()
        .claim(&["a".to_owned()], limit, LEASE)
        .await
        .unwrap()
}

/// Every message in an error's chain, outermost first.
fn chain(error: &(dyn Error + 'static)) -> Vec<String> {
    std::iter::successors(Some(error), |&e| e.source())
        .map(ToString::to_string)
        .collect()
}

#[tokio::test]
async fn jobs_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite");
    {
        let queue = Queue::open(&format!("sqlite://{}", path.display())).unwrap();
        assert_eq!(queue.url(), format!("sqlite://{}", path.display()));
        queue.enqueue(job("job-1")).await.unwrap();
    }
    let reopened = SqliteBackend::queue(&path).unwrap();
    let claimed = claim(&reopened, 1).await;
    assert_eq!(claimed[0].id, "job-1");
}

#[test]
fn the_file_is_in_wal_mode_with_a_versioned_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite");
    SqliteBackend::queue(&path).unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = raw
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(version, 3);
    // A new file is made of 2048-byte pages, and an enqueue does not write
    // `sqlite_sequence` (schema 3: no AUTOINCREMENT).
    let page_size: i64 = raw.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    assert_eq!(page_size, 2048);
    let jobs_sql: String = raw
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'events_jobs'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!jobs_sql.contains("AUTOINCREMENT"), "{jobs_sql}");
    // Reopening an up-to-date file migrates nothing and works.
    SqliteBackend::queue(&path).unwrap();
    // A file from a newer release is refused in words, not misread.
    raw.pragma_update(None, "user_version", 99).unwrap();
    let error = SqliteBackend::queue(&path).unwrap_err();
    assert!(
        matches!(
            &error,
            QueueError::Unrecoverable {
                backend: "sqlite",
                ..
            }
        ),
        "{error:?}: a file from a newer release stays so; retrying cannot help"
    );
    assert!(error.is_permanent());
    let sqlite = error
        .source()
        .and_then(|e| e.downcast_ref::<SqliteError>())
        .expect("the SQLite error is the source");
    assert!(matches!(
        sqlite,
        SqliteError::SchemaTooNew {
            found: 99,
            supported: 3,
            ..
        }
    ));
    assert_eq!(
        chain(&error),
        [
            "the sqlite queue failed, and trying again will not help".to_owned(),
            format!(
                "`{}` has schema version 99, newer than the 3 this build knows",
                path.display()
            ),
        ]
    );
}

#[test]
fn driver_errors_come_back_as_the_source() {
    let dir = tempfile::tempdir().unwrap();
    // A directory is not a database file.
    let error = SqliteBackend::queue(dir.path()).unwrap_err();
    assert!(error.is_permanent(), "{error:?}");
    let messages = chain(&error);
    assert_eq!(
        messages[0],
        "the sqlite queue failed, and trying again will not help"
    );
    assert_eq!(
        messages[1],
        format!("SQLite failed on `{}`", dir.path().display())
    );
    assert!(
        messages[2].starts_with("unable to open database file"),
        "{messages:?}: SQLite's own words after"
    );
}

#[test]
fn sqlite_urls_need_a_path() {
    for url in ["sqlite://", "sqlite:queue.db"] {
        let error = Queue::open(url).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "bad queue URL `{url}`: expected `sqlite://path`, or `sqlite:///path` for an absolute one"
            )
        );
    }
}

/// A batch is one transaction: when SQLite refuses a job in its middle,
/// the jobs before it are rolled back and the ones after it never written.
#[tokio::test]
async fn a_batch_that_sqlite_refuses_halfway_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite");
    let queue = SqliteBackend::queue(&path).unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute_batch(
        "CREATE TRIGGER poison BEFORE INSERT ON events_jobs WHEN NEW.id = 'poison'
         BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;",
    )
    .unwrap();

    let error = queue
        .enqueue_many(vec![job("first"), job("poison"), job("last")])
        .await
        .unwrap_err();
    let messages = chain(&error);
    assert_eq!(messages[0], "the sqlite queue failed");
    assert_eq!(messages[2], "poisoned row", "{messages:?}");
    let stored: i64 = raw
        .query_row("SELECT COUNT(*) FROM events_jobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 0, "the first job was rolled back");
    assert!(queue.stats().await.unwrap().is_empty());

    queue
        .enqueue_many(vec![job("first"), job("last")])
        .await
        .unwrap();
    assert_eq!(
        queue.size("a").await.unwrap(),
        2,
        "the file is still usable"
    );
}

/// The SQL of schema version 1, as the previous release created it.
const SCHEMA_V1: &str = "CREATE TABLE events_jobs (
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
    );";

/// A file the previous release wrote (schema 1, no envelope columns) opens,
/// is migrated in place, and its jobs run with an envelope derived from the
/// row that stays the same across retries and into the failed store.
#[tokio::test]
async fn a_version_1_file_is_migrated_and_its_jobs_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    let first_enqueued_at: i64 = 1_700_000_000_123;
    {
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch(SCHEMA_V1).unwrap();
        raw.pragma_update(None, "user_version", 1).unwrap();
        for (id, queue) in [("old-job", "a"), ("old-failed", "b")] {
            raw.execute(
                "INSERT INTO events_jobs (id, queue, listener, event, payload, attempt, max_tries,
                                          available_at, first_enqueued_at, last_error, reserved, ready_at)
                 VALUES (?1, ?2, 'tests::listener', 'test.event', '{\"n\":1}', 0, 3, ?3, ?3, NULL, 0, ?3)",
                rusqlite::params![id, queue, first_enqueued_at],
            )
            .unwrap();
        }
    }

    let queue = SqliteBackend::queue(&path).unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = raw
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3, "migrated in place");
    // Schema 3 rebuilt the jobs table without AUTOINCREMENT, keeping each
    // row's `seq` (and so the claim's order).
    let seqs: Vec<(i64, String)> = raw
        .prepare("SELECT seq, id FROM events_jobs ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        seqs,
        [(1, "old-job".to_owned()), (2, "old-failed".to_owned())]
    );

    let claimed = claim(&queue, 1).await;
    assert_eq!(claimed.len(), 1);
    let job = &claimed[0];
    assert_eq!((job.id.as_str(), job.attempt), ("old-job", 1));
    assert_eq!(job.payload, r#"{"n":1}"#);
    let envelope = job.envelope.clone();
    assert_eq!(envelope.occurred_at, from_millis(first_enqueued_at));
    assert_eq!(envelope.id.timestamp(), from_millis(first_enqueued_at));
    assert!(envelope.metadata.is_empty());

    // Retries keep it.
    assert!(
        queue
            .backend()
            .release("old-job", 1, Duration::ZERO, "boom")
            .await
            .unwrap()
    );
    let again = claim(&queue, 1).await;
    assert_eq!(again[0].attempt, 2);
    assert_eq!(again[0].envelope, envelope, "the same envelope on a retry");
    assert!(queue.backend().ack("old-job", 2).await.unwrap());

    // The other old row fails and is retried with its own derived envelope.
    let other = queue
        .backend()
        .claim(&["b".to_owned()], 1, LEASE)
        .await
        .unwrap();
    let derived = other[0].envelope.clone();
    assert_ne!(derived.id, envelope.id, "each old job has its own id");
    assert!(queue.backend().fail("old-failed", 1, "no").await.unwrap());
    assert_eq!(queue.failed().await.unwrap()[0].envelope, derived);
    assert!(queue.retry("old-failed").await.unwrap().is_some());
    let retried = queue
        .backend()
        .claim(&["b".to_owned()], 1, LEASE)
        .await
        .unwrap();
    assert_eq!(retried[0].envelope, derived);
}

/// New rows store the envelope in its own columns, metadata as JSON.
#[tokio::test]
async fn envelopes_are_stored_in_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite");
    let queue = SqliteBackend::queue(&path).unwrap();
    let id = EventId::new();
    let metadata: Metadata = [("tenant", "acme")].into_iter().collect();
    let mut stored = job("job-1");
    stored.envelope = Envelope::from_parts(id, id.timestamp(), metadata);
    queue.enqueue(stored).await.unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    let (event_id, metadata): (String, String) = raw
        .query_row("SELECT event_id, metadata FROM events_jobs", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(event_id, id.to_string());
    assert_eq!(metadata, r#"{"tenant":"acme"}"#);

    // No metadata is stored as NULL and reads back empty.
    let mut bare = job("job-2");
    bare.envelope = Envelope::from_parts(id, id.timestamp(), Metadata::new());
    queue.enqueue(bare).await.unwrap();
    let stored: Option<String> = raw
        .query_row(
            "SELECT metadata FROM events_jobs WHERE id = 'job-2'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, None);
    let claimed = claim(&queue, 2).await;
    assert!(claimed.iter().all(|job| job.envelope.id == id));
    assert!(claimed[1].envelope.metadata.is_empty());
    assert_eq!(claimed[0].envelope.metadata.get("tenant"), Some("acme"));
}

/// One row whose envelope cannot be read fails neither the claim of the
/// others nor the failed store's listing: it runs, saying what it lost.
#[tokio::test]
async fn an_unreadable_envelope_costs_its_job_only_the_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite");
    let queue = SqliteBackend::queue(&path).unwrap();
    for id in ["job-1", "job-2", "job-3"] {
        let mut stored = job(id);
        stored.envelope = stored.envelope.with("tenant", "acme");
        queue.enqueue(stored).await.unwrap();
    }
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute(
        "UPDATE events_jobs SET metadata = '{not json' WHERE id = 'job-1'",
        [],
    )
    .unwrap();
    raw.execute(
        "UPDATE events_jobs SET event_id = 'bogus' WHERE id = 'job-2'",
        [],
    )
    .unwrap();

    let claimed = claim(&queue, 3).await;
    assert_eq!(claimed.len(), 3, "every job is claimed");
    let unreadable = |job: &Job| {
        job.envelope
            .metadata
            .get(events_sqlite::UNREADABLE)
            .map(str::to_owned)
    };
    assert!(
        unreadable(&claimed[0])
            .unwrap()
            .starts_with("metadata `{not json`")
    );
    assert_eq!(claimed[0].envelope.metadata.get("tenant"), None);
    assert_eq!(unreadable(&claimed[1]).as_deref(), Some("event id `bogus`"));
    assert_eq!(claimed[1].envelope.metadata.get("tenant"), Some("acme"));
    assert_eq!(unreadable(&claimed[2]), None);

    // The failed store lists such a job too.
    assert!(queue.backend().fail("job-2", 1, "said no").await.unwrap());
    let failed = queue.failed().await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0].envelope.metadata.get(events_sqlite::UNREADABLE),
        Some("event id `bogus`")
    );
}

/// A worker's step between two jobs: the ack of the one done and the claim
/// of the next, in one write. Each result is what its own call gives: a
/// fenced ack (a stale attempt) is `false` and does not stop the claim, and
/// the job just acked is gone, never claimed again.
#[tokio::test]
async fn ack_and_claim_acks_then_claims_each_with_its_own_result() {
    let dir = tempfile::tempdir().unwrap();
    let queue = SqliteBackend::queue(dir.path().join("queue.sqlite")).unwrap();
    for id in ["job-1", "job-2", "job-3"] {
        queue.enqueue(job(id)).await.unwrap();
    }
    let queues = ["a".to_owned()];
    let first = claim(&queue, 1).await.remove(0);
    assert_eq!((first.id.as_str(), first.attempt), ("job-1", 1));

    let (acked, claimed) = queue
        .backend()
        .ack_and_claim(&first.id, first.attempt, &queues, 1, LEASE)
        .await;
    assert!(acked.unwrap());
    let second = claimed.unwrap().remove(0);
    assert_eq!((second.id.as_str(), second.attempt), ("job-2", 1));

    // A stale attempt: the ack is refused, the claim still takes job-3.
    let (acked, claimed) = queue
        .backend()
        .ack_and_claim(&second.id, second.attempt + 1, &queues, 5, LEASE)
        .await;
    assert!(!acked.unwrap());
    let ids: Vec<String> = claimed.unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(ids, ["job-3"]);

    // job-1 is gone; job-2 and job-3 are still held.
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats[0].pending, stats[0].reserved), (0, 2), "{stats:?}");
}

/// A claim charges the try in the row and in the job it returns alike:
/// acking with the returned attempt works, and a job claimed again after
/// its lease lapsed comes back with the next attempt.
#[tokio::test]
async fn a_claimed_job_carries_the_attempt_its_row_holds() {
    let dir = tempfile::tempdir().unwrap();
    let queue = SqliteBackend::queue(dir.path().join("queue.sqlite")).unwrap();
    queue.enqueue(job("job-1")).await.unwrap();
    let queues = ["a".to_owned()];
    let lapsing = Duration::from_millis(30);
    let first = queue
        .backend()
        .claim(&queues, 1, lapsing)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(first.attempt, 1);
    tokio::time::sleep(Duration::from_millis(80)).await;
    let again = queue
        .backend()
        .claim(&queues, 1, LEASE)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(again.attempt, 2);
    assert!(!queue.backend().ack(&first.id, first.attempt).await.unwrap());
    assert!(queue.backend().ack(&again.id, again.attempt).await.unwrap());
}

/// A batch long enough to be stored by several multi-row statements keeps
/// the rules of one job at a time: an id already waiting, one in the
/// failed store, and one repeated within the batch (within one statement
/// and across two) are each skipped, and every other job is stored once.
#[tokio::test]
async fn a_long_batch_skips_known_ids_as_a_short_one_does() {
    let dir = tempfile::tempdir().unwrap();
    let queue = SqliteBackend::queue(dir.path().join("queue.sqlite")).unwrap();
    queue.enqueue(job("waiting")).await.unwrap();
    queue.enqueue(job("failed")).await.unwrap();
    let claimed = claim(&queue, 2).await;
    let failed = claimed.iter().find(|j| j.id == "failed").unwrap();
    assert!(
        queue
            .backend()
            .fail(&failed.id, failed.attempt, "boom")
            .await
            .unwrap()
    );
    let waiting = claimed.iter().find(|j| j.id == "waiting").unwrap();
    assert!(
        queue
            .backend()
            .abandon(&waiting.id, waiting.attempt, Duration::ZERO)
            .await
            .unwrap()
    );

    let mut batch: Vec<Job> = (0..70).map(|n| job(&format!("job-{n}"))).collect();
    batch[3] = job("waiting");
    batch[10] = job("failed");
    batch[20] = job("job-1"); // the same statement as job-1
    batch[50] = job("job-2"); // a later statement
    batch[69] = job("job-0"); // the rows stored one at a time
    queue.enqueue_many(batch).await.unwrap();

    // 70, less the 5 skipped, plus the job that was waiting already.
    assert_eq!(queue.size("a").await.unwrap(), 66);
    assert_eq!(queue.failed().await.unwrap().len(), 1);
    let ids: Vec<String> = claim(&queue, 100).await.into_iter().map(|j| j.id).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
    assert!(!ids.contains(&"failed".to_owned()));
}
