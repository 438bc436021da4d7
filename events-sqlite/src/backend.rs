//! `sqlite://path`: the embedded durable queue, through rusqlite.
//!
//! - WAL mode, checked after asking for it (a misspelled pragma or an
//!   unsupported filesystem would silently leave it off).
//! - Every write runs under `BEGIN IMMEDIATE`, so writers queue on SQLite's
//!   lock (with a busy timeout) instead of failing mid-transaction.
//! - One column, `ready_at`, holds when a waiting job becomes available or
//!   when a claimed job's lease lapses. A claim is then one
//!   `UPDATE .. WHERE queue = ? AND ready_at <= now .. RETURNING` that takes
//!   due jobs and lapsed leases alike, served by one index.
//! - The schema is created and migrated by the library, versioned with
//!   `PRAGMA user_version`.
//!
//! Each operation is one short local transaction, run on the calling task.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use events_core::Metadata;
use events_core::queue::{
    Backend, FailedJob, Job, Queue, QueueError, QueueStats, from_millis, later, millis,
};
use rusqlite::{Connection, OptionalExtension, Row, params};
use tokio::sync::Notify;

use crate::error::SqliteError;
use crate::schema::{MIGRATIONS, SCHEMA_VERSION, envelope};

/// A job's columns, in the order [`job_from_row`] reads them.
const JOB_COLUMNS: &str = "id, queue, listener, event, payload, attempt, max_tries, available_at, first_enqueued_at, last_error, event_id, occurred_at, metadata";

/// A failed job's columns, in the order [`failed_from_row`] reads them.
const FAILED_COLUMNS: &str = "id, queue, listener, event, payload, error, attempts, max_tries, first_enqueued_at, failed_at, event_id, occurred_at, metadata";

/// The SQLite backend: one connection per handle, used by one task at a
/// time. Open it with [`SqliteBackend::open`], or a [`Queue`] over it with
/// [`SqliteBackend::queue`] or `events::queue::connect("sqlite://path")`.
pub struct SqliteBackend {
    path: String,
    connection: Mutex<Connection>,
    /// Wakes workers in this process when this handle enqueues; workers in
    /// other processes find new jobs at their next poll.
    wake: Notify,
}

impl SqliteBackend {
    /// Opens (creating and migrating when needed) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteBackend, QueueError> {
        let name = path.display().to_string();
        let err = |source| SqliteError::Sqlite {
            path: name.clone(),
            source,
        };
        let connection = Connection::open(path).map_err(err)?;
        connection
            .busy_timeout(Duration::from_secs(10))
            .map_err(err)?;
        let mode: String = connection
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(SqliteError::NoWal { path: name, mode }.into());
        }
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        let backend = SqliteBackend {
            path: name,
            connection: Mutex::new(connection),
            wake: Notify::new(),
        };
        backend.migrate()?;
        Ok(backend)
    }

    /// A [`Queue`] over the SQLite file at `path` (created and migrated
    /// when needed), with the URL `sqlite://{path}`.
    pub fn queue(path: impl AsRef<Path>) -> Result<Queue, QueueError> {
        let path = path.as_ref();
        let backend = SqliteBackend::open(path)?;
        Ok(Queue::with_backend(
            &format!("sqlite://{}", path.display()),
            backend,
        ))
    }

    fn migrate(&self) -> Result<(), QueueError> {
        self.write(|tx| {
            let version: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
            if version > SCHEMA_VERSION {
                return Ok(Err(version));
            }
            for (to, sql) in MIGRATIONS.iter().filter(|(to, _)| *to > version) {
                tx.execute_batch(sql)?;
                tx.pragma_update(None, "user_version", to)?;
            }
            Ok(Ok(()))
        })?
        .map_err(|found| {
            SqliteError::SchemaTooNew {
                path: self.path.clone(),
                found,
                supported: SCHEMA_VERSION,
            }
            .into()
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic inside a transaction rolls it back when the transaction is
        // dropped: the connection stays usable.
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction and commits it; rolls
    /// back when `f` fails or panics. `BEGIN` and `COMMIT` are prepared once
    /// and cached (rusqlite's `Transaction` parses them on every call, a
    /// tenth of a write's cost here).
    fn write<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, QueueError> {
        let connection = self.lock();
        let result = (|| {
            connection.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
            let open = OpenTransaction(&connection);
            let value = f(&connection)?;
            connection.prepare_cached("COMMIT")?.execute([])?;
            std::mem::forget(open);
            Ok(value)
        })();
        result.map_err(|source| self.error(source))
    }

    /// Runs a read.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, QueueError> {
        f(&self.lock()).map_err(|source| self.error(source))
    }

    fn error(&self, source: rusqlite::Error) -> QueueError {
        SqliteError::Sqlite {
            path: self.path.clone(),
            source,
        }
        .into()
    }
}

/// Rolls back the open transaction unless forgotten after `COMMIT`.
struct OpenTransaction<'a>(&'a Connection);

