//! Prometheus metrics for `events`: [`Metrics`], an
//! [`Observer`] that records dispatches,
//! listener runs, jobs and queue depth through the [`metrics`] facade, and
//! a tiny `/metrics` endpoint.
//!
//! | name | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `events_dispatched_total` | counter | `event` | dispatches that ended, well or not |
//! | `events_listener_runs_total` | counter | `listener`, `outcome` | runs of a listener: sync ones inside dispatch, queued ones as job tries (`outcome`: `ok`, `stopped`, `failed`, `released`) |
//! | `events_listener_failures_total` | counter | `listener` | runs that returned an error or panicked (the CHOM document's `listeners_failed_total`) |
//! | `events_listener_duration_seconds` | histogram | `listener` | how long a run took (sync runs; queued tries that succeeded) |
//! | `events_jobs_total` | counter | `queue`, `outcome` | jobs by what happened (`enqueued`, `succeeded`, `retried`, `failed`, `lease_lost`, `released`, `set_aside`) |
//! | `events_job_wait_seconds` | histogram | `queue` | from the moment a job could run (its `available_at`) to a worker's claim |
//! | `events_queue_depth` | gauge | `queue`, `state` | jobs held now (`state`: `ready`, `delayed`, `reserved`, `failed`), from `Queue::stats()` |
//!
//! Metric handles are built once per event, listener and queue name (every
//! name the registry knows is built when the `Metrics` is made), so
//! recording one is a hash of the name, a lookup in a map that is never
//! locked, and an atomic add: no allocation after warm-up.
//!
//! [`Metrics::new`] records through the application's global recorder
//! (its choice of exporter); [`Metrics::prometheus`] into a
//! [`PrometheusRecorder`] of its own, which [`Metrics::render`] writes as
//! Prometheus text and [`serve`] answers `GET /metrics` with.

#![warn(missing_docs)]

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use events_core::observe::{DispatchRecord, Interest, ListenerOutcome, ListenerRun, Observer};
use events_core::queue::{Job, Queue, QueueError};
use metrics::{Counter, Gauge, Histogram, Recorder, SharedString, Unit};

mod prometheus;
pub use prometheus::{DEFAULT_BUCKETS, PrometheusRecorder};

/// `events_dispatched_total{event}`.
pub const DISPATCHED: &str = "events_dispatched_total";
/// `events_listener_runs_total{listener,outcome}`.
pub const LISTENER_RUNS: &str = "events_listener_runs_total";
/// `events_listener_failures_total{listener}`: the CHOM document's
/// `listeners_failed_total`.
pub const LISTENER_FAILURES: &str = "events_listener_failures_total";
/// `events_listener_duration_seconds{listener}`, a histogram.
pub const LISTENER_DURATION: &str = "events_listener_duration_seconds";
/// `events_jobs_total{queue,outcome}`.
pub const JOBS: &str = "events_jobs_total";
/// `events_job_wait_seconds{queue}`, a histogram.
pub const JOB_WAIT: &str = "events_job_wait_seconds";
/// `events_queue_depth{queue,state}`, a gauge.
pub const QUEUE_DEPTH: &str = "events_queue_depth";

/// The buckets of `events_listener_duration_seconds`, in seconds: 100 µs
/// to 10 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// The buckets of `events_job_wait_seconds`, in seconds: 10 ms to 1 h.
pub const WAIT_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// A [`PrometheusRecorder`] with this crate's histogram buckets, for an
/// application that installs it as its global recorder itself (then
/// records with [`Metrics::from_prometheus`]).
pub fn prometheus_recorder() -> PrometheusRecorder {
    PrometheusRecorder::new()
        .buckets(LISTENER_DURATION, DURATION_BUCKETS)
        .buckets(JOB_WAIT, WAIT_BUCKETS)
}

