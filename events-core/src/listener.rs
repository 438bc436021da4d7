//! Listeners: what `#[listener]` and `#[subscriber]` register, the return
//! types a listener may have, and the options of a queued listener.

use std::any::{Any, TypeId};
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::context::{Context, StateNeed};
use crate::event::{AnyEvent, Event};

/// What a listener returns to let the dispatch go on or stop it.
///
/// `Flow::Stop` is Laravel's `return false`: the remaining listeners of this
/// dispatch do not run, and since queued listeners come after every sync one,
/// nothing is enqueued either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flow {
    /// Let the next listener run.
    #[default]
    Continue,
    /// Halt the remaining listeners (and enqueue nothing).
    Stop,
}

/// A listener's error, boxed.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What one run of a listener ended with.
pub type Outcome = Result<Flow, BoxError>;

/// The return types a listener may have: `()`, `Flow`, `Result<(), E>` and
/// `Result<Flow, E>`, where `E` converts into [`BoxError`] (any
/// `std::error::Error + Send + Sync + 'static`, `Box<dyn Error + Send + Sync>`,
/// `anyhow::Error`, `String`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a listener return type",
    label = "a listener returns `()`, `Flow`, `Result<(), E>` or `Result<Flow, E>`",
    note = "the error type `E` must be a `std::error::Error + Send + Sync + 'static`"
)]
pub trait IntoOutcome {
    /// Converts the listener's return value.
    fn into_outcome(self) -> Outcome;
}

impl IntoOutcome for () {
    #[inline]
    fn into_outcome(self) -> Outcome {
        Ok(Flow::Continue)
    }
}

impl IntoOutcome for Flow {
    #[inline]
    fn into_outcome(self) -> Outcome {
        Ok(self)
    }
}

impl<E: ListenerError> IntoOutcome for Result<(), E> {
    #[inline]
    fn into_outcome(self) -> Outcome {
        match self {
            Ok(()) => Ok(Flow::Continue),
            Err(e) => Err(e.into_box_error()),
        }
    }
}

impl<E: ListenerError> IntoOutcome for Result<Flow, E> {
    #[inline]
    fn into_outcome(self) -> Outcome {
        self.map_err(ListenerError::into_box_error)
    }
}

/// The error types a listener may return: anything that converts into
/// [`BoxError`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a listener's error type",
    label = "the error of a listener's `Result` must be a `std::error::Error + Send + Sync + 'static`",
    note = "derive one with `thiserror`, or return `Box<dyn std::error::Error + Send + Sync>` or `anyhow::Error`"
)]
pub trait ListenerError {
    /// Boxes the error.
    fn into_box_error(self) -> BoxError;
}

#[diagnostic::do_not_recommend]
impl<E: Into<BoxError>> ListenerError for E {
    #[inline]
    fn into_box_error(self) -> BoxError {
        self.into()
    }
}

/// A listener, named by the type that `#[listener]` declares next to the
/// function (same name, type namespace), so tests can refer to it:
/// `queue.assert_pushed::<sync_to_calendar>()`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a listener",
    label = "expected the name of a function marked `#[listener]`",
    note = "`#[listener]` declares a type with the function's name; subscriber methods are named by string"
)]
pub trait Listener: 'static {
    /// The listener's stable name: the routing key of its queued jobs.
    const NAME: &'static str;
    /// The pattern of a wildcard listener (`pattern = ".."`), `None` for a
    /// listener of one event type.
    const PATTERN: Option<&'static str> = None;
}

/// Implemented by a listener's type for the event it takes (by a wildcard
/// listener's type for every event: its pattern is checked by name).
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not listen to `{E}`",
    label = "this listener does not take `&{E}`",
    note = "a listener listens to the event its parameter borrows"
)]
pub trait Listens<E: ?Sized>: Listener {}

/// A listener of one event type, `Event`: what `#[listener]` declares next
/// to a function taking `&E` (not a wildcard one), so a test can read its
/// jobs' events back (`QueueFake::assert_pushed_where`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a listener of one event type",
    label = "expected a function marked `#[listener]` that takes `&E`",
    note = "a wildcard listener (`&AnyEvent`) has no one event type to read its jobs back as"
)]
pub trait TypedListener: Listens<Self::Event> {
    /// The event its parameter borrows. (Not bounded by `Event` here: the
    /// listener's own registration reports a parameter that is no event,
    /// once.)
    type Event;
}

