//! The dashboard's queries on a SQLite queue holding 1,000,000 jobs:
//! latency per query kind, p50 and p99 over 200 runs each, through the
//! public API (`Queue::jobs`, `Queue::job`), so each figure includes the hop
//! to the reader thread and back.
//!
//! ```text
//! cargo run --release --example dashboard_queries [-- JOBS [RUNS]]
//! ```
//!
//! The file is filled with plain SQL in one transaction (what a million
//! enqueues, claims and failures would leave, without waiting for them):
//! four queues (40 / 30 / 20 / 10 %), about 50 % ready (due within the
//! last day), 20 % delayed (due within the next day), 2,000 reserved
//! (leases ending within 5 minutes), the rest failed (within the last 7
//! days). Payloads are JSON of about 150 bytes naming a customer.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use events::queue::{JobQuery, JobState, Queue, SqliteBackend};
use events_sqlite::SEARCHED_ROWS;

const QUEUES: [(&str, u64); 4] = [("default", 40), ("mail", 30), ("sync", 20), ("reports", 10)];
const LISTENERS: [&str; 4] = [
    "app::listeners::send_confirmation",
    "app::listeners::sync_to_calendar",
    "app::listeners::audit",
    "app::listeners::build_report",
];

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A cheap deterministic spread (SplitMix64).
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn queue_of(n: u64) -> &'static str {
    let mut at = mix(n) % 100;
    for (queue, share) in QUEUES {
        if at < share {
            return queue;
        }
        at -= share;
    }
    "default"
}

fn id_of(n: u64) -> String {
    format!("01JF{:022X}", mix(n ^ 0x5555) as u128 * 7 + n as u128)
}

