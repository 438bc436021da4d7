//! `sqlite://path`: the embedded durable queue, through rusqlite.
//!
//! - SQLite runs on threads of its own ([`crate::thread`]): a writer that
//!   groups concurrent writes into one transaction, and a reader. No call
//!   blocks the async runtime, even while another process holds the write
//!   lock.
//! - WAL mode, checked after asking for it (a misspelled pragma or an
//!   unsupported filesystem would silently leave it off).
//! - Every write runs under `BEGIN IMMEDIATE`, so writers queue on SQLite's
//!   lock (with a busy timeout) instead of failing mid-transaction.
//! - One column, `ready_at`, holds when a waiting job becomes available or
//!   when a claimed job's lease lapses. A claim is then one
//!   `UPDATE .. WHERE queue = ? AND ready_at <= now .. RETURNING` that takes
//!   due jobs and lapsed leases alike, served by one index.
//! - The schema is created and migrated by the library, versioned with
//!   `PRAGMA user_version`; opening a file whose schema is current takes no
//!   write lock.

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use events_core::Metadata;
use events_core::queue::{
    Activity, ActivityReport, Backend, FailedJob, Job, JobPage, JobQuery, JobView, Queue,
    QueueError, QueueStats, from_millis, later, millis,
};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, Row, params};
use tokio::sync::Notify;

use crate::error::SqliteError;
use crate::schema::{
    ADDITIONS, MIGRATIONS, PAGE_SIZE, RETIRED, SCHEMA_VERSION, envelope, legacy_envelope,
};
use crate::thread::{self, Op, Thread};
use crate::{activity, browse};

/// A job's columns, in the order [`job_from_row_at`] reads them.
pub(crate) const JOB_COLUMNS: &str = "id, queue, listener, event, payload, attempt, max_tries, available_at, first_enqueued_at, last_error, event_id, occurred_at, metadata";

/// A failed job's columns, in the order [`failed_from_row`] reads them.
pub(crate) const FAILED_COLUMNS: &str = "id, queue, listener, event, payload, error, attempts, max_tries, first_enqueued_at, failed_at, event_id, occurred_at, metadata";

/// How long a caller polls for its reply, yielding to its runtime between
/// polls, before it waits to be woken (see `SqliteBackend::send`).
const REPLY_SPIN: Duration = Duration::from_micros(40);

/// How long an operation waits for another process's write lock.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The WAL is truncated to this size when it is reset (`journal_size_limit`),
/// so a burst of writes does not leave a large file behind.
const JOURNAL_SIZE_LIMIT: i64 = 16 * 1024 * 1024;

/// How SQLite syncs the file to disk (`PRAGMA synchronous`), chosen with
/// `sqlite://path?synchronous=full|normal|off`. In WAL mode:
///
/// - [`Normal`](Synchronous::Normal) (the default): the WAL is synced at
///   each checkpoint, not at each commit. A crash of the program loses
///   nothing; a power loss or an operating-system crash may lose the last
///   transactions committed before it (jobs enqueued, acks, claims), never
///   corrupt the file.
/// - [`Full`](Synchronous::Full): the WAL is synced at every commit: a
///   committed transaction survives a power loss too, at the price of one
///   disk sync per commit (group commit shares it among concurrent writes).
/// - [`Off`](Synchronous::Off): SQLite never syncs: a power loss may
///   corrupt the file. For scratch queues only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Synchronous {
    /// `PRAGMA synchronous = OFF`.
    Off,
    /// `PRAGMA synchronous = NORMAL`: the default.
    #[default]
    Normal,
    /// `PRAGMA synchronous = FULL`.
    Full,
}

impl Synchronous {
    /// The pragma's value: `OFF`, `NORMAL` or `FULL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Synchronous::Off => "OFF",
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

impl FromStr for Synchronous {
    type Err = String;

    /// `off`, `normal` or `full`, in any case.
    fn from_str(value: &str) -> Result<Synchronous, String> {
        match value.to_ascii_lowercase().as_str() {
            "off" => Ok(Synchronous::Off),
            "normal" => Ok(Synchronous::Normal),
            "full" => Ok(Synchronous::Full),
            _ => Err(format!(
                "`synchronous={value}` is not a level SQLite knows here: use `full`, `normal` (the default) or `off`"
            )),
        }
    }
}

/// How to open a SQLite queue file.
///
/// ```
/// use events_sqlite::{SqliteOptions, Synchronous};
///
/// let options = SqliteOptions::new().synchronous(Synchronous::Full);
/// assert_eq!(options.synchronous_level(), Synchronous::Full);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteOptions {
    synchronous: Synchronous,
}

impl SqliteOptions {
    /// The defaults: `synchronous = NORMAL`.
    pub fn new() -> SqliteOptions {
        SqliteOptions::default()
    }

    /// Sets how SQLite syncs the file: see [`Synchronous`].
    pub fn synchronous(mut self, level: Synchronous) -> SqliteOptions {
        self.synchronous = level;
        self
    }

    /// The `synchronous` level chosen.
    pub fn synchronous_level(&self) -> Synchronous {
        self.synchronous
    }
}

/// The SQLite backend. Open it with [`SqliteBackend::open`], or a [`Queue`]
/// over it with [`SqliteBackend::queue`] or
/// `events::queue::connect("sqlite://path")`.
///
/// Each handle runs two threads, one per connection: a writer, which runs
/// the writes waiting at one time in one transaction (group commit), and a
/// reader. Operations are sent to them and awaited, so none blocks the
/// async runtime. An operation whose future is dropped after it was sent
/// still runs (a claim made so is handed back when its lease lapses). The
/// threads end when the handle is dropped.
pub struct SqliteBackend {
    db: Arc<Db>,
    /// Wakes workers in this process when this handle enqueues; workers in
    /// other processes find new jobs at their next poll.
    wake: Notify,
}

