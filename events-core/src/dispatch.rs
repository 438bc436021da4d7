//! Dispatch: running an event's sync listeners in order and enqueueing its
//! queued ones.

use std::any::TypeId;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

use crate::event::{AnyEvent, Event};
use std::ops::ControlFlow;

use crate::envelope::Envelope;
use crate::listener::UnitFn;
use crate::listener::{BoxError, Flow, ListenerDef, Outcome, Run};
use crate::queue::{Job, JobSink, Queue, QueueError, QueueTarget};
use crate::registry::{self, Call, Inline, RegistryError, Table};
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
    /// The queue refused the dispatch's jobs: none of them was stored (they
    /// go in one atomic write).
    #[error("cannot enqueue `{event}` for queued listener `{listener}`")]
    Enqueue {
        /// The first queued listener of the dispatch.
        listener: &'static str,
        /// The event's name.
        event: &'static str,
        /// What the queue said.
        #[source]
        source: Box<crate::queue::QueueError>,
    },
    /// The registry has a problem (duplicate names) that start-up validation
    /// found.
    #[error("the event registry is invalid")]
    Registry(#[source] Box<RegistryError>),
    /// `EVENTS_QUEUE_URL` names a queue that cannot be opened.
    #[error("cannot open the queue that EVENTS_QUEUE_URL names")]
    QueueUrl(#[source] std::sync::Arc<QueueError>),
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
        registry::registry().validate()?;
        Ok(Dispatcher {
            inner: Arc::new(Inner {
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

/// The future every dispatch returns. Its first poll does the whole
/// dispatch when nothing in it waits: no fake intercepts the event, and every
/// inline listener is a plain `fn` (then, unless a listener halts or fails,
/// queued listeners still need enqueueing). Only what waits (async listeners,
/// enqueueing) moves into a boxed state machine, so the common future is
/// small and never allocates.
struct Dispatching<'d, E: Event> {
    state: State<'d, E>,
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
impl<E: Event> Unpin for Dispatching<'_, E> {}

fn dispatch_on<E: Event>(dispatcher: Option<&Dispatcher>, event: E) -> Dispatching<'_, E> {
    Dispatching {
        state: State::Start(dispatcher, event),
    }
}

impl<'d, E: Event> Future for Dispatching<'d, E> {
    type Output = Result<Dispatched, DispatchError>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let state = &mut self.state;
        if let State::Start(..) = state {
            let State::Start(dispatcher, event) = std::mem::replace(state, State::Done) else {
                unreachable!()
            };
            return start(state, dispatcher, event, cx);
        }
        poll_waiting(state, cx)
    }
}

/// Polls what waits, once `start` has boxed it.
#[inline(never)]
fn poll_waiting<E>(
    state: &mut State<'_, E>,
    cx: &mut Context<'_>,
) -> Poll<Result<Dispatched, DispatchError>> {
    let State::Waiting(rest) = state else {
        panic!("a dispatch future polled after it completed")
    };
    let result = ready!(rest.as_mut().poll(cx));
    *state = State::Done;
    Poll::Ready(result)
}

/// The first poll's hot path: no fake alive, every listener a bare `fn(&E)`,
/// nothing queued. Everything else goes to [`start_slow`], out of line, so
/// this stays small enough to inline into the caller's `poll`.
#[inline(always)]
fn start<'d, E: Event>(
    state: &mut State<'d, E>,
    dispatcher: Option<&'d Dispatcher>,
    event: E,
    cx: &mut Context<'_>,
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
    start_slow(state, dispatcher, event, cx)
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

/// The first poll, in general: fakes, `when` conditions, listeners that
/// return an outcome; then what waits (async listeners, enqueueing) goes
/// into `state`, boxed, and is polled from there.
#[inline(never)]
fn start_slow<'d, E: Event>(
    state: &mut State<'d, E>,
    dispatcher: &'d Dispatcher,
    event: E,
    cx: &mut Context<'_>,
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
    let table = registry::table::<E>();
    let mut done = Dispatched::default();
    if let Some(plain) = &table.plain {
        done.ran = run_plain(table, plain, &event);
    } else if table.all_sync {
        if let Err(failed) = run_sync(table, &event, &mut done) {
            return Poll::Ready(Err(listener_error::<E>(failed)));
        }
    } else {
        *state = State::Waiting(Box::pin(finish(dispatcher, table, event, fakes, 0, done)));
        return poll_waiting(state, cx);
    }
    if nothing_to_enqueue(table, &done) {
        return Poll::Ready(Ok(done));
    }
    let from = table.inline.len();
    *state = State::Waiting(Box::pin(finish(
        dispatcher, table, event, fakes, from, done,
    )));
    poll_waiting(state, cx)
}

/// Whether the dispatch is over once its inline listeners ran. Queued
/// listeners come after every sync one: like Laravel's `return false`, a
/// halt keeps them from being enqueued too.
fn nothing_to_enqueue(table: &Table, done: &Dispatched) -> bool {
    done.halted_by.is_some() || table.queued.is_empty()
}

/// The rest of a dispatch: the inline listeners from index `from` on
/// (async ones among them), then enqueueing.
async fn finish<E: Event>(
    dispatcher: &Dispatcher,
    table: &'static Table,
    event: E,
    fakes: Option<testing::Scope>,
    from: usize,
    mut done: Dispatched,
) -> Result<Dispatched, DispatchError> {
    run_mixed(&table.inline[from..], table, &event, &mut done)
        .await
        .map_err(listener_error::<E>)?;
    if nothing_to_enqueue(table, &done) {
        return Ok(done);
    }
    let queue_fake = fakes.and_then(|f| f.queue);
    let sink = match &queue_fake {
        Some(fake) => JobSink::Fake(fake),
        None => JobSink::Target(&dispatcher.inner.target),
    };
    enqueue(&table.queued, AnyEvent::new(&event), &sink, &mut done).await?;
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
    entries: &[Inline],
    table: &Table,
    event: &E,
    done: &mut Dispatched,
) -> Result<(), (&'static str, BoxError)> {
    for entry in entries {
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
/// the event once, all in one write: if the queue refuses them, none is
/// stored. A queued wildcard listener skips events whose type is not
/// `Serialize`: they cannot be stored.
async fn enqueue(
    queued: &[&'static ListenerDef],
    event: &AnyEvent,
    sink: &JobSink<'_>,
    done: &mut Dispatched,
) -> Result<(), DispatchError> {
    let mut payload: Option<String> = None;
    // The dispatch's envelope replaces this one when dispatches carry it.
    let envelope = Envelope::new();
    let mut jobs = Vec::with_capacity(queued.len());
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
        jobs.push((
            def,
            Job::new(def.name, event.name(), json, &options, &envelope),
        ));
    }
    let Some(&(first, _)) = jobs.first() else {
        return Ok(());
    };
    let count = jobs.len();
    sink.push_all(jobs)
        .await
        .map_err(|source| DispatchError::Enqueue {
            listener: first.name,
            event: event_name(first, event),
            source: Box::new(source),
        })?;
    done.queued += count as u32;
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
}

impl From<StartupError> for DispatchError {
    fn from(error: StartupError) -> Self {
        match error {
            StartupError::Registry(problem) => problem.into(),
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
    INSTALLED.set(dispatcher)?;
    if let Some(installed) = INSTALLED.get() {
        GLOBAL.store(std::ptr::from_ref(installed).cast_mut(), Ordering::Release);
    }
    Ok(())
}

/// The global dispatcher: the installed one, else one built on first use
/// with the queue `EVENTS_QUEUE_URL` names (in-process when unset).
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
