//! What a build of the facade with no feature still does: sync listeners
//! run inside dispatch and queued ones run in-process, with no SQLite and no
//! CLI compiled in. CI runs it as
//! `cargo test --no-default-features --test no_features`; it passes with
//! every feature too.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event(name = "bare.ping")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ping {
    pub n: u32,
}

static SYNC: AtomicU32 = AtomicU32::new(0);
static QUEUED: AtomicU32 = AtomicU32::new(0);

#[listener]
fn count_sync(e: &Ping) {
    SYNC.fetch_add(e.n, Ordering::SeqCst);
}

#[listener(queue = "bare", tries = 2)]
async fn count_queued(e: &Ping) {
    QUEUED.fetch_add(e.n, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_in_process_queued_listeners_run_without_features() {
    let done = Ping { n: 3 }.dispatch().await.unwrap();
    assert_eq!((done.ran(), done.queued()), (1, 1));
    assert_eq!(SYNC.load(Ordering::SeqCst), 3, "the sync listener ran");
    for _ in 0..200 {
        if QUEUED.load(Ordering::SeqCst) == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        QUEUED.load(Ordering::SeqCst),
        3,
        "the queued listener ran in-process"
    );
}

#[tokio::test]
async fn memory_queues_and_workers_need_no_feature() {
    let queue = events::queue::connect("memory://").await.unwrap();
    let dispatcher = events::Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap();
    dispatcher.dispatch(Ping { n: 0 }).await.unwrap();
    assert_eq!(queue.size("bare").await.unwrap(), 1);
    let report = events::Worker::new(queue)
        .queues(["bare"])
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!(report.succeeded, 1);
}

#[cfg(not(feature = "sqlite"))]
#[test]
fn sqlite_urls_name_the_feature_to_turn_on() {
    let error = events::queue::open("sqlite://queue.db").unwrap_err();
    assert!(
        error
            .to_string()
            .contains("turn on the `events` crate's `sqlite` feature"),
        "{error}"
    );
}

/// Without the `sqlite` feature, `sqlite://` names the feature to turn on.
#[cfg(not(feature = "sqlite"))]
#[test]
fn sqlite_without_its_feature_names_the_feature() {
    let error = events::queue::Queue::open("sqlite://jobs.db").unwrap_err();
    assert!(
        matches!(
            &error,
            events::queue::QueueError::MissingFeature {
                feature: "sqlite",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("turn on the `events` crate's `sqlite` feature"),
        "{error}"
    );
}
