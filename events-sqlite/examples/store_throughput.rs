//! What the SQLite event store costs, beside a bare rusqlite loop doing the
//! same SQL on the same schema in the same run (the physical limit: no
//! thread hop, no async, no encoding of `NewEvent`s or decoding into
//! `StoredEvent`s):
//!
//! 1. appending one event at a time (goal ≥ 10,000 events/s), from one task
//!    and from eight at once;
//! 2. appending in batches of 1,000 (goal ≥ 100,000 events/s), which builds
//!    a log of `EVENTS` events (1,000,000 by default);
//! 3. reading the whole log back in position order, in pages of 1,000, as
//!    a replay does (goal: feed ≥ 500,000 events/s), without and with
//!    parsing each payload as JSON, and the process's peak memory;
//! 4. the first page of 100 of one entity's timeline among those events
//!    (goal < 10 ms), own events and with related ones, oldest and newest
//!    first.
//!
//! ```text
//! cargo run --release -p events-sqlite --example store_throughput [-- EVENTS]
//! ```
//!
//! Every event is about one of 10,000 appointments (so each timeline's 100
//! events are spread over the whole log, one page each), carries an
//! `actor_id`, and every tenth names a customer as related.

use std::path::Path;
use std::time::{Duration, Instant};

use events_core::store::{EventQuery, EventStore, NewEvent, Order, TimelineQuery};
use events_sqlite::SqliteStore;
use rusqlite::{Connection, params};

const ENTITIES: u64 = 10_000;
const CUSTOMERS: u64 = 1_000;
const BATCH: usize = 1_000;
const PAGE: usize = 1_000;

fn payload(n: u64) -> String {
    format!(
        r#"{{"appointment_id":{},"source":"web","customer":{{"id":{},"tier":"gold"}},"starts_at":"2026-12-07T09:30:00Z","duration_minutes":45,"notes":"bench event {n}"}}"#,
        n % ENTITIES,
        n % CUSTOMERS
    )
}

fn event(n: u64) -> NewEvent {
    let name = if n % ENTITIES < 10 {
        "appointment.created"
    } else {
        "appointment.rescheduled"
    };
    let mut event = NewEvent::new(name, payload(n))
        .entity(events_core::store::Entity::new(
            "appointment",
            (n % ENTITIES).to_string(),
        ))
        .with("actor_id", (n % 97).to_string());
    if n % 10 == 0 {
        event = event.with("related", format!("customer:{}", n % CUSTOMERS));
    }
    event
}

fn per_second(count: u64, took: Duration) -> String {
    group((count as f64 / took.as_secs_f64()) as u64)
}

fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn peak_rss_mb() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or_else(|| "?".to_owned(), |kb| format!("{} MB", kb / 1024))
}

/// A bare connection on a file the store made (same schema, page size,
/// WAL, `synchronous = NORMAL`).
fn bare(path: &Path) -> Connection {
    drop(SqliteStore::open(path).unwrap());
    let connection = Connection::open(path).unwrap();
    connection
        .pragma_update(None, "synchronous", "NORMAL")
        .unwrap();
    let mode: String = connection
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    connection
}

/// What the store's writer does per event, bare: the id lookup, the
/// stream's version, the insert, the related row.
fn bare_insert(tx: &Connection, e: &NewEvent) {
    let id = e.id.as_u128().to_be_bytes();
    let kept: Option<i64> = tx
        .prepare_cached("SELECT position FROM events_log WHERE id = ?1")
        .unwrap()
        .query_row(params![&id[..]], |r| r.get(0))
        .ok();
    assert!(kept.is_none());
    let entity = e.entity.as_ref().unwrap();
    let version: i64 = tx
        .prepare_cached(
            "SELECT COALESCE((SELECT entity_version FROM events_log WHERE entity_type = ?1 AND entity_id = ?2
                              ORDER BY position DESC LIMIT 1), 0)",
        )
        .unwrap()
        .query_row(params![entity.kind, entity.id], |r| r.get(0))
        .unwrap();
    let related = e.related.first().map(|r| format!("[\"{r}\"]"));
    tx.prepare_cached(
        "INSERT INTO events_log (id, name, version, payload, occurred_at, metadata, entity_type, entity_id,
                                 entity_version, related, actor)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )
    .unwrap()
    .execute(params![
        &id[..],
        e.name,
        e.version,
        e.payload,
        events_core::queue::millis(e.occurred_at),
        e.metadata.to_json(),
        entity.kind,
        entity.id,
        version + 1,
        related,
        e.metadata.get("actor_id"),
    ])
    .unwrap();
    if let Some(r) = e.related.first() {
        let position = tx.last_insert_rowid();
        tx.prepare_cached(
            "INSERT INTO events_log_related (entity_type, entity_id, position) VALUES (?1, ?2, ?3)",
        )
        .unwrap()
        .execute(params![r.kind, r.id, position])
        .unwrap();
    }
}

