//! Observers: what sees every dispatch, every sync listener's run and each
//! queued job's life without being a listener. Metrics, traces, audit
//! trails and dashboards plug in here.
//!
//! Give one to a dispatcher with `Dispatcher::builder().observe(o)` and to a
//! worker with `Worker::new(q).observe(o)`. Every method has a default that
//! does nothing; implement the ones you need. With no observer, dispatch
//! costs what it did before observers existed.
//!
//! An observer says what it wants with [`Observer::interest`]; dispatch
//! does only the work someone asked for. The default, [`Interest::ALL`],
//! builds the envelope before the first listener, times every listener and
//! calls every method. An observer that only counts (say
//! `Interest::DISPATCHES | Interest::LISTENER_RUNS`) keeps dispatch on a
//! lean path: no envelope, no boxed future, no clock read, and it is not
//! called for what it did not ask for.
//!
//! ```
//! use events::observe::{DispatchRecord, Observer};
//! use events::prelude::*;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//!
//! #[derive(Default)]
//! struct Count(AtomicUsize);
//!
//! impl Observer for Count {
//!     fn dispatched(&self, _: &DispatchRecord<'_>) {
//!         self.0.fetch_add(1, Ordering::Relaxed);
//!     }
//! }
//!
//! #[event]
//! struct Pinged;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let count = Arc::new(Count::default());
//! let dispatcher = events::Dispatcher::builder().observe(count.clone()).build()?;
//! dispatcher.dispatch(Pinged).await?;
//! assert_eq!(count.0.load(Ordering::Relaxed), 1);
//! # Ok(()) }
//! ```

use std::error::Error as StdError;
use std::ops::{BitOr, BitOrAssign};
use std::sync::Arc;
use std::time::Duration;

use quanta::Instant;

use crate::dispatch::{DispatchError, Dispatched};
use crate::envelope::{Envelope, Metadata};
use crate::queue::Job;

/// What an observer wants to see, from [`Observer::interest`]: a set of
/// flags, combined with `|`. Dispatch skips the work no observer of the
/// dispatcher asks for, and an observer is called only for what it asked
/// for.
///
/// ```
/// use events::observe::Interest;
///
/// let counts = Interest::DISPATCHES | Interest::LISTENER_RUNS;
/// assert!(counts.contains(Interest::DISPATCHES));
/// assert!(!counts.contains(Interest::ENVELOPE));
/// assert!(Interest::ALL.contains(counts));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest(u8);

impl Interest {
    /// Nothing: the observer is never called.
    pub const NONE: Interest = Interest(0);
    /// The dispatch's envelope: [`Observer::enrich`] is called, the envelope
    /// is built before the first listener runs, and [`DispatchRecord`] and
    /// [`ListenerRun`] carry it. The costly one: an id, a clock read and
    /// the metadata per dispatch, and a boxed future.
    pub const ENVELOPE: Interest = Interest(1);
    /// Spans: [`Observer::dispatch_span`], [`Observer::listener_span`] and
    /// [`Observer::enqueue_span`] (which take the envelope, so this costs
    /// what [`ENVELOPE`](Self::ENVELOPE) does) and [`Observer::job_span`].
    pub const SPANS: Interest = Interest(1 << 1);
    /// [`Observer::dispatched`], once per dispatch.
    pub const DISPATCHES: Interest = Interest(1 << 2);
    /// [`Observer::listener_ran`], once per listener run inside dispatch.
    pub const LISTENER_RUNS: Interest = Interest(1 << 3);
    /// How long dispatches and listener runs took: the `took` of
    /// [`DispatchRecord`] and [`ListenerRun`]. A clock read per listener.
    pub const TIMING: Interest = Interest(1 << 4);
    /// The job methods: [`Observer::job_enqueued`] and the ones after it
    /// (except [`job_span`](Observer::job_span), which is
    /// [`SPANS`](Self::SPANS)).
    pub const JOBS: Interest = Interest(1 << 5);
    /// Everything: what [`Observer::interest`] says by default.
    pub const ALL: Interest = Interest((1 << 6) - 1);

    /// Both sets.
    pub const fn union(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }

