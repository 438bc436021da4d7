//! Workers: claim queued jobs under a lease and run their listeners, with
//! retries, timeouts, panic capture, a failed store and graceful shutdown.
//!
//! The retry rule is `queue::run::verdict`, which the in-process runner
//! follows too: after a failed try, a job with tries left is released to run
//! again after the listener's backoff for that attempt (the list's last value
//! repeats; the worker's retry defaults when the listener declares no
//! backoff), with the worker's jitter on top; after its last try it moves to
//! the failed store and the failure hooks run. A listener's
//! `release_after` / `fail_without_retry` comes first.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::config::Config;
use crate::context::{JobRun, StateMap, lock};
use crate::error::Chain;
use crate::listener::{ListenerDef, Mode, RetryDefaults, Run};
use crate::observe::{Interest, Observer, Observers};
use crate::queue::activity::{Finish, WorkerStatus};
use crate::queue::panic_message;
use crate::queue::{FailedJob, Job, JobError, Queue, QueueError, Verdict, observed_try, verdict};
use crate::registry::{Registry, registry};

mod heartbeat;

/// A hook called with each job that ends in the failed store.
pub type FailureHook = Arc<dyn Fn(&FailedJob) + Send + Sync>;

/// What a worker did, returned when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkReport {
    /// Jobs whose listener succeeded.
    pub succeeded: u64,
    /// Tries that failed and were released to run again.
    pub retried: u64,
    /// Jobs moved to the failed store.
    pub failed: u64,
    /// Jobs whose lease was lost (the job was claimed again elsewhere), so
    /// their result was discarded.
    pub lost: u64,
    /// Jobs handed back untried at shutdown.
    pub released_at_shutdown: u64,
    /// Jobs put back untried because their listener asked to run again
    /// later (`ctx.job().release_after(..)`).
    pub released: u64,
    /// Jobs left waiting, untried, because no listener of theirs is
    /// registered in this program: they wait for a worker that has it (see
    /// [`Worker`]). Each job counts once however often it was claimed.
    pub set_aside: u64,
    /// Tries of plain `fn` listeners still running when the worker stopped
    /// (cut off at their timeout, or at the end of the grace period): a
    /// thread cannot be cancelled, so they were abandoned to end with the
    /// process. Their jobs were retried, failed or handed back as usual.
    pub abandoned: u64,
}

impl WorkReport {
    /// Tries finished and settled: succeeded, retried, failed or lost (a
    /// try whose listener asked to be released counts in `released`, not
    /// here).
    pub fn processed(&self) -> u64 {
        self.succeeded + self.retried + self.failed + self.lost
    }

    /// Jobs the worker finished for good: succeeded, or moved to the
    /// failed store. A job retried twice and then done counts once here
    /// and three times in [`processed`](Self::processed).
    pub fn finished(&self) -> u64 {
        self.succeeded + self.failed
    }
}

/// Runs queued jobs.
///
/// Each of its `concurrency` slots claims one job at a time, when it is
/// free to start it, so a worker that dies charges a try only to the jobs
/// it was running. A job whose listener this program does not register
/// (a binary that does not link the library defining it, a renamed
/// listener) is never tried nor failed: the worker hands it back untouched
/// to wait for a worker that has the listener, and says so once per
/// listener; [`run_until_empty`](Self::run_until_empty) counts such jobs as
/// gone.
///
/// ```
/// use events::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[event]
/// #[derive(Serialize, Deserialize)]
/// struct Invoiced { number: u32 }
///
/// #[listener(queue = "billing", tries = 3)]
/// async fn archive(_: &Invoiced) {}
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let queue = events::queue::connect("memory://").await?;
/// let dispatcher = events::Dispatcher::builder().queue(queue.clone()).build()?;
/// dispatcher.dispatch(Invoiced { number: 1 }).await?;
///
/// let report = events::Worker::new(queue).queues(["billing"]).run_until_empty().await?;
/// assert_eq!(report.succeeded, 1);
/// # Ok(()) }
/// ```
#[must_use]
pub struct Worker {
    queue: Queue,
    queues: Vec<String>,
    concurrency: usize,
    lease: Duration,
    timeout: Duration,
    grace: Duration,
    poll: Duration,
    jitter: f64,
    max_jobs: Option<u64>,
    hooks: Vec<FailureHook>,
    registry: &'static Registry,
    /// Whether `queues(..)` chose the queues (else: the registry's, and
    /// whatever queues hold jobs when the worker starts).
    queues_chosen: bool,
    /// What `state(..)` gathers; shared with listeners once it runs.
    state: StateMap,
    running_state: Arc<StateMap>,
    observers: Vec<Arc<dyn Observer>>,
    observing: Observers,
    /// Backoff of listeners that declare none.
    retry: RetryDefaults,
    /// Worked when nothing else names a queue.
    default_queue: String,
    /// The queue orders claims take in turn (see `claim_orders`).
    claim_orders: Vec<Vec<String>>,
    /// Whether `resolve_queues` added the queues holding jobs.
    queues_resolved: bool,
    /// How often it reports its activity to the backend (zero: never).
    report_every: Duration,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("queue", &self.queue)
            .field("queues", &self.queues)
            .field("concurrency", &self.concurrency)
            .field("lease", &self.lease)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker for `queue`, working every queue that a registered queued
    /// listener names, and those that hold jobs when it starts, taking them
    /// in turn, until [`queues`](Self::queues) says otherwise; `default`
    /// (`EVENTS_DEFAULT_QUEUE` through [`config`](Self::config)) when that
    /// makes none.
    pub fn new(queue: Queue) -> Worker {
        let registry = registry();
        let mut queues: Vec<String> = registry
            .listeners()
            .iter()
            .filter_map(|l| match l.def.run {
                Run::Queued { options, .. } => Some(options.queue().to_owned()),
                _ => None,
            })
            .collect();
        queues.sort();
        queues.dedup();
        Worker {
            queue,
            queues,
            concurrency: 1,
            lease: Duration::from_secs(30),
            timeout: Duration::from_secs(60),
            grace: Duration::from_secs(30),
            poll: Duration::from_secs(1),
            jitter: 0.0,
            max_jobs: None,
            hooks: Vec::new(),
            registry,
            queues_chosen: false,
            state: StateMap::default(),
            running_state: Arc::default(),
            observers: Vec::new(),
            observing: Observers::default(),
            retry: RetryDefaults::default(),
            default_queue: "default".to_owned(),
            claim_orders: Vec::new(),
            queues_resolved: false,
            report_every: DEFAULT_REPORT_EVERY,
        }
    }

