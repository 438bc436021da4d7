//! Dispatch as a user sees it: order, failure, halting, conditions,
//! wildcards, subscribers, queued listeners and what the registry reports.
//! Each test has its own event types, so tests running in parallel never
//! share listeners.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use events::prelude::*;
use events::{DispatchError, Mode};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Failure(&'static str);

fn take(log: &Mutex<Vec<String>>) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

// --- order -----------------------------------------------------------------

static ORDER: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[event]
pub struct Ordered;

#[listener(priority = -5)]
fn ordered_last(_: &Ordered) {
    ORDER.lock().unwrap().push("last (-5)".into());
}

#[listener]
async fn ordered_b(_: &Ordered) {
    ORDER.lock().unwrap().push("b (0)".into());
}

#[listener]
fn ordered_a(_: &Ordered) {
    ORDER.lock().unwrap().push("a (0)".into());
}

#[listener(priority = 10)]
fn ordered_first(_: &Ordered) {
    ORDER.lock().unwrap().push("first (10)".into());
}

#[tokio::test]
async fn sync_listeners_run_by_priority_then_name() {
    let done = Ordered.dispatch().await.unwrap();
    assert_eq!(take(&ORDER), ["first (10)", "a (0)", "b (0)", "last (-5)"]);
    assert_eq!(done.ran(), 4);
    assert!(!done.halted());
    assert!(!done.faked());
    let names: Vec<&str> = events::listeners_for::<Ordered>()
        .iter()
        .map(|l| l.name())
        .collect();
    assert_eq!(
        names,
        [
            "dispatch::ordered_first",
            "dispatch::ordered_a",
            "dispatch::ordered_b",
            "dispatch::ordered_last"
        ]
    );
}

// --- failure ----------------------------------------------------------------

static FAILING: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[event]
#[derive(Serialize, Deserialize)]
pub struct WillFail {
    pub fail: bool,
}

#[listener(priority = 2)]
fn before_failure(_: &WillFail) {
    FAILING.lock().unwrap().push("before".into());
}

#[listener(priority = 1)]
async fn fails_when_told(e: &WillFail) -> Result<(), Failure> {
    FAILING.lock().unwrap().push("failing".into());
    if e.fail {
        Err(Failure("mail server down"))
    } else {
        Ok(())
    }
}

#[listener]
fn after_failure(_: &WillFail) {
    FAILING.lock().unwrap().push("after".into());
}

#[listener(queue = "default")]
fn queued_after_failure(_: &WillFail) {}

#[tokio::test]
async fn failing_listener_stops_the_rest_and_is_named() {
    let queue = events::fake_queue();
    let error = WillFail { fail: true }.dispatch().await.unwrap_err();
    assert_eq!(take(&FAILING), ["before", "failing"]);
    assert_eq!(error.listener(), Some("dispatch::fails_when_told"));
    assert_eq!(
        error.to_string(),
        "listener `dispatch::fails_when_told` failed while handling `WillFail`"
    );
    let source = std::error::Error::source(&error).unwrap();
    assert_eq!(source.to_string(), "mail server down");
    assert!(matches!(error, DispatchError::Listener { .. }));
    queue.assert_nothing_pushed();

    let done = WillFail { fail: false }.dispatch().await.unwrap();
    assert_eq!(take(&FAILING), ["before", "failing", "after"]);
    assert_eq!((done.ran(), done.queued()), (3, 1));
    queue.assert_pushed::<queued_after_failure>();
}

// --- halting ------------------------------------------------------------------

static HALTING: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[event]
#[derive(Serialize, Deserialize)]
pub struct Halts;

#[listener(priority = 1)]
fn stopper(_: &Halts) -> Result<Flow, Failure> {
    HALTING.lock().unwrap().push("stopper".into());
    Ok(Flow::Stop)
}

#[listener]
fn never_reached(_: &Halts) {
    HALTING.lock().unwrap().push("never".into());
}

#[listener(queue = "default")]
async fn queued_after_halt(_: &Halts) {}

#[tokio::test]
async fn flow_stop_halts_the_rest_and_enqueues_nothing() {
    let queue = events::fake_queue();
    let done = Halts.dispatch().await.unwrap();
    assert_eq!(take(&HALTING), ["stopper"]);
    assert_eq!(done.halted_by(), Some("dispatch::stopper"));
    assert_eq!((done.ran(), done.queued()), (1, 0));
    queue.assert_not_pushed::<queued_after_halt>();
}

// --- conditions ---------------------------------------------------------------

static CONDITIONAL: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[event]
#[derive(Serialize, Deserialize)]
pub struct Purchase {
    pub cents: u64,
}

fn high_value(p: &Purchase) -> bool {
    p.cents >= 10_000
}

#[listener(when = high_value)]
fn notify_sales(p: &Purchase) {
    CONDITIONAL
        .lock()
        .unwrap()
        .push(format!("sales {}", p.cents));
}

#[listener(queue = "vip", when = high_value)]
async fn queue_vip_gift(_: &Purchase) {}

#[tokio::test]
async fn when_skips_sync_and_enqueues_nothing() {
    let queue = events::fake_queue();
    let small = Purchase { cents: 500 }.dispatch().await.unwrap();
    assert_eq!((small.ran(), small.queued(), small.skipped()), (0, 0, 2));
    assert!(take(&CONDITIONAL).is_empty());
    queue.assert_nothing_pushed();

    let big = Purchase { cents: 25_000 }.dispatch().await.unwrap();
    assert_eq!((big.ran(), big.queued(), big.skipped()), (1, 1, 0));
    assert_eq!(take(&CONDITIONAL), ["sales 25000"]);
    queue.assert_pushed::<queue_vip_gift>();
    assert_eq!(queue.pushed()[0].payload, r#"{"cents":25000}"#);
}

// --- dispatch forms -----------------------------------------------------------

static FORMS: AtomicUsize = AtomicUsize::new(0);

#[event]
pub struct Counted;

#[listener]
fn count_it(_: &Counted) {
    FORMS.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test]
async fn every_dispatch_form() {
    Counted.dispatch().await.unwrap();
    events::dispatch(Counted).await.unwrap();
    assert_eq!(Counted.dispatch_if(false).await.unwrap().ran(), 0);
    assert_eq!(Counted.dispatch_if(true).await.unwrap().ran(), 1);
    assert_eq!(Counted.dispatch_unless(true).await.unwrap().ran(), 0);
    assert_eq!(Counted.dispatch_unless(false).await.unwrap().ran(), 1);
    let dispatcher = events::Dispatcher::builder().build().unwrap();
    dispatcher.dispatch(Counted).await.unwrap();
    assert_eq!(FORMS.load(Ordering::SeqCst), 5);
}

// --- the dispatch future ------------------------------------------------------

static LAZY: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[event]
pub struct Lazy;

#[listener]
fn lazy_plain(_: &Lazy) {
    LAZY.lock().unwrap().push("plain".into());
}

#[tokio::test]
async fn a_dispatch_future_does_nothing_until_awaited() {
    let pending = Lazy.dispatch();
    drop(pending);
    let pending = events::dispatch(Lazy);
    assert!(
        take(&LAZY).is_empty(),
        "nothing runs before the future is polled"
    );
    assert_eq!(pending.await.unwrap().ran(), 1);
    assert_eq!(take(&LAZY), ["plain"]);
}

static WAITS: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[event]
#[derive(Clone, Serialize, Deserialize)]
pub struct Waits {
    pub label: String,
}

#[listener(priority = 2)]
fn waits_before(e: &Waits) {
    WAITS.lock().unwrap().push(format!("before {}", e.label));
}

/// Returns `Pending` twice: the dispatch future is polled again each time,
/// with the event and the counts kept across polls.
#[listener(priority = 1)]
async fn waits_twice(e: &Waits) {
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    WAITS.lock().unwrap().push(format!("waited {}", e.label));
}

#[listener(when = is_kept)]
fn waits_skipped(_: &Waits) {
    WAITS.lock().unwrap().push("never".into());
}

fn is_kept(e: &Waits) -> bool {
    e.label != "x"
}

#[listener(priority = -1)]
fn waits_after(e: &Waits) -> Flow {
    WAITS.lock().unwrap().push(format!("after {}", e.label));
    Flow::Continue
}

#[listener(queue = "sync")]
async fn waits_queued(e: &Waits) {
    WAITS.lock().unwrap().push(format!("queued {}", e.label));
}

#[tokio::test]
async fn a_listener_that_waits_keeps_the_dispatch_in_order() {
    let queue = events::fake_queue();
    let done = Waits { label: "x".into() }.dispatch().await.unwrap();
    assert_eq!(
        take(&WAITS),
        ["before x", "waited x", "after x"],
        "sync, async and sync again, in order, across several polls"
    );
    assert_eq!((done.ran(), done.skipped(), done.queued()), (3, 1, 1));
    queue.assert_pushed_times::<waits_queued>(1);
    queue.run_pending().await.unwrap();
    assert_eq!(take(&WAITS), ["queued x"]);
}

// --- wildcards ----------------------------------------------------------------

static WILD: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[event(name = "shop.order.created")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShopOrderCreated {
    pub id: u64,
}

#[event(name = "shop.closed")]
pub struct ShopClosed;

#[event(name = "warehouse.moved")]
pub struct WarehouseMoved;

#[listener(pattern = "shop.*")]
fn shop_audit(e: &AnyEvent) {
    let typed = e.downcast_ref::<ShopOrderCreated>().map(|o| o.id);
    WILD.lock().unwrap().push(format!(
        "shop.* {} {:?} {:?}",
        e.name(),
        e.payload_json(),
        typed
    ));
}

#[listener(pattern = "*.moved")]
async fn moved_audit(e: &AnyEvent) -> Result<(), Failure> {
    WILD.lock().unwrap().push(format!("*.moved {}", e.name()));
    Ok(())
}

#[tokio::test]
async fn wildcards_match_across_dots_and_see_the_event() {
    ShopOrderCreated { id: 9 }.dispatch().await.unwrap();
    ShopClosed.dispatch().await.unwrap();
    WarehouseMoved.dispatch().await.unwrap();
    let log = take(&WILD);
    // A catch-all `*` listener in `tests/fakes.rs` is another binary's: not here.
    assert_eq!(
        log,
        [
            r#"shop.* shop.order.created Some("{\"id\":9}") Some(9)"#,
            "shop.* shop.closed None None",
            "*.moved warehouse.moved",
        ]
    );
    let listeners = events::listeners_for::<ShopOrderCreated>();
    assert_eq!(listeners.len(), 1);
    assert_eq!(listeners[0].pattern(), Some("shop.*"));
    assert_eq!(listeners[0].event_type(), None);
}

// --- subscribers ----------------------------------------------------------------

static SUBSCRIBED: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[event]
#[derive(Serialize, Deserialize)]
pub struct Subscribed {
    pub n: u32,
}

#[derive(Default)]
pub struct Subscriber {
    greeting: &'static str,
}

#[subscriber]
impl Subscriber {
    #[listen(priority = 1)]
    async fn on_subscribed(&self, e: &Subscribed) -> Result<(), Failure> {
        SUBSCRIBED
            .lock()
            .unwrap()
            .push(format!("async {} {:?}", e.n, self.greeting));
        Ok(())
    }

    #[listen]
    fn also_subscribed(&self, e: &Subscribed) {
        SUBSCRIBED.lock().unwrap().push(format!("sync {}", e.n));
    }

    #[listen(queue = "mail", tries = 2, name = "subscriber.mail")]
    async fn mail_later(&self, e: &Subscribed) {
        SUBSCRIBED.lock().unwrap().push(format!("queued {}", e.n));
    }
}

#[tokio::test]
async fn subscriber_methods_are_listeners() {
    let queue = events::fake_queue();
    let done = Subscribed { n: 3 }.dispatch().await.unwrap();
    assert_eq!((done.ran(), done.queued()), (2, 1));
    assert_eq!(take(&SUBSCRIBED), [r#"async 3 """#, "sync 3"]);
    queue.assert_pushed_named("subscriber.mail");
    assert_eq!(queue.run_pending().await.unwrap(), 1);
    assert_eq!(take(&SUBSCRIBED), ["queued 3"]);
    let names: Vec<&str> = events::listeners_for::<Subscribed>()
        .iter()
        .map(|l| l.name())
        .collect();
    assert_eq!(
        names,
        [
            "dispatch::Subscriber::on_subscribed",
            "dispatch::Subscriber::also_subscribed",
            "subscriber.mail"
        ]
    );
}

// --- registry -----------------------------------------------------------------

#[event(name = "calendar.synced")]
#[derive(Serialize, Deserialize)]
pub struct CalendarSynced;

#[listener(queue = "calendar", tries = 3, backoff = ["1s", "5s"], delay = "250ms", timeout = "2m", priority = 4)]
async fn push_calendar(_: &CalendarSynced) -> Result<(), Failure> {
    Ok(())
}

#[test]
fn registry_describes_each_listener() {
    let info = events::registry()
        .listener("dispatch::push_calendar")
        .unwrap();
    assert_eq!(info.event(), "calendar.synced");
    assert_eq!(info.event_type(), Some("dispatch::CalendarSynced"));
    assert_eq!(info.priority(), 4);
    assert!(info.is_async());
    assert!(info.file().ends_with("dispatch.rs"), "{}", info.file());
    assert!(info.line() > 0);
    let Mode::Queued(options) = info.mode() else {
        panic!("push_calendar should be queued: {info:?}");
    };
    assert_eq!(options.queue(), "calendar");
    assert_eq!(options.tries(), 3);
    assert_eq!(
        options.backoff(),
        [Duration::from_secs(1), Duration::from_secs(5)]
    );
    assert_eq!(options.delay(), Duration::from_millis(250));
    assert_eq!(options.timeout(), Some(Duration::from_secs(120)));
    assert_eq!(options.backoff_after(1), Duration::from_secs(1));
    assert_eq!(options.backoff_after(7), Duration::from_secs(5));

    let event = events::registry().event("calendar.synced").unwrap();
    assert_eq!(event.type_name(), "dispatch::CalendarSynced");
    assert!(event.is_deserializable());
    assert!(events::registry().problems().is_empty());
    assert!(events::registry().validate().is_ok());
}

/// An event nothing listens to: not in the registry, and no cost there.
#[event(name = "nobody.listens")]
#[derive(Serialize, Deserialize)]
pub struct NobodyListens {
    pub id: u64,
}

#[tokio::test]
async fn the_registry_lists_the_events_listeners_name() {
    let listed: Vec<&str> = events::registry()
        .events()
        .iter()
        .map(|e| e.name())
        .collect();
    assert!(listed.contains(&"calendar.synced"), "{listed:?}");
    assert!(!listed.contains(&"nobody.listens"), "{listed:?}");
    let event = NobodyListens { id: 4 };
    assert_eq!(
        AnyEvent::new(&event).payload_json().as_deref(),
        Some(r#"{"id":4}"#)
    );
    assert_eq!(event.dispatch().await.unwrap().ran(), 0);
}

// --- queued listeners without a configured queue ---------------------------------

static FLAKY_TRIES: AtomicUsize = AtomicUsize::new(0);
static FLAKY_DONE: Mutex<Vec<u64>> = Mutex::new(Vec::new());

#[event]
#[derive(Serialize, Deserialize)]
pub struct Flaky {
    pub id: u64,
}

#[listener(queue = "default", tries = 3, backoff = "10ms")]
async fn flaky_listener(e: &Flaky) -> Result<(), Failure> {
    if FLAKY_TRIES.fetch_add(1, Ordering::SeqCst) < 2 {
        return Err(Failure("not yet"));
    }
    FLAKY_DONE.lock().unwrap().push(e.id);
    Ok(())
}

#[tokio::test]
async fn queued_listener_runs_in_process_with_retries() {
    let done = Flaky { id: 42 }.dispatch().await.unwrap();
    assert_eq!((done.ran(), done.queued()), (0, 1));
    // The job runs on this runtime, after dispatch returned.
    for _ in 0..200 {
        if !FLAKY_DONE.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(*FLAKY_DONE.lock().unwrap(), [42]);
    assert_eq!(FLAKY_TRIES.load(Ordering::SeqCst), 3);
}

#[test]
fn queued_dispatch_outside_a_runtime_is_a_clear_error() {
    // Poll the dispatch future by hand, with no Tokio runtime around.
    let error = futures_lite_block_on(Flaky { id: 1 }.dispatch()).unwrap_err();
    assert_eq!(error.listener(), Some("dispatch::flaky_listener"));
    let source = std::error::Error::source(&error).unwrap().to_string();
    assert!(source.contains("not on one"), "{source}");
}

/// A minimal executor: dispatch with only sync listeners never waits.
fn futures_lite_block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

// --- queued wildcard listeners and job errors ---------------------------------------

static QUEUED_WILD: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[event(name = "billing.charged")]
#[derive(Serialize, Deserialize)]
pub struct Charged {
    pub cents: u64,
}

#[listener(pattern = "billing.*", queue = "audit")]
fn billing_audit(e: &AnyEvent) {
    let cents = e.downcast_ref::<Charged>().map(|c| c.cents);
    assert_eq!(e.is::<Charged>(), cents.is_some());
    assert!(!e.is::<Troublesome>() && e.downcast_ref::<Troublesome>().is_none());
    QUEUED_WILD
        .lock()
        .unwrap()
        .push(format!("{} {:?}", e.name(), cents));
}

#[tokio::test]
async fn queued_wildcard_gets_the_concrete_event_back() {
    // No typed listener makes `Charged` known to the registry, so the job
    // runs with the event known by name and JSON, and `downcast_ref` rebuilds
    // it from the JSON through `Charged`'s own description.
    assert!(events::registry().event("billing.charged").is_none());
    let queue = events::fake_queue();
    Charged { cents: 990 }.dispatch().await.unwrap();
    queue.assert_pushed::<billing_audit>();
    assert_eq!(queue.run_pending().await.unwrap(), 1);
    assert_eq!(take(&QUEUED_WILD), ["billing.charged Some(990)"]);
}

#[tokio::test]
async fn bad_jobs_fail_with_the_reason_in_words() {
    let queue = events::fake_queue();
    Charged { cents: 1 }.dispatch().await.unwrap();
    let mut job = queue.pushed().remove(0);

    job.listener = "dispatch::renamed_away".into();
    let error = events::queue::run_job(&job).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "no listener named `dispatch::renamed_away` is registered (was it renamed or removed?)"
    );

    job.listener = "dispatch::billing_audit".into();
    job.payload = "{not json".into();
    let error = events::queue::run_job(&job).await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("the payload of `billing.charged` no longer deserializes for listener `dispatch::billing_audit`"),
        "{error}"
    );
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

#[event]
#[derive(Serialize, Deserialize)]
pub struct Troublesome {
    pub mode: String,
}

#[listener(queue = "default", timeout = "50ms")]
async fn troublesome(e: &Troublesome) -> Result<(), Failure> {
    match e.mode.as_str() {
        "panic" => {
            PANICS.fetch_add(1, Ordering::SeqCst);
            panic!("listener blew up")
        }
        "hang" => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        }
        "fail" => Err(Failure("said no")),
        _ => Ok(()),
    }
}

#[tokio::test]
async fn panics_hangs_and_errors_become_job_errors() {
    let queue = events::fake_queue();
    for mode in ["panic", "hang", "fail", "fine"] {
        Troublesome { mode: mode.into() }.dispatch().await.unwrap();
    }
    let jobs = queue.pushed();
    let mut outcomes = Vec::new();
    for job in &jobs {
        outcomes.push(match events::queue::run_job(job).await {
            Ok(()) => "ok".to_owned(),
            Err(e) => events::error::Chain(&e).to_string(),
        });
    }
    assert_eq!(
        outcomes,
        [
            "listener `dispatch::troublesome` panicked: listener blew up",
            "listener `dispatch::troublesome` timed out after 50ms",
            "listener `dispatch::troublesome` failed: said no",
            "ok",
        ]
    );
    assert_eq!(PANICS.load(Ordering::SeqCst), 1);
    // The queue fake stops at the first failing job and keeps the rest.
    let error = queue.run_pending().await.unwrap_err();
    assert!(error.to_string().contains("panicked"), "{error}");
}

// --- generic events --------------------------------------------------------------

static GENERIC: AtomicUsize = AtomicUsize::new(0);

#[event(name = "envelope")]
pub struct Envelope<T: Send + Sync + 'static> {
    pub body: T,
}

#[listener]
fn open_u32_envelope(e: &Envelope<u32>) {
    GENERIC.fetch_add(e.body as usize, Ordering::SeqCst);
}

#[tokio::test]
async fn generic_events_dispatch_by_concrete_type() {
    Envelope { body: 5u32 }.dispatch().await.unwrap();
    let other = Envelope { body: "text" }.dispatch().await.unwrap();
    assert_eq!(other.ran(), 0);
    assert_eq!(GENERIC.load(Ordering::SeqCst), 5);
}

// --- review findings: serialization edge cases -------------------------------------

static GENERIC_QUEUED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

#[event(name = "parcel")]
#[derive(Serialize, Deserialize)]
pub struct Parcel<T: Send + Sync + 'static> {
    pub content: T,
}

#[listener(queue = "parcels")]
fn store_parcel(e: &Parcel<u32>) {
    GENERIC_QUEUED.lock().unwrap().push(e.content);
}

#[tokio::test]
async fn a_generic_event_can_be_queued() {
    let queue = events::fake_queue();
    let done = Parcel { content: 7u32 }.dispatch().await.unwrap();
    assert_eq!(done.queued(), 1);
    assert_eq!(queue.pushed()[0].payload, r#"{"content":7}"#);
    assert_eq!(queue.run_pending().await.unwrap(), 1);
    assert_eq!(*GENERIC_QUEUED.lock().unwrap(), [7]);
}

static PLAIN_SYNC: AtomicUsize = AtomicUsize::new(0);

#[event(name = "ledger.plain")]
pub struct LedgerPlain;

#[listener]
fn plain_sync_listener(_: &LedgerPlain) {
    PLAIN_SYNC.fetch_add(1, Ordering::SeqCst);
}

#[listener(pattern = "ledger.*", queue = "audit")]
fn ledger_audit(_: &AnyEvent) {}

#[tokio::test]
async fn a_queued_wildcard_skips_events_it_cannot_store() {
    let queue = events::fake_queue();
    let done = LedgerPlain.dispatch().await.unwrap();
    assert_eq!((done.ran(), done.queued(), done.skipped()), (1, 0, 1));
    assert_eq!(PLAIN_SYNC.load(Ordering::SeqCst), 1);
    queue.assert_nothing_pushed();
}

// --- a queued wildcard listener's event that fails to serialize ------------------

/// Its `Serialize` impl always fails. No typed listener makes it known to
/// the registry; the error still names the event, not the wildcard's
/// pattern.
#[event(name = "ledger.unwritable")]
pub struct Unwritable;

impl Serialize for Unwritable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("the ledger is read-only"))
    }
}

#[tokio::test]
async fn a_serialization_failure_names_the_event() {
    // `ledger_audit` (above) takes `ledger.*` to a queue.
    let queue = events::fake_queue();
    let error = Unwritable.dispatch().await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot enqueue `ledger.unwritable` for queued listener `dispatch::ledger_audit`: \
         the ledger is read-only"
    );
    queue.assert_nothing_pushed();
}
