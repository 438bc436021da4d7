//! `Observer::interest`: an observer is called only for what it asked for,
//! sees what it asked for on every path (plain listeners, listeners that
//! take a context, async ones, queued ones), and the default, everything,
//! behaves as before interests existed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use events::observe::{DispatchRecord, Interest, ListenerOutcome, ListenerRun, Observer};
use events::prelude::*;
use events::queue::{Job, Queue};
use events::{Context, Dispatcher, Metadata, Worker};
use serde::{Deserialize, Serialize};

/// Writes down every call, with what it was given; says `interest`.
struct Log {
    interest: Interest,
    lines: Mutex<Vec<String>>,
}

impl Log {
    fn new(interest: Interest) -> Arc<Log> {
        Arc::new(Log {
            interest,
            lines: Mutex::default(),
        })
    }
    fn push(&self, line: String) {
        self.lines.lock().unwrap().push(line);
    }
    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// `Some` as `some`, `None` as `none`: what a line says of an optional
/// field.
fn has<T>(value: &Option<T>) -> &'static str {
    if value.is_some() { "some" } else { "none" }
}

impl Observer for Log {
    fn interest(&self) -> Interest {
        self.interest
    }
    fn enrich(&self, _event: &str, metadata: &mut Metadata) {
        self.push("enrich".into());
        metadata.insert_default("enriched", "yes");
    }
    fn dispatch_span(&self, event: &str, _: &events::Envelope) -> Option<tracing::Span> {
        self.push(format!("dispatch_span {event}"));
        None
    }
    fn dispatched(&self, record: &DispatchRecord<'_>) {
        let ran = record.result.map_or(0, |done| done.ran());
        self.push(format!(
            "dispatched {} ran {ran} envelope {} took {}",
            record.event,
            has(&record.envelope),
            has(&record.took)
        ));
    }
    fn listener_ran(&self, run: &ListenerRun<'_>) {
        let outcome = match run.outcome {
            ListenerOutcome::Continued => "continued",
            ListenerOutcome::Stopped => "stopped",
            _ => "failed",
        };
        let name = run.listener.rsplit("::").next().unwrap_or_default();
        self.push(format!(
            "ran {name} {outcome} envelope {} took {}",
            has(&run.envelope),
            has(&run.took)
        ));
    }
    fn job_enqueued(&self, job: &Job) {
        self.push(format!("enqueued {}", job.queue));
    }
    fn job_claimed(&self, job: &Job) {
        self.push(format!("claimed {}", job.queue));
    }
    fn job_span(&self, job: &Job) -> Option<tracing::Span> {
        self.push(format!("job_span {}", job.queue));
        None
    }
    fn job_succeeded(&self, job: &Job, _: Duration) {
        self.push(format!("succeeded {}", job.queue));
    }
}

#[event(name = "interest.plain")]
pub struct Plain;

#[listener(priority = 2)]
fn plain_first(_: &Plain) {}

#[listener(priority = 1)]
fn plain_second(_: &Plain) {}

#[event(name = "interest.mixed")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mixed;

/// What the context of the last `Mixed` dispatch said of `enriched`.
static ENRICHED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Held by each test that dispatches `Mixed`: they share `ENRICHED`, and
/// the test harness runs tests in parallel.
static MIXED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[listener(priority = 3)]
fn with_context(_: &Mixed, ctx: &Context) {
    let enriched = ctx.metadata().get("enriched").unwrap_or("-");
    ENRICHED.lock().unwrap().push(enriched.to_owned());
}

#[listener(priority = 2)]
async fn awaited(_: &Mixed) {}

#[listener(priority = 1)]
fn halts(_: &Mixed) -> Flow {
    Flow::Continue
}

#[listener(queue = "interest-q")]
async fn later(_: &Mixed) {}

async fn dispatch_both(dispatcher: &Dispatcher) {
    dispatcher.dispatch(Plain).await.unwrap();
    dispatcher.dispatch(Mixed).await.unwrap();
}

fn enriched() -> Vec<String> {
    std::mem::take(&mut *ENRICHED.lock().unwrap())
}

