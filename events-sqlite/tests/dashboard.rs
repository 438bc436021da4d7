//! What the dashboard reads from a file beyond the conformance suite:
//! workers' reports kept across opens and added up across handles (as two
//! processes on one file), the tables and index added to a schema 3 file
//! without a new version, the bound on a search, wildcards in search text,
//! and rows that cannot be read.

use std::time::{Duration, SystemTime};

use events_core::Envelope;
use events_core::queue::activity::{Finish, FinishedJob, MinuteStats, WorkerStatus, minute_of};
use events_core::queue::{ActivityReport, Job, JobQuery, JobState, Queue};
use events_sqlite::{SCHEMA_VERSION, SEARCHED_ROWS, SqliteBackend};

fn job(id: &str, payload: &str) -> Job {
    let mut job = Job::from_parts(
        id,
        "a",
        "tests::listener",
        "test.event",
        payload,
        Envelope::new(),
    );
    job.max_tries = 3;
    job
}

fn report(worker: &WorkerStatus, minute: i64, succeeded: u64, took_ms: u64) -> ActivityReport {
    let mut stats = MinuteStats::new(minute, "mail", "tests::listener");
    stats.succeeded = succeeded;
    for _ in 0..succeeded {
        stats.add_runtime(Duration::from_millis(took_ms));
        stats.add_wait(Duration::from_millis(took_ms * 10));
    }
    let mut report = ActivityReport::new(worker.clone());
    report.minutes.push(stats);
    let mut finished = FinishedJob::new(
        format!("{}-job", worker.id),
        Finish::Succeeded,
        SystemTime::now(),
    );
    finished.queue = "mail".to_owned();
    finished.worker = worker.id.clone();
    finished.took = Duration::from_millis(took_ms);
    report.finished.push(finished);
    report
}

/// Two handles on one file (each with its own connections, as two
/// processes have) report the same minute: the counts add up, both workers
/// are listed; all of it is still there once the file is opened again.
#[tokio::test]
async fn reports_add_up_across_handles_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite");
    let now = SystemTime::now();
    let minute = minute_of(now);
    let every = Duration::from_secs(60);
    let a = WorkerStatus::new("host-a:1:0", "host-a", 1, now, every);
    let mut b = WorkerStatus::new("host-b:2:0", "host-b", 2, now, every);
    b.queues = vec!["mail".to_owned()];
    {
        let one = SqliteBackend::queue(&path).unwrap();
        let two = SqliteBackend::queue(&path).unwrap();
        let (from_a, from_b) = (report(&a, minute, 3, 4), report(&b, minute, 2, 40));
        let (ra, rb) = tokio::join!(one.backend().report(&from_a), two.backend().report(&from_b),);
        ra.unwrap();
        rb.unwrap();
        let seen = one.activity(now - Duration::from_secs(60)).await.unwrap();
        assert_eq!(
            seen,
            two.activity(now - Duration::from_secs(60)).await.unwrap()
        );
    }
    let reopened = SqliteBackend::queue(&path).unwrap();
    let activity = reopened
        .activity(now - Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        activity.workers,
        [a.clone(), b.clone()],
        "both, exactly as sent"
    );
    assert_eq!(
        activity.minutes.len(),
        1,
        "one row per minute, queue and listener"
    );
    let m = &activity.minutes[0];
    assert_eq!((m.minute, m.succeeded, m.claims), (minute, 5, 5));
    assert_eq!(m.runtime_ms, 3 * 4 + 2 * 40);
    assert_eq!((m.wait_ms, m.wait_max_ms), (3 * 40 + 2 * 400, 400));
    let mut expected = MinuteStats::new(minute, "mail", "tests::listener");
    for ms in [4, 4, 4, 40, 40] {
        expected.add_runtime(Duration::from_millis(ms));
    }
    assert_eq!(m.runtime, expected.runtime, "the buckets add up one by one");
    let finished: Vec<&str> = activity.finished.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(finished.len(), 2);
    assert!(finished.contains(&"host-a:1:0-job") && finished.contains(&"host-b:2:0-job"));

    // A worker that leaves is forgotten by every handle; its counts stay.
    let mut leaving = ActivityReport::new(a.clone());
    leaving.leaving = true;
    reopened.backend().report(&leaving).await.unwrap();
    let activity = reopened.activity(now).await.unwrap();
    assert_eq!(activity.workers, [b]);
    assert_eq!(activity.minutes[0].succeeded, 5);
}

