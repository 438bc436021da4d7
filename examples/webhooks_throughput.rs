//! Signed webhook deliveries per second to a fast local receiver (a hyper
//! server in this process answering 200 at once), through the whole path:
//! stored events -> `Webhooks::enqueue_for` -> the queue -> a worker ->
//! sign -> POST -> log -> count. Baselines measured in the same run:
//! the signing alone (HMAC-SHA256 of the same bodies), and the same POSTs
//! sent straight with a bare hyper client at the same concurrency (no
//! queue, no signing, no log).
//!
//! ```text
//! cargo run --release --features webhooks --example webhooks_throughput [-- DELIVERIES]
//! ```
//!
//! Figures in BENCHMARKS.md. Shared machines are noisy: compare ratios.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use events::store::{NewEvent, Store, StoredEvent};
use events::webhooks::{NewSubscription, QUEUE, Secret, Webhooks};
use events::{Queue, Worker};
use http_body_util::{BodyExt as _, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// How many requests go out at once (worker concurrency, the endpoint's
/// limit, the baseline client's tasks).
const CONCURRENCY: usize = 32;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    let (port, received) = receiver().await?;
    let url = format!("http://127.0.0.1:{port}/hook");
    println!("{n} deliveries, {CONCURRENCY} at once, receiver on {url}");

    // The bodies every case sends.
    let store = Store::memory();
    let mut stored = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let batch: Vec<NewEvent> = chunk
            .iter()
            .map(|i| {
                NewEvent::new(
                    "appointment.created",
                    format!(r#"{{"appointment_id":{i},"source":"web","customer":{{"id":{i},"tier":"gold"}}}}"#),
                )
            })
            .collect();
        let ids: Vec<_> = batch.iter().map(|e| e.id).collect();
        store.append(batch).await?;
        for id in ids {
            stored.push(store.event(id).await?.ok_or("stored event missing")?);
        }
    }

    // Baseline 1: signing alone.
    let secret = Secret::parse(&Secret::generate()?)?;
    let bodies: Vec<String> = stored.iter().map(|e| e.payload.clone()).collect();
    let started = Instant::now();
    let mut sink = 0usize;
    let ts = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    for (i, body) in bodies.iter().enumerate() {
        sink += secret.sign(&format!("msg_{i}"), ts, body.as_bytes()).len();
    }
    let signing = rate(n, started.elapsed());
    println!("signing alone:            {signing:>10.0} signatures/s ({sink} bytes)");

    // Baseline 2: the same POSTs from a bare hyper client.
    let bare = bare_posts(&url, &bodies).await?;
    println!("bare hyper POSTs:         {bare:>10.0} requests/s");

    // Through the queue: memory, then SQLite.
    let memory = through_queue(&store, &stored, Queue::memory(), &url, &received).await?;
    println!(
        "webhooks, memory queue:   {memory:>10.0} deliveries/s  ({:.0} % of bare POSTs)",
        100.0 * memory / bare
    );
    let dir = tempfile::tempdir()?;
    let sqlite_url = format!("sqlite://{}", dir.path().join("queue.db").display());
    let sqlite = events::queue::connect(&sqlite_url).await?;
    let sqlite = through_queue(&store, &stored, sqlite, &url, &received).await?;
    println!(
        "webhooks, SQLite queue:   {sqlite:>10.0} deliveries/s  ({:.0} % of bare POSTs)",
        100.0 * sqlite / bare
    );
    Ok(())
}

fn rate(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

/// Enqueues one delivery per event and works the queue until every one was
/// received; deliveries per second from enqueue to the last answer.
async fn through_queue(
    store: &Store,
    stored: &[StoredEvent],
    queue: Queue,
    url: &str,
    received: &Arc<AtomicU64>,
) -> Result<f64, Box<dyn std::error::Error>> {
    let webhooks = Webhooks::new(store.clone())
        .allow_private(true)
        .require_https(false)
        .endpoint_concurrency(CONCURRENCY);
    let sub = webhooks
        .subscribe(NewSubscription::new(url, ["appointment.*"]))
        .await?;
    let before = received.load(Ordering::Relaxed);
    let started = Instant::now();
    let enqueued = webhooks.enqueue_for(stored, &queue).await?;
    let enqueue_took = started.elapsed();
    let report = Worker::new(queue.clone())
        .queues([QUEUE])
        .state(webhooks.clone())
        .concurrency(CONCURRENCY)
        .run_until_empty()
        .await?;
    let took = started.elapsed();
    let got = received.load(Ordering::Relaxed) - before;
    assert_eq!(got as usize, enqueued, "every delivery arrived once");
    assert_eq!(report.succeeded as usize, enqueued);
    println!(
        "  ({enqueued} jobs enqueued in {:.0} ms; {} released while the endpoint was busy)",
        enqueue_took.as_secs_f64() * 1000.0,
        report.released
    );
    webhooks.unsubscribe(&sub.id).await?;
    Ok(rate(enqueued, took))
}

/// The same bodies POSTed by `CONCURRENCY` tasks with a bare pooled client.
async fn bare_posts(url: &str, bodies: &[String]) -> Result<f64, Box<dyn std::error::Error>> {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let uri: hyper::Uri = url.parse()?;
    let bodies = Arc::new(bodies.to_vec());
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, uri, bodies, next) =
            (client.clone(), uri.clone(), bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(body) = bodies.get(i) else { break };
                let request = hyper::Request::post(uri.clone())
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body.clone())))
                    .expect("a request");
                let response = client.request(request).await.expect("the receiver answers");
                let _ = response.into_body().collect().await;
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    Ok(rate(bodies.len(), started.elapsed()))
}

/// A hyper server answering every request 200 at once, counting them.
async fn receiver() -> Result<(u16, Arc<AtomicU64>), std::io::Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let counter = counter.clone();
                    async move {
                        let _ = request.into_body().collect().await;
                        counter.fetch_add(1, Ordering::Relaxed);
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                            b"ok",
                        ))))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    Ok((port, count))
}