impl Drop for OpenTransaction<'_> {
    fn drop(&mut self) {
        // Nothing more to do if it fails: the connection reports it next use.
        let _ = self.0.execute_batch("ROLLBACK");
    }
}

fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let id: String = row.get(0)?;
    let first_enqueued_at: i64 = row.get(8)?;
    let envelope = envelope(row, 10, &id, first_enqueued_at)?;
    let mut job = Job::from_parts(
        id,
        row.get::<_, String>(1)?,
        row.get::<_, String>(2)?,
        row.get::<_, String>(3)?,
        row.get::<_, String>(4)?,
        envelope,
    );
    job.attempt = row.get(5)?;
    job.max_tries = row.get(6)?;
    job.available_at = from_millis(row.get(7)?);
    job.first_enqueued_at = from_millis(first_enqueued_at);
    job.last_error = row.get(9)?;
    Ok(job)
}

fn failed_from_row(row: &Row<'_>) -> rusqlite::Result<FailedJob> {
    let id: String = row.get(0)?;
    let first_enqueued_at: i64 = row.get(8)?;
    let envelope = envelope(row, 10, &id, first_enqueued_at)?;
    let mut failed = FailedJob::from_parts(
        id,
        row.get::<_, String>(1)?,
        row.get::<_, String>(2)?,
        row.get::<_, String>(3)?,
        row.get::<_, String>(4)?,
        row.get::<_, String>(5)?,
        envelope,
    );
    failed.attempts = row.get(6)?;
    failed.max_tries = row.get(7)?;
    failed.first_enqueued_at = from_millis(first_enqueued_at);
    failed.failed_at = from_millis(row.get(9)?);
    Ok(failed)
}

/// Metadata as stored: a JSON object, or NULL when there is none (most
/// events), which costs neither the encoding nor, on reading, the parse.
fn metadata_json(metadata: &Metadata) -> Option<String> {
    (!metadata.is_empty()).then(|| metadata.to_json())
}

/// Stores a job unless one with its id is waiting, claimed or failed.
fn insert_job(tx: &Connection, job: &Job) -> rusqlite::Result<()> {
    let available = millis(job.available_at);
    tx.prepare_cached(
        "INSERT INTO events_jobs (id, queue, listener, event, payload, attempt, max_tries, available_at,
                                  first_enqueued_at, last_error, reserved, ready_at, event_id, occurred_at,
                                  metadata)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?8, ?11, ?12, ?13
         WHERE NOT EXISTS (SELECT 1 FROM events_failed_jobs WHERE id = ?1)
         ON CONFLICT (id) DO NOTHING",
    )?
    .execute(params![
        job.id,
        job.queue,
        job.listener,
        job.event,
        job.payload,
        job.attempt,
        job.max_tries,
        available,
        millis(job.first_enqueued_at),
        job.last_error,
        job.envelope.id.to_string(),
        millis(job.envelope.occurred_at),
        metadata_json(&job.envelope.metadata),
    ])?;
    Ok(())
}

