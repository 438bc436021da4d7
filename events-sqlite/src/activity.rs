//! What workers report, kept in the file: [`Backend::report`] (one write,
//! grouped with others by the writer thread) and [`Backend::activity`] (one
//! read). Tables: `events_workers`, `events_minutes`, `events_finished`
//! (see [`crate::schema`]).
//!
//! Every worker's minutes for one key add up in SQL (`INSERT .. ON
//! CONFLICT DO UPDATE SET n = n + excluded.n`), so reports of workers in
//! several processes on one file add up without a read first. A row that
//! cannot be read is left out of [`Activity`] with a warning naming its
//! column; the others are given.
//!
//! [`Backend::report`]: events_core::queue::Backend::report
//! [`Backend::activity`]: events_core::queue::Backend::activity

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use events_core::queue::Activity;
use events_core::queue::activity::{
    ActivityReport, FINISHED_KEPT, Finish, FinishedJob, MINUTES_KEPT, MinuteStats, WorkerStatus,
    minute_of,
};
use rusqlite::{Connection, Row, params};

use crate::backend::column_problem;
use crate::schema::BUCKETS;

/// `events_workers`' columns, in the order [`worker_from_row`] reads them.
const WORKER_COLUMNS: &str =
    "id, host, pid, queues, concurrency, started_ns, seen_ns, every_ns, running, processed, failed";

/// `events_finished`'s columns, in the order [`finished_from_row`] reads
/// them.
const FINISHED_COLUMNS: &str =
    "id, queue, listener, event, attempt, outcome, took_ns, finished_ns, worker";

/// `events_minutes`' columns, in the order [`minute_from_row`] reads them.
fn minute_columns() -> String {
    let buckets: Vec<String> = (0..BUCKETS).map(|i| format!("runtime_{i}")).collect();
    format!(
        "minute, queue, listener, succeeded, retried, failed, runtime_ms, {}, wait_ms, wait_max_ms, claims",
        buckets.join(", ")
    )
}

/// The upsert adding one report's counts to a minute's row.
fn minute_upsert() -> String {
    let columns = minute_columns();
    let values = vec!["?"; 10 + BUCKETS].join(", ");
    let mut sums: Vec<String> = [
        "succeeded",
        "retried",
        "failed",
        "runtime_ms",
        "wait_ms",
        "claims",
    ]
    .iter()
    .map(|c| format!("{c} = {c} + excluded.{c}"))
    .collect();
    sums.extend((0..BUCKETS).map(|i| format!("runtime_{i} = runtime_{i} + excluded.runtime_{i}")));
    sums.push("wait_max_ms = MAX(wait_max_ms, excluded.wait_max_ms)".to_owned());
    format!(
        "INSERT INTO events_minutes ({columns}) VALUES ({values})
         ON CONFLICT (minute, queue, listener) DO UPDATE SET {}",
        sums.join(", ")
    )
}

