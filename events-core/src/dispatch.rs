//! Dispatch: running an event's sync listeners in order and enqueueing its
//! queued ones.

use std::any::TypeId;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Duration;

use crate::context::{Context, StateMap};
use crate::envelope::{Envelope, EventId, Metadata};
use crate::event::{AnyEvent, Event};
use crate::observe::{
    DispatchRecord, Interest, ListenerOutcome, ListenerRun, Observer, Observers, Stopwatch,
};
use std::ops::ControlFlow;

use crate::config::{Config, ConfigError};
use crate::listener::UnitFn;
use crate::listener::{BoxError, EncodeError, Flow, ListenerDef, Outcome, RetryDefaults, Run};
use crate::queue::{Job, JobEnv, JobSink, Queue, QueueError, QueueTarget};
use crate::registry::{self, Call, Inline, RegistryError, Table};
use crate::store::{AppendHook, NewEvent, Store};
use crate::testing;

/// What a dispatch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dispatched {
    // `u32` keeps a dispatch's result small: it is returned by every
    // dispatch, through every future's `poll`.
    ran: u32,
    queued: u32,
    skipped: u32,
    halted_by: Option<&'static str>,
    faked: bool,
}

impl Dispatched {
    /// How many sync listeners ran.
    pub fn ran(&self) -> usize {
        self.ran as usize
    }
    /// How many jobs were enqueued for queued listeners.
    pub fn queued(&self) -> usize {
        self.queued as usize
    }
    /// How many listeners were skipped: a `when = ..` condition said no, or
    /// a queued wildcard listener met an event that cannot be serialized.
    pub fn skipped(&self) -> usize {
        self.skipped as usize
    }
    /// Whether a listener returned `Flow::Stop`.
    pub fn halted(&self) -> bool {
        self.halted_by.is_some()
    }
    /// The listener that returned `Flow::Stop`.
    pub fn halted_by(&self) -> Option<&'static str> {
        self.halted_by
    }
    /// Whether an [`events::fake()`](crate::fake) recorded the event instead
    /// of dispatching it.
    pub fn faked(&self) -> bool {
        self.faked
    }
}

/// Why a dispatch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// A sync listener returned an error; the listeners after it did not run
    /// and nothing was enqueued.
    #[error("listener `{listener}` failed while handling `{event}`")]
    Listener {
        /// The failing listener.
        listener: &'static str,
        /// The event's name.
        event: &'static str,
        /// What the listener returned.
        #[source]
        source: BoxError,
    },
    /// A queued listener's event failed to serialize (its `Serialize` impl
    /// returned an error).
    #[error("cannot enqueue `{event}` for queued listener `{listener}`: {reason}")]
    Serialize {
        /// The queued listener.
        listener: &'static str,
        /// The event's name.
        event: &'static str,
        /// Why serialization failed.
        reason: String,
    },
    /// A queued listener's event serializes to JSON that does not read back
    /// into the event, so its job could never run: most often a NaN or
    /// infinite float, which JSON writes as `null`. Nothing was enqueued.
    #[error("cannot enqueue `{event}` for queued listener `{listener}`: {}", unstorable_why(field.as_deref()))]
    Unstorable {
        /// The queued listener.
        listener: &'static str,
        /// The event's name.
        event: &'static str,
        /// The path of the field that does not read back (`amount`,
        /// `items[2].price`), when known.
        field: Option<String>,
        /// What reading the JSON back said.
        #[source]
        source: Box<serde_json::Error>,
    },
    /// The queue refused the dispatch's jobs: none of them was stored (they
    /// go in one atomic write). `listener` is the first of the dispatch's
    /// queued listeners.
    #[error("cannot enqueue the jobs of `{event}` (the first for queued listener `{listener}`)")]
    Enqueue {
        /// The first queued listener of the dispatch.
        listener: &'static str,
        /// The event's name.
        event: &'static str,
        /// What the queue said.
        #[source]
        source: Box<crate::queue::QueueError>,
    },
    /// The event log refused the event: nothing of the dispatch was
    /// stored or enqueued (or, with a store apart from the queue, the event
    /// was stored and its jobs were not: [`StoreError::Enqueue`](crate::store::StoreError::Enqueue)).
    #[error("cannot store `{event}` in the event log")]
    Store {
        /// The event's name.
        event: &'static str,
        /// What the store said.
        #[source]
        source: Box<crate::store::StoreError>,
    },
    /// The registry has a problem (duplicate names) that start-up validation
    /// found.
    #[error("the event registry is invalid")]
    Registry(#[source] Box<RegistryError>),
    /// `EVENTS_QUEUE_URL` names a queue that cannot be opened.
    #[error("cannot open the queue that EVENTS_QUEUE_URL names")]
    QueueUrl(#[source] std::sync::Arc<QueueError>),
    /// A blocking dispatch met something it cannot do without an async
    /// runtime to wait on.
    #[error("cannot dispatch `{event}` from blocking code: {reason}")]
    Blocking {
        /// The event's name.
        event: &'static str,
        /// Why, in words.
        reason: &'static str,
    },
    /// The environment's configuration (`EVENTS_*`) has values that do not
    /// parse, so the default dispatcher was not built.
    #[error("cannot build the default dispatcher: the `EVENTS_*` configuration is invalid")]
    Config(#[source] std::sync::Arc<ConfigError>),
    /// No dispatcher is installed, and the default one cannot run a
    /// listener that takes application state: it has none to give.
    #[error(
        "no dispatcher is installed, and the default one has no state for listener `{listener}`, which takes \
         `State<{type_name}>`: build a dispatcher with `Dispatcher::builder().state(..)` and `events::install` it \
         at start-up"
    )]
    NotInstalled {
        /// A listener that takes state.
        listener: &'static str,
        /// The state type it takes.
        type_name: &'static str,
    },
}

/// Why an event cannot be stored, for [`DispatchError::Unstorable`].
fn unstorable_why(field: Option<&str>) -> String {
    match field {
        Some(field) => format!(
            "field `{field}` would be stored as JSON `null` and not read back (a NaN or infinite float? JSON has no such numbers)"
        ),
        None => {
            "its JSON would not read back into the event, so its job could never run".to_owned()
        }
    }
}

// The big payloads are boxed: a dispatch's result is returned through
// every poll, and the common `Ok` should not carry a large `Err`'s size.

impl From<RegistryError> for DispatchError {
    fn from(problem: RegistryError) -> Self {
        DispatchError::Registry(Box::new(problem))
    }
}

impl DispatchError {
    /// The listener the error concerns, if any.
    pub fn listener(&self) -> Option<&'static str> {
        match self {
            DispatchError::Listener { listener, .. }
            | DispatchError::Serialize { listener, .. }
            | DispatchError::Unstorable { listener, .. }
            | DispatchError::Enqueue { listener, .. } => Some(listener),
            DispatchError::NotInstalled { listener, .. } => Some(listener),
            DispatchError::Registry(_)
            | DispatchError::Store { .. }
            | DispatchError::QueueUrl(_)
            | DispatchError::Blocking { .. }
            | DispatchError::Config(_) => None,
        }
    }
}

/// Dispatches events to the listeners the registry found.
///
/// Cheap to clone. Most programs use the global one through
/// [`Dispatch::dispatch`]; tests and multi-tenant programs build instances.
///
/// ```
/// use events::prelude::*;
///
/// #[event]
/// struct Ping;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dispatcher = events::Dispatcher::builder().build()?;
/// let done = dispatcher.dispatch(Ping).await?;
/// assert_eq!(done.ran(), 0);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    target: QueueTarget,
    /// The state, the observers and the retry defaults (tries and backoff
    /// of queued listeners that declare none): what listeners and jobs run
    /// by this dispatcher get.
    jobs: JobEnv,
    metadata: Option<MetadataProvider>,
    /// The event log, when events are stored.
    log: Option<EventLog>,
    /// `false`: the kill switch is on (see `start_slow`).
    enabled: bool,
    /// What the observers want of a dispatch.
    path: Path,
}

