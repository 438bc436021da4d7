//! End-to-end queue throughput: dispatch -> queue -> worker -> done, for the
//! memory and SQLite backends, against a baseline measured in the same run
//! (the same jobs through a plain Tokio channel, no queue semantics); then
//! SQLite's enqueue alone (one at a time, from 8 tasks at once, and in
//! batches of 100) against the physical limit measured in the same run: a
//! bare rusqlite loop inserting the same rows into the same table, one row
//! per transaction and all rows in one, WAL with `synchronous = NORMAL` as
//! the queue uses.
//!
//! ```text
//! cargo run --release --example queue_throughput [-- JOBS]
//! benches/redis_peers.sh -- cargo run --release --features redis --example queue_throughput   # with Redis, beside BullMQ
//! ```
//!
//! `MEMORY_ONLY=1` runs the baseline and the memory cases alone.
//!
//! With the `redis` feature and `EVENTS_BENCH_REDIS_URL` set, the Redis
//! cases follow (see `support/redis_cases.rs`).
//!
//! Prints jobs per second and the ratio to the baselines. Absolute numbers on
//! shared machines are noisy: compare ratios, and see BENCHMARKS.md.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use events::Envelope;
use events::prelude::*;
use events::queue::{Job, Queue};
use events::{Dispatcher, Worker};
use serde::{Deserialize, Serialize};

#[cfg(feature = "redis")]
#[path = "support/redis_cases.rs"]
mod redis_cases;

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

/// The jobs a dispatch of `BenchJob` makes, built ahead of the clock.
fn jobs(prefix: &str, n: u64) -> Vec<Job> {
    job_rows(
        prefix,
        n,
        "bench",
        "queue_throughput::bench_listener",
        "bench.job",
    )
}

/// `n` jobs with payloads `{"n":i}` for `listener` on `queue`, named
/// `prefix-i`, one try each.
fn job_rows(prefix: &str, n: u64, queue: &str, listener: &str, event: &str) -> Vec<Job> {
    (0..n)
        .map(|i| {
            let payload = serde_json::to_string(&BenchJob { n: i }).unwrap();
            let mut job = Job::from_parts(
                format!("{prefix}-{i}"),
                queue,
                listener,
                event,
                payload,
                Envelope::new(),
            );
            job.max_tries = 1;
            job
        })
        .collect()
}

/// `jobs` in batches of 100, built ahead of the clock (splitting one vector
/// as it goes copied the rest of it at each call: a third of the time
/// measured).
fn batches(jobs: Vec<Job>) -> Vec<Vec<Job>> {
    let mut batches: Vec<Vec<Job>> = Vec::new();
    for job in jobs {
        if batches.last().is_none_or(|batch| batch.len() == 100) {
            batches.push(Vec::with_capacity(100));
        }
        batches.last_mut().unwrap().push(job);
    }
    batches
}

/// Enqueues one at a time from `tasks` tasks at once, each its own `jobs`;
/// returns how many in all.
async fn enqueue_from_tasks(queue: &Queue, tasks: u64, jobs: impl Fn(u64) -> Vec<Job>) -> u64 {
    let mut running = tokio::task::JoinSet::new();
    let mut total = 0;
    for t in 0..tasks {
        let queue = queue.clone();
        let batch = jobs(t);
        total += batch.len() as u64;
        running.spawn(async move {
            for job in batch {
                queue.enqueue(job).await.unwrap();
            }
        });
    }
    while let Some(done) = running.join_next().await {
        done.unwrap();
    }
    total
}

/// A fresh queue file in `dir`, schema created, nothing else open on it.
fn fresh(dir: &std::path::Path) -> (Queue, std::path::PathBuf) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = dir.join(format!(
        "enqueue-{}.sqlite",
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    (events::queue::SqliteBackend::queue(&path).unwrap(), path)
}

/// The physical limit: the same rows inserted into the same table with a
/// bare rusqlite loop, WAL, `synchronous = NORMAL`; one row per transaction
/// when `per_row`, else all in one. Returns rows per second.
fn bare_rusqlite(dir: &std::path::Path, rows: &[Job], per_row: bool) -> f64 {
    let (queue, path) = fresh(dir);
    drop(queue);
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
        .unwrap();
    connection
        .pragma_update(None, "synchronous", "NORMAL")
        .unwrap();
    let start = Instant::now();
    let mut begin = connection.prepare("BEGIN IMMEDIATE").unwrap();
    let mut commit = connection.prepare("COMMIT").unwrap();
    let mut insert = connection
        .prepare(
            "INSERT INTO events_jobs (id, queue, listener, event, payload, attempt, max_tries, available_at,
                                      first_enqueued_at, last_error, reserved, ready_at, event_id, occurred_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?7, NULL, 0, ?7, ?8, ?7)",
        )
        .unwrap();
    if !per_row {
        begin.execute([]).unwrap();
    }
    for job in rows {
        if per_row {
            begin.execute([]).unwrap();
        }
        let at = events::queue::millis(job.available_at);
        insert
            .execute(rusqlite::params![
                job.id,
                job.queue,
                job.listener,
                job.event,
                job.payload,
                job.max_tries,
                at,
                job.envelope.id.to_string(),
            ])
            .unwrap();
        if per_row {
            commit.execute([]).unwrap();
        }
    }
    if !per_row {
        commit.execute([]).unwrap();
    }
    per_second(rows.len() as u64, start.elapsed())
}