    /// Takes the concurrency, the default timeout, the retry defaults and
    /// the default queue from `config` (`EVENTS_WORKER_CONCURRENCY`,
    /// `EVENTS_TIMEOUT`, `EVENTS_RETRY_*`, `EVENTS_DEFAULT_QUEUE`). Setters
    /// called after it override what it set.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = events::Config::from_vars([("EVENTS_WORKER_CONCURRENCY", "4")])?;
    /// let queue = events::queue::connect("memory://").await?;
    /// let report = events::Worker::new(queue).config(&config).run_until_empty().await?;
    /// assert_eq!(report.processed(), 0);
    /// # Ok(()) }
    /// ```
    pub fn config(self, config: &Config) -> Self {
        let mut worker = self
            .concurrency(config.worker_concurrency())
            .timeout(config.timeout())
            .retry_defaults(config.retry_defaults().clone());
        worker.default_queue = config.default_queue().to_owned();
        worker
    }

    /// The backoff of listeners that declare none (default: none, retry at
    /// once). The tries of their jobs were fixed when they were enqueued,
    /// by the dispatcher's retry defaults.
    pub fn retry_defaults(mut self, defaults: RetryDefaults) -> Self {
        self.retry = defaults;
        self
    }

    /// Gives queued listeners the application state they take as
    /// `State<T>`. A listener of a worked queue that needs a type nobody
    /// gave makes `run*` fail before any job is claimed, naming both.
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// Adds an observer of each job's life: claimed, succeeded, retried,
    /// released, failed, lease lost.
    pub fn observe(mut self, observer: impl Observer) -> Self {
        self.observers.push(Arc::new(observer));
        self
    }

    /// The queues to work, highest priority first: a claim takes the first
    /// queue's jobs before the next one's. Without it, the worker takes the
    /// queues in turn (each claim starts at the next one), so every queue
    /// gets work.
    pub fn queues<I, S>(mut self, queues: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.queues = queues.into_iter().map(Into::into).collect();
        self.queues_chosen = true;
        self
    }