/// How a dispatcher's dispatches go, from what its observers want.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// No observer of dispatches (there may be ones of jobs): only the
    /// listeners run.
    Plain,
    /// Observers of dispatches or listener runs that want no envelope and
    /// no span: the listeners run as on the plain path, with the observers
    /// told (and the clock read, if one asks for timing) around them.
    Lean,
    /// An observer wants the envelope or spans: the envelope is built
    /// first and the dispatch runs boxed, in the observers' span.
    Full,
}

impl Path {
    fn of(observers: &Observers) -> Path {
        if observers.want(Interest::ENVELOPE | Interest::SPANS) {
            Path::Full
        } else if observers.want(Interest::DISPATCHES | Interest::LISTENER_RUNS) {
            Path::Lean
        } else {
            Path::Plain
        }
    }
}

impl Inner {
    /// Enabled and no observer of dispatches: the first poll may take the
    /// plain path, where nothing but the listeners runs. A dispatcher that
    /// is not counts itself in `testing::divert` while it lives, so the
    /// plain path need not ask.
    fn fast(&self) -> bool {
        self.enabled && self.path == Path::Plain && self.log.is_none()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.fast() {
            testing::undivert();
        }
    }
}

/// Where a dispatcher stores events, and which.
struct EventLog {
    store: Store,
    /// Every event, not only `#[event(store)]` ones (`EVENTS_STORE_ENABLED`).
    all: bool,
    hooks: Vec<Arc<dyn AppendHook>>,
}

/// Fills the metadata of every dispatch of a dispatcher, given the event's
/// name (see [`DispatcherBuilder::metadata`]).
pub type MetadataProvider = Arc<dyn Fn(&str, &mut Metadata) + Send + Sync>;

/// Configures a [`Dispatcher`].
#[derive(Default)]
#[must_use]
pub struct DispatcherBuilder {
    queue: Option<Queue>,
    state: StateMap,
    observers: Vec<Arc<dyn Observer>>,
    metadata: Option<MetadataProvider>,
    retry: RetryDefaults,
    disabled: bool,
    store: Option<Store>,
    store_all: bool,
    hooks: Vec<Arc<dyn AppendHook>>,
}

impl DispatcherBuilder {
    /// Stores events in the event log `store`: those declared
    /// `#[event(store)]`, or every event with [`store_all`](Self::store_all).
    ///
    /// An event is stored once its sync listeners have run (a listener
    /// that fails the dispatch keeps it out; one that halts with
    /// `Flow::Stop` does not), together with its queued jobs: in one
    /// transaction where the store and the queue share a database
    /// ([`EventStore::append_with_jobs`](crate::store::EventStore::append_with_jobs)).
    /// An event whose type is not `Serialize` cannot be stored and is
    /// skipped by `store_all`.
    ///
    /// ```
    /// use events::prelude::*;
    /// use events::store::{EventQuery, Store};
    /// use serde::Serialize;
    ///
    /// #[event(name = "appointment.booked", store, entity = "appointment:{id}")]
    /// #[derive(Serialize)]
    /// struct Booked { id: u64 }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = Store::memory();
    /// let dispatcher = events::Dispatcher::builder().store(store.clone()).build()?;
    /// dispatcher.dispatch(Booked { id: 123 }).with("actor_id", "ada").await?;
    ///
    /// let page = store.events(&EventQuery::new().actor("ada")).await?;
    /// assert_eq!(page.events[0].name, "appointment.booked");
    /// assert_eq!(page.events[0].entity.as_ref().unwrap().to_string(), "appointment:123");
    /// # Ok(()) }
    /// ```
    pub fn store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// `true` stores every dispatched event, not only `#[event(store)]`
    /// ones (`EVENTS_STORE_ENABLED=true`). Needs a [`store`](Self::store).
    pub fn store_all(mut self, all: bool) -> Self {
        self.store_all = all;
        self
    }

    /// Adds jobs to every append of stored events, in the same write: how
    /// webhook deliveries are enqueued with the event they deliver.
    pub fn on_append(mut self, hook: impl AppendHook) -> Self {
        self.hooks.push(Arc::new(hook));
        self
    }

    /// Sends queued listeners' jobs to `queue`, for workers to run.
    ///
    /// Without one, jobs run in this process on the dispatching Tokio
    /// runtime, with their delay, tries, backoff and timeout.
    pub fn queue(mut self, queue: Queue) -> Self {
        self.queue = Some(queue);
        self
    }

    /// Gives listeners that run inside dispatch (and, with no queue, queued
    /// ones) the application state they take as `State<T>`. Call it once
    /// per type; a second value of one type replaces the first.
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// Adds an observer of every dispatch (and, with no queue, of the jobs
    /// run in-process). Observers are called in the order given.
    pub fn observe(mut self, observer: impl Observer) -> Self {
        self.observers.push(Arc::new(observer));
        self
    }

    /// Fills the metadata of every dispatch, given the event's name: the
    /// actor, tenant or correlation id of the current request, say. Values
    /// given at the dispatch (`.with(..)`) win: use
    /// [`Metadata::insert_default`].
    ///
    /// ```
    /// use events::prelude::*;
    ///
    /// #[event]
    /// struct Saved;
    ///
    /// #[listener]
    /// fn audit(_: &Saved, ctx: &events::Context) {
    ///     assert_eq!(ctx.metadata().get("tenant"), Some("acme"));
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dispatcher = events::Dispatcher::builder()
    ///     .metadata(|_event, m| m.insert_default("tenant", "acme"))
    ///     .build()?;
    /// dispatcher.dispatch(Saved).await?;
    /// # Ok(()) }
    /// ```
    pub fn metadata(
        mut self,
        provider: impl Fn(&str, &mut Metadata) + Send + Sync + 'static,
    ) -> Self {
        self.metadata = Some(Arc::new(provider));
        self
    }

    /// Tries and backoff for queued listeners that declare none: a job's
    /// tries are fixed when it is enqueued, and the in-process runner waits
    /// the backoff between them (a worker takes its own, with
    /// `Worker::retry_defaults`). Default: one try.
    ///
    /// ```
    /// use events::RetryDefaults;
    /// use std::time::Duration;
    ///
    /// let dispatcher = events::Dispatcher::builder()
    ///     .retry_defaults(RetryDefaults::new(3, [Duration::from_secs(1), Duration::from_secs(5)]))
    ///     .build()?;
    /// # Ok::<(), events::RegistryError>(())
    /// ```
    pub fn retry_defaults(mut self, defaults: RetryDefaults) -> Self {
        self.retry = defaults;
        self
    }

