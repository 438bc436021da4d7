//! The Redis cases of `queue_throughput` (feature `redis`): enqueue alone
//! and end to end (dispatch -> Redis -> worker -> done), with the round
//! trips each job costs as the backend counts them, and the script calls
//! and commands from `INFO commandstats` before and after (a script's own
//! commands count there too).
//!
//! They run when `EVENTS_BENCH_REDIS_URL` names a server (on a key prefix of
//! their own, deleted afterwards). `benches/redis_peers.sh -- ..` starts a
//! private server, runs BullMQ on it and sets that variable, so the figures
//! stand side by side. `ONLY=enqueue`, `ONLY=e2e` or one case such as
//! `ONLY=e2e-bulk-8` runs only those cases (for profiling).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use events::prelude::*;
use events::queue::{Job, Queue, RedisBackend};

use crate::{batches, per_second};
use events::{Dispatcher, Worker};
use serde::{Deserialize, Serialize};

#[event(name = "bench.redis")]
#[derive(Serialize, Deserialize)]
pub struct RedisJob {
    pub n: u64,
}

static DONE: AtomicU64 = AtomicU64::new(0);

#[listener(queue = "bench-redis", name = "bench.redis_listener")]
async fn redis_listener(e: &RedisJob) {
    DONE.fetch_add(e.n & 1, Ordering::Relaxed);
}

