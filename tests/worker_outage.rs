//! A worker outlives an outage of its queue: claims that keep failing with
//! errors that can heal (a lost connection, a busy database) are tried
//! again for as long as it takes, while errors that cannot heal stop the
//! worker at once.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use events::prelude::*;
use events::queue::{Queue, QueueError};
use events::{Dispatcher, Worker};
use serde::{Deserialize, Serialize};
use watched::Watched;

mod watched;

#[event(name = "outage.ping")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ping;

static RAN: AtomicUsize = AtomicUsize::new(0);

#[listener(queue = "outage")]
async fn pong(_: &Ping) {
    RAN.fetch_add(1, Ordering::SeqCst);
}

/// A memory queue whose claims fail `down` times in a row, as a queue
/// server that is away fails them, with a transient or a permanent error.
fn down(down: u32, permanent: bool) -> Watched {
    let left = AtomicU32::new(down);
    Watched::new().refusing(move |call| {
        if call != "claim" || left.load(Ordering::SeqCst) == 0 {
            return None;
        }
        left.fetch_sub(1, Ordering::SeqCst);
        let error = std::io::Error::other("connection refused");
        Some(if permanent {
            QueueError::unrecoverable("down", error)
        } else {
            QueueError::backend("down", error)
        })
    })
}

#[tokio::test]
async fn a_worker_outlives_twenty_failed_claims_in_a_row_and_runs_the_job() {
    let queue = Queue::with_backend("down://", down(20, false));
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
    let queue = Queue::with_backend("down://", down(u32::MAX, true));
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