/// Checks that listener `L` listens to `E`: at compile time when `L` takes
/// `&E` (it does not compile otherwise); for a wildcard listener, by
/// matching its pattern against `E::NAME`, panicking when it does not
/// match.
///
/// ```
/// use events::prelude::*;
///
/// #[event(name = "parcel.shipped")]
/// struct Shipped;
///
/// #[listener]
/// fn notify(_: &Shipped) {}
///
/// #[listener(pattern = "parcel.*")]
/// fn audit(_: &AnyEvent) {}
///
/// events::assert_listening::<Shipped, notify>();
/// events::assert_listening::<Shipped, audit>();
/// ```
///
/// Subscriber methods have no type of their own: check them by name with
/// [`assert_listening_named`].
#[track_caller]
pub fn assert_listening<E: Event, L: Listens<E>>() {
    if let Some(pattern) = L::PATTERN
        && !crate::pattern::matches(pattern, E::NAME)
    {
        panic!(
            "expected `{}` to listen to `{}`, but its pattern `{pattern}` does not match that name",
            L::NAME,
            E::NAME
        );
    }
}

/// Panics unless the registered listener named `listener` listens to `E`
/// (by its event type, or its pattern matched against `E::NAME`). The name
/// is the full one (`my_app::Subscriber::method`), or its end after a `::`
/// (`Subscriber::method`) when only one listener's name ends so: what
/// subscriber methods, which have no type to name, are checked by.
///
/// ```
/// use events::prelude::*;
///
/// #[event]
/// struct Joined;
///
/// #[derive(Default)]
/// struct Welcome;
///
/// #[subscriber]
/// impl Welcome {
///     #[listen]
///     fn greet(&self, _: &Joined) {}
/// }
///
/// events::assert_listening_named::<Joined>("Welcome::greet");
/// ```
#[track_caller]
pub fn assert_listening_named<E: Event>(listener: &str) {
    let registry = crate::registry::registry();
    let suffix = format!("::{listener}");
    let found: Vec<ListenerInfo> = match registry.listener(listener) {
        Some(exact) => vec![exact],
        None => registry
            .listeners()
            .iter()
            .copied()
            .filter(|l| l.name().ends_with(&suffix))
            .collect(),
    };
    match found.as_slice() {
        [] => panic!(
            "expected `{listener}` to listen to `{}`, but no listener of that name is registered",
            E::NAME
        ),
        [one] if one.listens_to(TypeId::of::<E>(), E::NAME) => {}
        [one] => panic!(
            "expected `{}` to listen to `{}`, but it listens to `{}`",
            one.name(),
            E::NAME,
            one.event()
        ),
        many => {
            let names: Vec<&str> = many.iter().map(ListenerInfo::name).collect();
            panic!(
                "`{listener}` names more than one listener ({}): give the full name",
                names.join(", ")
            )
        }
    }
}

/// How a queued listener is retried and timed. Set with `#[listener(queue = ..,
/// tries = .., backoff = .., delay = .., timeout = ..)]`.
///
/// A listener that sets neither `tries` nor `backoff` takes them from the
/// [`RetryDefaults`] of the dispatcher that enqueues its jobs and of the
/// worker that retries them (`EVENTS_RETRY_ATTEMPTS`,
/// `EVENTS_RETRY_DELAY_SECONDS`); a declared value always wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOptions {
    queue: &'static str,
    /// `None` when the attribute sets no `tries`.
    tries: Option<u32>,
    /// Empty when the attribute sets no `backoff` (a declared list is never
    /// empty: the macro rejects `backoff = []`).
    backoff: &'static [Duration],
    delay: Duration,
    timeout: Option<Duration>,
}

impl QueueOptions {
    /// Used by the generated code. `tries` 0 and an empty `backoff` mean
    /// "not declared": the macro rejects `tries = 0` and `backoff = []`, so
    /// neither can be a declared value.
    #[doc(hidden)]
    pub const fn __new(
        queue: &'static str,
        tries: u32,
        backoff: &'static [Duration],
        delay: Duration,
        timeout: Option<Duration>,
    ) -> Self {
        QueueOptions {
            queue,
            tries: if tries == 0 { None } else { Some(tries) },
            backoff,
            delay,
            timeout,
        }
    }