/// Records what the observer seam sees as Prometheus metrics (see the
/// [crate] docs for the table). Cheap to clone: clones share one set of
/// metrics, so give the same one to the dispatcher, the worker and the
/// endpoint.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let metrics = events_metrics::Metrics::prometheus();
/// let dispatcher = events_core::Dispatcher::builder()
///     .observe(metrics.clone())
///     .build()?;
/// # let _ = dispatcher;
/// let text = metrics.render().expect("a Prometheus registry of its own");
/// assert!(text.contains("# TYPE events_dispatched_total counter"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    /// The recorder handles are made from; `None`: the global one.
    recorder: Option<Arc<dyn Recorder + Send + Sync>>,
    /// Renders the Prometheus text, when there is a Prometheus recorder.
    handle: Option<PrometheusRecorder>,
    events: Names<Counter>,
    listeners: Names<ListenerHandles>,
    queues: Names<QueueHandles>,
}

/// One listener's handles.
struct ListenerHandles {
    ok: Counter,
    stopped: Counter,
    failed: Counter,
    released: Counter,
    failures: Counter,
    duration: Histogram,
}

/// One queue's handles.
struct QueueHandles {
    enqueued: Counter,
    succeeded: Counter,
    retried: Counter,
    failed: Counter,
    lease_lost: Counter,
    released: Counter,
    set_aside: Counter,
    wait: Histogram,
    ready: Gauge,
    delayed: Gauge,
    reserved: Gauge,
    failed_depth: Gauge,
}

/// FNV-1a: names are short, and the hot path hashes one per record.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut hash = self.0;
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

type FnvMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// Hashes a name's address and length: one multiply per word.
#[derive(Default)]
struct Address(u64);

impl Hasher for Address {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }
    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }
    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A `&'static str`'s address and length.
fn address(name: &str) -> (usize, usize) {
    (name.as_ptr() as usize, name.len())
}

/// Handles by name: the names known when the `Metrics` was made in a map
/// read without a lock, the others (a queue named only at run time, a job
/// of another program's listener) built on first use behind a lock.
struct Names<H> {
    /// The registry's names by address: a listener's name in a
    /// `ListenerRun` is the registry's own string, found without hashing
    /// its bytes.
    by_address: HashMap<(usize, usize), Arc<H>, BuildHasherDefault<Address>>,
    known: FnvMap<&'static str, Arc<H>>,
    others: RwLock<FnvMap<String, Arc<H>>>,
}

impl<H> Names<H> {
    fn new(names: impl IntoIterator<Item = &'static str>, make: impl Fn(&str) -> H) -> Self {
        let mut known = FnvMap::default();
        let mut by_address = HashMap::default();
        for name in names {
            let handles = known.entry(name).or_insert_with(|| Arc::new(make(name)));
            by_address.insert(address(name), Arc::clone(handles));
        }
        Names {
            by_address,
            known,
            others: RwLock::default(),
        }
    }

    /// The handles of `name`, made with `make` on first use.
    fn get(&self, name: &str, make: impl FnOnce() -> H) -> Arc<H> {
        if let Some(handles) = self.known.get(name) {
            return Arc::clone(handles);
        }
        let read = self.others.read().unwrap_or_else(|p| p.into_inner());
        if let Some(handles) = read.get(name) {
            return Arc::clone(handles);
        }
        drop(read);
        let mut write = self.others.write().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            write
                .entry(name.to_owned())
                .or_insert_with(|| Arc::new(make())),
        )
    }

    /// Calls `f` with the handles of `name`: no reference count touched
    /// for a known name.
    fn with<R>(&self, name: &str, make: impl FnOnce() -> H, f: impl FnOnce(&H) -> R) -> R {
        if let Some(handles) = self.by_address.get(&address(name)) {
            return f(handles);
        }
        match self.known.get(name) {
            Some(handles) => f(handles),
            None => f(&self.get(name, make)),
        }
    }
}

impl Metrics {
    /// Records through the global recorder the application installed (its
    /// choice of exporter). Install it first: handles are made now, for
    /// every event, listener and queue the registry knows, and a handle
    /// made with no recorder installed records nothing. [`render`](Self::render)
    /// gives `None`: to render, use [`from_prometheus`](Self::from_prometheus).
    pub fn new() -> Metrics {
        Metrics::build(None, None)
    }

