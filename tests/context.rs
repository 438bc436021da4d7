//! What a listener takes besides its event — `&Context`, `Context`,
//! `State<T>`, extractors of the application's own — the metadata that
//! travels with a dispatch into its jobs, the start-up check of state, what
//! a queued listener may ask of its job, and observers.
//!
//! Every dispatcher here is built with all the state this binary's sync
//! listeners take (`with_state`): a dispatcher checks every listener it runs
//! when it is built.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use events::observe::{DispatchRecord, ListenerOutcome, ListenerRun, Observer};
use events::prelude::*;
use events::queue::{Job, Queue, QueueError};
use events::{
    Context, Dispatcher, DispatcherBuilder, ExtractError, FromContext, Metadata, RegistryError,
    State, Worker,
};
use serde::{Deserialize, Serialize};

/// A stand-in for a database pool: what listeners write to.
#[derive(Clone, Default)]
struct Pool(Arc<Mutex<Vec<String>>>);

impl Pool {
    fn rows(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn insert(&self, row: String) {
        self.0.lock().unwrap().push(row);
    }
}

/// A second state type, to show several at once.
#[derive(Clone)]
struct Greeting(&'static str);

fn with_state(pool: &Pool) -> DispatcherBuilder {
    Dispatcher::builder()
        .state(pool.clone())
        .state(Greeting("hello"))
}

// --- sync and async listeners with extractors ---------------------------------

#[event(name = "account.opened")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountOpened {
    pub account: u64,
}

#[listener(priority = 10)]
fn open_row(e: &AccountOpened, ctx: &Context, State(pool): State<Pool>) {
    let actor = ctx.metadata().get("actor_id").unwrap_or("-");
    pool.insert(format!(
        "open {} by {actor} id {}",
        e.account,
        ctx.event_id()
    ));
}

#[listener(priority = 5)]
async fn greet(
    e: &AccountOpened,
    State(greeting): State<Greeting>,
    ctx: Context,
    State(pool): State<Pool>,
) -> Result<(), std::io::Error> {
    tokio::task::yield_now().await;
    pool.insert(format!(
        "{} {} id {}",
        greeting.0,
        e.account,
        ctx.event_id()
    ));
    Ok(())
}

#[tokio::test]
async fn listeners_take_context_and_several_states() {
    let pool = Pool::default();
    let dispatcher = with_state(&pool).build().unwrap();
    let done = dispatcher
        .dispatch(AccountOpened { account: 7 })
        .with("actor_id", "42")
        .await
        .unwrap();
    assert_eq!(done.ran(), 2);
    let rows = pool.rows();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (first, second) = (&rows[0], &rows[1]);
    assert!(first.starts_with("open 7 by 42 id "), "{first}");
    assert!(second.starts_with("hello 7 id "), "{second}");
    // One dispatch, one event id for every listener.
    let id = |row: &str| row.rsplit(' ').next().unwrap().to_owned();
    assert_eq!(id(first), id(second));
    assert_eq!(id(first).len(), 26);

    // Another dispatch gets another id.
    dispatcher
        .dispatch(AccountOpened { account: 8 })
        .await
        .unwrap();
    let rows = pool.rows();
    assert_ne!(id(&rows[2]), id(first));
    assert!(rows[2].starts_with("open 8 by - id "), "{}", rows[2]);
}

#[tokio::test]
async fn a_provider_fills_metadata_and_the_dispatch_wins() {
    let pool = Pool::default();
    let dispatcher = with_state(&pool)
        .metadata(|event, m| {
            m.insert_default("actor_id", "system");
            m.insert_default("tenant", format!("for {event}"));
        })
        .build()
        .unwrap();
    dispatcher
        .dispatch(AccountOpened { account: 1 })
        .await
        .unwrap();
    dispatcher
        .dispatch(AccountOpened { account: 2 })
        .with("actor_id", "alice")
        .await
        .unwrap();
    let rows = pool.rows();
    assert!(rows[0].starts_with("open 1 by system "), "{rows:?}");
    assert!(rows[2].starts_with("open 2 by alice "), "{rows:?}");
}

#[tokio::test]
async fn a_missing_state_is_a_start_up_error_in_words() {
    let error = Dispatcher::builder()
        .state(Greeting("hi"))
        .build()
        .unwrap_err();
    let RegistryError::MissingState {
        listener,
        type_name,
        runner,
        ..
    } = &error
    else {
        panic!("expected a missing state, got {error}");
    };
    assert!(type_name.ends_with("Pool"), "{type_name}");
    assert_eq!(*runner, "Dispatcher::builder()");
    assert!(listener.starts_with("context::"), "{listener}");
    let text = error.to_string();
    assert!(text.contains("takes `State<context::Pool>`"), "{text}");
    assert!(
        text.contains("add `.state(value)` to `Dispatcher::builder()`"),
        "{text}"
    );
    assert!(text.contains("tests/context.rs"), "{text}");
}

// --- an extractor of the application's own --------------------------------------

struct Actor(String);

impl FromContext for Actor {
    fn from_context(ctx: &Context) -> Result<Self, ExtractError> {
        ctx.metadata()
            .get("actor_id")
            .map(|id| Actor(id.to_owned()))
            .ok_or_else(|| ExtractError::Rejected("the event has no `actor_id`".into()))
    }
}

#[event(name = "account.closed")]
pub struct AccountClosed {
    pub account: u64,
}

#[listener]
fn close_row(e: &AccountClosed, Actor(actor): Actor, State(pool): State<Pool>) {
    pool.insert(format!("close {} by {actor}", e.account));
}

#[tokio::test]
async fn an_own_extractor_reads_metadata_and_its_refusal_fails_the_dispatch() {
    let pool = Pool::default();
    let dispatcher = with_state(&pool).build().unwrap();
    dispatcher
        .dispatch(AccountClosed { account: 3 })
        .with("actor_id", "bob")
        .await
        .unwrap();
    assert_eq!(pool.rows(), ["close 3 by bob"]);

    let error = dispatcher
        .dispatch(AccountClosed { account: 4 })
        .await
        .unwrap_err();
    assert_eq!(error.listener(), Some("context::close_row"));
    let cause = std::error::Error::source(&error).unwrap().to_string();
    assert_eq!(cause, "the event has no `actor_id`");
    assert_eq!(pool.rows().len(), 1);
}

// --- wildcard listeners and subscribers ---------------------------------------------

#[event(name = "ledger.posted")]
pub struct LedgerPosted;

static WILDCARD: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[listener(pattern = "ledger.*")]
fn ledger_audit(e: &AnyEvent, metadata: Metadata) {
    WILDCARD.lock().unwrap().push(format!(
        "{} tenant {}",
        e.name(),
        metadata.get("tenant").unwrap_or("-")
    ));
}

/// A subscriber without `Default`: its listeners take no `self`.
pub struct LedgerSubscriber {
    _not_default: u8,
}

#[subscriber]
impl LedgerSubscriber {
    #[listen]
    fn posted(_: &LedgerPosted, State(pool): State<Pool>, ctx: &Context) {
        pool.insert(format!(
            "posted for {}",
            ctx.metadata().get("tenant").unwrap_or("-")
        ));
    }
}

#[tokio::test]
async fn wildcards_and_subscribers_without_default_take_extractors() {
    let pool = Pool::default();
    let dispatcher = with_state(&pool).build().unwrap();
    let done = dispatcher
        .dispatch(LedgerPosted)
        .with("tenant", "acme")
        .await
        .unwrap();
    assert_eq!(done.ran(), 2);
    assert_eq!(pool.rows(), ["posted for acme"]);
    assert!(
        WILDCARD
            .lock()
            .unwrap()
            .contains(&"ledger.posted tenant acme".to_owned())
    );
}

// --- queued listeners: the job, its metadata, release and fail ------------------------

#[event(name = "invoice.due")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvoiceDue {
    pub invoice: u64,
    /// What the listener does on each try: "ok", "release", "fail", "error",
    /// "retry".
    pub plan: Vec<String>,
}