    /// The queue the listener's jobs go to.
    pub fn queue(&self) -> &'static str {
        self.queue
    }

    /// How many times a job is tried before it fails (at least 1): the
    /// declared `tries`, else 1. [`tries_or`](Self::tries_or) gives what a
    /// dispatcher with retry defaults uses.
    pub fn tries(&self) -> u32 {
        self.tries.unwrap_or(1)
    }

    /// The `tries` the attribute declares, `None` when it sets none.
    pub fn declared_tries(&self) -> Option<u32> {
        self.tries
    }

    /// The declared `tries`, else the defaults' tries.
    ///
    /// ```
    /// # use events::{QueueOptions, RetryDefaults};
    /// # use std::time::Duration;
    /// let defaults = RetryDefaults::new(5, [Duration::from_secs(10)]);
    /// let undeclared = QueueOptions::__new("default", 0, &[], Duration::ZERO, None);
    /// let declared = QueueOptions::__new("default", 2, &[], Duration::ZERO, None);
    /// assert_eq!(undeclared.tries_or(&defaults), 5);
    /// assert_eq!(declared.tries_or(&defaults), 2);
    /// ```
    pub fn tries_or(&self, defaults: &RetryDefaults) -> u32 {
        self.tries.unwrap_or(defaults.tries)
    }

    /// The backoff list as declared (empty: none declared, retry at once).
    pub fn backoff(&self) -> &'static [Duration] {
        self.backoff
    }

    /// The `backoff` the attribute declares, `None` when it sets none.
    pub fn declared_backoff(&self) -> Option<&'static [Duration]> {
        (!self.backoff.is_empty()).then_some(self.backoff)
    }

    /// How long after dispatch a job becomes available.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// How long one try may run; `None` leaves it to the worker's default.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The wait before the next try after `attempt` (1-based) failed: the
    /// list is indexed by attempt and its last value repeats.
    ///
    /// ```
    /// # use events::QueueOptions;
    /// # use std::time::Duration;
    /// # const B: &[Duration] = &[Duration::from_secs(1), Duration::from_secs(5)];
    /// let o = QueueOptions::__new("default", 4, B, Duration::ZERO, None);
    /// assert_eq!(o.backoff_after(1), Duration::from_secs(1));
    /// assert_eq!(o.backoff_after(2), Duration::from_secs(5));
    /// assert_eq!(o.backoff_after(3), Duration::from_secs(5));
    /// ```
    pub fn backoff_after(&self, attempt: u32) -> Duration {
        backoff_at(self.backoff, attempt)
    }

    /// Like [`backoff_after`](Self::backoff_after), with the defaults' list
    /// when the attribute declares none.
    ///
    /// ```
    /// # use events::{QueueOptions, RetryDefaults};
    /// # use std::time::Duration;
    /// let defaults = RetryDefaults::new(3, [Duration::from_secs(1), Duration::from_secs(5)]);
    /// let undeclared = QueueOptions::__new("default", 0, &[], Duration::ZERO, None);
    /// assert_eq!(undeclared.backoff_after_or(1, &defaults), Duration::from_secs(1));
    /// assert_eq!(undeclared.backoff_after_or(4, &defaults), Duration::from_secs(5));
    ///
    /// const OWN: &[Duration] = &[Duration::from_millis(250)];
    /// let declared = QueueOptions::__new("default", 0, OWN, Duration::ZERO, None);
    /// assert_eq!(declared.backoff_after_or(1, &defaults), Duration::from_millis(250));
    /// ```
    pub fn backoff_after_or(&self, attempt: u32, defaults: &RetryDefaults) -> Duration {
        match self.declared_backoff() {
            Some(own) => backoff_at(own, attempt),
            None => backoff_at(&defaults.backoff, attempt),
        }
    }
}

/// The wait after `attempt` (1-based) failed: `list` indexed by attempt, its
/// last value repeating; zero for an empty list.
fn backoff_at(list: &[Duration], attempt: u32) -> Duration {
    let index = (attempt.max(1) - 1) as usize;
    match list {
        [] => Duration::ZERO,
        list => list[index.min(list.len() - 1)],
    }
}