    /// Records into a Prometheus registry of its own (with this crate's
    /// histogram buckets), not installed as the global recorder:
    /// [`render`](Self::render) gives its text. What `work --metrics-addr`
    /// uses; tests can make one each without clashing.
    pub fn prometheus() -> Metrics {
        Metrics::from_prometheus(prometheus_recorder())
    }

    /// Records into `recorder` and renders it (give it
    /// [`prometheus_recorder`]'s buckets, or the histograms get
    /// [`DEFAULT_BUCKETS`]). The application may install a clone as its
    /// global recorder for its own metrics too.
    pub fn from_prometheus(recorder: PrometheusRecorder) -> Metrics {
        Metrics::build(Some(Arc::new(recorder.clone())), Some(recorder))
    }

    /// Records into `recorder` (not installed globally); [`render`](Self::render)
    /// gives `None`.
    pub fn with_recorder(recorder: impl Recorder + Send + Sync + 'static) -> Metrics {
        Metrics::build(Some(Arc::new(recorder)), None)
    }

    fn build(
        recorder: Option<Arc<dyn Recorder + Send + Sync>>,
        handle: Option<PrometheusRecorder>,
    ) -> Metrics {
        let registry = events_core::registry();
        let in_scope = |f: &mut dyn FnMut()| match &recorder {
            Some(r) => metrics::with_local_recorder(&**r, &mut *f),
            None => f(),
        };
        let mut inner = None;
        in_scope(&mut || {
            describe();
            let events = registry
                .events()
                .iter()
                .chain(registry.wildcard_only_events())
                .map(|e| e.name());
            let listeners = registry.listeners().iter().map(|l| l.name());
            let queues = registry
                .listeners()
                .iter()
                .filter_map(|l| match l.mode() {
                    events_core::Mode::Queued(options) => Some(options.queue()),
                    _ => None,
                })
                .chain(["default"]);
            inner = Some((
                Names::new(events, event_handles),
                Names::new(listeners, listener_handles),
                Names::new(queues, queue_handles),
            ));
        });
        let (events, listeners, queues) = inner.expect("built above");
        Metrics {
            inner: Arc::new(Inner {
                recorder,
                handle,
                events,
                listeners,
                queues,
            }),
        }
    }

    /// Makes handles in this metrics' recorder.
    fn make<H>(&self, f: impl FnOnce() -> H) -> H {
        match &self.inner.recorder {
            Some(r) => metrics::with_local_recorder(&**r, f),
            None => f(),
        }
    }

    /// The Prometheus text exposition (format 0.0.4) of everything
    /// recorded so far; `None` when this records to another recorder
    /// ([`new`](Self::new), [`with_recorder`](Self::with_recorder)).
    pub fn render(&self) -> Option<String> {
        self.inner.handle.as_ref().map(PrometheusRecorder::render)
    }

    fn listener(&self, name: &str, f: impl FnOnce(&ListenerHandles)) {
        self.inner
            .listeners
            .with(name, || self.make(|| listener_handles(name)), f)
    }

    fn queue(&self, name: &str, f: impl FnOnce(&QueueHandles)) {
        self.inner
            .queues
            .with(name, || self.make(|| queue_handles(name)), f)
    }

    /// Reads `queue`'s counts once ([`Queue::stats`]) and sets
    /// `events_queue_depth` for each of its queues. Works on every backend.
    pub async fn refresh_queue_depth(&self, queue: &Queue) -> Result<(), QueueError> {
        for stats in queue.stats().await? {
            self.queue(&stats.queue, |h| {
                h.ready
                    .set(stats.pending.saturating_sub(stats.delayed) as f64);
                h.delayed.set(stats.delayed as f64);
                h.reserved.set(stats.reserved as f64);
                h.failed_depth.set(stats.failed as f64);
            });
        }
        Ok(())
    }