    /// Whether every flag of `other` is in `self`.
    pub const fn contains(self, other: Interest) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether `self` and `other` share a flag.
    pub const fn intersects(self, other: Interest) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl Default for Interest {
    /// [`Interest::ALL`], as [`Observer::interest`] says by default.
    fn default() -> Self {
        Interest::ALL
    }
}

impl BitOr for Interest {
    type Output = Interest;
    fn bitor(self, other: Interest) -> Interest {
        self.union(other)
    }
}

impl BitOrAssign for Interest {
    fn bitor_assign(&mut self, other: Interest) {
        *self = self.union(other);
    }
}

impl std::fmt::Debug for Interest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const NAMES: [(Interest, &str); 6] = [
            (Interest::ENVELOPE, "ENVELOPE"),
            (Interest::SPANS, "SPANS"),
            (Interest::DISPATCHES, "DISPATCHES"),
            (Interest::LISTENER_RUNS, "LISTENER_RUNS"),
            (Interest::TIMING, "TIMING"),
            (Interest::JOBS, "JOBS"),
        ];
        if self.is_empty() {
            return f.write_str("Interest(NONE)");
        }
        f.write_str("Interest(")?;
        let mut names = NAMES.iter().filter(|(flag, _)| self.contains(*flag));
        if let Some((_, first)) = names.next() {
            f.write_str(first)?;
        }
        for (_, name) in names {
            write!(f, " | {name}")?;
        }
        f.write_str(")")
    }
}