/// Tries and backoff for queued listeners that declare none: the
/// dispatcher's (which sets a job's tries when it enqueues it) and the
/// worker's (which picks the wait before each retry). `EVENTS_RETRY_ATTEMPTS`
/// and `EVENTS_RETRY_DELAY_SECONDS` set them through
/// [`Config`](crate::Config); the default is one try and no wait, as if
/// neither was set.
///
/// ```
/// use events::RetryDefaults;
/// use std::time::Duration;
///
/// let defaults = RetryDefaults::new(3, [Duration::from_secs(1), Duration::from_secs(5)]);
/// assert_eq!(defaults.tries(), 3);
/// assert_eq!(defaults.backoff(), [Duration::from_secs(1), Duration::from_secs(5)]);
/// assert_eq!(RetryDefaults::default().tries(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryDefaults {
    tries: u32,
    backoff: Arc<[Duration]>,
}

impl Default for RetryDefaults {
    fn default() -> Self {
        RetryDefaults {
            tries: 1,
            backoff: Arc::from([]),
        }
    }
}

impl RetryDefaults {
    /// `tries` (at least 1) and a backoff list indexed by attempt whose last
    /// value repeats (empty: retry at once; a list of zeros is kept as
    /// empty, which waits the same).
    pub fn new(tries: u32, backoff: impl IntoIterator<Item = Duration>) -> Self {
        let backoff: Vec<Duration> = backoff.into_iter().collect();
        let waits = backoff.iter().any(|d| !d.is_zero());
        RetryDefaults {
            tries: tries.max(1),
            backoff: if waits { backoff.into() } else { Arc::from([]) },
        }
    }

    /// How many times a job is tried.
    pub fn tries(&self) -> u32 {
        self.tries
    }

    /// The waits before each retry.
    pub fn backoff(&self) -> &[Duration] {
        &self.backoff
    }
}

/// A sync listener body, type-erased.
#[doc(hidden)]
pub type SyncFn = fn(&AnyEvent) -> Outcome;
/// An async listener body, type-erased.
#[doc(hidden)]
pub type AsyncFn = for<'a> fn(&'a AnyEvent) -> BoxFuture<'a, Outcome>;
/// A sync listener body that takes extractors, type-erased.
#[doc(hidden)]
pub type SyncCxFn = fn(&AnyEvent, &Context) -> Outcome;
/// An async listener body that takes extractors, type-erased.
#[doc(hidden)]
pub type AsyncCxFn = for<'a> fn(&'a AnyEvent, &'a Context) -> BoxFuture<'a, Outcome>;
/// A queued listener's job body: rebuilds the event from its name and JSON
/// and returns the run (which takes its extractors from the context), or
/// the deserialization error.
#[doc(hidden)]
pub type JobFn = fn(&str, &str, &Context) -> Result<BoxFuture<'static, Outcome>, serde_json::Error>;

/// A plain `fn` listener's body for its own event type `E`, with `E` erased.
///
/// Only [`TypedCall::new`] builds one, recording `E`'s `TypeId` next to the
/// function, so the registry can check which event type it takes before it
/// ever calls it as `fn(&E)`.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct TypedCall {
    erased: *const (),
    type_id: fn() -> TypeId,
    /// `fn(&E)` rather than `fn(&E) -> Outcome`.
    unit: bool,
}

// SAFETY: `erased` is a function pointer, which is `Send + Sync`.
unsafe impl Send for TypedCall {}
// SAFETY: as above.
unsafe impl Sync for TypedCall {}