    /// `false` makes a dispatcher that runs no listener and enqueues no job
    /// (fakes in tests still record its events): the kill switch
    /// `EVENTS_ENABLED=false` turns on. Default: `true`.
    ///
    /// A disabled dispatcher's dispatches take the general path, which is
    /// where the switch is checked.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.disabled = !enabled;
        self
    }

    /// Takes the enabled flag and the retry defaults from `config`. The
    /// queue is not opened here: pass [`Config::queue_url`] to
    /// `events::queue::connect` and the queue to [`queue`](Self::queue).
    ///
    /// ```
    /// let config = events::Config::from_vars([("EVENTS_ENABLED", "false")])?;
    /// let dispatcher = events::Dispatcher::builder().config(&config).build()?;
    /// assert!(!dispatcher.is_enabled());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn config(self, config: &Config) -> Self {
        let all = config
            .get(crate::store::STORE_ENABLED)
            .is_some_and(|s| matches!(s.value().trim(), "true" | "1" | "yes" | "on"));
        self.enabled(config.enabled())
            .retry_defaults(config.retry_defaults().clone())
            .store_all(all)
    }

    /// Validates the registry and makes the dispatcher.
    ///
    /// Fails when two listeners (or two events) share a name, or when a
    /// listener this dispatcher runs takes a `State<T>` that was not given
    /// with [`state`](Self::state).
    pub fn build(self) -> Result<Dispatcher, RegistryError> {
        let registry = registry::registry();
        registry.validate()?;
        if self.store.is_some()
            && let Some(problem) = crate::store::upcast_problems().first()
        {
            return Err(problem.clone());
        }
        // A disabled dispatcher runs nothing, so needs nothing.
        let in_process = self.queue.is_none();
        if !self.disabled {
            registry.check_state(
                &self.state,
                |l| in_process || matches!(l.mode(), crate::listener::Mode::Sync),
                "Dispatcher::builder()",
            )?;
        }
        let observers = Observers::new(self.observers);
        let path = Path::of(&observers);
        // The plain path checks none of these: a dispatcher that observes,
        // is disabled or stores events counts itself, while it lives, in
        // the process-wide counter a live fake raises, which sends every
        // dispatch to `start_slow` (one flag read there would push `poll`
        // over the inliner's threshold: +40 instructions a dispatch).
        if path != Path::Plain || self.disabled || self.store.is_some() {
            testing::divert();
        }
        Ok(Dispatcher {
            inner: Arc::new(Inner {
                target: match self.queue {
                    Some(queue) => QueueTarget::Queue(queue),
                    None => QueueTarget::InProcess,
                },
                jobs: JobEnv {
                    state: Arc::new(self.state),
                    observers,
                    retry: self.retry,
                    in_flight: Arc::default(),
                },
                metadata: self.metadata,
                log: self.store.map(|store| EventLog {
                    store,
                    all: self.store_all,
                    hooks: self.hooks,
                }),
                enabled: !self.disabled,
                path,
            }),
        })
    }
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("queue", &self.inner.target)
            .field("state", &self.inner.jobs.state)
            .field("observers", &self.inner.jobs.observers)
            .field("retry", &self.inner.jobs.retry)
            .field("enabled", &self.inner.enabled)
            .finish()
    }
}

impl Dispatcher {
    /// Starts configuring a dispatcher.
    pub fn builder() -> DispatcherBuilder {
        DispatcherBuilder::default()
    }

    /// The queue its jobs go to, `None` when they run in-process.
    pub fn queue(&self) -> Option<&Queue> {
        match &self.inner.target {
            QueueTarget::Queue(queue) => Some(queue),
            QueueTarget::InProcess => None,
        }
    }

    /// The event log it stores events in, if any.
    pub fn store(&self) -> Option<&Store> {
        self.inner.log.as_ref().map(|log| &log.store)
    }

    /// Whether it dispatches at all: `false` when built disabled
    /// (`EVENTS_ENABLED=false` for the default one).
    pub fn is_enabled(&self) -> bool {
        self.inner.enabled
    }

    /// Dispatches `event`: runs its sync listeners in order (higher priority
    /// first, then by name), then enqueues a job per queued listener.
    ///
    /// A listener returning an error stops the rest and its error comes back;
    /// one returning `Flow::Stop` stops the rest quietly. Either way nothing
    /// is enqueued, since queued listeners come after the sync ones.
    pub fn dispatch<E: Event>(&self, event: E) -> Dispatching<'_, E> {
        dispatch_on(Some(self), event)
    }

    /// Waits until the in-process jobs of this dispatcher (a dispatcher
    /// with no queue runs queued listeners in-process) have ended, or
    /// `timeout` passed: call it before `main` returns, so jobs waiting
    /// for their delay or backoff are not dropped with the runtime (they
    /// are logged, as a warning naming each, if they are). Returns the
    /// jobs still pending or running when the time ran out, each as of its
    /// latest try; none when every job ended. Jobs dispatched while it
    /// waits are waited for too. A dispatcher with a queue has no
    /// in-process jobs: it returns at once.
    ///
    /// It waits on the Tokio timer when there is a job to wait for.
    ///
    /// ```
    /// use events::prelude::*;
    /// use serde::{Deserialize, Serialize};
    /// use std::time::Duration;
    ///
    /// #[event]
    /// #[derive(Serialize, Deserialize)]
    /// struct Uploaded { id: u32 }
    ///
    /// #[listener(queue = "thumbnails")]
    /// async fn thumbnail(_: &Uploaded) {}
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dispatcher = events::Dispatcher::builder().build()?;
    /// dispatcher.dispatch(Uploaded { id: 1 }).await?;
    /// let left = dispatcher.drain(Duration::from_secs(5)).await;
    /// assert!(left.is_empty(), "still pending: {left:?}");
    /// # Ok(()) }
    /// ```
    pub async fn drain(&self, timeout: std::time::Duration) -> Vec<Job> {
        self.inner.jobs.in_flight.drain(timeout).await
    }

    /// A dispatch's envelope: a new id, now, the metadata given plus what
    /// the provider and the observers add.
    fn envelope(&self, event: &'static str, mut metadata: Metadata) -> Envelope {
        if let Some(provider) = &self.inner.metadata {
            provider(event, &mut metadata);
        }
        self.inner
            .jobs
            .observers
            .each(Interest::ENVELOPE, |o| o.enrich(event, &mut metadata));
        let id = EventId::new();
        Envelope::from_parts(id, id.timestamp(), metadata)
    }
}

/// The future every dispatch returns: await it, add metadata first with
/// [`with`](Self::with), or run it from code that is not async with
/// [`blocking`](Self::blocking).
///
/// Its first poll does the whole dispatch when nothing in it waits: no fake
/// intercepts the event, and every inline listener is a plain `fn` (then,
/// unless a listener halts or fails, queued listeners still need
/// enqueueing). Only what waits (async listeners, enqueueing) moves into a
/// boxed state machine, so the common future is small and never allocates.
///
/// `M` is `()` until [`with`](Self::with) gives metadata, then `Metadata`:
/// a dispatch given none carries, moves and drops nothing for it.
#[must_use = "a dispatch does nothing until it is awaited (or run with `.blocking()`)"]
pub struct Dispatching<'d, E: Event, M: GivenMetadata = ()> {
    state: State<'d, E>,
    metadata: M,
}

/// The metadata a [`Dispatching`] carries: `()` (none given) or
/// `Metadata`. Sealed.
pub trait GivenMetadata: Send + Unpin + sealed::Sealed {
    /// Takes what was given.
    #[doc(hidden)]
    fn take(&mut self) -> Metadata;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for () {}
    impl Sealed for crate::envelope::Metadata {}
}

impl GivenMetadata for () {
    #[inline(always)]
    fn take(&mut self) -> Metadata {
        Metadata::new()
    }
}

impl GivenMetadata for Metadata {
    fn take(&mut self) -> Metadata {
        std::mem::take(self)
    }
}

enum State<'d, E> {
    /// Not polled yet. `None` means the global dispatcher, found on the first
    /// poll (where `global()` says why it cannot be built, if it cannot).
    Start(Option<&'d Dispatcher>, E),
    /// Waiting: the rest of the dispatch.
    Waiting(Pin<Box<dyn Future<Output = Result<Dispatched, DispatchError>> + Send + 'd>>),
    /// Finished.
    Done,
}

// No field is pinned: the event is moved out on the first poll, and what
// waits is boxed.
impl<E: Event, M: GivenMetadata> Unpin for Dispatching<'_, E, M> {}

fn dispatch_on<E: Event>(dispatcher: Option<&Dispatcher>, event: E) -> Dispatching<'_, E> {
    Dispatching {
        state: State::Start(dispatcher, event),
        metadata: (),
    }
}

