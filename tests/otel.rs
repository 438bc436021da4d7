//! One OpenTelemetry trace from the request that dispatched an event to
//! every try of its job: `events::otel::OpenTelemetry` on the dispatcher
//! and the worker, `tracing-opentelemetry` with the SDK's in-memory
//! exporter. The dispatch span is the request span's child, the listener
//! and enqueue spans the dispatch's, and each try's `events.job` span
//! (consumer) has the dispatch span as its remote parent, through the
//! job's `traceparent`; a `traceparent` given at the dispatch is continued,
//! and one whose caller did not sample the trace is sampled nowhere.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use events::otel::OpenTelemetry;
use events::prelude::*;
use events::queue::Queue;
use events::{Dispatcher, Worker};
use opentelemetry::trace::{SpanId, SpanKind, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde::{Deserialize, Serialize};
use tracing_subscriber::layer::SubscriberExt as _;

#[event(name = "parcel.shipped")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParcelShipped {
    pub parcel: u64,
}

static TRIES: AtomicU64 = AtomicU64::new(0);

#[listener(queue = "otel-parcels", tries = 2)]
async fn notify_courier(_: &ParcelShipped) -> Result<(), std::io::Error> {
    if TRIES.fetch_add(1, Ordering::Relaxed) == 0 {
        return Err(std::io::Error::other("courier busy"));
    }
    Ok(())
}

#[listener]
fn log_parcel(_: &ParcelShipped) {}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn attribute(span: &SpanData, key: &str) -> String {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
        .unwrap_or_else(|| panic!("no `{key}` on {}: {:?}", span.name, span.attributes))
}

#[test]
fn one_opentelemetry_trace_from_the_request_to_every_try() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber =
        tracing_subscriber::registry().with(events::otel::layer(provider.tracer("test")));
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let unsampled = "00-1bf7651916cd43dd8448eb211c80319d-c7ad6b7169203332-00";
    runtime.block_on(async {
        let queue = Queue::memory();
        let dispatcher = Dispatcher::builder()
            .queue(queue.clone())
            .observe(OpenTelemetry)
            .build()
            .unwrap();
        {
            use tracing::Instrument as _;
            let request = tracing::info_span!("request", otel.kind = "server");
            dispatcher
                .dispatch(ParcelShipped { parcel: 1 })
                .instrument(request)
                .await
                .unwrap();
        }
        let report = Worker::new(queue.clone())
            .queues(["otel-parcels"])
            .observe(OpenTelemetry)
            .poll_interval(Duration::from_millis(5))
            .run_until_empty()
            .await
            .unwrap();
        assert_eq!((report.retried, report.succeeded), (1, 1));

        // A dispatch that continues a caller's trace (a request header).
        dispatcher
            .dispatch(ParcelShipped { parcel: 2 })
            .with("traceparent", caller)
            .await
            .unwrap();
        Worker::new(queue.clone())
            .queues(["otel-parcels"])
            .observe(OpenTelemetry)
            .run_until_empty()
            .await
            .unwrap();

        // A caller that did not sample its trace: the dispatch and its job
        // run, and no span of that trace is recorded (the sampled flag
        // travels in the job's traceparent too).
        dispatcher
            .dispatch(ParcelShipped { parcel: 3 })
            .with("traceparent", unsampled)
            .await
            .unwrap();
        let report = Worker::new(queue)
            .queues(["otel-parcels"])
            .observe(OpenTelemetry)
            .run_until_empty()
            .await
            .unwrap();
        assert_eq!(report.succeeded, 1, "the unsampled dispatch's job ran");
    });
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();

    let request = named(&spans, "request");
    let dispatches = named(&spans, "dispatch parcel.shipped");
    let jobs = named(&spans, "process otel-parcels");
    let listeners: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.name.ends_with("log_parcel"))
        .collect();
    let enqueues = named(&spans, "send otel-parcels");
    assert_eq!(
        (request.len(), dispatches.len(), jobs.len()),
        (1, 2, 3),
        "{:#?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    assert_eq!((listeners.len(), enqueues.len()), (2, 2));

    // The first dispatch: the request's child, the listener and the enqueue
    // its children, each try of the job its remote child, one trace.
    let request = request[0];
    let trace = request.span_context.trace_id();
    let dispatch = dispatches
        .iter()
        .find(|d| d.span_context.trace_id() == trace)
        .expect("the first dispatch is in the request's trace");
    assert_eq!(dispatch.parent_span_id, request.span_context.span_id());
    assert_eq!(dispatch.span_kind, SpanKind::Producer);
    assert_eq!(attribute(dispatch, "messaging.operation.type"), "create");
    assert_eq!(
        attribute(dispatch, "messaging.destination.name"),
        "parcel.shipped"
    );
    let dispatch_id = dispatch.span_context.span_id();
    for child in [listeners[0], enqueues[0]] {
        assert_eq!(child.span_context.trace_id(), trace, "{}", child.name);
        assert_eq!(child.parent_span_id, dispatch_id, "{}", child.name);
    }
    assert_eq!(listeners[0].span_kind, SpanKind::Internal);
    assert_eq!(enqueues[0].span_kind, SpanKind::Producer);
    let tries: Vec<&&SpanData> = jobs
        .iter()
        .filter(|j| j.span_context.trace_id() == trace)
        .collect();
    assert_eq!(tries.len(), 2, "both tries of the first job join the trace");
    let mut attempts: Vec<String> = tries.iter().map(|j| attribute(j, "attempt")).collect();
    attempts.sort();
    assert_eq!(attempts, ["1", "2"]);
    for job in &tries {
        assert_eq!(job.parent_span_id, dispatch_id);
        assert!(job.parent_span_is_remote, "the link is the job's metadata");
        assert_eq!(job.span_kind, SpanKind::Consumer);
        assert_eq!(attribute(job, "messaging.operation.type"), "process");
        assert!(attribute(job, "listener").ends_with("notify_courier"));
    }

    // The second: the caller's trace, the caller's span as parent, and
    // its job under the dispatch span.
    let caller_trace = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap();
    let continued = dispatches
        .iter()
        .find(|d| d.span_context.trace_id() == caller_trace)
        .expect("the second dispatch continues the caller's trace");
    assert_eq!(
        continued.parent_span_id,
        SpanId::from_hex("b7ad6b7169203331").unwrap()
    );
    assert!(continued.parent_span_is_remote);
    let job = jobs
        .iter()
        .find(|j| j.span_context.trace_id() == caller_trace)
        .expect("its job joins it");
    assert_eq!(job.parent_span_id, continued.span_context.span_id());

    // The third: nothing of the unsampled trace was exported.
    let unsampled_trace = TraceId::from_hex("1bf7651916cd43dd8448eb211c80319d").unwrap();
    let recorded: Vec<&str> = spans
        .iter()
        .filter(|s| s.span_context.trace_id() == unsampled_trace)
        .map(|s| &*s.name)
        .collect();
    assert!(
        recorded.is_empty(),
        "spans of a trace its caller did not sample: {recorded:?}"
    );
}
