//! A dispatch hands all its jobs to the queue in one `enqueue_many`: when
//! the queue refuses it, none of the dispatch's jobs is stored.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use events::prelude::*;
use events::queue::{Queue, QueueError};
use serde::{Deserialize, Serialize};
use watched::{Watched, refused};

mod watched;

#[event(name = "batch.booked")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Booked {
    pub id: u32,
}

#[listener(queue = "batch")]
async fn email_guest(_: &Booked) {}

#[listener(queue = "batch")]
async fn update_calendar(_: &Booked) {}

/// A memory queue whose `enqueue_many` refuses every batch (`disk full`).
/// Its single-job `enqueue` stores: a dispatch that enqueued job by job
/// would leave jobs behind.
fn flaky() -> Watched {
    Watched::new().refusing(|call| {
        call.starts_with("enqueue_many ")
            .then(|| refused("flaky", "disk full"))
    })
}

/// A memory queue that refuses the second job: a batch of more than one
/// (all or nothing, so the whole batch), and the second single-job
/// `enqueue`, while the first stores.
fn second_refused() -> Watched {
    let singles = AtomicUsize::new(0);
    Watched::new().refusing(move |call| {
        let second = match call.split_once(' ') {
            Some(("enqueue_many", n)) => n.parse::<usize>().unwrap() > 1,
            Some(("enqueue", _)) => singles.fetch_add(1, Ordering::SeqCst) >= 1,
            _ => false,
        };
        second.then(|| refused("second-refused", "the second job is refused"))
    })
}

/// The size of each batch `enqueue_many` was handed, from the log.
fn batches(log: &Mutex<Vec<String>>) -> Vec<usize> {
    log.lock()
        .unwrap()
        .iter()
        .filter_map(|line| line.strip_prefix("enqueue_many "))
        .map(|n| n.parse().unwrap())
        .collect()
}

/// A dispatcher on a queue that refuses every batch (or none), the queue,
/// and the queue's log.
fn dispatcher(refuse: bool) -> (events::Dispatcher, Queue, Arc<Mutex<Vec<String>>>) {
    let watched = if refuse { flaky() } else { Watched::new() };
    let log = watched.log();
    let queue = Queue::with_backend("flaky://", watched);
    let dispatcher = events::Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap();
    (dispatcher, queue, log)
}

#[tokio::test]
async fn a_refused_dispatch_leaves_none_of_its_jobs_behind() {
    let (dispatcher, queue, log) = dispatcher(true);
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
    assert_eq!(batches(&log), [2], "one batch of both jobs");
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
    let (dispatcher, queue, log) = dispatcher(false);
    let done = dispatcher.dispatch(Booked { id: 2 }).await.unwrap();
    assert_eq!(done.queued(), 2);
    assert_eq!(batches(&log), [2], "one batch of both jobs");
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
    let queue = Queue::with_backend("second-refused://", second_refused());
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
    let queue = Queue::with_backend("second-refused://", second_refused());
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