/// SQLite enqueue alone, against the bare loops.
async fn enqueue_alone(dir: &std::path::Path, n: u64) {
    let rows = jobs("bare", n);
    let bare_row = bare_rusqlite(dir, &rows, true);
    let bare_one = bare_rusqlite(dir, &rows, false);
    println!();
    println!(
        "{:<46} {:>8} {:>12} {:>10}",
        "SQLite enqueue, and the physical limit", "jobs", "jobs/s", "vs bare"
    );
    let line = |case: &str, rate: f64| {
        println!("{case:<46} {n:>8} {rate:>12.0} {:>9.2}x", rate / bare_row);
    };
    line("bare rusqlite, one row per transaction", bare_row);
    line("bare rusqlite, all rows in one transaction", bare_one);

    let (queue, _) = fresh(dir);
    let batch = jobs("one", n);
    let start = Instant::now();
    for job in batch {
        queue.enqueue(job).await.unwrap();
    }
    line("enqueue, one at a time", per_second(n, start.elapsed()));

    let (queue, _) = fresh(dir);
    let start = Instant::now();
    let total = enqueue_from_tasks(&queue, 8, |t| jobs(&format!("task{t}"), n / 8)).await;
    line(
        "enqueue, one at a time from 8 tasks at once",
        per_second(total, start.elapsed()),
    );

    let (queue, _) = fresh(dir);
    let batches = batches(jobs("many", n));
    let start = Instant::now();
    for batch in batches {
        queue.enqueue_many(batch).await.unwrap();
    }
    line(
        "enqueue_many, 100 jobs a call",
        per_second(n, start.elapsed()),
    );
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

    // `REDIS_ONLY=1`: only the Redis cases.
    if std::env::var("REDIS_ONLY").is_ok() {
        run_redis(jobs).await;
        return;
    }
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
    // `MEMORY_ONLY=1`: the baseline and the memory cases, nothing else
    // (for instruction counts under `valgrind`, where SQLite's I/O would
    // drown the worker's own cost).
    if std::env::var("MEMORY_ONLY").is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    for concurrency in [1, 8] {
        let path = dir.join(format!("bench-{concurrency}.sqlite"));
        let queue = events::queue::SqliteBackend::queue(&path).unwrap();
        let m = run(queue, sqlite_jobs, concurrency).await;
        let rate = per_second(sqlite_jobs, m.total);
        println!(
            "{:<34} {:>12} {:>14.0} {:>9.2}x   (dispatch alone {:.0}/s, worker alone {:.0}/s)",
            format!("sqlite://, concurrency {concurrency}"),
            sqlite_jobs,
            rate,
            base_rate / rate,
            per_second(sqlite_jobs, m.dispatch),
            per_second(sqlite_jobs, m.total - m.dispatch)
        );
    }
    enqueue_alone(&dir, sqlite_jobs).await;
    let _ = std::fs::remove_dir_all(&dir);
    run_redis(jobs).await;
}

/// The Redis cases, when the build has them and `EVENTS_BENCH_REDIS_URL`
/// names a server (`benches/redis_peers.sh -- ..` sets it).
async fn run_redis(jobs: u64) {
    #[cfg(feature = "redis")]
    if std::env::var("EVENTS_BENCH_REDIS_URL").is_ok() {
        redis_cases::run((jobs / 5).max(1_000)).await;
        return;
    }
    println!();
    println!(
        "Redis cases skipped: build with `--features redis` and set EVENTS_BENCH_REDIS_URL (benches/redis_peers.sh does both)"
    );
    let _ = jobs;
}
