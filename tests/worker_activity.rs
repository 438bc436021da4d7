//! Workers report their activity to the backend: a heartbeat while they
//! run (host, pid, queues, concurrency), per-minute counts of their tries
//! per listener with the waits, the tries they finished, and a last report
//! as they stop that takes them off the list while the counts stay. The
//! same scenario on `memory://`, SQLite (a temporary file) and Redis (a
//! fresh prefix of `EVENTS_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379/0`); and a backend that refuses reports for a
//! while: the worker goes on, and the counts arrive with the next report
//! that gets through.

mod redis_support;
mod watched;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use events::Worker;
use events::prelude::*;
use events::queue::activity::{Activity, Finish, MinuteStats};
use events::queue::{Queue, QueueError};
use serde::{Deserialize, Serialize};

/// What a failing listener here returns.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failure(String);

#[event(name = "activity.happened")]
#[derive(Serialize, Deserialize)]
struct Happened {
    /// Which scenario dispatched it: the flaky listener fails the first
    /// try of each key.
    key: String,
}

#[listener(queue = "activity", name = "activity::fine", tries = 1)]
async fn fine(_: &Happened) {}

static FAILED_ONCE: Mutex<Option<HashSet<String>>> = Mutex::new(None);

#[listener(queue = "activity", name = "activity::flaky", tries = 2)]
async fn flaky(e: &Happened) -> Result<(), Failure> {
    let first = FAILED_ONCE
        .lock()
        .unwrap()
        .get_or_insert_with(HashSet::new)
        .insert(e.key.clone());
    if first {
        return Err(Failure("not yet".into()));
    }
    Ok(())
}

#[listener(queue = "activity", name = "activity::broken", tries = 1)]
async fn broken(_: &Happened) -> Result<(), Failure> {
    Err(Failure("always".into()))
}

/// Long enough back to take in every minute of the test.
fn since() -> SystemTime {
    SystemTime::now() - Duration::from_secs(600)
}

/// This machine's name as the worker reads it.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into()))
}

fn tries(activity: &Activity) -> u64 {
    activity.minutes.iter().map(MinuteStats::tries).sum()
}

/// The counts of `listener`, every minute added up.
fn of(activity: &Activity, listener: &str) -> MinuteStats {
    let mut sum = MinuteStats::new(0, "activity", listener);
    for stats in activity.minutes.iter().filter(|m| m.listener == listener) {
        assert_eq!(stats.queue, "activity");
        sum.merge(stats);
    }
    sum
}

