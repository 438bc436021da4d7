//! Queues for queued listeners: the job a dispatch enqueues, the backend
//! trait every store implements, and the [`Queue`] handle.
//!
//! A job is *claimed* under a lease: the claim increments its `attempt`, and
//! that number is the fencing token. `ack`, `release`, `fail`, `extend` and
//! `abandon` name the job by id **and** attempt, so a worker whose lease lapsed
//! and whose job was claimed again cannot touch it any more. A job whose
//! worker died is claimed again once its lease lapses: delivery is
//! at-least-once, so listeners should be idempotent.

pub mod activity;
mod browse;
#[cfg(feature = "conformance")]
pub mod conformance;
mod memory;
mod run;
mod scheme;
mod threads;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::envelope::Envelope;
use crate::listener::{BoxError, QueueOptions};

pub use activity::{Activity, ActivityReport};
pub use browse::{JobPage, JobQuery, JobState, JobView, Order, contains_ignoring_ascii_case};
pub use memory::MemoryBackend;
pub(crate) use run::{
    Ended, JobEnv, JobSink, QueueTarget, Verdict, Waits, observed_try, panic_message, run_to_end,
    verdict,
};
pub use run::{JobError, run_job};
pub use scheme::{Scheme, schemes};
pub(crate) use threads::running as still_running;

/// One queued listener's run of one event.
///
/// A backend in another crate builds one from its stored row with
/// [`Job::from_parts`], then sets the counters and times through the public
/// fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Job {
    /// Unique id. A dispatch's job is named by its event id and its
    /// listener (see [`Job::new`]); a job retried from the failed store gets
    /// a new one.
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
    /// The dispatch's envelope (event id, occurred-at, metadata): kept
    /// across retries and into the failed store.
    pub envelope: Envelope,
}

impl Job {
    /// A new job for `listener`, available after the options' delay,
    /// carrying the dispatch's `envelope`.
    ///
    /// Its id is the event id and a hash of the listener's name, so one
    /// dispatch's job for one listener always has the same id: enqueueing it
    /// twice stores it once (see [`Backend::enqueue_many`]).
    pub fn new(
        listener: &str,
        event: &str,
        payload: String,
        options: &QueueOptions,
        envelope: &Envelope,
    ) -> Job {
        let now = SystemTime::now();
        Job {
            id: dispatch_job_id(envelope, listener),
            queue: options.queue().to_owned(),
            listener: listener.to_owned(),
            event: event.to_owned(),
            payload,
            attempt: 0,
            max_tries: options.tries(),
            available_at: later(now, options.delay()),
            first_enqueued_at: now,
            last_error: None,
            envelope: envelope.clone(),
        }
    }

    /// A job from its stored parts, as a backend reads it back: nothing
    /// tried yet (`attempt` 0), one try allowed, available and first
    /// enqueued when the event occurred, no error. Set the other fields
    /// from the row afterwards.
    ///
    /// ```
    /// use events::Envelope;
    /// use events::queue::Job;
    ///
    /// let mut job = Job::from_parts("job-1", "default", "app::listener", "app.event", "{}", Envelope::new());
    /// job.attempt = 2;
    /// job.max_tries = 3;
    /// assert_eq!(job.available_at, job.envelope.occurred_at);
    /// ```
    pub fn from_parts(
        id: impl Into<String>,
        queue: impl Into<String>,
        listener: impl Into<String>,
        event: impl Into<String>,
        payload: impl Into<String>,
        envelope: Envelope,
    ) -> Job {
        Job {
            id: id.into(),
            queue: queue.into(),
            listener: listener.into(),
            event: event.into(),
            payload: payload.into(),
            attempt: 0,
            max_tries: 1,
            available_at: envelope.occurred_at,
            first_enqueued_at: envelope.occurred_at,
            last_error: None,
            envelope,
        }
    }

    /// Checks what every backend relies on before storing a job: an id, a
    /// queue and a listener that are not empty, and at least one try.
    /// [`Backend::enqueue_many`] refuses a batch holding a job that fails
    /// this, storing none of it.
    pub fn validate(&self) -> Result<(), QueueError> {
        let reason = if self.id.is_empty() {
            "its id is empty"
        } else if self.queue.is_empty() {
            "its queue name is empty"
        } else if self.listener.is_empty() {
            "its listener name is empty"
        } else if self.max_tries == 0 {
            "it allows no try (max_tries is 0)"
        } else {
            return Ok(());
        };
        Err(QueueError::InvalidJob {
            id: self.id.clone(),
            listener: self.listener.clone(),
            reason,
        })
    }

