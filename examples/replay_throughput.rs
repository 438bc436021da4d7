//! Replay throughput: N stored events replayed into a no-op projector,
//! against two baselines in the same run — paging through the same events
//! with no listener (what the store alone costs), and deserializing the
//! same payloads in a bare loop (what rebuilding the events costs).
//!
//! ```sh
//! cargo run --release --example replay_throughput -- [N] [STORE_URL]
//! # N defaults to 1,000,000; STORE_URL to memory:// (e.g. sqlite:///tmp/replay.db)
//! ```

use std::time::Instant;

use events::prelude::*;
use events::store::{EventQuery, NewEvent, Store};
use serde::{Deserialize, Serialize};

#[event(name = "bench.moved", store)]
#[derive(Serialize, Deserialize)]
struct Moved {
    id: u64,
    to: String,
}

#[listener(name = "bench::noop")]
fn noop(e: &Moved) {
    std::hint::black_box(e);
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let url = args.next().unwrap_or_else(|| "memory://".to_owned());
    let store = events::store::connect(&url).await?;
    let have = store.last_position().await?;
    if have < n {
        let started = Instant::now();
        let mut next = have;
        while next < n {
            let batch: Vec<NewEvent> = (next..(next + 10_000).min(n))
                .map(|i| {
                    NewEvent::new(
                        "bench.moved",
                        format!(r#"{{"id":{i},"to":"warehouse-{}"}}"#, i % 100),
                    )
                })
                .collect();
            next += batch.len() as u64;
            store.append(batch).await?;
        }
        println!(
            "appended {} events in batches of 10,000: {:.0}/s",
            n - have,
            (n - have) as f64 / started.elapsed().as_secs_f64()
        );
    }

    let started = Instant::now();
    let (read, payloads) = page_through(&store).await?;
    let paging = started.elapsed();

    let started = Instant::now();
    for payload in &payloads {
        std::hint::black_box(serde_json::from_str::<Moved>(payload)?);
    }
    let decoding = started.elapsed();
    drop(payloads);

    let started = Instant::now();
    let report = store
        .replay()
        .listener("bench::noop")
        .restart(true)
        .run()
        .await?;
    let replay = started.elapsed();

    let rate = |count: u64, took: std::time::Duration| count as f64 / took.as_secs_f64();
    println!("store: {url}, {n} events");
    println!(
        "  paging only (events(), 1,000 a page): {:>10.0} events/s",
        rate(read, paging)
    );
    println!(
        "  deserializing the payloads alone:     {:>10.0} events/s",
        rate(read, decoding)
    );
    println!(
        "  replay into a no-op projector:        {:>10.0} events/s ({} handled)",
        rate(report.read, replay),
        report.listeners[0].events
    );
    Ok(())
}

async fn page_through(store: &Store) -> Result<(u64, Vec<String>), events::store::StoreError> {
    let mut read = 0;
    let mut payloads = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .events(&EventQuery::new().after(after).limit(1_000))
            .await?;
        read += page.events.len() as u64;
        payloads.extend(page.events.into_iter().map(|e| e.payload));
        match page.next {
            Some(next) => after = next,
            None => return Ok((read, payloads)),
        }
    }
}