/// One opened database: its two connection threads. A queue handle owns
/// one; an event store opened on the queue ([`SqliteStore::on_queue`](crate::SqliteStore::on_queue))
/// shares it, so the two write through one connection and one
/// transaction can hold an append and its jobs.
pub(crate) struct Db {
    /// The file, as given (for messages).
    pub(crate) path: String,
    /// The file's canonical path, to tell whether two handles opened one
    /// database (`None` when it could not be resolved).
    pub(crate) canonical: Option<std::path::PathBuf>,
    // The writer is dropped (and joined) first: its last commit lands
    // before the reader closes.
    writer: Thread,
    reader: Thread,
}

/// Why an operation sent to a connection's thread failed.
pub(crate) enum Failure {
    /// SQLite said no.
    Sqlite(rusqlite::Error),
    /// The thread is gone.
    Stopped,
}

impl Failure {
    /// As the queue reports it.
    pub(crate) fn into_queue_error(self, path: &str) -> QueueError {
        match self {
            Failure::Sqlite(source) => SqliteError::Sqlite {
                path: path.to_owned(),
                source,
            },
            Failure::Stopped => SqliteError::Stopped {
                path: path.to_owned(),
            },
        }
        .into()
    }
}

impl Db {
    /// Opens the database at `path`: the writer (WAL, schema), then the
    /// reader.
    pub(crate) fn open(path: &Path, options: &SqliteOptions) -> Result<Db, SqliteError> {
        let name = path.display().to_string();
        let synchronous = options.synchronous;
        let writer = spawn(
            path,
            &name,
            "events-sqlite-writer",
            thread::writer,
            move |path, name| open_writer(path, name, synchronous),
        )?;
        // The reader opens once the writer has made the file WAL and its
        // schema current.
        let reader = spawn(
            path,
            &name,
            "events-sqlite-reader",
            thread::reader,
            open_reader,
        )?;
        Ok(Db {
            canonical: std::fs::canonicalize(path).ok(),
            path: name,
            writer,
            reader,
        })
    }

    /// Whether `self` and `other` are one database file.
    pub(crate) fn same_file(&self, other: &Db) -> bool {
        std::ptr::eq(self, other)
            || matches!((&self.canonical, &other.canonical), (Some(a), Some(b)) if a == b)
    }

    /// Runs `f` on the writer thread: see `SqliteBackend::write`.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, Failure>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        send(&self.writer, f).await
    }

    /// Runs a read on the reader thread.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, Failure>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        send(&self.reader, f).await
    }
}

/// Sends `f` to `to` and awaits its result.
async fn send<T, F>(to: &Thread, f: F) -> Result<T, Failure>
where
    T: Send + 'static,
    F: FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
{
    let (op, mut reply) = thread::call(f);
    to.send(op).map_err(|_| Failure::Stopped)?;
    // Most operations take some tens of microseconds. Poll for the
    // reply for a moment, yielding to the runtime between polls (its
    // other tasks run meanwhile; nothing blocks), before waiting to be
    // woken: waking a parked runtime thread costs about as much again.
    let until = Instant::now() + REPLY_SPIN;
    while Instant::now() < until {
        match reply.try_recv() {
            Ok(result) => return result.map_err(Failure::Sqlite),
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                return Err(Failure::Stopped);
            }
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {
                tokio::task::yield_now().await;
            }
        }
    }
    match reply.await {
        Ok(result) => result.map_err(Failure::Sqlite),
        Err(_) => Err(Failure::Stopped),
    }
}

impl SqliteBackend {
    /// Opens (creating and migrating when needed) the database at `path`,
    /// with the default [`SqliteOptions`]. The file is opened on the
    /// backend's own thread; this call waits for it, so from async code
    /// prefer `events::queue::connect`, which waits without blocking.
    pub fn open(path: &Path) -> Result<SqliteBackend, QueueError> {
        SqliteBackend::open_with(path, &SqliteOptions::default())
    }

    /// Opens the database at `path` with `options`: [`SqliteBackend::open`].
    pub fn open_with(path: &Path, options: &SqliteOptions) -> Result<SqliteBackend, QueueError> {
        Ok(SqliteBackend {
            db: Arc::new(Db::open(path, options)?),
            wake: Notify::new(),
        })
    }

    /// The database this handle runs on, for an event store sharing it.
    pub(crate) fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// Wakes this process's workers waiting on this handle: jobs were
    /// written to its file (by an event store appending with jobs).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// A [`Queue`] over the SQLite file at `path` (created and migrated
    /// when needed), with the URL `sqlite://{path}`.
    pub fn queue(path: impl AsRef<Path>) -> Result<Queue, QueueError> {
        SqliteBackend::queue_with(path, &SqliteOptions::default())
    }

    /// A [`Queue`] over the SQLite file at `path`, opened with `options`.
    pub fn queue_with(
        path: impl AsRef<Path>,
        options: &SqliteOptions,
    ) -> Result<Queue, QueueError> {
        let path = path.as_ref();
        let backend = SqliteBackend::open_with(path, options)?;
        let mut url = format!("sqlite://{}", path.display());
        if options.synchronous != Synchronous::default() {
            url.push_str("?synchronous=");
            url.push_str(&options.synchronous.as_str().to_ascii_lowercase());
        }
        Ok(Queue::with_backend(&url, backend))
    }

