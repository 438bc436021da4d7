//! The PostgreSQL event store against bare tokio-postgres on the same
//! server, in one run:
//!
//! ```text
//! cargo run --release -p events-postgres --example store_throughput [-- --events 1000000]
//! ```
//!
//! Appends one at a time (each its own commit) against a bare `INSERT`
//! loop (autocommit, a prepared statement); batches of 1,000 against a
//! bare `INSERT` loop inside one transaction per 1,000; then fills the log
//! to `--events` (default 1,000,000) in batches, streams it all back in
//! pages of 1,000 against a bare `SELECT .. WHERE position > $1` loop, and
//! times the first page of 100 of one entity's timeline among them.
//!
//! Uses a database of its own (`events_bench_<pid>`) on
//! `EVENTS_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped at the end.

use std::time::{Duration, Instant};

use events_core::store::{Entity, EventQuery, EventStore, NewEvent, TimelineQuery};
use events_postgres::PostgresStore;
use tokio_postgres::{Client, NoTls};

const SINGLES: usize = 1_000;
const BATCH: usize = 1_000;
const ENTITIES: usize = 10_000;

fn with_database(url: &str, db: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    let authority = base.find("://").map_or(0, |i| i + 3);
    let end = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    format!("{}/{db}", &base[..end])
}

async fn connect(url: &str) -> Client {
    let (client, connection) = url
        .parse::<tokio_postgres::Config>()
        .expect("a PostgreSQL URL")
        .connect(NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL at {url}: {e}; start it or set EVENTS_TEST_POSTGRES_URL"));
    tokio::spawn(connection);
    client
}

fn event(n: usize) -> NewEvent {
    NewEvent::new(
        "appointment.booked",
        format!(
            r#"{{"appointment_id":{},"slot":"2026-12-07T10:00","n":{n}}}"#,
            n % ENTITIES
        ),
    )
    .entity(Entity::new("appointment", (n % ENTITIES).to_string()))
    .with("actor_id", "bench")
}

fn rate(count: usize, took: Duration) -> String {
    format!("{:>10.0} events/s", count as f64 / took.as_secs_f64())
}

fn line(what: &str, count: usize, took: Duration) {
    println!(
        "{what:<58} {count:>9} in {:>8.3} s {}",
        took.as_secs_f64(),
        rate(count, took)
    );
}

/// The bare baseline's table: the same columns, only a primary key.
const BARE_TABLE: &str = "CREATE TABLE bare (position BIGSERIAL PRIMARY KEY, id TEXT NOT NULL, \
     name TEXT NOT NULL, version INTEGER NOT NULL, payload TEXT NOT NULL, occurred_at BIGINT NOT NULL, \
     metadata JSONB NOT NULL, entity_type TEXT, entity_id TEXT)";
const BARE_INSERT: &str = "INSERT INTO bare (id, name, version, payload, occurred_at, metadata, \
     entity_type, entity_id) VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8)";

async fn bare_insert(client: &Client, statement: &tokio_postgres::Statement, e: &NewEvent) {
    let entity = e.entity.as_ref().expect("bench events have entities");
    let metadata = serde_json::to_string(&e.metadata).unwrap();
    client
        .execute(
            statement,
            &[
                &e.id.to_string(),
                &e.name,
                &(e.version as i32),
                &e.payload,
                &events_core::queue::millis(e.occurred_at),
                &metadata,
                &entity.kind,
                &entity.id,
            ],
        )
        .await
        .unwrap();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let total: usize = std::env::args()
        .skip_while(|a| a != "--events")
        .nth(1)
        .map(|n| n.parse().expect("--events takes a number"))
        .unwrap_or(1_000_000);
    let server = std::env::var("EVENTS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let admin = connect(&server).await;
    let name = format!("events_bench_{}", std::process::id());
    admin
        .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0"))
        .await
        .unwrap();
    let url = with_database(&server, &name);
    let version: String = admin
        .query_one("SHOW server_version", &[])
        .await
        .unwrap()
        .get(0);
    let sync: String = admin
        .query_one("SHOW synchronous_commit", &[])
        .await
        .unwrap()
        .get(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "PostgreSQL {version}, synchronous_commit={sync}, database {name}, {total} events, load average {}\n",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );

    let result = tokio::spawn(run(url.clone(), total)).await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic.into_panic());
    }
}

