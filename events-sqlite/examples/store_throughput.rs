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
//! cargo run --release -p events-sqlite --example store_throughput [-- EVENTS [CASES]]
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
    if n.is_multiple_of(10) {
        event = event.with("related", format!("customer:{}", (n / 10) % CUSTOMERS));
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
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
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

/// What the store's writer does per event, bare: the stream's version,
/// the insert at `position` (its unique id index refusing a duplicate),
/// the related row.
fn bare_insert(tx: &Connection, e: &NewEvent, position: i64) {
    let id = e.id.as_u128().to_be_bytes();
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
                                 entity_version, related, actor, position)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
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
        position,
    ])
    .unwrap();
    if let Some(r) = e.related.first() {
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
    let last: i64 = connection
        .prepare_cached(
            "SELECT MAX(COALESCE((SELECT MAX(position) FROM events_log), 0),
                        COALESCE((SELECT position FROM events_log_last WHERE id = 1), 0))",
        )
        .unwrap()
        .query_row([], |r| r.get(0))
        .unwrap();
    for (i, e) in events.iter().enumerate() {
        bare_insert(connection, e, last + 1 + i as i64);
    }
    connection.execute_batch("COMMIT").unwrap();
}

/// CPU time of the whole process (every thread), from `/proc/self/stat`
/// (at clock-tick resolution; phases here last seconds).
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis: utime and stime are
    // the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    Duration::from_millis(fields.iter().sum::<u64>() * 10)
}

