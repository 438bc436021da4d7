//! The backend conformance suite (feature `conformance`): every behaviour
//! a [`Backend`] promises, written once as an `async fn` over a [`Queue`],
//! and [`conformance_tests!`](crate::conformance_tests) to run them all
//! against a backend, one `#[test]` each.
//!
//! A backend in another crate runs it from its tests with one macro call
//! (its `dev-dependencies` turn on `events-core`'s `conformance` feature):
//!
//! ```ignore
//! events_core::conformance_tests!(|| async { MyBackend::connect_for_tests().await });
//! ```
//!
//! The closure makes a fresh backend for each case; it may return
//! `(backend, guard)`, where `guard` (a temporary directory, a container)
//! is kept until the case ends. Each case runs on its own multi-threaded
//! Tokio runtime, so the caller needs no Tokio macros.

use std::future::Future;
use std::time::{Duration, SystemTime};

use super::activity::{Finish, FinishedJob, MinuteStats, WorkerStatus, minute_of};
use super::{ActivityReport, Backend, Job, JobQuery, JobState, Order, Queue, QueueError};
use crate::envelope::{Envelope, EventId, Metadata};

/// What a conformance case runs against: a backend, or a backend and
/// something to keep alive while the case runs.
pub trait Subject {
    /// The queue to test, and what to drop once the case ends.
    fn into_queue(self) -> (Queue, Box<dyn Send>);
}

impl<B: Backend> Subject for B {
    fn into_queue(self) -> (Queue, Box<dyn Send>) {
        (Queue::with_backend("conformance://", self), Box::new(()))
    }
}

impl<B: Backend, G: Send + 'static> Subject for (B, G) {
    fn into_queue(self) -> (Queue, Box<dyn Send>) {
        (
            Queue::with_backend("conformance://", self.0),
            Box::new(self.1),
        )
    }
}

/// Runs one case: builds a runtime, makes the subject with `make`, and runs
/// `case` on its queue. What the macro's tests call.
pub fn run<M, F, S, C, R>(make: M, case: C)
where
    M: FnOnce() -> F,
    F: Future<Output = S>,
    S: Subject,
    C: FnOnce(Queue) -> R,
    R: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the conformance suite needs a Tokio runtime");
    runtime.block_on(async {
        let (queue, keep) = make().await.into_queue();
        case(queue).await;
        drop(keep);
    });
}

/// Generates one `#[test]` per conformance case, each running against the
/// backend the closure makes (a fresh one per case).
///
/// ```ignore
/// mod memory {
///     events_core::conformance_tests!(|| async { events_core::queue::MemoryBackend::default() });
/// }
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr $(,)?) => {
        $crate::conformance_tests!(@cases $make;
            claims_oldest_first_up_to_the_limit
            takes_queues_in_priority_order
            delayed_jobs_wait_their_turn
            ack_removes_the_job_once
            a_lapsed_lease_is_claimed_again_and_fences_the_stale_worker
            extending_keeps_the_lease
            release_retries_later_with_the_error
            abandon_hands_back_untried
            abandon_with_a_delay_puts_the_job_off
            the_failed_store
            a_stale_claim_cannot_touch_the_job_after_a_retry
            wait_wakes_on_enqueue
            the_envelope_travels_with_the_job
            enqueue_many_stores_the_whole_batch_or_nothing
            enqueue_many_is_idempotent_by_id
            clear_deletes_the_waiting_jobs_of_one_queue
            stats_tell_delayed_jobs_from_ready_ones
            jobs_are_listed_in_every_state_and_found_by_text
            workers_reports_are_kept_and_added_up
        );
    };
    (@cases $make:expr; $($case:ident)*) => {$(
        #[test]
        fn $case() {
            $crate::queue::conformance::run($make, $crate::queue::conformance::$case);
        }
    )*};
}

fn job(queue: &str, n: u32) -> Job {
    let mut job = Job::from_parts(
        format!("job-{queue}-{n}"),
        queue,
        "tests::listener",
        "test.event",
        format!("{{\"n\":{n}}}"),
        Envelope::new(),
    );
    let now = SystemTime::now();
    job.max_tries = 3;
    job.available_at = now;
    job.first_enqueued_at = now;
    job
}

fn ids(jobs: &[Job]) -> Vec<&str> {
    jobs.iter().map(|j| j.id.as_str()).collect()
}