static TRIES: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[listener(queue = "context-invoices", tries = 3)]
async fn charge(
    e: &InvoiceDue,
    ctx: Context,
    State(pool): State<Pool>,
) -> Result<(), std::io::Error> {
    let job = ctx.job().expect("a queued listener has a job");
    let seen = TRIES
        .lock()
        .unwrap()
        .iter()
        .filter(|t| t.starts_with(&format!("{} ", e.invoice)))
        .count();
    TRIES.lock().unwrap().push(format!(
        "{} attempt {}/{} on {} actor {} last {}",
        e.invoice,
        job.attempt(),
        job.max_tries(),
        job.queue(),
        ctx.metadata().get("actor_id").unwrap_or("-"),
        job.is_last_try(),
    ));
    match e.plan.get(seen).map(String::as_str) {
        Some("release") => {
            job.release_after(Duration::from_millis(20));
            Ok(())
        }
        Some("fail") => {
            job.fail_without_retry("card declined");
            Err(std::io::Error::other("declined by the bank"))
        }
        Some("error") => Err(std::io::Error::other("gateway down")),
        Some("retry") => {
            job.retry_after(Duration::from_millis(30), "the gateway said: later");
            Ok(())
        }
        _ => {
            pool.insert(format!("charged {} event {}", e.invoice, ctx.event_id()));
            Ok(())
        }
    }
}

