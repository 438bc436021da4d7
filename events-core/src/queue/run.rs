//! How one try of a job runs (the one place that catches panics and applies
//! timeouts), where a dispatch's jobs go, and the in-process runner used when
//! no queue is configured.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::Notify;

use super::{FailedJob, Job, Queue, QueueError};
use crate::context::{Context, Directive, JobRun, StateMap, lock};
use crate::error::Chain;
use crate::listener::{BoxError, BoxFuture, ListenerDef, Outcome, RetryDefaults, Run};
use crate::observe::{Interest, Observers};
use crate::registry::registry;
use crate::testing::QueueFakeState;

/// Why one try of a job failed. Its [`Chain`](crate::error::Chain) (this
/// error, then its `source()`) is what lands in a failed job's `error`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// No listener of that name is registered (renamed or removed).
    #[error("no listener named `{listener}` is registered (was it renamed or removed?)")]
    UnknownListener {
        /// The name in the job.
        listener: String,
    },
    /// The listener is registered but is not queued.
    #[error("listener `{listener}` is not a queued listener")]
    NotQueued {
        /// The name in the job.
        listener: String,
    },
    /// The payload does not deserialize into the listener's event any more.
    #[error("the payload of `{event}` no longer deserializes for listener `{listener}`")]
    Payload {
        /// The listener.
        listener: String,
        /// The event's name.
        event: String,
        /// What serde said.
        source: serde_json::Error,
    },
    /// The listener returned an error.
    #[error("listener `{listener}` failed")]
    Failed {
        /// The listener.
        listener: String,
        /// What it returned.
        source: BoxError,
    },
    /// The listener panicked.
    #[error("listener `{listener}` panicked: {message}")]
    Panicked {
        /// The listener.
        listener: String,
        /// The panic message.
        message: String,
    },
    /// The listener ran past its timeout and was cancelled.
    #[error("listener `{listener}` timed out after {after:?}")]
    TimedOut {
        /// The listener.
        listener: String,
        /// The timeout.
        after: Duration,
    },
}

impl JobError {
    /// Whether no later try can go otherwise: a payload that does not
    /// deserialize into the listener's event, or a job for a listener that
    /// is not queued. The retry rule fails such a job at once, whatever
    /// tries it has left.
    pub fn is_permanent(&self) -> bool {
        matches!(self, JobError::Payload { .. } | JobError::NotQueued { .. })
    }
}

/// Runs one try of `job`: looks its listener up by name, rebuilds the event,
/// runs the listener under its timeout and catches a panic. Every way it can
/// go wrong comes back as a [`JobError`]. The listener gets no application
/// state: a `State<T>` parameter fails the try in words.
pub async fn run_job(job: &Job) -> Result<(), JobError> {
    run_job_in(job, Arc::default()).await.0
}

/// [`run_job`] with the application state `state`.
/// Also returns what the listener asked of its job.
pub(crate) async fn run_job_in(
    job: &Job,
    state: Arc<StateMap>,
) -> (Result<(), JobError>, Option<Directive>) {
    let Some(listener) = registry().listener(&job.listener) else {
        let unknown = JobError::UnknownListener {
            listener: job.listener.clone(),
        };
        return (Err(unknown), None);
    };
    let run = JobRun::new(job.clone(), state);
    let result = run_job_with(listener.def, run.job(), None, run.context()).await;
    (result, run.context().take_directive())
}

/// What becomes of a job after one try: the one retry rule, which the worker
/// and the in-process runner both follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It succeeded: the job is done.
    Done,
    /// Its listener asked to run again after this long; the try does not
    /// count.
    Release(Duration),
    /// It failed with tries left: run again after `after`.
    Retry { error: String, after: Duration },
    /// It failed for good (its last try, or its listener said not to
    /// retry): to the failed store with this error.
    Fail(String),
}

