//! End-to-end queue throughput: dispatch -> queue -> worker -> done, for the
//! memory and SQLite backends, against a baseline measured in the same run
//! (the same jobs through a plain Tokio channel, no queue semantics).
//!
//! ```text
//! cargo run --release --example queue_throughput [-- JOBS]
//! ```
//!
//! Prints jobs per second and the ratio to the baseline. Absolute numbers on
//! shared machines are noisy: compare ratios, and see BENCHMARKS.md.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use events::prelude::*;
use events::queue::Queue;
use events::{Dispatcher, Worker};
use serde::{Deserialize, Serialize};

#[event(name = "bench.job")]
#[derive(Serialize, Deserialize)]
pub struct BenchJob {
    pub n: u64,
}

static DONE: AtomicU64 = AtomicU64::new(0);

#[listener(queue = "bench")]
async fn bench_listener(e: &BenchJob) {
    DONE.fetch_add(e.n & 1, Ordering::Relaxed);
}

struct Measured {
    dispatch: Duration,
    total: Duration,
}

/// Dispatches `jobs` events (one queued job each), then works them all.
async fn run(queue: Queue, jobs: u64, concurrency: usize) -> Measured {
    let dispatcher = Dispatcher::builder().queue(queue.clone()).build().unwrap();
    let start = Instant::now();
    for n in 0..jobs {
        dispatcher.dispatch(BenchJob { n }).await.unwrap();
    }
    let dispatch = start.elapsed();
    let report = Worker::new(queue)
        .queues(["bench"])
        .concurrency(concurrency)
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!(report.succeeded, jobs);
    Measured {
        dispatch,
        total: start.elapsed(),
    }
}

/// The same work through a Tokio channel: serialize, send, receive,
/// deserialize, call. What any in-process queue costs at least.
async fn baseline(jobs: u64) -> Duration {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let start = Instant::now();
    for n in 0..jobs {
        tx.send(serde_json::to_string(&BenchJob { n }).unwrap())
            .unwrap();
    }
    drop(tx);
    while let Some(json) = rx.recv().await {
        let job: BenchJob = serde_json::from_str(&json).unwrap();
        DONE.fetch_add(job.n & 1, Ordering::Relaxed);
    }
    start.elapsed()
}

fn per_second(jobs: u64, d: Duration) -> f64 {
    jobs as f64 / d.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let jobs: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let sqlite_jobs = (jobs / 5).max(1_000);
    let dir = std::env::temp_dir().join(format!("events-throughput-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let base = baseline(jobs).await;
    let base_rate = per_second(jobs, base);
    println!(
        "{:<34} {:>12} {:>14} {:>10}",
        "case", "jobs", "jobs/s", "vs base"
    );
    println!(
        "{:<34} {:>12} {:>14.0} {:>10}",
        "baseline: tokio channel + JSON", jobs, base_rate, "1.00x"
    );

    for concurrency in [1, 8] {
        let m = run(Queue::memory(), jobs, concurrency).await;
        let rate = per_second(jobs, m.total);
        println!(
            "{:<34} {:>12} {:>14.0} {:>9.2}x   (dispatch alone {:.0}/s)",
            format!("memory://, concurrency {concurrency}"),
            jobs,
            rate,
            base_rate / rate,
            per_second(jobs, m.dispatch)
        );
    }
    for concurrency in [1, 8] {
        let path = dir.join(format!("bench-{concurrency}.sqlite"));
        let queue = events::queue::SqliteBackend::queue(&path).unwrap();
        let m = run(queue, sqlite_jobs, concurrency).await;
        let rate = per_second(sqlite_jobs, m.total);
        println!(
            "{:<34} {:>12} {:>14.0} {:>9.2}x   (dispatch alone {:.0}/s)",
            format!("sqlite://, concurrency {concurrency}"),
            sqlite_jobs,
            rate,
            base_rate / rate,
            per_second(sqlite_jobs, m.dispatch)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
