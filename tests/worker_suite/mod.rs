//! Worker scenarios every queue must pass, written once over the queue:
//! `tests/worker.rs` runs them on `memory://`, `tests/redis_worker.rs` on a
//! real Redis. Each takes a function that opens the queue under test (a
//! fresh handle, with its own connection where the backend has one, on the
//! same jobs), so scenarios with several workers run them as several
//! machines would.
//!
//! Listeners here pin their names (`suite::..`), so the errors the
//! scenarios check read the same in every test binary.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use events::prelude::*;
use events::queue::{FailedJob, Job, Queue};
use events::{Dispatcher, Worker};
use serde::{Deserialize, Serialize};

/// What a failing listener here returns.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Failure(pub String);

/// A dispatcher enqueueing on `queue`.
pub fn dispatcher(queue: &Queue) -> Dispatcher {
    Dispatcher::builder().queue(queue.clone()).build().unwrap()
}

/// A job stored by hand, as an older release or another program would.
pub fn raw_job(queue: &str, listener: &str, event: &str, payload: &str) -> Job {
    let now = SystemTime::now();
    let mut job = Job::from_parts(
        format!("raw-{listener}-{}", payload.len()),
        queue,
        listener,
        event,
        payload,
        events::Envelope::new(),
    );
    job.available_at = now;
    job.first_enqueued_at = now;
    job
}

// --- retries and the failed store ---------------------------------------------

static FLAKY: Mutex<Vec<u64>> = Mutex::new(Vec::new());
static HOOKED: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[event(name = "suite.sync.requested")]
#[derive(Serialize, Deserialize)]
pub struct SyncRequested {
    pub id: u64,
    pub fail_times: u32,
}

fn record_failure(job: &FailedJob) {
    HOOKED
        .lock()
        .unwrap()
        .push(format!("{} {}", job.listener, job.error));
}

#[listener(
    queue = "retry",
    tries = 3,
    backoff = ["10ms", "20ms"],
    on_failure = record_failure,
    name = "suite::flaky_sync"
)]
async fn flaky_sync(e: &SyncRequested) -> Result<(), Failure> {
    let tries = {
        let mut log = FLAKY.lock().unwrap();
        log.push(e.id);
        log.iter().filter(|id| **id == e.id).count() as u32
    };
    if tries <= e.fail_times {
        return Err(Failure(format!("try {tries} of #{} failed", e.id)));
    }
    Ok(())
}

/// A listener that fails twice succeeds on its third try, after its
/// backoffs.
pub async fn a_flaky_listener_succeeds_on_its_third_try(queue: Queue) {
    dispatcher(&queue)
        .dispatch(SyncRequested {
            id: 1,
            fail_times: 2,
        })
        .await
        .unwrap();
    let started = Instant::now();
    let report = Worker::new(queue.clone())
        .queues(["retry"])
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!(
        (report.succeeded, report.retried, report.failed),
        (1, 2, 0),
        "{report:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(30),
        "backoff 10ms then 20ms was waited"
    );
    assert!(queue.failed().await.unwrap().is_empty());
    assert_eq!(queue.size("retry").await.unwrap(), 0);
}

/// Out of tries, a job lands in the failed store with its last error, both
/// failure hooks run, and a retry from the store gets all its tries again.
pub async fn a_listener_out_of_tries_lands_in_the_failed_store_and_its_hook_runs(queue: Queue) {
    let worker_hook = Arc::new(AtomicUsize::new(0));
    dispatcher(&queue)
        .dispatch(SyncRequested {
            id: 2,
            fail_times: 99,
        })
        .await
        .unwrap();
    let seen = worker_hook.clone();
    let report = Worker::new(queue.clone())
        .queues(["retry"])
        .on_failure(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
        })
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!((report.succeeded, report.retried, report.failed), (0, 2, 1));
    let failed = queue.failed().await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].listener, "suite::flaky_sync");
    assert_eq!(failed[0].event, "suite.sync.requested");
    assert_eq!(
        failed[0].error,
        "listener `suite::flaky_sync` failed: try 3 of #2 failed"
    );
    assert_eq!((failed[0].attempts, failed[0].max_tries), (3, 3));
    assert!(HOOKED.lock().unwrap().contains(
        &"suite::flaky_sync listener `suite::flaky_sync` failed: try 3 of #2 failed".to_owned()
    ));
    assert_eq!(worker_hook.load(Ordering::SeqCst), 1);

    // Retried from the store, it gets all its tries again (and fails again).
    assert!(queue.retry(&failed[0].id).await.unwrap().is_some());
    let report = Worker::new(queue.clone())
        .queues(["retry"])
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!(report.failed, 1);
    assert_eq!(queue.failed().await.unwrap()[0].attempts, 3);
}

// --- bad input ------------------------------------------------------------------

static GOOD: AtomicUsize = AtomicUsize::new(0);

#[event(name = "suite.risky")]
#[derive(Serialize, Deserialize)]
pub struct Risky {
    pub mode: String,
}

