//! Requests of one process share round trips; a caller cancelled while its
//! request waits for one (a heartbeat's extension dropped by a `select!`,
//! a web request whose client went away) must not strand the others.
//!
//! Needs a Redis server (see `support`).

mod support;

use std::time::Duration;

use events_core::Envelope;
use events_core::queue::{Backend, Job};
use futures_util::FutureExt;

fn job(n: u32) -> Job {
    let mut job = Job::from_parts(
        format!("job-{n}"),
        "q",
        "tests::listener",
        "test.event",
        "{}",
        Envelope::new(),
    );
    job.max_tries = 3;
    job
}

#[tokio::test(flavor = "current_thread")]
async fn a_request_cancelled_before_its_round_trip_strands_no_other() {
    support::require_redis();
    let (backend, _cleanup) = support::fresh();
    backend.enqueue(job(1)).await.unwrap();
    let claimed = backend
        .claim(&["q".to_owned()], 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);

    // Polled once and dropped, as a `select!` drops a heartbeat when its
    // job ends: it was the first request of its round trip.
    let extension = backend.extend("job-1", 1, Duration::from_secs(60));
    assert!(extension.now_or_never().is_none(), "it waits for Redis");

    // The next requests still get their answers.
    let acked = tokio::time::timeout(Duration::from_secs(5), backend.ack("job-1", 1))
        .await
        .expect("an ack after a cancelled request is answered, not stranded")
        .unwrap();
    assert!(acked);
    let stats = tokio::time::timeout(Duration::from_secs(5), backend.stats())
        .await
        .expect("answered")
        .unwrap();
    assert!(stats.is_empty(), "{stats:?}");
}