/// Sees dispatches, listener runs and jobs. Methods are called on the task
/// doing the work, so keep them quick; a panic in one is caught and logged.
#[allow(unused_variables)]
pub trait Observer: Send + Sync + 'static {
    /// What this observer wants to see (see [`Interest`]); asked once, when
    /// the dispatcher or worker is built. Methods outside it are not called,
    /// and dispatch skips the work nobody asked for. Default:
    /// [`Interest::ALL`].
    ///
    /// ```
    /// use events::observe::{DispatchRecord, Interest, Observer};
    /// use std::sync::atomic::{AtomicU64, Ordering};
    ///
    /// /// Counts dispatches; dispatch builds no envelope and reads no clock for it.
    /// #[derive(Default)]
    /// struct Dispatches(AtomicU64);
    ///
    /// impl Observer for Dispatches {
    ///     fn interest(&self) -> Interest {
    ///         Interest::DISPATCHES
    ///     }
    ///     fn dispatched(&self, record: &DispatchRecord<'_>) {
    ///         assert!(record.envelope.is_none() && record.took.is_none());
    ///         self.0.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// }
    /// ```
    fn interest(&self) -> Interest {
        Interest::ALL
    }

    /// Adds to the metadata of a dispatch of `event` before any listener
    /// sees it (a trace context, say). Values given at the dispatch win:
    /// use [`Metadata::insert_default`].
    fn enrich(&self, event: &str, metadata: &mut Metadata) {}

    /// A span the rest of the dispatch runs in (listeners, enqueueing).
    fn dispatch_span(&self, event: &str, envelope: &Envelope) -> Option<tracing::Span> {
        None
    }

    /// The W3C trace context (`traceparent`) of `span`, the span this
    /// observer made with [`dispatch_span`](Self::dispatch_span), when the
    /// span itself knows it (an OpenTelemetry bridge, whose span ids are
    /// its own). It replaces the metadata's
    /// [`traceparent`](crate::keys::TRACEPARENT) before any listener or job
    /// sees the envelope, so the jobs' spans join that span's trace.
    fn trace_context(&self, span: &tracing::Span) -> Option<TraceParent> {
        None
    }

    /// A span one sync listener's run inside dispatch runs in (a child of
    /// the dispatch's span).
    fn listener_span(
        &self,
        listener: &'static str,
        event: &'static str,
        envelope: &Envelope,
    ) -> Option<tracing::Span> {
        None
    }

    /// A span the enqueueing of a dispatch's jobs runs in (one write of
    /// them all; a child of the dispatch's span).
    fn enqueue_span(&self, event: &'static str, jobs: &[&Job]) -> Option<tracing::Span> {
        None
    }

    /// A dispatch ended, well or not.
    fn dispatched(&self, record: &DispatchRecord<'_>) {}

    /// A listener ran inside dispatch.
    fn listener_ran(&self, run: &ListenerRun<'_>) {}

    /// A job was stored (or handed to the in-process runner).
    fn job_enqueued(&self, job: &Job) {}

    /// A worker claimed a job and is about to run it.
    fn job_claimed(&self, job: &Job) {}

    /// A span the job's try runs in.
    fn job_span(&self, job: &Job) -> Option<tracing::Span> {
        None
    }

    /// The job's listener succeeded and the job is done.
    fn job_succeeded(&self, job: &Job, took: Duration) {}

    /// A try failed and the job will run again after `delay`.
    fn job_retried(&self, job: &Job, error: &str, delay: Duration) {}

    /// The listener asked to run again after `delay` without counting the
    /// try (`ctx.job().release_after(..)`).
    fn job_released(&self, job: &Job, delay: Duration) {}

    /// The job went to the failed store.
    fn job_failed(&self, job: &Job, error: &str) {}

    /// The worker lost the job's lease (another worker has it): its result
    /// was discarded.
    fn job_lease_lost(&self, job: &Job) {}

    /// A worker claimed a job whose listener is not registered in its
    /// program and handed it back untried: it waits for a worker that has
    /// the listener. `reason` says so in words.
    fn job_set_aside(&self, job: &Job, reason: &str) {}
}

impl<O: Observer + ?Sized> Observer for Arc<O> {
    fn interest(&self) -> Interest {
        (**self).interest()
    }
    fn enrich(&self, event: &str, metadata: &mut Metadata) {
        (**self).enrich(event, metadata)
    }
    fn dispatch_span(&self, event: &str, envelope: &Envelope) -> Option<tracing::Span> {
        (**self).dispatch_span(event, envelope)
    }
    fn trace_context(&self, span: &tracing::Span) -> Option<TraceParent> {
        (**self).trace_context(span)
    }
    fn listener_span(
        &self,
        listener: &'static str,
        event: &'static str,
        envelope: &Envelope,
    ) -> Option<tracing::Span> {
        (**self).listener_span(listener, event, envelope)
    }
    fn enqueue_span(&self, event: &'static str, jobs: &[&Job]) -> Option<tracing::Span> {
        (**self).enqueue_span(event, jobs)
    }
    fn dispatched(&self, record: &DispatchRecord<'_>) {
        (**self).dispatched(record)
    }
    fn listener_ran(&self, run: &ListenerRun<'_>) {
        (**self).listener_ran(run)
    }
    fn job_enqueued(&self, job: &Job) {
        (**self).job_enqueued(job)
    }
    fn job_claimed(&self, job: &Job) {
        (**self).job_claimed(job)
    }
    fn job_span(&self, job: &Job) -> Option<tracing::Span> {
        (**self).job_span(job)
    }
    fn job_succeeded(&self, job: &Job, took: Duration) {
        (**self).job_succeeded(job, took)
    }
    fn job_retried(&self, job: &Job, error: &str, delay: Duration) {
        (**self).job_retried(job, error, delay)
    }
    fn job_released(&self, job: &Job, delay: Duration) {
        (**self).job_released(job, delay)
    }
    fn job_failed(&self, job: &Job, error: &str) {
        (**self).job_failed(job, error)
    }
    fn job_lease_lost(&self, job: &Job) {
        (**self).job_lease_lost(job)
    }
    fn job_set_aside(&self, job: &Job, reason: &str) {
        (**self).job_set_aside(job, reason)
    }
}

/// One dispatch, as observers see it when it ends.
#[derive(Debug)]
#[non_exhaustive]
pub struct DispatchRecord<'a> {
    /// The event's name.
    pub event: &'static str,
    /// Its envelope; `None` unless an observer of the dispatcher asks for
    /// [`Interest::ENVELOPE`] or [`Interest::SPANS`].
    pub envelope: Option<&'a Envelope>,
    /// What the dispatch did, or why it failed.
    pub result: Result<&'a Dispatched, &'a DispatchError>,
    /// How long it took, listeners and enqueueing included; `None` unless
    /// an observer of the dispatcher asks for [`Interest::TIMING`].
    pub took: Option<Duration>,
}

