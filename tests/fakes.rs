//! Laravel's fakes: `events::fake()`, `fake_only`, `fake_queue()`, their
//! assertions and failure messages, and their isolation between tests.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use events::prelude::*;
use serde::{Deserialize, Serialize};

/// The panic message of `f`, which must panic.
fn panic_message(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("the assertion should have failed");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

// --- fake() ---------------------------------------------------------------------

static RAN: AtomicUsize = AtomicUsize::new(0);

#[event(name = "user.registered")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registered {
    pub user: u32,
}

#[event(name = "user.deleted")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deleted {
    pub user: u32,
}

#[event]
pub struct NotSerializable;

#[listener]
fn count_registered(_: &Registered) {
    RAN.fetch_add(1, Ordering::SeqCst);
}

#[listener(queue = "mail")]
async fn welcome_mail(_: &Registered) {}

#[tokio::test]
async fn fake_records_and_runs_nothing() {
    let fake = events::fake();
    let before = RAN.load(Ordering::SeqCst);
    let done = Registered { user: 1 }.dispatch().await.unwrap();
    Registered { user: 2 }.dispatch().await.unwrap();
    assert!(done.faked());
    assert_eq!((done.ran(), done.queued()), (0, 0));
    assert_eq!(
        RAN.load(Ordering::SeqCst),
        before,
        "a faked dispatch runs no listener"
    );

    fake.assert_dispatched::<Registered>();
    fake.assert_dispatched_times::<Registered>(2);
    fake.assert_dispatched_where::<Registered>(|e| e.user == 2);
    fake.assert_not_dispatched::<Deleted>();
    assert_eq!(
        fake.dispatched::<Registered>(),
        [Registered { user: 1 }, Registered { user: 2 }]
    );
    assert_eq!(
        fake.dispatched_names(),
        ["user.registered", "user.registered"]
    );
}

#[tokio::test]
async fn failed_assertions_say_what_was_dispatched_instead() {
    let fake = events::fake();
    let message = panic_message(|| fake.assert_dispatched::<Registered>());
    assert_eq!(
        message,
        "expected `user.registered` to be dispatched; nothing was dispatched"
    );

    Deleted { user: 7 }.dispatch().await.unwrap();
    NotSerializable.dispatch().await.unwrap();
    let message = panic_message(|| fake.assert_dispatched::<Registered>());
    assert_eq!(
        message,
        "expected `user.registered` to be dispatched; 2 dispatched instead:\n  \
         - `user.deleted` {\"user\":7}\n  - `NotSerializable`"
    );
    let message = panic_message(|| fake.assert_nothing_dispatched());
    assert!(
        message.starts_with("expected no event to be dispatched; 2 dispatched instead:"),
        "{message}"
    );
    let message = panic_message(|| fake.assert_dispatched_times::<Deleted>(3));
    assert!(
        message.starts_with(
            "expected `user.deleted` to be dispatched 3 time(s), but it was dispatched 1 time(s)"
        ),
        "{message}"
    );
    let message = panic_message(|| fake.assert_not_dispatched::<Deleted>());
    assert!(
        message.starts_with("expected `user.deleted` not to be dispatched"),
        "{message}"
    );
    let message = panic_message(|| fake.assert_dispatched_where::<Deleted>(|e| e.user == 8));
    assert!(message.contains("matching the condition"), "{message}");
}

#[tokio::test]
async fn dropping_the_fake_restores_dispatch() {
    {
        let fake = events::fake();
        Registered { user: 1 }.dispatch().await.unwrap();
        fake.assert_dispatched_times::<Registered>(1);
    }
    let queue = events::fake_queue();
    let done = Registered { user: 1 }.dispatch().await.unwrap();
    assert!(!done.faked());
    // `count_registered` and the `*` catch-all below ran; `welcome_mail` queued.
    assert_eq!((done.ran(), done.queued()), (2, 1));
    queue.assert_pushed::<welcome_mail>();
}

// --- fake_only ------------------------------------------------------------------

static ONLY_RAN: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

#[event]
pub struct FakedA;
#[event]
pub struct FakedB;
#[event]
pub struct RealC;

#[listener]
fn on_a(_: &FakedA) {
    ONLY_RAN.lock().unwrap().push("a");
}
#[listener]
fn on_b(_: &FakedB) {
    ONLY_RAN.lock().unwrap().push("b");
}
#[listener]
fn on_c(_: &RealC) {
    ONLY_RAN.lock().unwrap().push("c");
}