fn bare_transaction(connection: &Connection, events: &[NewEvent]) {
    connection.execute_batch("BEGIN IMMEDIATE").unwrap();
    for e in events {
        bare_insert(connection, e);
    }
    connection.execute_batch("COMMIT").unwrap();
}

fn median(mut times: Vec<Duration>) -> (Duration, Duration, Duration) {
    times.sort();
    let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
    (times[times.len() / 2], p99, *times.last().unwrap())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let total: u64 = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("EVENTS is a number"))
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    println!("events-sqlite store_throughput: {} events", group(total));

    // 1. One at a time.
    let single = 20_000u64;
    let store = SqliteStore::open(dir.path().join("single.sqlite")).unwrap();
    let events: Vec<NewEvent> = (0..single).map(event).collect();
    let start = Instant::now();
    for e in events {
        store.append(vec![e]).await.unwrap();
    }
    let store_single = start.elapsed();
    let store8 = SqliteStore::open(dir.path().join("single8.sqlite")).unwrap();
    let start = Instant::now();
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let store = store8.clone();
            tokio::spawn(async move {
                for n in (t..single).step_by(8) {
                    store.append(vec![event(n)]).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let store_eight = start.elapsed();
    let raw = bare(&dir.path().join("bare-single.sqlite"));
    let events: Vec<NewEvent> = (0..single).map(event).collect();
    let start = Instant::now();
    for e in &events {
        bare_transaction(&raw, std::slice::from_ref(e));
    }
    let bare_single = start.elapsed();
    drop(raw);
    println!(
        "\n1. append one event at a time ({} events), goal >= 10,000/s",
        group(single)
    );
    println!(
        "   bare rusqlite, one transaction each   {:>10} events/s",
        per_second(single, bare_single)
    );
    println!(
        "   SqliteStore::append, one task         {:>10} events/s  ({:.2}x the bare loop's time)",
        per_second(single, store_single),
        store_single.as_secs_f64() / bare_single.as_secs_f64()
    );
    println!(
        "   SqliteStore::append, eight tasks      {:>10} events/s  (group commit)",
        per_second(single, store_eight)
    );

    // 2. Batches of 1,000: builds the log read below.
    let path = dir.path().join("log.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    let mut appending = Duration::ZERO;
    let mut made = 0;
    while made < total {
        let batch: Vec<NewEvent> = (made..(made + BATCH as u64).min(total))
            .map(event)
            .collect();
        made += batch.len() as u64;
        let start = Instant::now();
        store.append(batch).await.unwrap();
        appending += start.elapsed();
    }
    let bare_batches = 100_000u64.min(total);
    let raw = bare(&dir.path().join("bare-batch.sqlite"));
    let mut bare_time = Duration::ZERO;
    let mut done = 0;
    while done < bare_batches {
        let batch: Vec<NewEvent> = (done..done + BATCH as u64).map(event).collect();
        done += BATCH as u64;
        let start = Instant::now();
        bare_transaction(&raw, &batch);
        bare_time += start.elapsed();
    }
    drop(raw);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(path.with_extension("sqlite-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    println!(
        "\n2. append in batches of {} ({} events), goal >= 100,000/s",
        group(BATCH as u64),
        group(total)
    );
    println!(
        "   bare rusqlite, first {} events  {:>10} events/s",
        group(bare_batches),
        per_second(bare_batches, bare_time)
    );
    println!(
        "   SqliteStore::append               {:>10} events/s  ({:.2}x the bare loop's time per event; file {} MB)",
        per_second(total, appending),
        (appending.as_secs_f64() / total as f64) / (bare_time.as_secs_f64() / bare_batches as f64),
        size / 1_000_000
    );

    // 3. Reading everything back in pages, as a replay does.
    let rss_before = peak_rss_mb();
    let read_all = |parse: bool| {
        let store = store.clone();
        async move {
            let start = Instant::now();
            let mut cursor = 0;
            let mut count = 0u64;
            let mut checksum = 0u64;
            loop {
                let page = store
                    .events(&EventQuery::new().after(cursor).limit(PAGE))
                    .await
                    .unwrap();
                for e in &page.events {
                    if parse {
                        let value: serde_json::Value = serde_json::from_str(&e.payload).unwrap();
                        checksum += value["appointment_id"].as_u64().unwrap();
                    } else {
                        checksum += e.payload.len() as u64;
                    }
                }
                count += page.events.len() as u64;
                match page.next {
                    Some(next) => cursor = next,
                    None => break,
                }
            }
            assert_eq!(count, total);
            (start.elapsed(), checksum)
        }
    };
    let (read_plain, _) = read_all(false).await;
    let (read_parsed, _) = read_all(true).await;
    let raw = Connection::open(&path).unwrap();
    let start = Instant::now();
    let mut cursor = 0i64;
    let mut count = 0u64;
    loop {
        let mut statement = raw
            .prepare_cached(
                "SELECT position, id, name, version, payload, occurred_at, metadata, entity_type, entity_id,
                        entity_version, related
                 FROM events_log WHERE position > ?1 ORDER BY position LIMIT ?2",
            )
            .unwrap();
        let rows: Vec<(
            i64,
            Vec<u8>,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
        )> = statement
            .query_map(params![cursor, PAGE as i64], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(4)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        count += rows.len() as u64;
        match rows.last() {
            Some(last) if rows.len() == PAGE => cursor = last.0,
            _ => break,
        }
    }
    let bare_read = start.elapsed();
    assert_eq!(count, total);
    drop(raw);
    println!(
        "\n3. read the whole log back by position, pages of {}, goal >= 500,000/s",
        group(PAGE as u64)
    );
    println!(
        "   bare rusqlite, rows into Strings          {:>10} events/s",
        per_second(total, bare_read)
    );
    println!(
        "   SqliteStore::events (StoredEvent)         {:>10} events/s  ({:.2}x the bare loop's time)",
        per_second(total, read_plain),
        read_plain.as_secs_f64() / bare_read.as_secs_f64()
    );
    println!(
        "   SqliteStore::events + serde_json payload  {:>10} events/s  (JSON parsing {:.2} µs/event)",
        per_second(total, read_parsed),
        (read_parsed.as_secs_f64() - read_plain.as_secs_f64()) * 1e6 / total as f64
    );
    println!(
        "   peak RSS before the reads {rss_before}, after {}",
        peak_rss_mb()
    );

    // 4. Timelines among all those events.
    let mut own = Vec::new();
    let mut related = Vec::new();
    let mut newest = Vec::new();
    let mut sizes = (0, 0);
    for k in 0..200u64 {
        let entity =
            events_core::store::Entity::new("appointment", ((k * 37) % ENTITIES).to_string());
        let start = Instant::now();
        let page = store
            .timeline(&TimelineQuery::new(entity.clone()))
            .await
            .unwrap();
        own.push(start.elapsed());
        sizes.0 = page.events.len();
        let start = Instant::now();
        store
            .timeline(&TimelineQuery::new(entity).order(Order::Desc))
            .await
            .unwrap();
        newest.push(start.elapsed());
        let customer =
            events_core::store::Entity::new("customer", ((k * 13) % CUSTOMERS).to_string());
        let start = Instant::now();
        let page = store
            .timeline(&TimelineQuery::new(customer).related(true))
            .await
            .unwrap();
        related.push(start.elapsed());
        sizes.1 = page.events.len();
    }
    let raw = Connection::open(&path).unwrap();
    let mut bare_times = Vec::new();
    for k in 0..200u64 {
        let start = Instant::now();
        let mut statement = raw
            .prepare_cached(
                "SELECT position, id, name, version, payload, occurred_at, metadata, entity_type, entity_id,
                        entity_version, related
                 FROM events_log WHERE entity_type = ?1 AND entity_id = ?2 ORDER BY position LIMIT 100",
            )
            .unwrap();
        let rows: Vec<(i64, String)> = statement
            .query_map(
                params!["appointment", ((k * 37) % ENTITIES).to_string()],
                |r| Ok((r.get(0)?, r.get(4)?)),
            )
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows.len(), 100.min((total / ENTITIES) as usize));
        bare_times.push(start.elapsed());
    }
    println!(
        "\n4. first page of 100 of one timeline among {} events, goal < 10 ms (median, p99, max of 200)",
        group(total)
    );
    let show = |label: &str, times: Vec<Duration>| {
        let (m, p, x) = median(times);
        println!("   {label:<44} {:>9} {:>9} {:>9}", ms(m), ms(p), ms(x));
    };
    show("bare rusqlite, own events", bare_times);
    show(
        &format!("SqliteStore::timeline, own ({} events)", sizes.0),
        own,
    );
    show("SqliteStore::timeline, own, newest first", newest);
    show(
        &format!("SqliteStore::timeline, related ({} events)", sizes.1),
        related,
    );
}
