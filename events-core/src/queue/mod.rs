//! Queues for queued listeners: the job a dispatch enqueues, the backend
//! trait every store implements, and the [`Queue`] handle.
//!
//! A job is *claimed* under a lease: the claim increments its `attempt`, and
//! that number is the fencing token. `ack`, `release`, `fail`, `extend` and
//! `abandon` name the job by id **and** attempt, so a worker whose lease lapsed
//! and whose job was claimed again cannot touch it any more. A job whose
//! worker died is claimed again once its lease lapses: delivery is
//! at-least-once, so listeners should be idempotent.

mod memory;
mod run;
mod sqlite;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::listener::QueueOptions;

pub use memory::MemoryBackend;
pub use run::{JobError, run_job};
pub(crate) use run::{JobSink, QueueTarget, job_envelope, run_job_in, run_job_with};
pub use sqlite::SqliteBackend;

/// One queued listener's run of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Unique id.
    pub id: String,
    /// The queue it waits on.
    pub queue: String,
    /// The listener's stable name: the routing key.
    pub listener: String,
    /// The event's name.
    pub event: String,
    /// The event as JSON.
    pub payload: String,
    /// Tries started so far: 0 while waiting for its first, and the fencing
    /// token of the current claim once claimed.
    pub attempt: u32,
    /// Tries allowed.
    pub max_tries: u32,
    /// When it may run.
    pub available_at: SystemTime,
    /// When it was first enqueued.
    pub first_enqueued_at: SystemTime,
    /// What the last failed try said.
    pub last_error: Option<String>,
}

impl Job {
    /// A new job for `listener`, available after the options' delay.
    pub fn new(listener: &str, event: &str, payload: String, options: &QueueOptions) -> Job {
        let now = SystemTime::now();
        Job {
            id: new_id(now),
            queue: options.queue().to_owned(),
            listener: listener.to_owned(),
            event: event.to_owned(),
            payload,
            attempt: 0,
            max_tries: options.tries(),
            available_at: later(now, options.delay()),
            first_enqueued_at: now,
            last_error: None,
        }
    }
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "job {} ({} on `{}`, try {}/{})",
            self.id, self.listener, self.event, self.attempt, self.max_tries
        )
    }
}

