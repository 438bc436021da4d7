//! The `metrics` feature: every family recorded by real dispatches and real
//! worker runs (memory, SQLite and Redis queues), the text read back with a
//! Prometheus text-format parser, the `/metrics` endpoint, `work
//! --metrics-addr`, and no allocation per increment after warm-up.
//!
//! Each test records into a `Metrics::prometheus()` of its own (no global
//! recorder), so tests run in parallel without sharing counts.
//!
//! The Redis case needs a Redis server: `EVENTS_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379/0`); it uses a key prefix of its own and deletes
//! its keys at the end.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use events::metrics::{DURATION_BUCKETS, Metrics, WAIT_BUCKETS};
use events::observe::Observer;
use events::prelude::*;
use events::queue::{Job, Queue};
use events::{Dispatcher, Envelope, Worker};
use prometheus_parse::{Sample, Scrape, Value};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// --- counting allocations on one thread ----------------------------------------

/// Counts allocations made on a thread while it has counting on, so the
/// other tests of this binary, on other threads, do not disturb the count.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation() {
    if COUNTING.with(Cell::get) {
        COUNT.with(|c| c.set(c.get() + 1));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    COUNT.with(|c| c.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    COUNT.with(Cell::get)
}

// --- events and listeners ----------------------------------------------------------

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Failure(String);

#[event(name = "metrics.booked")]
#[derive(Serialize, Deserialize)]
pub struct Booked {
    pub fail: bool,
}

#[listener]
fn note_booking(_: &Booked) {}

#[listener(queue = "metrics-q", tries = 2, backoff = ["10ms"])]
async fn send_mail(e: &Booked) -> Result<(), Failure> {
    if e.fail {
        return Err(Failure("the mail server said no".into()));
    }
    Ok(())
}

#[event(name = "metrics.later")]
#[derive(Serialize, Deserialize)]
pub struct Later;

#[listener(queue = "metrics-later", delay = "1h")]
async fn remind_later(_: &Later) {}

#[event(name = "metrics.broken")]
pub struct Broken;

#[listener]
fn always_fails(_: &Broken) -> Result<(), Failure> {
    Err(Failure("broken on purpose".into()))
}

#[event(name = "metrics.halting")]
pub struct Halting;

#[listener(priority = 10)]
fn stops_here(_: &Halting) -> Flow {
    Flow::Stop
}

#[listener]
fn never_reached(_: &Halting) {}

/// Only sync listeners: the allocation test polls its dispatches with no
/// runtime.
#[event(name = "metrics.plain")]
pub struct Plain;

#[listener]
fn plain_one(_: &Plain) {}

#[listener]
fn plain_two(_: &Plain) {}

// --- reading the text back ------------------------------------------------------

/// The text parsed by `prometheus-parse`.
fn scrape(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("the text parses")
}

/// The one sample of `metric` with exactly `labels`.
fn sample<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> &'a Sample {
    let wanted: HashMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let found: Vec<&Sample> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && *s.labels == wanted)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one sample of {metric} {labels:?}; the samples: {:#?}",
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == metric)
            .map(|s| &s.labels)
            .collect::<Vec<_>>()
    );
    found[0]
}

fn counter(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match sample(scrape, metric, labels).value {
        Value::Counter(v) => v,
        ref other => panic!("{metric} {labels:?} is a counter, not {other:?}"),
    }
}

fn gauge(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match sample(scrape, metric, labels).value {
        Value::Gauge(v) => v,
        ref other => panic!("{metric} {labels:?} is a gauge, not {other:?}"),
    }
}