/// The retry rule. A listener's request wins: released, the job runs again
/// untried after its delay; failed without retry, it goes to the failed
/// store with the reason (and the listener's error, if any). An error that
/// cannot heal ([`JobError::is_permanent`]: a payload that does not
/// deserialize) fails the job at once. Otherwise a failed try with tries
/// left is retried after the listener's backoff for that attempt (the
/// list's last value repeats; `retry`'s backoff when the listener declares
/// none), and the last failed try fails the job.
pub(crate) fn verdict(
    job: &Job,
    options: &crate::listener::QueueOptions,
    retry: &RetryDefaults,
    result: Result<(), JobError>,
    directive: Option<Directive>,
) -> Verdict {
    decide(job, options, retry, &result, directive)
}

/// [`verdict`], leaving the try's result to the caller.
pub(crate) fn decide(
    job: &Job,
    options: &crate::listener::QueueOptions,
    retry: &RetryDefaults,
    result: &Result<(), JobError>,
    directive: Option<Directive>,
) -> Verdict {
    match (directive, result) {
        (Some(Directive::Release(after)), _) => Verdict::Release(after),
        (Some(Directive::Fail(reason)), Ok(())) => Verdict::Fail(reason),
        (Some(Directive::Fail(reason)), Err(error)) => {
            Verdict::Fail(format!("{reason} ({})", Chain(error)))
        }
        (Some(Directive::Retry(after, reason)), _) if job.attempt < job.max_tries => {
            Verdict::Retry {
                error: reason,
                after,
            }
        }
        (Some(Directive::Retry(_, reason)), _) => Verdict::Fail(reason),
        (None, Ok(())) => Verdict::Done,
        (None, Err(error)) if job.attempt < job.max_tries && !error.is_permanent() => {
            Verdict::Retry {
                error: Chain(error).to_string(),
                after: options.backoff_after_or(job.attempt, retry),
            }
        }
        (None, Err(error)) => Verdict::Fail(Chain(error).to_string()),
    }
}

/// One try of a job as runners make it: the observers told it is claimed,
/// the listener run under their span; what the listener asked of its job
/// comes back with the result.
pub(crate) async fn observed_try(
    def: &ListenerDef,
    run: &JobRun,
    timeout: Option<Duration>,
    observers: &Observers,
) -> (Result<(), JobError>, Option<Directive>) {
    use tracing::Instrument as _;
    let job = run.job();
    observers.each(Interest::JOBS, |o| o.job_claimed(job));
    let attempt = run_job_with(def, job, timeout, run.context());
    let result = match observers.span(|o| o.job_span(job)) {
        Some(span) => attempt.instrument(span).await,
        None => attempt.await,
    };
    (result, run.context().take_directive())
}

/// Runs one try of `job` with its listener `def`, under the listener's
/// timeout or else `default_timeout`. A panic anywhere in the try (in the
/// listener, its event's `Deserialize`, or the timer) comes back as
/// [`JobError::Panicked`].
pub(crate) async fn run_job_with(
    def: &ListenerDef,
    job: &Job,
    default_timeout: Option<Duration>,
    ctx: &Context,
) -> Result<(), JobError> {
    match CatchUnwind(Box::pin(try_once(def, job, default_timeout, ctx))).await {
        Ok(result) => result,
        Err(panic) => Err(JobError::Panicked {
            listener: job.listener.clone(),
            message: panic_message(&*panic),
        }),
    }
}

async fn try_once(
    def: &ListenerDef,
    job: &Job,
    default_timeout: Option<Duration>,
    ctx: &Context,
) -> Result<(), JobError> {
    let Run::Queued {
        job: body,
        options,
        is_async,
        ..
    } = def.run
    else {
        return Err(JobError::NotQueued {
            listener: job.listener.clone(),
        });
    };
    let run = body(&job.event, &job.payload, ctx).map_err(|source| JobError::Payload {
        listener: job.listener.clone(),
        event: job.event.clone(),
        source,
    })?;
    let run = run_off_thread_if_blocking(run, is_async, job);
    let outcome = match options.timeout().or(default_timeout) {
        Some(after) => tokio::time::timeout(after, run)
            .await
            .map_err(|_| JobError::TimedOut {
                listener: job.listener.clone(),
                after,
            })?,
        None => run.await,
    };
    match outcome {
        Ok(_flow) => Ok(()),
        Err(source) => Err(JobError::Failed {
            listener: job.listener.clone(),
            source,
        }),
    }
}

