//! Dispatch: running an event's sync listeners in order and enqueueing its
//! queued ones.

use std::any::TypeId;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use crate::event::{AnyEvent, Event};
use std::ops::ControlFlow;

use crate::listener::{BoxError, Flow, ListenerDef, Outcome, Run};
use crate::queue::{Job, JobSink, Queue, QueueError, QueueTarget};
use crate::registry::{Call, Inline, Registry, RegistryError, Table, registry};
use crate::testing;

/// What a dispatch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dispatched {
    ran: usize,
    queued: usize,
    skipped: usize,
    halted_by: Option<&'static str>,
    faked: bool,
}

impl Dispatched {
    /// How many sync listeners ran.
    pub fn ran(&self) -> usize {
        self.ran
    }
    /// How many jobs were enqueued for queued listeners.
    pub fn queued(&self) -> usize {
        self.queued
    }
    /// How many listeners were skipped: a `when = ..` condition said no, or
    /// a queued wildcard listener met an event that cannot be serialized.
    pub fn skipped(&self) -> usize {
        self.skipped
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
    /// The queue refused the job.
    #[error("cannot enqueue `{event}` for queued listener `{listener}`")]
    Enqueue {
        /// The queued listener.
        listener: &'static str,
        /// The event's name.
        event: &'static str,
        /// What the queue said.
        #[source]
        source: crate::queue::QueueError,
    },
    /// The registry has a problem (duplicate names) that start-up validation
    /// found.
    #[error("the event registry is invalid")]
    Registry(#[from] RegistryError),
    /// `EVENTS_QUEUE_URL` names a queue that cannot be opened.
    #[error("cannot open the queue that EVENTS_QUEUE_URL names")]
    QueueUrl(#[source] std::sync::Arc<QueueError>),
}

impl DispatchError {
    /// The listener the error concerns, if any.
    pub fn listener(&self) -> Option<&'static str> {
        match self {
            DispatchError::Listener { listener, .. }
            | DispatchError::Serialize { listener, .. }
            | DispatchError::Enqueue { listener, .. } => Some(listener),
            DispatchError::Registry(_) | DispatchError::QueueUrl(_) => None,
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
    registry: &'static Registry,
    target: QueueTarget,
}

/// Configures a [`Dispatcher`].
#[derive(Default)]
#[must_use]
pub struct DispatcherBuilder {
    queue: Option<Queue>,
}

impl DispatcherBuilder {
    /// Sends queued listeners' jobs to `queue`, for workers to run.
    ///
    /// Without one, jobs run in this process on the dispatching Tokio
    /// runtime, with their delay, tries, backoff and timeout.
    pub fn queue(mut self, queue: Queue) -> Self {
        self.queue = Some(queue);
        self
    }

    /// Validates the registry and makes the dispatcher.
    ///
    /// Fails when two listeners (or two events) share a name.
    pub fn build(self) -> Result<Dispatcher, RegistryError> {
        let registry = registry();
        registry.validate()?;
        Ok(Dispatcher {
            inner: Arc::new(Inner {
                registry,
                target: match self.queue {
                    Some(queue) => QueueTarget::Queue(queue),
                    None => QueueTarget::InProcess,
                },
            }),
        })
    }
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("queue", &self.inner.target)
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

    /// Dispatches `event`: runs its sync listeners in order (higher priority
    /// first, then by name), then enqueues a job per queued listener.
    ///
    /// A listener returning an error stops the rest and its error comes back;
    /// one returning `Flow::Stop` stops the rest quietly. Either way nothing
    /// is enqueued, since queued listeners come after the sync ones.
    pub fn dispatch<E: Event>(
        &self,
        event: E,
    ) -> impl Future<Output = Result<Dispatched, DispatchError>> + Send + '_ {
        dispatch_on(Some(self), event)
    }
}

/// The whole dispatch as one state machine (no nested async fns, whose
/// futures would be copied into each other). `None` means the global
/// dispatcher could not be built; `global()` then says why.
async fn dispatch_on<E: Event>(
    dispatcher: Option<&Dispatcher>,
    event: E,
) -> Result<Dispatched, DispatchError> {
    let dispatcher = match dispatcher {
        Some(dispatcher) => dispatcher,
        None => global()?,
    };
    let fakes = testing::current();
    if let Some(fakes) = &fakes
        && let Some(recorder) = fakes.events_for::<E>()
    {
        recorder.record(event);
        return Ok(Dispatched {
            faked: true,
            ..Dispatched::default()
        });
    }
    let table = dispatcher.inner.registry.table::<E>();
    let mut done = Dispatched::default();
    if table.all_sync {
        // The hot path: a plain loop, no `.await`.
        run_sync(table, &event, &mut done)
    } else {
        run_mixed(table, &event, &mut done).await
    }
    .map_err(listener_error::<E>)?;
    // Queued listeners come after every sync one: like Laravel's `return
    // false`, a halt keeps them from being enqueued too. Boxed, so its state
    // does not make every dispatch's future bigger (it allocates for the
    // JSON and the job anyway).
    if done.halted_by.is_none() && !table.queued.is_empty() {
        let queue_fake = fakes.and_then(|f| f.queue);
        let sink = match &queue_fake {
            Some(fake) => JobSink::Fake(fake),
            None => JobSink::Target(&dispatcher.inner.target),
        };
        Box::pin(enqueue(
            &table.queued,
            AnyEvent::new(&event),
            &sink,
            &mut done,
        ))
        .await?;
    }
    Ok(done)
}

fn listener_error<E: Event>((listener, source): (&'static str, BoxError)) -> DispatchError {
    DispatchError::Listener {
        listener,
        event: E::NAME,
        source,
    }
}

/// Calls one sync entry.
#[inline(always)]
fn call_sync<E: Event>(table: &Table, entry: &Inline, event: &E) -> Option<Outcome> {
    debug_assert!(table.typed_for == TypeId::of::<E>());
    match entry.call {
        Call::TypedUnit(call) => {
            // SAFETY: `table` is `registry.table::<E>()`, which returns only a
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
        Call::Async(_) => None,
    }
}

/// The fast path, when every inline listener is a plain `fn`: a loop with no
/// `.await`, which the optimizer keeps in registers.
#[inline(always)]
fn run_sync<E: Event>(
    table: &Table,
    event: &E,
    done: &mut Dispatched,
) -> Result<(), (&'static str, BoxError)> {
    for entry in table.inline.iter() {
        if !admitted(entry, event, done) {
            continue;
        }
        let Some(outcome) = call_sync(table, entry, event) else {
            unreachable!("`all_sync` tables hold no async listener")
        };
        if settle(entry, outcome, done)?.is_break() {
            break;
        }
    }
    Ok(())
}

/// The general path: sync and async listeners in order.
async fn run_mixed<E: Event>(
    table: &Table,
    event: &E,
    done: &mut Dispatched,
) -> Result<(), (&'static str, BoxError)> {
    for entry in table.inline.iter() {
        if !admitted(entry, event, done) {
            continue;
        }
        let outcome = match (call_sync(table, entry, event), entry.call) {
            (Some(outcome), _) => outcome,
            (None, Call::Async(call)) => call(AnyEvent::new(event)).await,
            (None, _) => unreachable!("only async calls have no sync outcome"),
        };
        if settle(entry, outcome, done)?.is_break() {
            break;
        }
    }
    Ok(())
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
/// the event once. A queued wildcard listener skips events whose type is not
/// `Serialize`: they cannot be stored.
async fn enqueue(
    queued: &[&'static ListenerDef],
    event: &AnyEvent,
    sink: &JobSink<'_>,
    done: &mut Dispatched,
) -> Result<(), DispatchError> {
    let mut payload: Option<String> = None;
    for &def in queued {
        if !admits(def, event) {
            done.skipped += 1;
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
                Some(Err(e)) => return Err(serialize_error(def, event, e.to_string())),
                None => {
                    done.skipped += 1;
                    continue;
                }
            },
        };
        let job = Job::new(def.name, event.name(), json, &options);
        sink.push(def, job)
            .await
            .map_err(|source| DispatchError::Enqueue {
                listener: def.name,
                event: event_name(def, event),
                source,
            })?;
        done.queued += 1;
    }
    Ok(())
}

fn serialize_error(def: &ListenerDef, event: &AnyEvent, reason: String) -> DispatchError {
    DispatchError::Serialize {
        listener: def.name,
        event: event_name(def, event),
        reason,
    }
}

/// The event's `&'static` name: the registered one for typed listeners; a
/// wildcard listener reports its pattern when the name is not static.
fn event_name(def: &ListenerDef, event: &AnyEvent) -> &'static str {
    match def.target {
        crate::listener::Target::Event { name, .. } => name,
        crate::listener::Target::Pattern(pattern) => registry()
            .event(event.name())
            .map(|info| info.name())
            .unwrap_or(pattern),
    }
}

static INSTALLED: OnceLock<Dispatcher> = OnceLock::new();
static DEFAULT: OnceLock<Result<Dispatcher, StartupError>> = OnceLock::new();

/// Why the default dispatcher could not be built; kept to report on every
/// dispatch.
#[derive(Clone)]
enum StartupError {
    Registry(RegistryError),
    QueueUrl(Arc<QueueError>),
}

impl From<StartupError> for DispatchError {
    fn from(error: StartupError) -> Self {
        match error {
            StartupError::Registry(problem) => DispatchError::Registry(problem),
            StartupError::QueueUrl(problem) => DispatchError::QueueUrl(problem),
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
    INSTALLED.set(dispatcher)
}

/// The global dispatcher: the installed one, else one built on first use
/// with the queue `EVENTS_QUEUE_URL` names (in-process when unset).
#[inline]
pub fn global() -> Result<&'static Dispatcher, DispatchError> {
    if let Some(installed) = INSTALLED.get() {
        return Ok(installed);
    }
    match DEFAULT.get() {
        Some(Ok(dispatcher)) => Ok(dispatcher),
        _ => global_slow(),
    }
}

#[cold]
fn global_slow() -> Result<&'static Dispatcher, DispatchError> {
    DEFAULT
        .get_or_init(default_dispatcher)
        .as_ref()
        .map_err(|e| e.clone().into())
}

fn default_dispatcher() -> Result<Dispatcher, StartupError> {
    let builder = match crate::queue::from_env() {
        Some(Ok(queue)) => Dispatcher::builder().queue(queue),
        Some(Err(problem)) => return Err(StartupError::QueueUrl(Arc::new(problem))),
        None => Dispatcher::builder(),
    };
    builder.build().map_err(StartupError::Registry)
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
pub fn dispatch<E: Event>(
    event: E,
) -> impl Future<Output = Result<Dispatched, DispatchError>> + Send {
    dispatch_on(global().ok(), event)
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
    fn dispatch(self) -> impl Future<Output = Result<Dispatched, DispatchError>> + Send {
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
