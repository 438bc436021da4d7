//! What a listener can take besides its event, the way axum handlers take
//! extractors: `&Context` or `Context` (the envelope and, for a queued
//! listener, its job), `State<T>` (application state given to the
//! dispatcher and the worker), and any type implementing [`FromContext`].
//!
//! (This example is its own crate: a listener taking `State<Audit>` makes
//! every dispatcher of its program need an `Audit`.)
//!
//! ```standalone_crate
//! use events::prelude::*;
//! use events::{Context, State};
//! use std::sync::{Arc, Mutex};
//!
//! #[derive(Clone, Default)]
//! struct Audit(Arc<Mutex<Vec<String>>>);
//!
//! #[event]
//! struct Signed { user: u64 }
//!
//! #[listener]
//! fn record(e: &Signed, ctx: &Context, State(audit): State<Audit>) {
//!     let actor = ctx.metadata().get("actor_id").unwrap_or("nobody");
//!     audit.0.lock().unwrap().push(format!("{actor} signed {}", e.user));
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let audit = Audit::default();
//! let dispatcher = events::Dispatcher::builder().state(audit.clone()).build()?;
//! dispatcher.dispatch(Signed { user: 7 }).with("actor_id", "42").await?;
//! assert_eq!(*audit.0.lock().unwrap(), ["42 signed 7"]);
//! # Ok(()) }
//! ```

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::envelope::{Envelope, EventId, Metadata};

/// What a listener sees of the dispatch it runs in: the event's envelope
/// (id, occurred-at, metadata) and, for a queued listener, its job. Cheap to
/// clone.
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

struct Inner {
    source: Source,
    state: Arc<StateMap>,
}

/// Where the envelope comes from: a dispatch, or the job that stores it
/// (held whole, so building a job's context copies nothing of it). Both
/// live behind the context's one `Arc`: the sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Source {
    Dispatch {
        event: &'static str,
        envelope: Envelope,
    },
    Job(JobContext),
}

impl Context {
    /// A context for a dispatch of `event` (what the dispatcher builds).
    pub(crate) fn for_dispatch(
        event: &'static str,
        envelope: Envelope,
        state: Arc<StateMap>,
    ) -> Context {
        Context {
            inner: Arc::new(Inner {
                source: Source::Dispatch { event, envelope },
                state,
            }),
        }
    }

    /// A context with the given envelope and no state, outside any
    /// dispatcher: for calling a listener's function directly in a test.
    ///
    /// ```
    /// let ctx = events::Context::detached(events::Envelope::new().with("tenant", "acme"));
    /// assert_eq!(ctx.metadata().get("tenant"), Some("acme"));
    /// assert!(ctx.job().is_none());
    /// ```
    pub fn detached(envelope: Envelope) -> Context {
        Context::for_dispatch("", envelope, Arc::default())
    }

    /// The event's name (empty for a [`detached`](Self::detached) context).
    pub fn event(&self) -> &str {
        match &self.inner.source {
            Source::Dispatch { event, .. } => event,
            Source::Job(job) => &job.job.event,
        }
    }

    /// The event's envelope.
    pub fn envelope(&self) -> &Envelope {
        match &self.inner.source {
            Source::Dispatch { envelope, .. } => envelope,
            Source::Job(job) => &job.job.envelope,
        }
    }

    /// The event's id: unique, time-ordered, the same for every listener of
    /// one dispatch and every try of its jobs.
    pub fn event_id(&self) -> EventId {
        self.envelope().id
    }

    /// When the event was dispatched.
    pub fn occurred_at(&self) -> SystemTime {
        self.envelope().occurred_at
    }

    /// The event's metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.envelope().metadata
    }

    /// The job, for a queued listener; `None` inside dispatch.
    pub fn job(&self) -> Option<&JobContext> {
        match &self.inner.source {
            Source::Job(job) => Some(job),
            Source::Dispatch { .. } => None,
        }
    }

    /// The application state of type `T` given to the dispatcher or the
    /// worker, if any.
    pub fn state<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.inner.state.get::<T>().cloned()
    }

    /// What the listener asked of its job, taken once by the runner.
    pub(crate) fn take_directive(&self) -> Option<Directive> {
        lock(&self.job()?.directive).take()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("event", &self.event())
            .field("envelope", self.envelope())
            .field("job", &self.job())
            .finish_non_exhaustive()
    }
}

/// One try of a job: its context, which holds the job itself, so building
/// it copies nothing of the job.
pub(crate) struct JobRun(Context);

impl JobRun {
    /// The context of one try of `job`.
    pub(crate) fn new(job: crate::queue::Job, state: Arc<StateMap>) -> JobRun {
        JobRun(Context {
            inner: Arc::new(Inner {
                source: Source::Job(JobContext {
                    job,
                    directive: Mutex::new(None),
                }),
                state,
            }),
        })
    }