/// Nanoseconds since the epoch (0 before it, `i64::MAX` past 2262).
fn nanos(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A duration in nanoseconds, clamped to `i64`.
fn duration_nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// A count as SQLite stores it, clamped to `i64`.
fn stored(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Stores `report` at `now`, and forgets what is kept no longer: minutes
/// older than [`MINUTES_KEPT`], finished jobs past the newest
/// [`FINISHED_KEPT`], workers that missed three reports.
pub(crate) fn store(
    tx: &Connection,
    report: &ActivityReport,
    now: SystemTime,
) -> rusqlite::Result<()> {
    let worker = &report.worker;
    if report.leaving {
        tx.prepare_cached("DELETE FROM events_workers WHERE id = ?1")?
            .execute(params![worker.id])?;
    } else {
        let queues = serde_json::to_string(&worker.queues)
            .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))?;
        tx.prepare_cached(&format!(
            "INSERT INTO events_workers ({WORKER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid,
                 queues = excluded.queues, concurrency = excluded.concurrency,
                 started_ns = excluded.started_ns, seen_ns = excluded.seen_ns,
                 every_ns = excluded.every_ns, running = excluded.running,
                 processed = excluded.processed, failed = excluded.failed"
        ))?
        .execute(params![
            worker.id,
            worker.host,
            worker.pid,
            queues,
            stored(worker.concurrency as u64),
            nanos(worker.started_at),
            nanos(worker.seen_at),
            duration_nanos(worker.every),
            stored(worker.running as u64),
            stored(worker.processed),
            stored(worker.failed),
        ])?;
    }
    let oldest = minute_of(now.checked_sub(MINUTES_KEPT).unwrap_or(now));
    if report.minutes.iter().any(|m| m.minute >= oldest) {
        let mut upsert = tx.prepare_cached(&minute_upsert())?;
        for m in report.minutes.iter().filter(|m| m.minute >= oldest) {
            upsert.raw_bind_parameter(1, m.minute)?;
            upsert.raw_bind_parameter(2, &m.queue)?;
            upsert.raw_bind_parameter(3, &m.listener)?;
            let counts = [m.succeeded, m.retried, m.failed, m.runtime_ms];
            for (at, n) in counts.into_iter().chain(m.runtime).enumerate() {
                upsert.raw_bind_parameter(4 + at, stored(n))?;
            }
            let after = 4 + 4 + BUCKETS;
            for (at, n) in [m.wait_ms, m.wait_max_ms, m.claims].into_iter().enumerate() {
                upsert.raw_bind_parameter(after + at, stored(n))?;
            }
            upsert.raw_execute()?;
        }
    }
    if !report.finished.is_empty() {
        let mut insert = tx.prepare_cached(&format!(
            "INSERT INTO events_finished ({FINISHED_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        ))?;
        for f in &report.finished {
            insert.execute(params![
                f.id,
                f.queue,
                f.listener,
                f.event,
                f.attempt,
                f.outcome.as_str(),
                duration_nanos(f.took),
                nanos(f.finished_at),
                f.worker,
            ])?;
        }
        tx.prepare_cached(
            "DELETE FROM events_finished WHERE seq <
                 (SELECT seq FROM events_finished ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
        )?
        .execute(params![FINISHED_KEPT as i64 - 1])?;
    }
    tx.prepare_cached("DELETE FROM events_minutes WHERE minute < ?1")?
        .execute(params![oldest])?;
    // As `WorkerStatus::is_stale`: seen more than three reports ago (and
    // at least a second).
    tx.prepare_cached(
        "DELETE FROM events_workers WHERE ?1 - seen_ns > MAX(every_ns * 3, 1000000000)",
    )?
    .execute(params![nanos(now)])?;
    Ok(())
}

/// What the tables hold, from the minute of `since` on, at `now`, read in
/// one read transaction.
pub(crate) fn read(
    connection: &Connection,
    since: SystemTime,
    now: SystemTime,
) -> rusqlite::Result<Activity> {
    connection.execute_batch("BEGIN")?;
    let result = (|| {
        let workers = rows(
            connection,
            &format!("SELECT {WORKER_COLUMNS} FROM events_workers ORDER BY id"),
            params![],
            WORKER_COLUMNS,
            worker_from_row,
        )?
        .into_iter()
        .filter(|worker| !worker.is_stale(now))
        .collect();
        let columns = minute_columns();
        let minutes = rows(
            connection,
            &format!(
                "SELECT {columns} FROM events_minutes WHERE minute >= ?1
                 ORDER BY minute, queue, listener"
            ),
            params![minute_of(since)],
            &columns,
            minute_from_row,
        )?;
        let finished = rows(
            connection,
            &format!("SELECT {FINISHED_COLUMNS} FROM events_finished ORDER BY seq DESC LIMIT ?1"),
            params![FINISHED_KEPT as i64],
            FINISHED_COLUMNS,
            finished_from_row,
        )?;
        Ok(Activity::new(workers, minutes, finished))
    })();
    let _ = connection.execute_batch(if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
    result
}

/// The rows `sql` gives, each read by `read`; a row that cannot be read is
/// left out, with a warning saying which column of which table.
fn rows<T>(
    connection: &Connection,
    sql: &str,
    values: &[&dyn rusqlite::ToSql],
    columns: &str,
    read: fn(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut statement = connection.prepare_cached(sql)?;
    let mut rows = statement.query(values)?;
    let mut read_back = Vec::new();
    while let Some(row) = rows.next()? {
        match read(row) {
            Ok(item) => read_back.push(item),
            Err(error) => {
                let problem = column_problem(columns, &error);
                tracing::warn!(query = sql, %problem, "a row of what workers reported cannot be read; it is left out");
            }
        }
    }
    Ok(read_back)
}

/// A stored count, which must not be negative.
fn count(row: &Row<'_>, index: usize) -> rusqlite::Result<u64> {
    let n: i64 = row.get(index)?;
    u64::try_from(n).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, n))
}

/// A stored count of things in memory.
fn size(row: &Row<'_>, index: usize) -> rusqlite::Result<usize> {
    let n: i64 = row.get(index)?;
    usize::try_from(n).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, n))
}

/// A stored time in nanoseconds since the epoch.
fn time(row: &Row<'_>, index: usize) -> rusqlite::Result<SystemTime> {
    Ok(UNIX_EPOCH + Duration::from_nanos(count(row, index)?))
}

fn worker_from_row(row: &Row<'_>) -> rusqlite::Result<WorkerStatus> {
    let queues: String = row.get(3)?;
    let queues: Vec<String> = serde_json::from_str(&queues).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(error))
    })?;
    let pid: u32 = row.get(2)?;
    let mut worker = WorkerStatus::new(
        row.get::<_, String>(0)?,
        row.get::<_, String>(1)?,
        pid,
        time(row, 5)?,
        Duration::from_nanos(count(row, 7)?),
    );
    worker.queues = queues;
    worker.concurrency = size(row, 4)?;
    worker.seen_at = time(row, 6)?;
    worker.running = size(row, 8)?;
    worker.processed = count(row, 9)?;
    worker.failed = count(row, 10)?;
    Ok(worker)
}