/// Claims up to `limit` jobs from `queues` under `lease`.
async fn claim(queue: &Queue, queues: &[&str], limit: usize, lease: Duration) -> Vec<Job> {
    let queues: Vec<String> = queues.iter().map(|s| s.to_string()).collect();
    queue.backend().claim(&queues, limit, lease).await.unwrap()
}

/// The lease most cases claim under.
const LEASE: Duration = Duration::from_secs(30);

/// A claim takes the oldest jobs first, at most `limit`, starting try 1.
pub async fn claims_oldest_first_up_to_the_limit(queue: Queue) {
    for n in 1..=3 {
        queue.enqueue(job("a", n)).await.unwrap();
        // Distinct enqueue times, so "oldest" is well defined.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let first = claim(&queue, &["a"], 2, LEASE).await;
    assert_eq!(ids(&first), ["job-a-1", "job-a-2"]);
    assert!(first.iter().all(|j| j.attempt == 1), "a claim starts try 1");
    let second = claim(&queue, &["a"], 2, LEASE).await;
    assert_eq!(ids(&second), ["job-a-3"]);
    assert!(claim(&queue, &["a"], 2, LEASE).await.is_empty());
    assert_eq!(second[0].payload, r#"{"n":3}"#);
    assert_eq!(second[0].listener, "tests::listener");
}

/// A claim takes the first queue's jobs before the next one's, and leaves unlisted queues alone.
pub async fn takes_queues_in_priority_order(queue: Queue) {
    queue.enqueue(job("low", 1)).await.unwrap();
    queue.enqueue(job("high", 1)).await.unwrap();
    queue.enqueue(job("other", 1)).await.unwrap();
    let claimed = claim(&queue, &["high", "low"], 10, LEASE).await;
    assert_eq!(ids(&claimed), ["job-high-1", "job-low-1"]);
    assert_eq!(
        queue.size("other").await.unwrap(),
        1,
        "unlisted queues are left alone"
    );
}

/// A job is not claimed before its `available_at`.
pub async fn delayed_jobs_wait_their_turn(queue: Queue) {
    let mut delayed = job("a", 1);
    delayed.available_at = SystemTime::now() + Duration::from_millis(150);
    queue.enqueue(delayed).await.unwrap();
    assert!(claim(&queue, &["a"], 1, LEASE).await.is_empty());
    assert_eq!(queue.size("a").await.unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ids(&claim(&queue, &["a"], 1, LEASE).await), ["job-a-1"]);
}

/// An ack removes the job; a second ack is refused.
pub async fn ack_removes_the_job_once(queue: Queue) {
    queue.enqueue(job("a", 1)).await.unwrap();
    let claimed = claim(&queue, &["a"], 1, LEASE).await;
    assert_eq!(queue.stats().await.unwrap()[0].reserved, 1);
    assert!(queue.backend().ack(&claimed[0].id, 1).await.unwrap());
    assert!(
        !queue.backend().ack(&claimed[0].id, 1).await.unwrap(),
        "a second ack is refused"
    );
    assert_eq!(queue.size("a").await.unwrap(), 0);
}

/// A job whose lease lapsed is claimed again under the next attempt, and the stale holder can no longer ack, fail, release, extend or abandon it.
pub async fn a_lapsed_lease_is_claimed_again_and_fences_the_stale_worker(queue: Queue) {
    queue.enqueue(job("a", 1)).await.unwrap();
    let stale = claim(&queue, &["a"], 1, Duration::from_millis(50)).await;
    assert_eq!(stale[0].attempt, 1);
    assert!(claim(&queue, &["a"], 1, LEASE).await.is_empty(), "leased");
    tokio::time::sleep(Duration::from_millis(80)).await;
    let fresh = claim(&queue, &["a"], 1, LEASE).await;
    assert_eq!(ids(&fresh), ["job-a-1"]);
    assert_eq!(
        fresh[0].attempt, 2,
        "the attempt number is the fencing token"
    );

    let b = queue.backend();
    assert!(!b.ack("job-a-1", 1).await.unwrap(), "stale ack rejected");
    assert!(
        !b.fail("job-a-1", 1, "stale").await.unwrap(),
        "stale fail rejected"
    );
    assert!(
        !b.release("job-a-1", 1, Duration::ZERO, "stale")
            .await
            .unwrap(),
        "stale release rejected"
    );
    assert!(
        !b.extend("job-a-1", 1, LEASE).await.unwrap(),
        "stale extend rejected"
    );
    assert!(
        !b.abandon("job-a-1", 1, Duration::ZERO).await.unwrap(),
        "stale abandon rejected"
    );
    assert!(queue.failed().await.unwrap().is_empty());
    assert!(
        b.ack("job-a-1", 2).await.unwrap(),
        "the current holder acks"
    );
}

/// An extended lease holds past its first deadline.
pub async fn extending_keeps_the_lease(queue: Queue) {
    queue.enqueue(job("a", 1)).await.unwrap();
    claim(&queue, &["a"], 1, Duration::from_millis(80)).await;
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert!(
        queue
            .backend()
            .extend("job-a-1", 1, Duration::from_secs(10))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(
        claim(&queue, &["a"], 1, LEASE).await.is_empty(),
        "an extended lease holds past its first deadline"
    );
}

/// A released job comes back after its delay, with the error recorded.
pub async fn release_retries_later_with_the_error(queue: Queue) {
    queue.enqueue(job("a", 1)).await.unwrap();
    claim(&queue, &["a"], 1, LEASE).await;
    assert!(
        queue
            .backend()
            .release("job-a-1", 1, Duration::from_millis(100), "boom")
            .await
            .unwrap()
    );
    assert!(claim(&queue, &["a"], 1, LEASE).await.is_empty(), "backoff");
    tokio::time::sleep(Duration::from_millis(130)).await;
    let again = claim(&queue, &["a"], 1, LEASE).await;
    assert_eq!(again[0].attempt, 2);
    assert_eq!(again[0].last_error.as_deref(), Some("boom"));
}

/// A job handed back at once is claimable again without its try counting.
pub async fn abandon_hands_back_untried(queue: Queue) {
    queue.enqueue(job("a", 1)).await.unwrap();
    claim(&queue, &["a"], 1, LEASE).await;
    // Enqueued after the first was claimed: the handed-back job still goes
    // first, since it keeps its place.
    tokio::time::sleep(Duration::from_millis(5)).await;
    queue.enqueue(job("a", 2)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(
        queue
            .backend()
            .abandon("job-a-1", 1, Duration::ZERO)
            .await
            .unwrap()
    );
    let again = claim(&queue, &["a"], 1, LEASE).await;
    assert_eq!(again[0].id, "job-a-1", "a handed-back job keeps its place");
    assert_eq!(
        again[0].attempt, 1,
        "an abandoned claim does not count as a try"
    );
}

/// Failing, listing, retrying (under a new id), forgetting and flushing failed jobs.
pub async fn the_failed_store(queue: Queue) {
    queue.enqueue(job("a", 1)).await.unwrap();
    queue.enqueue(job("b", 2)).await.unwrap();
    let claimed = claim(&queue, &["a", "b"], 2, LEASE).await;
    assert_eq!(claimed.len(), 2);
    assert!(
        queue
            .backend()
            .fail("job-a-1", 1, "listener `x` failed: said no")
            .await
            .unwrap()
    );
    assert!(queue.backend().fail("job-b-2", 1, "other").await.unwrap());

    let failed = queue.failed().await.unwrap();
    assert_eq!(failed.len(), 2);
    let a = &failed[0];
    assert_eq!(
        (a.id.as_str(), a.queue.as_str(), a.listener.as_str()),
        ("job-a-1", "a", "tests::listener")
    );
    assert_eq!(
        (a.event.as_str(), a.payload.as_str()),
        ("test.event", r#"{"n":1}"#)
    );
    assert_eq!(
        (a.error.as_str(), a.attempts, a.max_tries),
        ("listener `x` failed: said no", 1, 3)
    );
    assert!(a.failed_at >= a.first_enqueued_at);
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        (stats[0].queue.as_str(), stats[0].pending, stats[0].failed),
        ("a", 0, 1)
    );
    assert_eq!(
        queue.size("a").await.unwrap(),
        0,
        "failed jobs are not waiting"
    );

    let new_id = queue.retry("job-a-1").await.unwrap();
    assert!(new_id.is_some());
    assert_eq!(
        queue.retry("job-a-1").await.unwrap(),
        None,
        "retried already"
    );
    let again = claim(&queue, &["a"], 1, LEASE).await;
    assert_eq!(
        Some(&again[0].id),
        new_id.as_ref(),
        "retry returns the new id"
    );
    assert_eq!(
        again[0].attempt, 1,
        "a retried job gets all its tries again"
    );
    assert_eq!(again[0].payload, r#"{"n":1}"#);
    assert_ne!(again[0].id, "job-a-1", "a retried job gets a new id");
    assert_eq!(
        again[0].last_error.as_deref(),
        Some("listener `x` failed: said no")
    );
    let retried = again[0].id.clone();
    assert!(queue.backend().fail(&retried, 1, "again").await.unwrap());

    assert_eq!(queue.retry_all().await.unwrap(), 2);
    assert!(queue.failed().await.unwrap().is_empty());
    let both = claim(&queue, &["a", "b"], 5, LEASE).await;
    assert_eq!(both.len(), 2);
    for j in &both {
        assert!(
            queue
                .backend()
                .fail(&j.id, j.attempt, "third time")
                .await
                .unwrap()
        );
    }
    let first = queue.failed().await.unwrap()[0].id.clone();
    assert!(queue.forget(&first).await.unwrap());
    assert!(!queue.forget(&first).await.unwrap());
    assert_eq!(queue.flush_failed().await.unwrap(), 1);
    assert!(queue.failed().await.unwrap().is_empty());
    assert!(
        queue.stats().await.unwrap().is_empty(),
        "nothing left anywhere"
    );
}

/// A worker holding a lapsed claim cannot touch the job once it failed elsewhere and was retried.
pub async fn a_stale_claim_cannot_touch_the_job_after_a_retry(queue: Queue) {
    queue.enqueue(job("a", 1)).await.unwrap();
    // Worker A claims and stalls; its lease lapses.
    claim(&queue, &["a"], 1, Duration::from_millis(30)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Worker B claims it and fails it; an operator retries it.
    let b = claim(&queue, &["a"], 1, LEASE).await;
    assert!(
        queue
            .backend()
            .fail(&b[0].id, b[0].attempt, "B failed")
            .await
            .unwrap()
    );
    assert!(queue.retry("job-a-1").await.unwrap().is_some());
    // Worker C runs the retried job, on its first try again.
    let c = claim(&queue, &["a"], 1, LEASE).await;
    assert_eq!(c[0].attempt, 1);
    // A wakes up holding ("job-a-1", 1): it must not touch C's job.
    assert!(!queue.backend().fail("job-a-1", 1, "stale A").await.unwrap());
    assert!(!queue.backend().ack("job-a-1", 1).await.unwrap());
    assert!(queue.failed().await.unwrap().is_empty());
    assert!(
        queue.backend().ack(&c[0].id, 1).await.unwrap(),
        "C finishes its job"
    );
}

/// `wait` returns soon after a job is enqueued.
pub async fn wait_wakes_on_enqueue(queue: Queue) {
    let waiter = {
        let queue = queue.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            queue.backend().wait(Duration::from_secs(20)).await;
            started.elapsed()
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    queue.enqueue(job("a", 1)).await.unwrap();
    let waited = waiter.await.unwrap();
    assert!(waited < Duration::from_secs(10), "woke after {waited:?}");
}

/// A claimed job handed back with a delay is not claimable until the delay
/// ends, and its try does not count.
pub async fn abandon_with_a_delay_puts_the_job_off(queue: Queue) {
    queue.enqueue(job("a", 1)).await.unwrap();
    queue.enqueue(job("a", 2)).await.unwrap();
    let first = claim(&queue, &["a"], 1, LEASE).await;
    assert_eq!(ids(&first), ["job-a-1"]);
    assert!(
        queue
            .backend()
            .abandon("job-a-1", 1, Duration::from_millis(150))
            .await
            .unwrap()
    );
    assert!(
        !queue
            .backend()
            .abandon("job-a-1", 1, Duration::ZERO)
            .await
            .unwrap(),
        "handed back already"
    );
    assert_eq!(
        ids(&claim(&queue, &["a"], 5, LEASE).await),
        ["job-a-2"],
        "the delayed job waits"
    );
    assert_eq!(queue.size("a").await.unwrap(), 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = claim(&queue, &["a"], 5, LEASE).await;
    assert_eq!(ids(&again), ["job-a-1"]);
    assert_eq!(
        again[0].attempt, 1,
        "an abandoned claim does not count as a try"
    );
}

/// An envelope with several keys and non-ASCII values, to the millisecond.
fn rich_envelope() -> Envelope {
    let metadata: Metadata = [
        ("actor_id", "42"),
        ("tenant", "Zürich-Ost"),
        ("note", "日本語 ✓ \"quoted\" \\ back"),
        ("empty", ""),
    ]
    .into_iter()
    .collect();
    let id = EventId::new();
    Envelope::from_parts(id, id.timestamp(), metadata)
}

/// The envelope (id, occurred-at, metadata) comes back unchanged from every
/// step of a job's life: claim, release, the failed store, a retry.
pub async fn the_envelope_travels_with_the_job(queue: Queue) {
    let envelope = rich_envelope();
    let mut stored = job("a", 1);
    stored.envelope = envelope.clone();
    queue.enqueue(stored).await.unwrap();

    let claimed = claim(&queue, &["a"], 1, LEASE).await;
    assert_eq!(claimed[0].envelope, envelope, "after enqueue and claim");
    assert!(
        queue
            .backend()
            .release("job-a-1", 1, Duration::ZERO, "once")
            .await
            .unwrap()
    );
    let again = claim(&queue, &["a"], 1, LEASE).await;
    assert_eq!(again[0].envelope, envelope, "after a release");
    assert!(queue.backend().fail("job-a-1", 2, "twice").await.unwrap());

    let failed = queue.failed().await.unwrap();
    assert_eq!(failed[0].envelope, envelope, "in the failed store");
    assert!(queue.retry("job-a-1").await.unwrap().is_some());
    let retried = claim(&queue, &["a"], 1, LEASE).await;
    assert_eq!(retried[0].envelope, envelope, "after a retry");
    assert!(
        queue
            .backend()
            .fail(&retried[0].id, 1, "thrice")
            .await
            .unwrap()
    );
    assert_eq!(queue.retry_all().await.unwrap(), 1);
    let all = claim(&queue, &["a"], 1, LEASE).await;
    assert_eq!(all[0].envelope, envelope, "after retry_all");
}

/// A batch holding a job that cannot be stored is refused whole.
pub async fn enqueue_many_stores_the_whole_batch_or_nothing(queue: Queue) {
    let mut bad = job("a", 2);
    bad.max_tries = 0;
    let error = queue
        .enqueue_many(vec![job("a", 1), bad, job("b", 3)])
        .await
        .unwrap_err();
    assert!(
        matches!(&error, QueueError::InvalidJob { id, .. } if id == "job-a-2"),
        "{error:?}"
    );
    assert!(
        queue.stats().await.unwrap().is_empty(),
        "nothing of the refused batch was stored"
    );
    assert!(claim(&queue, &["a", "b"], 10, LEASE).await.is_empty());

    queue
        .enqueue_many(vec![job("a", 1), job("a", 2), job("b", 3)])
        .await
        .unwrap();
    let claimed = claim(&queue, &["a", "b"], 10, LEASE).await;
    assert_eq!(ids(&claimed), ["job-a-1", "job-a-2", "job-b-3"]);
    queue.enqueue_many(Vec::new()).await.unwrap();
}

/// A job whose id is stored (waiting, claimed or failed) is not stored
/// again, in a later batch or twice in one.
pub async fn enqueue_many_is_idempotent_by_id(queue: Queue) {
    queue
        .enqueue_many(vec![job("a", 1), job("a", 2), job("a", 1)])
        .await
        .unwrap();
    assert_eq!(queue.size("a").await.unwrap(), 2, "once within a batch");
    queue
        .enqueue_many(vec![job("a", 1), job("a", 2), job("a", 3)])
        .await
        .unwrap();
    assert_eq!(queue.size("a").await.unwrap(), 3, "once across batches");

    let claimed = claim(&queue, &["a"], 1, LEASE).await;
    assert_eq!(ids(&claimed), ["job-a-1"]);
    queue.enqueue(job("a", 1)).await.unwrap();
    assert_eq!(
        queue.size("a").await.unwrap(),
        3,
        "a claimed job is not stored again"
    );
    assert!(queue.backend().fail("job-a-1", 1, "no").await.unwrap());
    queue.enqueue(job("a", 1)).await.unwrap();
    assert_eq!(queue.size("a").await.unwrap(), 2);
    assert_eq!(
        queue.failed().await.unwrap().len(),
        1,
        "a failed job is not stored again"
    );
    let rest = claim(&queue, &["a"], 10, LEASE).await;
    assert_eq!(ids(&rest), ["job-a-2", "job-a-3"]);

    // Once forgotten, the id is free again.
    assert!(queue.forget("job-a-1").await.unwrap());
    queue.enqueue(job("a", 1)).await.unwrap();
    assert_eq!(ids(&claim(&queue, &["a"], 10, LEASE).await), ["job-a-1"]);
}

/// `clear` deletes the jobs waiting on one queue, ready and delayed, and
/// leaves claimed jobs, other queues and the failed store alone.
pub async fn clear_deletes_the_waiting_jobs_of_one_queue(queue: Queue) {
    for n in 1..=3 {
        queue.enqueue(job("a", n)).await.unwrap();
    }
    let mut delayed = job("a", 4);
    delayed.available_at = SystemTime::now() + Duration::from_secs(60);
    queue.enqueue(delayed).await.unwrap();
    queue.enqueue(job("b", 1)).await.unwrap();
    let claimed = claim(&queue, &["a"], 1, LEASE).await;
    assert_eq!(ids(&claimed), ["job-a-1"]);
    queue.enqueue(job("f", 1)).await.unwrap();
    claim(&queue, &["f"], 1, LEASE).await;
    assert!(queue.backend().fail("job-f-1", 1, "no").await.unwrap());

    assert_eq!(queue.clear("a").await.unwrap(), 3, "two ready, one delayed");
    assert_eq!(queue.size("a").await.unwrap(), 1, "the claimed one stays");
    assert!(
        queue.backend().ack("job-a-1", 1).await.unwrap(),
        "its worker still acks it"
    );
    assert_eq!(queue.size("b").await.unwrap(), 1, "other queues untouched");
    assert_eq!(
        queue.failed().await.unwrap().len(),
        1,
        "failed store untouched"
    );
    assert_eq!(queue.clear("a").await.unwrap(), 0);
    assert_eq!(queue.clear("no-such-queue").await.unwrap(), 0);

    // A cleared job's id is free again.
    queue.enqueue(job("a", 2)).await.unwrap();
    assert_eq!(ids(&claim(&queue, &["a"], 1, LEASE).await), ["job-a-2"]);
}

/// `stats` counts waiting jobs that are not available yet as `delayed`,
/// within `pending`.
pub async fn stats_tell_delayed_jobs_from_ready_ones(queue: Queue) {
    queue.enqueue(job("a", 1)).await.unwrap();
    let mut later = job("a", 2);
    later.available_at = SystemTime::now() + Duration::from_secs(60);
    queue.enqueue(later).await.unwrap();
    let mut soon = job("a", 3);
    soon.available_at = SystemTime::now() + Duration::from_millis(100);
    queue.enqueue(soon).await.unwrap();
    queue.enqueue(job("a", 4)).await.unwrap();
    claim(&queue, &["a"], 1, LEASE).await;
    // A retry's backoff delays too.
    assert!(
        queue
            .backend()
            .release("job-a-1", 1, Duration::from_secs(60), "boom")
            .await
            .unwrap()
    );

    let stats = &queue.stats().await.unwrap()[0];
    assert_eq!(
        (stats.pending, stats.delayed, stats.reserved),
        (4, 3, 0),
        "{stats:?}"
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    let stats = &queue.stats().await.unwrap()[0];
    assert_eq!(
        (stats.pending, stats.delayed),
        (4, 2),
        "a delay that ended makes its job ready: {stats:?}"
    );
}

fn listed(page: &super::JobPage) -> Vec<(&str, JobState)> {
    page.jobs.iter().map(|j| (j.id.as_str(), j.state)).collect()
}

/// `jobs` lists what the queue holds in each state, filtered by state,
/// queue, text and time, sorted and paged, with the total; `job` finds one
/// by id in any state. Neither touches a job.
pub async fn jobs_are_listed_in_every_state_and_found_by_text(queue: Queue) {
    let start = SystemTime::now();
    let mut ready = job("mail", 1);
    ready.payload = r#"{"customer":"ACME Corp","n":1}"#.to_owned();
    ready.available_at = start - Duration::from_secs(20);
    queue.enqueue(ready).await.unwrap();
    let mut older = job("mail", 2);
    older.available_at = start - Duration::from_secs(40);
    queue.enqueue(older).await.unwrap();
    let mut delayed = job("mail", 3);
    delayed.available_at = start + Duration::from_secs(600);
    queue.enqueue(delayed).await.unwrap();
    queue.enqueue(job("work", 1)).await.unwrap();
    queue.enqueue(job("fails", 1)).await.unwrap();
    let claimed = claim(&queue, &["work"], 1, LEASE).await;
    assert_eq!(ids(&claimed), ["job-work-1"]);
    claim(&queue, &["fails"], 1, LEASE).await;
    assert!(
        queue
            .backend()
            .fail("job-fails-1", 1, "card declined")
            .await
            .unwrap()
    );

    let all = queue.jobs(&JobQuery::new().limit(100)).await.unwrap();
    assert_eq!(all.total, 5, "{:?}", listed(&all));
    let by_id = |id: &str| all.jobs.iter().find(|j| j.id == id).unwrap().clone();
    assert_eq!(by_id("job-mail-1").state, JobState::Ready);
    assert_eq!(by_id("job-mail-3").state, JobState::Delayed);
    let reserved = by_id("job-work-1");
    assert_eq!((reserved.state, reserved.attempt), (JobState::Reserved, 1));
    assert!(
        reserved.available_at > start + LEASE - Duration::from_secs(5),
        "a reserved job's time is its lease's end"
    );
    let failed = by_id("job-fails-1");
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.error.as_deref(), Some("card declined"));
    assert!(
        failed
            .failed_at
            .is_some_and(|at| at >= start - Duration::from_secs(1))
    );
    assert_eq!((failed.attempt, failed.max_tries), (1, 3));

    let ready = queue
        .jobs(&JobQuery::new().state(JobState::Ready).order(Order::Oldest))
        .await
        .unwrap();
    assert_eq!(
        listed(&ready),
        [
            ("job-mail-2", JobState::Ready),
            ("job-mail-1", JobState::Ready)
        ],
        "oldest first"
    );
    let newest = queue
        .jobs(
            &JobQuery::new()
                .state(JobState::Ready)
                .state(JobState::Delayed),
        )
        .await
        .unwrap();
    assert_eq!(
        newest
            .jobs
            .iter()
            .map(|j| j.id.as_str())
            .collect::<Vec<_>>(),
        ["job-mail-3", "job-mail-1", "job-mail-2"],
        "newest first by default"
    );
    let page = queue
        .jobs(
            &JobQuery::new()
                .queue("mail")
                .order(Order::Oldest)
                .offset(1)
                .limit(1),
        )
        .await
        .unwrap();
    assert_eq!((page.total, ids_of(&page)), (3, vec!["job-mail-1"]));
    let counted = queue
        .jobs(&JobQuery::new().state(JobState::Failed).limit(0))
        .await
        .unwrap();
    assert_eq!((counted.total, counted.jobs.len()), (1, 0));

    let found = queue
        .jobs(&JobQuery::new().search("acme corp"))
        .await
        .unwrap();
    assert_eq!(
        ids_of(&found),
        ["job-mail-1"],
        "payload text, ASCII case ignored"
    );
    assert_eq!(found.searched, None, "five jobs are searched whole");
    for (text, total) in [
        ("job-work", 1),
        ("tests::LISTENER", 5),
        ("test.event", 5),
        ("declined", 0),
        ("nothing", 0),
    ] {
        let page = queue.jobs(&JobQuery::new().search(text)).await.unwrap();
        assert_eq!(page.total, total, "search {text:?}: {:?}", listed(&page));
    }
    let since = queue
        .jobs(
            &JobQuery::new()
                .since(start - Duration::from_secs(30))
                .order(Order::Oldest),
        )
        .await
        .unwrap();
    assert_eq!(
        ids_of(&since).first().copied(),
        Some("job-mail-1"),
        "the job available 40 s ago is left out"
    );
    assert_eq!(since.total, 4);

    for (id, state) in [
        ("job-mail-1", JobState::Ready),
        ("job-mail-3", JobState::Delayed),
        ("job-work-1", JobState::Reserved),
        ("job-fails-1", JobState::Failed),
    ] {
        let one = queue
            .job(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{id} not found"));
        assert_eq!((one.id.as_str(), one.state), (id, state));
        assert_eq!(one.queue, id.split('-').nth(1).unwrap());
    }
    assert_eq!(
        queue.job("job-mail-1").await.unwrap().unwrap().payload,
        r#"{"customer":"ACME Corp","n":1}"#
    );
    assert!(queue.job("no-such-job").await.unwrap().is_none());

    // Looking touched nothing: the holder still acks, a claim takes both
    // ready jobs and leaves the delayed one.
    assert!(queue.backend().ack("job-work-1", 1).await.unwrap());
    let mut taken = claim(&queue, &["mail"], 3, LEASE).await;
    taken.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(ids(&taken), ["job-mail-1", "job-mail-2"]);
    assert_eq!(queue.failed().await.unwrap().len(), 1);
}

fn ids_of(page: &super::JobPage) -> Vec<&str> {
    page.jobs.iter().map(|j| j.id.as_str()).collect()
}

fn report(worker: &WorkerStatus, minute: i64, succeeded: u64, failed: u64) -> ActivityReport {
    let mut stats = MinuteStats::new(minute, "mail", "tests::listener");
    stats.succeeded = succeeded;
    stats.failed = failed;
    for _ in 0..succeeded + failed {
        stats.add_runtime(Duration::from_millis(7));
        stats.add_wait(Duration::from_millis(succeeded * 10));
    }
    let mut report = ActivityReport::new(worker.clone());
    report.minutes.push(stats);
    let mut finished = FinishedJob::new(
        format!("{}-{minute}", worker.id),
        Finish::Succeeded,
        SystemTime::now(),
    );
    finished.queue = "mail".to_owned();
    finished.listener = "tests::listener".to_owned();
    finished.event = "test.event".to_owned();
    finished.attempt = 1;
    finished.took = Duration::from_millis(7);
    finished.worker = worker.id.clone();
    report.finished.push(finished);
    report
}

/// Workers' reports are kept: live workers listed, their minutes added up
/// per minute, queue and listener, finished jobs newest first; a worker
/// that leaves, or misses three reports, is gone.
pub async fn workers_reports_are_kept_and_added_up(queue: Queue) {
    let now = SystemTime::now();
    let minute = minute_of(now);
    let every = Duration::from_secs(5);
    let mut a = WorkerStatus::new("host-a:10:0", "host-a", 10, now, every);
    a.queues = vec!["mail".to_owned(), "default".to_owned()];
    a.concurrency = 4;
    a.running = 2;
    a.processed = 9;
    a.failed = 1;
    let b = WorkerStatus::new("host-b:20:0", "host-b", 20, now, every);
    let stale = WorkerStatus::new(
        "host-c:30:0",
        "host-c",
        30,
        now - Duration::from_secs(60),
        every,
    );
    let backend = queue.backend();
    backend.report(&report(&a, minute - 1, 3, 0)).await.unwrap();
    backend.report(&report(&b, minute - 1, 2, 1)).await.unwrap();
    backend.report(&report(&a, minute, 1, 0)).await.unwrap();
    backend.report(&report(&stale, minute, 1, 0)).await.unwrap();
    // Far older than anything kept: dropped.
    backend
        .report(&report(&b, minute - 600, 50, 0))
        .await
        .unwrap();

    let activity = queue
        .activity(now - Duration::from_secs(3600))
        .await
        .unwrap();
    let workers: Vec<&str> = activity.workers.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(
        workers,
        ["host-a:10:0", "host-b:20:0"],
        "the stale worker is left out"
    );
    assert_eq!(activity.workers[0], a, "a heartbeat comes back as sent");
    let minutes: Vec<(i64, u64, u64)> = activity
        .minutes
        .iter()
        .map(|m| (m.minute - minute, m.succeeded, m.failed))
        .collect();
    assert_eq!(
        minutes,
        [(-1, 5, 1), (0, 2, 0)],
        "added up across workers, oldest first"
    );
    let first = &activity.minutes[0];
    assert_eq!(
        (first.queue.as_str(), first.listener.as_str()),
        ("mail", "tests::listener")
    );
    assert_eq!(first.runtime_ms, 6 * 7);
    assert_eq!(
        first.runtime[super::activity::RUNTIME_BUCKETS_MS
            .iter()
            .position(|&b| b >= 7)
            .unwrap()],
        6
    );
    assert_eq!(
        (first.claims, first.wait_max_ms, first.wait_ms),
        (6, 30, 3 * 30 + 3 * 20)
    );
    assert_eq!(activity.finished.len(), 5);
    assert_eq!(
        activity.finished[0].id,
        format!("host-b:20:0-{}", minute - 600),
        "newest report first"
    );
    let f = activity
        .finished
        .iter()
        .find(|f| f.id == format!("host-a:10:0-{minute}"))
        .unwrap();
    assert_eq!(
        (f.queue.as_str(), f.outcome, f.attempt, f.took),
        ("mail", Finish::Succeeded, 1, Duration::from_millis(7))
    );
    assert_eq!(f.worker, "host-a:10:0");

    let recent = queue.activity(now - Duration::from_secs(1)).await.unwrap();
    assert!(
        recent.minutes.iter().all(|m| m.minute >= minute - 1)
            && recent.minutes.iter().any(|m| m.minute == minute),
        "minutes from `since` on: {:?}",
        recent
            .minutes
            .iter()
            .map(|m| m.minute - minute)
            .collect::<Vec<_>>()
    );

    let mut leaving = ActivityReport::new(a.clone());
    leaving.leaving = true;
    backend.report(&leaving).await.unwrap();
    let activity = queue
        .activity(now - Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        activity
            .workers
            .iter()
            .map(|w| w.id.as_str())
            .collect::<Vec<_>>(),
        ["host-b:20:0"]
    );
    assert_eq!(activity.minutes.len(), 2, "its counts stay");
}