    /// The context listeners get.
    pub(crate) fn context(&self) -> &Context {
        &self.0
    }

    /// The job.
    pub(crate) fn job(&self) -> &crate::queue::Job {
        match &self.0.inner.source {
            Source::Job(job) => &job.job,
            Source::Dispatch { .. } => unreachable!("a `JobRun` is only built from a job"),
        }
    }

    /// The job back, for its next try (cloned only if a listener kept a
    /// clone of its context).
    pub(crate) fn into_job(self) -> crate::queue::Job {
        match Arc::try_unwrap(self.0.inner) {
            Ok(Inner {
                source: Source::Job(job),
                ..
            }) => job.job,
            Ok(Inner { .. }) => unreachable!("a `JobRun` is only built from a job"),
            Err(shared) => match &shared.source {
                Source::Job(job) => job.job.clone(),
                Source::Dispatch { .. } => unreachable!("a `JobRun` is only built from a job"),
            },
        }
    }
}

/// The job a queued listener runs as, seen through [`Context::job`]: who it
/// is, which try this is, and the two things a listener may ask of it.
pub struct JobContext {
    job: crate::queue::Job,
    directive: Mutex<Option<Directive>>,
}

/// What a listener asked of its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Directive {
    /// Run again after this long, without counting this try.
    Release(Duration),
    /// Go to the failed store now, with this reason.
    Fail(String),
    /// Count this try as failed with this reason and, tries left, run
    /// again after this long.
    Retry(Duration, String),
}

impl JobContext {
    /// The job's id.
    pub fn id(&self) -> &str {
        &self.job.id
    }

    /// The queue it was claimed from.
    pub fn queue(&self) -> &str {
        &self.job.queue
    }

    /// The listener's name (the job's routing key).
    pub fn listener(&self) -> &str {
        &self.job.listener
    }

    /// This try's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.job.attempt
    }

    /// How many tries the job has.
    pub fn max_tries(&self) -> u32 {
        self.job.max_tries
    }

    /// Whether this is the last try: failing now sends the job to the
    /// failed store.
    pub fn is_last_try(&self) -> bool {
        self.job.attempt >= self.job.max_tries
    }

    /// Asks for the job to run again after `delay`, without counting this
    /// try as a failure (Laravel's `$this->release($delay)`): when the
    /// listener returns, whatever it returns, the job goes back to its queue
    /// with its tries as they were before this one.
    pub fn release_after(&self, delay: Duration) {
        *lock(&self.directive) = Some(Directive::Release(delay));
    }

    /// Asks for this try to count as failed with `reason` and, with tries
    /// left, for the job to run again after `delay` instead of the
    /// listener's backoff (a delay the listener learnt at run time: a
    /// `Retry-After`, a schedule of its own). When the listener returns,
    /// whatever it returns, the job is retried as after an error, or on
    /// its last try goes to the failed store with `reason`.
    pub fn retry_after(&self, delay: Duration, reason: impl Into<String>) {
        *lock(&self.directive) = Some(Directive::Retry(delay, reason.into()));
    }

    /// Asks for the job not to be retried: when the listener returns,
    /// whatever it returns, the job goes straight to the failed store with
    /// `reason` (Laravel's `$this->fail($reason)`), even with tries left.
    pub fn fail_without_retry(&self, reason: impl Into<String>) {
        *lock(&self.directive) = Some(Directive::Fail(reason.into()));
    }
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.job.id)
            .field("queue", &self.job.queue)
            .field("listener", &self.job.listener)
            .field("attempt", &self.job.attempt)
            .field("max_tries", &self.job.max_tries)
            .finish()
    }
}

/// Locks a mutex whose data stays valid if a holder panicked (every
/// mutex of this crate: counters, lists, maps).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Application state, by type: what `Dispatcher::builder().state(..)` and
/// `Worker::state(..)` collect, and what `State<T>` parameters (of
/// listeners, of `#[channel]` callbacks) are taken from.
#[derive(Default)]
pub struct StateMap {
    values: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl StateMap {
    /// No state.
    pub fn new() -> StateMap {
        StateMap::default()
    }

    /// Adds `value`, replacing a value of the same type.
    pub fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) {
        self.values.insert(TypeId::of::<T>(), Box::new(value));
    }

    /// The value of type `T`.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.values.get(&TypeId::of::<T>())?.downcast_ref()
    }

    /// Whether a value of the type is present.
    pub fn has(&self, type_id: TypeId) -> bool {
        self.values.contains_key(&type_id)
    }
}

impl fmt::Debug for StateMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StateMap({} values)", self.values.len())
    }
}