/// A histogram's buckets (upper bound, cumulative count) and its count.
fn histogram(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> (Vec<(f64, f64)>, f64) {
    match &sample(scrape, metric, labels).value {
        Value::Histogram(buckets) => {
            let buckets: Vec<(f64, f64)> = buckets.iter().map(|b| (b.less_than, b.count)).collect();
            let count = buckets.last().map_or(0.0, |b| b.1);
            (buckets, count)
        }
        other => panic!("{metric} {labels:?} is a histogram, not {other:?}"),
    }
}

/// The `le` bounds a histogram must have: its buckets, then `+Inf`.
fn bounds(buckets: &[f64]) -> Vec<f64> {
    buckets.iter().copied().chain([f64::INFINITY]).collect()
}

fn render(metrics: &Metrics) -> String {
    metrics.render().expect("Metrics::prometheus renders")
}

// --- dispatch -------------------------------------------------------------------

#[tokio::test]
async fn dispatches_and_sync_listener_runs_are_counted_and_timed() {
    let metrics = Metrics::prometheus();
    let dispatcher = Dispatcher::builder()
        .queue(Queue::memory())
        .observe(metrics.clone())
        .build()
        .unwrap();
    for _ in 0..3 {
        dispatcher.dispatch(Booked { fail: false }).await.unwrap();
    }
    dispatcher.dispatch(Broken).await.unwrap_err();
    dispatcher.dispatch(Halting).await.unwrap();

    let text = render(&metrics);
    let s = scrape(&text);
    let dispatched = "events_dispatched_total";
    assert_eq!(counter(&s, dispatched, &[("event", "metrics.booked")]), 3.0);
    assert_eq!(counter(&s, dispatched, &[("event", "metrics.broken")]), 1.0);
    assert_eq!(
        counter(&s, dispatched, &[("event", "metrics.halting")]),
        1.0
    );

    let runs = "events_listener_runs_total";
    let note = "metrics::note_booking";
    assert_eq!(
        counter(&s, runs, &[("listener", note), ("outcome", "ok")]),
        3.0
    );
    assert_eq!(
        counter(
            &s,
            runs,
            &[("listener", "metrics::stops_here"), ("outcome", "stopped")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &s,
            runs,
            &[("listener", "metrics::always_fails"), ("outcome", "failed")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &s,
            "events_listener_failures_total",
            &[("listener", "metrics::always_fails")]
        ),
        1.0
    );
    assert_eq!(
        counter(&s, "events_listener_failures_total", &[("listener", note)]),
        0.0
    );
    assert_eq!(
        counter(
            &s,
            runs,
            &[("listener", "metrics::never_reached"), ("outcome", "ok")]
        ),
        0.0,
        "a listener after a stop does not run"
    );

    // A real histogram with this crate's buckets, not a summary.
    let (buckets, count) = histogram(
        &s,
        "events_listener_duration_seconds",
        &[("listener", note)],
    );
    assert_eq!(count, 3.0);
    let les: Vec<f64> = buckets.iter().map(|b| b.0).collect();
    assert_eq!(les, bounds(DURATION_BUCKETS));
    assert!(
        text.contains("# TYPE events_listener_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "events_listener_duration_seconds_bucket{{listener=\"{note}\",le=\"+Inf\"}} 3"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "events_listener_duration_seconds_count{{listener=\"{note}\"}} 3"
        )),
        "{text}"
    );

    // The dispatcher's side of the queue: three jobs enqueued.
    assert_eq!(
        counter(
            &s,
            "events_jobs_total",
            &[("queue", "metrics-q"), ("outcome", "enqueued")]
        ),
        3.0
    );

    // Every family is described once.
    for (family, help) in [
        ("events_dispatched_total", "Dispatches"),
        ("events_listener_runs_total", "Runs of a listener"),
        ("events_listener_failures_total", "returned an error"),
        ("events_listener_duration_seconds", "How long"),
        ("events_jobs_total", "Jobs by what happened"),
    ] {
        let doc = s
            .docs
            .get(family)
            .unwrap_or_else(|| panic!("{family} has a HELP line: {text}"));
        assert!(doc.contains(help), "{family}: {doc}");
        assert_eq!(text.matches(&format!("# HELP {family} ")).count(), 1);
    }
}

// --- a worker on each backend ------------------------------------------------------

/// Two jobs dispatched (one fails both its tries) and one delayed, a worker
/// run to empty, and each job family read back.
async fn worker_families(queue: Queue) {
    let metrics = Metrics::prometheus();
    let dispatcher = Dispatcher::builder()
        .queue(queue.clone())
        .observe(metrics.clone())
        .build()
        .unwrap();
    dispatcher.dispatch(Booked { fail: false }).await.unwrap();
    dispatcher.dispatch(Booked { fail: true }).await.unwrap();
    dispatcher.dispatch(Later).await.unwrap();

    metrics.refresh_queue_depth(&queue).await.unwrap();
    let s = scrape(&render(&metrics));
    let depth = "events_queue_depth";
    assert_eq!(
        gauge(&s, depth, &[("queue", "metrics-q"), ("state", "ready")]),
        2.0
    );
    assert_eq!(
        gauge(&s, depth, &[("queue", "metrics-q"), ("state", "delayed")]),
        0.0
    );
    assert_eq!(
        gauge(
            &s,
            depth,
            &[("queue", "metrics-later"), ("state", "delayed")]
        ),
        1.0
    );
    assert_eq!(
        gauge(&s, depth, &[("queue", "metrics-later"), ("state", "ready")]),
        0.0
    );

    let report = Worker::new(queue.clone())
        .queues(["metrics-q"])
        .observe(metrics.clone())
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!((report.succeeded, report.retried, report.failed), (1, 1, 1));

    metrics.refresh_queue_depth(&queue).await.unwrap();
    let text = render(&metrics);
    let s = scrape(&text);
    let jobs = |outcome| {
        counter(
            &s,
            "events_jobs_total",
            &[("queue", "metrics-q"), ("outcome", outcome)],
        )
    };
    assert_eq!(
        [
            jobs("enqueued"),
            jobs("succeeded"),
            jobs("retried"),
            jobs("failed"),
            jobs("lease_lost"),
            jobs("released"),
            jobs("set_aside"),
        ],
        [2.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    );
    assert_eq!(
        counter(
            &s,
            "events_jobs_total",
            &[("queue", "metrics-later"), ("outcome", "enqueued")]
        ),
        1.0
    );

    // Three claims: the job that succeeded, and both tries of the other.
    let (buckets, count) = histogram(&s, "events_job_wait_seconds", &[("queue", "metrics-q")]);
    assert_eq!(count, 3.0);
    let les: Vec<f64> = buckets.iter().map(|b| b.0).collect();
    assert_eq!(les, bounds(WAIT_BUCKETS));
    assert!(
        text.contains("events_job_wait_seconds_bucket{queue=\"metrics-q\",le=\"3600\"} 3"),
        "{text}"
    );

    let runs = "events_listener_runs_total";
    let mail = "metrics::send_mail";
    assert_eq!(
        counter(&s, runs, &[("listener", mail), ("outcome", "ok")]),
        1.0
    );
    assert_eq!(
        counter(&s, runs, &[("listener", mail), ("outcome", "failed")]),
        2.0
    );
    assert_eq!(
        counter(&s, "events_listener_failures_total", &[("listener", mail)]),
        2.0
    );
    let (_, timed) = histogram(
        &s,
        "events_listener_duration_seconds",
        &[("listener", mail)],
    );
    assert_eq!(timed, 1.0, "the queued try that succeeded is timed");

    for (state, want) in [
        ("ready", 0.0),
        ("delayed", 0.0),
        ("reserved", 0.0),
        ("failed", 1.0),
    ] {
        assert_eq!(
            gauge(&s, depth, &[("queue", "metrics-q"), ("state", state)]),
            want,
            "{state}"
        );
    }
    assert_eq!(
        gauge(
            &s,
            depth,
            &[("queue", "metrics-later"), ("state", "delayed")]
        ),
        1.0
    );
    for family in ["events_job_wait_seconds", "events_queue_depth"] {
        assert!(
            s.docs.contains_key(family),
            "{family} has a HELP line: {text}"
        );
    }
}

#[tokio::test]
async fn a_worker_on_the_memory_queue_records_every_job_family() {
    worker_families(Queue::memory()).await;
}

#[tokio::test]
async fn a_worker_on_sqlite_records_every_job_family() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
    worker_families(events::queue::connect(&url).await.unwrap()).await;
}

fn redis_url() -> String {
    std::env::var("EVENTS_TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379/0".to_owned())
}

/// Deletes a prefix's keys at the end.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(mut conn) = redis::Client::open(redis_url()).and_then(|c| c.get_connection()) else {
            return;
        };
        for pattern in [format!("{{{}:*", self.0), format!("{}:*", self.0)] {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query(&mut conn)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
            }
        }
    }
}