/// A time-ordered id, unique across processes: milliseconds since the epoch,
/// a random number drawn once per process (process ids repeat across
/// containers sharing a file), then a process-wide counter.
fn new_id(now: SystemTime) -> String {
    use std::hash::{BuildHasher, Hasher};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static PROCESS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let process = *PROCESS.get_or_init(|| {
        // `RandomState` is seeded from the OS's randomness.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.finish()
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{:012x}-{:016x}-{n:08x}", millis(now), process)
}

/// `at + wait`, saturating far in the future instead of overflowing (a
/// lease or delay of `Duration::MAX` means "never").
pub(crate) fn later(at: SystemTime, wait: Duration) -> SystemTime {
    at.checked_add(wait)
        .unwrap_or_else(|| UNIX_EPOCH + Duration::from_millis(i64::MAX as u64 / 2))
}

/// Milliseconds since the epoch (0 before it).
pub(crate) fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The time `ms` milliseconds after the epoch.
pub(crate) fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// A job that used up its tries, kept until retried or forgotten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedJob {
    /// The job's id (kept when it is retried).
    pub id: String,
    /// Its queue.
    pub queue: String,
    /// The listener's name.
    pub listener: String,
    /// The event's name.
    pub event: String,
    /// The event as JSON.
    pub payload: String,
    /// Why the last try failed, in words.
    pub error: String,
    /// Tries made.
    pub attempts: u32,
    /// Tries allowed.
    pub max_tries: u32,
    /// When it was first enqueued.
    pub first_enqueued_at: SystemTime,
    /// When it failed.
    pub failed_at: SystemTime,
}

impl FailedJob {
    pub(crate) fn from_job(job: Job, error: &str, now: SystemTime) -> FailedJob {
        FailedJob {
            id: job.id,
            queue: job.queue,
            listener: job.listener,
            event: job.event,
            payload: job.payload,
            error: error.to_owned(),
            attempts: job.attempt,
            max_tries: job.max_tries,
            first_enqueued_at: job.first_enqueued_at,
            failed_at: now,
        }
    }

    /// The job to enqueue again: its tries start over, available now, under
    /// a new id. The id and attempt together are the fencing token: with the
    /// old id kept and the attempt reset, a worker that lost the job's lease
    /// before it failed would hold a token that is valid again.
    pub(crate) fn into_job(self, now: SystemTime) -> Job {
        Job {
            id: new_id(now),
            queue: self.queue,
            listener: self.listener,
            event: self.event,
            payload: self.payload,
            attempt: 0,
            max_tries: self.max_tries,
            available_at: now,
            first_enqueued_at: self.first_enqueued_at,
            last_error: Some(self.error),
        }
    }
}

/// How many jobs one queue holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// The queue's name.
    pub queue: String,
    /// Waiting jobs, ready or delayed.
    pub pending: usize,
    /// Jobs claimed by a worker right now.
    pub reserved: usize,
    /// Jobs in the failed store.
    pub failed: usize,
}

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// Queued listeners run on a Tokio runtime when no queue is configured,
    /// and this dispatch is not on one.
    #[error(
        "queued listeners run on a Tokio runtime when no queue is configured, and this dispatch is not on one"
    )]
    NoRuntime,
    /// The queue URL is not one this build understands.
    #[error("unsupported queue URL `{url}`: expected `memory://` or `sqlite://path`")]
    UnsupportedUrl {
        /// The URL given.
        url: String,
    },
    /// SQLite said no.
    #[error("SQLite queue at `{path}`: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The SQLite database could not be put in WAL mode.
    #[error(
        "SQLite queue at `{path}`: journal mode is `{mode}` after asking for WAL; is the file on a filesystem that supports it?"
    )]
    NoWal {
        /// The database file.
        path: String,
        /// The mode SQLite reported.
        mode: String,
    },
    /// The database was written by a newer version of this library.
    #[error(
        "SQLite queue at `{path}` has schema version {found}, newer than the {supported} this build knows"
    )]
    SchemaTooNew {
        /// The database file.
        path: String,
        /// Its version.
        found: i64,
        /// The newest this build migrates to.
        supported: i64,
    },
    /// A worker's slot panicked (a bug in the worker or a backend); the
    /// jobs it held were handed back.
    #[error("a worker slot panicked: {0}")]
    WorkerPanicked(String),
    /// A stored row could not be read back.
    #[error("corrupt job row in the queue: {0}")]
    Corrupt(String),
    /// The worker cannot start: a listener it would run needs what was not
    /// given, or the registry is invalid.
    #[error("the worker cannot start: {0}")]
    Startup(crate::registry::RegistryError),
}

/// Where jobs live. Every backend passes the same conformance suite
/// (`tests/conformance.rs`); they differ only in where jobs are kept.
///
/// Fenced operations return `Ok(false)` when the job is not reserved under
/// that attempt any more: the caller lost its lease.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Stores a job, available at `job.available_at`.
    async fn enqueue(&self, job: Job) -> Result<(), QueueError>;

    /// Claims up to `limit` available jobs from `queues`, taking the first
    /// queue's before the next one's, oldest first. Jobs whose lease lapsed
    /// are available again. Each claimed job's `attempt` is incremented and
    /// it is reserved for `lease`.
    async fn claim(
        &self,
        queues: &[String],
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Job>, QueueError>;

    /// Extends the lease of a job still reserved under `attempt`.
    async fn extend(&self, id: &str, attempt: u32, lease: Duration) -> Result<bool, QueueError>;

    /// Removes a job done under `attempt`.
    async fn ack(&self, id: &str, attempt: u32) -> Result<bool, QueueError>;

    /// Puts a job back to be tried again after `delay`, recording `error`.
    async fn release(
        &self,
        id: &str,
        attempt: u32,
        delay: Duration,
        error: &str,
    ) -> Result<bool, QueueError>;

    /// Puts a job back untried (its `attempt` decremented): a worker shutting
    /// down hands back what it did not start or finish.
    async fn abandon(&self, id: &str, attempt: u32) -> Result<bool, QueueError>;

    /// Moves a job to the failed store with `error`.
    async fn fail(&self, id: &str, attempt: u32, error: &str) -> Result<bool, QueueError>;

    /// The failed store, oldest failure first.
    async fn failed(&self) -> Result<Vec<FailedJob>, QueueError>;

    /// Moves a failed job back to its queue with its tries reset, under a
    /// new id (so no stale claim of it can match).
    async fn retry(&self, id: &str) -> Result<bool, QueueError>;

    /// Moves every failed job back; returns how many.
    async fn retry_all(&self) -> Result<usize, QueueError>;

    /// Deletes a failed job.
    async fn forget(&self, id: &str) -> Result<bool, QueueError>;

    /// Deletes every failed job; returns how many.
    async fn flush_failed(&self) -> Result<usize, QueueError>;

    /// Per-queue counts, sorted by queue name.
    async fn stats(&self) -> Result<Vec<QueueStats>, QueueError>;

    /// Waits until jobs may be available, at most `max`. The default sleeps
    /// `max`; backends that can tell sooner wake up sooner.
    async fn wait(&self, max: Duration) {
        tokio::time::sleep(max).await;
    }
}

