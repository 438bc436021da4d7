//! Payloads that can never run: a job whose payload no longer deserializes
//! fails at its first try, whatever its tries; an event that would be
//! stored as such a payload (a NaN or infinite float, which JSON writes as
//! `null`) fails its dispatch in words and enqueues nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use events::prelude::*;
use events::queue::{Job, Queue};
use events::{DispatchError, Worker};
use serde::{Deserialize, Serialize};

#[event(name = "reading.taken")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadingTaken {
    pub sensor: String,
    pub celsius: f64,
}

static STORED: AtomicUsize = AtomicUsize::new(0);

#[listener(queue = "readings", tries = 3, backoff = "1h")]
async fn store_reading(_: &ReadingTaken) {
    STORED.fetch_add(1, Ordering::SeqCst);
}

/// A job for `store_reading` whose payload is not a `ReadingTaken`.
fn poisoned_job() -> Job {
    let now = SystemTime::now();
    let mut job = Job::from_parts(
        "poisoned-1",
        "readings",
        "payload_errors::store_reading",
        "reading.taken",
        r#"{"sensor":"attic","celsius":null}"#,
        events::Envelope::new(),
    );
    job.max_tries = 3;
    job.available_at = now;
    job.first_enqueued_at = now;
    job
}

#[tokio::test]
async fn a_payload_that_does_not_deserialize_fails_at_its_first_try() {
    let queue = Queue::memory();
    queue.enqueue(poisoned_job()).await.unwrap();
    let worker = Worker::new(queue.clone())
        .queues(["readings"])
        .run_until_empty();
    let report = tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("the worker waited to retry a payload that can never deserialize")
        .unwrap();
    assert_eq!((report.failed, report.retried), (1, 0), "{report:?}");
    let failed = queue.failed().await.unwrap();
    assert_eq!(
        failed.len(),
        1,
        "the job is in the failed store: {failed:?}"
    );
    assert_eq!(
        failed[0].attempts, 1,
        "no try is spent on a payload that can never deserialize"
    );
    assert!(
        failed[0].error.contains("no longer deserializes"),
        "{}",
        failed[0].error
    );
    assert_eq!(queue.size("readings").await.unwrap(), 0);
}

#[tokio::test]
async fn a_nan_field_fails_the_dispatch_and_enqueues_nothing() {
    let queue = Queue::memory();
    let dispatcher = events::Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap();
    let error = dispatcher
        .dispatch(ReadingTaken {
            sensor: "attic".into(),
            celsius: f64::NAN,
        })
        .await
        .unwrap_err();
    let DispatchError::Unstorable {
        listener,
        event,
        field,
        ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(*listener, "payload_errors::store_reading");
    assert_eq!(*event, "reading.taken");
    assert_eq!(field.as_deref(), Some("celsius"));
    let message = error.to_string();
    assert!(
        message.contains("`celsius`") && message.contains("NaN"),
        "the error says which field and why: {message}"
    );
    assert_eq!(
        queue.size("readings").await.unwrap(),
        0,
        "nothing was enqueued"
    );

    let infinite = dispatcher
        .dispatch(ReadingTaken {
            sensor: "oven".into(),
            celsius: f64::INFINITY,
        })
        .await;
    assert!(
        matches!(infinite, Err(DispatchError::Unstorable { .. })),
        "{infinite:?}"
    );
    assert_eq!(queue.size("readings").await.unwrap(), 0);

    // A finite reading still goes through.
    let done = dispatcher
        .dispatch(ReadingTaken {
            sensor: "attic".into(),
            celsius: 21.0,
        })
        .await
        .unwrap();
    assert_eq!(done.queued(), 1);
}

#[event(name = "reading.batch")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Batch {
    pub note: Option<String>,
    pub readings: Vec<Point>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Point {
    pub at: u64,
    pub value: f32,
}

#[listener(queue = "readings")]
async fn store_batch(_: &Batch) {}

#[tokio::test]
async fn the_error_names_a_nested_field_and_a_null_option_is_fine() {
    let queue = Queue::memory();
    let dispatcher = events::Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap();
    let fine = Batch {
        note: None,
        readings: vec![Point { at: 1, value: 1.5 }],
    };
    assert_eq!(dispatcher.dispatch(fine).await.unwrap().queued(), 1);
    let poisoned = Batch {
        note: None,
        readings: vec![
            Point { at: 1, value: 1.5 },
            Point {
                at: 2,
                value: f32::NEG_INFINITY,
            },
        ],
    };
    let error = dispatcher.dispatch(poisoned).await.unwrap_err();
    let DispatchError::Unstorable { field, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(field.as_deref(), Some("readings[1].value"));
    assert_eq!(queue.size("readings").await.unwrap(), 1);
}
