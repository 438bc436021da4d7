//! What the configuration changes, through explicit dispatchers and workers
//! (the default dispatcher reads the process environment: see
//! `tests/env_config.rs`): retry defaults for queued listeners that declare
//! no `tries` / `backoff` — at enqueue, in the in-process runner, in the
//! worker — and the kill switch. Each test has its own event type.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use events::prelude::*;
use events::queue::Queue;
use events::{Config, Dispatcher, RetryDefaults, Worker};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
#[error("not yet")]
pub struct NotYet;

fn defaults(tries: u32, backoff_ms: &[u64]) -> RetryDefaults {
    RetryDefaults::new(
        tries,
        backoff_ms.iter().map(|ms| Duration::from_millis(*ms)),
    )
}

/// Waits (up to 5 s) until `done` holds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// --- tries fixed at enqueue -------------------------------------------------

#[event(name = "cfg.enqueued")]
#[derive(Serialize, Deserialize)]
pub struct Enqueued;

#[listener(queue = "cfg")]
async fn undeclared(_: &Enqueued) {}

#[listener(queue = "cfg", tries = 2)]
async fn declares_two(_: &Enqueued) {}

#[tokio::test]
async fn a_job_gets_the_default_tries_unless_its_listener_declares_some() {
    let queue = events::fake_queue();
    let dispatcher = Dispatcher::builder()
        .retry_defaults(defaults(4, &[]))
        .build()
        .unwrap();
    dispatcher.dispatch(Enqueued).await.unwrap();
    let mut tries: Vec<(String, u32)> = queue
        .pushed()
        .into_iter()
        .map(|j| (j.listener, j.max_tries))
        .collect();
    tries.sort();
    assert_eq!(
        tries,
        [
            ("config::declares_two".to_owned(), 2),
            ("config::undeclared".to_owned(), 4)
        ]
    );
}

#[tokio::test]
async fn without_defaults_a_job_is_tried_once() {
    let queue = events::fake_queue();
    Dispatcher::builder()
        .build()
        .unwrap()
        .dispatch(Enqueued)
        .await
        .unwrap();
    let undeclared = queue
        .pushed()
        .into_iter()
        .find(|j| j.listener == "config::undeclared")
        .unwrap();
    assert_eq!(undeclared.max_tries, 1);
}

#[tokio::test]
async fn the_config_carries_the_defaults_into_a_stored_job() {
    let config = Config::from_vars([("EVENTS_RETRY_ATTEMPTS", "5")]).unwrap();
    let queue = Queue::memory();
    Dispatcher::builder()
        .config(&config)
        .queue(queue.clone())
        .build()
        .unwrap()
        .dispatch(Enqueued)
        .await
        .unwrap();
    let mut jobs = queue
        .backend()
        .claim(&["cfg".to_owned()], 10, Duration::from_secs(30))
        .await
        .unwrap();
    jobs.sort_by(|a, b| a.listener.cmp(&b.listener));
    let tries: Vec<u32> = jobs.iter().map(|j| j.max_tries).collect();
    assert_eq!(tries, [2, 5], "declares_two, then undeclared");
}

// --- the in-process runner ----------------------------------------------------

#[event(name = "cfg.in_process")]
#[derive(Serialize, Deserialize)]
pub struct InProcess;

static IN_PROCESS_RUNS: Mutex<Vec<Instant>> = Mutex::new(Vec::new());

/// Fails until its third run.
#[listener(queue = "cfg-in-process")]
async fn flaky_in_process(_: &InProcess) -> Result<(), NotYet> {
    let mut runs = IN_PROCESS_RUNS.lock().unwrap();
    runs.push(Instant::now());
    if runs.len() < 3 { Err(NotYet) } else { Ok(()) }
}

#[tokio::test]
async fn the_in_process_runner_retries_with_the_default_tries_and_backoff() {
    let dispatcher = Dispatcher::builder()
        .retry_defaults(defaults(3, &[60, 120]))
        .build()
        .unwrap();
    dispatcher.dispatch(InProcess).await.unwrap();
    eventually("three runs", || IN_PROCESS_RUNS.lock().unwrap().len() == 3).await;
    let runs = IN_PROCESS_RUNS.lock().unwrap().clone();
    assert!(runs[1] - runs[0] >= Duration::from_millis(60), "{runs:?}");
    assert!(runs[2] - runs[1] >= Duration::from_millis(120), "{runs:?}");
}

#[event(name = "cfg.in_process_declared")]
#[derive(Serialize, Deserialize)]
pub struct InProcessDeclared;

static DECLARED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[listener(queue = "cfg-in-process", tries = 2)]
async fn declares_its_tries(_: &InProcessDeclared) -> Result<(), NotYet> {
    DECLARED_RUNS.fetch_add(1, Ordering::SeqCst);
    Err(NotYet)
}