/// A plain `fn` listener blocks while it runs: run it on a thread of its
/// own (see [`threads`](super::threads)), so its timeout can fire and the
/// runtime's other tasks go on. Past its timeout it is abandoned: its thread
/// finishes in the background, and nothing (not the runtime's shutdown)
/// waits for it.
fn run_off_thread_if_blocking(
    run: BoxFuture<'static, Outcome>,
    is_async: bool,
    job: &Job,
) -> BoxFuture<'static, Outcome> {
    if is_async {
        return run;
    }
    // The thread runs in the span of the try (an observer's `events.job`),
    // so what the listener logs belongs to it.
    let span = tracing::Span::current();
    let started = super::threads::run(&job.id, job.attempt, &job.listener, move || {
        span.in_scope(|| poll_to_end(run))
    });
    let listener = job.listener.clone();
    Box::pin(async move {
        let done = started.map_err(|error| {
            BoxError::from(format!(
                "cannot start a thread for listener `{listener}`: {error}"
            ))
        })?;
        match done.await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => {
                Err(format!("the thread of listener `{listener}` ended without a result").into())
            }
        }
    })
}

/// Drives a future whose body is synchronous: it completes on its first
/// poll, so no wake-up is ever needed.
fn poll_to_end<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = TaskContext::from_waker(std::task::Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

/// Polls a future, turning a panic into a value.
pub(crate) struct CatchUnwind<F>(pub(crate) Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    }
}

/// Where a dispatcher's jobs go.
#[derive(Debug, Clone)]
pub(crate) enum QueueTarget {
    /// Spawned on the dispatching Tokio runtime.
    InProcess,
    /// Stored in a queue for workers.
    Queue(Queue),
}

/// What a dispatcher gives the jobs it runs in-process (and the fake's
/// `run_pending`): its state, its observers and its retry defaults.
#[derive(Clone, Default)]
pub(crate) struct JobEnv {
    pub(crate) state: Arc<StateMap>,
    pub(crate) observers: Observers,
    pub(crate) retry: RetryDefaults,
    /// The dispatcher's in-process jobs not ended yet.
    pub(crate) in_flight: Arc<InFlight>,
}

/// Where one dispatch's jobs go: the dispatcher's target, or the test's
/// queue fake; each with what jobs run in-process get.
pub(crate) enum JobSink<'a> {
    Target(&'a QueueTarget, &'a JobEnv),
    Fake(&'a QueueFakeState, &'a JobEnv),
}

impl JobSink<'_> {
    /// Hands over all of one dispatch's jobs at once: a queue stores them
    /// in one atomic [`enqueue_many`](super::Backend::enqueue_many), so a
    /// dispatch that fails to enqueue leaves none behind; in-process, they
    /// are spawned only once a runtime is known to be there.
    ///
    /// `observers` hear of each job once it is stored, and before an
    /// in-process job can start.
    pub(crate) async fn push_all(
        &self,
        jobs: Vec<(&'static ListenerDef, Job)>,
        observers: Option<&Observers>,
    ) -> Result<(), QueueError> {
        // Only observers of jobs hear of them (and cost the copy below).
        let observers = observers.filter(|o| o.want(Interest::JOBS));
        let enqueued = |job: &Job| {
            if let Some(observers) = observers {
                observers.each(Interest::JOBS, |o| o.job_enqueued(job));
            }
        };
        match self {
            JobSink::Fake(fake, env) => {
                for (_, job) in jobs {
                    enqueued(&job);
                    fake.push(job, env);
                }
                Ok(())
            }
            JobSink::Target(QueueTarget::Queue(queue), _) => {
                let jobs: Vec<Job> = jobs.into_iter().map(|(_, job)| job).collect();
                // Observers hear of the jobs only once they are stored.
                let stored = observers.map(|_| jobs.clone());
                queue.enqueue_many(jobs).await?;
                stored.iter().flatten().for_each(enqueued);
                Ok(())
            }
            JobSink::Target(QueueTarget::InProcess, env) => {
                let runtime =
                    tokio::runtime::Handle::try_current().map_err(|_| QueueError::NoRuntime)?;
                for (def, job) in jobs {
                    enqueued(&job);
                    // Tracked before it is spawned: a `drain` right after
                    // the dispatch waits for it.
                    let tracked = env.in_flight.track(&job);
                    runtime.spawn(run_in_process(def, job, (*env).clone(), tracked));
                }
                Ok(())
            }
        }
    }
}