impl<'d, E: Event> Dispatching<'d, E> {
    /// Adds `key: value` to the event's metadata: listeners read it through
    /// [`Context`], queued jobs store it, observers see it.
    ///
    /// ```
    /// use events::prelude::*;
    ///
    /// #[event]
    /// struct Paid;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), events::DispatchError> {
    /// Paid.dispatch().with("actor_id", "42").with("tenant", "acme").await?;
    /// # Ok(()) }
    /// ```
    pub fn with(
        self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Dispatching<'d, E, Metadata> {
        let mut metadata = Metadata::new();
        metadata.insert(key, value);
        Dispatching {
            state: self.state,
            metadata,
        }
    }

    /// Leaves the socket `socket_id` out of the event's broadcasts: the
    /// client that caused the event (Laravel's `toOthers()`; Laravel Echo
    /// sends its socket id as the `X-Socket-ID` header). It is the
    /// metadata key [`keys::SOCKET_ID`](crate::keys::SOCKET_ID).
    ///
    /// ```
    /// use events::prelude::*;
    ///
    /// #[event(broadcast = ["chat"], broadcast_now)]
    /// #[derive(serde::Serialize)]
    /// struct Said { text: String }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), events::DispatchError> {
    /// let broadcasts = events::fake_broadcasts();
    /// Said { text: "hi".into() }.dispatch().to_others("1234.5678").await?;
    /// broadcasts.assert_broadcast_where::<Said>(|b| b.except.as_deref() == Some("1234.5678"));
    /// # Ok(()) }
    /// ```
    pub fn to_others(self, socket_id: impl Into<String>) -> Dispatching<'d, E, Metadata> {
        self.with(crate::keys::SOCKET_ID, socket_id)
    }
}

impl<'d, E: Event> Dispatching<'d, E, Metadata> {
    /// Adds `key: value` to the event's metadata (see
    /// [`Dispatching::with`]).
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key, value);
        self
    }

    /// Leaves the socket `socket_id` out of the event's broadcasts (see
    /// [`Dispatching::to_others`]).
    pub fn to_others(self, socket_id: impl Into<String>) -> Self {
        self.with(crate::keys::SOCKET_ID, socket_id)
    }
}

impl<'d, E: Event, M: GivenMetadata> Dispatching<'d, E, M> {
    /// Runs the dispatch from code that is not async (a sync function, a
    /// `main` without a runtime, a blocking thread): sync listeners run at
    /// once and queued ones are enqueued before it returns.
    ///
    /// - Outside any Tokio runtime, what waits (async listeners, enqueueing,
    ///   in-process queued jobs) runs on a small runtime of the library's
    ///   own, which lives as long as the process, so in-process jobs still
    ///   finish after this returns.
    /// - On a multi-thread runtime's thread, it blocks in place and waits on
    ///   that runtime.
    /// - On a current-thread runtime's thread, it waits on the library's
    ///   runtime from another thread; an async listener that needs the
    ///   blocked runtime's own I/O would wait forever there, so prefer
    ///   `.await` in async code.
    ///
    /// ```
    /// use events::prelude::*;
    ///
    /// #[event]
    /// struct Imported { rows: u32 }
    ///
    /// #[listener]
    /// fn count(e: &Imported) { assert_eq!(e.rows, 3); }
    ///
    /// fn main() -> Result<(), events::DispatchError> {
    ///     let done = Imported { rows: 3 }.dispatch().blocking()?;
    ///     assert_eq!(done.ran(), 1);
    ///     Ok(())
    /// }
    /// ```
    pub fn blocking(self) -> Result<Dispatched, DispatchError> {
        use tokio::runtime::{Handle, RuntimeFlavor};
        // The fakes of this thread follow the dispatch to the thread and
        // runtime that run it.
        let fakes = testing::current();
        match Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| handle.block_on(self))
            }
            Ok(_) => std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        blocking_runtime(E::NAME)
                            .map(|rt| rt.block_on(testing::scoped(fakes, self)))?
                    })
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }),
            Err(_) => blocking_runtime(E::NAME)?.block_on(testing::scoped(fakes, self)),
        }
    }
}

/// The runtime blocking dispatches wait on outside a runtime of the
/// application's: one worker thread, built on first use, kept for the
/// process's life so in-process queued jobs spawned on it finish.
fn blocking_runtime(
    event: &'static str,
) -> Result<&'static tokio::runtime::Runtime, DispatchError> {
    static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("events-blocking")
                .enable_all()
                .build()
                .ok()
        })
        .as_ref()
        .ok_or(DispatchError::Blocking {
            event,
            reason: "the library's own Tokio runtime could not be started",
        })
}

impl<'d, E: Event, M: GivenMetadata> Future for Dispatching<'d, E, M> {
    type Output = Result<Dispatched, DispatchError>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let state = &mut this.state;
        if let State::Start(..) = state {
            let State::Start(dispatcher, event) = std::mem::replace(state, State::Done) else {
                unreachable!()
            };
            return start(state, dispatcher, event, &mut this.metadata, cx);
        }
        poll_waiting(state, cx)
    }
}

/// Polls what waits, once `start` has boxed it.
#[inline(never)]
fn poll_waiting<E>(
    state: &mut State<'_, E>,
    cx: &mut TaskContext<'_>,
) -> Poll<Result<Dispatched, DispatchError>> {
    let State::Waiting(rest) = state else {
        panic!("a dispatch future polled after it completed")
    };
    let result = ready!(rest.as_mut().poll(cx));
    *state = State::Done;
    Poll::Ready(result)
}

/// The first poll's hot path: no observed or disabled dispatcher and no
/// fake alive, every listener a bare `fn(&E)`, nothing queued. Everything else goes to [`start_slow`],
/// out of line, so this stays small enough to inline into the caller's
/// `poll`. The metadata is dropped unread: nothing here can see it.
#[inline(always)]
fn start<'d, E: Event>(
    state: &mut State<'d, E>,
    dispatcher: Option<&'d Dispatcher>,
    event: E,
    metadata: &mut impl GivenMetadata,
    cx: &mut TaskContext<'_>,
) -> Poll<Result<Dispatched, DispatchError>> {
    let dispatcher = match dispatcher {
        Some(dispatcher) => dispatcher,
        None => match global() {
            Ok(dispatcher) => dispatcher,
            Err(error) => return Poll::Ready(Err(error)),
        },
    };
    if !testing::active() {
        let table = registry::table::<E>();
        if let Some(plain) = &table.plain
            && table.queued.is_empty()
        {
            return Poll::Ready(Ok(Dispatched {
                ran: run_plain(table, plain, &event),
                ..Dispatched::default()
            }));
        }
    }
    start_slow(state, dispatcher, event, metadata.take(), cx)
}

/// Calls every listener of a `plain` table, in order, with nothing to check
/// per listener, as a static array of function pointers would be called.
#[inline(always)]
fn run_plain<E: Event>(table: &Table, plain: &[UnitFn], event: &E) -> u32 {
    debug_assert!(table.typed_for == TypeId::of::<E>());
    for call in plain {
        // SAFETY: `table` is `registry::table::<E>()`, which returns only a
        // table keyed by `TypeId::of::<E>()`, and the registry puts a unit
        // call into a table's `plain` array only when it was built for the
        // table's key (`Registry::table_from`).
        let call = unsafe { call.assume::<E>() };
        call(event);
    }
    plain.len() as u32
}

/// The dispatch's envelope and context, built the first time a listener or
/// a job needs them: a plain dispatch never pays for an envelope, and one
/// that only enqueues never builds a context.
struct LazyContext<'d> {
    dispatcher: &'d Dispatcher,
    event: &'static str,
    metadata: Metadata,
    envelope: Option<Envelope>,
    built: Option<Context>,
}

