//! The backend conformance suite: every behaviour is written once, as a
//! function over a `Queue`, and run against each backend. A new backend
//! (Redis next) adds one line at the bottom.

use std::time::{Duration, SystemTime};

use events::queue::{Job, Queue};

fn job(queue: &str, n: u32) -> Job {
    let now = SystemTime::now();
    Job {
        id: format!("job-{queue}-{n}"),
        queue: queue.into(),
        listener: "tests::listener".into(),
        event: "test.event".into(),
        payload: format!("{{\"n\":{n}}}"),
        attempt: 0,
        max_tries: 3,
        available_at: now,
        first_enqueued_at: now,
        last_error: None,
    }
}

fn ids(jobs: &[Job]) -> Vec<&str> {
    jobs.iter().map(|j| j.id.as_str()).collect()
}

/// Claims up to `limit` jobs from `queues` under `lease`.
async fn claim(queue: &Queue, queues: &[&str], limit: usize, lease: Duration) -> Vec<Job> {
    let queues: Vec<String> = queues.iter().map(|s| s.to_string()).collect();
    queue.backend().claim(&queues, limit, lease).await.unwrap()
}

const LEASE: Duration = Duration::from_secs(30);

async fn claims_oldest_first_up_to_the_limit(queue: Queue) {
    for n in 1..=3 {
        queue.enqueue(job("a", n)).await.unwrap();
        // Distinct enqueue times, so "oldest" is well defined.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let first = claim(&queue, &["a"], 2, LEASE).await;
    assert_eq!(ids(&first), ["job-a-1", "job-a-2"]);
    assert!(first.iter().all(|j| j.attempt == 1), "a claim starts try 1");
    let second = claim(&queue, &["a"], 2, LEASE).await;
    assert_eq!(ids(&second), ["job-a-3"]);
    assert!(claim(&queue, &["a"], 2, LEASE).await.is_empty());
    assert_eq!(second[0].payload, r#"{"n":3}"#);
    assert_eq!(second[0].listener, "tests::listener");
}

async fn takes_queues_in_priority_order(queue: Queue) {
    queue.enqueue(job("low", 1)).await.unwrap();
    queue.enqueue(job("high", 1)).await.unwrap();
    queue.enqueue(job("other", 1)).await.unwrap();
    let claimed = claim(&queue, &["high", "low"], 10, LEASE).await;
    assert_eq!(ids(&claimed), ["job-high-1", "job-low-1"]);
    assert_eq!(
        queue.size("other").await.unwrap(),
        1,
        "unlisted queues are left alone"
    );
}

async fn delayed_jobs_wait_their_turn(queue: Queue) {
    let mut delayed = job("a", 1);
    delayed.available_at = SystemTime::now() + Duration::from_millis(150);
    queue.enqueue(delayed).await.unwrap();
    assert!(claim(&queue, &["a"], 1, LEASE).await.is_empty());
    assert_eq!(queue.size("a").await.unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ids(&claim(&queue, &["a"], 1, LEASE).await), ["job-a-1"]);
}

async fn ack_removes_the_job_once(queue: Queue) {
    queue.enqueue(job("a", 1)).await.unwrap();
    let claimed = claim(&queue, &["a"], 1, LEASE).await;
    assert_eq!(queue.stats().await.unwrap()[0].reserved, 1);
    assert!(queue.backend().ack(&claimed[0].id, 1).await.unwrap());
    assert!(
        !queue.backend().ack(&claimed[0].id, 1).await.unwrap(),
        "a second ack is refused"
    );
    assert_eq!(queue.size("a").await.unwrap(), 0);
}

async fn a_lapsed_lease_is_claimed_again_and_fences_the_stale_worker(queue: Queue) {
    queue.enqueue(job("a", 1)).await.unwrap();
    let stale = claim(&queue, &["a"], 1, Duration::from_millis(50)).await;
    assert_eq!(stale[0].attempt, 1);
    assert!(claim(&queue, &["a"], 1, LEASE).await.is_empty(), "leased");
    tokio::time::sleep(Duration::from_millis(80)).await;
    let fresh = claim(&queue, &["a"], 1, LEASE).await;
    assert_eq!(ids(&fresh), ["job-a-1"]);
    assert_eq!(
        fresh[0].attempt, 2,
        "the attempt number is the fencing token"
    );

    let b = queue.backend();
    assert!(!b.ack("job-a-1", 1).await.unwrap(), "stale ack rejected");
    assert!(
        !b.fail("job-a-1", 1, "stale").await.unwrap(),
        "stale fail rejected"
    );
    assert!(
        !b.release("job-a-1", 1, Duration::ZERO, "stale")
            .await
            .unwrap(),
        "stale release rejected"
    );
    assert!(
        !b.extend("job-a-1", 1, LEASE).await.unwrap(),
        "stale extend rejected"
    );
    assert!(
        !b.abandon("job-a-1", 1).await.unwrap(),
        "stale abandon rejected"
    );
    assert!(queue.failed().await.unwrap().is_empty());
    assert!(
        b.ack("job-a-1", 2).await.unwrap(),
        "the current holder acks"
    );
}

async fn extending_keeps_the_lease(queue: Queue) {
    queue.enqueue(job("a", 1)).await.unwrap();
    claim(&queue, &["a"], 1, Duration::from_millis(80)).await;
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert!(
        queue
            .backend()
            .extend("job-a-1", 1, Duration::from_secs(10))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(
        claim(&queue, &["a"], 1, LEASE).await.is_empty(),
        "an extended lease holds past its first deadline"
    );
}

async fn release_retries_later_with_the_error(queue: Queue) {
    queue.enqueue(job("a", 1)).await.unwrap();
    claim(&queue, &["a"], 1, LEASE).await;
    assert!(
        queue
            .backend()
            .release("job-a-1", 1, Duration::from_millis(100), "boom")
            .await
            .unwrap()
    );
    assert!(claim(&queue, &["a"], 1, LEASE).await.is_empty(), "backoff");
    tokio::time::sleep(Duration::from_millis(130)).await;
    let again = claim(&queue, &["a"], 1, LEASE).await;
    assert_eq!(again[0].attempt, 2);
    assert_eq!(again[0].last_error.as_deref(), Some("boom"));
}

async fn abandon_hands_back_untried(queue: Queue) {
    queue.enqueue(job("a", 1)).await.unwrap();
    claim(&queue, &["a"], 1, LEASE).await;
    assert!(queue.backend().abandon("job-a-1", 1).await.unwrap());
    let again = claim(&queue, &["a"], 1, LEASE).await;
    assert_eq!(
        again[0].attempt, 1,
        "an abandoned claim does not count as a try"
    );
}

async fn the_failed_store(queue: Queue) {
    queue.enqueue(job("a", 1)).await.unwrap();
    queue.enqueue(job("b", 2)).await.unwrap();
    let claimed = claim(&queue, &["a", "b"], 2, LEASE).await;
    assert_eq!(claimed.len(), 2);
    assert!(
        queue
            .backend()
            .fail("job-a-1", 1, "listener `x` failed: said no")
            .await
            .unwrap()
    );
    assert!(queue.backend().fail("job-b-2", 1, "other").await.unwrap());

    let failed = queue.failed().await.unwrap();
    assert_eq!(failed.len(), 2);
    let a = &failed[0];
    assert_eq!(
        (a.id.as_str(), a.queue.as_str(), a.listener.as_str()),
        ("job-a-1", "a", "tests::listener")
    );
    assert_eq!(
        (a.event.as_str(), a.payload.as_str()),
        ("test.event", r#"{"n":1}"#)
    );
    assert_eq!(
        (a.error.as_str(), a.attempts, a.max_tries),
        ("listener `x` failed: said no", 1, 3)
    );
    assert!(a.failed_at >= a.first_enqueued_at);
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        (stats[0].queue.as_str(), stats[0].pending, stats[0].failed),
        ("a", 0, 1)
    );
    assert_eq!(
        queue.size("a").await.unwrap(),
        0,
        "failed jobs are not waiting"
    );

    assert!(queue.retry("job-a-1").await.unwrap());
    assert!(!queue.retry("job-a-1").await.unwrap(), "retried already");
    let again = claim(&queue, &["a"], 1, LEASE).await;
    assert_eq!(
        again[0].attempt, 1,
        "a retried job gets all its tries again"
    );
    assert_eq!(again[0].payload, r#"{"n":1}"#);
    assert_ne!(again[0].id, "job-a-1", "a retried job gets a new id");
    assert_eq!(
        again[0].last_error.as_deref(),
        Some("listener `x` failed: said no")
    );
    let retried = again[0].id.clone();
    assert!(queue.backend().fail(&retried, 1, "again").await.unwrap());

    assert_eq!(queue.retry_all().await.unwrap(), 2);
    assert!(queue.failed().await.unwrap().is_empty());
    let both = claim(&queue, &["a", "b"], 5, LEASE).await;
    assert_eq!(both.len(), 2);
    for j in &both {
        assert!(
            queue
                .backend()
                .fail(&j.id, j.attempt, "third time")
                .await
                .unwrap()
        );
    }
    let first = queue.failed().await.unwrap()[0].id.clone();
    assert!(queue.forget(&first).await.unwrap());
    assert!(!queue.forget(&first).await.unwrap());
    assert_eq!(queue.flush_failed().await.unwrap(), 1);
    assert!(queue.failed().await.unwrap().is_empty());
    assert!(
        queue.stats().await.unwrap().is_empty(),
        "nothing left anywhere"
    );
}

async fn a_stale_claim_cannot_touch_the_job_after_a_retry(queue: Queue) {
    queue.enqueue(job("a", 1)).await.unwrap();
    // Worker A claims and stalls; its lease lapses.
    claim(&queue, &["a"], 1, Duration::from_millis(30)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Worker B claims it and fails it; an operator retries it.
    let b = claim(&queue, &["a"], 1, LEASE).await;
    assert!(
        queue
            .backend()
            .fail(&b[0].id, b[0].attempt, "B failed")
            .await
            .unwrap()
    );
    assert!(queue.retry("job-a-1").await.unwrap());
    // Worker C runs the retried job, on its first try again.
    let c = claim(&queue, &["a"], 1, LEASE).await;
    assert_eq!(c[0].attempt, 1);
    // A wakes up holding ("job-a-1", 1): it must not touch C's job.
    assert!(!queue.backend().fail("job-a-1", 1, "stale A").await.unwrap());
    assert!(!queue.backend().ack("job-a-1", 1).await.unwrap());
    assert!(queue.failed().await.unwrap().is_empty());
    assert!(
        queue.backend().ack(&c[0].id, 1).await.unwrap(),
        "C finishes its job"
    );
}

async fn wait_wakes_on_enqueue(queue: Queue) {
    let waiter = {
        let queue = queue.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            queue.backend().wait(Duration::from_secs(20)).await;
            started.elapsed()
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    queue.enqueue(job("a", 1)).await.unwrap();
    let waited = waiter.await.unwrap();
    assert!(waited < Duration::from_secs(10), "woke after {waited:?}");
}

macro_rules! conformance {
    ($backend:ident, $open:path) => {
        mod $backend {
            use super::*;
            conformance!(@cases $open;
                claims_oldest_first_up_to_the_limit
                takes_queues_in_priority_order
                delayed_jobs_wait_their_turn
                ack_removes_the_job_once
                a_lapsed_lease_is_claimed_again_and_fences_the_stale_worker
                extending_keeps_the_lease
                release_retries_later_with_the_error
                abandon_hands_back_untried
                the_failed_store
                a_stale_claim_cannot_touch_the_job_after_a_retry
                wait_wakes_on_enqueue
            );
        }
    };
    (@cases $open:path; $($case:ident)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let (queue, _keep) = $open();
            super::$case(queue).await;
        }
    )*};
}

fn memory() -> (Queue, ()) {
    (Queue::memory(), ())
}

fn sqlite() -> (Queue, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::sqlite(dir.path().join("queue.sqlite")).unwrap();
    (queue, dir)
}

conformance!(memory_backend, memory);
conformance!(sqlite_backend, sqlite);

// --- SQLite only: what a file gives -----------------------------------------------

#[tokio::test]
async fn sqlite_jobs_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite");
    {
        let queue = events::queue::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        queue.enqueue(job("a", 1)).await.unwrap();
    }
    let reopened = Queue::sqlite(&path).unwrap();
    let claimed = claim(&reopened, &["a"], 1, LEASE).await;
    assert_eq!(ids(&claimed), ["job-a-1"]);
}

#[test]
fn sqlite_is_in_wal_mode_with_a_versioned_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite");
    Queue::sqlite(&path).unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = raw
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 1);
    // Reopening an up-to-date file migrates nothing and works.
    Queue::sqlite(&path).unwrap();
    // A file from a newer release is refused in words, not misread.
    raw.pragma_update(None, "user_version", 99).unwrap();
    let error = Queue::sqlite(&path).unwrap_err().to_string();
    assert!(
        error.contains("has schema version 99, newer than the 1 this build knows"),
        "{error}"
    );
}

#[test]
fn unsupported_urls_are_named() {
    let error = Queue::open("redis://127.0.0.1:6379/0")
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "unsupported queue URL `redis://127.0.0.1:6379/0`: expected `memory://` or `sqlite://path`"
    );
}