    /// Starts a task on the current Tokio runtime that refreshes
    /// `events_queue_depth` from `queue` now and then every `every`
    /// ([`refresh_queue_depth`](Self::refresh_queue_depth)); a failed read
    /// is logged and tried again at the next tick. Abort the handle to stop
    /// it.
    pub fn watch_queue(&self, queue: Queue, every: Duration) -> tokio::task::JoinHandle<()> {
        let metrics = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(error) = metrics.refresh_queue_depth(&queue).await {
                    tracing::warn!(error = %events_core::error::Chain(&error), "could not read the queue's counts for events_queue_depth");
                }
            }
        })
    }

    /// Serves [`render`](Self::render)'s text at `GET /metrics` on
    /// `listener` until the task is aborted (see [`serve`]).
    pub fn serve(&self, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        tokio::spawn(serve(listener, self.clone()))
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("own_recorder", &self.inner.recorder.is_some())
            .field("renders", &self.inner.handle.is_some())
            .finish_non_exhaustive()
    }
}

/// Describes every family once, with its unit.
fn describe() {
    metrics::describe_counter!(
        DISPATCHED,
        Unit::Count,
        "Dispatches that ended, well or not."
    );
    metrics::describe_counter!(
        LISTENER_RUNS,
        Unit::Count,
        "Runs of a listener: sync ones inside dispatch, queued ones as job tries."
    );
    metrics::describe_counter!(
        LISTENER_FAILURES,
        Unit::Count,
        "Runs of a listener that returned an error or panicked."
    );
    metrics::describe_histogram!(
        LISTENER_DURATION,
        Unit::Seconds,
        "How long a listener run took."
    );
    metrics::describe_counter!(JOBS, Unit::Count, "Jobs by what happened to them.");
    metrics::describe_histogram!(
        JOB_WAIT,
        Unit::Seconds,
        "From the moment a job could run (its available_at) to a worker's claim."
    );
    metrics::describe_gauge!(
        QUEUE_DEPTH,
        Unit::Count,
        "Jobs a queue holds now, by state."
    );
}

fn label(name: &str) -> SharedString {
    SharedString::from(name.to_owned())
}

fn event_handles(event: &str) -> Counter {
    metrics::counter!(DISPATCHED, "event" => label(event))
}

fn listener_handles(listener: &str) -> ListenerHandles {
    let runs = |outcome: &'static str| metrics::counter!(LISTENER_RUNS, "listener" => label(listener), "outcome" => outcome);
    ListenerHandles {
        ok: runs("ok"),
        stopped: runs("stopped"),
        failed: runs("failed"),
        released: runs("released"),
        failures: metrics::counter!(LISTENER_FAILURES, "listener" => label(listener)),
        duration: metrics::histogram!(LISTENER_DURATION, "listener" => label(listener)),
    }
}

fn queue_handles(queue: &str) -> QueueHandles {
    let jobs = |outcome: &'static str| metrics::counter!(JOBS, "queue" => label(queue), "outcome" => outcome);
    let depth = |state: &'static str| metrics::gauge!(QUEUE_DEPTH, "queue" => label(queue), "state" => state);
    QueueHandles {
        enqueued: jobs("enqueued"),
        succeeded: jobs("succeeded"),
        retried: jobs("retried"),
        failed: jobs("failed"),
        lease_lost: jobs("lease_lost"),
        released: jobs("released"),
        set_aside: jobs("set_aside"),
        wait: metrics::histogram!(JOB_WAIT, "queue" => label(queue)),
        ready: depth("ready"),
        delayed: depth("delayed"),
        reserved: depth("reserved"),
        failed_depth: depth("failed"),
    }
}

impl Observer for Metrics {
    /// Counts and times, so dispatch keeps its lean path: no envelope, no
    /// span, no boxed future.
    fn interest(&self) -> Interest {
        Interest::DISPATCHES | Interest::LISTENER_RUNS | Interest::TIMING | Interest::JOBS
    }

    fn dispatched(&self, record: &DispatchRecord<'_>) {
        let event = record.event;
        self.inner.events.with(
            event,
            || self.make(|| event_handles(event)),
            |c| c.increment(1),
        );
    }