/// The tables, as the previous release (schema 3) left them: no dashboard
/// tables, the claim index `events_jobs_ready`.
fn make_previous_release_file(path: &std::path::Path) {
    drop(SqliteBackend::open(path).unwrap());
    let raw = rusqlite::Connection::open(path).unwrap();
    raw.execute_batch(
        "DROP TABLE events_workers; DROP TABLE events_minutes; DROP TABLE events_finished;
         DROP INDEX events_failed_jobs_at; DROP INDEX events_jobs_due;
         CREATE INDEX events_jobs_ready ON events_jobs (queue, ready_at);",
    )
    .unwrap();
}

fn names(path: &std::path::Path) -> Vec<String> {
    let raw = rusqlite::Connection::open(path).unwrap();
    let mut statement = raw
        .prepare("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap();
    statement
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A schema 3 file of the previous release gains the dashboard's tables and
/// the new claim index in place, and keeps version 3, so that release
/// still opens it; its jobs are claimed in their order.
#[tokio::test]
async fn a_previous_release_file_gains_the_tables_and_keeps_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    make_previous_release_file(&path);
    {
        let raw = rusqlite::Connection::open(&path).unwrap();
        for (seq, id) in [(1, "second"), (2, "first")] {
            raw.execute(
                "INSERT INTO events_jobs (seq, id, queue, listener, event, payload, attempt,
                     max_tries, available_at, first_enqueued_at, reserved, ready_at)
                 VALUES (?1, ?2, 'a', 'tests::listener', 'test.event', '{}', 0, 3, ?3, ?3, 0, ?3)",
                rusqlite::params![seq, id, 1_700_000_000_000i64 - seq],
            )
            .unwrap();
        }
    }
    assert!(!names(&path).contains(&"events_minutes".to_owned()));

    let queue = SqliteBackend::queue(&path).unwrap();
    let after = names(&path);
    for name in [
        "events_workers",
        "events_minutes",
        "events_finished",
        "events_failed_jobs_at",
        "events_jobs_due",
    ] {
        assert!(after.contains(&name.to_owned()), "{name} in {after:?}");
    }
    assert!(!after.contains(&"events_jobs_ready".to_owned()), "replaced");
    let raw = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = raw
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!((version, SCHEMA_VERSION), (3, 3), "no new version");

    let page = queue.jobs(&JobQuery::new()).await.unwrap();
    assert_eq!(page.total, 2);
    let claimed = queue
        .backend()
        .claim(&["a".to_owned()], 2, Duration::from_secs(30))
        .await
        .unwrap();
    let ids: Vec<&str> = claimed.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["first", "second"], "oldest first");
    drop(queue);
    // Opening it again finds everything in place.
    let queue = SqliteBackend::queue(&path).unwrap();
    assert_eq!(names(&path), after);
    let reserved = queue
        .jobs(&JobQuery::new().state(JobState::Reserved))
        .await
        .unwrap();
    assert_eq!(reserved.total, 2);
}

