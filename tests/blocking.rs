//! Dispatching from code that is not async: a plain `main`, a thread of its
//! own, a blocking thread inside a runtime, and each runtime flavour. Sync
//! listeners run at once, async ones are awaited, queued ones enqueued.

use std::sync::Mutex;
use std::time::Duration;

use events::prelude::*;
use events::{Dispatcher, Worker};
use serde::{Deserialize, Serialize};

static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn seen(tag: &str) -> Vec<String> {
    SEEN.lock()
        .unwrap()
        .iter()
        .filter(|line| line.ends_with(&format!(" {tag}")))
        .cloned()
        .collect()
}

#[event(name = "report.exported")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exported {
    pub tag: String,
}

#[listener(priority = 2)]
fn sync_first(e: &Exported) {
    SEEN.lock().unwrap().push(format!("sync {}", e.tag));
}

#[listener(priority = 1)]
async fn async_second(e: &Exported) {
    tokio::time::sleep(Duration::from_millis(5)).await;
    SEEN.lock().unwrap().push(format!("async {}", e.tag));
}

#[listener(queue = "blocking-exports")]
async fn queued_third(e: &Exported) {
    SEEN.lock().unwrap().push(format!("queued {}", e.tag));
}

fn exported(tag: &str) -> Exported {
    Exported {
        tag: tag.to_owned(),
    }
}

#[test]
fn from_a_thread_without_a_runtime_in_process_jobs_still_run() {
    let done = exported("plain").dispatch().blocking().unwrap();
    assert_eq!((done.ran(), done.queued()), (2, 1));
    assert_eq!(seen("plain")[..2], ["sync plain", "async plain"]);
    // The queued listener runs in-process, on the library's own runtime,
    // after `blocking` returned.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while seen("plain").len() < 3 {
        assert!(std::time::Instant::now() < deadline, "{:?}", seen("plain"));
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(seen("plain")[2], "queued plain");
}

#[test]
fn onto_a_queue_from_a_thread_without_a_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
    let queue = events::queue::open(&url).unwrap();
    let dispatcher = Dispatcher::builder().queue(queue.clone()).build().unwrap();
    let done = dispatcher.dispatch(exported("sqlite")).blocking().unwrap();
    assert_eq!((done.ran(), done.queued()), (2, 1));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = runtime
        .block_on(
            Worker::new(queue)
                .queues(["blocking-exports"])
                .run_until_empty(),
        )
        .unwrap();
    assert_eq!(report.succeeded, 1);
    assert_eq!(
        seen("sqlite"),
        ["sync sqlite", "async sqlite", "queued sqlite"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_a_multi_thread_runtime() {
    let done = tokio::task::spawn(async {
        // Sync code called from a task: it blocks in place.
        exported("multi").dispatch().blocking()
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(done.ran(), 2);
    assert_eq!(seen("multi")[..2], ["sync multi", "async multi"]);
}

#[tokio::test(flavor = "current_thread")]
async fn inside_a_current_thread_runtime_and_on_its_blocking_pool() {
    let done = exported("current").dispatch().blocking().unwrap();
    assert_eq!(done.ran(), 2);
    assert_eq!(seen("current")[..2], ["sync current", "async current"]);

    let done = tokio::task::spawn_blocking(|| exported("pool").dispatch().blocking())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.ran(), 2);
    assert_eq!(seen("pool")[..2], ["sync pool", "async pool"]);
}