fn tries_of(invoice: u64) -> Vec<String> {
    TRIES
        .lock()
        .unwrap()
        .iter()
        .filter(|t| t.starts_with(&format!("{invoice} ")))
        .cloned()
        .collect()
}

fn worker(queue: &Queue, pool: &Pool) -> Worker {
    Worker::new(queue.clone())
        .queues(["context-invoices"])
        .state(pool.clone())
        .poll_interval(Duration::from_millis(5))
}

fn plan(steps: &[&str]) -> Vec<String> {
    steps.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn a_queued_listener_sees_its_job_and_the_dispatch_metadata() {
    let queue = Queue::memory();
    let pool = Pool::default();
    let dispatcher = with_state(&pool).queue(queue.clone()).build().unwrap();
    let done = dispatcher
        .dispatch(InvoiceDue {
            invoice: 100,
            plan: plan(&["error", "ok"]),
        })
        .with("actor_id", "carol")
        .await
        .unwrap();
    assert_eq!(done.queued(), 1);
    let report = worker(&queue, &pool).run_until_empty().await.unwrap();
    assert_eq!((report.succeeded, report.retried), (1, 1));
    assert_eq!(
        tries_of(100),
        [
            "100 attempt 1/3 on context-invoices actor carol last false",
            "100 attempt 2/3 on context-invoices actor carol last false",
        ]
    );
    assert_eq!(pool.rows().len(), 1);
}

#[tokio::test]
async fn release_after_runs_again_later_without_counting_the_try() {
    let queue = Queue::memory();
    let pool = Pool::default();
    let dispatcher = with_state(&pool).queue(queue.clone()).build().unwrap();
    dispatcher
        .dispatch(InvoiceDue {
            invoice: 200,
            plan: plan(&["release", "release", "ok"]),
        })
        .await
        .unwrap();
    let report = worker(&queue, &pool).run_until_empty().await.unwrap();
    assert_eq!(
        (report.succeeded, report.released, report.retried),
        (1, 2, 0)
    );
    let attempts: Vec<String> = tries_of(200)
        .iter()
        .map(|t| t.split(' ').nth(2).unwrap().to_owned())
        .collect();
    assert_eq!(attempts, ["1/3", "1/3", "1/3"]);
    assert!(queue.failed().await.unwrap().is_empty());
}

#[tokio::test]
async fn retry_after_counts_the_try_and_waits_the_delay_given() {
    let queue = Queue::memory();
    let pool = Pool::default();
    let dispatcher = with_state(&pool).queue(queue.clone()).build().unwrap();
    dispatcher
        .dispatch(InvoiceDue {
            invoice: 250,
            plan: plan(&["retry", "ok"]),
        })
        .await
        .unwrap();
    let report = worker(&queue, &pool).run_until_empty().await.unwrap();
    assert_eq!((report.succeeded, report.retried), (1, 1));
    let attempts: Vec<String> = tries_of(250)
        .iter()
        .map(|t| t.split(' ').nth(2).unwrap().to_owned())
        .collect();
    assert_eq!(attempts, ["1/3", "2/3"], "the retried try counted");

    // On the last try, it goes to the failed store with the reason.
    dispatcher
        .dispatch(InvoiceDue {
            invoice: 251,
            plan: plan(&["retry", "retry", "retry", "ok"]),
        })
        .await
        .unwrap();
    let report = worker(&queue, &pool).run_until_empty().await.unwrap();
    assert_eq!((report.failed, report.retried), (1, 2));
    let failed = queue.failed().await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].error, "the gateway said: later");
    assert_eq!(tries_of(251).len(), 3);
}

#[tokio::test]
async fn fail_without_retry_goes_straight_to_the_failed_store() {
    let queue = Queue::memory();
    let pool = Pool::default();
    let dispatcher = with_state(&pool).queue(queue.clone()).build().unwrap();
    dispatcher
        .dispatch(InvoiceDue {
            invoice: 300,
            plan: plan(&["fail", "ok"]),
        })
        .await
        .unwrap();
    let report = worker(&queue, &pool).run_until_empty().await.unwrap();
    assert_eq!((report.failed, report.retried, report.succeeded), (1, 0, 0));
    assert_eq!(tries_of(300).len(), 1);
    let failed = queue.failed().await.unwrap();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].error.starts_with("card declined"),
        "{}",
        failed[0].error
    );
    assert!(
        failed[0].error.contains("declined by the bank"),
        "{}",
        failed[0].error
    );
}