fn cpu_per_event(cpu: Duration, count: u64) -> String {
    format!("{:.1} µs CPU/event", cpu.as_secs_f64() * 1e6 / count as f64)
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The columns the bare read loop keeps of a row.
type BareRow = (
    i64,
    Vec<u8>,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// One result: events per second, CPU per event, a note.
fn line(label: &str, count: u64, took: Duration, cpu: Duration, note: String) {
    let note = if note.is_empty() {
        String::new()
    } else {
        format!("; {note}")
    };
    println!(
        "   {label:<44} {:>10} events/s  ({}{note})",
        per_second(count, took),
        cpu_per_event(cpu, count)
    );
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
    // Which of the cases to run (the batches always run: they build the
    // log the others read): `1234` by default.
    let phases = std::env::args().nth(2).unwrap_or_else(|| "1234".to_owned());
    let dir = tempfile::tempdir().unwrap();
    println!(
        "events-sqlite store_throughput: {} events; load average {} (2 cores: above 2, this process waits for a core)",
        group(total),
        load()
    );

    if phases.contains('1') {
        // 1. One at a time.
        let single = 20_000u64;
        let store = SqliteStore::open(dir.path().join("single.sqlite")).unwrap();
        let events: Vec<NewEvent> = (0..single).map(event).collect();
        let (start, c) = (Instant::now(), cpu());
        for e in events {
            store.append(vec![e]).await.unwrap();
        }
        let (store_single, cpu_single) = (start.elapsed(), cpu() - c);
        let store8 = SqliteStore::open(dir.path().join("single8.sqlite")).unwrap();
        let (start, c) = (Instant::now(), cpu());
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
        let (store_eight, cpu_eight) = (start.elapsed(), cpu() - c);
        let raw = bare(&dir.path().join("bare-single.sqlite"));
        let events: Vec<NewEvent> = (0..single).map(event).collect();
        let (start, c) = (Instant::now(), cpu());
        for e in &events {
            bare_transaction(&raw, std::slice::from_ref(e));
        }
        let (bare_single, cpu_bare_single) = (start.elapsed(), cpu() - c);
        drop(raw);
        println!(
            "\n1. append one event at a time ({} events), goal >= 10,000/s",
            group(single)
        );
        line(
            "bare rusqlite, one transaction each",
            single,
            bare_single,
            cpu_bare_single,
            String::new(),
        );
        line(
            "SqliteStore::append, one task",
            single,
            store_single,
            cpu_single,
            format!(
                "{:.2}x the bare loop's time",
                store_single.as_secs_f64() / bare_single.as_secs_f64()
            ),
        );
        line(
            "SqliteStore::append, eight tasks",
            single,
            store_eight,
            cpu_eight,
            "group commit".into(),
        );
    }

    // 2. Batches of 1,000: builds the log read below.
    let path = dir.path().join("log.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    let mut appending = Duration::ZERO;
    let mut cpu_appending = Duration::ZERO;
    let mut made = 0;
    // The first events' figures, beside the bare loop's (which writes as
    // many into a fresh file): the log gets slower to append to as its
    // entity index outgrows SQLite's page cache.
    let bare_batches = 100_000u64.min(total);
    let mut first = (Duration::ZERO, Duration::ZERO);
    while made < total {
        let batch: Vec<NewEvent> = (made..(made + BATCH as u64).min(total))
            .map(event)
            .collect();
        made += batch.len() as u64;
        let (start, c) = (Instant::now(), cpu());
        store.append(batch).await.unwrap();
        appending += start.elapsed();
        cpu_appending += cpu() - c;
        if made == bare_batches {
            first = (appending, cpu_appending);
        }
    }
    let raw = bare(&dir.path().join("bare-batch.sqlite"));
    let mut bare_time = Duration::ZERO;
    let mut cpu_bare = Duration::ZERO;
    let mut done = 0;
    while done < bare_batches {
        let batch: Vec<NewEvent> = (done..done + BATCH as u64).map(event).collect();
        done += BATCH as u64;
        let (start, c) = (Instant::now(), cpu());
        bare_transaction(&raw, &batch);
        bare_time += start.elapsed();
        cpu_bare += cpu() - c;
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
    line(
        &format!("bare rusqlite, first {} events", group(bare_batches)),
        bare_batches,
        bare_time,
        cpu_bare,
        String::new(),
    );
    line(
        &format!("SqliteStore::append, first {} events", group(bare_batches)),
        bare_batches,
        first.0,
        first.1,
        format!(
            "{:.2}x the bare loop's time",
            first.0.as_secs_f64() / bare_time.as_secs_f64()
        ),
    );
    line(
        &format!("SqliteStore::append, all {} events", group(total)),
        total,
        appending,
        cpu_appending,
        format!("file {} MB", size / 1_000_000),
    );

    if phases.contains('3') {
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
                            let value: serde_json::Value =
                                serde_json::from_str(&e.payload).unwrap();
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
        let c = cpu();
        let (took, _) = read_all(false).await;
        let read_plain = (took, cpu() - c);
        let c = cpu();
        let (took, _) = read_all(true).await;
        let read_parsed = (took, cpu() - c);
        // As a replay can: ask for the next page before handling this one, so
        // the reader thread decodes it meanwhile.
        let pipelined = {
            let (start, c) = (Instant::now(), cpu());
            let fetch = |cursor: u64| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .events(&EventQuery::new().after(cursor).limit(PAGE))
                        .await
                        .unwrap()
                })
            };
            let mut pending = Some(fetch(0));
            let mut count = 0u64;
            let mut checksum = 0u64;
            while let Some(handle) = pending.take() {
                let page = handle.await.unwrap();
                pending = page.next.map(fetch);
                for e in &page.events {
                    let value: serde_json::Value = serde_json::from_str(&e.payload).unwrap();
                    checksum += value["appointment_id"].as_u64().unwrap();
                }
                count += page.events.len() as u64;
            }
            assert_eq!(count, total);
            std::hint::black_box(checksum);
            (start.elapsed(), cpu() - c)
        };
        let raw = Connection::open(&path).unwrap();
        let (start, c) = (Instant::now(), cpu());
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
            let rows: Vec<BareRow> = statement
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
        let (bare_read, cpu_bare_read) = (start.elapsed(), cpu() - c);
        assert_eq!(count, total);
        drop(raw);
        println!(
            "\n3. read the whole log back by position, pages of {}, goal >= 500,000/s",
            group(PAGE as u64)
        );
        line(
            "bare rusqlite, rows into Strings",
            total,
            bare_read,
            cpu_bare_read,
            String::new(),
        );
        line(
            "SqliteStore::events (StoredEvent)",
            total,
            read_plain.0,
            read_plain.1,
            format!(
                "{:.2}x the bare loop's time",
                read_plain.0.as_secs_f64() / bare_read.as_secs_f64()
            ),
        );
        line(
            "SqliteStore::events + serde_json payload",
            total,
            read_parsed.0,
            read_parsed.1,
            format!(
                "JSON parsing {:.2} µs/event",
                (read_parsed.0.as_secs_f64() - read_plain.0.as_secs_f64()) * 1e6 / total as f64
            ),
        );
        line(
            "the same, next page asked for first",
            total,
            pipelined.0,
            pipelined.1,
            "the reader thread decodes it meanwhile".into(),
        );
        println!(
            "   peak RSS before the reads {rss_before}, after {}",
            peak_rss_mb()
        );
    }
    if phases.contains('4') {
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
    println!("\nload average at the end: {}", load());
}