/// One run of a listener inside dispatch.
#[derive(Debug)]
#[non_exhaustive]
pub struct ListenerRun<'a> {
    /// The listener's name.
    pub listener: &'static str,
    /// The event's name.
    pub event: &'static str,
    /// The event's envelope; `None` unless an observer of the dispatcher
    /// asks for [`Interest::ENVELOPE`] or [`Interest::SPANS`].
    pub envelope: Option<&'a Envelope>,
    /// How long it ran; `None` unless an observer of the dispatcher asks
    /// for [`Interest::TIMING`].
    pub took: Option<Duration>,
    /// How it ended.
    pub outcome: ListenerOutcome<'a>,
}

/// How a listener run ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum ListenerOutcome<'a> {
    /// It let the dispatch go on.
    Continued,
    /// It returned `Flow::Stop`.
    Stopped,
    /// It returned an error (the dispatch fails with it).
    Failed(&'a (dyn StdError + Send + Sync + 'static)),
}

/// The observers of a dispatcher or a worker, called in the order given,
/// each with the interest it declared, and what they want together.
#[derive(Clone, Default)]
pub(crate) struct Observers {
    list: Arc<[(Arc<dyn Observer>, Interest)]>,
    interest: Interest,
}

impl Observers {
    pub(crate) fn new(list: Vec<Arc<dyn Observer>>) -> Observers {
        let list: Arc<[_]> = list
            .into_iter()
            .map(|observer| {
                let interest = observer.interest();
                (observer, interest)
            })
            .collect();
        let interest = list
            .iter()
            .fold(Interest::NONE, |all, (_, interest)| all | *interest);
        Observers { list, interest }
    }

    /// Whether some observer wants any of `what`.
    #[inline]
    pub(crate) fn want(&self, what: Interest) -> bool {
        self.interest.intersects(what)
    }

    /// Calls `f` on each observer that wants any of `what`; a panicking
    /// observer is logged and the others still run.
    pub(crate) fn each(&self, what: Interest, mut f: impl FnMut(&dyn Observer)) {
        for (observer, interest) in self.list.iter() {
            if !interest.intersects(what) {
                continue;
            }
            let call = std::panic::AssertUnwindSafe(|| f(&**observer));
            if std::panic::catch_unwind(call).is_err() {
                tracing::error!("an observer panicked; it is skipped for this call");
            }
        }
    }

    /// The trace context the first observer that knows one gives for
    /// `span`; a panicking observer is logged and skipped.
    pub(crate) fn trace_context(&self, span: &tracing::Span) -> Option<TraceParent> {
        self.list
            .iter()
            .filter(|(_, interest)| interest.intersects(Interest::SPANS))
            .find_map(|(observer, _)| {
                let call = std::panic::AssertUnwindSafe(|| observer.trace_context(span));
                std::panic::catch_unwind(call).unwrap_or_else(|_| {
                    tracing::error!(
                        "an observer panicked while giving a trace context; it is skipped"
                    );
                    None
                })
            })
    }

    /// The first span an observer that wants [`Interest::SPANS`] gives; a
    /// panicking observer is logged and skipped, as in [`each`](Self::each).
    pub(crate) fn span(
        &self,
        f: impl Fn(&dyn Observer) -> Option<tracing::Span>,
    ) -> Option<tracing::Span> {
        self.list
            .iter()
            .filter(|(_, interest)| interest.intersects(Interest::SPANS))
            .find_map(|(observer, _)| {
                let call = std::panic::AssertUnwindSafe(|| f(&**observer));
                std::panic::catch_unwind(call).unwrap_or_else(|_| {
                    tracing::error!("an observer panicked while making a span; it is skipped");
                    None
                })
            })
    }
}

/// The clock dispatch times dispatches and listener runs with, read only
/// when an observer asks for [`Interest::TIMING`]: `quanta`'s, the CPU's
/// time-stamp counter where it is invariant (calibrated once against the
/// OS's monotonic clock), else the OS's clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stopwatch(Option<Instant>);

impl Stopwatch {
    /// Started now when `on`; otherwise never reads the clock.
    #[inline]
    pub(crate) fn start(on: bool) -> Stopwatch {
        Stopwatch(on.then(Instant::now))
    }

    /// The time since the start or the last lap; the next lap starts now.
    #[inline]
    pub(crate) fn lap(&mut self) -> Option<Duration> {
        let last = self.0.as_mut()?;
        let now = Instant::now();
        let took = now.saturating_duration_since(*last);
        *last = now;
        Some(took)
    }

