//! OpenTelemetry for the `events` framework (facade feature `otel`,
//! `events::otel`): [`OpenTelemetry`], an observer whose spans are
//! OpenTelemetry spans through [`tracing-opentelemetry`](tracing_opentelemetry),
//! so one trace runs from the request that dispatched an event, through
//! `events.dispatch`, its sync listeners and the enqueueing of its jobs,
//! to every try of every job on any worker.
//!
//! The dispatch span's own OpenTelemetry context (its trace id and span
//! id) is written into the event's metadata as `traceparent` before any
//! job is made; each try's `events.job` span takes it as its remote
//! parent. A `traceparent` already in the metadata (an incoming request's,
//! through a metadata provider or `.with(..)`) is the dispatch span's
//! parent. Spans are named and kinded after OpenTelemetry's messaging
//! conventions: `dispatch {event}` (producer), the listener (internal),
//! `send {queue}` (producer), `process {queue}` (consumer).
//!
//! Export is the application's choice, as with any `tracing-opentelemetry`
//! setup: a tracer from an SDK provider with the exporter it wants (OTLP
//! through `opentelemetry-otlp`, Jaeger, stdout), and [`layer`] on the
//! `tracing` subscriber.
//!
//! ```
//! use opentelemetry::trace::TracerProvider as _;
//! use tracing_subscriber::layer::SubscriberExt as _;
//!
//! let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
//!     // .with_batch_exporter(opentelemetry_otlp::SpanExporter::builder().with_tonic().build()?)
//!     .build();
//! let subscriber = tracing_subscriber::registry()
//!     .with(events_otel::layer(provider.tracer("my-service")));
//! let _guard = tracing::subscriber::set_default(subscriber);
//! // Dispatcher::builder().observe(events_otel::OpenTelemetry), and the
//! // same observer on the workers.
//! ```
//!
//! Give it in place of `events::observe::Tracing`, not beside it: the first
//! observer that makes a span makes it.

#![warn(missing_docs)]

use events_core::Envelope;
use events_core::keys::TRACEPARENT;
use events_core::observe::{Interest, Observer, TraceParent, Tracing, spans};
use events_core::queue::Job;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The `opentelemetry` this crate is built on (version 0.33).
pub use opentelemetry;
/// The `tracing-opentelemetry` this crate is built on (version 0.34).
pub use tracing_opentelemetry;

/// The `tracing` layer that turns spans into OpenTelemetry spans of
/// `tracer` (`tracing_opentelemetry::layer().with_tracer(tracer)`), for a
/// subscriber of the application's.
pub fn layer<S, T>(tracer: T) -> tracing_opentelemetry::OpenTelemetryLayer<S, T>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    T: opentelemetry::trace::Tracer + 'static,
    T::Span: Send + Sync,
{
    tracing_opentelemetry::layer().with_tracer(tracer)
}

/// The observer whose spans are OpenTelemetry spans (see the [crate]
/// docs). Give it to the dispatcher (`Dispatcher::builder().observe(..)`)
/// and to every worker (`Worker::new(q).observe(..)`, or the CLI's
/// `Commands::observe`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenTelemetry;

/// The OpenTelemetry context of a `traceparent`, as a remote parent.
fn remote(traceparent: Option<&str>) -> Option<opentelemetry::Context> {
    let parent = TraceParent::parse(traceparent?)?;
    let context = SpanContext::new(
        TraceId::from(parent.trace_id),
        SpanId::from(parent.span_id),
        // The caller's decision: the SDK's parent-based sampler follows it.
        if parent.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        true,
        TraceState::default(),
    );
    Some(opentelemetry::Context::new().with_remote_span_context(context))
}

impl Observer for OpenTelemetry {
    fn interest(&self) -> Interest {
        Interest::SPANS
    }

    fn dispatch_span(&self, event: &str, envelope: &Envelope) -> Option<tracing::Span> {
        // `Tracing`'s span, its id fields left empty: the layer has the ids.
        let span = spans::dispatch(event, envelope);
        if let Some(parent) = remote(envelope.metadata.get(TRACEPARENT)) {
            // Without the layer there is nothing to parent; the span works.
            let _ = span.set_parent(parent);
        }
        Some(span)
    }

    fn trace_context(&self, span: &tracing::Span) -> Option<TraceParent> {
        let context = span.context();
        let span_context = context.span().span_context().clone();
        span_context.is_valid().then(|| TraceParent {
            trace_id: u128::from_be_bytes(span_context.trace_id().to_bytes()),
            span_id: u64::from_be_bytes(span_context.span_id().to_bytes()),
            sampled: span_context.is_sampled(),
        })
    }

    fn listener_span(
        &self,
        listener: &'static str,
        event: &'static str,
        envelope: &Envelope,
    ) -> Option<tracing::Span> {
        // The same span as `Tracing`'s: it carries no ids of its own.
        Tracing.listener_span(listener, event, envelope)
    }

    fn enqueue_span(&self, event: &'static str, jobs: &[&Job]) -> Option<tracing::Span> {
        Tracing.enqueue_span(event, jobs)
    }

    fn job_span(&self, job: &Job) -> Option<tracing::Span> {
        let span = spans::job(job);
        if let Some(parent) = remote(job.envelope.metadata.get(TRACEPARENT)) {
            let _ = span.set_parent(parent);
        }
        Some(span)
    }
}