#[tokio::test]
async fn a_worker_on_redis_records_every_job_family() {
    let prefix = format!(
        "evmetrics-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let _cleanup = Cleanup(prefix.clone());
    let base = redis_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}prefix={prefix}");
    let queue = events::queue::connect(&url).await.unwrap_or_else(|error| {
        panic!(
            "this test needs a Redis server at {base} (set EVENTS_TEST_REDIS_URL or start `redis-server`): {}",
            events::error::Chain(&error)
        )
    });
    worker_families(queue).await;
}

// --- the endpoint and the CLI -----------------------------------------------------

/// One HTTP/1.1 request to `addr`: the status line, the headers and the
/// body.
async fn http(addr: std::net::SocketAddr, request: &str) -> (String, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("an HTTP response: {response:?}"));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_owned(), headers.to_owned(), body.to_owned())
}

#[tokio::test]
async fn the_endpoint_answers_get_metrics_with_the_text_format_and_404_otherwise() {
    let metrics = Metrics::prometheus();
    let dispatcher = Dispatcher::builder()
        .queue(Queue::memory())
        .observe(metrics.clone())
        .build()
        .unwrap();
    dispatcher.dispatch(Halting).await.unwrap();
    let (addr, server) = events::metrics::spawn_server("127.0.0.1:0".parse().unwrap(), metrics)
        .await
        .unwrap();

    let (status, headers, body) = http(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers.contains("Content-Type: text/plain; version=0.0.4"),
        "{headers}"
    );
    let s = scrape(&body);
    assert_eq!(
        counter(
            &s,
            "events_dispatched_total",
            &[("event", "metrics.halting")]
        ),
        1.0
    );

    let (status, _, body) = http(addr, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    assert!(body.contains("/metrics"), "{body}");
    let (status, _, _) = http(addr, "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    server.abort();
}

/// A free local port, as `work --metrics-addr` needs one given.
fn free_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn work_with_metrics_addr_serves_the_workers_metrics() {
    let queue = Queue::memory();
    Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap()
        .dispatch(Booked { fail: false })
        .await
        .unwrap();
    let addr = free_addr();
    let mut out = Vec::new();
    events::cli::run_to(
        [
            "app",
            "work",
            "--queue",
            "metrics-q",
            "--stop-when-empty",
            "--metrics-addr",
            &addr.to_string(),
        ],
        Some(queue),
        &mut out,
    )
    .await
    .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains(&format!("serving metrics at http://{addr}/metrics")),
        "{out}"
    );

    // The server lives on after `work` ends, on this test's runtime.
    let (status, _, body) = http(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let s = scrape(&body);
    assert_eq!(
        counter(
            &s,
            "events_jobs_total",
            &[("queue", "metrics-q"), ("outcome", "succeeded")]
        ),
        1.0
    );
    let (_, waits) = histogram(&s, "events_job_wait_seconds", &[("queue", "metrics-q")]);
    assert_eq!(waits, 1.0);
    // The depth watcher read the queue when it started.
    for state in ["ready", "delayed", "reserved", "failed"] {
        gauge(
            &s,
            "events_queue_depth",
            &[("queue", "metrics-q"), ("state", state)],
        );
    }
}

#[tokio::test]
async fn metrics_addr_without_a_metrics_endpoint_is_refused_in_words() {
    let mut out = Vec::new();
    let error = events::cli::Commands::new()
        .queue(Queue::memory())
        .run_to(
            [
                "app",
                "work",
                "--stop-when-empty",
                "--metrics-addr",
                "127.0.0.1:1",
            ],
            &mut out,
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("needs metrics"), "{error}");
}

#[tokio::test]
async fn a_metrics_addr_in_use_is_refused_in_words() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut out = Vec::new();
    let error = events::cli::run_to(
        [
            "app",
            "work",
            "--stop-when-empty",
            "--metrics-addr",
            &addr.to_string(),
        ],
        Some(Queue::memory()),
        &mut out,
    )
    .await
    .unwrap_err();
    assert_eq!(error.to_string(), format!("cannot serve metrics at {addr}"));
}

#[tokio::test]
async fn watch_queue_keeps_the_depth_gauges_current() {
    let queue = Queue::memory();
    let metrics = Metrics::prometheus();
    let watcher = metrics.watch_queue(queue.clone(), Duration::from_millis(10));
    let delayed = |metrics: &Metrics| {
        gauge(
            &scrape(&render(metrics)),
            "events_queue_depth",
            &[("queue", "metrics-later"), ("state", "delayed")],
        )
    };
    assert_eq!(delayed(&metrics), 0.0);
    Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap()
        .dispatch(Later)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while delayed(&metrics) != 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the watcher saw the delayed job within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    watcher.abort();
}

#[tokio::test]
async fn other_recorders_get_the_same_families() {
    // Any recorder: `render` has nothing to give, the recorder has it all.
    let recorder = events::metrics::prometheus_recorder();
    let metrics = Metrics::with_recorder(recorder.clone());
    assert!(metrics.render().is_none());
    let dispatcher = Dispatcher::builder().observe(metrics).build().unwrap();
    dispatcher.dispatch(Halting).await.unwrap();
    let s = scrape(&recorder.render());
    assert_eq!(
        counter(
            &s,
            "events_dispatched_total",
            &[("event", "metrics.halting")]
        ),
        1.0
    );

    // The global recorder (the only test here that installs one; the others
    // record into recorders of their own, which it does not see).
    let global = events::metrics::prometheus_recorder();
    metrics::set_global_recorder(global.clone()).expect("no global recorder yet");
    let metrics = Metrics::new();
    assert!(metrics.render().is_none());
    let dispatcher = Dispatcher::builder().observe(metrics).build().unwrap();
    dispatcher.dispatch(Halting).await.unwrap();
    dispatcher.dispatch(Halting).await.unwrap();
    let s = scrape(&global.render());
    assert_eq!(
        counter(
            &s,
            "events_dispatched_total",
            &[("event", "metrics.halting")]
        ),
        2.0
    );
    let (_, runs) = histogram(
        &s,
        "events_listener_duration_seconds",
        &[("listener", "metrics::stops_here")],
    );
    assert_eq!(runs, 2.0);
}

// --- no allocation per increment ------------------------------------------------

/// Polls a dispatch to completion on this thread, with no runtime.
fn run<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// Observes and records nothing, with the default interest (everything):
/// the full observed path.
struct Nothing;
impl Observer for Nothing {}

#[test]
fn recording_after_warm_up_allocates_nothing() {
    let metrics = Metrics::prometheus();
    let observed = |observer: Dispatcher| {
        // Warm-up: the first dispatch builds the event's table.
        run(observer.dispatch(Plain)).unwrap();
        allocations(|| {
            for _ in 0..100 {
                run(observer.dispatch(Plain)).unwrap();
            }
        })
    };
    let with_nothing = observed(Dispatcher::builder().observe(Nothing).build().unwrap());
    let with_metrics = observed(
        Dispatcher::builder()
            .observe(metrics.clone())
            .build()
            .unwrap(),
    );
    assert_eq!(
        with_metrics, 0,
        "100 dispatches recorded by Metrics allocate nothing: it asks for no envelope, so dispatch stays on its lean path"
    );
    assert!(
        with_nothing > 0,
        "an observer with the default interest (everything) still gets the envelope, built per dispatch"
    );
    let s = scrape(&render(&metrics));
    assert_eq!(
        counter(&s, "events_dispatched_total", &[("event", "metrics.plain")]),
        101.0
    );

    // The job callbacks, for a queue and listener the registry knows, and
    // for ones it does not (built on first use, then read as cheaply).
    for (queue, listener) in [
        ("metrics-q", "metrics::send_mail"),
        ("made-up-queue", "made::up"),
    ] {
        let job = Job::from_parts(
            "id",
            queue,
            listener,
            "metrics.booked",
            "{}",
            Envelope::new(),
        );
        let calls = |m: &Metrics| {
            m.job_enqueued(&job);
            m.job_claimed(&job);
            m.job_succeeded(&job, Duration::from_millis(3));
            m.job_retried(&job, "no", Duration::from_millis(3));
            m.job_released(&job, Duration::from_millis(3));
            m.job_failed(&job, "no");
            m.job_lease_lost(&job);
            m.job_set_aside(&job, "no");
        };
        calls(&metrics);
        let made = allocations(|| {
            for _ in 0..100 {
                calls(&metrics);
            }
        });
        assert_eq!(made, 0, "job callbacks on {queue} after warm-up");
    }
    let s = scrape(&render(&metrics));
    assert_eq!(
        counter(
            &s,
            "events_jobs_total",
            &[("queue", "made-up-queue"), ("outcome", "lease_lost")]
        ),
        101.0
    );
}