    /// Runs `f` on the writer thread, in a `BEGIN IMMEDIATE` transaction
    /// it may share with other writes waiting at the same time, and returns
    /// its result once committed. When `f` fails, nothing it did is kept
    /// and the writes it was grouped with run again without it; so `f` may
    /// run more than once, each time in a fresh transaction.
    async fn write<T, F>(&self, f: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.db
            .write(f)
            .await
            .map_err(|failure| failure.into_queue_error(&self.db.path))
    }

    /// Runs a read on the reader thread.
    async fn read<T, F>(&self, f: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.db
            .read(f)
            .await
            .map_err(|failure| failure.into_queue_error(&self.db.path))
    }
}

/// Starts a thread named `role` that opens its connection with `open` and
/// then serves operations with `serve`; waits until the connection is open
/// (or failed to), and returns the channel to send it operations.
fn spawn(
    path: &Path,
    name: &str,
    role: &str,
    serve: fn(Connection, mpsc::Receiver<Box<dyn Op>>),
    open: impl FnOnce(&Path, &str) -> Result<Connection, SqliteError> + Send + 'static,
) -> Result<Thread, SqliteError> {
    let (sender, ops) = mpsc::channel();
    let (opened, is_open) = mpsc::sync_channel(1);
    let (path, thread_name) = (path.to_owned(), name.to_owned());
    let handle = std::thread::Builder::new()
        .name(role.to_owned())
        .spawn(move || match open(&path, &thread_name) {
            Ok(connection) => {
                let _ = opened.send(Ok(()));
                serve(connection, ops);
            }
            Err(error) => {
                let _ = opened.send(Err(error));
            }
        })
        .map_err(|source| SqliteError::Thread {
            path: name.to_owned(),
            source,
        })?;
    match is_open.recv() {
        Ok(Ok(())) => Ok(Thread::new(sender, handle)),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(SqliteError::Stopped {
            path: name.to_owned(),
        }),
    }
}

/// Runs `step` again while SQLite answers "database is locked" without
/// having waited for it (switching a new file to WAL takes its lock without
/// calling the busy handler: two processes opening one new file at once
/// would fail about once in a hundred), for up to the busy timeout.
fn retry_busy<T>(mut step: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        match step() {
            Err(error)
                if matches!(
                    error.sqlite_error_code(),
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                ) && Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            result => return result,
        }
    }
}

/// Settings both connections take: the busy timeout, and the query
/// planner's stability guarantee (`SQLITE_DBCONFIG_ENABLE_QPSG`). Without
/// it SQLite recompiles a cached statement each time a new value is bound
/// to a parameter it may plan by (`LIMIT ?`, or `queue = ?` beside an
/// `ORDER BY`): the claim was compiled afresh at every call, which cost
/// more than running it. Its plans do not depend on the values.
fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// The writer's connection: WAL, the `synchronous` level, the WAL size
/// limit, and the schema migrated when it is not current.
fn open_writer(
    path: &Path,
    name: &str,
    synchronous: Synchronous,
) -> Result<Connection, SqliteError> {
    let err = |source| SqliteError::Sqlite {
        path: name.to_owned(),
        source,
    };
    let connection = Connection::open(path).map_err(err)?;
    configure(&connection).map_err(err)?;
    // Only a file without tables yet takes it; others keep theirs.
    connection
        .pragma_update(None, "page_size", PAGE_SIZE)
        .map_err(err)?;
    let mode = retry_busy(|| {
        let mode: String = connection.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
        if mode.eq_ignore_ascii_case("wal") {
            return Ok(mode);
        }
        connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
    })
    .map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(SqliteError::NoWal {
            path: name.to_owned(),
            mode,
        });
    }
    connection
        .pragma_update(None, "synchronous", synchronous.as_str())
        .map_err(err)?;
    connection
        .pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
        .map_err(err)?;
    migrate(&connection, name)?;
    Ok(connection)
}

/// The reader's connection.
fn open_reader(path: &Path, name: &str) -> Result<Connection, SqliteError> {
    let err = |source| SqliteError::Sqlite {
        path: name.to_owned(),
        source,
    };
    let connection = Connection::open(path).map_err(err)?;
    configure(&connection).map_err(err)?;
    // Listings compile one statement per combination of filters.
    connection.set_prepared_statement_cache_capacity(64);
    Ok(connection)
}

/// Brings the schema to [`SCHEMA_VERSION`] and creates the
/// [`ADDITIONS`] it lacks. A file already there with all of them is only
/// read: no write lock, so opening it never waits on another process's
/// writes.
fn migrate(connection: &Connection, name: &str) -> Result<(), SqliteError> {
    let err = |source| SqliteError::Sqlite {
        path: name.to_owned(),
        source,
    };
    let too_new = |found| SqliteError::SchemaTooNew {
        path: name.to_owned(),
        found,
        supported: SCHEMA_VERSION,
    };
    let version = |connection: &Connection| {
        connection.query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0))
    };
    let found = retry_busy(|| version(connection)).map_err(err)?;
    if found > SCHEMA_VERSION {
        return Err(too_new(found));
    }
    if found == SCHEMA_VERSION && retry_busy(|| has_additions(connection)).map_err(err)? {
        return Ok(());
    }
    // Another process may be migrating too: look again under the lock.
    retry_busy(|| connection.execute_batch("BEGIN IMMEDIATE")).map_err(err)?;
    let result = (|| {
        let found = version(connection)?;
        if found > SCHEMA_VERSION {
            return Ok(Err(found));
        }
        for (to, sql) in MIGRATIONS.iter().filter(|(to, _)| *to > found) {
            connection.execute_batch(sql)?;
            connection.pragma_update(None, "user_version", to)?;
        }
        for (_, sql) in ADDITIONS {
            connection.execute_batch(sql)?;
        }
        connection.execute_batch("COMMIT")?;
        Ok(Ok(()))
    })();
    if !connection.is_autocommit() {
        let _ = connection.execute_batch("ROLLBACK");
    }
    result.map_err(err)?.map_err(too_new)
}