/// A handle to a queue: cheap to clone, shared by dispatchers and workers.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), events::queue::QueueError> {
/// let queue = events::queue::connect("memory://").await?;
/// assert_eq!(queue.size("default").await?, 0);
/// assert!(queue.failed().await?.is_empty());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Queue {
    backend: Arc<dyn Backend>,
    url: Arc<str>,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue").field("url", &self.url).finish()
    }
}

/// Opens the queue at `url`: `memory://`, or `sqlite://path` (created and
/// migrated when missing; `sqlite:///abs/path` for an absolute path).
pub async fn connect(url: &str) -> Result<Queue, QueueError> {
    Queue::open(url)
}

/// The queue `EVENTS_QUEUE_URL` names, if it is set.
pub fn from_env() -> Option<Result<Queue, QueueError>> {
    let url = std::env::var("EVENTS_QUEUE_URL").ok()?;
    Some(Queue::open(&url))
}

impl Queue {
    /// Opens the queue at `url` without awaiting: the memory and SQLite
    /// backends open synchronously. [`connect`] is the async form.
    pub fn open(url: &str) -> Result<Queue, QueueError> {
        if url == "memory://" || url == "memory:" {
            Ok(Queue::memory())
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            Queue::sqlite(path)
        } else {
            Err(QueueError::UnsupportedUrl {
                url: url.to_owned(),
            })
        }
    }

    /// A new, empty in-memory queue.
    pub fn memory() -> Queue {
        Queue::with_backend("memory://", MemoryBackend::default())
    }

    /// The SQLite queue in the file at `path`.
    pub fn sqlite(path: impl AsRef<std::path::Path>) -> Result<Queue, QueueError> {
        let path = path.as_ref();
        let backend = SqliteBackend::open(path)?;
        Ok(Queue::with_backend(
            &format!("sqlite://{}", path.display()),
            backend,
        ))
    }

    /// A queue over any backend.
    pub fn with_backend(url: &str, backend: impl Backend) -> Queue {
        Queue {
            backend: Arc::new(backend),
            url: url.into(),
        }
    }

    /// The URL it was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The backend, for the fenced operations workers use.
    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// Stores a job.
    pub async fn enqueue(&self, job: Job) -> Result<(), QueueError> {
        self.backend.enqueue(job).await
    }

    /// The failed store, oldest failure first.
    pub async fn failed(&self) -> Result<Vec<FailedJob>, QueueError> {
        self.backend.failed().await
    }

    /// Moves the failed job `id` back to its queue with its tries reset.
    pub async fn retry(&self, id: &str) -> Result<bool, QueueError> {
        self.backend.retry(id).await
    }

    /// Moves every failed job back; returns how many.
    pub async fn retry_all(&self) -> Result<usize, QueueError> {
        self.backend.retry_all().await
    }

    /// Deletes the failed job `id`.
    pub async fn forget(&self, id: &str) -> Result<bool, QueueError> {
        self.backend.forget(id).await
    }

    /// Deletes every failed job; returns how many.
    pub async fn flush_failed(&self) -> Result<usize, QueueError> {
        self.backend.flush_failed().await
    }

    /// Jobs waiting or running on `queue` (not counting failed ones).
    pub async fn size(&self, queue: &str) -> Result<usize, QueueError> {
        Ok(self
            .backend
            .stats()
            .await?
            .into_iter()
            .find(|s| s.queue == queue)
            .map_or(0, |s| s.pending + s.reserved))
    }

    /// Per-queue counts, sorted by queue name.
    pub async fn stats(&self) -> Result<Vec<QueueStats>, QueueError> {
        self.backend.stats().await
    }
}