#[tokio::test]
async fn a_worker_without_the_state_its_listeners_need_does_not_start() {
    let queue = Queue::memory();
    let pool = Pool::default();
    let dispatcher = with_state(&pool).queue(queue.clone()).build().unwrap();
    dispatcher
        .dispatch(InvoiceDue {
            invoice: 400,
            plan: plan(&["ok"]),
        })
        .await
        .unwrap();
    let error = Worker::new(queue.clone())
        .queues(["context-invoices"])
        .run_until_empty()
        .await
        .unwrap_err();
    let QueueError::Startup(RegistryError::MissingState {
        listener, runner, ..
    }) = &error
    else {
        panic!("expected a start-up error, got {error}");
    };
    assert_eq!(*listener, "context::charge");
    assert_eq!(*runner, "Worker::new(..)");
    let text = events::error::Chain(&error).to_string();
    assert!(text.contains("Worker::new(..)"), "{text}");
    // Nothing was claimed: the job still waits.
    assert_eq!(queue.size("context-invoices").await.unwrap(), 1);
    assert!(tries_of(400).is_empty());
}

// --- observers -------------------------------------------------------------------------

#[derive(Default)]
struct Seen(Mutex<Vec<String>>);

impl Seen {
    fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl Observer for Seen {
    fn enrich(&self, _event: &str, metadata: &mut Metadata) {
        metadata.insert_default("observed", "yes");
    }
    fn dispatched(&self, record: &DispatchRecord<'_>) {
        let outcome = match record.result {
            Ok(done) => format!("ran {} queued {}", done.ran(), done.queued()),
            Err(error) => format!("failed: {error}"),
        };
        self.push(format!(
            "dispatched {} observed={} {outcome}",
            record.event,
            record
                .envelope
                .and_then(|e| e.metadata.get("observed"))
                .unwrap_or("-")
        ));
    }
    fn listener_ran(&self, run: &ListenerRun<'_>) {
        let outcome = match run.outcome {
            ListenerOutcome::Continued => "continued".to_owned(),
            ListenerOutcome::Stopped => "stopped".to_owned(),
            ListenerOutcome::Failed(error) => format!("failed: {error}"),
            _ => "other".to_owned(),
        };
        self.push(format!("ran {} {outcome}", run.listener));
    }
    fn job_enqueued(&self, job: &Job) {
        self.push(format!("enqueued {}", job.listener));
    }
    fn job_claimed(&self, job: &Job) {
        self.push(format!("claimed {} try {}", job.listener, job.attempt));
    }
    fn job_succeeded(&self, job: &Job, _took: Duration) {
        self.push(format!("succeeded {}", job.listener));
    }
    fn job_retried(&self, job: &Job, error: &str, _delay: Duration) {
        self.push(format!("retried {}: {error}", job.listener));
    }
    fn job_released(&self, job: &Job, delay: Duration) {
        self.push(format!("released {} for {delay:?}", job.listener));
    }
    fn job_failed(&self, job: &Job, error: &str) {
        self.push(format!("failed {}: {error}", job.listener));
    }
}

#[tokio::test]
async fn observers_see_dispatches_listeners_and_each_jobs_life() {
    let queue = Queue::memory();
    let pool = Pool::default();
    let seen = Arc::new(Seen::default());
    let dispatcher = with_state(&pool)
        .queue(queue.clone())
        .observe(seen.clone())
        .build()
        .unwrap();
    dispatcher
        .dispatch(AccountOpened { account: 9 })
        .await
        .unwrap();
    dispatcher
        .dispatch(AccountClosed { account: 9 })
        .await
        .unwrap_err();
    dispatcher
        .dispatch(InvoiceDue {
            invoice: 500,
            plan: plan(&["error", "release", "fail"]),
        })
        .await
        .unwrap();
    worker(&queue, &pool)
        .observe(seen.clone())
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!(
        seen.lines(),
        [
            "ran context::open_row continued",
            "ran context::greet continued",
            "dispatched account.opened observed=yes ran 2 queued 0",
            "ran context::close_row failed: the event has no `actor_id`",
            "dispatched account.closed observed=yes failed: listener `context::close_row` failed while handling `account.closed`",
            "enqueued context::charge",
            "dispatched invoice.due observed=yes ran 0 queued 1",
            "claimed context::charge try 1",
            "retried context::charge: listener `context::charge` failed: gateway down",
            "claimed context::charge try 2",
            "released context::charge for 20ms",
            "claimed context::charge try 2",
            "failed context::charge: card declined (listener `context::charge` failed: declined by the bank)",
        ]
    );
    // The observer's metadata reached the job.
    assert!(
        tries_of(500).iter().all(|t| t.contains("attempt")),
        "{:?}",
        tries_of(500)
    );
}

// --- counting: nothing observed without an observer --------------------------------------

static PLAIN_RUNS: AtomicU32 = AtomicU32::new(0);

#[event]
pub struct Plain;

#[listener]
fn plain_listener(_: &Plain) {
    PLAIN_RUNS.fetch_add(1, Ordering::Relaxed);
}

#[tokio::test]
async fn a_plain_listener_still_runs_with_observers_and_state_around() {
    let pool = Pool::default();
    let seen = Arc::new(Seen::default());
    let dispatcher = with_state(&pool).observe(seen.clone()).build().unwrap();
    let before = PLAIN_RUNS.load(Ordering::Relaxed);
    dispatcher.dispatch(Plain).await.unwrap();
    assert_eq!(PLAIN_RUNS.load(Ordering::Relaxed), before + 1);
    assert_eq!(
        seen.lines(),
        [
            "ran context::plain_listener continued",
            "dispatched Plain observed=yes ran 1 queued 0",
        ]
    );
}

// --- the operator's `work` with the application's state ----------------------------------

#[tokio::test]
async fn cli_work_gets_the_state_its_listeners_need() {
    let queue = Queue::memory();
    let pool = Pool::default();
    let dispatcher = with_state(&pool).queue(queue.clone()).build().unwrap();
    dispatcher
        .dispatch(InvoiceDue {
            invoice: 600,
            plan: plan(&["ok"]),
        })
        .await
        .unwrap();
    let work = [
        "app",
        "work",
        "--queue",
        "context-invoices",
        "--stop-when-empty",
    ];

    // Without the state: the worker does not start, and says why.
    let mut out = Vec::new();
    let error = events::cli::Commands::new()
        .queue(queue.clone())
        .run_to(work, &mut out)
        .await
        .unwrap_err();
    let text = events::error::Chain(&error).to_string();
    assert!(text.contains("takes `State<context::Pool>`"), "{text}");
    assert_eq!(queue.size("context-invoices").await.unwrap(), 1);

    // With it, the job runs.
    let mut out = Vec::new();
    events::cli::Commands::new()
        .queue(queue.clone())
        .state(pool.clone())
        .run_to(work, &mut out)
        .await
        .unwrap();
    let printed = String::from_utf8(out).unwrap();
    assert!(printed.contains("1 succeeded"), "{printed}");
    assert!(
        pool.rows()
            .iter()
            .any(|row| row.starts_with("charged 600 "))
    );
}

#[tokio::test]
async fn without_an_installed_dispatcher_state_listeners_say_what_to_do() {
    // This binary installs no dispatcher: the default one has no state.
    let error = AccountOpened { account: 1 }.dispatch().await.unwrap_err();
    let events::DispatchError::NotInstalled { type_name, .. } = &error else {
        panic!("expected NotInstalled, got {error}");
    };
    assert!(type_name.starts_with("context::"), "{type_name}");
    let text = error.to_string();
    assert!(text.contains("Dispatcher::builder().state(..)"), "{text}");
    assert!(text.contains("events::install"), "{text}");
}

#[tokio::test]
async fn the_fake_queue_honours_release_and_fail_without_retry() {
    let pool = Pool::default();
    let dispatcher = with_state(&pool).build().unwrap();
    let queue = events::fake_queue();
    dispatcher
        .dispatch(InvoiceDue {
            invoice: 700,
            plan: plan(&["release", "ok"]),
        })
        .await
        .unwrap();
    // Released: it ran, and waits for the next call, its try not counted.
    assert_eq!(queue.run_pending().await.unwrap(), 1);
    assert_eq!(queue.run_pending().await.unwrap(), 1);
    assert_eq!(queue.run_pending().await.unwrap(), 0);
    let attempts: Vec<String> = tries_of(700)
        .iter()
        .map(|t| t.split(' ').nth(2).unwrap().to_owned())
        .collect();
    assert_eq!(attempts, ["1/3", "1/3"]);
    assert!(
        pool.rows()
            .iter()
            .any(|row| row.starts_with("charged 700 "))
    );

    dispatcher
        .dispatch(InvoiceDue {
            invoice: 701,
            plan: plan(&["fail"]),
        })
        .await
        .unwrap();
    let error = queue.run_pending().await.unwrap_err();
    assert_eq!(
        events::error::Chain(&error).to_string(),
        "listener `context::charge` failed: card declined (listener `context::charge` failed: declined by the bank)"
    );
    assert_eq!(queue.run_pending().await.unwrap(), 0, "it failed for good");
}