/// Whether the file holds every table and index of [`ADDITIONS`], and
/// none of the [`RETIRED`] ones.
fn has_additions(connection: &Connection) -> rusqlite::Result<bool> {
    let mut present = connection.prepare("SELECT 1 FROM sqlite_master WHERE name = ?1")?;
    for (name, _) in ADDITIONS {
        if !present.exists(params![name])? {
            return Ok(false);
        }
    }
    for name in RETIRED {
        if present.exists(params![name])? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Why a job's row could not be read, in words, naming the column.
pub(crate) fn unreadable(error: &rusqlite::Error) -> String {
    let what = column_problem(JOB_COLUMNS, error);
    format!("its stored row cannot be read, so it cannot run: {what}")
}

/// What is wrong with a row read by a statement selecting `columns`
/// (comma-separated, in order), in words naming the column.
pub(crate) fn column_problem(columns: &str, error: &rusqlite::Error) -> String {
    let column = |index: usize| columns.split(", ").nth(index).unwrap_or("?").to_owned();
    match error {
        rusqlite::Error::FromSqlConversionFailure(index, kind, cause) => {
            format!(
                "column `{}` ({kind}) cannot be read: {cause}",
                column(*index)
            )
        }
        rusqlite::Error::IntegralValueOutOfRange(index, value) => {
            format!("column `{}` holds {value}, out of range", column(*index))
        }
        rusqlite::Error::InvalidColumnType(index, _, kind) => {
            format!("column `{}` holds a value of type {kind}", column(*index))
        }
        rusqlite::Error::Utf8Error(index, cause) => {
            format!("column `{}` is not valid UTF-8: {cause}", column(*index))
        }
        other => other.to_string(),
    }
}

/// A column's text, with bytes that are not UTF-8 replaced (`U+FFFD`): the
/// failed store lists every row, whatever it holds.
pub(crate) fn lossy_text(row: &Row<'_>, index: usize) -> rusqlite::Result<String> {
    Ok(match row.get_ref(index)? {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            String::from_utf8_lossy(bytes).into_owned()
        }
        ValueRef::Integer(n) => n.to_string(),
        ValueRef::Real(x) => x.to_string(),
        ValueRef::Null => String::new(),
    })
}

/// A column's integer, 0 when it is not one.
pub(crate) fn lossy_int(row: &Row<'_>, index: usize) -> rusqlite::Result<i64> {
    Ok(match row.get_ref(index)? {
        ValueRef::Integer(n) => n,
        _ => 0,
    })
}

/// A column's count, clamped to `u32` (a negative one reads as 0).
pub(crate) fn lossy_count(row: &Row<'_>, index: usize) -> rusqlite::Result<u32> {
    let n = lossy_int(row, index)?;
    Ok(u32::try_from(n.max(0)).unwrap_or(u32::MAX))
}

/// A failed job read back leniently: the failed store also holds rows that
/// went there because they could not be read as jobs.
pub(crate) fn failed_from_row(row: &Row<'_>) -> rusqlite::Result<FailedJob> {
    let id = lossy_text(row, 0)?;
    let first_enqueued_at = lossy_int(row, 8)?;
    let envelope = envelope(row, 10, &id, first_enqueued_at)
        .unwrap_or_else(|_| legacy_envelope(&id, first_enqueued_at));
    let mut failed = FailedJob::from_parts(
        id,
        lossy_text(row, 1)?,
        lossy_text(row, 2)?,
        lossy_text(row, 3)?,
        lossy_text(row, 4)?,
        lossy_text(row, 5)?,
        envelope,
    );
    failed.attempts = lossy_count(row, 6)?;
    failed.max_tries = lossy_count(row, 7)?.max(1);
    failed.first_enqueued_at = from_millis(first_enqueued_at);
    failed.failed_at = from_millis(lossy_int(row, 9)?);
    Ok(failed)
}

/// Metadata as stored: a JSON object, or NULL when there is none (most
/// events), which costs neither the encoding nor, on reading, the parse.
fn metadata_json(metadata: &Metadata) -> Option<String> {
    (!metadata.is_empty()).then(|| metadata.to_json())
}

/// How many jobs one multi-row `INSERT` of [`insert_jobs`] stores.
const INSERT_ROWS: usize = 32;

/// The `INSERT` of `rows` jobs at once, each unless one with its id is
/// waiting, claimed or failed (or came earlier in the same statement).
fn insert_sql(rows: usize) -> String {
    let row = format!("({})", vec!["?"; 13].join(", "));
    let values = vec![row.as_str(); rows].join(", ");
    format!(
        "INSERT INTO events_jobs (id, queue, listener, event, payload, attempt, max_tries, available_at,
                                  first_enqueued_at, last_error, reserved, ready_at, event_id, occurred_at,
                                  metadata)
         SELECT column1, column2, column3, column4, column5, column6, column7, column8, column9,
                column10, 0, column8, column11, column12, column13
         FROM (VALUES {values})
         WHERE NOT EXISTS (SELECT 1 FROM events_failed_jobs WHERE id = column1)
         ON CONFLICT (id) DO NOTHING"
    )
}