    /// How many jobs run at once (at least 1; default 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// How long a claim holds a job before another worker may take it
    /// (default 30 s). The worker extends it every third of that while the
    /// job runs, so only a dead or stalled worker loses it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.clamp(Duration::from_millis(30), LONGEST);
        self
    }

    /// The timeout of listeners that declare none (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.min(LONGEST);
        self
    }

    /// How long shutdown waits for running jobs before handing them back
    /// (default 30 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace.min(LONGEST);
        self
    }

    /// The longest wait between looks for jobs enqueued by other processes
    /// (default 1 s). Jobs enqueued through the same `Queue` handle wake the
    /// worker at once.
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll.clamp(Duration::from_millis(1), LONGEST);
        self
    }

    /// Adds up to this fraction of each backoff at random (0.0 to 1.0), so
    /// jobs that failed together do not retry together.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction.clamp(0.0, 1.0);
        self
    }

    /// How often the worker reports to its queue's backend (default 5 s;
    /// [`Duration::ZERO`] turns reports off): a heartbeat (its id
    /// `host:pid:n`, host, pid, queues, concurrency, when it started, jobs
    /// running, tries processed and failed), the per-minute counts of the
    /// tries it finished per queue and listener (succeeded, retried,
    /// failed, runtimes, waits from available to claimed) and the newest
    /// finished tries, as [`ActivityReport`](crate::queue::ActivityReport)s.
    /// The first goes out as it starts, the last (`leaving`) as it stops,
    /// however it stops; a worker killed without one drops out of
    /// [`Queue::activity`] after three missed reports.
    ///
    /// Reports run on their own task, never in a slot's way. One that
    /// fails (the backend is down) is logged once per outage and its counts
    /// go out with the next one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::{Duration, SystemTime};
    ///
    /// let queue = events::queue::connect("memory://").await?;
    /// events::Worker::new(queue.clone())
    ///     .report_every(Duration::from_secs(1))
    ///     .run_until_empty()
    ///     .await?;
    /// // It left: its last report took it off the list.
    /// assert!(queue.activity(SystemTime::UNIX_EPOCH).await?.workers.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn report_every(mut self, every: Duration) -> Self {
        self.report_every = every.min(LONGEST);
        self
    }

    /// Stops claiming after this many jobs (the CLI's `--max-jobs`).
    pub fn max_jobs(mut self, n: u64) -> Self {
        self.max_jobs = Some(n);
        self
    }

    /// Calls `hook` with every job that ends in the failed store, after the
    /// listener's own `on_failure` hook.
    pub fn on_failure(mut self, hook: impl Fn(&FailedJob) + Send + Sync + 'static) -> Self {
        self.hooks.push(Arc::new(hook));
        self
    }

    /// Works until `shutdown` completes, then shuts down gracefully: stops
    /// claiming, lets running jobs finish for up to the grace period, and
    /// hands the rest back to the queue untried.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<WorkReport, QueueError> {
        self.work(shutdown, false).await
    }

    /// Works until the worked queues hold no job (ready, delayed or
    /// running) but those it set aside because their listener is unknown
    /// here: for tests and `work --stop-when-empty`.
    pub async fn run_until_empty(self) -> Result<WorkReport, QueueError> {
        self.work(std::future::pending(), true).await
    }

    /// Works until SIGINT or SIGTERM (Ctrl-C elsewhere), then shuts down
    /// gracefully.
    pub async fn run(self) -> Result<WorkReport, QueueError> {
        self.run_until(shutdown_signal()).await
    }

    /// Works until `shutdown` completes or, with `stop_when_empty`, until
    /// the worked queues hold no job (or only jobs set aside because their
    /// listener is unknown here).
    ///
    /// `concurrency` slots each claim one job and run it at once, so a job
    /// is claimed (and its try counted) only when it starts: a worker killed
    /// mid-run charges a try to the jobs it was running, never to jobs it
    /// merely held.
    pub(crate) async fn work(
        self,
        shutdown: impl Future<Output = ()> + Send,
        stop_when_empty: bool,
    ) -> Result<WorkReport, QueueError> {
        let mut this = self;
        this.resolve_queues().await?;
        // Every queued listener of a worked queue must find its state.
        let worked = &this.queues;
        this.registry
            .check_state(
                &this.state,
                |l| matches!(l.mode(), Mode::Queued(o) if worked.iter().any(|q| q == o.queue())),
                "Worker::new(..)",
            )
            .map_err(QueueError::Startup)?;
        if !this
            .registry
            .listeners()
            .iter()
            .any(|l| matches!(l.def.run, Run::Queued { .. }))
        {
            tracing::warn!("{NO_QUEUED_LISTENER} The worker leaves every job waiting, untouched.");
        }
        this.claim_orders = claim_orders(&this.queues, this.queues_chosen);
        this.running_state = Arc::new(std::mem::take(&mut this.state));
        this.observing = Observers::new(std::mem::take(&mut this.observers));
        let worker = Arc::new(this);
        let shared = Arc::new(Shared {
            reporting: !worker.report_every.is_zero(),
            ..Shared::default()
        });
        let reporter = shared.reporting.then(|| {
            let now = SystemTime::now();
            let mut status = WorkerStatus::new(
                heartbeat::worker_id(),
                heartbeat::host_name(),
                std::process::id(),
                now,
                worker.report_every,
            );
            status.queues = worker.queues.clone();
            status.concurrency = worker.concurrency;
            heartbeat::Reporter::start(worker.queue.clone(), status, shared.clone())
        });
        let mut slots = JoinSet::new();
        for _ in 0..worker.concurrency {
            slots.spawn(worker.clone().slot(shared.clone(), stop_when_empty));
        }
        let mut shutdown = std::pin::pin!(shutdown);
        let mut stopping = false;
        loop {
            tokio::select! {
                done = slots.join_next() => match done {
                    Some(done) => settle_slot(done, &shared),
                    None => break,
                },
                () = &mut shutdown, if !stopping => {
                    stopping = true;
                    shared.stop();
                    break;
                }
            }
        }
        if stopping {
            worker.drain(&mut slots, &shared).await;
        }
        // What a slot held when it panicked goes back to the queue untried.
        let left: Vec<(String, u32)> = lock(&shared.held).drain().collect();
        for (id, attempt) in left {
            lock(&shared.cut_off).push((id.clone(), attempt));
            worker.hand_back(&id, attempt, &shared).await;
        }
        worker.tell_what_was_left(&shared);
        if let Some(reporter) = reporter {
            reporter.stop().await;
        }
        if let Some(error) = lock(&shared.error).take() {
            return Err(error);
        }
        let report = lock(&shared.report).clone();
        Ok(report)
    }

    /// Settles which queues the worker works, in which order: those chosen
    /// with [`queues`](Self::queues), or the registry's and those that hold
    /// jobs. Done once; `work` does it if the CLI did not.
    pub(crate) async fn resolve_queues(&mut self) -> Result<(), QueueError> {
        if self.queues_chosen || self.queues_resolved {
            return Ok(());
        }
        // Also work queues that hold jobs but that no listener names any
        // more: a listener that moved to another queue still runs the jobs
        // left on its old one (and jobs of unknown listeners are set aside,
        // see `set_aside`).
        for stats in self.queue.stats().await? {
            if !self.queues.contains(&stats.queue) {
                self.queues.push(stats.queue);
            }
        }
        if self.queues.is_empty() {
            self.queues.push(self.default_queue.clone());
        }
        self.queues_resolved = true;
        Ok(())
    }

    /// The queues worked, and whether their order is a priority order
    /// (`queues(..)`) rather than taken in turn.
    #[cfg(feature = "cli")]
    pub(crate) fn worked_queues(&self) -> (&[String], bool) {
        (&self.queues, self.queues_chosen)
    }

    /// The URL of the queue it works.
    #[cfg(feature = "cli")]
    pub(crate) fn queue_url(&self) -> &str {
        self.queue.url()
    }

    /// How many jobs run at once.
    #[cfg(feature = "cli")]
    pub(crate) fn slots(&self) -> usize {
        self.concurrency
    }

    /// Counts and logs, as the worker stops, the tries it abandoned still
    /// running on their threads and the jobs it set aside.
    fn tell_what_was_left(&self, shared: &Shared) {
        let cut_off = std::mem::take(&mut *lock(&shared.cut_off));
        let mut abandoned = 0;
        for (id, attempt) in cut_off {
            if let Some(run) = crate::queue::still_running(&id, attempt) {
                abandoned += 1;
                tracing::warn!(
                    job = %id,
                    attempt,
                    listener = %run.listener,
                    running_for = ?run.elapsed,
                    "the worker stops while a plain `fn` listener still runs past its timeout or the grace period; a thread cannot be cancelled, so it is abandoned and ends with the process"
                );
            }
        }
        let set_aside = lock(&shared.set_aside);
        for (listener, ids) in set_aside.iter() {
            tracing::warn!(
                %listener,
                jobs = ids.len(),
                "{}",
                unknown_listener_text(listener, Some(ids.len()))
            );
        }
        let mut report = lock(&shared.report);
        report.abandoned += abandoned;
        report.set_aside = set_aside.values().map(|ids| ids.len() as u64).sum();
    }

    /// One slot: claim one job, run it, repeat until told to stop. A job
    /// that succeeded is acked together with the next claim
    /// ([`Backend::ack_and_claim`](crate::queue::Backend::ack_and_claim)):
    /// one write per job where the backend can make the two one.
    async fn slot(self: Arc<Self>, shared: Arc<Shared>, stop_when_empty: bool) {
        let mut failed_claims = 0;
        // The job that just succeeded, its ack not sent yet.
        let mut succeeded: Option<Succeeded> = None;
        loop {
            // One unit of the task's budget per job: when every await below
            // completes at once (a backlog of quick jobs), a slot that never
            // yields keeps its thread, and the shutdown signal is never
            // polled. Tokio's budget (128 units) makes it yield to the
            // runtime every so many jobs, not after each one.
            tokio::task::coop::consume_budget().await;
            if shared.stopped() || !self.reserve(&shared) {
                if let Some(done) = succeeded.take() {
                    let acked = self
                        .queue
                        .backend()
                        .ack(&done.job.id, done.job.attempt)
                        .await;
                    self.acked(done, acked, &shared);
                }
                return;
            }
            let first = shared.next_queue.load(AtomicOrdering::Relaxed);
            let queues = &self.claim_orders[first % self.claim_orders.len()];
            let claimed = match succeeded.take() {
                Some(done) => {
                    let (acked, claimed) = self
                        .queue
                        .backend()
                        .ack_and_claim(&done.job.id, done.job.attempt, queues, 1, self.lease)
                        .await;
                    self.acked(done, acked, &shared);
                    claimed
                }
                None => self.queue.backend().claim(queues, 1, self.lease).await,
            };
            let job = match claimed {
                Ok(jobs) => {
                    if failed_claims > 0 {
                        tracing::info!(failed = failed_claims, "claims work again");
                        failed_claims = 0;
                    }
                    let job = jobs.into_iter().next();
                    if let Some(job) = &job
                        && self.claim_orders.len() > 1
                        && let Some(at) = self.queues.iter().position(|q| *q == job.queue)
                    {
                        // Round-robin: the next claim starts after this
                        // job's queue, so each queue holding jobs gets a
                        // turn however many empty ones lie between.
                        shared.next_queue.store(at + 1, AtomicOrdering::Relaxed);
                    }
                    job
                }
                // A busy database, a passing I/O error, a Redis restarting:
                // wait and try again, for as long as it takes (the process
                // outlives the outage); stop at once only on what cannot
                // heal (a read-only or corrupt file, a refused password).
                Err(error) => {
                    self.unreserve(&shared);
                    failed_claims += 1;
                    if error.is_permanent() {
                        tracing::error!(error = %Chain(&error), "cannot claim jobs; the worker stops");
                        lock(&shared.error).get_or_insert(error);
                        shared.stop();
                        return;
                    }
                    tracing::warn!(error = %Chain(&error), attempt = failed_claims, "cannot claim jobs; trying again");
                    let pause = (self.poll.min(Duration::from_secs(1)) * failed_claims)
                        .min(LONGEST_CLAIM_PAUSE);
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = shared.stopped_signal() => return,
                    }
                    continue;
                }
            };
            let Some(job) = job else {
                self.unreserve(&shared);
                // Listen for progress before looking: a job settled between
                // the look and the wait must still wake this slot (else it
                // sleeps a whole poll interval at the end of the queue).
                let progressed = shared.progress.notified();
                tokio::pin!(progressed);
                progressed.as_mut().enable();
                if stop_when_empty {
                    match self.pending().await {
                        // Empty, or holding only jobs this worker cannot run.
                        Ok(left) if left <= shared.set_aside_count() => return,
                        Ok(_) => {}
                        Err(error) => {
                            lock(&shared.error).get_or_insert(error);
                            shared.stop();
                            return;
                        }
                    }
                }
                tokio::select! {
                    () = self.queue.backend().wait(self.poll) => {}
                    () = progressed => {}
                    () = shared.stopped_signal() => return,
                }
                continue;
            };
            if shared.stopped() {
                // Claimed as the worker began to stop: hand it back untried.
                self.unreserve(&shared);
                self.hand_back(&job.id, job.attempt, &shared).await;
                return;
            }
            let id = job.id.clone();
            lock(&shared.held).insert(id.clone(), job.attempt);
            match self.process(job, &shared).await {
                Processed::NotRun => self.unreserve(&shared),
                Processed::Settled => {}
                // Held until acked, with the next claim.
                Processed::Succeeded(done) => {
                    succeeded = Some(done);
                    continue;
                }
            }
            lock(&shared.held).remove(&id);
            shared.progress.notify_waiters();
        }
    }

    /// Settles a succeeded job by the result of its ack.
    fn acked(&self, done: Succeeded, acked: Result<bool, QueueError>, shared: &Shared) {
        let job = &done.job;
        let succeeded = match acked {
            Ok(true) => {
                lock(&shared.report).succeeded += 1;
                self.observing
                    .each(Interest::JOBS, |o| o.job_succeeded(job, done.tried.took));
                true
            }
            Ok(false) => {
                self.lost(job, &shared.report);
                false
            }
            Err(error) => {
                tracing::error!(job = %job.id, error = %Chain(&error), "could not acknowledge a finished job; it runs again once its lease lapses");
                false
            }
        };
        lock(&shared.held).remove(&job.id);
        shared.progress.notify_waiters();
        if succeeded && let Some(ticket) = &done.tried.ticket {
            // The job is done with: its names move into the report.
            shared
                .tally
                .finished_owned(done.job, ticket, Finish::Succeeded, done.tried.took);
        }
    }

    /// Counts a job against `max_jobs` before claiming it; `false` when the
    /// worker has taken its share.
    fn reserve(&self, shared: &Shared) -> bool {
        let Some(max) = self.max_jobs else {
            return true;
        };
        shared
            .claimed
            .fetch_update(AtomicOrdering::AcqRel, AtomicOrdering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back a [`reserve`](Self::reserve) that did not run a job.
    fn unreserve(&self, shared: &Shared) {
        if self.max_jobs.is_some() {
            shared.claimed.fetch_sub(1, AtomicOrdering::AcqRel);
        }
    }

    /// Hands a job whose listener this program does not have back to its
    /// queue untried, to be looked at again after [`SET_ASIDE`]: it waits
    /// for a worker that has the listener. Says so once per listener.
    async fn set_aside(&self, job: &Job, shared: &Shared) {
        let first = {
            let mut set_aside = lock(&shared.set_aside);
            let ids = set_aside.entry(job.listener.clone()).or_default();
            let first = ids.is_empty();
            ids.insert(crate::queue::fnv1a(job.id.as_bytes()));
            first
        };
        if first {
            tracing::warn!(
                listener = %job.listener,
                queue = %job.queue,
                job = %job.id,
                "{}",
                unknown_listener_text(&job.listener, None)
            );
        }
        match self
            .queue
            .backend()
            .abandon(&job.id, job.attempt, SET_ASIDE)
            .await
        {
            Ok(true) => {
                let reason = unknown_listener_text(&job.listener, None);
                self.observing
                    .each(Interest::JOBS, |o| o.job_set_aside(job, &reason));
            }
            Ok(false) => self.lost(job, &shared.report),
            Err(error) => {
                tracing::error!(job = %job.id, error = %Chain(&error), "could not set aside a job of an unknown listener; it waits until its lease lapses")
            }
        }
    }

    /// Hands a claimed job back untried at shutdown.
    async fn hand_back(&self, id: &str, attempt: u32, shared: &Shared) {
        match self
            .queue
            .backend()
            .abandon(id, attempt, Duration::ZERO)
            .await
        {
            Ok(true) => lock(&shared.report).released_at_shutdown += 1,
            Ok(false) => {}
            Err(error) => {
                tracing::error!(job = %id, error = %Chain(&error), "could not hand a job back at shutdown; it runs again once its lease lapses")
            }
        }
        lock(&shared.held).remove(id);
    }

    /// Jobs waiting or running on the worked queues.
    async fn pending(&self) -> Result<usize, QueueError> {
        Ok(self
            .queue
            .stats()
            .await?
            .iter()
            .filter(|s| self.queues.contains(&s.queue))
            .map(|s| s.pending + s.reserved)
            .sum())
    }

    /// Graceful end: let the slots finish their running job for up to the
    /// grace period, then cancel them and hand back what they held.
    async fn drain(&self, slots: &mut JoinSet<()>, shared: &Shared) {
        let finish = async {
            while let Some(done) = slots.join_next().await {
                settle_slot(done, shared);
            }
        };
        if tokio::time::timeout(self.grace, finish).await.is_ok() {
            return;
        }
        slots.abort_all();
        while slots.join_next().await.is_some() {}
        let unfinished: Vec<(String, u32)> = lock(&shared.held).drain().collect();
        for (id, attempt) in unfinished {
            // A plain `fn` listener's thread goes on: the end says so.
            lock(&shared.cut_off).push((id.clone(), attempt));
            self.hand_back(&id, attempt, shared).await;
        }
    }

    /// Runs one claimed job to its end: retry, failure or lost lease, or
    /// success, whose ack is left to the slot (sent with its next claim).
    async fn process(&self, job: Job, shared: &Shared) -> Processed {
        let Some(def) = self.registry.listener(&job.listener).map(|l| l.def) else {
            self.set_aside(&job, shared).await;
            return Processed::NotRun;
        };
        let ticket = shared.reporting.then(|| {
            let address = std::ptr::from_ref(def) as usize;
            shared.tally.claimed(&job, address, SystemTime::now())
        });
        let _running = RunningJob::start(&shared.running);
        let report = &shared.report;
        if job.attempt > job.max_tries {
            let error = format!(
                "tried {} times, more than its {} allowed: a worker died or stalled while running it and its lease lapsed",
                job.attempt, job.max_tries
            );
            let tried = Tried {
                took: Duration::ZERO,
                ticket,
            };
            self.fail(&job, Some(def), &error, &tried, shared).await;
            return Processed::Settled;
        }
        let run = JobRun::new(job, self.running_state.clone());
        let job = run.job();
        let observers = &self.observing;
        let started = std::time::Instant::now();
        let outcome = tokio::select! {
            outcome = observed_try(def, &run, Some(self.timeout), observers) => Some(outcome),
            () = self.keep_lease(job) => None,
        };
        let Some((result, directive)) = outcome else {
            tracing::warn!(job = %job.id, listener = %job.listener, "lease lost while running; the result is discarded");
            self.lost(job, report);
            return Processed::Settled;
        };
        let Run::Queued {
            options, is_async, ..
        } = def.run
        else {
            // `run_job_with` refused it already: `result` says so.
            let error = result
                .err()
                .map_or_else(String::new, |e| Chain(&e).to_string());
            let tried = Tried {
                took: started.elapsed(),
                ticket,
            };
            self.fail(job, Some(def), &error, &tried, shared).await;
            return Processed::Settled;
        };
        if !is_async && matches!(result, Err(JobError::TimedOut { .. })) {
            // Its thread may still run: the end says so if it does.
            lock(&shared.cut_off).push((job.id.clone(), job.attempt));
        }
        let tried = Tried {
            took: started.elapsed(),
            ticket,
        };
        match verdict(job, &options, &self.retry, result, directive) {
            Verdict::Release(after) => self.put_back(job, after, report).await,
            Verdict::Fail(error) => self.fail(job, Some(def), &error, &tried, shared).await,
            Verdict::Retry { error, after } => self.retry(job, &error, after, &tried, shared).await,
            Verdict::Done => {
                return Processed::Succeeded(Succeeded {
                    job: run.into_job(),
                    tried,
                });
            }
        }
        Processed::Settled
    }

    /// Counts a job whose lease was lost.
    fn lost(&self, job: &Job, report: &Mutex<WorkReport>) {
        lock(report).lost += 1;
        self.observing
            .each(Interest::JOBS, |o| o.job_lease_lost(job));
    }

    /// Puts a job back untried, to run after `after`: the listener asked
    /// for it (`release_after`), so the try does not count.
    async fn put_back(&self, job: &Job, after: Duration, report: &Mutex<WorkReport>) {
        match self
            .queue
            .backend()
            .abandon(&job.id, job.attempt, after)
            .await
        {
            Ok(true) => {
                lock(report).released += 1;
                self.observing
                    .each(Interest::JOBS, |o| o.job_released(job, after));
            }
            Ok(false) => self.lost(job, report),
            Err(error) => {
                tracing::error!(job = %job.id, error = %Chain(&error), "could not release a job; it runs again once its lease lapses")
            }
        }
    }

    /// Releases a failed try to run again after `after`, with the worker's
    /// jitter on top (the verdict of the retry rule).
    async fn retry(&self, job: &Job, error: &str, after: Duration, tried: &Tried, shared: &Shared) {
        let report = &shared.report;
        let delay = with_jitter(after, self.jitter, &job.id, job.attempt);
        tracing::warn!(job = %job.id, listener = %job.listener, attempt = job.attempt, %error, retry_in = ?delay, "queued listener failed; retrying");
        match self
            .queue
            .backend()
            .release(&job.id, job.attempt, delay, error)
            .await
        {
            Ok(true) => {
                lock(report).retried += 1;
                shared.finished(job, tried, Finish::Retried);
                self.observing
                    .each(Interest::JOBS, |o| o.job_retried(job, error, delay));
            }
            Ok(false) => self.lost(job, report),
            Err(e) => {
                tracing::error!(job = %job.id, error = %Chain(&e), "could not release a failed job; it runs again once its lease lapses")
            }
        }
    }

    /// Moves a job whose try failed for good to the failed store, and
    /// calls the failure hooks.
    async fn fail(
        &self,
        job: &Job,
        def: Option<&'static ListenerDef>,
        error: &str,
        tried: &Tried,
        shared: &Shared,
    ) {
        let report = &shared.report;
        tracing::error!(job = %job.id, listener = %job.listener, event = %job.event, attempts = job.attempt, %error, "queued job failed");
        match self.queue.backend().fail(&job.id, job.attempt, error).await {
            Ok(true) => {
                shared.finished(job, tried, Finish::Failed);
                self.observing
                    .each(Interest::JOBS, |o| o.job_failed(job, error));
            }
            Ok(false) => {
                self.lost(job, report);
                return;
            }
            Err(e) => {
                tracing::error!(job = %job.id, error = %Chain(&e), "could not store a failed job; it runs again once its lease lapses");
                return;
            }
        }
        lock(report).failed += 1;
        let failed = FailedJob::from_job(job.clone(), error, SystemTime::now());
        let hooks = def.and_then(|d| d.on_failure).into_iter();
        for hook in hooks {
            call_hook(&job.listener, || hook(&failed));
        }
        for hook in &self.hooks {
            call_hook(&job.listener, || hook(&failed));
        }
    }

    /// Extends the running job's lease every third of the lease; returns
    /// when it is lost.
    async fn keep_lease(&self, job: &Job) {
        let every = self.lease / 3;
        loop {
            tokio::time::sleep(every).await;
            match self
                .queue
                .backend()
                .extend(&job.id, job.attempt, self.lease)
                .await
            {
                Ok(true) => {}
                Ok(false) => return,
                // A passing storage error: the next tick tries again, and the
                // lease still has two thirds to run.
                Err(error) => {
                    tracing::warn!(job = %job.id, error = %Chain(&error), "could not extend a lease")
                }
            }
        }
    }
}

/// The longest lease, grace, timeout or poll a worker takes: timers further
/// out would overflow `Instant` arithmetic.
const LONGEST: Duration = Duration::from_secs(365 * 24 * 3600);

/// How often a worker reports its activity unless told otherwise.
const DEFAULT_REPORT_EVERY: Duration = Duration::from_secs(5);

/// The longest pause between claims that keep failing: a worker whose
/// queue comes back starts again within this long.
const LONGEST_CLAIM_PAUSE: Duration = Duration::from_secs(5);

/// How long a job whose listener this program does not have is put back
/// for before a worker looks at it again: long enough not to spin on it,
/// short enough that a worker that has the listener soon gets it.
const SET_ASIDE: Duration = Duration::from_secs(60);

/// What `work` and the worker say when no queued listener is registered.
const NO_QUEUED_LISTENER: &str = "this program registers no queued listener, so it can run no job: does its binary link the library that defines the listeners? A library that `main` never names is not linked, and its `#[listener]`s are not registered: add `use my_app as _;` to the binary.";

/// Why jobs are set aside: their listener, how many (when known), that
/// they wait, and the likely causes.
pub(crate) fn unknown_listener_text(listener: &str, jobs: Option<usize>) -> String {
    let jobs = match jobs {
        Some(n) => format!("{n} job(s)"),
        None => "jobs".to_owned(),
    };
    format!(
        "{jobs} for listener `{listener}` left waiting, untouched: no listener of that name is registered in this program, so they wait for a worker that has it (likely causes: this binary does not link the library that defines it, or the listener was renamed and its old jobs keep the old name)"
    )
}

/// The queue order of a claim starting at each queue. Queues the user
/// chose are a priority order, always the same; otherwise each claim starts
/// after the queue of the last job claimed (round-robin), so every queue
/// gets work.
fn claim_orders(queues: &[String], chosen: bool) -> Vec<Vec<String>> {
    if chosen || queues.len() < 2 {
        return vec![queues.to_vec()];
    }
    (0..queues.len())
        .map(|first| {
            let mut order = queues.to_vec();
            order.rotate_left(first);
            order
        })
        .collect()
}

/// How [`Worker::process`] left a job.
// Returned once per job and matched at once: boxing the job would cost an
// allocation per job for nothing.
#[allow(clippy::large_enum_variant)]
enum Processed {
    /// Not run: its listener is unknown here, so it was set aside.
    NotRun,
    /// Run and settled: retried, failed, released or lost.
    Settled,
    /// Run, and its listener succeeded: to be acked.
    Succeeded(Succeeded),
}

/// A job whose listener succeeded, waiting for its ack.
struct Succeeded {
    job: Job,
    tried: Tried,
}

/// Counts a job in `Shared::running` while it lives.
struct RunningJob<'a>(&'a AtomicUsize);