impl TypedCall {
    /// Erases `call`, remembering the event type it takes.
    pub const fn new<E: 'static>(call: fn(&E) -> Outcome) -> TypedCall {
        TypedCall {
            erased: call as *const (),
            type_id: TypeId::of::<E>,
            unit: false,
        }
    }

    /// Erases a listener that returns nothing: the user's own function,
    /// called with no wrapper and no outcome to read back.
    pub const fn unit<E: 'static>(call: fn(&E)) -> TypedCall {
        TypedCall {
            erased: call as *const (),
            type_id: TypeId::of::<E>,
            unit: true,
        }
    }

    /// Whether it returns nothing.
    pub(crate) fn is_unit(&self) -> bool {
        self.unit
    }

    /// The event type the function takes.
    pub(crate) fn type_id(&self) -> TypeId {
        (self.type_id)()
    }

    /// The function, typed again.
    ///
    /// # Safety
    ///
    /// `E` must be the type this call was built for: `self.type_id()` must
    /// equal `TypeId::of::<E>()`.
    #[inline(always)]
    pub(crate) unsafe fn assume<E: 'static>(self) -> fn(&E) -> Outcome {
        debug_assert!(self.type_id() == TypeId::of::<E>() && !self.unit);
        // SAFETY: `erased` came from a `fn(&E) -> Outcome` (see `new`), and
        // the caller vouches that this `E` is that `E`.
        unsafe { std::mem::transmute::<*const (), fn(&E) -> Outcome>(self.erased) }
    }

    /// Calls it with `event` when `event` is of the type it was built for
    /// (its `TypeId` says so); `None` otherwise. What a replay calls a
    /// typed listener with, holding the event only as `Any`.
    pub(crate) fn call_any(self, event: &dyn Any) -> Option<Outcome> {
        if event.type_id() != self.type_id() {
            return None;
        }
        let data = event as *const dyn Any as *const ();
        if self.unit {
            // SAFETY: `erased` came from a `fn(&E)` (see `unit`), and
            // `event` is an `E` (the `TypeId`s match), so `data` points to
            // a live `E` for this call. A thin `*const ()` and a `&E` of a
            // sized `E` are ABI-compatible (std's `fn` docs, "ABI
            // compatibility"), so calling the function through this
            // pointer type is calling it with `&E`.
            let call = unsafe { std::mem::transmute::<*const (), fn(*const ())>(self.erased) };
            call(data);
            Some(Ok(Flow::Continue))
        } else {
            // SAFETY: as above, for a `fn(&E) -> Outcome` (see `new`).
            let call =
                unsafe { std::mem::transmute::<*const (), fn(*const ()) -> Outcome>(self.erased) };
            Some(call(data))
        }
    }

    /// The bare function pointer of a unit call, for a table's dense array
    /// of plain listeners.
    pub(crate) fn unit_fn(self) -> Option<UnitFn> {
        self.unit.then_some(UnitFn(self.erased))
    }

    /// The unit function, typed again.
    ///
    /// # Safety
    ///
    /// As for [`assume`](Self::assume), and `self.is_unit()` must hold.
    #[inline(always)]
    pub(crate) unsafe fn assume_unit<E: 'static>(self) -> fn(&E) {
        debug_assert!(self.type_id() == TypeId::of::<E>() && self.unit);
        // SAFETY: `erased` came from a `fn(&E)` (see `unit`), and the caller
        // vouches for `E`.
        unsafe { UnitFn(self.erased).assume::<E>() }
    }
}

/// A `fn(&E)` with `E` erased: one word, as in a static array of function
/// pointers. Only [`Table`](crate::registry::Table)s keyed by `E` hold one.
#[derive(Clone, Copy)]
pub(crate) struct UnitFn(*const ());

// SAFETY: the pointer is a function pointer, which is `Send + Sync`.
unsafe impl Send for UnitFn {}
// SAFETY: as above.
unsafe impl Sync for UnitFn {}

impl UnitFn {
    /// The function, typed again.
    ///
    /// # Safety
    ///
    /// `E` must be the type the [`TypedCall::unit`] it came from was built
    /// for.
    #[inline(always)]
    pub(crate) unsafe fn assume<E: 'static>(self) -> fn(&E) {
        // SAFETY: the pointer came from a `fn(&E)` (`TypedCall::unit`), and
        // the caller vouches for `E`.
        unsafe { std::mem::transmute::<*const (), fn(&E)>(self.0) }
    }
}

/// How a registered listener runs.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub enum Run {
    /// A plain `fn` taking one event type, called inside dispatch without
    /// type erasure.
    Typed(TypedCall),
    /// A plain `fn` taking `&AnyEvent`, called inside dispatch.
    Sync(SyncFn),
    /// An `async fn`, awaited inside dispatch.
    Async(AsyncFn),
    /// A plain `fn` taking extractors besides its event, called inside
    /// dispatch with the dispatch's context.
    SyncCx(SyncCxFn),
    /// An `async fn` taking extractors, awaited inside dispatch.
    AsyncCx(AsyncCxFn),
    /// Enqueued as a job at dispatch and run by a worker.
    Queued {
        /// Retry and timing options.
        options: QueueOptions,
        /// The job body.
        job: JobFn,
        /// The event as the job's payload; `None` when it cannot be
        /// serialized (a wildcard listener's non-`Serialize` event).
        encode: fn(&AnyEvent) -> Option<Result<String, EncodeError>>,
        /// Whether the listener itself is an `async fn`.
        is_async: bool,
    },
}

