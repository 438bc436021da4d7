//! A worker outlives an outage of its queue: claims that keep failing with
//! errors that can heal (a lost connection, a busy database) are tried
//! again for as long as it takes, while errors that cannot heal stop the
//! worker at once.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use events::prelude::*;
use events::queue::{Backend, FailedJob, Job, MemoryBackend, Queue, QueueError, QueueStats};
use events::{Dispatcher, Worker};
use serde::{Deserialize, Serialize};

#[event(name = "outage.ping")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ping;

static RAN: AtomicUsize = AtomicUsize::new(0);

#[listener(queue = "outage")]
async fn pong(_: &Ping) {
    RAN.fetch_add(1, Ordering::SeqCst);
}

/// A memory backend whose claims fail `down` times in a row, as a queue
/// server that is away fails them, with a transient or a permanent error.
struct Down {
    inner: MemoryBackend,
    down: AtomicU32,
    permanent: bool,
    claims: Mutex<u32>,
}

impl Down {
    fn new(down: u32, permanent: bool) -> Down {
        Down {
            inner: MemoryBackend::default(),
            down: AtomicU32::new(down),
            permanent,
            claims: Mutex::new(0),
        }
    }
}

#[async_trait]
impl Backend for Down {
    async fn enqueue_many(&self, jobs: Vec<Job>) -> Result<(), QueueError> {
        self.inner.enqueue_many(jobs).await
    }
    async fn claim(
        &self,
        queues: &[String],
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Job>, QueueError> {
        *self.claims.lock().unwrap() += 1;
        let left = self.down.load(Ordering::SeqCst);
        if left > 0 {
            self.down.store(left - 1, Ordering::SeqCst);
            let error = std::io::Error::other("connection refused");
            return Err(if self.permanent {
                QueueError::unrecoverable("down", error)
            } else {
                QueueError::backend("down", error)
            });
        }
        self.inner.claim(queues, limit, lease).await
    }
    async fn extend(&self, id: &str, attempt: u32, lease: Duration) -> Result<bool, QueueError> {
        self.inner.extend(id, attempt, lease).await
    }
    async fn ack(&self, id: &str, attempt: u32) -> Result<bool, QueueError> {
        self.inner.ack(id, attempt).await
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
    async fn failed(&self) -> Result<Vec<FailedJob>, QueueError> {
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
    async fn stats(&self) -> Result<Vec<QueueStats>, QueueError> {
        self.inner.stats().await
    }
    async fn clear(&self, queue: &str) -> Result<usize, QueueError> {
        self.inner.clear(queue).await
    }
}

#[tokio::test]
async fn a_worker_outlives_twenty_failed_claims_in_a_row_and_runs_the_job() {
    let queue = Queue::with_backend("down://", Down::new(20, false));
    Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap()
        .dispatch(Ping)
        .await
        .unwrap();
    let report = tokio::time::timeout(
        Duration::from_secs(20),
        Worker::new(queue)
            .queues(["outage"])
            .poll_interval(Duration::from_millis(2))
            .run_until_empty(),
    )
    .await
    .expect("the worker ends once the queue is back and empty")
    .expect("failures that can heal do not stop the worker");
    assert_eq!(report.succeeded, 1);
    assert_eq!(RAN.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_error_that_cannot_heal_stops_the_worker_at_its_first_claim() {
    let backend = Down::new(u32::MAX, true);
    let queue = Queue::with_backend("down://", backend);
    let error = tokio::time::timeout(
        Duration::from_secs(10),
        Worker::new(queue.clone())
            .queues(["outage"])
            .poll_interval(Duration::from_millis(2))
            .run(),
    )
    .await
    .expect("the worker stops at once")
    .unwrap_err();
    assert!(error.is_permanent(), "{error:?}");
}