impl<'a> RunningJob<'a> {
    fn start(running: &'a AtomicUsize) -> RunningJob<'a> {
        running.fetch_add(1, AtomicOrdering::Relaxed);
        RunningJob(running)
    }
}

impl Drop for RunningJob<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, AtomicOrdering::Relaxed);
    }
}

/// One try of a job, as its end counts it.
struct Tried {
    /// How long it ran.
    took: Duration,
    /// Where its claim was counted (none when the worker does not report).
    ticket: Option<heartbeat::Ticket>,
}

/// What a worker's slots share.
#[derive(Default)]
struct Shared {
    report: Mutex<WorkReport>,
    /// Jobs claimed and not settled: handed back if shutdown cuts them off.
    held: Mutex<HashMap<String, u32>>,
    /// Jobs counted against `max_jobs`.
    claimed: AtomicU64,
    /// Where in the queue list the next claim starts (round-robin).
    next_queue: AtomicUsize,
    /// The jobs set aside, by listener: 64-bit hashes of their ids, so a
    /// large backlog of them costs little memory.
    set_aside: Mutex<HashMap<String, HashSet<u64>>>,
    /// Tries of plain `fn` listeners cut off (timed out, or aborted at the
    /// end of the grace period) whose thread may still run.
    cut_off: Mutex<Vec<(String, u32)>>,
    stopping: AtomicBool,
    stop_signal: Notify,
    /// Wakes idle slots when a job settles (for `run_until_empty`).
    progress: Notify,
    error: Mutex<Option<QueueError>>,
    /// Whether the worker reports its activity (else nothing is tallied).
    reporting: bool,
    /// What the next report counts.
    tally: heartbeat::Tally,
    /// Jobs running now (claimed, their try not settled).
    running: AtomicUsize,
}

