//! One trace from dispatch to worker: `events::observe::Tracing` opens
//! `events.dispatch`, with `events.listener` and `events.enqueue` inside it,
//! and `events.job` spans, and the dispatch's trace context travels in the
//! job's metadata, across retries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use events::prelude::*;
use events::queue::Queue;
use events::{Dispatcher, Worker};
use serde::{Deserialize, Serialize};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event as TracingEvent, Metadata as TracingMetadata, Subscriber};

/// A span's name and its fields, as text; its parent's id among them as
/// `parent`.
type Span = (String, HashMap<String, String>);

/// A `tracing` subscriber that keeps every span's name, fields and parent
/// (explicit, or the span entered when it was made: the test runs on one
/// thread).
#[derive(Clone, Default)]
struct Spans {
    next: Arc<AtomicU64>,
    spans: Arc<Mutex<HashMap<u64, Span>>>,
    entered: Arc<Mutex<Vec<u64>>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Spans {
    fn enabled(&self, _: &TracingMetadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut fields = HashMap::new();
        span.record(&mut Fields(&mut fields));
        fields.insert("id".to_owned(), id.to_string());
        let parent = match span.parent() {
            Some(parent) => Some(parent.into_u64()),
            None if span.is_contextual() => self.entered.lock().unwrap().last().copied(),
            None => None,
        };
        if let Some(parent) = parent {
            fields.insert("parent".to_owned(), parent.to_string());
        }
        self.spans
            .lock()
            .unwrap()
            .insert(id, (span.metadata().name().to_owned(), fields));
        Id::from_u64(id)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        if let Some((_, fields)) = self.spans.lock().unwrap().get_mut(&span.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &TracingEvent<'_>) {}
    fn enter(&self, span: &Id) {
        self.entered.lock().unwrap().push(span.into_u64());
    }
    fn exit(&self, span: &Id) {
        let mut entered = self.entered.lock().unwrap();
        if let Some(at) = entered.iter().rposition(|id| *id == span.into_u64()) {
            entered.remove(at);
        }
    }
}

impl Spans {
    /// Spans named `name`, in the order they were opened.
    fn named(&self, name: &str) -> Vec<HashMap<String, String>> {
        let spans = self.spans.lock().unwrap();
        let mut ids: Vec<&u64> = spans.keys().collect();
        ids.sort();
        ids.into_iter()
            .filter(|id| spans[id].0 == name)
            .map(|id| spans[id].1.clone())
            .collect()
    }
}

#[event(name = "shipment.sent")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShipmentSent {
    pub shipment: u64,
}

static TRIES: AtomicU64 = AtomicU64::new(0);

#[listener(queue = "tracing-shipments", tries = 2)]
async fn notify_carrier(_: &ShipmentSent) -> Result<(), std::io::Error> {
    if TRIES.fetch_add(1, Ordering::Relaxed) == 0 {
        return Err(std::io::Error::other("carrier busy"));
    }
    Ok(())
}

#[listener]
fn log_shipment(_: &ShipmentSent) {}

fn field<'a>(span: &'a HashMap<String, String>, name: &str) -> &'a str {
    span.get(name)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no `{name}` in {span:?}"))
}

#[test]
fn one_trace_from_dispatch_to_every_try_of_the_job() {
    let spans = Spans::default();
    let _guard = tracing::subscriber::set_default(spans.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let queue = Queue::memory();
        let dispatcher = Dispatcher::builder()
            .queue(queue.clone())
            .observe(events::observe::Tracing)
            .build()
            .unwrap();
        dispatcher
            .dispatch(ShipmentSent { shipment: 1 })
            .await
            .unwrap();
        let report = Worker::new(queue.clone())
            .queues(["tracing-shipments"])
            .observe(events::observe::Tracing)
            .poll_interval(Duration::from_millis(5))
            .run_until_empty()
            .await
            .unwrap();
        assert_eq!((report.retried, report.succeeded), (1, 1));

        // A dispatch that continues a trace from its caller keeps its id.
        let caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        dispatcher
            .dispatch(ShipmentSent { shipment: 2 })
            .with("traceparent", caller)
            .await
            .unwrap();
        Worker::new(queue)
            .queues(["tracing-shipments"])
            .observe(events::observe::Tracing)
            .run_until_empty()
            .await
            .unwrap();
    });

    let dispatches = spans.named("events.dispatch");
    let jobs = spans.named("events.job");
    assert_eq!(
        (dispatches.len(), jobs.len()),
        (2, 3),
        "{dispatches:?} {jobs:?}"
    );

    let dispatch = &dispatches[0];
    assert_eq!(field(dispatch, "otel.kind"), "producer");
    assert_eq!(field(dispatch, "messaging.operation.type"), "create");
    assert_eq!(field(dispatch, "otel.name"), "dispatch shipment.sent");

    // Inside the dispatch: the sync listener's run, then the enqueue.
    let listeners = spans.named("events.listener");
    let enqueues = spans.named("events.enqueue");
    assert_eq!((listeners.len(), enqueues.len()), (2, 2));
    for (i, dispatch) in dispatches.iter().enumerate() {
        let listener = &listeners[i];
        assert_eq!(field(listener, "parent"), field(dispatch, "id"));
        assert_eq!(field(listener, "otel.kind"), "internal");
        assert!(field(listener, "listener").ends_with("log_shipment"));
        assert_eq!(field(listener, "event"), "shipment.sent");
        let enqueue = &enqueues[i];
        assert_eq!(field(enqueue, "parent"), field(dispatch, "id"));
        assert_eq!(field(enqueue, "otel.kind"), "producer");
        assert_eq!(field(enqueue, "messaging.operation.type"), "send");
        assert_eq!(
            field(enqueue, "messaging.destination.name"),
            "tracing-shipments"
        );
        assert_eq!(field(enqueue, "messaging.batch.message_count"), "1");
        assert_eq!(field(enqueue, "otel.name"), "send tracing-shipments");
    }
    // The jobs' spans are made by the worker, outside any dispatch.
    for job in &jobs {
        assert!(!job.contains_key("parent"), "{job:?}");
    }
    assert_eq!(
        field(dispatch, "messaging.destination.name"),
        "shipment.sent"
    );
    let trace = field(dispatch, "trace_id");
    assert_eq!(trace.len(), 32);
    for (attempt, job) in jobs[..2].iter().enumerate() {
        assert_eq!(field(job, "otel.kind"), "consumer");
        assert_eq!(field(job, "messaging.operation.type"), "process");
        assert_eq!(field(job, "trace_id"), trace, "try {attempt}");
        assert_eq!(field(job, "parent_span_id"), field(dispatch, "span_id"));
        assert_eq!(field(job, "attempt"), (attempt + 1).to_string());
        assert_eq!(
            field(job, "messaging.destination.name"),
            "tracing-shipments"
        );
        assert!(field(job, "listener").ends_with("notify_carrier"));
    }
    assert_ne!(field(&jobs[0], "span_id"), field(&jobs[1], "span_id"));

    let continued = &dispatches[1];
    assert_eq!(
        field(continued, "trace_id"),
        "0af7651916cd43dd8448eb211c80319c"
    );
    assert_ne!(field(continued, "span_id"), "b7ad6b7169203331");
    assert_eq!(
        field(&jobs[2], "trace_id"),
        "0af7651916cd43dd8448eb211c80319c"
    );
    assert_eq!(
        field(&jobs[2], "parent_span_id"),
        field(continued, "span_id")
    );
}
