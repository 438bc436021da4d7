//! Laravel's fakes: record dispatched events or queued jobs instead of running
//! them, and assert on what was recorded.
//!
//! A fake is active on the thread that made it, until the returned guard is
//! dropped: the scope `tracing::subscriber::set_default` uses. Each test runs
//! on its own thread, so parallel tests in one binary never see each other's
//! fakes. Everything the test thread runs sees it: a `#[tokio::test]` body
//! (current-thread runtime), `Runtime::block_on` from the test, plain sync
//! code. Tasks that a multi-thread runtime moves to its worker threads do
//! not; dispatch from the test's own thread, or use a current-thread
//! runtime.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::fmt::Write as _;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::context::{Directive, StateMap, lock};
use crate::event::Event;
use crate::listener::Listener;
use crate::queue::{Job, JobError, run_job_in};

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
}

/// The fakes in force for one dispatch.
#[derive(Clone, Default)]
pub(crate) struct Scope {
    events: Option<Arc<EventFakeState>>,
    pub(crate) queue: Option<Arc<QueueFakeState>>,
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
    SCOPE.with(|stacks| {
        let stacks = stacks.borrow();
        let scope = Scope {
            events: stacks.events.last().cloned(),
            queue: stacks.queue.last().cloned(),
        };
        (scope.events.is_some() || scope.queue.is_some()).then_some(scope)
    })
}

/// Which fake a guard installed.
enum Installed {
    Events(Arc<EventFakeState>),
    Queue(Arc<QueueFakeState>),
}

/// Installs a fake on this thread until dropped.
struct Guard {
    installed: Installed,
    /// The guard edits a thread-local: it must drop on its thread.
    _not_send: PhantomData<*const ()>,
}

impl Guard {
    fn install(installed: Installed) -> Guard {
        ACTIVE.fetch_add(1, Ordering::AcqRel);
        SCOPE.with(|stacks| {
            let mut stacks = stacks.borrow_mut();
            match &installed {
                Installed::Events(state) => stacks.events.push(state.clone()),
                Installed::Queue(state) => stacks.queue.push(state.clone()),
            }
        });
        Guard {
            installed,
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
            }
        });
        ACTIVE.fetch_sub(1, Ordering::AcqRel);
    }
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

pub(crate) struct EventFakeState {
    /// `None`: every event; else only these.
    only: Option<Vec<TypeId>>,
    records: Mutex<Vec<Recorded>>,
}

impl EventFakeState {
    fn intercepts(&self, type_id: TypeId) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.contains(&type_id))
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

/// A set of event types, for [`fake_only`]: a tuple of one to eight event
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
    EventFake::install(None)
}

/// Fakes only the listed events (`events::fake_only::<(A, B)>()`); the others
/// dispatch as usual.
#[must_use = "the fake stops recording when dropped"]
pub fn fake_only<S: EventSet>() -> EventFake {
    EventFake::install(Some(S::type_ids()))
}

/// The handle of an event fake: its assertions. Dropping it ends the fake.
pub struct EventFake {
    state: Arc<EventFakeState>,
    _guard: Guard,
}

impl EventFake {
    fn install(only: Option<Vec<TypeId>>) -> EventFake {
        let state = Arc::new(EventFakeState {
            only,
            records: Mutex::new(Vec::new()),
        });
        EventFake {
            _guard: Guard::install(Installed::Events(state.clone())),
            state,
        }
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
    /// Jobs not yet run by `run_pending`, with the state of the dispatcher
    /// that pushed them.
    pending: Mutex<Vec<(Job, Arc<StateMap>)>>,
}

impl QueueFakeState {
    pub(crate) fn push(&self, job: Job, state: &Arc<StateMap>) {
        lock(&self.pushed).push(job.clone());
        lock(&self.pending).push((job, state.clone()));
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

    /// Runs the jobs not run yet, in the order they were pushed, one try
    /// each, in this task, with the state of the dispatcher that pushed
    /// them. Returns how many ran; stops at the first that fails and returns
    /// its error (the jobs after it stay pending). A job whose listener
    /// asks for `release_after` stays pending for the next call, its try
    /// not counted; one that asks for `fail_without_retry` fails with the
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
            let (mut job, state) = next;
            job.attempt += 1;
            let (result, directive) = run_job_in(&job, state.clone()).await;
            match directive {
                // Back to the pending jobs, its try not counted: the next
                // `run_pending` runs it again (not this one, which would
                // loop on a listener that always releases).
                Some(Directive::Release(_)) => {
                    job.attempt -= 1;
                    released.push((job, state));
                }
                Some(Directive::Fail(reason)) => {
                    let reason = match result {
                        Ok(()) => reason,
                        Err(error) => format!("{reason} ({})", crate::error::Chain(&error)),
                    };
                    lock(&self.state.pending).extend(released);
                    return Err(JobError::Failed {
                        listener: job.listener,
                        source: reason.into(),
                    });
                }
                None => {
                    if let Err(error) = result {
                        lock(&self.state.pending).extend(released);
                        return Err(error);
                    }
                }
            }
            ran += 1;
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