/// Moves failed jobs back to their queues, tries reset; `id = None` for all.
/// Returns the new ids.
fn retry_failed(
    tx: &Connection,
    id: Option<&str>,
    now: SystemTime,
) -> rusqlite::Result<Vec<String>> {
    let failed: Vec<FailedJob> = {
        let mut statement = tx.prepare_cached(&format!(
            "DELETE FROM events_failed_jobs WHERE ?1 IS NULL OR id = ?1 RETURNING {FAILED_COLUMNS}"
        ))?;
        statement
            .query_map(params![id], failed_from_row)?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut ids = Vec::with_capacity(failed.len());
    for job in failed {
        let job = job.into_job(now);
        insert_job(tx, &job)?;
        ids.push(job.id);
    }
    Ok(ids)
}

/// Deletes the jobs waiting on `queue` (not the claimed ones); returns how
/// many.
fn clear_queue(tx: &Connection, queue: &str) -> rusqlite::Result<usize> {
    tx.prepare_cached("DELETE FROM events_jobs WHERE queue = ?1 AND reserved = 0")?
        .execute(params![queue])
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn enqueue_many(&self, jobs: Vec<Job>) -> Result<(), QueueError> {
        jobs.iter().try_for_each(Job::validate)?;
        // One transaction: a job SQLite refuses rolls back the whole batch.
        self.write(|tx| jobs.iter().try_for_each(|job| insert_job(tx, job)))?;
        self.wake.notify_one();
        Ok(())
    }

    async fn claim(
        &self,
        queues: &[String],
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Job>, QueueError> {
        let lease = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        self.write(|tx| {
            // Read the clock once the write lock is held: time spent waiting
            // for it must not shorten the lease.
            let now = millis(SystemTime::now());
            let until = now.saturating_add(lease);
            let mut claimed = Vec::new();
            for queue in queues {
                let room = limit.saturating_sub(claimed.len());
                if room == 0 {
                    break;
                }
                let mut statement = tx.prepare_cached(&format!(
                    "UPDATE events_jobs SET attempt = attempt + 1, reserved = 1, ready_at = ?1
                     WHERE seq IN (SELECT seq FROM events_jobs WHERE queue = ?2 AND ready_at <= ?3
                                   ORDER BY ready_at, seq LIMIT ?4)
                     RETURNING {JOB_COLUMNS}, seq"
                ))?;
                let mut rows: Vec<(i64, Job)> = statement
                    .query_map(params![until, queue, now, room as i64], |row| {
                        Ok((row.get::<_, i64>(13)?, job_from_row(row)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                // RETURNING has no order: oldest first, as they were chosen.
                rows.sort_by_key(|(seq, job)| (job.available_at, *seq));
                claimed.extend(rows.into_iter().map(|(_, job)| job));
            }
            Ok(claimed)
        })
    }

    async fn extend(&self, id: &str, attempt: u32, lease: Duration) -> Result<bool, QueueError> {
        let until = millis(later(SystemTime::now(), lease));
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE events_jobs SET ready_at = ?1 WHERE id = ?2 AND attempt = ?3 AND reserved = 1",
            )?
            .execute(params![until, id, attempt])
            .map(|n| n == 1)
        })
    }

    async fn ack(&self, id: &str, attempt: u32) -> Result<bool, QueueError> {
        self.write(|tx| {
            tx.prepare_cached(
                "DELETE FROM events_jobs WHERE id = ?1 AND attempt = ?2 AND reserved = 1",
            )?
            .execute(params![id, attempt])
            .map(|n| n == 1)
        })
    }

    async fn release(
        &self,
        id: &str,
        attempt: u32,
        delay: Duration,
        error: &str,
    ) -> Result<bool, QueueError> {
        let at = millis(later(SystemTime::now(), delay));
        let released = self.write(|tx| {
            tx.prepare_cached(
                "UPDATE events_jobs SET reserved = 0, available_at = ?1, ready_at = ?1, last_error = ?2
                 WHERE id = ?3 AND attempt = ?4 AND reserved = 1",
            )?
            .execute(params![at, error, id, attempt])
            .map(|n| n == 1)
        })?;
        self.wake.notify_one();
        Ok(released)
    }

    async fn abandon(&self, id: &str, attempt: u32, delay: Duration) -> Result<bool, QueueError> {
        let at = millis(later(SystemTime::now(), delay));
        let abandoned = self.write(|tx| {
            // Handed back at once, it keeps its place: it is ready again as of
            // its `available_at`, ahead of jobs enqueued after it. Put off, it
            // becomes available when the delay ends.
            tx.prepare_cached(
                "UPDATE events_jobs SET reserved = 0, attempt = attempt - 1,
                        ready_at = CASE WHEN ?2 THEN ?1 ELSE available_at END,
                        available_at = CASE WHEN ?2 THEN ?1 ELSE available_at END
                 WHERE id = ?3 AND attempt = ?4 AND reserved = 1",
            )?
            .execute(params![at, !delay.is_zero(), id, attempt])
            .map(|n| n == 1)
        })?;
        self.wake.notify_one();
        Ok(abandoned)
    }

    async fn fail(&self, id: &str, attempt: u32, error: &str) -> Result<bool, QueueError> {
        let now = SystemTime::now();
        self.write(|tx| {
            let job = tx
                .prepare_cached(&format!(
                    "DELETE FROM events_jobs WHERE id = ?1 AND attempt = ?2 AND reserved = 1 RETURNING {JOB_COLUMNS}"
                ))?
                .query_row(params![id, attempt], job_from_row)
                .optional()?;
            let Some(job) = job else {
                return Ok(false);
            };
            let failed = job.into_failed(error, now);
            tx.prepare_cached(&format!(
                "INSERT INTO events_failed_jobs ({FAILED_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                 ON CONFLICT (id) DO UPDATE SET error = excluded.error, attempts = excluded.attempts,
                                                failed_at = excluded.failed_at"
            ))?
            .execute(params![
                failed.id,
                failed.queue,
                failed.listener,
                failed.event,
                failed.payload,
                failed.error,
                failed.attempts,
                failed.max_tries,
                millis(failed.first_enqueued_at),
                millis(failed.failed_at),
                failed.envelope.id.to_string(),
                millis(failed.envelope.occurred_at),
                metadata_json(&failed.envelope.metadata),
            ])?;
            Ok(true)
        })
    }

    async fn failed(&self) -> Result<Vec<FailedJob>, QueueError> {
        self.read(|connection| {
            connection
                .prepare_cached(&format!(
                    "SELECT {FAILED_COLUMNS} FROM events_failed_jobs ORDER BY failed_at, seq"
                ))?
                .query_map([], failed_from_row)?
                .collect()
        })
    }

    async fn retry(&self, id: &str) -> Result<Option<String>, QueueError> {
        let retried = self.write(|tx| retry_failed(tx, Some(id), SystemTime::now()))?;
        self.wake.notify_one();
        Ok(retried.into_iter().next())
    }

    async fn retry_all(&self) -> Result<usize, QueueError> {
        let retried = self.write(|tx| retry_failed(tx, None, SystemTime::now()))?;
        self.wake.notify_one();
        Ok(retried.len())
    }

    async fn clear(&self, queue: &str) -> Result<usize, QueueError> {
        self.write(|tx| clear_queue(tx, queue))
    }

    async fn forget(&self, id: &str) -> Result<bool, QueueError> {
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM events_failed_jobs WHERE id = ?1")?
                .execute(params![id])
                .map(|n| n == 1)
        })
    }

    async fn flush_failed(&self) -> Result<usize, QueueError> {
        self.write(|tx| tx.execute("DELETE FROM events_failed_jobs", []))
    }

    async fn stats(&self) -> Result<Vec<QueueStats>, QueueError> {
        let now = millis(SystemTime::now());
        self.read(|connection| {
            connection
                .prepare_cached(
                    "SELECT queue, SUM(pending), SUM(delayed), SUM(reserved), SUM(failed) FROM (
                         SELECT queue, reserved = 0 AS pending, reserved = 0 AND ready_at > ?1 AS delayed,
                                reserved = 1 AS reserved, 0 AS failed
                         FROM events_jobs
                         UNION ALL
                         SELECT queue, 0, 0, 0, 1 FROM events_failed_jobs
                     ) GROUP BY queue ORDER BY queue",
                )?
                .query_map(params![now], |row| {
                    let mut stats = QueueStats::new(row.get::<_, String>(0)?);
                    stats.pending = row.get::<_, i64>(1)? as usize;
                    stats.delayed = row.get::<_, i64>(2)? as usize;
                    stats.reserved = row.get::<_, i64>(3)? as usize;
                    stats.failed = row.get::<_, i64>(4)? as usize;
                    Ok(stats)
                })?
                .collect()
        })
    }

    async fn wait(&self, max: Duration) {
        // The next job or lease that comes due later: jobs due already were
        // just offered to the claim (or belong to queues this worker skips).
        let now = millis(SystemTime::now());
        let next = self.read(|connection| {
            connection.query_row(
                "SELECT MIN(ready_at) FROM events_jobs WHERE ready_at > ?1",
                params![now],
                |row| row.get::<_, Option<i64>>(0),
            )
        });
        let wait = match next {
            Ok(Some(at)) => Duration::from_millis(u64::try_from(at - now).unwrap_or(0)).min(max),
            _ => max,
        };
        if !wait.is_zero() {
            let _ = tokio::time::timeout(wait, self.wake.notified()).await;
        }
    }
}
