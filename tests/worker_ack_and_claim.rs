//! A worker acks a job that succeeded together with its next claim
//! (`Backend::ack_and_claim`), so a backend that can make the two one write
//! pays one per job; and the last ack still goes out when the worker stops.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use events::prelude::*;
use events::queue::Queue;
use events::{Dispatcher, Worker};
use serde::{Deserialize, Serialize};
use watched::Watched;

mod watched;

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

/// The calls a worker made to claim and ack, in order.
fn claims_and_acks(log: &Mutex<Vec<String>>) -> Vec<String> {
    log.lock()
        .unwrap()
        .iter()
        .filter_map(|line| line.split(' ').next())
        .filter(|call| matches!(*call, "claim" | "ack" | "ack_and_claim"))
        .map(str::to_owned)
        .collect()
}

async fn queue_with(ticks: u32) -> (Queue, Arc<Mutex<Vec<String>>>) {
    let watched = Watched::new();
    let calls = watched.log();
    let queue = Queue::with_backend("memory://counting", watched);
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
    let calls = claims_and_acks(&calls);
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
    let calls = claims_and_acks(&calls);
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
    let watched = Watched::new().slow_stats(Duration::from_millis(200));
    let queue = Queue::with_backend("memory://slow-stats", watched);
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
