//! Laravel's fakes: record dispatched events or queued jobs instead of running
//! them, and assert on what was recorded.
//!
//! A fake is active, until the returned guard is dropped, for:
//!
//! - the thread that made it (the scope `tracing::subscriber::set_default`
//!   uses): a `#[tokio::test]` body, `Runtime::block_on` from the test, plain
//!   sync code;
//! - the Tokio runtime it was made in: tasks the test `tokio::spawn`s onto a
//!   multi-thread runtime's worker threads see it too;
//! - a future wrapped with [`EventFake::scope`] or [`QueueFake::scope`],
//!   wherever it runs (a thread the test starts, another runtime).
//!
//! Each test runs on its own thread with its own runtime, so parallel tests
//! in one binary never see each other's fakes.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::fmt::Write as _;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::broadcast::BroadcastFakeState;
use crate::context::lock;
use crate::event::Event;
use crate::listener::{Listener, TypedListener};
use crate::queue::{Ended, Job, JobEnv, JobError, Waits, run_to_end};
use crate::registry::registry;

/// How many fakes, and dispatchers that must not take the plain path
/// (observed or disabled), are alive in the process: dispatch skips the
/// thread-local lookup and goes straight to the plain path only while this
/// is zero, so the plain path checks nothing else.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// Counts a dispatcher whose dispatches must leave the plain path (it has
/// observers, or is disabled) while it lives: the first poll then takes
/// `start_slow`, which asks the dispatcher itself. Paired with
/// [`undivert`], from the dispatcher's drop.
pub(crate) fn divert() {
    ACTIVE.fetch_add(1, Ordering::AcqRel);
}

/// Ends what [`divert`] started.
pub(crate) fn undivert() {
    ACTIVE.fetch_sub(1, Ordering::AcqRel);
}

/// The fakes alive on the current thread: a stack per kind, the newest on
/// top. Each guard removes its own entry when dropped, so guards may drop in
/// any order (fields of a test fixture drop in declaration order).
#[derive(Default)]
struct Stacks {
    events: Vec<Arc<EventFakeState>>,
    queue: Vec<Arc<QueueFakeState>>,
    broadcasts: Vec<Arc<BroadcastFakeState>>,
}

/// The fakes in force for one dispatch.
#[derive(Clone, Default)]
pub(crate) struct Scope {
    events: Option<Arc<EventFakeState>>,
    pub(crate) queue: Option<Arc<QueueFakeState>>,
    pub(crate) broadcasts: Option<Arc<BroadcastFakeState>>,
}

impl Scope {
    /// The event recorder that intercepts `E`, if any.
    pub(crate) fn events_for<E: Event>(&self) -> Option<&EventFakeState> {
        self.events
            .as_deref()
            .filter(|fake| fake.intercepts(TypeId::of::<E>()))
    }
}

thread_local! {
    static SCOPE: RefCell<Stacks> = RefCell::new(Stacks::default());
}

tokio::task_local! {
    /// The fakes a future was wrapped in with `scope`.
    static TASK_SCOPE: Scope;
}

/// The fakes made inside a Tokio runtime, by the runtime's id, oldest
/// first: what the test's tasks on the runtime's other threads see.
static BY_RUNTIME: Mutex<Vec<(tokio::runtime::Id, Installed)>> = Mutex::new(Vec::new());

/// How many entries `BY_RUNTIME` holds: a dispatch looks there only when
/// some fake was made in a runtime (not for every observed dispatch).
static RUNTIME_FAKES: AtomicUsize = AtomicUsize::new(0);

/// The newest fakes of each kind among `installed`.
fn newest<'a>(installed: impl DoubleEndedIterator<Item = &'a Installed>) -> Scope {
    let mut scope = Scope::default();
    for one in installed.rev() {
        match one {
            Installed::Events(state) if scope.events.is_none() => {
                scope.events = Some(state.clone());
            }
            Installed::Queue(state) if scope.queue.is_none() => scope.queue = Some(state.clone()),
            Installed::Broadcasts(state) if scope.broadcasts.is_none() => {
                scope.broadcasts = Some(state.clone());
            }
            _ => {}
        }
    }
    scope
}