    /// The time since the start.
    #[inline]
    pub(crate) fn since(&self) -> Option<Duration> {
        self.0.map(|start| start.elapsed())
    }
}

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} observer(s), {:?}", self.list.len(), self.interest)
    }
}

/// The observer that traces: a span `events.dispatch` around each dispatch,
/// `events.listener` around each sync listener's run and `events.enqueue`
/// around the enqueueing of its jobs, inside it, and `events.job` around
/// each try of a job, named and kinded after OpenTelemetry's messaging
/// conventions (`otel.kind` producer, internal, producer and consumer;
/// `messaging.operation.type` create, send and process). The dispatch's W3C
/// trace context travels in the event's metadata as
/// [`traceparent`](crate::keys::TRACEPARENT), so every try of every job of a
/// dispatch, on any worker, records the dispatch's `trace_id` and the
/// dispatch span's id as its `parent_span_id`.
///
/// A `traceparent` already in the metadata (from the request that caused
/// the dispatch, through a metadata provider or `.with(..)`) is continued:
/// its trace id is kept.
///
/// ```
/// let dispatcher = events::Dispatcher::builder()
///     .observe(events::observe::Tracing)
///     .build();
/// # let _ = dispatcher;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Tracing;

impl Observer for Tracing {
    fn interest(&self) -> Interest {
        Interest::ENVELOPE | Interest::SPANS
    }

    fn enrich(&self, _event: &str, metadata: &mut Metadata) {
        // The caller's trace and its sampling decision, or a new trace.
        let (trace, sampled) = metadata
            .get(crate::keys::TRACEPARENT)
            .and_then(TraceParent::parse)
            .map_or_else(
                || (random_trace_id(), true),
                |parent| (parent.trace_id, parent.sampled),
            );
        let context = TraceParent {
            trace_id: trace,
            span_id: random_span_id(),
            sampled,
        };
        metadata.insert(crate::keys::TRACEPARENT, context.to_string());
    }

    fn dispatch_span(&self, event: &str, envelope: &Envelope) -> Option<tracing::Span> {
        let context = envelope
            .metadata
            .get(crate::keys::TRACEPARENT)
            .and_then(TraceParent::parse)?;
        let span = spans::dispatch(event, envelope);
        span.record(
            "trace_id",
            tracing::field::display(format_args!("{:032x}", context.trace_id)),
        );
        span.record(
            "span_id",
            tracing::field::display(format_args!("{:016x}", context.span_id)),
        );
        Some(span)
    }

    fn listener_span(
        &self,
        listener: &'static str,
        event: &'static str,
        _envelope: &Envelope,
    ) -> Option<tracing::Span> {
        Some(tracing::info_span!(
            "events.listener",
            otel.name = %listener,
            otel.kind = "internal",
            listener = %listener,
            event = %event,
        ))
    }

    fn enqueue_span(&self, event: &'static str, jobs: &[&Job]) -> Option<tracing::Span> {
        // One queue: the destination; several: none (a batch to many).
        let queue = jobs
            .first()
            .map(|job| job.queue.as_str())
            .filter(|first| jobs.iter().all(|job| job.queue == *first));
        Some(tracing::info_span!(
            "events.enqueue",
            otel.name = %format_args!("send {}", queue.unwrap_or(event)),
            otel.kind = "producer",
            messaging.system = "events",
            messaging.operation.type = "send",
            messaging.operation.name = "enqueue",
            messaging.destination.name = queue,
            messaging.batch.message_count = jobs.len(),
            event = %event,
        ))
    }

    fn job_span(&self, job: &Job) -> Option<tracing::Span> {
        let parent = job
            .envelope
            .metadata
            .get(crate::keys::TRACEPARENT)
            .and_then(TraceParent::parse);
        let trace = parent.map_or_else(random_trace_id, |p| p.trace_id);
        let span = spans::job(job);
        span.record(
            "trace_id",
            tracing::field::display(format_args!("{trace:032x}")),
        );
        span.record(
            "span_id",
            tracing::field::display(format_args!("{:016x}", random_span_id())),
        );
        if let Some(parent) = parent {
            span.record(
                "parent_span_id",
                tracing::field::display(format_args!("{:016x}", parent.span_id)),
            );
        }
        Some(span)
    }
}