#[tokio::test]
async fn fake_only_fakes_just_those_events() {
    let fake = events::fake_only::<(FakedA, FakedB)>();
    FakedA.dispatch().await.unwrap();
    FakedB.dispatch().await.unwrap();
    let real = RealC.dispatch().await.unwrap();
    assert!(!real.faked());
    assert_eq!(*ONLY_RAN.lock().unwrap(), ["c"]);
    fake.assert_dispatched::<FakedA>();
    fake.assert_dispatched::<FakedB>();
    fake.assert_not_dispatched::<RealC>();
}

// --- fake_queue -------------------------------------------------------------------

static QUEUED_RAN: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[event(name = "invoice.sent")]
#[derive(Serialize, Deserialize)]
pub struct InvoiceSent {
    pub number: u32,
}

#[listener(queue = "billing", tries = 5)]
async fn archive_invoice(e: &InvoiceSent) {
    QUEUED_RAN
        .lock()
        .unwrap()
        .push(format!("archive {}", e.number));
}

#[listener(queue = "mail")]
fn mail_invoice(e: &InvoiceSent) {
    QUEUED_RAN
        .lock()
        .unwrap()
        .push(format!("mail {}", e.number));
}

#[tokio::test]
async fn fake_queue_records_jobs_and_runs_them_on_demand() {
    let queue = events::fake_queue();
    queue.assert_nothing_pushed();
    InvoiceSent { number: 10 }.dispatch().await.unwrap();
    InvoiceSent { number: 11 }.dispatch().await.unwrap();
    queue.assert_pushed::<archive_invoice>();
    queue.assert_pushed_times::<archive_invoice>(2);
    queue.assert_pushed_times::<mail_invoice>(2);
    assert!(
        QUEUED_RAN.lock().unwrap().is_empty(),
        "pushed jobs do not run by themselves"
    );

    let job = &queue.pushed()[0];
    assert_eq!(job.listener, "fakes::archive_invoice");
    assert_eq!(job.queue, "billing");
    assert_eq!(job.event, "invoice.sent");
    assert_eq!(job.payload, r#"{"number":10}"#);
    assert_eq!((job.attempt, job.max_tries), (0, 5));

    assert_eq!(queue.run_pending().await.unwrap(), 4);
    assert_eq!(
        *QUEUED_RAN.lock().unwrap(),
        ["archive 10", "mail 10", "archive 11", "mail 11"]
    );
    assert_eq!(queue.run_pending().await.unwrap(), 0, "each job runs once");

    let message = panic_message(|| queue.assert_nothing_pushed());
    assert!(
        message.starts_with("expected no job to be pushed; 4 pushed instead:\n  - `fakes::archive_invoice` on queue `billing`"),
        "{message}"
    );
    let message = panic_message(|| queue.assert_pushed_times::<archive_invoice>(1));
    assert!(
        message
            .starts_with("expected 1 job(s) for `fakes::archive_invoice` to be pushed, but 2 were"),
        "{message}"
    );
}

// --- isolation --------------------------------------------------------------------------

static SHARED_RAN: AtomicUsize = AtomicUsize::new(0);

#[event]
#[derive(Clone)]
pub struct Shared {
    pub from: usize,
}

#[listener]
fn shared_listener(_: &Shared) {
    SHARED_RAN.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn parallel_fakes_never_see_each_other() {
    const THREADS: usize = 8;
    const EACH: usize = 50;
    let barrier = std::sync::Barrier::new(THREADS + 1);
    std::thread::scope(|scope| {
        for from in 0..THREADS {
            let barrier = &barrier;
            scope.spawn(move || {
                let fake = events::fake();
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                barrier.wait();
                for _ in 0..EACH {
                    runtime.block_on(Shared { from }.dispatch()).unwrap();
                }
                let seen = fake.dispatched::<Shared>();
                assert_eq!(seen.len(), EACH);
                assert!(
                    seen.iter().all(|e| e.from == from),
                    "a fake saw another thread's dispatch"
                );
            });
        }
        // A thread without a fake dispatches for real meanwhile.
        let barrier = &barrier;
        scope.spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            barrier.wait();
            for _ in 0..EACH {
                let done = runtime.block_on(Shared { from: 99 }.dispatch()).unwrap();
                assert!(!done.faked());
            }
        });
    });
    assert!(SHARED_RAN.load(Ordering::SeqCst) >= EACH);
}