#[tokio::test(flavor = "current_thread")]
async fn a_narrow_interest_sees_what_it_asked_for_and_nothing_else() {
    let _mixed = MIXED.lock().await;
    let counts = Log::new(Interest::DISPATCHES | Interest::LISTENER_RUNS);
    let timed = Log::new(Interest::LISTENER_RUNS | Interest::TIMING);
    let jobs = Log::new(Interest::JOBS);
    let deaf = Log::new(Interest::NONE);
    let queue = Queue::memory();
    let dispatcher = Dispatcher::builder()
        .queue(queue.clone())
        .observe(counts.clone())
        .observe(jobs.clone())
        .observe(deaf.clone())
        .build()
        .unwrap();
    // What one observer asks for, the others of its dispatcher get too
    // (`took` here): the timed one has a dispatcher of its own.
    let timing = Dispatcher::builder()
        .queue(Queue::memory())
        .observe(timed.clone())
        .build()
        .unwrap();
    enriched();
    dispatch_both(&dispatcher).await;
    dispatch_both(&timing).await;

    assert_eq!(
        counts.lines(),
        [
            "ran plain_first continued envelope none took none",
            "ran plain_second continued envelope none took none",
            "dispatched interest.plain ran 2 envelope none took none",
            "ran with_context continued envelope none took none",
            "ran awaited continued envelope none took none",
            "ran halts continued envelope none took none",
            "dispatched interest.mixed ran 3 envelope none took none",
        ]
    );
    assert_eq!(
        timed.lines(),
        [
            "ran plain_first continued envelope none took some",
            "ran plain_second continued envelope none took some",
            "ran with_context continued envelope none took some",
            "ran awaited continued envelope none took some",
            "ran halts continued envelope none took some",
        ]
    );
    assert_eq!(jobs.lines(), ["enqueued interest-q"]);
    assert_eq!(
        enriched(),
        ["-", "-"],
        "nobody asked for the envelope: no enrich"
    );

    Worker::new(queue)
        .queues(["interest-q"])
        .observe(jobs.clone())
        .observe(deaf.clone())
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!(
        jobs.lines(),
        [
            "enqueued interest-q",
            "claimed interest-q",
            "succeeded interest-q"
        ],
        "jobs without spans: no job_span"
    );
    assert_eq!(
        deaf.lines(),
        Vec::<String>::new(),
        "Interest::NONE is never called"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_default_interest_is_everything_as_before() {
    let _mixed = MIXED.lock().await;
    struct Default_;
    impl Observer for Default_ {}
    assert_eq!(Default_.interest(), Interest::ALL);
    assert_eq!(Interest::default(), Interest::ALL);

    let all = Log::new(Interest::ALL);
    let narrow = Log::new(Interest::DISPATCHES);
    let queue = Queue::memory();
    let dispatcher = Dispatcher::builder()
        .queue(queue.clone())
        .observe(all.clone())
        .observe(narrow.clone())
        .build()
        .unwrap();
    enriched();
    dispatch_both(&dispatcher).await;
    assert_eq!(
        all.lines(),
        [
            "enrich",
            "dispatch_span interest.plain",
            "ran plain_first continued envelope some took some",
            "ran plain_second continued envelope some took some",
            "dispatched interest.plain ran 2 envelope some took some",
            "enrich",
            "dispatch_span interest.mixed",
            "ran with_context continued envelope some took some",
            "ran awaited continued envelope some took some",
            "ran halts continued envelope some took some",
            "enqueued interest-q",
            "dispatched interest.mixed ran 3 envelope some took some",
        ]
    );
    assert_eq!(enriched(), ["yes"], "the listener saw what enrich added");
    // The narrow observer of the same dispatcher is still called only for
    // what it asked for; the envelope another observer made it gets.
    assert_eq!(
        narrow.lines(),
        [
            "dispatched interest.plain ran 2 envelope some took some",
            "dispatched interest.mixed ran 3 envelope some took some",
        ]
    );

    Worker::new(queue)
        .queues(["interest-q"])
        .observe(all.clone())
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!(
        all.lines()[12..],
        [
            "claimed interest-q",
            "job_span interest-q",
            "succeeded interest-q"
        ]
    );
}

#[test]
fn interests_combine_and_print_their_flags() {
    let counts = Interest::DISPATCHES | Interest::LISTENER_RUNS;
    assert!(counts.contains(Interest::LISTENER_RUNS));
    assert!(!counts.contains(Interest::DISPATCHES | Interest::TIMING));
    assert!(counts.intersects(Interest::DISPATCHES | Interest::TIMING));
    assert!(Interest::NONE.is_empty() && !counts.is_empty());
    let mut more = counts;
    more |= Interest::TIMING;
    assert_eq!(more, counts.union(Interest::TIMING));
    assert_eq!(
        format!("{more:?}"),
        "Interest(DISPATCHES | LISTENER_RUNS | TIMING)"
    );
    assert_eq!(format!("{:?}", Interest::NONE), "Interest(NONE)");
    for flag in [
        Interest::ENVELOPE,
        Interest::SPANS,
        Interest::DISPATCHES,
        Interest::LISTENER_RUNS,
        Interest::TIMING,
        Interest::JOBS,
    ] {
        assert!(Interest::ALL.contains(flag), "{flag:?}");
    }
}
