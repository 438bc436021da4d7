//! A dispatch hands all its jobs to the queue in one `enqueue_many`: when
//! the queue refuses it, none of the dispatch's jobs is stored.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use events::prelude::*;
use events::queue::{Backend, FailedJob, Job, MemoryBackend, Queue, QueueError, QueueStats};
use serde::{Deserialize, Serialize};

#[event(name = "batch.booked")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Booked {
    pub id: u32,
}

#[listener(queue = "batch")]
async fn email_guest(_: &Booked) {}

#[listener(queue = "batch")]
async fn update_calendar(_: &Booked) {}

/// A memory backend whose `enqueue_many` refuses on demand, recording each
/// batch's size. Its single-job `enqueue` stores: a dispatch that enqueued
/// job by job would leave jobs behind.
///
/// With `refuse_second`, it refuses the second job instead: a batch of more
/// than one, and the second single-job `enqueue`, while the first stores.
#[derive(Default)]
struct Flaky {
    inner: MemoryBackend,
    refuse: bool,
    refuse_second: bool,
    batches: Arc<Mutex<Vec<usize>>>,
    enqueues: Mutex<usize>,
}

impl Flaky {
    fn second_refused() -> Flaky {
        Flaky {
            refuse_second: true,
            ..Flaky::default()
        }
    }
}

fn refused(backend: &'static str, why: &str) -> QueueError {
    QueueError::backend(backend, std::io::Error::other(why.to_owned()))
}

#[async_trait]
impl Backend for Flaky {
    async fn enqueue_many(&self, jobs: Vec<Job>) -> Result<(), QueueError> {
        self.batches.lock().unwrap().push(jobs.len());
        if self.refuse {
            return Err(refused("flaky", "disk full"));
        }
        // All or nothing: the second job is refused, so the batch is.
        if self.refuse_second && jobs.len() > 1 {
            return Err(refused("second-refused", "the second job is refused"));
        }
        self.inner.enqueue_many(jobs).await
    }
    async fn enqueue(&self, job: Job) -> Result<(), QueueError> {
        let enqueues = {
            let mut enqueues = self.enqueues.lock().unwrap();
            *enqueues += 1;
            *enqueues
        };
        if self.refuse_second && enqueues >= 2 {
            return Err(refused("second-refused", "the second job is refused"));
        }
        self.inner.enqueue(job).await
    }
    async fn claim(&self, q: &[String], n: usize, l: Duration) -> Result<Vec<Job>, QueueError> {
        self.inner.claim(q, n, l).await
    }
    async fn extend(&self, id: &str, a: u32, l: Duration) -> Result<bool, QueueError> {
        self.inner.extend(id, a, l).await
    }
    async fn ack(&self, id: &str, a: u32) -> Result<bool, QueueError> {
        self.inner.ack(id, a).await
    }
    async fn release(&self, id: &str, a: u32, d: Duration, e: &str) -> Result<bool, QueueError> {
        self.inner.release(id, a, d, e).await
    }
    async fn abandon(&self, id: &str, a: u32, d: Duration) -> Result<bool, QueueError> {
        self.inner.abandon(id, a, d).await
    }
    async fn fail(&self, id: &str, a: u32, e: &str) -> Result<bool, QueueError> {
        self.inner.fail(id, a, e).await
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

/// A dispatcher on a `Flaky` queue, the queue, and the batch sizes it saw.
fn dispatcher(refuse: bool) -> (events::Dispatcher, Queue, Arc<Mutex<Vec<usize>>>) {
    let batches = Arc::new(Mutex::new(Vec::new()));
    let queue = Queue::with_backend(
        "flaky://",
        Flaky {
            refuse,
            batches: batches.clone(),
            ..Flaky::default()
        },
    );
    let dispatcher = events::Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap();
    (dispatcher, queue, batches)
}

#[tokio::test]
async fn a_refused_dispatch_leaves_none_of_its_jobs_behind() {
    let (dispatcher, queue, batches) = dispatcher(true);
    let error = dispatcher.dispatch(Booked { id: 1 }).await.unwrap_err();
    let events::DispatchError::Enqueue { source, .. } = &error else {
        panic!("{error:?}");
    };
    assert!(
        matches!(
            **source,
            QueueError::Backend {
                backend: "flaky",
                ..
            }
        ),
        "{source:?}"
    );
    assert_eq!(*batches.lock().unwrap(), [2], "one batch of both jobs");
    assert!(
        queue.stats().await.unwrap().is_empty(),
        "no job of the dispatch was stored"
    );
    assert_eq!(
        error.listener(),
        Some("enqueue_many::email_guest"),
        "the error names the dispatch's first queued listener"
    );
}

#[tokio::test]
async fn a_dispatch_enqueues_its_jobs_in_one_batch() {
    let (dispatcher, queue, batches) = dispatcher(false);
    let done = dispatcher.dispatch(Booked { id: 2 }).await.unwrap();
    assert_eq!(done.queued(), 2);
    assert_eq!(*batches.lock().unwrap(), [2], "one batch of both jobs");
    assert_eq!(queue.size("batch").await.unwrap(), 2);
    let claimed = queue
        .backend()
        .claim(&["batch".to_owned()], 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        claimed[0].envelope, claimed[1].envelope,
        "one dispatch, one envelope"
    );
    assert!(
        claimed
            .iter()
            .all(|job| job.id.starts_with(&claimed[0].envelope.id.to_string())),
        "each job is named by the event id"
    );
}

/// The same refusal through `.blocking()` (outside any runtime, and from a
/// current-thread runtime's thread): the dispatch fails and the first job is
/// not stored.
#[test]
fn a_blocking_dispatch_whose_second_job_is_refused_stores_neither() {
    let queue = Queue::with_backend("second-refused://", Flaky::second_refused());
    let dispatcher = events::Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap();
    let error = dispatcher
        .dispatch(Booked { id: 3 })
        .blocking()
        .unwrap_err();
    assert!(
        matches!(error, events::DispatchError::Enqueue { .. }),
        "{error:?}"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let error = runtime
        .block_on(async { dispatcher.dispatch(Booked { id: 4 }).blocking() })
        .unwrap_err();
    assert!(
        matches!(error, events::DispatchError::Enqueue { .. }),
        "{error:?}"
    );
    let stored = runtime.block_on(queue.stats()).unwrap();
    assert!(
        stored.is_empty(),
        "no job of either dispatch was stored: {stored:?}"
    );
}

#[tokio::test]
async fn a_dispatch_whose_second_job_is_refused_stores_neither() {
    let queue = Queue::with_backend("second-refused://", Flaky::second_refused());
    let dispatcher = events::Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap();
    let error = dispatcher.dispatch(Booked { id: 5 }).await.unwrap_err();
    assert!(
        matches!(error, events::DispatchError::Enqueue { .. }),
        "{error:?}"
    );
    assert_eq!(
        queue.size("batch").await.unwrap(),
        0,
        "the first job is not stored"
    );
}