    fn listener_ran(&self, run: &ListenerRun<'_>) {
        self.listener(run.listener, |h| {
            match run.outcome {
                ListenerOutcome::Continued => h.ok.increment(1),
                ListenerOutcome::Stopped => h.stopped.increment(1),
                _ => {
                    h.failed.increment(1);
                    h.failures.increment(1);
                }
            }
            if let Some(took) = run.took {
                h.duration.record(took.as_secs_f64());
            }
        });
    }

    fn job_enqueued(&self, job: &Job) {
        self.queue(&job.queue, |h| h.enqueued.increment(1));
    }

    fn job_claimed(&self, job: &Job) {
        let waited = SystemTime::now()
            .duration_since(job.available_at)
            .unwrap_or_default();
        self.queue(&job.queue, |h| h.wait.record(waited.as_secs_f64()));
    }

    fn job_succeeded(&self, job: &Job, took: Duration) {
        self.queue(&job.queue, |h| h.succeeded.increment(1));
        self.listener(&job.listener, |h| {
            h.ok.increment(1);
            h.duration.record(took.as_secs_f64());
        });
    }

    fn job_retried(&self, job: &Job, _error: &str, _delay: Duration) {
        self.queue(&job.queue, |h| h.retried.increment(1));
        self.listener(&job.listener, |h| {
            h.failed.increment(1);
            h.failures.increment(1);
        });
    }

    fn job_released(&self, job: &Job, _delay: Duration) {
        self.queue(&job.queue, |h| h.released.increment(1));
        self.listener(&job.listener, |h| h.released.increment(1));
    }

    fn job_failed(&self, job: &Job, _error: &str) {
        self.queue(&job.queue, |h| h.failed.increment(1));
        self.listener(&job.listener, |h| {
            h.failed.increment(1);
            h.failures.increment(1);
        });
    }

    fn job_lease_lost(&self, job: &Job) {
        self.queue(&job.queue, |h| h.lease_lost.increment(1));
    }

    fn job_set_aside(&self, job: &Job, _reason: &str) {
        self.queue(&job.queue, |h| h.set_aside.increment(1));
    }
}

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Answers `GET /metrics` on `listener` with `metrics`' text (404 for any
/// other path, 405 for another method, 503 when `metrics` has nothing to
/// render), one request per connection, until the task is dropped. A
/// connection that fails is logged and the others go on.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Metrics) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "could not accept a connection to /metrics");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(error) = answer(stream, &metrics).await {
                tracing::debug!(%error, %peer, "a /metrics request ended early");
            }
        });
    }
}

/// Reads one request's head and answers it.
async fn answer(mut stream: tokio::net::TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request in 10 s"))??;
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => match metrics.render() {
            Some(text) => ("200 OK", CONTENT_TYPE, text),
            None => (
                "503 Service Unavailable",
                "text/plain; charset=utf-8",
                "these metrics record to the application's recorder, which this endpoint cannot render\n".to_owned(),
            ),
        },
        (_, "/metrics") => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET /metrics is served here\n".to_owned(),
        ),
        _ => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: metrics are at GET /metrics\n".to_owned(),
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        response.push_str(&body);
    }
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Binds `addr` and serves `metrics` there on a task of the current Tokio
/// runtime; gives the bound address (port 0 picks a free one).
pub async fn spawn_server(
    addr: SocketAddr,
    metrics: Metrics,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((bound, metrics.serve(listener)))
}

/// What `work --metrics-addr ADDR` starts (facade feature `metrics` with
/// `cli`): a [`Metrics::prometheus`] served at `http://ADDR/metrics`, its
/// queue depth refreshed every 5 s, recording the worker's jobs.
#[cfg(feature = "cli")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Endpoint;

#[cfg(feature = "cli")]
impl events_core::cli::MetricsEndpoint for Endpoint {
    fn start<'a>(
        &'a self,
        addr: SocketAddr,
        queue: &'a Queue,
    ) -> events_core::cli::EndpointStart<'a> {
        Box::pin(async move {
            let metrics = Metrics::prometheus();
            spawn_server(addr, metrics.clone()).await?;
            metrics.watch_queue(queue.clone(), Duration::from_secs(5));
            Ok(Arc::new(metrics) as Arc<dyn events_core::observe::Observer>)
        })
    }
}