/// Why a queued listener's event cannot become a job's payload.
#[doc(hidden)]
#[derive(Debug)]
pub enum EncodeError {
    /// Its `Serialize` impl failed.
    Serialize(serde_json::Error),
    /// Its JSON does not deserialize back into the event, so its job could
    /// never run: most often a NaN or infinite float, which JSON writes as
    /// `null`. `field` is the path of the `null` deserialization failed on,
    /// when it failed on one (`amount`, `items[2].price`).
    RoundTrip {
        /// The path of the field, when known.
        field: Option<String>,
        /// What serde said when reading it back.
        source: serde_json::Error,
    },
}

/// Checks that `json` reads back with `decode`. JSON written from a Rust
/// value reads back unless it holds a `null` the value's type does not
/// accept (a NaN or infinite float, which serde_json writes as `null`), so
/// only JSON holding `null` pays for a second parse.
pub(crate) fn check_round_trip<T>(
    json: &str,
    decode: impl FnOnce(&str) -> Result<T, serde_json::Error>,
) -> Result<(), EncodeError> {
    if !json.contains("null") {
        return Ok(());
    }
    match decode(json) {
        Ok(_) => Ok(()),
        Err(source) => Err(EncodeError::RoundTrip {
            field: null_field_at(json, source.column()),
            source,
        }),
    }
}

