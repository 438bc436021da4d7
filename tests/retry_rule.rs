//! One retry rule: the worker, the in-process runner (no queue) and the
//! queue fake's `run_pending` decide alike after each try — the same
//! retries after the same backoff, the same failure after the last try or
//! when a listener says not to retry, the same failure hook called.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use events::observe::Observer;
use events::prelude::*;
use events::queue::{FailedJob, Job, Queue};
use events::{Dispatcher, Worker};
use serde::{Deserialize, Serialize};

#[event(name = "rule.checked")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checked {
    /// Which runner this dispatch is for: the failure hooks are global.
    pub run: String,
}

#[listener(queue = "rule", tries = 3, backoff = ["10ms", "20ms"], on_failure = hooked)]
async fn always_fails(_: &Checked, ctx: &events::Context) -> Result<(), std::io::Error> {
    let attempt = ctx.job().map_or(0, |job| job.attempt());
    Err(std::io::Error::other(format!("boom {attempt}")))
}

#[listener(queue = "rule", tries = 5, backoff = "10ms", on_failure = hooked)]
async fn gives_up(_: &Checked, ctx: &events::Context) -> Result<(), std::io::Error> {
    let job = ctx.job().expect("a queued listener runs as a job");
    if job.attempt() == 1 {
        return Err(std::io::Error::other("not yet"));
    }
    job.fail_without_retry("gone for good");
    Ok(())
}

static HOOKED: Mutex<Vec<(String, String, u32, String)>> = Mutex::new(Vec::new());

fn hooked(job: &FailedJob) {
    let event: Checked = serde_json::from_str(&job.payload).unwrap();
    HOOKED.lock().unwrap().push((
        event.run,
        job.listener.clone(),
        job.attempts,
        job.error.clone(),
    ));
}

/// What the runner decided after each try, per listener, in order.
#[derive(Clone, Default)]
struct Decisions(Arc<Mutex<Vec<(String, String)>>>);

impl Decisions {
    fn push(&self, job: &Job, what: String) {
        let listener = job.listener.trim_start_matches("retry_rule::").to_owned();
        self.0.lock().unwrap().push((listener, what));
    }

    /// Sorted by listener, each listener's decisions in order.
    fn take(&self) -> Vec<(String, String)> {
        let mut all = self.0.lock().unwrap().clone();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

impl Observer for Decisions {
    fn job_succeeded(&self, job: &Job, _: Duration) {
        self.push(job, format!("done at try {}", job.attempt));
    }
    fn job_retried(&self, job: &Job, error: &str, delay: Duration) {
        self.push(
            job,
            format!("try {} failed ({error}); retry in {delay:?}", job.attempt),
        );
    }
    fn job_released(&self, job: &Job, delay: Duration) {
        self.push(job, format!("released after {delay:?}"));
    }
    fn job_failed(&self, job: &Job, error: &str) {
        self.push(job, format!("failed at try {} ({error})", job.attempt));
    }
}

fn expected() -> Vec<(String, String)> {
    [
        (
            "always_fails",
            "try 1 failed (listener `retry_rule::always_fails` failed: boom 1); retry in 10ms",
        ),
        (
            "always_fails",
            "try 2 failed (listener `retry_rule::always_fails` failed: boom 2); retry in 20ms",
        ),
        (
            "always_fails",
            "failed at try 3 (listener `retry_rule::always_fails` failed: boom 3)",
        ),
        (
            "gives_up",
            "try 1 failed (listener `retry_rule::gives_up` failed: not yet); retry in 10ms",
        ),
        ("gives_up", "failed at try 2 (gone for good)"),
    ]
    .into_iter()
    .map(|(l, d)| (l.to_owned(), d.to_owned()))
    .collect()
}

/// The failure hooks called for `run`, sorted by listener.
fn hooks_for(run: &str) -> Vec<(String, u32, String)> {
    let mut hooks: Vec<_> = HOOKED
        .lock()
        .unwrap()
        .iter()
        .filter(|h| h.0 == run)
        .map(|h| (h.1.clone(), h.2, h.3.clone()))
        .collect();
    hooks.sort();
    hooks
}

fn expected_hooks() -> Vec<(String, u32, String)> {
    vec![
        (
            "retry_rule::always_fails".to_owned(),
            3,
            "listener `retry_rule::always_fails` failed: boom 3".to_owned(),
        ),
        (
            "retry_rule::gives_up".to_owned(),
            2,
            "gone for good".to_owned(),
        ),
    ]
}

async fn through_the_worker() -> Vec<(String, String)> {
    let queue = Queue::memory();
    let dispatcher = Dispatcher::builder().queue(queue.clone()).build().unwrap();
    dispatcher
        .dispatch(Checked {
            run: "worker".into(),
        })
        .await
        .unwrap();
    let decisions = Decisions::default();
    Worker::new(queue)
        .queues(["rule"])
        .jitter(0.0)
        .observe(decisions.clone())
        .run_until_empty()
        .await
        .unwrap();
    decisions.take()
}

async fn in_process() -> Vec<(String, String)> {
    let decisions = Decisions::default();
    let dispatcher = Dispatcher::builder()
        .observe(decisions.clone())
        .build()
        .unwrap();
    dispatcher
        .dispatch(Checked {
            run: "in-process".into(),
        })
        .await
        .unwrap();
    let left = dispatcher.drain(Duration::from_secs(10)).await;
    assert!(left.is_empty(), "every job ended: {left:?}");
    decisions.take()
}

async fn through_the_fake() -> Vec<(String, String)> {
    let queue = events::fake_queue();
    let decisions = Decisions::default();
    let dispatcher = Dispatcher::builder()
        .observe(decisions.clone())
        .build()
        .unwrap();
    dispatcher
        .dispatch(Checked { run: "fake".into() })
        .await
        .unwrap();
    queue.assert_pushed_times::<always_fails>(1);
    // `run_pending` stops at a job that fails for good; the next call runs
    // the rest.
    let mut failures = 0;
    while let Err(error) = queue.run_pending().await {
        failures += 1;
        assert!(failures <= 2, "{error}");
    }
    assert_eq!(failures, 2);
    decisions.take()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_the_in_process_runner_and_the_fake_decide_alike() {
    let worker = through_the_worker().await;
    let in_process = in_process().await;
    let fake = through_the_fake().await;
    assert_eq!(worker, expected(), "the worker");
    assert_eq!(in_process, expected(), "the in-process runner");
    assert_eq!(fake, expected(), "the queue fake");
    for run in ["worker", "in-process", "fake"] {
        assert_eq!(
            hooks_for(run),
            expected_hooks(),
            "failure hooks of the {run}"
        );
    }
}