/// Runs `future` with `scope`'s fakes in force wherever it is polled.
pub(crate) async fn scoped<F: std::future::Future>(scope: Option<Scope>, future: F) -> F::Output {
    match scope {
        Some(scope) => TASK_SCOPE.scope(scope, future).await,
        None => future.await,
    }
}

/// Whether any fake is alive, on any thread: one atomic load. When it says
/// no, [`current`] would return `None`.
#[inline(always)]
pub(crate) fn active() -> bool {
    ACTIVE.load(Ordering::Acquire) != 0
}

/// The fakes of this thread, or `None` (cheaply) when there are none.
#[inline]
pub(crate) fn current() -> Option<Scope> {
    if !active() {
        return None;
    }
    if let Ok(scope) = TASK_SCOPE.try_with(Scope::clone) {
        return Some(scope);
    }
    let mut scope = SCOPE.with(|stacks| {
        let stacks = stacks.borrow();
        Scope {
            events: stacks.events.last().cloned(),
            queue: stacks.queue.last().cloned(),
            broadcasts: stacks.broadcasts.last().cloned(),
        }
    });
    if (scope.events.is_none() || scope.queue.is_none() || scope.broadcasts.is_none())
        && RUNTIME_FAKES.load(Ordering::Acquire) != 0
        && let Ok(runtime) = tokio::runtime::Handle::try_current()
    {
        let id = runtime.id();
        let by_runtime = lock(&BY_RUNTIME);
        let found = newest(by_runtime.iter().filter(|(r, _)| *r == id).map(|(_, i)| i));
        scope.events = scope.events.or(found.events);
        scope.queue = scope.queue.or(found.queue);
        scope.broadcasts = scope.broadcasts.or(found.broadcasts);
    }
    (scope.events.is_some() || scope.queue.is_some() || scope.broadcasts.is_some()).then_some(scope)
}

/// Which fake a guard installed.
#[derive(Clone)]
enum Installed {
    Events(Arc<EventFakeState>),
    Queue(Arc<QueueFakeState>),
    Broadcasts(Arc<BroadcastFakeState>),
}

/// Installs a fake on this thread until dropped.
pub(crate) struct Guard {
    installed: Installed,
    /// The runtime it was made in, if any: its tasks see the fake too.
    runtime: Option<tokio::runtime::Id>,
    /// The guard edits a thread-local: it must drop on its thread.
    _not_send: PhantomData<*const ()>,
}