/// A search reads at most the newest `SEARCHED_ROWS` rows of each table,
/// and the page says so; a smaller store is searched whole.
#[tokio::test]
async fn a_search_looks_through_the_newest_rows_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite");
    let queue = SqliteBackend::queue(&path).unwrap();
    queue
        .enqueue(job("small", r#"{"k":"needle"}"#))
        .await
        .unwrap();
    let page = queue.jobs(&JobQuery::new().search("NEEDLE")).await.unwrap();
    assert_eq!((page.total, page.searched), (1, None));

    let mut raw = rusqlite::Connection::open(&path).unwrap();
    let tx = raw.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO events_jobs (id, queue, listener, event, payload, attempt, max_tries,
                     available_at, first_enqueued_at, reserved, ready_at)
                 VALUES (?1, 'a', 'l', 'e', ?2, 0, 3, 1000, 1000, 0, 1000)",
            )
            .unwrap();
        for n in 0..SEARCHED_ROWS {
            let payload = if n == SEARCHED_ROWS - 1 {
                r#"{"k":"needle"}"#
            } else {
                "{}"
            };
            insert
                .execute(rusqlite::params![format!("job-{n}"), payload])
                .unwrap();
        }
    }
    tx.commit().unwrap();
    // The first job is now one row past the newest SEARCHED_ROWS.
    let page = queue.jobs(&JobQuery::new().search("needle")).await.unwrap();
    assert_eq!(page.searched, Some(SEARCHED_ROWS));
    let ids: Vec<&str> = page.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, [format!("job-{}", SEARCHED_ROWS - 1)]);
    assert_eq!(page.total, 1);
    // Without a search, everything is counted.
    let all = queue.jobs(&JobQuery::new().limit(0)).await.unwrap();
    assert_eq!((all.total, all.searched), (SEARCHED_ROWS + 1, None));
    // Only the failed store, which is small: searched whole.
    let failed = queue
        .jobs(&JobQuery::new().state(JobState::Failed).search("needle"))
        .await
        .unwrap();
    assert_eq!((failed.total, failed.searched), (0, None));
}

/// `%`, `_` and `\` in a search are text, not `LIKE` wildcards.
#[tokio::test]
async fn search_text_is_matched_literally() {
    let dir = tempfile::tempdir().unwrap();
    let queue = SqliteBackend::queue(dir.path().join("queue.sqlite")).unwrap();
    for (id, payload) in [
        ("j1", r#"{"d":"50% OFF"}"#),
        ("j2", r#"{"d":"500 off"}"#),
        ("j3", r#"{"d":"a_b"}"#),
        ("j4", r#"{"d":"a\\b"}"#),
    ] {
        queue.enqueue(job(id, payload)).await.unwrap();
    }
    for (text, expected) in [
        ("50% off", vec!["j1"]),
        ("_b", vec!["j3"]),
        ("a\\", vec!["j4"]),
        ("0 O", vec!["j2"]),
    ] {
        let page = queue.jobs(&JobQuery::new().search(text)).await.unwrap();
        let ids: Vec<&str> = page.jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(ids, expected, "search {text:?}");
    }
}

/// A row that cannot be read as a job is still listed, its error naming
/// the column (the claim that reaches it sends it to the failed store with
/// these words); a report row that cannot be read is left out, the others
/// given.
#[tokio::test]
async fn unreadable_rows_cost_only_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite");
    let queue: Queue = SqliteBackend::queue(&path).unwrap();
    for id in ["j1", "j2", "j3"] {
        queue.enqueue(job(id, "{}")).await.unwrap();
    }
    let now = SystemTime::now();
    let minute = minute_of(now);
    let worker = WorkerStatus::new("w:1:0", "w", 1, now, Duration::from_secs(60));
    queue
        .backend()
        .report(&report(&worker, minute - 1, 1, 1))
        .await
        .unwrap();
    queue
        .backend()
        .report(&report(&worker, minute, 2, 1))
        .await
        .unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute(
        "UPDATE events_jobs SET max_tries = 'many' WHERE id = 'j2'",
        [],
    )
    .unwrap();
    raw.execute(
        "UPDATE events_minutes SET claims = -4 WHERE minute = ?1",
        [minute - 1],
    )
    .unwrap();

    let page = queue.jobs(&JobQuery::new()).await.unwrap();
    assert_eq!(page.total, 3);
    let bad = page.jobs.iter().find(|j| j.id == "j2").unwrap();
    let error = bad.error.as_deref().unwrap();
    assert!(error.contains("column `max_tries`"), "{error}");
    assert_eq!(bad.state, JobState::Ready);
    let one = queue.job("j2").await.unwrap().unwrap();
    assert_eq!(one.error, bad.error);
    assert!(
        page.jobs
            .iter()
            .filter(|j| j.id != "j2")
            .all(|j| j.error.is_none())
    );

    let activity = queue
        .activity(now - Duration::from_secs(300))
        .await
        .unwrap();
    let minutes: Vec<i64> = activity.minutes.iter().map(|m| m.minute).collect();
    assert_eq!(minutes, [minute], "the unreadable minute is left out");
    assert_eq!(activity.workers.len(), 1);
}