impl<'d> LazyContext<'d> {
    fn new(dispatcher: &'d Dispatcher, event: &'static str, metadata: Metadata) -> Self {
        LazyContext {
            dispatcher,
            event,
            metadata,
            envelope: None,
            built: None,
        }
    }

    /// The envelope, made once.
    fn envelope(&mut self) -> &Envelope {
        if let Some(ctx) = &self.built {
            return ctx.envelope();
        }
        self.envelope.get_or_insert_with(|| {
            self.dispatcher
                .envelope(self.event, std::mem::take(&mut self.metadata))
        })
    }

    /// The envelope, to change before the context is made (`None` after).
    fn envelope_mut(&mut self) -> Option<&mut Envelope> {
        self.envelope();
        self.envelope.as_mut()
    }

    /// The context listeners get, made once, around the envelope.
    fn get(&mut self) -> &Context {
        let (dispatcher, event) = (self.dispatcher, self.event);
        let (envelope, metadata) = (&mut self.envelope, &mut self.metadata);
        self.built.get_or_insert_with(|| {
            let envelope = envelope
                .take()
                .unwrap_or_else(|| dispatcher.envelope(event, std::mem::take(metadata)));
            Context::for_dispatch(event, envelope, dispatcher.inner.jobs.state.clone())
        })
    }
}

/// The first poll, in general: fakes, `when` conditions, listeners that
/// return an outcome or take extractors; then what waits (async listeners,
/// enqueueing) goes into `state`, boxed, and is polled from there. A
/// dispatcher with observers takes [`observed`] instead.
#[inline(never)]
fn start_slow<'d, E: Event>(
    state: &mut State<'d, E>,
    dispatcher: &'d Dispatcher,
    event: E,
    metadata: Metadata,
    cx: &mut TaskContext<'_>,
) -> Poll<Result<Dispatched, DispatchError>> {
    let fakes = testing::current();
    if let Some(fakes) = &fakes
        && let Some(recorder) = fakes.events_for::<E>()
    {
        recorder.record(event);
        return Poll::Ready(Ok(Dispatched {
            faked: true,
            ..Dispatched::default()
        }));
    }
    // The kill switch. A disabled dispatcher's dispatches always get here:
    // it is never `fast`.
    if !dispatcher.inner.enabled {
        return Poll::Ready(Ok(Dispatched::default()));
    }
    let table = registry::table::<E>();
    match dispatcher.inner.path {
        Path::Plain => {}
        Path::Lean => return start_lean(state, dispatcher, table, event, metadata, fakes, cx),
        Path::Full => {
            *state = State::Waiting(Box::pin(observed(
                dispatcher, table, event, metadata, fakes,
            )));
            return poll_waiting(state, cx);
        }
    }
    // Observers of jobs only (if any) hear of the enqueued ones.
    let observers = Some(&dispatcher.inner.jobs.observers).filter(|o| o.want(Interest::JOBS));
    let mut context = LazyContext::new(dispatcher, E::NAME, metadata);
    let mut done = Dispatched::default();
    if let Some(plain) = &table.plain {
        done.ran = run_plain(table, plain, &event);
    } else if table.all_sync {
        if let Err(failed) = run_sync(table, &event, &mut done, &mut context) {
            return Poll::Ready(Err(listener_error::<E>(failed)));
        }
    } else {
        *state = State::Waiting(Box::pin(finish(
            table, event, fakes, 0, done, context, observers,
        )));
        return poll_waiting(state, cx);
    }
    if nothing_to_enqueue(table, &done) && !stores::<E>(dispatcher) {
        return Poll::Ready(Ok(done));
    }
    let from = table.inline.len();
    *state = State::Waiting(Box::pin(finish(
        table, event, fakes, from, done, context, observers,
    )));
    poll_waiting(state, cx)
}

/// The first poll on a dispatcher whose observers want dispatches or
/// listener runs but neither the envelope nor spans (a metrics counter,
/// say): the listeners run as on the plain path, each followed by the
/// observers' `listener_ran`, with a clock read per listener only when an
/// observer asks for timing; no envelope is built unless a listener or a
/// job needs one. Only what waits is boxed, as on the plain path.
#[inline(never)]
fn start_lean<'d, E: Event>(
    state: &mut State<'d, E>,
    dispatcher: &'d Dispatcher,
    table: &'static Table,
    event: E,
    metadata: Metadata,
    fakes: Option<testing::Scope>,
    cx: &mut TaskContext<'_>,
) -> Poll<Result<Dispatched, DispatchError>> {
    let observers = &dispatcher.inner.jobs.observers;
    let mut clock = Stopwatch::start(observers.want(Interest::TIMING));
    let started = clock;
    let mut context = LazyContext::new(dispatcher, E::NAME, metadata);
    let mut done = Dispatched::default();
    let from = if table.all_sync {
        let told = observers.want(Interest::LISTENER_RUNS);
        let ran = match table.plain.as_ref().filter(|_| !told) {
            Some(plain) => {
                done.ran = run_plain(table, plain, &event);
                Ok(())
            }
            None => run_sync_observed(
                table,
                &event,
                &mut done,
                &mut context,
                observers,
                &mut clock,
            ),
        };
        let ended = match ran {
            Err(failed) => Some(Err(listener_error::<E>(failed))),
            Ok(()) if nothing_to_enqueue(table, &done) && !stores::<E>(dispatcher) => {
                Some(Ok(std::mem::take(&mut done)))
            }
            Ok(()) => None,
        };
        if let Some(result) = ended {
            report::<E>(observers, None, &result, started.since());
            return Poll::Ready(result);
        }
        table.inline.len()
    } else {
        0
    };
    *state = State::Waiting(Box::pin(async move {
        let result = finish(table, event, fakes, from, done, context, Some(observers)).await;
        report::<E>(observers, None, &result, started.since());
        result
    }));
    poll_waiting(state, cx)
}

/// Tells the observers that want dispatches how one ended.
fn report<E: Event>(
    observers: &Observers,
    envelope: Option<&Envelope>,
    result: &Result<Dispatched, DispatchError>,
    took: Option<Duration>,
) {
    observers.each(Interest::DISPATCHES, |o| {
        o.dispatched(&DispatchRecord {
            event: E::NAME,
            envelope,
            result: result.as_ref(),
            took,
        })
    });
}

/// Tells the observers that want listener runs how one ended.
fn tell_ran(
    observers: &Observers,
    entry: &Inline,
    event: &'static str,
    envelope: Option<&Envelope>,
    took: Option<Duration>,
    outcome: &Outcome,
) {
    let run = ListenerRun {
        listener: entry.name,
        event,
        envelope,
        took,
        outcome: match outcome {
            Ok(Flow::Continue) => ListenerOutcome::Continued,
            Ok(Flow::Stop) => ListenerOutcome::Stopped,
            Err(error) => ListenerOutcome::Failed(&**error),
        },
    };
    observers.each(Interest::LISTENER_RUNS, |o| o.listener_ran(&run));
}

/// Whether the dispatch is over once its inline listeners ran. Queued
/// listeners come after every sync one: like Laravel's `return false`, a
/// halt keeps them from being enqueued too.
fn nothing_to_enqueue(table: &Table, done: &Dispatched) -> bool {
    done.halted_by.is_some() || table.queued.is_empty()
}

/// Whether `dispatcher` stores events of type `E` in its event log.
#[inline(always)]
fn stores<E: Event>(dispatcher: &Dispatcher) -> bool {
    match &dispatcher.inner.log {
        None => false,
        Some(log) => log.all || crate::event::log_of::<E>().is_some_and(|l| l.store),
    }
}

