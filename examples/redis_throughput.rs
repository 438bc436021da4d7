//! Redis queue throughput (feature `redis`): enqueue alone and end to end
//! (dispatch -> Redis -> worker -> done), with the Redis commands each job
//! costs counted from `INFO commandstats` before and after.
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run --release --features redis --example redis_throughput [-- JOBS]
//! ```
//!
//! `benches/redis_peers.sh` runs BullMQ and `redis-benchmark` on the same
//! kind of server for the side-by-side figures in BENCHMARKS.md.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use events::Envelope;
use events::prelude::*;
use events::queue::{Job, Queue};
use events::{Dispatcher, Worker};
use serde::{Deserialize, Serialize};

#[event(name = "bench.redis")]
#[derive(Serialize, Deserialize)]
pub struct RedisJob {
    pub n: u64,
}

static DONE: AtomicU64 = AtomicU64::new(0);

#[listener(queue = "bench")]
async fn redis_listener(e: &RedisJob) {
    DONE.fetch_add(e.n & 1, Ordering::Relaxed);
}

fn per_second(jobs: u64, d: Duration) -> f64 {
    jobs as f64 / d.as_secs_f64()
}

fn server() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

/// A queue on a prefix of its own.
fn fresh(case: &str) -> (Queue, String) {
    let prefix = format!("bench-{}-{case}", std::process::id());
    let url = format!("{}?prefix={prefix}", server());
    (events::queue::open(&url).unwrap(), prefix)
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

/// Commands the server has run so far (the sum of `calls` in `INFO
/// commandstats`), less the INFO calls themselves.
fn commands() -> u64 {
    let client = redis::Client::open(server()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let info: String = redis::cmd("INFO").arg("commandstats").query(&mut conn).unwrap();
    info.lines()
        .filter(|line| line.starts_with("cmdstat_") && !line.starts_with("cmdstat_info:"))
        .filter_map(|line| {
            let calls = line.split("calls=").nth(1)?;
            calls.split(',').next()?.parse::<u64>().ok()
        })
        .sum()
}

fn jobs(prefix: &str, n: u64) -> Vec<Job> {
    (0..n)
        .map(|i| {
            let payload = serde_json::to_string(&RedisJob { n: i }).unwrap();
            let mut job = Job::from_parts(
                format!("{prefix}-{i}"),
                "bench",
                "redis_throughput::redis_listener",
                "bench.redis",
                payload,
                Envelope::new(),
            );
            job.max_tries = 1;
            job
        })
        .collect()
}

fn line(case: &str, n: u64, rate: f64, commands: u64) {
    println!(
        "{case:<52} {n:>8} {rate:>12.0} {:>14.2}",
        commands as f64 / n as f64
    );
}

async fn enqueue_alone(n: u64) {
    let (queue, prefix) = fresh("one");
    let batch = jobs("one", n);
    let before = commands();
    let start = Instant::now();
    for job in batch {
        queue.enqueue(job).await.unwrap();
    }
    let rate = per_second(n, start.elapsed());
    line("enqueue, one at a time", n, rate, commands() - before);
    cleanup(&prefix);

    let (queue, prefix) = fresh("eight");
    let tasks = 8;
    let before = commands();
    let start = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let queue = queue.clone();
        let batch = jobs(&format!("task{t}"), n / tasks);
        running.spawn(async move {
            for job in batch {
                queue.enqueue(job).await.unwrap();
            }
        });
    }
    while let Some(done) = running.join_next().await {
        done.unwrap();
    }
    let rate = per_second(n / tasks * tasks, start.elapsed());
    line("enqueue, one at a time from 8 tasks at once", n, rate, commands() - before);
    cleanup(&prefix);

    let (queue, prefix) = fresh("many");
    let mut all = jobs("many", n);
    let before = commands();
    let start = Instant::now();
    while !all.is_empty() {
        let rest = all.split_off(all.len().min(100));
        queue.enqueue_many(all).await.unwrap();
        all = rest;
    }
    let rate = per_second(n, start.elapsed());
    line("enqueue_many, 100 jobs a call", n, rate, commands() - before);
    cleanup(&prefix);
}

/// Dispatches `n` events one at a time, then works them all.
async fn end_to_end(n: u64, concurrency: usize, bulk: bool) {
    let (queue, prefix) = fresh(&format!("e2e-{concurrency}-{bulk}"));
    let dispatcher = Dispatcher::builder().queue(queue.clone()).build().unwrap();
    let before = commands();
    let start = Instant::now();
    if bulk {
        let mut all = jobs("bulk", n);
        while !all.is_empty() {
            let rest = all.split_off(all.len().min(100));
            queue.enqueue_many(all).await.unwrap();
            all = rest;
        }
    } else {
        for i in 0..n {
            dispatcher.dispatch(RedisJob { n: i }).await.unwrap();
        }
    }
    let enqueued = start.elapsed();
    let worked = Instant::now();
    let report = Worker::new(queue)
        .queues(["bench"])
        .concurrency(concurrency)
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!(report.succeeded, n);
    let total = start.elapsed();
    let how = if bulk { "enqueue_many of 100" } else { "one dispatch at a time" };
    line(
        &format!("end to end, {how}, concurrency {concurrency}"),
        n,
        per_second(n, total),
        commands() - before,
    );
    println!(
        "{:<52} {:>8} {:>12.0}   (enqueue {:.0}/s)",
        "    of which the worker alone",
        n,
        per_second(n, worked.elapsed()),
        per_second(n, enqueued)
    );
    cleanup(&prefix);
}

#[tokio::main]
async fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    println!("Redis at {}", server());
    println!("{:<52} {:>8} {:>12} {:>14}", "case", "jobs", "jobs/s", "commands/job");
    enqueue_alone(n).await;
    for bulk in [false, true] {
        for concurrency in [1, 8] {
            end_to_end(n, concurrency, bulk).await;
        }
    }
}