    /// The failed-store entry for this job after its last try failed with
    /// `error` at `now`: same id, envelope and payload.
    pub fn into_failed(self, error: &str, now: SystemTime) -> FailedJob {
        FailedJob {
            id: self.id,
            queue: self.queue,
            listener: self.listener,
            event: self.event,
            payload: self.payload,
            error: error.to_owned(),
            attempts: self.attempt,
            max_tries: self.max_tries,
            first_enqueued_at: self.first_enqueued_at,
            failed_at: now,
            envelope: self.envelope,
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

/// The id of one dispatch's job for `listener`: the event id, then a
/// 64-bit FNV-1a hash of the listener's name. FNV is fixed by its
/// definition, so the id is the same in every build and process (a
/// `RandomState` or `DefaultHasher` hash is not); the event id keeps it
/// unique across dispatches, and the listener name within one.
fn dispatch_job_id(envelope: &Envelope, listener: &str) -> String {
    format!("{}-{:016x}", envelope.id, fnv1a(listener.as_bytes()))
}

/// 64-bit FNV-1a.
#[doc(hidden)]
pub const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// A time-ordered id, unique across processes, for a job retried from the
/// failed store: milliseconds since the epoch, a random number drawn once
/// per process (process ids repeat across containers sharing a file), then
/// a process-wide counter.
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

/// A new job id, unique across processes and ordered by time: the one
/// [`FailedJob::into_job`] gives a retried job. A backend that moves a
/// failed job back in one step on its server mints the new id here.
pub fn new_job_id(now: SystemTime) -> String {
    new_id(now)
}

/// `at + wait`, saturating far in the future instead of overflowing (a
/// lease or delay of `Duration::MAX` means "never"). Backends use it for
/// leases, delays and backoffs.
pub fn later(at: SystemTime, wait: Duration) -> SystemTime {
    at.checked_add(wait)
        .unwrap_or_else(|| UNIX_EPOCH + Duration::from_millis(i64::MAX as u64 / 2))
}

/// Milliseconds since the epoch (0 before it), as backends store times.
pub fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The time `ms` milliseconds after the epoch (the epoch for a negative
/// `ms`): the inverse of [`millis`].
pub fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// A job that used up its tries, kept until retried or forgotten.
///
/// A backend in another crate builds one from its stored row with
/// [`FailedJob::from_parts`], then sets the rest through the public fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailedJob {
    /// The job's id (a retry enqueues it under a new one).
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
    /// The dispatch's envelope, as the job carried it.
    pub envelope: Envelope,
}

impl FailedJob {
    /// What `job` becomes in the failed store once its last try failed with
    /// `error` at `now`: [`Job::into_failed`].
    pub fn from_job(job: Job, error: &str, now: SystemTime) -> FailedJob {
        job.into_failed(error, now)
    }

    /// A failed job from its stored parts, as a backend reads it back: no
    /// try counted, one allowed, first enqueued and failed when the event
    /// occurred. Set the other fields from the row afterwards.
    pub fn from_parts(
        id: impl Into<String>,
        queue: impl Into<String>,
        listener: impl Into<String>,
        event: impl Into<String>,
        payload: impl Into<String>,
        error: impl Into<String>,
        envelope: Envelope,
    ) -> FailedJob {
        FailedJob {
            id: id.into(),
            queue: queue.into(),
            listener: listener.into(),
            event: event.into(),
            payload: payload.into(),
            error: error.into(),
            attempts: 0,
            max_tries: 1,
            first_enqueued_at: envelope.occurred_at,
            failed_at: envelope.occurred_at,
            envelope,
        }
    }

    /// The job to enqueue again: its tries start over, available now, under
    /// a new id, with its envelope and last error kept. The id and attempt
    /// together are the fencing token: with the old id kept and the attempt
    /// reset, a worker that lost the job's lease before it failed would hold
    /// a token that is valid again.
    pub fn into_job(self, now: SystemTime) -> Job {
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
            envelope: self.envelope,
        }
    }
}

/// How many jobs one queue holds.
///
/// A backend in another crate builds one with [`QueueStats::new`], then
/// sets the counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// The queue's name.
    pub queue: String,
    /// Waiting jobs, ready or delayed.
    pub pending: usize,
    /// Of the `pending` jobs, those not available yet (a `delay`, a retry's
    /// backoff, a listener's `release_after`): `pending - delayed` are
    /// ready to be claimed now.
    pub delayed: usize,
    /// Jobs claimed by a worker right now.
    pub reserved: usize,
    /// Jobs in the failed store.
    pub failed: usize,
}

impl QueueStats {
    /// Zero counts for `queue`.
    pub fn new(queue: impl Into<String>) -> QueueStats {
        QueueStats {
            queue: queue.into(),
            ..QueueStats::default()
        }
    }
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
    /// The queue URL's scheme is none this build or this project knows.
    #[error(
        "unsupported queue URL `{url}`: this build opens {}",
        scheme::describe(known)
    )]
    UnknownScheme {
        /// The URL given.
        url: String,
        /// The schemes compiled in, sorted.
        known: Vec<&'static str>,
    },
    /// The queue URL names a backend this project has, but this build was
    /// compiled without it.
    #[error(
        "queue URL `{url}` needs the {scheme}:// backend, which this build leaves out: turn on the `events` crate's `{feature}` feature (`events = {{ version = \"{version}\", features = [\"{feature}\"] }}`)",
        version = env!("CARGO_PKG_VERSION")
    )]
    MissingFeature {
        /// The URL given.
        url: String,
        /// Its scheme.
        scheme: String,
        /// The facade feature that compiles the backend in.
        feature: &'static str,
    },
    /// A backend's URL is malformed (the backend says how).
    #[error("bad queue URL `{url}`: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A job handed to `enqueue_many` cannot be stored; none of its batch
    /// was.
    #[error("job `{id}` for listener `{listener}` cannot be stored: {reason}")]
    InvalidJob {
        /// The job's id.
        id: String,
        /// Its listener.
        listener: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The backend failed; `source()` is its own error (a driver's, a
    /// server's), kept whole.
    #[error("the {backend} queue failed")]
    Backend {
        /// The backend's name: its URL scheme, such as `sqlite`.
        backend: &'static str,
        /// What the backend said.
        #[source]
        source: BoxError,
    },
    /// The backend failed in a way that trying again will not mend (a
    /// read-only or corrupt database file, a file that is no database):
    /// someone has to act. `source()` is the backend's own error. A worker
    /// stops at once on it instead of retrying ([`QueueError::is_permanent`]).
    #[error("the {backend} queue failed, and trying again will not help")]
    Unrecoverable {
        /// The backend's name: its URL scheme, such as `sqlite`.
        backend: &'static str,
        /// What the backend said.
        #[source]
        source: BoxError,
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
    #[error("the worker cannot start")]
    Startup(#[source] crate::registry::RegistryError),
    /// The backend does not do this (a backend from another crate that
    /// predates the operation).
    #[error("the {backend} queue cannot {operation}")]
    Unsupported {
        /// The backend's name, or its URL's scheme.
        backend: String,
        /// What it cannot do, in words ("list its jobs").
        operation: &'static str,
    },
}

impl QueueError {
    /// Wraps a backend's own error: [`QueueError::Backend`].
    pub fn backend(
        backend: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> QueueError {
        QueueError::Backend {
            backend,
            source: source.into(),
        }
    }

    /// Wraps a backend's own error that trying again will not mend:
    /// [`QueueError::Unrecoverable`].
    pub fn unrecoverable(
        backend: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> QueueError {
        QueueError::Unrecoverable {
            backend,
            source: source.into(),
        }
    }

    /// Whether trying the same operation again cannot succeed without
    /// someone changing something first: a bad URL, a missing feature, a
    /// job that cannot be stored, a worker that cannot start, or a backend
    /// failure it reported as [`QueueError::Unrecoverable`]. A busy
    /// database or a passing I/O error is transient (`false`).
    ///
    /// ```
    /// use events::queue::QueueError;
    ///
    /// let io = std::io::Error::other("read-only file system");
    /// assert!(QueueError::unrecoverable("sqlite", io).is_permanent());
    /// assert!(!QueueError::backend("sqlite", "database is locked").is_permanent());
    /// ```
    pub fn is_permanent(&self) -> bool {
        match self {
            QueueError::NoRuntime
            | QueueError::UnknownScheme { .. }
            | QueueError::MissingFeature { .. }
            | QueueError::BadUrl { .. }
            | QueueError::InvalidJob { .. }
            | QueueError::Unrecoverable { .. }
            | QueueError::Unsupported { .. }
            | QueueError::Startup(_) => true,
            QueueError::Backend { .. } | QueueError::WorkerPanicked(_) | QueueError::Corrupt(_) => {
                false
            }
        }
    }
}

/// Where jobs live. Every backend passes the same conformance suite (the
/// `conformance` feature's `conformance_tests!`); they differ only in where
/// jobs are kept.
///
/// Fenced operations return `Ok(false)` when the job is not reserved under
/// that attempt any more: the caller lost its lease.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Stores all of `jobs` in one atomic write (one transaction, one lock),
    /// each available at its `available_at`: either every job is stored or,
    /// on an error, none is. A dispatch hands over all its jobs in one call,
    /// so a dispatch that fails to enqueue leaves none behind.
    ///
    /// Idempotent by id: a job whose id is already stored (waiting, claimed
    /// or in the failed store), or that appears earlier in the same batch,
    /// is skipped, not stored twice and not an error. A dispatch enqueued
    /// again therefore cannot duplicate its jobs while they are stored (a
    /// job acked and deleted is no longer known). A batch holding a job that
    /// fails [`Job::validate`] is refused whole with
    /// [`QueueError::InvalidJob`].
    async fn enqueue_many(&self, jobs: Vec<Job>) -> Result<(), QueueError>;

    /// Stores one job: [`enqueue_many`](Backend::enqueue_many) with a batch
    /// of one.
    async fn enqueue(&self, job: Job) -> Result<(), QueueError> {
        self.enqueue_many(vec![job]).await
    }

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

    /// What a worker's slot does between one job and the next:
    /// [`ack`](Backend::ack)s the job done under `attempt`, then
    /// [`claim`](Backend::claim)s up to `limit` jobs, and returns both
    /// results, each as its own call would. The ack comes first, so the job
    /// just done is never claimed again.
    ///
    /// The default makes the two calls one after the other. A backend that
    /// can do both in one write (one transaction, one round trip) should:
    /// a job then costs the worker one write instead of two.
    async fn ack_and_claim(
        &self,
        id: &str,
        attempt: u32,
        queues: &[String],
        limit: usize,
        lease: Duration,
    ) -> (Result<bool, QueueError>, Result<Vec<Job>, QueueError>) {
        let acked = self.ack(id, attempt).await;
        let claimed = self.claim(queues, limit, lease).await;
        (acked, claimed)
    }

    /// Puts a job back to be tried again after `delay`, recording `error`.
    async fn release(
        &self,
        id: &str,
        attempt: u32,
        delay: Duration,
        error: &str,
    ) -> Result<bool, QueueError>;

    /// Puts a job back untried (its `attempt` decremented, its last error
    /// kept), available again after `delay` (`Duration::ZERO`: at once,
    /// ahead of jobs enqueued after it). A worker shutting down hands back
    /// what it did not start or finish with a zero delay; a listener that
    /// asks to run again later without counting a failure uses a longer one.
    async fn abandon(&self, id: &str, attempt: u32, delay: Duration) -> Result<bool, QueueError>;

    /// Moves a job to the failed store with `error`.
    async fn fail(&self, id: &str, attempt: u32, error: &str) -> Result<bool, QueueError>;

    /// The failed store, oldest failure first.
    async fn failed(&self) -> Result<Vec<FailedJob>, QueueError>;

    /// Moves a failed job back to its queue with its tries reset, under a
    /// new id (so no stale claim of it can match): [`FailedJob::into_job`].
    /// Returns the new id, or `None` when no failed job has this id.
    async fn retry(&self, id: &str) -> Result<Option<String>, QueueError>;

    /// Moves every failed job back; returns how many.
    async fn retry_all(&self) -> Result<usize, QueueError>;

    /// Deletes a failed job.
    async fn forget(&self, id: &str) -> Result<bool, QueueError>;

    /// Deletes every failed job; returns how many.
    async fn flush_failed(&self) -> Result<usize, QueueError>;

    /// Per-queue counts, sorted by queue name.
    async fn stats(&self) -> Result<Vec<QueueStats>, QueueError>;

    /// Deletes every job waiting on `queue`, ready or delayed; returns how
    /// many. Jobs a worker holds (claimed, its lease running) are left to
    /// it, and the failed store is untouched.
    async fn clear(&self, queue: &str) -> Result<usize, QueueError>;

    /// Waits until jobs may be available, at most `max`. The default sleeps
    /// `max`; backends that can tell sooner wake up sooner.
    async fn wait(&self, max: Duration) {
        tokio::time::sleep(max).await;
    }

    /// Lists the jobs `query` matches, in any state, with how many match in
    /// all; reading never touches a job (a lease keeps running, a failed
    /// row stays). The default says the backend cannot
    /// ([`QueueError::Unsupported`]).
    async fn jobs(&self, query: &JobQuery) -> Result<JobPage, QueueError> {
        let _ = query;
        Err(QueueError::Unsupported {
            backend: std::any::type_name::<Self>().to_owned(),
            operation: "list its jobs",
        })
    }

    /// The job `id` in whatever state it is (waiting, claimed or failed),
    /// or `None` when the backend holds none with this id. The default
    /// looks through [`jobs`](Backend::jobs).
    async fn job(&self, id: &str) -> Result<Option<JobView>, QueueError> {
        let page = self
            .jobs(&JobQuery::new().search(id).limit(usize::MAX))
            .await?;
        Ok(page.jobs.into_iter().find(|job| job.id == id))
    }

    /// Keeps a worker's [`ActivityReport`]: its heartbeat (forgotten when
    /// `leaving`), its per-minute counts added to those of other workers,
    /// the jobs it finished. See [`activity`](crate::queue::activity) for
    /// what is kept and how long. The default keeps nothing.
    async fn report(&self, report: &ActivityReport) -> Result<(), QueueError> {
        let _ = report;
        Ok(())
    }

    /// The backend as `Any`, so code that knows a backend's type can find
    /// it behind a [`Queue`]: an event store living in the same database
    /// appends and enqueues in one transaction through it
    /// ([`EventStore::append_with_jobs`](crate::store::EventStore::append_with_jobs)).
    /// The default is `None`.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }

    /// What every worker reported: the workers alive, the per-minute
    /// counts from `since` on, the newest finished jobs. The default says
    /// the backend keeps none ([`QueueError::Unsupported`]).
    async fn activity(&self, since: SystemTime) -> Result<Activity, QueueError> {
        let _ = since;
        Err(QueueError::Unsupported {
            backend: std::any::type_name::<Self>().to_owned(),
            operation: "keep what its workers report",
        })
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

/// Opens the queue at `url` through the backend that registered its scheme
/// ([`Queue::open`]): `memory://` always, `sqlite://path` with the facade's
/// `sqlite` feature (on by default), others as their features add them.
///
/// On a Tokio runtime, the opening runs on its blocking pool: opening a
/// file (and waiting for another process that is migrating it) never
/// blocks the runtime's threads.
pub async fn connect(url: &str) -> Result<Queue, QueueError> {
    if url.starts_with("memory:") || tokio::runtime::Handle::try_current().is_err() {
        return Queue::open(url);
    }
    let owned = url.to_owned();
    match tokio::task::spawn_blocking(move || Queue::open(&owned)).await {
        Ok(opened) => opened,
        Err(error) => match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only a runtime shutting down cancels it: open here instead.
            Err(_) => Queue::open(url),
        },
    }
}

/// The queue `EVENTS_QUEUE_URL` names, if it is set (an empty value counts
/// as unset, as in [`Config`](crate::Config)), opened with [`Queue::open`].
pub fn from_env() -> Option<Result<Queue, QueueError>> {
    let url = std::env::var(crate::config::QUEUE_URL).ok()?;
    let url = url.trim();
    (!url.is_empty()).then(|| Queue::open(url))
}

impl Queue {
    /// Opens the queue at `url` without awaiting, through the [`Scheme`]
    /// its backend registered (see [`schemes`]); [`connect`] is the async
    /// form, and `EVENTS_QUEUE_URL` and the CLI's `--queue-url` come here
    /// too. Opening never waits on a network: a backend that needs one
    /// connects at its first operation.
    ///
    /// A scheme this project provides behind a feature that is off is an
    /// error naming the feature; any other unknown scheme is an error
    /// listing the schemes compiled in.
    pub fn open(url: &str) -> Result<Queue, QueueError> {
        scheme::open(url)
    }

    /// A new, empty in-memory queue.
    pub fn memory() -> Queue {
        Queue::with_backend("memory://", MemoryBackend::default())
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

    /// Stores all of `jobs` or none of them, skipping ids already stored:
    /// [`Backend::enqueue_many`].
    pub async fn enqueue_many(&self, jobs: Vec<Job>) -> Result<(), QueueError> {
        self.backend.enqueue_many(jobs).await
    }

    /// The failed store, oldest failure first.
    pub async fn failed(&self) -> Result<Vec<FailedJob>, QueueError> {
        self.backend.failed().await
    }

    /// Moves the failed job `id` back to its queue with its tries reset,
    /// under a new id, which it returns (`None`: no failed job has this id).
    pub async fn retry(&self, id: &str) -> Result<Option<String>, QueueError> {
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

    /// Deletes every job waiting on `queue` (ready or delayed, not the ones
    /// workers hold); returns how many.
    pub async fn clear(&self, queue: &str) -> Result<usize, QueueError> {
        self.backend.clear(queue).await
    }

    /// The jobs `query` matches, in any state: [`Backend::jobs`].
    ///
    /// ```
    /// use events::queue::{JobQuery, JobState};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), events::queue::QueueError> {
    /// let queue = events::queue::connect("memory://").await?;
    /// let page = queue.jobs(&JobQuery::new().state(JobState::Failed)).await?;
    /// assert_eq!(page.total, 0);
    /// # Ok(()) }
    /// ```
    pub async fn jobs(&self, query: &JobQuery) -> Result<JobPage, QueueError> {
        self.backend.jobs(query).await
    }

    /// The job `id`, in whatever state: [`Backend::job`].
    pub async fn job(&self, id: &str) -> Result<Option<JobView>, QueueError> {
        self.backend.job(id).await
    }

    /// What the workers reported since `since`: [`Backend::activity`].
    pub async fn activity(&self, since: SystemTime) -> Result<Activity, QueueError> {
        self.backend.activity(since).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{EventId, Metadata};

    fn options() -> QueueOptions {
        QueueOptions::__new("mail", 3, &[], Duration::ZERO, None)
    }

    fn envelope(bits: u128) -> Envelope {
        let id = EventId::from_u128(bits);
        Envelope::from_parts(id, id.timestamp(), Metadata::new())
    }

    #[test]
    fn a_dispatch_names_its_jobs_by_event_id_and_listener() {
        let envelope = envelope(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let a = Job::new("app::send", "signed.up", "{}".into(), &options(), &envelope);
        let again = Job::new("app::send", "signed.up", "{}".into(), &options(), &envelope);
        let other = Job::new(
            "app::audit",
            "signed.up",
            "{}".into(),
            &options(),
            &envelope,
        );
        assert_eq!(
            a.id, again.id,
            "the same dispatch and listener: the same id"
        );
        assert_ne!(a.id, other.id, "another listener: another id");
        assert_ne!(
            a.id,
            Job::new(
                "app::send",
                "signed.up",
                "{}".into(),
                &options(),
                &Envelope::new()
            )
            .id,
            "another dispatch: another id"
        );
        assert_eq!(a.envelope, envelope);
        // Pinned: ids must not change between builds or releases (FNV-1a of
        // the listener's name, not a seeded hash).
        assert_eq!(a.id, "014D2PF2DBSQQG28T5CY4TQKFF-3bcdb2f6cac1cac6");
    }

    #[test]
    fn a_retried_job_gets_a_fresh_id_and_keeps_its_envelope() {
        let envelope = Envelope::new().with("tenant", "acme");
        let job = Job::new("app::send", "signed.up", "{}".into(), &options(), &envelope);
        let failed = job.clone().into_failed("boom", SystemTime::now());
        assert_eq!(
            (failed.id.as_str(), &failed.envelope),
            (job.id.as_str(), &envelope)
        );
        let retried = failed.into_job(SystemTime::now());
        assert_ne!(retried.id, job.id, "a fresh id: the old claim stays fenced");
        assert_eq!(retried.envelope, envelope);
        assert_eq!(retried.last_error.as_deref(), Some("boom"));
    }

    #[test]
    fn jobs_that_cannot_be_stored_are_refused_in_words() {
        let mut job = Job::from_parts("id", "q", "l", "e", "{}", Envelope::new());
        assert!(job.validate().is_ok());
        job.max_tries = 0;
        assert_eq!(
            job.validate().unwrap_err().to_string(),
            "job `id` for listener `l` cannot be stored: it allows no try (max_tries is 0)"
        );
        job.max_tries = 1;
        job.id.clear();
        assert!(matches!(
            job.validate(),
            Err(QueueError::InvalidJob {
                reason: "its id is empty",
                ..
            })
        ));
    }
}