/// Polls `queue.activity(..)` until `done` says yes, for 15 s at most.
async fn until(queue: &Queue, done: impl Fn(&Activity) -> bool) -> Activity {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let activity = queue.activity(since()).await.unwrap();
        if done(&activity) {
            return activity;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reports never showed it: {activity:#?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A worker started on `queue`, and what stops it.
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    worker: tokio::task::JoinHandle<Result<events::WorkReport, QueueError>>,
}

fn start(queue: &Queue, every: Duration) -> Running {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = Worker::new(queue.clone())
        .queues(["activity"])
        .concurrency(2)
        .report_every(every)
        .run_until(async move {
            let _ = stopped.await;
        });
    Running {
        stop,
        worker: tokio::spawn(worker),
    }
}

impl Running {
    async fn stop(self) -> events::WorkReport {
        self.stop.send(()).unwrap();
        self.worker.await.unwrap().unwrap()
    }
}

/// Three jobs, one that succeeds, one that fails once and then succeeds,
/// one that fails for good: four tries, reported while the worker runs,
/// and the worker gone from the list once it stops.
async fn a_worker_reports_its_tries_and_leaves(queue: Queue, key: &str) {
    let dispatcher = events::Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap();
    dispatcher
        .dispatch(Happened { key: key.into() })
        .await
        .unwrap();
    // Every job waits this long before a worker claims it.
    tokio::time::sleep(Duration::from_millis(120)).await;
    let running = start(&queue, Duration::from_millis(100));

    let seen = until(&queue, |a| tries(a) == 4 && a.finished.len() == 4).await;
    let seen = until(&queue, |a| {
        a.workers.len() == 1
            && a.workers[0].processed == 4
            && a.workers[0].seen_at > {
                // A heartbeat sent after the last try was counted.
                seen.finished[0].finished_at
            }
    })
    .await;
    let worker = &seen.workers[0];
    let host = host();
    assert_eq!(worker.host, host);
    assert_eq!(worker.pid, std::process::id());
    assert!(
        worker
            .id
            .starts_with(&format!("{host}:{}:", std::process::id())),
        "{worker:?}"
    );
    assert_eq!(worker.queues, ["activity"]);
    assert_eq!(worker.concurrency, 2);
    assert_eq!(worker.every, Duration::from_millis(100));
    assert_eq!((worker.processed, worker.failed, worker.running), (4, 2, 0));
    assert!(worker.started_at <= worker.seen_at);

    let fine = of(&seen, "activity::fine");
    assert_eq!((fine.succeeded, fine.retried, fine.failed), (1, 0, 0));
    let flaky = of(&seen, "activity::flaky");
    assert_eq!((flaky.succeeded, flaky.retried, flaky.failed), (1, 1, 0));
    let broken = of(&seen, "activity::broken");
    assert_eq!((broken.succeeded, broken.retried, broken.failed), (0, 0, 1));
    for stats in [&fine, &flaky, &broken] {
        assert_eq!(
            stats.claims,
            stats.tries(),
            "each try's claim counts its wait: {stats:?}"
        );
        assert_eq!(
            stats.runtime.iter().sum::<u64>(),
            stats.tries(),
            "{stats:?}"
        );
        // The first claim of each waited since dispatch.
        assert!(stats.wait_max_ms >= 100, "{stats:?}");
        assert!(stats.wait_ms >= stats.wait_max_ms, "{stats:?}");
    }

    let mut finished: Vec<(String, u32, Finish)> = seen
        .finished
        .iter()
        .map(|f| (f.listener.clone(), f.attempt, f.outcome))
        .collect();
    finished.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    assert_eq!(
        finished,
        [
            ("activity::broken".to_owned(), 1, Finish::Failed),
            ("activity::fine".to_owned(), 1, Finish::Succeeded),
            ("activity::flaky".to_owned(), 1, Finish::Retried),
            ("activity::flaky".to_owned(), 2, Finish::Succeeded),
        ]
    );
    for f in &seen.finished {
        assert_eq!(f.worker, worker.id);
        assert_eq!(
            (f.queue.as_str(), f.event.as_str()),
            ("activity", "activity.happened")
        );
        assert!(!f.id.is_empty());
    }
    assert!(
        seen.finished
            .windows(2)
            .all(|w| w[0].finished_at >= w[1].finished_at),
        "newest first"
    );

    let report = running.stop().await;
    assert_eq!((report.succeeded, report.retried, report.failed), (2, 1, 1));
    let after = queue.activity(since()).await.unwrap();
    assert!(after.workers.is_empty(), "it left: {:?}", after.workers);
    assert_eq!(tries(&after), 4, "the counts stay");
    assert_eq!(after.finished.len(), 4);
}

#[tokio::test]
async fn memory_keeps_what_its_workers_report() {
    let queue = events::queue::connect("memory://").await.unwrap();
    a_worker_reports_its_tries_and_leaves(queue, "memory").await;
}

#[tokio::test]
async fn sqlite_keeps_what_its_workers_report() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("activity.sqlite").display());
    let queue = events::queue::connect(&url).await.unwrap();
    a_worker_reports_its_tries_and_leaves(queue, "sqlite").await;
}

#[tokio::test]
async fn redis_keeps_what_its_workers_report() {
    let (url, _cleanup, _) = redis_support::fresh_url();
    let queue = events::queue::connect(&url).await.unwrap();
    a_worker_reports_its_tries_and_leaves(queue, &format!("redis-{url}")).await;
}

