//! An idle worker waits for a wake-up or for the next job it knows to be
//! due; what one claim learned is not forgotten by another's.
//!
//! Needs a Redis server (see `support`).

mod support;

use std::time::{Duration, Instant, SystemTime};

use events_core::Envelope;
use events_core::queue::{Backend, Job};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_on_another_queue_does_not_make_a_waiting_slot_miss_a_due_job() {
    support::require_redis();
    let (backend, _cleanup) = support::fresh();
    // The wake-up channel comes up (its first message wakes the waiter).
    let _ =
        tokio::time::timeout(Duration::from_secs(2), backend.wait(Duration::from_secs(2))).await;

    let mut later = Job::from_parts("due-soon", "qa", "tests::l", "e", "{}", Envelope::new());
    later.available_at = SystemTime::now() + Duration::from_millis(400);
    backend.enqueue(later).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    // One worker's claim on `qa` learns the job is due in ~350 ms; another
    // worker's claim on `qb`, which has nothing due, follows.
    assert!(
        backend
            .claim(&["qa".into()], 1, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        backend
            .claim(&["qb".into()], 1, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );

    let started = Instant::now();
    backend.wait(Duration::from_secs(20)).await;
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(2),
        "the waiting slot woke when the job was due, not after {waited:?}"
    );
    let claimed = backend
        .claim(&["qa".into()], 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "due by then");
}