impl Shared {
    fn stop(&self) {
        self.stopping.store(true, AtomicOrdering::Release);
        self.stop_signal.notify_waiters();
    }

    fn stopped(&self) -> bool {
        self.stopping.load(AtomicOrdering::Acquire)
    }

    /// Counts a finished try for the next report.
    fn finished(&self, job: &Job, tried: &Tried, outcome: Finish) {
        if let Some(ticket) = &tried.ticket {
            self.tally.finished(job, ticket, outcome, tried.took);
        }
    }

    /// How many jobs were set aside (for `run_until_empty`: the queues are
    /// as empty as this worker can make them when only those are left).
    fn set_aside_count(&self) -> usize {
        lock(&self.set_aside).values().map(HashSet::len).sum()
    }

    async fn stopped_signal(&self) {
        let notified = self.stop_signal.notified();
        if self.stopped() {
            return;
        }
        notified.await;
    }
}

/// A failure hook must not take the worker down.
fn call_hook(listener: &str, hook: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(hook)).is_err() {
        tracing::error!(%listener, "a failure hook panicked");
    }
}

/// A slot that ended by panicking stops the worker with an error, so
/// `run_until_empty` cannot report an empty queue it did not empty.
fn settle_slot(done: Result<(), tokio::task::JoinError>, shared: &Shared) {
    // `process` catches listener panics: a panic here is the worker's own bug.
    if let Err(error) = done
        && error.is_panic()
    {
        tracing::error!(error = %Chain(&error), "a worker slot panicked; the worker stops");
        lock(&shared.error).get_or_insert(QueueError::WorkerPanicked(panic_message(
            &*error.into_panic(),
        )));
        shared.stop();
    }
}

/// `backoff` plus up to `fraction` of it, spread by the job and attempt.
fn with_jitter(backoff: Duration, fraction: f64, id: &str, attempt: u32) -> Duration {
    if fraction <= 0.0 || backoff.is_zero() {
        return backoff;
    }
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write(id.as_bytes());
    hasher.write_u32(attempt);
    let unit = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64;
    backoff + backoff.mul_f64(fraction * unit)
}

/// Completes on SIGINT or SIGTERM (on other platforms, Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::with_jitter;
    use std::time::Duration;

    #[test]
    fn jitter_stays_within_its_fraction() {
        let base = Duration::from_secs(10);
        assert_eq!(with_jitter(base, 0.0, "a", 1), base);
        for attempt in 0..50 {
            let d = with_jitter(base, 0.5, "job", attempt);
            assert!(d >= base && d <= base + base / 2, "{d:?}");
        }
    }
}