/// The record of a dispatch for the event log: `None` when the event's
/// type is not `Serialize` (only `store_all` gets here with one).
fn record_of<E: Event>(event: &E, envelope: &Envelope) -> Result<Option<NewEvent>, DispatchError> {
    let json = match crate::event::to_json(event) {
        Some(Ok(json)) => json,
        Some(Err(e)) => {
            return Err(DispatchError::Store {
                event: E::NAME,
                source: Box::new(crate::store::StoreError::Invalid(format!(
                    "`{}` failed to serialize: {e}",
                    E::NAME
                ))),
            });
        }
        None => return Ok(None),
    };
    let log = crate::event::log_of::<E>();
    let mut record = NewEvent::new(E::NAME, json)
        .id(envelope.id)
        .occurred_at(envelope.occurred_at)
        .metadata(envelope.metadata.clone());
    if let Some(log) = log {
        record = record.version(log.version);
        if let Some(entity) = log.entity.and_then(|f| f(event)) {
            record = record.entity(entity);
        }
    }
    Ok(Some(record))
}

/// A dispatch on a dispatcher with observers: the envelope is built first,
/// the rest runs in the observers' span, each listener is timed, and the
/// observers see how it ended.
async fn observed<E: Event>(
    dispatcher: &Dispatcher,
    table: &'static Table,
    event: E,
    metadata: Metadata,
    fakes: Option<testing::Scope>,
) -> Result<Dispatched, DispatchError> {
    use tracing::Instrument as _;
    let started = Stopwatch::start(dispatcher.inner.jobs.observers.want(Interest::TIMING));
    let observers = &dispatcher.inner.jobs.observers;
    let mut context = LazyContext::new(dispatcher, E::NAME, metadata);
    // The span comes first: an observer whose spans carry their own trace
    // context (OpenTelemetry's) puts it in the envelope the jobs carry.
    let envelope = context.envelope();
    let span = observers.span(|o| o.dispatch_span(E::NAME, envelope));
    if let Some(span) = &span
        && let Some(parent) = observers.trace_context(span)
        && let Some(envelope) = context.envelope_mut()
    {
        envelope
            .metadata
            .insert(crate::keys::TRACEPARENT, parent.to_string());
    }
    let ctx = context.get().clone();
    let rest = finish(
        table,
        event,
        fakes,
        0,
        Dispatched::default(),
        context,
        Some(observers),
    );
    let result = match span {
        Some(span) => rest.instrument(span).await,
        None => rest.await,
    };
    report::<E>(observers, Some(ctx.envelope()), &result, started.since());
    result
}

