//! A worker acks a job that succeeded together with its next claim
//! (`Backend::ack_and_claim`), so a backend that can make the two one write
//! pays one per job; and the last ack still goes out when the worker stops.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use events::prelude::*;
use events::queue::{Backend, Job, MemoryBackend, Queue, QueueError};
use events::{Dispatcher, Worker};
use serde::{Deserialize, Serialize};

#[event(name = "ack_and_claim.tick")]
#[derive(Serialize, Deserialize)]
pub struct Tick {
    pub n: u32,
}

#[listener(queue = "ticks")]
async fn tick(_: &Tick) {}

#[event(name = "ack_and_claim.slow_tick")]
#[derive(Serialize, Deserialize)]
pub struct SlowTick;

#[listener(queue = "slow_ticks")]
async fn slow_tick(_: &SlowTick) {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// A memory queue that counts the worker's calls.
#[derive(Default)]
struct Counting {
    inner: MemoryBackend,
    calls: Arc<Mutex<Vec<&'static str>>>,
    /// How long `stats` takes after reading the counts.
    slow_stats: Duration,
}

impl Counting {
    fn record(&self, call: &'static str) {
        self.calls.lock().unwrap().push(call);
    }
}

#[async_trait::async_trait]
impl Backend for Counting {
    async fn enqueue_many(&self, jobs: Vec<Job>) -> Result<(), QueueError> {
        self.inner.enqueue_many(jobs).await
    }
    async fn claim(
        &self,
        queues: &[String],
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Job>, QueueError> {
        self.record("claim");
        self.inner.claim(queues, limit, lease).await
    }
    async fn extend(&self, id: &str, attempt: u32, lease: Duration) -> Result<bool, QueueError> {
        self.inner.extend(id, attempt, lease).await
    }
    async fn ack(&self, id: &str, attempt: u32) -> Result<bool, QueueError> {
        self.record("ack");
        self.inner.ack(id, attempt).await
    }
    async fn ack_and_claim(
        &self,
        id: &str,
        attempt: u32,
        queues: &[String],
        limit: usize,
        lease: Duration,
    ) -> (Result<bool, QueueError>, Result<Vec<Job>, QueueError>) {
        self.record("ack_and_claim");
        self.inner
            .ack_and_claim(id, attempt, queues, limit, lease)
            .await
    }
    async fn release(
        &self,
        id: &str,
        attempt: u32,
        delay: Duration,
        error: &str,
    ) -> Result<bool, QueueError> {
        self.inner.release(id, attempt, delay, error).await
    }
    async fn abandon(&self, id: &str, attempt: u32, delay: Duration) -> Result<bool, QueueError> {
        self.inner.abandon(id, attempt, delay).await
    }
    async fn fail(&self, id: &str, attempt: u32, error: &str) -> Result<bool, QueueError> {
        self.inner.fail(id, attempt, error).await
    }
    async fn failed(&self) -> Result<Vec<events::queue::FailedJob>, QueueError> {
        self.inner.failed().await
    }
    async fn retry(&self, id: &str) -> Result<Option<String>, QueueError> {
        self.inner.retry(id).await
    }
    async fn retry_all(&self) -> Result<usize, QueueError> {
        self.inner.retry_all().await
    }
    async fn forget(&self, id: &str) -> Result<bool, QueueError> {
        self.inner.forget(id).await
    }
    async fn flush_failed(&self) -> Result<usize, QueueError> {
        self.inner.flush_failed().await
    }
    async fn stats(&self) -> Result<Vec<events::queue::QueueStats>, QueueError> {
        let stats = self.inner.stats().await;
        tokio::time::sleep(self.slow_stats).await;
        stats
    }
    async fn clear(&self, queue: &str) -> Result<usize, QueueError> {
        self.inner.clear(queue).await
    }
}

async fn queue_with(ticks: u32) -> (Queue, Arc<Mutex<Vec<&'static str>>>) {
    let counting = Counting::default();
    let calls = counting.calls.clone();
    let queue = Queue::with_backend("memory://counting", counting);
    let dispatcher = Dispatcher::builder().queue(queue.clone()).build().unwrap();
    for n in 0..ticks {
        dispatcher.dispatch(Tick { n }).await.unwrap();
    }
    (queue, calls)
}

#[tokio::test]
async fn each_ack_goes_out_with_the_next_claim() {
    let (queue, calls) = queue_with(4).await;
    let report = Worker::new(queue.clone())
        .queues(["ticks"])
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!(report.succeeded, 4);
    // One lone claim to start; then each job's ack with the next claim (the
    // last one finding the queue empty).
    let calls = calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        [
            "claim",
            "ack_and_claim",
            "ack_and_claim",
            "ack_and_claim",
            "ack_and_claim"
        ]
    );
    assert_eq!(queue.size("ticks").await.unwrap(), 0);
}

#[tokio::test]
async fn a_worker_that_stops_sends_its_last_ack_alone() {
    let (queue, calls) = queue_with(4).await;
    let report = Worker::new(queue.clone())
        .queues(["ticks"])
        .max_jobs(2)
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!(report.succeeded, 2);
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls, ["claim", "ack_and_claim", "ack"]);
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats[0].pending, stats[0].reserved), (2, 0), "{stats:?}");
}

/// Slots that find the queue empty while another still holds a job wait
/// for it to settle, and must be woken when it settles, whenever that is.
/// Here the look (`stats`) is slow, so the job settles between the look and
/// the wait: a slot that listened only once it had looked slept a whole
/// poll interval (30 s) before `run_until_empty` could end.
#[tokio::test]
async fn a_job_settled_while_a_slot_looks_still_wakes_it() {
    let counting = Counting {
        slow_stats: Duration::from_millis(200),
        ..Counting::default()
    };
    let queue = Queue::with_backend("memory://slow-stats", counting);
    let dispatcher = Dispatcher::builder().queue(queue.clone()).build().unwrap();
    // One slot runs it (100 ms) while the other looks (200 ms) and finds
    // it held.
    dispatcher.dispatch(SlowTick).await.unwrap();
    let worked = tokio::time::timeout(
        Duration::from_secs(10),
        Worker::new(queue)
            .queues(["slow_ticks"])
            .concurrency(2)
            .poll_interval(Duration::from_secs(30))
            .run_until_empty(),
    )
    .await;
    let report = worked
        .expect("a slot slept through the job it waited for")
        .unwrap();
    assert_eq!(report.succeeded, 1);
}