#[test]
fn a_test_with_its_own_multi_thread_runtime_sees_its_fake() {
    let fake = events::fake();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        Registered { user: 5 }.dispatch().await.unwrap();
    });
    fake.assert_dispatched_where::<Registered>(|e| e.user == 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_thread_tokio_test_sees_its_fake() {
    let fake = events::fake();
    Deleted { user: 3 }.dispatch().await.unwrap();
    fake.assert_dispatched_times::<Deleted>(1);
}

// --- wildcard in a faked world -------------------------------------------------------

static CATCH_ALL: AtomicUsize = AtomicUsize::new(0);

#[event(name = "audit.ping")]
pub struct AuditPing;

#[listener(pattern = "*")]
fn catch_all(_: &AnyEvent) {
    CATCH_ALL.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test]
async fn catch_all_wildcard_runs_unless_faked() {
    // `*` hears every event of this binary; the counter only proves it ran at
    // all, the dispatch results say what ran for this dispatch.
    let real = AuditPing.dispatch().await.unwrap();
    assert_eq!(real.ran(), 1);
    assert!(CATCH_ALL.load(Ordering::SeqCst) >= 1);
    let fake = events::fake_only::<(AuditPing,)>();
    let faked = AuditPing.dispatch().await.unwrap();
    assert!(faked.faked());
    assert_eq!(faked.ran(), 0);
    fake.assert_dispatched_times::<AuditPing>(1);
}

// --- fakes dropped in any order ------------------------------------------------------

static FIXTURE_RAN: AtomicUsize = AtomicUsize::new(0);

#[event(name = "fixture.ping")]
#[derive(Serialize, Deserialize)]
pub struct FixturePing;

#[listener]
fn fixture_sync(_: &FixturePing) {
    FIXTURE_RAN.fetch_add(1, Ordering::SeqCst);
}

#[listener(queue = "fixture")]
fn fixture_queued(_: &FixturePing) {}

/// A test fixture: fields drop in declaration order, the fake first.
struct Harness {
    events: events::EventFake,
    queue: events::QueueFake,
}

#[tokio::test]
async fn fakes_dropped_in_creation_order_leave_nothing_behind() {
    {
        let harness = Harness {
            events: events::fake(),
            queue: events::fake_queue(),
        };
        FixturePing.dispatch().await.unwrap();
        harness.events.assert_dispatched::<FixturePing>();
        harness.queue.assert_nothing_pushed();
    }
    // Neither fake may come back with a later one.
    let queue = events::fake_queue();
    let done = FixturePing.dispatch().await.unwrap();
    assert!(!done.faked(), "a dropped event fake came back");
    assert_eq!(FIXTURE_RAN.load(Ordering::SeqCst), 1);
    queue.assert_pushed::<fixture_queued>();

    // Dropping the older of two fakes keeps the newer one working.
    let events_fake = events::fake();
    let second_queue = events::fake_queue();
    drop(queue);
    drop(events_fake);
    FixturePing.dispatch().await.unwrap();
    assert_eq!(
        FIXTURE_RAN.load(Ordering::SeqCst),
        2,
        "the event fake is gone"
    );
    second_queue.assert_pushed_times::<fixture_queued>(1);
}

// --- tasks the test spawns -----------------------------------------------------------

static SPAWNED_RAN: AtomicUsize = AtomicUsize::new(0);

#[event(name = "site.created")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteCreated {
    pub domain: String,
}

#[listener]
fn provision_site(_: &SiteCreated) {
    SPAWNED_RAN.fetch_add(1, Ordering::SeqCst);
}

#[listener(queue = "sites")]
async fn issue_certificate(_: &SiteCreated) {
    SPAWNED_RAN.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fake_sees_dispatches_from_tasks_the_test_spawns() {
    let fake = events::fake();
    let done = tokio::spawn(async {
        SiteCreated {
            domain: "spawned.example".into(),
        }
        .dispatch()
        .await
    })
    .await
    .unwrap()
    .unwrap();
    assert!(done.faked(), "the spawned dispatch was recorded");
    fake.assert_dispatched_where::<SiteCreated>(|e| e.domain == "spawned.example");
    assert_eq!(
        SPAWNED_RAN.load(Ordering::SeqCst),
        0,
        "no real listener ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_fake_records_jobs_from_tasks_the_test_spawns() {
    let queue = events::fake_queue();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            tokio::spawn(async move {
                SiteCreated {
                    domain: format!("q{i}.example"),
                }
                .dispatch()
                .await
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap().unwrap();
    }
    queue.assert_pushed_times::<issue_certificate>(4);
    queue.assert_pushed_where::<issue_certificate>(|e: &SiteCreated| e.domain == "q3.example");
}

#[test]
fn parallel_multi_thread_runtimes_never_see_each_others_fakes() {
    std::thread::scope(|scope| {
        for n in 0..4 {
            scope.spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let fake = events::fake_only::<(Shared,)>();
                    let mut tasks = Vec::new();
                    for _ in 0..20 {
                        tasks.push(tokio::spawn(
                            async move { Shared { from: n }.dispatch().await },
                        ));
                    }
                    for task in tasks {
                        assert!(task.await.unwrap().unwrap().faked());
                    }
                    let seen = fake.dispatched::<Shared>();
                    assert_eq!(seen.len(), 20);
                    assert!(
                        seen.iter().all(|e| e.from == n),
                        "a fake saw another runtime's dispatch"
                    );
                });
            });
        }
    });
}