fn minute_from_row(row: &Row<'_>) -> rusqlite::Result<MinuteStats> {
    let mut m = MinuteStats::new(
        row.get(0)?,
        row.get::<_, String>(1)?,
        row.get::<_, String>(2)?,
    );
    m.succeeded = count(row, 3)?;
    m.retried = count(row, 4)?;
    m.failed = count(row, 5)?;
    m.runtime_ms = count(row, 6)?;
    for (i, bucket) in m.runtime.iter_mut().enumerate() {
        *bucket = count(row, 7 + i)?;
    }
    m.wait_ms = count(row, 7 + BUCKETS)?;
    m.wait_max_ms = count(row, 8 + BUCKETS)?;
    m.claims = count(row, 9 + BUCKETS)?;
    Ok(m)
}

fn finished_from_row(row: &Row<'_>) -> rusqlite::Result<FinishedJob> {
    let outcome: String = row.get(5)?;
    let outcome = Finish::parse(&outcome).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            5,
            rusqlite::types::Type::Text,
            format!("`{outcome}` is not `succeeded`, `retried` or `failed`").into(),
        )
    })?;
    let mut f = FinishedJob::new(row.get::<_, String>(0)?, outcome, time(row, 7)?);
    f.queue = row.get(1)?;
    f.listener = row.get(2)?;
    f.event = row.get(3)?;
    f.attempt = row.get(4)?;
    f.took = Duration::from_nanos(count(row, 6)?);
    f.worker = row.get(8)?;
    Ok(f)
}