async fn run(url: String, total: usize) {
    let store = PostgresStore::open(&url).unwrap();
    let bare = connect(&url).await;
    bare.batch_execute(BARE_TABLE).await.unwrap();
    let insert = bare.prepare(BARE_INSERT).await.unwrap();
    store.last_position().await.unwrap(); // tables made, one connection up
    let mut n = 0;

    println!("== append one at a time (each its own commit)");
    let events: Vec<NewEvent> = (0..SINGLES).map(event).collect();
    let started = Instant::now();
    for e in &events {
        bare_insert(&bare, &insert, e).await;
    }
    line(
        "bare tokio-postgres INSERT loop (autocommit)",
        SINGLES,
        started.elapsed(),
    );
    let started = Instant::now();
    for e in events {
        store.append(vec![e]).await.unwrap();
    }
    n += SINGLES;
    line("PostgresStore::append, 1 event", SINGLES, started.elapsed());

    println!("\n== batches of {BATCH}");
    let rounds = 20;
    let batches: Vec<Vec<NewEvent>> = (0..rounds)
        .map(|r| (0..BATCH).map(|i| event(n + r * BATCH + i)).collect())
        .collect();
    let started = Instant::now();
    for batch in &batches {
        bare.batch_execute("BEGIN").await.unwrap();
        for e in batch {
            bare_insert(&bare, &insert, e).await;
        }
        bare.batch_execute("COMMIT").await.unwrap();
    }
    line(
        "bare INSERT loop, one transaction per 1,000",
        rounds * BATCH,
        started.elapsed(),
    );
    let started = Instant::now();
    for batch in batches {
        store.append(batch).await.unwrap();
    }
    n += rounds * BATCH;
    line(
        "PostgresStore::append, 1,000 events",
        rounds * BATCH,
        started.elapsed(),
    );

    println!("\n== fill the log to {total} events in batches of {BATCH}");
    let started = Instant::now();
    let filled = total.saturating_sub(n);
    while n < total {
        let size = BATCH.min(total - n);
        store
            .append((n..n + size).map(event).collect())
            .await
            .unwrap();
        n += size;
    }
    line(
        "PostgresStore::append, 1,000 events, growing log",
        filled,
        started.elapsed(),
    );
    bare.batch_execute("VACUUM ANALYZE events_log")
        .await
        .unwrap();
    bare.batch_execute("VACUUM ANALYZE events_log_related")
        .await
        .unwrap();

    println!("\n== stream the whole log in pages of 1,000 (twice each, alternating)");
    let page = bare
        .prepare(
            "SELECT position, id, name, version, payload, occurred_at, metadata::text, \
             entity_type, entity_id, entity_version, related::text FROM events_log \
             WHERE position > $1 ORDER BY position LIMIT 1000",
        )
        .await
        .unwrap();
    for _ in 0..2 {
        let started = Instant::now();
        let (mut cursor, mut read) = (0i64, 0usize);
        loop {
            let rows = bare.query(&page, &[&cursor]).await.unwrap();
            let Some(last) = rows.last() else { break };
            cursor = last.get(0);
            read += rows.len();
            // What any reader does at least: every column into a Rust value.
            for row in &rows {
                let values: (i64, String, String, i32, String, i64, String) = (
                    row.get(0),
                    row.get(1),
                    row.get(2),
                    row.get(3),
                    row.get(4),
                    row.get(5),
                    row.get(6),
                );
                let entity: (Option<String>, Option<String>, Option<i64>, String) =
                    (row.get(7), row.get(8), row.get(9), row.get(10));
                std::hint::black_box((values, entity));
            }
        }
        line(
            "bare tokio-postgres SELECT .. WHERE position > $1, columns read",
            read,
            started.elapsed(),
        );
        let started = Instant::now();
        let (mut after, mut streamed, mut bytes) = (0u64, 0usize, 0usize);
        loop {
            let page = store
                .events(&EventQuery::new().after(after).limit(1000))
                .await
                .unwrap();
            streamed += page.events.len();
            bytes += page.events.iter().map(|e| e.payload.len()).sum::<usize>();
            match page.next {
                Some(next) => after = next,
                None => break,
            }
        }
        assert_eq!(streamed, total);
        line(
            "PostgresStore::events(after), StoredEvents",
            streamed,
            started.elapsed(),
        );
        std::hint::black_box(bytes);
    }

    println!("\n== timeline: first page of 100 of one entity among {total} events");
    for related in [false, true] {
        let mut times = Vec::new();
        for i in 0..200 {
            let entity = Entity::new("appointment", ((i * 7919) % ENTITIES).to_string());
            let started = Instant::now();
            let page = store
                .timeline(&TimelineQuery::new(entity).related(related).limit(100))
                .await
                .unwrap();
            times.push(started.elapsed());
            assert_eq!(page.events.len(), 100.min(total / ENTITIES));
        }
        times.sort();
        println!(
            "PostgresStore::timeline(related: {related:<5}) 200 entities: median {:>6.2} ms, p99 {:>6.2} ms",
            times[100].as_secs_f64() * 1e3,
            times[197].as_secs_f64() * 1e3
        );
    }
}