#[tokio::test]
async fn a_declared_tries_wins_over_the_default() {
    let dispatcher = Dispatcher::builder()
        .retry_defaults(defaults(5, &[]))
        .build()
        .unwrap();
    dispatcher.dispatch(InProcessDeclared).await.unwrap();
    eventually("two runs", || DECLARED_RUNS.load(Ordering::SeqCst) == 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(DECLARED_RUNS.load(Ordering::SeqCst), 2, "no third run");
}

// --- the worker ---------------------------------------------------------------

#[event(name = "cfg.worked")]
#[derive(Serialize, Deserialize)]
pub struct Worked;

#[listener(queue = "cfg-worker", tries = 2)]
async fn fails_with_default_backoff(_: &Worked) -> Result<(), NotYet> {
    Err(NotYet)
}

#[event(name = "cfg.worked_declared")]
#[derive(Serialize, Deserialize)]
pub struct WorkedDeclared;

#[listener(queue = "cfg-worker-declared", tries = 2, backoff = "1ms")]
async fn fails_with_own_backoff(_: &WorkedDeclared) -> Result<(), NotYet> {
    Err(NotYet)
}

/// Dispatches `event` to a fresh queue, lets a worker with an hour of
/// default backoff try its job once, and says whether the job can be
/// claimed again right away.
async fn claimable_after_one_failure<E: Event>(event: E, queue_name: &str) -> bool {
    let queue = Queue::memory();
    Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap()
        .dispatch(event)
        .await
        .unwrap();
    let report = Worker::new(queue.clone())
        .queues([queue_name])
        .retry_defaults(defaults(1, &[3_600_000]))
        .max_jobs(1)
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!(report.retried, 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = queue
        .backend()
        .claim(&[queue_name.to_owned()], 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        queue.size(queue_name).await.unwrap(),
        1,
        "released, not failed"
    );
    !again.is_empty()
}

#[tokio::test]
async fn the_worker_waits_the_default_backoff_when_the_listener_declares_none() {
    assert!(!claimable_after_one_failure(Worked, "cfg-worker").await);
}

#[tokio::test]
async fn a_declared_backoff_wins_over_the_workers_default() {
    assert!(claimable_after_one_failure(WorkedDeclared, "cfg-worker-declared").await);
}

// --- the kill switch ------------------------------------------------------------

#[event(name = "cfg.switched")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Switched;

static SWITCHED_SYNC: AtomicUsize = AtomicUsize::new(0);

#[listener]
fn counts_switched(_: &Switched) {
    SWITCHED_SYNC.fetch_add(1, Ordering::SeqCst);
}

#[listener(queue = "cfg-switched")]
fn queued_switched(_: &Switched) {}

#[tokio::test]
async fn a_disabled_dispatcher_runs_and_enqueues_nothing_while_others_still_do() {
    let queue = Queue::memory();
    let config = Config::from_vars([("EVENTS_ENABLED", "false")]).unwrap();
    let off = Dispatcher::builder()
        .config(&config)
        .queue(queue.clone())
        .build()
        .unwrap();
    assert!(!off.is_enabled());
    let done = off.dispatch(Switched).await.unwrap();
    assert_eq!((done.ran(), done.queued()), (0, 0));
    assert_eq!(SWITCHED_SYNC.load(Ordering::SeqCst), 0);
    assert_eq!(queue.size("cfg-switched").await.unwrap(), 0);

    let on = Dispatcher::builder().queue(queue.clone()).build().unwrap();
    assert!(on.is_enabled());
    let done = on.dispatch(Switched).await.unwrap();
    assert_eq!((done.ran(), done.queued()), (1, 1));
    assert_eq!(SWITCHED_SYNC.load(Ordering::SeqCst), 1);
    assert_eq!(queue.size("cfg-switched").await.unwrap(), 1);
}

#[event(name = "cfg.switched_plain")]
pub struct SwitchedPlain;

static PLAIN_RUNS: AtomicUsize = AtomicUsize::new(0);

/// The fast path's kind of listener: a plain `fn(&E)`, nothing queued.
#[listener]
fn counts_plain(_: &SwitchedPlain) {
    PLAIN_RUNS.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test]
async fn the_kill_switch_holds_on_the_fast_path() {
    let off = Dispatcher::builder().enabled(false).build().unwrap();
    for _ in 0..3 {
        assert_eq!(off.dispatch(SwitchedPlain).await.unwrap().ran(), 0);
    }
    assert_eq!(PLAIN_RUNS.load(Ordering::SeqCst), 0);
}

#[event(name = "cfg.switched_faked")]
#[derive(Debug, Clone, PartialEq)]
pub struct SwitchedFaked(u32);

#[tokio::test]
async fn a_fake_still_records_what_a_disabled_dispatcher_is_given() {
    let fake = events::fake();
    let off = Dispatcher::builder().enabled(false).build().unwrap();
    assert!(off.dispatch(SwitchedFaked(7)).await.unwrap().faked());
    assert_eq!(fake.dispatched::<SwitchedFaked>(), [SwitchedFaked(7)]);
}