fn fill(path: &std::path::Path, jobs: u64) {
    // The schema, as the library makes it.
    drop(SqliteBackend::open(path).unwrap());
    let mut raw = rusqlite::Connection::open(path).unwrap();
    raw.pragma_update(None, "synchronous", "OFF").unwrap();
    let tx = raw.transaction().unwrap();
    let now = now_ms();
    let day = 86_400_000;
    let reserved = 2_000.min(jobs / 10);
    {
        let mut job = tx
            .prepare(
                "INSERT INTO events_jobs (id, queue, listener, event, payload, attempt, max_tries,
                     available_at, first_enqueued_at, last_error, reserved, ready_at, event_id,
                     occurred_at, metadata)
                 VALUES (?1, ?2, ?3, 'order.placed', ?4, ?5, 3, ?6, ?7, NULL, ?8, ?9, ?10, ?7, NULL)",
            )
            .unwrap();
        let mut failed = tx
            .prepare(
                "INSERT INTO events_failed_jobs (id, queue, listener, event, payload, error,
                     attempts, max_tries, first_enqueued_at, failed_at, event_id, occurred_at,
                     metadata)
                 VALUES (?1, ?2, ?3, 'order.placed', ?4, 'card declined', 3, 3, ?5, ?6, ?7, ?5, NULL)",
            )
            .unwrap();
        for n in 0..jobs {
            let r = mix(n);
            let id = id_of(n);
            let queue = queue_of(n);
            let listener = LISTENERS[(r >> 8) as usize % LISTENERS.len()];
            let payload = format!(
                r#"{{"order_id":{n},"customer":"customer-{}","email":"c{}@example.com","total_cents":{},"items":[{{"sku":"SKU-{}","qty":{}}}]}}"#,
                r % 50_000,
                r % 50_000,
                r % 100_000,
                r % 997,
                r % 5 + 1
            );
            let event_id = format!("01JF{:022X}", n);
            let share = (r >> 20) % 1000;
            let spread = (r >> 32) as i64;
            if n < reserved {
                let lease_end = now + 1_000 + spread % 300_000;
                job.execute(rusqlite::params![
                    id,
                    queue,
                    listener,
                    payload,
                    1,
                    now - 5_000,
                    now - 10_000,
                    1,
                    lease_end,
                    event_id
                ])
                .unwrap();
            } else if share < 500 {
                let at = now - spread % day;
                job.execute(rusqlite::params![
                    id, queue, listener, payload, 0, at, at, 0, at, event_id
                ])
                .unwrap();
            } else if share < 700 {
                let at = now + 60_000 + spread % day;
                job.execute(rusqlite::params![
                    id,
                    queue,
                    listener,
                    payload,
                    0,
                    at,
                    now - 1_000,
                    0,
                    at,
                    event_id
                ])
                .unwrap();
            } else {
                let at = now - spread % (7 * day);
                failed
                    .execute(rusqlite::params![
                        id,
                        queue,
                        listener,
                        payload,
                        at - 60_000,
                        at,
                        event_id
                    ])
                    .unwrap();
            }
        }
    }
    tx.commit().unwrap();
    raw.execute_batch("ANALYZE; PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

async fn measure<F, Fut>(name: &str, runs: usize, mut run: F)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    // One warm-up run: the pages it reads come into the cache.
    let found = run(0).await;
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs {
        let start = Instant::now();
        std::hint::black_box(run(i).await);
        times.push(start.elapsed());
    }
    times.sort();
    println!(
        "{:<58} {:>9.2} {:>9.2} {:>9}",
        name,
        quantile(&times, 0.5).as_secs_f64() * 1e3,
        quantile(&times, 0.99).as_secs_f64() * 1e3,
        found
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let jobs: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard.sqlite");
    let start = Instant::now();
    fill(&path, jobs);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "filled {jobs} jobs in {:.1} s ({} MB)",
        start.elapsed().as_secs_f64(),
        size / 1_000_000
    );
    let queue: Queue = SqliteBackend::queue(&path).unwrap();
    let stats = queue.stats().await.unwrap();
    for s in &stats {
        println!(
            "  {:<8} pending {:>7} (delayed {:>7}) reserved {:>5} failed {:>7}",
            s.queue, s.pending, s.delayed, s.reserved, s.failed
        );
    }
    println!(
        "\n{:<58} {:>9} {:>9} {:>9}",
        "query (200 runs unless said)", "p50 ms", "p99 ms", "total"
    );
    let ids: Vec<String> = (0..runs as u64).map(|i| id_of(mix(i) % jobs)).collect();

    for state in [
        JobState::Ready,
        JobState::Delayed,
        JobState::Reserved,
        JobState::Failed,
    ] {
        let q = &queue;
        measure(
            &format!("(a) 50 {state}, newest first, every queue, + total"),
            runs,
            move |_| async move {
                q.jobs(&JobQuery::new().state(state).limit(50))
                    .await
                    .unwrap()
                    .total
            },
        )
        .await;
        measure(
            &format!("(a) 50 {state}, newest first, queue `mail`, + total"),
            runs,
            move |_| async move {
                q.jobs(&JobQuery::new().state(state).queue("mail").limit(50))
                    .await
                    .unwrap()
                    .total
            },
        )
        .await;
    }
    let q = &queue;
    measure(
        "(a) 50 of any state, newest first, + total",
        runs,
        move |_| async move { q.jobs(&JobQuery::new().limit(50)).await.unwrap().total },
    )
    .await;
    measure(
        "(a) 50 failed, page 20 (offset 950), + total",
        runs,
        move |_| async move {
            q.jobs(
                &JobQuery::new()
                    .state(JobState::Failed)
                    .offset(950)
                    .limit(50),
            )
            .await
            .unwrap()
            .total
        },
    )
    .await;
    for hours in [1, 24] {
        measure(
            &format!("(b) total of failed in the last {hours} h (limit 0)"),
            runs,
            move |_| async move {
                let since = SystemTime::now() - Duration::from_secs(hours * 3600);
                q.jobs(
                    &JobQuery::new()
                        .state(JobState::Failed)
                        .since(since)
                        .limit(0),
                )
                .await
                .unwrap()
                .total
            },
        )
        .await;
    }
    measure(
        "(b) total of failed, all (limit 0)",
        runs,
        move |_| async move {
            q.jobs(&JobQuery::new().state(JobState::Failed).limit(0))
                .await
                .unwrap()
                .total
        },
    )
    .await;
    let ids = &ids;
    measure("(c) one job by id", runs, move |i| async move {
        usize::from(q.job(&ids[i]).await.unwrap().is_some())
    })
    .await;
    let search_runs = runs;
    let page = q
        .jobs(&JobQuery::new().search("customer-4242").limit(50))
        .await
        .unwrap();
    println!(
        "    a search looks through the newest {SEARCHED_ROWS} rows of each table; this one: {:?}",
        page.searched
    );
    measure(
        &format!("(d) search `customer-4242`, every state ({search_runs} runs)"),
        search_runs,
        move |_| async move {
            q.jobs(&JobQuery::new().search("customer-4242").limit(50))
                .await
                .unwrap()
                .total
        },
    )
    .await;
    measure(
        &format!("(d) search `customer-4242`, failed, `mail` ({search_runs} runs)"),
        search_runs,
        move |_| async move {
            q.jobs(
                &JobQuery::new()
                    .state(JobState::Failed)
                    .queue("mail")
                    .search("customer-4242")
                    .limit(50),
            )
            .await
            .unwrap()
            .total
        },
    )
    .await;
}