/// The rest of a dispatch: the inline listeners from index `from` on
/// (async ones among them), then enqueueing.
async fn finish<E: Event>(
    table: &'static Table,
    event: E,
    fakes: Option<testing::Scope>,
    from: usize,
    mut done: Dispatched,
    mut context: LazyContext<'_>,
    observers: Option<&Observers>,
) -> Result<Dispatched, DispatchError> {
    run_mixed(
        &table.inline[from..],
        table,
        &event,
        &mut done,
        &mut context,
        observers,
    )
    .await
    .map_err(listener_error::<E>)?;
    let dispatcher = context.dispatcher;
    let stored = stores::<E>(dispatcher);
    let no_jobs = nothing_to_enqueue(table, &done);
    if no_jobs && !stored {
        return Ok(done);
    }
    let envelope = context.envelope();
    let record = if stored {
        record_of(&event, envelope)?
    } else {
        None
    };
    let (queue_fake, broadcast_fake) = match fakes {
        Some(fakes) => (fakes.queue, fakes.broadcasts),
        None => (None, None),
    };
    let sink = match &queue_fake {
        Some(fake) => JobSink::Fake(fake, &dispatcher.inner.jobs),
        None => JobSink::Target(&dispatcher.inner.target, &dispatcher.inner.jobs),
    };
    let retry = &dispatcher.inner.jobs.retry;
    let queued: &[&'static ListenerDef] = if no_jobs { &[] } else { &table.queued };
    enqueue(
        queued,
        AnyEvent::new(&event),
        envelope,
        &sink,
        retry,
        &mut done,
        observers,
        broadcast_fake.as_deref(),
        record.map(|r| {
            (
                r,
                dispatcher
                    .inner
                    .log
                    .as_ref()
                    .expect("a dispatcher that stores has a log"),
            )
        }),
    )
    .await?;
    Ok(done)
}

fn listener_error<E: Event>((listener, source): (&'static str, BoxError)) -> DispatchError {
    DispatchError::Listener {
        listener,
        event: E::NAME,
        source,
    }
}

/// Calls one sync entry; `None` for an async one.
#[inline(always)]
fn call_sync<E: Event>(
    table: &Table,
    entry: &Inline,
    event: &E,
    context: &mut LazyContext<'_>,
) -> Option<Outcome> {
    debug_assert!(table.typed_for == TypeId::of::<E>());
    match entry.call {
        Call::TypedUnit(call) => {
            // SAFETY: `table` is `registry::table::<E>()`, which returns only a
            // table keyed by `TypeId::of::<E>()` (checked there, whatever a
            // type's slot holds), and the registry admits a typed call into a
            // table only when it was built for the table's key
            // (`Registry::table_from`), as a unit call for `TypedUnit`.
            let call = unsafe { call.assume_unit::<E>() };
            call(event);
            Some(Ok(Flow::Continue))
        }
        Call::Typed(call) => {
            // SAFETY: as above, built as an outcome call for `Typed`.
            let call = unsafe { call.assume::<E>() };
            Some(call(event))
        }
        Call::Sync(call) => Some(call(AnyEvent::new(event))),
        Call::SyncCx(call) => Some(call(AnyEvent::new(event), context.get())),
        Call::Async(_) | Call::AsyncCx(_) => None,
    }
}

/// The fast path, when every inline listener is a plain `fn`: a loop with no
/// `.await`, which the optimizer keeps in registers.
#[inline(always)]
fn run_sync<E: Event>(
    table: &Table,
    event: &E,
    done: &mut Dispatched,
    context: &mut LazyContext<'_>,
) -> Result<(), (&'static str, BoxError)> {
    for entry in table.inline.iter() {
        if !admitted(entry, event, done) {
            continue;
        }
        let Some(outcome) = call_sync(table, entry, event, context) else {
            unreachable!("`all_sync` tables hold no async listener")
        };
        if settle(entry, outcome, done)?.is_break() {
            break;
        }
    }
    Ok(())
}

/// [`run_sync`] with the observers told of each listener's run: the lean
/// path. With timing, one clock read per listener: a listener's time runs
/// from the end of the one before (so it includes the observers' calls
/// for that one, and its own `when`) to its own end.
#[inline(always)]
fn run_sync_observed<E: Event>(
    table: &Table,
    event: &E,
    done: &mut Dispatched,
    context: &mut LazyContext<'_>,
    observers: &Observers,
    clock: &mut Stopwatch,
) -> Result<(), (&'static str, BoxError)> {
    let told = observers.want(Interest::LISTENER_RUNS);
    for entry in table.inline.iter() {
        if !admitted(entry, event, done) {
            continue;
        }
        let Some(outcome) = call_sync(table, entry, event, context) else {
            unreachable!("`all_sync` tables hold no async listener")
        };
        if told {
            tell_ran(observers, entry, E::NAME, None, clock.lap(), &outcome);
        }
        if settle(entry, outcome, done)?.is_break() {
            break;
        }
    }
    Ok(())
}

/// The general path: sync and async listeners in order, each timed for the
/// observers when one asks for timing.
async fn run_mixed<E: Event>(
    entries: &[Inline],
    table: &Table,
    event: &E,
    done: &mut Dispatched,
    context: &mut LazyContext<'_>,
    observers: Option<&Observers>,
) -> Result<(), (&'static str, BoxError)> {
    let told = observers.filter(|o| o.want(Interest::LISTENER_RUNS));
    let with_envelope = told.is_some_and(|o| o.want(Interest::ENVELOPE | Interest::SPANS));
    let timed = told.is_some_and(|o| o.want(Interest::TIMING));
    let spans = observers.filter(|o| o.want(Interest::SPANS));
    for entry in entries {
        if !admitted(entry, event, done) {
            continue;
        }
        let span = spans.and_then(|o| {
            let envelope = context.envelope();
            o.span(|o| o.listener_span(entry.name, E::NAME, envelope))
        });
        let mut clock = Stopwatch::start(timed);
        let outcome = match span {
            Some(span) => {
                use tracing::Instrument as _;
                call_one(table, entry, event, context)
                    .instrument(span)
                    .await
            }
            // Called here, not through `call_one`: awaiting that costs ten
            // async listeners +10 % instructions.
            None => match (call_sync(table, entry, event, context), entry.call) {
                (Some(outcome), _) => outcome,
                (None, Call::Async(call)) => call(AnyEvent::new(event)).await,
                (None, Call::AsyncCx(call)) => {
                    let ctx = context.get().clone();
                    call(AnyEvent::new(event), &ctx).await
                }
                (None, _) => unreachable!("only async calls have no sync outcome"),
            },
        };
        if let Some(observers) = told {
            let took = clock.lap();
            let envelope = with_envelope.then(|| context.envelope());
            tell_ran(observers, entry, E::NAME, envelope, took, &outcome);
        }
        if settle(entry, outcome, done)?.is_break() {
            break;
        }
    }
    Ok(())
}

/// Runs one inline listener, sync or async.
async fn call_one<E: Event>(
    table: &Table,
    entry: &Inline,
    event: &E,
    context: &mut LazyContext<'_>,
) -> Outcome {
    match (call_sync(table, entry, event, context), entry.call) {
        (Some(outcome), _) => outcome,
        (None, Call::Async(call)) => call(AnyEvent::new(event)).await,
        (None, Call::AsyncCx(call)) => {
            let ctx = context.get().clone();
            call(AnyEvent::new(event), &ctx).await
        }
        (None, _) => unreachable!("only async calls have no sync outcome"),
    }
}

/// Whether the entry's `when` lets it run; counts it as skipped if not.
#[inline(always)]
fn admitted<E: Event>(entry: &Inline, event: &E, done: &mut Dispatched) -> bool {
    let admitted = entry.when.is_none_or(|when| when(AnyEvent::new(event)));
    if !admitted {
        done.skipped += 1;
    }
    admitted
}

/// Records one listener's outcome: go on, halt, or fail the dispatch.
#[inline(always)]
fn settle(
    entry: &Inline,
    outcome: Outcome,
    done: &mut Dispatched,
) -> Result<ControlFlow<()>, (&'static str, BoxError)> {
    done.ran += 1;
    match outcome {
        Ok(Flow::Continue) => Ok(ControlFlow::Continue(())),
        Ok(Flow::Stop) => {
            done.halted_by = Some(entry.name);
            Ok(ControlFlow::Break(()))
        }
        Err(source) => Err((entry.name, source)),
    }
}

fn admits(def: &ListenerDef, event: &AnyEvent) -> bool {
    def.when.is_none_or(|when| when(event))
}

/// Enqueues one job per queued listener that admits the event, serializing
/// the event once, all in one write: if the queue refuses them, none is
/// stored. A queued wildcard listener skips events whose type is not
/// `Serialize`: they cannot be stored.
// One call site; the arguments are the dispatch's parts, named.
#[allow(clippy::too_many_arguments)]
async fn enqueue(
    queued: &[&'static ListenerDef],
    event: &AnyEvent,
    envelope: &Envelope,
    sink: &JobSink<'_>,
    retry: &RetryDefaults,
    done: &mut Dispatched,
    observers: Option<&Observers>,
    broadcasts: Option<&crate::broadcast::BroadcastFakeState>,
    record: Option<(NewEvent, &EventLog)>,
) -> Result<(), DispatchError> {
    let mut payload: Option<String> = None;
    let mut jobs = Vec::with_capacity(queued.len());
    for &def in queued {
        if !admits(def, event) {
            done.skipped += 1;
            continue;
        }
        // A broadcast fake records a queued broadcast as its job would
        // publish it, instead of enqueueing the job.
        if let Some(fake) = broadcasts
            && let Some(entry) = crate::broadcast::entry(def.name)
        {
            match (entry.render)(event, &envelope.metadata) {
                Some(Ok(Some(broadcast))) => fake.record(broadcast),
                Some(Ok(None)) | None => {}
                Some(Err(source)) => {
                    return Err(DispatchError::Listener {
                        listener: def.name,
                        event: event_name(def, event),
                        source,
                    });
                }
            }
            continue;
        }
        let Run::Queued {
            options, encode, ..
        } = def.run
        else {
            continue;
        };
        let json = match &payload {
            Some(json) => json.clone(),
            None => match encode(event) {
                Some(Ok(json)) => payload.insert(json).clone(),
                Some(Err(EncodeError::Serialize(e))) => {
                    return Err(serialize_error(def, event, e.to_string()));
                }
                Some(Err(EncodeError::RoundTrip { field, source })) => {
                    return Err(DispatchError::Unstorable {
                        listener: def.name,
                        event: event_name(def, event),
                        field,
                        source: Box::new(source),
                    });
                }
                None => {
                    done.skipped += 1;
                    continue;
                }
            },
        };
        let mut job = Job::new(def.name, event.name(), json, &options, envelope);
        job.max_tries = options.tries_or(retry);
        jobs.push((def, job));
    }
    if let Some((record, log)) = record {
        let name = event.erased().static_name().unwrap_or("an event");
        return store_and_enqueue(name, record, log, jobs, sink, done, observers).await;
    }
    let Some(&(first, _)) = jobs.first() else {
        return Ok(());
    };
    let count = jobs.len();
    let span = observers.filter(|o| o.want(Interest::SPANS)).and_then(|o| {
        let refs: Vec<&Job> = jobs.iter().map(|(_, job)| job).collect();
        let name = event_name(first, event);
        o.span(|o| o.enqueue_span(name, &refs))
    });
    let pushed = sink.push_all(jobs, observers);
    let pushed = match span {
        Some(span) => {
            use tracing::Instrument as _;
            pushed.instrument(span).await
        }
        None => pushed.await,
    };
    pushed.map_err(|source| DispatchError::Enqueue {
        listener: first.name,
        event: event_name(first, event),
        source: Box::new(source),
    })?;
    done.queued += count as u32;
    Ok(())
}

/// Stores a dispatch's event with its jobs (and the jobs the log's hooks
/// add): in one write through the store when the jobs go to a queue, else
/// the event first, then the jobs to the fake or the in-process runner.
async fn store_and_enqueue(
    event: &'static str,
    record: NewEvent,
    log: &EventLog,
    mut jobs: Vec<(&'static ListenerDef, Job)>,
    sink: &JobSink<'_>,
    done: &mut Dispatched,
    observers: Option<&Observers>,
) -> Result<(), DispatchError> {
    let first = jobs.first().map_or("the event log", |(def, _)| def.name);
    let failed = |source: crate::store::StoreError| DispatchError::Store {
        event,
        source: Box::new(source),
    };
    let records = std::slice::from_ref(&record);
    for hook in &log.hooks {
        for job in hook.jobs(records).await.map_err(failed)? {
            let Some(def) = registry::registry().listener(&job.listener).map(|l| l.def) else {
                return Err(failed(crate::store::StoreError::Invalid(format!(
                    "an append hook made a job for listener `{}`, which is not registered",
                    job.listener
                ))));
            };
            jobs.push((def, job));
        }
    }
    let count = jobs.len() as u32;
    match sink {
        JobSink::Target(QueueTarget::Queue(queue), _) => {
            let plain: Vec<Job> = jobs.iter().map(|(_, job)| job.clone()).collect();
            log.store
                .append_with_jobs(vec![record], plain, queue)
                .await
                .map_err(failed)?;
            if let Some(observers) = observers.filter(|o| o.want(Interest::JOBS)) {
                for (_, job) in &jobs {
                    observers.each(Interest::JOBS, |o| o.job_enqueued(job));
                }
            }
        }
        _ => {
            log.store.append(vec![record]).await.map_err(failed)?;
            if !jobs.is_empty() {
                sink.push_all(jobs, observers)
                    .await
                    .map_err(|source| DispatchError::Enqueue {
                        listener: first,
                        event,
                        source: Box::new(source),
                    })?;
            }
        }
    }
    done.queued += count;
    Ok(())
}

fn serialize_error(def: &ListenerDef, event: &AnyEvent, reason: String) -> DispatchError {
    DispatchError::Serialize {
        listener: def.name,
        event: event_name(def, event),
        reason,
    }
}

/// The event's `&'static` name, for errors: its `Event::NAME`; a wildcard
/// listener reports its pattern for an event known only by its JSON.
fn event_name(def: &ListenerDef, event: &AnyEvent) -> &'static str {
    match def.target {
        crate::listener::Target::Event { name, .. } => name,
        crate::listener::Target::Pattern(pattern) => {
            event.erased().static_name().unwrap_or(pattern)
        }
    }
}

static INSTALLED: OnceLock<Dispatcher> = OnceLock::new();
/// What `global()` returns, once known: the hot path's one atomic load.
static GLOBAL: AtomicPtr<Dispatcher> = AtomicPtr::new(std::ptr::null_mut());
static DEFAULT: OnceLock<Result<Dispatcher, StartupError>> = OnceLock::new();

/// Why the default dispatcher could not be built; kept to report on every
/// dispatch.
#[derive(Clone)]
enum StartupError {
    Registry(RegistryError),
    QueueUrl(Arc<QueueError>),
    Config(Arc<ConfigError>),
}

impl From<StartupError> for DispatchError {
    fn from(error: StartupError) -> Self {
        match error {
            StartupError::Registry(RegistryError::MissingState {
                listener,
                type_name,
                ..
            }) => DispatchError::NotInstalled {
                listener,
                type_name,
            },
            StartupError::Registry(problem) => problem.into(),
            StartupError::QueueUrl(problem) => DispatchError::QueueUrl(problem),
            StartupError::Config(problem) => DispatchError::Config(problem),
        }
    }
}

/// Makes `dispatcher` the global one that [`Dispatch::dispatch`] and
/// [`dispatch`] use. Call it once, at start-up, before the first dispatch
/// that should see it.
///
/// # Errors
///
/// Gives the dispatcher back when one is installed already.
pub fn install(dispatcher: Dispatcher) -> Result<(), Dispatcher> {
    INSTALLED.set(dispatcher)?;
    if let Some(installed) = INSTALLED.get() {
        GLOBAL.store(std::ptr::from_ref(installed).cast_mut(), Ordering::Release);
    }
    Ok(())
}

/// The global dispatcher: the installed one, else one built on first use
/// from [`Config::from_env`]: the queue `EVENTS_QUEUE_URL` names (in-process
/// when unset), `EVENTS_ENABLED`, and the retry defaults.
#[inline]
pub fn global() -> Result<&'static Dispatcher, DispatchError> {
    let found = GLOBAL.load(Ordering::Acquire);
    if found.is_null() {
        return global_slow();
    }
    // SAFETY: `GLOBAL` holds null or a pointer made from a `&'static
    // Dispatcher` (in `install` and `global_slow`).
    Ok(unsafe { &*found })
}

#[cold]
fn global_slow() -> Result<&'static Dispatcher, DispatchError> {
    let dispatcher = match INSTALLED.get() {
        Some(installed) => installed,
        None => DEFAULT
            .get_or_init(default_dispatcher)
            .as_ref()
            .map_err(|e| DispatchError::from(e.clone()))?,
    };
    // An `install` racing with this keeps its own pointer: it stores
    // unconditionally, this only replaces null.
    let _ = GLOBAL.compare_exchange(
        std::ptr::null_mut(),
        std::ptr::from_ref(dispatcher).cast_mut(),
        Ordering::AcqRel,
        Ordering::Acquire,
    );
    Ok(dispatcher)
}

fn default_dispatcher() -> Result<Dispatcher, StartupError> {
    let config = Config::from_env().map_err(|e| StartupError::Config(Arc::new(e)))?;
    let mut builder = Dispatcher::builder().config(&config);
    // A disabled dispatcher enqueues nothing: the kill switch works even
    // while the queue is what is broken.
    if let Some(url) = config.queue_url().filter(|_| config.enabled()) {
        let queue = Queue::open(url).map_err(|e| StartupError::QueueUrl(Arc::new(e)))?;
        builder = builder.queue(queue);
    }
    builder.build().map_err(StartupError::Registry)
}

/// Waits for the global dispatcher's in-process jobs (see
/// [`Dispatcher::drain`]) for up to `timeout`, and returns those still
/// pending or running then; none when every job ended, or when no
/// dispatch has used the global dispatcher yet. Call it at the end of
/// `main` when queued listeners run in-process (no queue configured), so
/// jobs waiting for their delay or backoff are not dropped with the
/// runtime.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let left = events::shutdown(std::time::Duration::from_secs(10)).await;
/// for job in &left {
///     eprintln!("not run: {} for {}", job.listener, job.event);
/// }
/// # }
/// ```
pub async fn shutdown(timeout: std::time::Duration) -> Vec<Job> {
    let dispatcher = match INSTALLED.get() {
        Some(installed) => Some(installed),
        None => DEFAULT.get().and_then(|d| d.as_ref().ok()),
    };
    match dispatcher {
        Some(dispatcher) => dispatcher.drain(timeout).await,
        None => Vec::new(),
    }
}

/// Dispatches `event` through the global dispatcher.
///
/// ```
/// use events::prelude::*;
///
/// #[event]
/// struct Heartbeat;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), events::DispatchError> {
/// events::dispatch(Heartbeat).await?;
/// # Ok(()) }
/// ```
pub fn dispatch<E: Event>(event: E) -> Dispatching<'static, E> {
    dispatch_on(None, event)
}

/// `event.dispatch()` and its conditional forms, for every [`Event`].
///
/// ```
/// use events::prelude::*;
///
/// #[event]
/// struct Signup { vip: bool }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), events::DispatchError> {
/// let vip = true;
/// Signup { vip }.dispatch_if(vip).await?;
/// Signup { vip }.dispatch_unless(vip).await?;
/// # Ok(()) }
/// ```
pub trait Dispatch: Event + Sized {
    /// Dispatches the event through the global dispatcher.
    fn dispatch(self) -> Dispatching<'static, Self> {
        dispatch(self)
    }

    /// Dispatches the event when `condition` holds; otherwise does nothing
    /// and reports that nothing ran.
    fn dispatch_if(
        self,
        condition: bool,
    ) -> impl Future<Output = Result<Dispatched, DispatchError>> + Send {
        async move {
            if condition {
                dispatch(self).await
            } else {
                Ok(Dispatched::default())
            }
        }
    }

    /// Dispatches the event unless `condition` holds.
    fn dispatch_unless(
        self,
        condition: bool,
    ) -> impl Future<Output = Result<Dispatched, DispatchError>> + Send {
        self.dispatch_if(!condition)
    }
}

impl<E: Event> Dispatch for E {}