#[listener(queue = "risky", timeout = "100ms", name = "suite::risky")]
async fn risky(e: &Risky) -> Result<(), Failure> {
    match e.mode.as_str() {
        "panic" => panic!("the listener panicked on purpose"),
        "hang" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
        _ => {
            GOOD.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }
}

/// A panic, a hang past the timeout and a payload that no longer
/// deserializes each land in the failed store with the reason; a job whose
/// listener this program lacks waits; the worker goes on with the rest.
pub async fn poison_payloads_panics_and_hangs_become_failed_jobs_and_unknown_listeners_wait(
    queue: Queue,
) {
    let d = dispatcher(&queue);
    for mode in ["panic", "hang"] {
        d.dispatch(Risky { mode: mode.into() }).await.unwrap();
    }
    queue
        .enqueue(raw_job(
            "risky",
            "suite::risky",
            "suite.risky",
            r#"{"mood":"typo"}"#,
        ))
        .await
        .unwrap();
    queue
        .enqueue(raw_job(
            "risky",
            "suite::renamed_long_ago",
            "suite.risky",
            r#"{"mode":"fine"}"#,
        ))
        .await
        .unwrap();
    d.dispatch(Risky {
        mode: "fine".into(),
    })
    .await
    .unwrap();

    let report = Worker::new(queue.clone())
        .queues(["risky"])
        .concurrency(2)
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!(
        (report.succeeded, report.failed, report.set_aside),
        (1, 3, 1),
        "{report:?}"
    );
    assert_eq!(
        GOOD.load(Ordering::SeqCst),
        1,
        "the worker kept going after the bad jobs"
    );
    let mut errors: Vec<String> = queue
        .failed()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.error)
        .collect();
    errors.sort();
    assert_eq!(
        errors,
        [
            "listener `suite::risky` panicked: the listener panicked on purpose",
            "listener `suite::risky` timed out after 100ms",
            "the payload of `suite.risky` no longer deserializes for listener `suite::risky`: \
             missing field `mode` at line 1 column 15",
        ]
    );
    assert_eq!(
        queue.size("risky").await.unwrap(),
        1,
        "the job of the unknown listener waits"
    );
}

// --- queues in priority order -----------------------------------------------------

static ORDER: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[event(name = "suite.ordered")]
#[derive(Serialize, Deserialize)]
pub struct Ordered {
    pub name: String,
}

#[listener(queue = "low", name = "suite::ordered")]
fn ordered(e: &Ordered) {
    ORDER.lock().unwrap().push(e.name.clone());
}

/// A worker takes the first queue's jobs before the next one's.
pub async fn queues_are_worked_in_priority_order(queue: Queue) {
    for (q, name) in [("low", "l1"), ("high", "h1"), ("low", "l2"), ("high", "h2")] {
        let mut job = raw_job(
            q,
            "suite::ordered",
            "suite.ordered",
            &format!(r#"{{"name":"{name}"}}"#),
        );
        job.id = name.into();
        queue.enqueue(job).await.unwrap();
    }
    let report = Worker::new(queue)
        .queues(["high", "low"])
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!(report.succeeded, 4);
    assert_eq!(*ORDER.lock().unwrap(), ["h1", "h2", "l1", "l2"]);
}

// --- shutdown and leases ------------------------------------------------------------

#[event(name = "suite.stuck")]
#[derive(Serialize, Deserialize)]
pub struct Stuck;

#[listener(queue = "stuck", timeout = "1h", name = "suite::stuck")]
async fn stuck(_: &Stuck) {
    tokio::time::sleep(Duration::from_secs(60)).await;
}

/// Jobs still running when the grace period ends are handed back, their
/// interrupted try not counted.
pub async fn shutdown_hands_back_jobs_that_outlive_the_grace_period(queue: Queue) {
    let d = dispatcher(&queue);
    for _ in 0..2 {
        d.dispatch(Stuck).await.unwrap();
    }
    let report = Worker::new(queue.clone())
        .queues(["stuck"])
        .concurrency(2)
        .grace(Duration::from_millis(50))
        .run_until(tokio::time::sleep(Duration::from_millis(300)))
        .await
        .unwrap();
    assert_eq!(report.released_at_shutdown, 2, "{report:?}");
    let again = queue
        .backend()
        .claim(&["stuck".to_owned()], 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(again.len(), 2, "both are back in the queue");
    assert!(
        again.iter().all(|j| j.attempt == 1),
        "the interrupted try was not counted"
    );
}

static LONG_RUNS: AtomicUsize = AtomicUsize::new(0);

#[event(name = "suite.long")]
#[derive(Serialize, Deserialize)]
pub struct Long;

#[listener(queue = "long", timeout = "1h", name = "suite::outlives_its_lease")]
async fn outlives_its_lease(_: &Long) {
    LONG_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1000)).await;
}

/// A running job's lease is extended while it runs: with two workers (each
/// on a queue handle of its own, as on two machines) and 300 ms leases, a
/// 1 s job runs once.
pub async fn a_running_job_keeps_its_lease_past_its_length(open: impl Fn() -> Queue) {
    dispatcher(&open()).dispatch(Long).await.unwrap();
    let workers = [open(), open()].map(|queue| {
        tokio::spawn(
            Worker::new(queue)
                .queues(["long"])
                .lease(Duration::from_millis(300))
                .poll_interval(Duration::from_millis(10))
                .run_until_empty(),
        )
    });
    let mut succeeded = 0;
    for worker in workers {
        let report = worker.await.unwrap().unwrap();
        assert_eq!(report.lost, 0, "{report:?}");
        succeeded += report.succeeded;
    }
    assert_eq!(succeeded, 1);
    assert_eq!(LONG_RUNS.load(Ordering::SeqCst), 1, "the job ran once");
}