#[test]
fn a_scoped_future_takes_its_fake_to_another_thread() {
    let fake = events::fake();
    let dispatch = fake.scope(async {
        SiteCreated {
            domain: "thread.example".into(),
        }
        .dispatch()
        .await
    });
    let done = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(dispatch)
    })
    .join()
    .unwrap()
    .unwrap();
    assert!(done.faked());
    fake.assert_dispatched_where::<SiteCreated>(|e| e.domain == "thread.example");
}

#[tokio::test]
async fn a_blocking_dispatch_on_a_current_thread_runtime_is_faked_too() {
    let fake = events::fake();
    let done = SiteCreated {
        domain: "blocking.example".into(),
    }
    .dispatch()
    .blocking()
    .unwrap();
    assert!(done.faked());
    fake.assert_dispatched_where::<SiteCreated>(|e| e.domain == "blocking.example");
}

// --- what users asked of the testing API ---------------------------------------------

#[event(name = "order.placed")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub id: u32,
}

#[listener(pattern = "order.*")]
fn audit_orders(_: &AnyEvent) {}

#[derive(Default)]
pub struct OrderSubscriber;

#[subscriber]
impl OrderSubscriber {
    #[listen]
    fn on_placed(&self, _: &OrderPlaced) {}
}

#[test]
fn assert_listening_matches_a_wildcards_pattern_against_the_event_name() {
    events::assert_listening::<OrderPlaced, audit_orders>();
    let message = panic_message(|| events::assert_listening::<Registered, audit_orders>());
    assert_eq!(
        message,
        "expected `fakes::audit_orders` to listen to `user.registered`, but its pattern `order.*` does not match that name"
    );
}

#[test]
fn assert_listening_named_checks_subscriber_methods() {
    events::assert_listening_named::<OrderPlaced>("fakes::OrderSubscriber::on_placed");
    events::assert_listening_named::<OrderPlaced>("OrderSubscriber::on_placed");
    events::assert_listening_named::<OrderPlaced>("audit_orders");
    let message = panic_message(|| {
        events::assert_listening_named::<Registered>("OrderSubscriber::on_placed")
    });
    assert_eq!(
        message,
        "expected `fakes::OrderSubscriber::on_placed` to listen to `user.registered`, but it listens to `order.placed`"
    );
    let message =
        panic_message(|| events::assert_listening_named::<OrderPlaced>("OrderSubscriber::gone"));
    assert!(
        message.contains("no listener of that name is registered"),
        "{message}"
    );
}

#[tokio::test]
async fn assert_pushed_where_reads_the_jobs_event_back() {
    let queue = events::fake_queue();
    InvoiceSent { number: 41 }.dispatch().await.unwrap();
    queue.assert_pushed_where::<archive_invoice>(|e: &InvoiceSent| e.number == 41);
    queue.assert_pushed_where::<mail_invoice>(|e| e.number == 41);
    let message = panic_message(|| {
        queue.assert_pushed_where::<archive_invoice>(|e: &InvoiceSent| e.number == 42)
    });
    assert!(
        message.starts_with(
            "expected a job for `fakes::archive_invoice` to be pushed matching the condition; 2 pushed instead:"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn fake_except_fakes_every_event_but_those() {
    let before = FAKED_EXCEPT_RAN.load(Ordering::SeqCst);
    let fake = events::fake_except::<(KeptReal,)>();
    let real = KeptReal.dispatch().await.unwrap();
    let faked = Deleted { user: 8 }.dispatch().await.unwrap();
    assert!(!real.faked());
    assert_eq!(FAKED_EXCEPT_RAN.load(Ordering::SeqCst), before + 1);
    assert!(faked.faked());
    fake.assert_dispatched_where::<Deleted>(|e| e.user == 8);
    fake.assert_not_dispatched::<KeptReal>();
}

static FAKED_EXCEPT_RAN: AtomicUsize = AtomicUsize::new(0);

#[event(name = "kept.real")]
pub struct KeptReal;

#[listener]
fn kept_real_listener(_: &KeptReal) {
    FAKED_EXCEPT_RAN.fetch_add(1, Ordering::SeqCst);
}