/// The path (`a.b[2].c`) of the last `null` of one-line `json` starting
/// before byte `column` (serde's 1-based column of an error), `None` when
/// there is none.
fn null_field_at(json: &str, column: usize) -> Option<String> {
    enum Frame {
        Object {
            key: Option<String>,
            expect_key: bool,
        },
        Array {
            index: usize,
        },
    }
    let render = |stack: &[Frame]| {
        let mut path = String::new();
        for frame in stack {
            match frame {
                Frame::Object { key: Some(key), .. } => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                }
                Frame::Object { key: None, .. } => {}
                Frame::Array { index } => path.push_str(&format!("[{index}]")),
            }
        }
        path
    };
    let bytes = json.as_bytes();
    let mut stack: Vec<Frame> = Vec::new();
    let mut found = None;
    let mut i = 0;
    while i < bytes.len() && i < column {
        match bytes[i] {
            b'{' => stack.push(Frame::Object {
                key: None,
                expect_key: true,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array { index }) => *index += 1,
                Some(Frame::Object { expect_key, .. }) => *expect_key = true,
                None => {}
            },
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if let Some(Frame::Object { key, expect_key }) = stack.last_mut()
                    && *expect_key
                {
                    *key = json.get(start..i.min(json.len())).map(str::to_owned);
                    *expect_key = false;
                }
            }
            b'n' if json[i..].starts_with("null") => {
                let path = render(&stack);
                found = (!path.is_empty()).then_some(path);
                i += 3;
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// The event a listener takes.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub enum Target {
    /// One event type.
    Event {
        /// `Event::NAME`.
        name: &'static str,
        /// The type's id.
        type_id: fn() -> TypeId,
        /// `std::any::type_name` of the type.
        type_name: fn() -> &'static str,
        /// What `#[event]` generated for the type, if anything: how the
        /// registry learns about event types.
        def: fn() -> Option<&'static crate::event::EventDef>,
    },
    /// Every event whose name matches the pattern.
    Pattern(&'static str),
}

/// Link-time registration of a listener, submitted by `#[listener]` and
/// `#[subscriber]`.
#[doc(hidden)]
pub struct ListenerDef {
    /// Stable name: routing key of queued jobs.
    pub name: &'static str,
    /// What it listens to.
    pub target: Target,
    /// Higher runs first.
    pub priority: i32,
    /// `when = predicate`, checked before the listener runs or is enqueued.
    pub when: Option<fn(&AnyEvent) -> bool>,
    /// How it runs.
    pub run: Run,
    /// Called with a queued job of this listener that ends in the failed
    /// store (`on_failure = path`).
    pub on_failure: Option<fn(&crate::queue::FailedJob)>,
    /// The state types its extractors need (its `State<T>` parameters; an
    /// extractor that needs none is `None`), checked at start-up.
    pub needs: &'static [Option<StateNeed>],
    /// Source file.
    pub file: &'static str,
    /// Source line.
    pub line: u32,
}

inventory::collect!(ListenerDef);

/// Whether a listener runs inside dispatch or as a queued job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Runs inside `dispatch`, in priority order.
    Sync,
    /// Enqueued at dispatch, run by a worker with these options.
    Queued(QueueOptions),
}

/// A registered listener, as [`registry`](crate::registry) and
/// [`listeners_for`](crate::listeners_for) describe it.
#[derive(Clone, Copy)]
pub struct ListenerInfo {
    pub(crate) def: &'static ListenerDef,
}

impl ListenerInfo {
    /// The stable name (module path and function, `Type::method` for a
    /// subscriber method, or the `name = ".."` it pins).
    pub fn name(&self) -> &'static str {
        self.def.name
    }

    /// The event's name, or the pattern of a wildcard listener.
    pub fn event(&self) -> &'static str {
        match self.def.target {
            Target::Event { name, .. } => name,
            Target::Pattern(pattern) => pattern,
        }
    }

    /// The Rust type of the event, `None` for a wildcard listener.
    pub fn event_type(&self) -> Option<&'static str> {
        match self.def.target {
            Target::Event { type_name, .. } => Some(type_name()),
            Target::Pattern(_) => None,
        }
    }

    /// The wildcard pattern, for a wildcard listener.
    pub fn pattern(&self) -> Option<&'static str> {
        match self.def.target {
            Target::Pattern(pattern) => Some(pattern),
            Target::Event { .. } => None,
        }
    }

    /// Sync, or queued with its options.
    pub fn mode(&self) -> Mode {
        match self.def.run {
            Run::Queued { options, .. } => Mode::Queued(options),
            Run::Typed(_) | Run::Sync(_) | Run::Async(_) | Run::SyncCx(_) | Run::AsyncCx(_) => {
                Mode::Sync
            }
        }
    }

    /// Whether the listener is an `async fn`.
    pub fn is_async(&self) -> bool {
        match self.def.run {
            Run::Typed(_) | Run::Sync(_) | Run::SyncCx(_) => false,
            Run::Async(_) | Run::AsyncCx(_) => true,
            Run::Queued { is_async, .. } => is_async,
        }
    }

    /// The application state types it needs, by type name.
    pub fn needs_state(&self) -> impl Iterator<Item = &'static str> {
        self.def.needs.iter().flatten().map(StateNeed::type_name)
    }

    /// Whether it has a `when = ..` condition.
    pub fn is_conditional(&self) -> bool {
        self.def.when.is_some()
    }

    /// Higher runs first.
    pub fn priority(&self) -> i32 {
        self.def.priority
    }

    /// The source file it is declared in.
    pub fn file(&self) -> &'static str {
        self.def.file
    }

    /// The line it is declared on.
    pub fn line(&self) -> u32 {
        self.def.line
    }

    pub(crate) fn listens_to(&self, type_id: TypeId, name: &str) -> bool {
        match self.def.target {
            Target::Event { type_id: id, .. } => id() == type_id,
            Target::Pattern(pattern) => crate::pattern::matches(pattern, name),
        }
    }
}

impl std::fmt::Debug for ListenerInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerInfo")
            .field("name", &self.name())
            .field("event", &self.event())
            .field("mode", &self.mode())
            .field("priority", &self.priority())
            .field("async", &self.is_async())
            .field("conditional", &self.is_conditional())
            .field("file", &self.file())
            .field("line", &self.line())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::null_field_at;

    #[test]
    fn the_null_an_error_points_at_is_named_by_its_path() {
        let json = r#"{"a":null,"b":{"c":[1,null]},"d":"null","e":null}"#;
        let at = |needle: &str| json.find(needle).unwrap() + needle.len() + 1;
        assert_eq!(null_field_at(json, at(r#""a":null"#)).as_deref(), Some("a"));
        assert_eq!(
            null_field_at(json, at("[1,null")).as_deref(),
            Some("b.c[1]")
        );
        assert_eq!(null_field_at(json, at(r#""e":null"#)).as_deref(), Some("e"));
        assert_eq!(null_field_at(r#"{"x":1}"#, 7), None);
        assert_eq!(null_field_at("null", 4), None);
    }
}