/// Stores jobs, each unless one with its id is waiting, claimed or failed.
/// [`INSERT_ROWS`] at a time while there are as many, then one at a time:
/// one statement per row cost SQLite a statement journal and a statement's
/// setup per row (about half the time of an `enqueue_many` of 100).
pub(crate) fn insert_jobs(tx: &Connection, jobs: &[Job]) -> rusqlite::Result<()> {
    let mut chunks = jobs.chunks_exact(INSERT_ROWS);
    if chunks.len() > 0 {
        let mut insert = tx.prepare_cached(&insert_sql(INSERT_ROWS))?;
        for chunk in &mut chunks {
            for (at, job) in chunk.iter().enumerate() {
                bind_job(&mut insert, at * 13, job)?;
            }
            insert.raw_execute()?;
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut insert = tx.prepare_cached(&insert_sql(1))?;
        for job in rest {
            bind_job(&mut insert, 0, job)?;
            insert.raw_execute()?;
        }
    }
    Ok(())
}

/// Binds a job's 13 values to parameters `from + 1 ..= from + 13`, in
/// [`insert_sql`]'s order.
fn bind_job(insert: &mut rusqlite::Statement<'_>, from: usize, job: &Job) -> rusqlite::Result<()> {
    insert.raw_bind_parameter(from + 1, &job.id)?;
    insert.raw_bind_parameter(from + 2, &job.queue)?;
    insert.raw_bind_parameter(from + 3, &job.listener)?;
    insert.raw_bind_parameter(from + 4, &job.event)?;
    insert.raw_bind_parameter(from + 5, &job.payload)?;
    insert.raw_bind_parameter(from + 6, job.attempt)?;
    insert.raw_bind_parameter(from + 7, job.max_tries)?;
    insert.raw_bind_parameter(from + 8, millis(job.available_at))?;
    insert.raw_bind_parameter(from + 9, millis(job.first_enqueued_at))?;
    insert.raw_bind_parameter(from + 10, &job.last_error)?;
    insert.raw_bind_parameter(from + 11, job.envelope.id.to_string())?;
    insert.raw_bind_parameter(from + 12, millis(job.envelope.occurred_at))?;
    insert.raw_bind_parameter(from + 13, metadata_json(&job.envelope.metadata))?;
    Ok(())
}

/// Moves the job row `seq` to the failed store with `error`, as stored
/// (nothing is decoded, so a row that cannot be read moves whole). Returns
/// whether there was such a row.
fn move_to_failed(
    tx: &Connection,
    seq: i64,
    error: &str,
    now: SystemTime,
) -> rusqlite::Result<bool> {
    let moved = tx
        .prepare_cached(&format!(
            "INSERT INTO events_failed_jobs ({FAILED_COLUMNS})
             SELECT id, queue, listener, event, payload, ?2, attempt, max_tries, first_enqueued_at, ?3,
                    event_id, occurred_at, metadata
             FROM events_jobs WHERE seq = ?1
             ON CONFLICT (id) DO UPDATE SET error = excluded.error, attempts = excluded.attempts,
                                            failed_at = excluded.failed_at"
        ))?
        .execute(params![seq, error, millis(now)])?;
    tx.prepare_cached("DELETE FROM events_jobs WHERE seq = ?1")?
        .execute(params![seq])?;
    Ok(moved == 1)
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
        insert_jobs(tx, std::slice::from_ref(&job))?;
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

/// Deletes the job `id` done under `attempt`; whether it was still held.
fn ack_row(tx: &Connection, id: &str, attempt: u32) -> rusqlite::Result<bool> {
    tx.prepare_cached("DELETE FROM events_jobs WHERE id = ?1 AND attempt = ?2 AND reserved = 1")?
        .execute(params![id, attempt])
        .map(|n| n == 1)
}

/// The jobs a claim takes from one queue: due (waiting and ready, or a
/// lease lapsed), the earliest first, in the order of the index
/// `events_jobs_due` (`queue, ready_at, reserved`), so SQLite sorts
/// nothing.
const CLAIM_SELECT: &str = "SELECT seq, id, queue, listener, event, payload, attempt, max_tries, available_at, first_enqueued_at, last_error, event_id, occurred_at, metadata
     FROM events_jobs WHERE queue = ?1 AND ready_at <= ?2 ORDER BY ready_at, reserved, seq LIMIT ?3";

/// Claims up to `limit` jobs from `queues`, in their order. A row that
/// cannot be read as a job goes to the failed store with the reason, and
/// the claim takes another in its place.
fn claim(
    tx: &Connection,
    queues: &[String],
    limit: usize,
    lease: i64,
) -> rusqlite::Result<Vec<Job>> {
    // Read the clock once the write lock is held: time spent waiting for it
    // must not shorten the lease.
    let now = SystemTime::now();
    let at = millis(now);
    let until = at.saturating_add(lease);
    let mut claimed = Vec::new();
    for queue in queues {
        loop {
            let room = limit.saturating_sub(claimed.len());
            if room == 0 {
                return Ok(claimed);
            }
            // A SELECT of the rows due, then an UPDATE of each by its key:
            // within the write transaction nothing can come between, and it
            // costs a fraction of one `UPDATE .. WHERE seq IN (SELECT ..)
            // RETURNING` (whose subquery and RETURNING each build a
            // temporary table, measured at 5x the time per claim).
            let mut select = tx.prepare_cached(CLAIM_SELECT)?;
            let mut rows: Vec<(i64, Result<Job, String>)> = select
                .query_map(params![queue, at, room as i64], |row| {
                    let seq: i64 = row.get(0)?;
                    let job = job_from_row_at(row, 1).map_err(|error| unreadable(&error));
                    Ok((seq, job))
                })?
                .collect::<rusqlite::Result<_>>()?;
            drop(select);
            let mut take =
                tx.prepare_cached("UPDATE events_jobs SET attempt = attempt + 1, reserved = 1, ready_at = ?1 WHERE seq = ?2")?;
            for (seq, job) in &mut rows {
                take.execute(params![until, *seq])?;
                // As the row now holds it (a count past `u32` cannot be read).
                if let Ok(read) = job {
                    match read.attempt.checked_add(1) {
                        Some(attempt) => read.attempt = attempt,
                        None => {
                            *job = Err(unreadable(&rusqlite::Error::IntegralValueOutOfRange(
                                5,
                                i64::from(u32::MAX) + 1,
                            )))
                        }
                    }
                }
            }
            drop(take);
            let taken = rows.len();
            // Oldest first.
            rows.sort_by_key(|(seq, job)| (job.as_ref().ok().map(|job| job.available_at), *seq));
            let mut bad = 0;
            for (seq, job) in rows {
                match job {
                    Ok(job) => claimed.push(job),
                    Err(reason) => {
                        tracing::error!(seq, %reason, "a job row cannot be read; it goes to the failed store");
                        move_to_failed(tx, seq, &reason, now)?;
                        bad += 1;
                    }
                }
            }
            if bad == 0 || taken < room {
                break;
            }
        }
    }
    Ok(claimed)
}

/// A claimed job read back from its row, whose job columns (in
/// [`JOB_COLUMNS`] order) start at `base`, strictly: a column that does not
/// convert fails the row (see [`unreadable`]); its index in the error is
/// the column's in [`JOB_COLUMNS`].
pub(crate) fn job_from_row_at(row: &Row<'_>, base: usize) -> rusqlite::Result<Job> {
    let shift = |error: rusqlite::Error| match error {
        rusqlite::Error::FromSqlConversionFailure(i, kind, cause) => {
            rusqlite::Error::FromSqlConversionFailure(i.saturating_sub(base), kind, cause)
        }
        rusqlite::Error::IntegralValueOutOfRange(i, value) => {
            rusqlite::Error::IntegralValueOutOfRange(i.saturating_sub(base), value)
        }
        rusqlite::Error::InvalidColumnType(i, name, kind) => {
            rusqlite::Error::InvalidColumnType(i.saturating_sub(base), name, kind)
        }
        rusqlite::Error::Utf8Error(i, cause) if i >= base => {
            rusqlite::Error::Utf8Error(i - base, cause)
        }
        other => other,
    };
    let id: String = row.get(base).map_err(shift)?;
    let first_enqueued_at: i64 = row.get(base + 8).map_err(shift)?;
    let envelope = envelope(row, base + 10, &id, first_enqueued_at).map_err(shift)?;
    let mut job = Job::from_parts(
        id,
        row.get::<_, String>(base + 1).map_err(shift)?,
        row.get::<_, String>(base + 2).map_err(shift)?,
        row.get::<_, String>(base + 3).map_err(shift)?,
        row.get::<_, String>(base + 4).map_err(shift)?,
        envelope,
    );
    job.attempt = row.get(base + 5).map_err(shift)?;
    job.max_tries = row.get(base + 6).map_err(shift)?;
    job.available_at = from_millis(row.get(base + 7).map_err(shift)?);
    job.first_enqueued_at = from_millis(first_enqueued_at);
    job.last_error = row.get(base + 9).map_err(shift)?;
    Ok(job)
}

#[async_trait]
impl Backend for SqliteBackend {
    /// The [`SqliteBackend`] itself, so an event store on the same file
    /// ([`SqliteStore`](crate::SqliteStore)) appends and enqueues in one
    /// transaction.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    async fn enqueue_many(&self, jobs: Vec<Job>) -> Result<(), QueueError> {
        jobs.iter().try_for_each(Job::validate)?;
        // One transaction: a job SQLite refuses rolls back the whole batch.
        // The jobs are shared, not moved, so they are freed here, on the
        // caller's thread.
        let jobs = Arc::new(jobs);
        let shared = jobs.clone();
        self.write(move |tx| insert_jobs(tx, &shared)).await?;
        drop(jobs);
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
        let queues = queues.to_vec();
        self.write(move |tx| claim(tx, &queues, limit, lease)).await
    }

    async fn extend(&self, id: &str, attempt: u32, lease: Duration) -> Result<bool, QueueError> {
        let id = id.to_owned();
        self.write(move |tx| {
            let until = millis(later(SystemTime::now(), lease));
            tx.prepare_cached(
                "UPDATE events_jobs SET ready_at = ?1 WHERE id = ?2 AND attempt = ?3 AND reserved = 1",
            )?
            .execute(params![until, id, attempt])
            .map(|n| n == 1)
        })
        .await
    }

    async fn ack(&self, id: &str, attempt: u32) -> Result<bool, QueueError> {
        let id = id.to_owned();
        self.write(move |tx| ack_row(tx, &id, attempt)).await
    }

    /// Both in one write transaction (one commit for the two), so a worker
    /// pays one transaction per job besides its enqueue. Should that write
    /// fail, the ack and the claim are tried again apart, so each result is
    /// what its own call would have given.
    async fn ack_and_claim(
        &self,
        id: &str,
        attempt: u32,
        queues: &[String],
        limit: usize,
        lease: Duration,
    ) -> (Result<bool, QueueError>, Result<Vec<Job>, QueueError>) {
        let millis_lease = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let (owned_id, owned_queues) = (id.to_owned(), queues.to_vec());
        let both = self
            .write(move |tx| {
                let acked = ack_row(tx, &owned_id, attempt)?;
                let claimed = claim(tx, &owned_queues, limit, millis_lease)?;
                Ok((acked, claimed))
            })
            .await;
        match both {
            Ok((acked, claimed)) => (Ok(acked), Ok(claimed)),
            Err(_) => (
                self.ack(id, attempt).await,
                self.claim(queues, limit, lease).await,
            ),
        }
    }

    async fn release(
        &self,
        id: &str,
        attempt: u32,
        delay: Duration,
        error: &str,
    ) -> Result<bool, QueueError> {
        let at = millis(later(SystemTime::now(), delay));
        let (id, error) = (id.to_owned(), error.to_owned());
        let released = self
            .write(move |tx| {
                tx.prepare_cached(
                    "UPDATE events_jobs SET reserved = 0, available_at = ?1, ready_at = ?1, last_error = ?2
                     WHERE id = ?3 AND attempt = ?4 AND reserved = 1",
                )?
                .execute(params![at, error, id, attempt])
                .map(|n| n == 1)
            })
            .await?;
        self.wake.notify_one();
        Ok(released)
    }

    async fn abandon(&self, id: &str, attempt: u32, delay: Duration) -> Result<bool, QueueError> {
        let at = millis(later(SystemTime::now(), delay));
        let id = id.to_owned();
        let abandoned = self
            .write(move |tx| {
                // Handed back at once, it keeps its place: it is ready again as
                // of its `available_at`, ahead of jobs enqueued after it. Put
                // off, it becomes available when the delay ends.
                tx.prepare_cached(
                    "UPDATE events_jobs SET reserved = 0, attempt = attempt - 1,
                            ready_at = CASE WHEN ?2 THEN ?1 ELSE available_at END,
                            available_at = CASE WHEN ?2 THEN ?1 ELSE available_at END
                     WHERE id = ?3 AND attempt = ?4 AND reserved = 1",
                )?
                .execute(params![at, !delay.is_zero(), id, attempt])
                .map(|n| n == 1)
            })
            .await?;
        self.wake.notify_one();
        Ok(abandoned)
    }

    async fn fail(&self, id: &str, attempt: u32, error: &str) -> Result<bool, QueueError> {
        let (id, error) = (id.to_owned(), error.to_owned());
        self.write(move |tx| {
            let seq = tx
                .prepare_cached(
                    "SELECT seq FROM events_jobs WHERE id = ?1 AND attempt = ?2 AND reserved = 1",
                )?
                .query_map(params![id, attempt], |row| row.get::<_, i64>(0))?
                .next()
                .transpose()?;
            match seq {
                Some(seq) => move_to_failed(tx, seq, &error, SystemTime::now()),
                None => Ok(false),
            }
        })
        .await
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
        .await
    }

    async fn retry(&self, id: &str) -> Result<Option<String>, QueueError> {
        let id = id.to_owned();
        let retried = self
            .write(move |tx| retry_failed(tx, Some(&id), SystemTime::now()))
            .await?;
        self.wake.notify_one();
        Ok(retried.into_iter().next())
    }

    async fn retry_all(&self) -> Result<usize, QueueError> {
        let retried = self
            .write(|tx| retry_failed(tx, None, SystemTime::now()))
            .await?;
        self.wake.notify_one();
        Ok(retried.len())
    }

    async fn clear(&self, queue: &str) -> Result<usize, QueueError> {
        let queue = queue.to_owned();
        self.write(move |tx| clear_queue(tx, &queue)).await
    }

    async fn forget(&self, id: &str) -> Result<bool, QueueError> {
        let id = id.to_owned();
        self.write(move |tx| {
            tx.prepare_cached("DELETE FROM events_failed_jobs WHERE id = ?1")?
                .execute(params![id])
                .map(|n| n == 1)
        })
        .await
    }

    async fn flush_failed(&self) -> Result<usize, QueueError> {
        self.write(|tx| tx.execute("DELETE FROM events_failed_jobs", []))
            .await
    }

    async fn stats(&self) -> Result<Vec<QueueStats>, QueueError> {
        let now = millis(SystemTime::now());
        self.read(move |connection| {
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
                    let mut stats = QueueStats::new(lossy_text(row, 0)?);
                    stats.pending = row.get::<_, i64>(1)? as usize;
                    stats.delayed = row.get::<_, i64>(2)? as usize;
                    stats.reserved = row.get::<_, i64>(3)? as usize;
                    stats.failed = row.get::<_, i64>(4)? as usize;
                    Ok(stats)
                })?
                .collect()
        })
        .await
    }

    /// Read on the reader thread in one read transaction, so the total
    /// and the page agree; see [`crate::browse`] for how each filter is
    /// served.
    async fn jobs(&self, query: &JobQuery) -> Result<JobPage, QueueError> {
        let query = query.clone();
        self.read(move |connection| browse::jobs(connection, &query, SystemTime::now()))
            .await
    }

    /// By the unique index on `id` of the jobs table, then of the failed
    /// store.
    async fn job(&self, id: &str) -> Result<Option<JobView>, QueueError> {
        let id = id.to_owned();
        self.read(move |connection| browse::job(connection, &id, SystemTime::now()))
            .await
    }

    /// One write, grouped with others by the writer thread.
    async fn report(&self, report: &ActivityReport) -> Result<(), QueueError> {
        let report = Arc::new(report.clone());
        let shared = report.clone();
        self.write(move |tx| activity::store(tx, &shared, SystemTime::now()))
            .await?;
        drop(report);
        Ok(())
    }

    async fn activity(&self, since: SystemTime) -> Result<Activity, QueueError> {
        self.read(move |connection| activity::read(connection, since, SystemTime::now()))
            .await
    }

    async fn wait(&self, max: Duration) {
        // The next job or lease that comes due later: jobs due already were
        // just offered to the claim (or belong to queues this worker skips).
        let now = millis(SystemTime::now());
        let next = self
            .read(move |connection| {
                connection
                    .prepare_cached("SELECT MIN(ready_at) FROM events_jobs WHERE ready_at > ?1")?
                    .query_row(params![now], |row| row.get::<_, Option<i64>>(0))
            })
            .await;
        let wait = match next {
            Ok(Some(at)) => Duration::from_millis(u64::try_from(at - now).unwrap_or(0)).min(max),
            _ => max,
        };
        if !wait.is_zero() {
            let _ = tokio::time::timeout(wait, self.wake.notified()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database SQLite will not write (here: `query_only`, which fails
    /// writes with SQLITE_READONLY as a read-only file does) cannot heal by
    /// retrying: the claim's error says so, and a worker stops at its first
    /// failed claim instead of retrying five times with growing pauses.
    #[tokio::test]
    async fn a_read_only_database_stops_the_worker_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let backend = SqliteBackend::open(&dir.path().join("queue.sqlite")).unwrap();
        let job = Job::from_parts("job-1", "a", "l", "e", "{}", events_core::Envelope::new());
        backend.enqueue(job).await.unwrap();
        backend
            .write(|connection| connection.pragma_update(None, "query_only", true))
            .await
            .unwrap();
        let error = backend
            .claim(&["a".to_owned()], 1, Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(error.is_permanent(), "{error:?}");
        assert!(matches!(
            error,
            QueueError::Unrecoverable {
                backend: "sqlite",
                ..
            }
        ));

        let queue = Queue::with_backend("sqlite://read-only", backend);
        let started = Instant::now();
        let error = events_core::Worker::new(queue)
            .queues(["a"])
            .poll_interval(Duration::from_millis(500))
            .run_until_empty()
            .await
            .unwrap_err();
        assert!(error.is_permanent(), "{error:?}");
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "the worker retried a claim that cannot succeed for {:?}",
            started.elapsed()
        );
    }

    /// Both connections plan their statements once: with the query
    /// planner's stability guarantee off, SQLite recompiled the claim at
    /// every call (a new `queue = ?` or `LIMIT ?` value), counted here with
    /// SQLite's own reprepare counter.
    #[tokio::test]
    async fn the_claim_is_compiled_once() {
        let dir = tempfile::tempdir().unwrap();
        let backend = SqliteBackend::open(&dir.path().join("queue.sqlite")).unwrap();
        for n in 0..5 {
            let job = Job::from_parts(
                format!("job-{n}"),
                "a",
                "l",
                "e",
                "{}",
                events_core::Envelope::new(),
            );
            backend.enqueue(job).await.unwrap();
        }
        let queues = ["a".to_owned(), "b".to_owned()];
        for limit in [1, 1, 2, 1] {
            backend
                .claim(&queues, limit, Duration::from_secs(30))
                .await
                .unwrap();
        }
        let (reprepared, qpsg) = backend
            .write(|connection| {
                let select = connection.prepare_cached(CLAIM_SELECT)?;
                let reprepared = select.get_status(rusqlite::StatementStatus::RePrepare);
                let qpsg = connection
                    .db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG)?;
                Ok((reprepared, qpsg))
            })
            .await
            .unwrap();
        assert!(qpsg);
        assert_eq!(
            reprepared, 0,
            "the claim was compiled again {reprepared} times"
        );
        let reader_qpsg = backend
            .read(|connection| {
                connection.db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG)
            })
            .await
            .unwrap();
        assert!(reader_qpsg);
    }

    async fn synchronous_of(backend: &SqliteBackend) -> i64 {
        backend
            .write(|connection| {
                connection.pragma_query_value(None, "synchronous", |row| row.get::<_, i64>(0))
            })
            .await
            .unwrap()
    }

    /// The writer's connection runs with the level asked for (0 OFF, 1
    /// NORMAL, 2 FULL), NORMAL by default.
    #[tokio::test]
    async fn the_writer_syncs_as_asked() {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str, options: &SqliteOptions| {
            SqliteBackend::open_with(&dir.path().join(name), options).unwrap()
        };
        let default = open("default.sqlite", &SqliteOptions::new());
        assert_eq!(synchronous_of(&default).await, 1);
        for (level, pragma) in [
            (Synchronous::Off, 0),
            (Synchronous::Normal, 1),
            (Synchronous::Full, 2),
        ] {
            let backend = open(
                &format!("{}.sqlite", level.as_str()),
                &SqliteOptions::new().synchronous(level),
            );
            assert_eq!(synchronous_of(&backend).await, pragma, "{level:?}");
        }
        let queue = Queue::open(&format!(
            "sqlite://{}?synchronous=full",
            dir.path().join("url.sqlite").display()
        ))
        .unwrap();
        assert!(queue.url().ends_with("?synchronous=full"));
    }
}