/// Application state a listener takes as `State(pool): State<Pool>`.
///
/// Give it to the dispatcher (`Dispatcher::builder().state(pool)`) for
/// listeners that run inside dispatch, and to the worker
/// (`Worker::new(q).state(pool)`) for queued ones. A listener that needs a
/// state type nobody gave is a start-up error naming both, never a panic
/// inside a dispatch. Any `Clone + Send + Sync + 'static` type works; give
/// several types with several calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct State<T>(pub T);

/// A state type a listener needs, checked at start-up.
#[derive(Clone, Copy)]
pub struct StateNeed {
    type_id: fn() -> TypeId,
    type_name: fn() -> &'static str,
}

impl StateNeed {
    /// The need of a `State<T>`.
    pub const fn of<T: 'static>() -> StateNeed {
        StateNeed {
            type_id: TypeId::of::<T>,
            type_name: std::any::type_name::<T>,
        }
    }

    /// The state type's id.
    pub fn type_id(&self) -> TypeId {
        (self.type_id)()
    }

    /// The state type's name.
    pub fn type_name(&self) -> &'static str {
        (self.type_name)()
    }
}

impl fmt::Debug for StateNeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.type_name())
    }
}

/// Why an extractor could not give a listener its parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// The state type was not given to the dispatcher or worker running the
    /// listener. Start-up validation reports this before any dispatch; it
    /// is seen only when a listener runs outside them (`run_job`).
    #[error(
        "no state of type `{type_name}` was given: add it with `Dispatcher::builder().state(..)` or `Worker::new(..).state(..)`"
    )]
    MissingState {
        /// The state's type.
        type_name: &'static str,
    },
    /// An extractor of the application's own refused, in its own words.
    #[error("{0}")]
    Rejected(String),
}

/// A listener parameter taken by value after the event, built from the
/// [`Context`] of the run: `Context`, `State<T>`, `Metadata`, `EventId`,
/// `Envelope`, or a type of the application's own.
///
/// ```
/// use events::{Context, ExtractError, FromContext};
///
/// /// The actor of the event, from its metadata.
/// struct Actor(String);
///
/// impl FromContext for Actor {
///     fn from_context(ctx: &Context) -> Result<Self, ExtractError> {
///         ctx.metadata()
///             .get("actor_id")
///             .map(|id| Actor(id.to_owned()))
///             .ok_or_else(|| ExtractError::Rejected("the event has no `actor_id`".into()))
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a listener parameter",
    label = "after the event, a listener takes extractors: `&Context`, `Context`, `State<T>`, `Metadata`, `EventId`",
    note = "for application state, write `State(value): State<{Self}>` and give it with `Dispatcher::builder().state(..)`; or implement `events::FromContext` for `{Self}`"
)]
pub trait FromContext: Sized + Send + 'static {
    /// The state type this extractor needs, checked when the dispatcher is
    /// built and when the worker starts.
    const NEEDS: Option<StateNeed> = None;

    /// Builds the parameter.
    fn from_context(ctx: &Context) -> Result<Self, ExtractError>;
}

impl FromContext for Context {
    fn from_context(ctx: &Context) -> Result<Self, ExtractError> {
        Ok(ctx.clone())
    }
}

impl<T: Clone + Send + Sync + 'static> FromContext for State<T> {
    const NEEDS: Option<StateNeed> = Some(StateNeed::of::<T>());

    fn from_context(ctx: &Context) -> Result<Self, ExtractError> {
        ctx.state::<T>()
            .map(State)
            .ok_or(ExtractError::MissingState {
                type_name: std::any::type_name::<T>(),
            })
    }
}

impl FromContext for Metadata {
    fn from_context(ctx: &Context) -> Result<Self, ExtractError> {
        Ok(ctx.metadata().clone())
    }
}

impl FromContext for EventId {
    fn from_context(ctx: &Context) -> Result<Self, ExtractError> {
        Ok(ctx.event_id())
    }
}

impl FromContext for Envelope {
    fn from_context(ctx: &Context) -> Result<Self, ExtractError> {
        Ok(ctx.envelope().clone())
    }
}

/// A listener parameter taken by reference after the event: only
/// `&Context`.
#[diagnostic::on_unimplemented(
    message = "a listener cannot borrow `{Self}`",
    label = "after the event, the one parameter a listener borrows is `&Context`",
    note = "take extractors such as `State<T>` by value: `State(pool): State<Pool>`"
)]
pub trait FromContextRef: 'static {
    /// Borrows the parameter from the context.
    fn from_context_ref(ctx: &Context) -> &Self;
}

impl FromContextRef for Context {
    fn from_context_ref(ctx: &Context) -> &Self {
        ctx
    }
}