/// The spans [`Tracing`] makes, for observers of other crates that make
/// the same ones (an OpenTelemetry bridge): named and kinded after
/// OpenTelemetry's messaging conventions, with their `trace_id`, `span_id`
/// (and `parent_span_id`) fields declared empty, for the observer to
/// record or leave to its layer.
pub mod spans {
    use crate::envelope::Envelope;
    use crate::queue::Job;

    /// `events.dispatch` (producer) for a dispatch of `event`.
    pub fn dispatch(event: &str, envelope: &Envelope) -> tracing::Span {
        tracing::info_span!(
            "events.dispatch",
            otel.name = %format_args!("dispatch {event}"),
            otel.kind = "producer",
            messaging.system = "events",
            messaging.operation.type = "create",
            messaging.operation.name = "dispatch",
            messaging.destination.name = %event,
            messaging.message.id = %envelope.id,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        )
    }

    /// `events.job` (consumer) for one try of `job`.
    pub fn job(job: &Job) -> tracing::Span {
        tracing::info_span!(
            "events.job",
            otel.name = %format_args!("process {}", job.queue),
            otel.kind = "consumer",
            messaging.system = "events",
            messaging.operation.type = "process",
            messaging.operation.name = "process",
            messaging.destination.name = %job.queue,
            messaging.message.id = %job.envelope.id,
            listener = %job.listener,
            job.id = %job.id,
            attempt = job.attempt,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
            parent_span_id = tracing::field::Empty,
        )
    }
}

/// A W3C `traceparent` (version 00): the trace id, the parent span's id
/// and whether the caller sampled the trace, what travels in the metadata
/// as [`traceparent`](crate::keys::TRACEPARENT).
///
/// ```
/// use events::observe::TraceParent;
/// let parent = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
/// assert_eq!(parent.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
/// assert!(parent.sampled);
/// assert_eq!(parent.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// // A caller that did not sample the trace: kept, not sampled here either.
/// let unsampled = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
/// assert!(!unsampled.sampled);
/// assert!(unsampled.to_string().ends_with("-00"));
/// assert!(TraceParent::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace's id (never 0).
    pub trace_id: u128,
    /// The parent span's id (never 0).
    pub span_id: u64,
    /// The `sampled` trace flag: whether the caller records this trace.
    /// An observer that exports spans (OpenTelemetry's sampler) follows
    /// it; a trace started here is sampled.
    pub sampled: bool,
}

impl TraceParent {
    /// Reads `00-<32 hex>-<16 hex>-<2 hex>` (the last: the trace flags, of
    /// which bit 0 is `sampled`); all-zero ids are invalid.
    pub fn parse(text: &str) -> Option<TraceParent> {
        let mut parts = text.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        (trace_id != 0 && span_id != 0).then_some(TraceParent {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // `RandomState` is seeded from the OS's randomness once per thread and
    // advanced per instance; the counter keeps two draws apart anyway.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
    hasher.finish().max(1)
}

fn random_trace_id() -> u128 {
    (u128::from(random_u64()) << 64) | u128::from(random_u64())
}

fn random_span_id() -> u64 {
    random_u64()
}

#[cfg(test)]
mod tests {
    use super::TraceParent;

    #[test]
    fn traceparents_round_trip_and_bad_ones_are_ignored() {
        let context = TraceParent {
            trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
            span_id: 0x00f067aa0ba902b7,
            sampled: true,
        };
        let text = context.to_string();
        assert_eq!(
            text,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert_eq!(TraceParent::parse(&text), Some(context));
        let unsampled = TraceParent {
            sampled: false,
            ..context
        };
        assert_eq!(
            unsampled.to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        );
        assert_eq!(TraceParent::parse(&unsampled.to_string()), Some(unsampled));
        // Flags other than `sampled` are read past (W3C: unknown flags are
        // ignored), and `sampled` is bit 0 only.
        let other = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-";
        assert_eq!(TraceParent::parse(&format!("{other}02")), Some(unsampled));
        assert_eq!(TraceParent::parse(&format!("{other}03")), Some(context));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }
}