fn server() -> String {
    std::env::var("EVENTS_BENCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

/// A queue on a prefix of its own, and its backend (to count round trips).
fn fresh(case: &str) -> (Queue, RedisBackend, String) {
    let prefix = format!("bench-{}-{case}", std::process::id());
    let url = format!("{}?prefix={prefix}", server());
    let backend = RedisBackend::open(&url).unwrap();
    (Queue::with_backend(&url, backend.clone()), backend, prefix)
}

/// Deletes a prefix's keys.
fn cleanup(prefix: &str) {
    let client = redis::Client::open(server()).unwrap();
    let mut conn = client.get_connection().unwrap();
    for pattern in [format!("{{{prefix}:*"), format!("{prefix}:*")] {
        let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query(&mut conn).unwrap();
        for chunk in keys.chunks(1000) {
            let _: () = redis::cmd("DEL").arg(chunk).query(&mut conn).unwrap();
        }
    }
}

/// What the server has run so far, from `INFO commandstats`: script calls
/// (`EVALSHA`), and every command (a script's own commands count too),
/// less the INFO calls themselves. Other clients of the server add noise:
/// run it on a server of its own (`benches/redis_peers.sh -- ..`).
#[derive(Clone, Copy)]
struct Counts {
    scripts: u64,
    commands: u64,
    round_trips: u64,
}

fn counts(backend: &RedisBackend) -> Counts {
    let client = redis::Client::open(server()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut conn)
        .unwrap();
    let calls = |line: &str| -> Option<u64> {
        let calls = line.split("calls=").nth(1)?;
        calls.split(',').next()?.parse::<u64>().ok()
    };
    let lines = || info.lines().filter(|line| line.starts_with("cmdstat_"));
    Counts {
        scripts: lines()
            .filter(|line| line.starts_with("cmdstat_evalsha:"))
            .filter_map(calls)
            .sum(),
        commands: lines()
            .filter(|line| !line.starts_with("cmdstat_info:"))
            .filter_map(calls)
            .sum(),
        round_trips: backend.round_trips(),
    }
}

/// The jobs a dispatch of `RedisJob` makes, built ahead of the clock.
fn jobs(prefix: &str, n: u64) -> Vec<Job> {
    crate::job_rows(
        prefix,
        n,
        "bench-redis",
        "bench.redis_listener",
        "bench.redis",
    )
}

fn line(case: &str, n: u64, rate: f64, before: Counts, backend: &RedisBackend) {
    let after = counts(backend);
    let per_job = |a: u64, b: u64| (a - b) as f64 / n as f64;
    println!(
        "{case:<52} {n:>8} {rate:>10.0} {:>8.2} {:>8.2} {:>9.2}",
        per_job(after.round_trips, before.round_trips),
        per_job(after.scripts, before.scripts),
        per_job(after.commands, before.commands),
    );
}

async fn enqueue_alone(n: u64) {
    let (queue, backend, prefix) = fresh("one");
    let batch = jobs("one", n);
    let before = counts(&backend);
    let start = Instant::now();
    for job in batch {
        queue.enqueue(job).await.unwrap();
    }
    let rate = per_second(n, start.elapsed());
    line("enqueue, one at a time", n, rate, before, &backend);
    cleanup(&prefix);

    let (queue, backend, prefix) = fresh("eight");
    let before = counts(&backend);
    let start = Instant::now();
    let total = crate::enqueue_from_tasks(&queue, 8, |t| jobs(&format!("task{t}"), n / 8)).await;
    let rate = per_second(total, start.elapsed());
    line(
        "enqueue, one at a time from 8 tasks at once",
        n,
        rate,
        before,
        &backend,
    );
    cleanup(&prefix);

    let (queue, backend, prefix) = fresh("many");
    let all = batches(jobs("many", n));
    let before = counts(&backend);
    let start = Instant::now();
    for batch in all {
        queue.enqueue_many(batch).await.unwrap();
    }
    let rate = per_second(n, start.elapsed());
    line("enqueue_many, 100 jobs a call", n, rate, before, &backend);
    cleanup(&prefix);
}

/// Dispatches `n` events one at a time, then works them all.
async fn end_to_end(n: u64, concurrency: usize, bulk: bool) {
    let (queue, backend, prefix) = fresh(&format!("e2e-{concurrency}-{bulk}"));
    let dispatcher = Dispatcher::builder().queue(queue.clone()).build().unwrap();
    let all = batches(jobs("bulk", n));
    let before = counts(&backend);
    let start = Instant::now();
    if bulk {
        for batch in all {
            queue.enqueue_many(batch).await.unwrap();
        }
    } else {
        for i in 0..n {
            dispatcher.dispatch(RedisJob { n: i }).await.unwrap();
        }
    }
    let enqueued = start.elapsed();
    let worked = Instant::now();
    let report = Worker::new(queue)
        .queues(["bench-redis"])
        .concurrency(concurrency)
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!(report.succeeded, n);
    let total = start.elapsed();
    let how = if bulk {
        "enqueue_many of 100"
    } else {
        "one dispatch at a time"
    };
    line(
        &format!("end to end, {how}, concurrency {concurrency}"),
        n,
        per_second(n, total),
        before,
        &backend,
    );
    println!(
        "{:<52} {:>8} {:>10.0}   (enqueue {:.0}/s)",
        "    of which the worker alone",
        n,
        per_second(n, worked.elapsed()),
        per_second(n, enqueued)
    );
    cleanup(&prefix);
}

/// Runs the Redis cases on `n` jobs each, against `REDIS_URL`.
pub async fn run(n: u64) {
    println!();
    println!("Redis at {}", server());
    println!(
        "{:<52} {:>8} {:>10} {:>8} {:>8} {:>9}",
        "case", "jobs", "jobs/s", "trips/j", "evals/j", "cmds/j"
    );
    // `ONLY=e2e` (or `enqueue`, or one case such as `e2e-bulk-8`) runs
    // only those cases, for profiling.
    let only = std::env::var("ONLY").unwrap_or_default();
    if only.is_empty() || only == "enqueue" {
        enqueue_alone(n).await;
    }
    for bulk in [false, true] {
        for concurrency in [1, 8] {
            let name = format!("e2e-{}-{concurrency}", if bulk { "bulk" } else { "one" });
            if only.is_empty() || only == "e2e" || only == name {
                end_to_end(n, concurrency, bulk).await;
            }
        }
    }
}