/// Runs a job in-process with its listener's delay, tries and backoff (the
/// job's `max_tries`, and the retry defaults' backoff when the listener
/// declares none), what the listener asks through its context, and the
/// dispatcher's observers watching, as a worker's would; after the last
/// try, the listener's `on_failure` hook is called.
async fn run_in_process(def: &'static ListenerDef, job: Job, env: JobEnv, tracked: Tracked) {
    if let Run::Queued { options, .. } = def.run {
        pause(options.delay()).await;
    }
    let _ = run_to_end(def, job, &env, Waits::Sleep, Some(&tracked)).await;
    tracked.ended();
}

/// How [`run_to_end`] spends the waits the retry rule asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waits {
    /// Sleeps through backoffs and releases: the in-process runner.
    Sleep,
    /// Retries at once and hands a released job back: the queue fake's
    /// `run_pending`, which a test awaits.
    Skip,
}

/// How a job run in this process ended.
pub(crate) enum Ended {
    /// Its listener succeeded.
    Done,
    /// Its listener asked to run again later, its try not counted (only
    /// with [`Waits::Skip`]).
    Released(Job),
    /// It failed for good (its hook called): the error of its last try, or
    /// the reason its listener gave for not retrying.
    Failed(JobError),
}

/// Runs `job` in this process until the retry rule ([`verdict`], the one
/// the worker follows) says it is done or failed (or, skipping waits,
/// released). Observers hear of each try and decision, as from a worker;
/// a job that fails for good has its listener's `on_failure` hook called.
pub(crate) async fn run_to_end(
    def: &'static ListenerDef,
    mut job: Job,
    env: &JobEnv,
    waits: Waits,
    tracked: Option<&Tracked>,
) -> Ended {
    let Run::Queued { options, .. } = def.run else {
        return Ended::Failed(JobError::NotQueued {
            listener: job.listener,
        });
    };
    let observers = &env.observers;
    loop {
        job.attempt += 1;
        if let Some(tracked) = tracked {
            tracked.update(&job);
        }
        let run = JobRun::new(job, env.state.clone());
        let started = std::time::Instant::now();
        let (result, directive) = observed_try(def, &run, None, observers).await;
        job = run.into_job();
        let told_to_fail = matches!(directive, Some(Directive::Fail(_)));
        match decide(&job, &options, &env.retry, &result, directive) {
            Verdict::Done => {
                observers.each(Interest::JOBS, |o| o.job_succeeded(&job, started.elapsed()));
                return Ended::Done;
            }
            Verdict::Release(after) => {
                observers.each(Interest::JOBS, |o| o.job_released(&job, after));
                job.attempt -= 1;
                if waits == Waits::Skip {
                    return Ended::Released(job);
                }
                pause(after).await;
            }
            Verdict::Retry { error, after } => {
                tracing::warn!(
                    listener = %job.listener,
                    job = %job.id,
                    attempt = job.attempt,
                    %error,
                    "queued listener failed; retrying"
                );
                observers.each(Interest::JOBS, |o| o.job_retried(&job, &error, after));
                job.last_error = Some(error);
                if waits == Waits::Sleep {
                    pause(after).await;
                }
            }
            Verdict::Fail(error) => {
                tracing::error!(
                    listener = %job.listener,
                    event = %job.event,
                    job = %job.id,
                    attempts = job.attempt,
                    %error,
                    "queued listener failed"
                );
                observers.each(Interest::JOBS, |o| o.job_failed(&job, &error));
                let failed = FailedJob::from_job(job.clone(), &error, SystemTime::now());
                call_failure_hook(def, &failed);
                return Ended::Failed(match result {
                    Err(last) if !told_to_fail => last,
                    _ => JobError::Failed {
                        listener: job.listener,
                        source: error.into(),
                    },
                });
            }
        }
    }
}