impl Installed {
    fn is(&self, other: &Installed) -> bool {
        match (self, other) {
            (Installed::Events(a), Installed::Events(b)) => Arc::ptr_eq(a, b),
            (Installed::Queue(a), Installed::Queue(b)) => Arc::ptr_eq(a, b),
            (Installed::Broadcasts(a), Installed::Broadcasts(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Guard {
    fn install(installed: Installed) -> Guard {
        ACTIVE.fetch_add(1, Ordering::AcqRel);
        SCOPE.with(|stacks| {
            let mut stacks = stacks.borrow_mut();
            match &installed {
                Installed::Events(state) => stacks.events.push(state.clone()),
                Installed::Queue(state) => stacks.queue.push(state.clone()),
                Installed::Broadcasts(state) => stacks.broadcasts.push(state.clone()),
            }
        });
        let runtime = tokio::runtime::Handle::try_current().ok().map(|r| r.id());
        if let Some(id) = runtime {
            lock(&BY_RUNTIME).push((id, installed.clone()));
            RUNTIME_FAKES.fetch_add(1, Ordering::AcqRel);
        }
        Guard {
            installed,
            runtime,
            _not_send: PhantomData,
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // `try_with`: during thread teardown the stacks may be gone already.
        let _ = SCOPE.try_with(|stacks| {
            let mut stacks = stacks.borrow_mut();
            match &self.installed {
                Installed::Events(mine) => stacks.events.retain(|s| !Arc::ptr_eq(s, mine)),
                Installed::Queue(mine) => stacks.queue.retain(|s| !Arc::ptr_eq(s, mine)),
                Installed::Broadcasts(mine) => {
                    stacks.broadcasts.retain(|s| !Arc::ptr_eq(s, mine));
                }
            }
        });
        if self.runtime.is_some() {
            lock(&BY_RUNTIME).retain(|(_, installed)| !installed.is(&self.installed));
            RUNTIME_FAKES.fetch_sub(1, Ordering::AcqRel);
        }
        ACTIVE.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Installs a broadcast fake (see [`crate::fake_broadcasts`]).
pub(crate) fn install_broadcasts(state: Arc<BroadcastFakeState>) -> Guard {
    Guard::install(Installed::Broadcasts(state))
}

/// One recorded dispatch.
struct Recorded {
    type_id: TypeId,
    name: &'static str,
    event: Box<dyn Any + Send + Sync>,
    json: Option<String>,
}

impl Recorded {
    fn describe(&self) -> String {
        match &self.json {
            Some(json) => format!("`{}` {json}", self.name),
            None => format!("`{}`", self.name),
        }
    }
}

/// Which events an event fake records.
enum Filter {
    All,
    Only(Vec<TypeId>),
    Except(Vec<TypeId>),
}

pub(crate) struct EventFakeState {
    filter: Filter,
    records: Mutex<Vec<Recorded>>,
}

impl EventFakeState {
    fn intercepts(&self, type_id: TypeId) -> bool {
        match &self.filter {
            Filter::All => true,
            Filter::Only(only) => only.contains(&type_id),
            Filter::Except(except) => !except.contains(&type_id),
        }
    }

    pub(crate) fn record<E: Event>(&self, event: E) {
        let json = crate::event::to_json(&event).and_then(Result::ok);
        lock(&self.records).push(Recorded {
            type_id: TypeId::of::<E>(),
            name: E::NAME,
            event: Box::new(event),
            json,
        });
    }
}

/// A set of event types, for [`fake_only`] and [`fake_except`]: a tuple of one to eight event
/// types, such as `(A,)` or `(A, B)`.
pub trait EventSet {
    /// The types' ids.
    fn type_ids() -> Vec<TypeId>;
}

macro_rules! event_set_for_tuples {
    ($($name:ident)+) => {
        impl<$($name: Event),+> EventSet for ($($name,)+) {
            fn type_ids() -> Vec<TypeId> {
                vec![$(TypeId::of::<$name>()),+]
            }
        }
    };
}
event_set_for_tuples!(A);
event_set_for_tuples!(A B);
event_set_for_tuples!(A B C);
event_set_for_tuples!(A B C D);
event_set_for_tuples!(A B C D E);
event_set_for_tuples!(A B C D E F);
event_set_for_tuples!(A B C D E F G);
event_set_for_tuples!(A B C D E F G H);

/// Records every event dispatched on this thread instead of running its
/// listeners, until the returned fake is dropped (Laravel's `Event::fake()`).
///
/// ```
/// use events::prelude::*;
///
/// #[event]
/// #[derive(Clone, serde::Serialize)]
/// struct Registered { user: u32 }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), events::DispatchError> {
/// let fake = events::fake();
/// Registered { user: 7 }.dispatch().await?;
/// fake.assert_dispatched::<Registered>();
/// fake.assert_dispatched_where::<Registered>(|e| e.user == 7);
/// assert_eq!(fake.dispatched::<Registered>()[0].user, 7);
/// # Ok(()) }
/// ```
#[must_use = "the fake stops recording when dropped"]
pub fn fake() -> EventFake {
    EventFake::install(Filter::All)
}

/// Fakes only the listed events (`events::fake_only::<(A, B)>()`); the others
/// dispatch as usual.
#[must_use = "the fake stops recording when dropped"]
pub fn fake_only<S: EventSet>() -> EventFake {
    EventFake::install(Filter::Only(S::type_ids()))
}

/// Fakes every event but the listed ones (Laravel's `Event::fakeExcept`):
/// `events::fake_except::<(A, B)>()` records every other event, and `A` and
/// `B` dispatch as usual.
///
/// ```
/// use events::prelude::*;
///
/// #[event]
/// struct Audited;
/// #[event]
/// struct Noisy;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), events::DispatchError> {
/// let fake = events::fake_except::<(Audited,)>();
/// assert!(!Audited.dispatch().await?.faked());
/// assert!(Noisy.dispatch().await?.faked());
/// fake.assert_not_dispatched::<Audited>();
/// fake.assert_dispatched::<Noisy>();
/// # Ok(()) }
/// ```
#[must_use = "the fake stops recording when dropped"]
pub fn fake_except<S: EventSet>() -> EventFake {
    EventFake::install(Filter::Except(S::type_ids()))
}

/// The handle of an event fake: its assertions. Dropping it ends the fake.
pub struct EventFake {
    state: Arc<EventFakeState>,
    _guard: Guard,
}

impl EventFake {
    fn install(filter: Filter) -> EventFake {
        let state = Arc::new(EventFakeState {
            filter,
            records: Mutex::new(Vec::new()),
        });
        EventFake {
            _guard: Guard::install(Installed::Events(state.clone())),
            state,
        }
    }

    /// Wraps `future` so this fake records its dispatches wherever it runs:
    /// on a thread the test starts, or on another runtime. (Tasks the test
    /// spawns onto its own runtime see the fake without this.)
    ///
    /// ```
    /// use events::prelude::*;
    ///
    /// #[event]
    /// struct Nudged;
    ///
    /// let fake = events::fake();
    /// let dispatch = fake.scope(async { Nudged.dispatch().await });
    /// std::thread::spawn(move || {
    ///     let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    ///     runtime.block_on(dispatch).unwrap();
    /// })
    /// .join()
    /// .unwrap();
    /// fake.assert_dispatched::<Nudged>();
    /// ```
    pub fn scope<F: std::future::Future>(
        &self,
        future: F,
    ) -> impl std::future::Future<Output = F::Output> + use<F> {
        let mut scope = current().unwrap_or_default();
        scope.events = Some(self.state.clone());
        scoped(Some(scope), future)
    }

    fn count<E: Event>(&self, matching: impl Fn(&E) -> bool) -> usize {
        lock(&self.state.records)
            .iter()
            .filter(|r| r.type_id == TypeId::of::<E>())
            .filter_map(|r| r.event.downcast_ref::<E>())
            .filter(|e| matching(e))
            .count()
    }

    /// What was dispatched, for failure messages.
    fn report(&self) -> String {
        let records = lock(&self.state.records);
        if records.is_empty() {
            return "nothing was dispatched".to_owned();
        }
        let mut out = format!("{} dispatched instead:", records.len());
        for record in records.iter() {
            let _ = write!(out, "\n  - {}", record.describe());
        }
        out
    }

    /// Panics unless an `E` was dispatched.
    #[track_caller]
    pub fn assert_dispatched<E: Event>(&self) {
        if self.count::<E>(|_| true) == 0 {
            panic!("expected `{}` to be dispatched; {}", E::NAME, self.report());
        }
    }

    /// Panics unless an `E` for which `matching` holds was dispatched.
    #[track_caller]
    pub fn assert_dispatched_where<E: Event>(&self, matching: impl Fn(&E) -> bool) {
        if self.count::<E>(matching) == 0 {
            panic!(
                "expected `{}` to be dispatched matching the condition; {}",
                E::NAME,
                self.report()
            );
        }
    }

    /// Panics unless `E` was dispatched exactly `times` times.
    #[track_caller]
    pub fn assert_dispatched_times<E: Event>(&self, times: usize) {
        let seen = self.count::<E>(|_| true);
        if seen != times {
            panic!(
                "expected `{}` to be dispatched {times} time(s), but it was dispatched {seen} time(s); {}",
                E::NAME,
                self.report()
            );
        }
    }

    /// Panics if an `E` was dispatched.
    #[track_caller]
    pub fn assert_not_dispatched<E: Event>(&self) {
        let seen = self.count::<E>(|_| true);
        if seen != 0 {
            panic!(
                "expected `{}` not to be dispatched, but it was dispatched {seen} time(s); {}",
                E::NAME,
                self.report()
            );
        }
    }

    /// Panics if any event was dispatched.
    #[track_caller]
    pub fn assert_nothing_dispatched(&self) {
        if !lock(&self.state.records).is_empty() {
            panic!("expected no event to be dispatched; {}", self.report());
        }
    }

    /// Copies of the `E`s dispatched, in order.
    pub fn dispatched<E: Event + Clone>(&self) -> Vec<E> {
        lock(&self.state.records)
            .iter()
            .filter_map(|r| r.event.downcast_ref::<E>())
            .cloned()
            .collect()
    }

    /// The names of every event dispatched, in order.
    pub fn dispatched_names(&self) -> Vec<&'static str> {
        lock(&self.state.records).iter().map(|r| r.name).collect()
    }
}

impl std::fmt::Debug for EventFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventFake")
            .field("dispatched", &self.dispatched_names())
            .finish()
    }
}

#[derive(Default)]
pub(crate) struct QueueFakeState {
    /// Every job pushed, in order.
    pushed: Mutex<Vec<Job>>,
    /// Jobs not yet run by `run_pending`, with the state, observers and
    /// retry defaults of the dispatcher that pushed them.
    pending: Mutex<Vec<(Job, JobEnv)>>,
}

impl QueueFakeState {
    pub(crate) fn push(&self, job: Job, env: &JobEnv) {
        lock(&self.pushed).push(job.clone());
        lock(&self.pending).push((job, env.clone()));
    }
}

/// Runs sync listeners as usual but records the jobs of queued listeners
/// instead of running them, until the returned fake is dropped (Laravel's
/// `Queue::fake()`).
///
/// ```
/// use events::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[event]
/// #[derive(Serialize, Deserialize)]
/// struct Booked { id: u64 }
///
/// #[listener(queue = "calendar", tries = 3)]
/// async fn sync_calendar(_: &Booked) {}
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let queue = events::fake_queue();
/// Booked { id: 1 }.dispatch().await?;
/// queue.assert_pushed::<sync_calendar>();
/// assert_eq!(queue.run_pending().await?, 1);
/// # Ok(()) }
/// ```
#[must_use = "the fake stops recording when dropped"]
pub fn fake_queue() -> QueueFake {
    let state = Arc::new(QueueFakeState::default());
    QueueFake {
        _guard: Guard::install(Installed::Queue(state.clone())),
        state,
    }
}

/// The handle of a queue fake: its assertions. Dropping it ends the fake.
pub struct QueueFake {
    state: Arc<QueueFakeState>,
    _guard: Guard,
}

impl QueueFake {
    fn count(&self, listener: &str) -> usize {
        lock(&self.state.pushed)
            .iter()
            .filter(|j| j.listener == listener)
            .count()
    }

    fn report(&self) -> String {
        let pushed = lock(&self.state.pushed);
        if pushed.is_empty() {
            return "nothing was pushed".to_owned();
        }
        let mut out = format!("{} pushed instead:", pushed.len());
        for job in pushed.iter() {
            let _ = write!(
                out,
                "\n  - `{}` on queue `{}` for `{}` {}",
                job.listener, job.queue, job.event, job.payload
            );
        }
        out
    }

    /// Panics unless a job for listener `L` was pushed.
    #[track_caller]
    pub fn assert_pushed<L: Listener>(&self) {
        self.assert_pushed_named(L::NAME);
    }

    /// Panics unless a job for the listener named `listener` was pushed (use
    /// it for subscriber methods: `"my_app::Subscriber::method"`).
    #[track_caller]
    pub fn assert_pushed_named(&self, listener: &str) {
        if self.count(listener) == 0 {
            panic!(
                "expected a job for `{listener}` to be pushed; {}",
                self.report()
            );
        }
    }

    /// Panics unless a job for listener `L` was pushed whose event, read
    /// back from the job's payload, satisfies `matching`.
    ///
    /// ```
    /// use events::prelude::*;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[event]
    /// #[derive(Serialize, Deserialize)]
    /// struct InvoiceIssued { number: u32 }
    ///
    /// #[listener(queue = "billing")]
    /// async fn archive(_: &InvoiceIssued) {}
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), events::DispatchError> {
    /// let queue = events::fake_queue();
    /// InvoiceIssued { number: 7 }.dispatch().await?;
    /// queue.assert_pushed_where::<archive>(|e: &InvoiceIssued| e.number == 7);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn assert_pushed_where<L>(&self, matching: impl Fn(&L::Event) -> bool)
    where
        L: TypedListener,
        L::Event: serde::de::DeserializeOwned,
    {
        let seen = lock(&self.state.pushed)
            .iter()
            .filter(|j| j.listener == L::NAME)
            .filter_map(|j| serde_json::from_str::<L::Event>(&j.payload).ok())
            .filter(|e| matching(e))
            .count();
        if seen == 0 {
            panic!(
                "expected a job for `{}` to be pushed matching the condition; {}",
                L::NAME,
                self.report()
            );
        }
    }

    /// Wraps `future` so this fake records its jobs wherever it runs (see
    /// [`EventFake::scope`]).
    pub fn scope<F: std::future::Future>(
        &self,
        future: F,
    ) -> impl std::future::Future<Output = F::Output> + use<F> {
        let mut scope = current().unwrap_or_default();
        scope.queue = Some(self.state.clone());
        scoped(Some(scope), future)
    }

    /// Panics unless exactly `times` jobs for listener `L` were pushed.
    #[track_caller]
    pub fn assert_pushed_times<L: Listener>(&self, times: usize) {
        let seen = self.count(L::NAME);
        if seen != times {
            panic!(
                "expected {times} job(s) for `{}` to be pushed, but {seen} were; {}",
                L::NAME,
                self.report()
            );
        }
    }

    /// Panics if a job for listener `L` was pushed.
    #[track_caller]
    pub fn assert_not_pushed<L: Listener>(&self) {
        let seen = self.count(L::NAME);
        if seen != 0 {
            panic!(
                "expected no job for `{}` to be pushed, but {seen} were; {}",
                L::NAME,
                self.report()
            );
        }
    }

    /// Panics if any job was pushed.
    #[track_caller]
    pub fn assert_nothing_pushed(&self) {
        if !lock(&self.state.pushed).is_empty() {
            panic!("expected no job to be pushed; {}", self.report());
        }
    }

    /// Every job pushed, in order.
    pub fn pushed(&self) -> Vec<Job> {
        lock(&self.state.pushed).clone()
    }

    /// Runs the jobs not run yet, in the order they were pushed, in this
    /// task, each with the state, observers and retry defaults of the
    /// dispatcher that pushed it, by the retry rule a worker follows: a
    /// failed try with tries left is retried at once (the backoff is not
    /// waited, though observers hear of it), and a job that fails for good
    /// has its `on_failure` hook called. Returns how many jobs ran to an
    /// end or a release; stops at the first job that fails for good and returns its error
    /// (the jobs after it stay pending). A job whose listener asks for
    /// `release_after` stays pending for the next call, its try not
    /// counted; one that asks for `fail_without_retry` fails with the
    /// reason.
    pub async fn run_pending(&self) -> Result<usize, JobError> {
        let mut ran = 0;
        let mut released = Vec::new();
        loop {
            let next = {
                let mut pending = lock(&self.state.pending);
                if pending.is_empty() {
                    pending.extend(released);
                    return Ok(ran);
                }
                pending.remove(0)
            };
            let (job, env) = next;
            let Some(def) = registry().listener(&job.listener).map(|l| l.def) else {
                lock(&self.state.pending).extend(released);
                return Err(JobError::UnknownListener {
                    listener: job.listener,
                });
            };
            match run_to_end(def, job, &env, Waits::Skip, None).await {
                Ended::Done => ran += 1,
                // Back to the pending jobs: the next `run_pending` runs it
                // again (not this one, which would loop on a listener that
                // always releases).
                Ended::Released(job) => {
                    released.push((job, env));
                    ran += 1;
                }
                Ended::Failed(error) => {
                    lock(&self.state.pending).extend(released);
                    return Err(error);
                }
            }
        }
    }
}

impl std::fmt::Debug for QueueFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueFake")
            .field("pushed", &self.pushed())
            .finish()
    }
}