/// Reports refused while the backend is "down": the worker runs its jobs
/// all the same, and the counts of that time arrive with the first report
/// that gets through.
#[tokio::test]
async fn counts_of_refused_reports_arrive_with_the_next_one() {
    let down = Arc::new(AtomicBool::new(true));
    let refusing = down.clone();
    let backend = watched::Watched::new().refusing(move |line| {
        (line.starts_with("report") && refusing.load(Ordering::SeqCst))
            .then(|| watched::refused("watched", "the queue is down"))
    });
    let log = backend.log();
    let queue = Queue::with_backend("memory://refusing-reports", backend);
    let reports = || {
        log.lock()
            .unwrap()
            .iter()
            .filter(|line| line.starts_with("report"))
            .count()
    };
    events::Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap()
        .dispatch(Happened {
            key: "refused".into(),
        })
        .await
        .unwrap();
    let running = start(&queue, Duration::from_millis(50));

    // All jobs settle although no report gets through.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while queue.size("activity").await.unwrap() > 0 || queue.failed().await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the jobs never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Two more refused reports after the jobs were done.
    let refused = reports();
    while reports() < refused + 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no report was tried"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let nothing = queue.activity(since()).await.unwrap();
    assert!(
        nothing.workers.is_empty() && nothing.minutes.is_empty() && nothing.finished.is_empty()
    );

    down.store(false, Ordering::SeqCst);
    let seen = until(&queue, |a| a.workers.len() == 1 && tries(a) == 4).await;
    assert_eq!(seen.finished.len(), 4, "{:?}", seen.finished);
    assert_eq!(of(&seen, "activity::flaky").retried, 1);
    assert_eq!(seen.workers[0].processed, 4);

    let report = running.stop().await;
    assert_eq!(report.processed(), 4);
    let after = queue.activity(since()).await.unwrap();
    assert!(after.workers.is_empty());
    assert_eq!(tries(&after), 4, "counted once, not once per report");
}

/// `report_every(Duration::ZERO)` sends no report at all.
#[tokio::test]
async fn a_worker_told_not_to_report_sends_nothing() {
    let backend = watched::Watched::new();
    let log = backend.log();
    let queue = Queue::with_backend("memory://silent", backend);
    events::Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap()
        .dispatch(Happened {
            key: "silent".into(),
        })
        .await
        .unwrap();
    let report = Worker::new(queue.clone())
        .queues(["activity"])
        .report_every(Duration::ZERO)
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!(report.processed(), 4);
    assert!(
        !log.lock().unwrap().iter().any(|l| l.starts_with("report")),
        "{:?}",
        log.lock().unwrap()
    );
}

/// Every way `work` ends sends the last report: `run_until_empty` and
/// `max_jobs` here, `run_until` above.
#[tokio::test]
async fn a_worker_leaves_however_it_stops() {
    for max_jobs in [None, Some(1)] {
        let backend = watched::Watched::new();
        let log = backend.log();
        let queue = Queue::with_backend("memory://leaving", backend);
        events::Dispatcher::builder()
            .queue(queue.clone())
            .build()
            .unwrap()
            .dispatch(Happened {
                key: format!("leaving-{max_jobs:?}"),
            })
            .await
            .unwrap();
        let mut worker = Worker::new(queue.clone()).queues(["activity"]);
        if let Some(max) = max_jobs {
            worker = worker.max_jobs(max);
        }
        worker.run_until_empty().await.unwrap();
        let log = log.lock().unwrap().clone();
        let reports: Vec<&String> = log.iter().filter(|l| l.starts_with("report")).collect();
        assert_eq!(
            reports.last().map(|l| l.as_str()),
            Some("report leaving"),
            "{log:?}"
        );
        let activity = queue.activity(since()).await.unwrap();
        assert!(activity.workers.is_empty());
        let expected = if max_jobs.is_some() { 1 } else { 4 };
        assert_eq!(tries(&activity), expected, "{activity:#?}");
    }
}