/// Calls `def`'s `on_failure` hook with a job that failed for good; a hook
/// that panics is logged, not propagated.
pub(crate) fn call_failure_hook(def: &ListenerDef, failed: &FailedJob) {
    if let Some(hook) = def.on_failure
        && std::panic::catch_unwind(AssertUnwindSafe(|| hook(failed))).is_err()
    {
        tracing::error!(listener = def.name, job = %failed.id, "a failure hook panicked");
    }
}

/// A dispatcher's in-process jobs that have not ended, for
/// [`Dispatcher::drain`](crate::Dispatcher::drain).
#[derive(Default)]
pub(crate) struct InFlight {
    /// Each job as of its latest try, by the order it was spawned in.
    jobs: Mutex<BTreeMap<u64, Job>>,
    next: AtomicU64,
    /// Wakes `drain` when a job ends.
    ended: Notify,
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight")
            .field("jobs", &lock(&self.jobs).len())
            .finish()
    }
}

impl InFlight {
    /// Counts `job` in until the returned guard drops.
    pub(crate) fn track(self: &Arc<Self>, job: &Job) -> Tracked {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.jobs).insert(key, job.clone());
        Tracked {
            in_flight: self.clone(),
            key,
            ended: AtomicBool::new(false),
        }
    }

    /// Waits until every job tracked has ended, or `timeout` passed;
    /// returns the jobs still pending or running then (none: all ended).
    pub(crate) async fn drain(&self, timeout: Duration) -> Vec<Job> {
        let deadline = tokio::time::Instant::now().checked_add(timeout);
        loop {
            let ended = self.ended.notified();
            let mut ended = std::pin::pin!(ended);
            ended.as_mut().enable();
            if lock(&self.jobs).is_empty() {
                return Vec::new();
            }
            match deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, ended).await.is_err() {
                        return lock(&self.jobs).values().cloned().collect();
                    }
                }
                None => ended.await,
            }
        }
    }
}

/// One in-process job counted in its dispatcher's [`InFlight`]. Dropped
/// before [`ended`](Self::ended) (its task dropped with its runtime, its
/// delay or backoff still running), it logs a warning naming the job.
pub(crate) struct Tracked {
    in_flight: Arc<InFlight>,
    key: u64,
    ended: AtomicBool,
}

impl Tracked {
    /// Records the job's latest try.
    fn update(&self, job: &Job) {
        if let Some(slot) = lock(&self.in_flight.jobs).get_mut(&self.key) {
            slot.clone_from(job);
        }
    }

    /// The job ended (done or failed): nothing to warn about.
    fn ended(&self) {
        self.ended.store(true, Ordering::Relaxed);
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let job = lock(&self.in_flight.jobs).remove(&self.key);
        self.in_flight.ended.notify_waiters();
        if let Some(job) = job
            && !self.ended.load(Ordering::Relaxed)
        {
            tracing::warn!(
                listener = %job.listener,
                event = %job.event,
                job = %job.id,
                tries = job.attempt,
                "in-process job for `{}` dropped before it ran to its end: its runtime shut down with it pending; \
                 wait for in-process jobs with `Dispatcher::drain` or `events::shutdown` before the runtime ends",
                job.listener
            );
        }
    }
}

/// Sleeps, without touching the timer for a zero wait (so runtimes built
/// without `enable_time` work when no delay is configured).
async fn pause(wait: Duration) {
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
}
