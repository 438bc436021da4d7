//! What the HTTP API adds to reading the event log: the same queries asked
//! of the store directly (the baseline) and through `GET /events..` over a
//! real socket with a keep-alive client, in one run.
//!
//! ```text
//! cargo run --release -p events-http --example http_cost [EVENTS] [REQUESTS]
//! ```
//!
//! A memory store holds EVENTS events (default 100,000) over 1,000
//! entities; each query runs REQUESTS times (default 2,000), one at a time.

use std::time::{Duration, Instant, SystemTime};

use events_core::store::{Entity, EventQuery, NewEvent, Store, TimelineQuery};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

fn summary(name: &str, mut times: Vec<Duration>) -> f64 {
    times.sort();
    let total: Duration = times.iter().sum();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    let mean = total.as_secs_f64() * 1e6 / times.len() as f64;
    println!(
        "{name:<44} mean {mean:>8.1} µs  p50 {:>8.1} µs  p99 {:>8.1} µs  {:>8.0} /s",
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        times.len() as f64 / total.as_secs_f64(),
    );
    mean
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let events: u64 = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let requests: usize = args.next().map_or(Ok(2_000), |a| a.parse())?;

    let store = Store::memory();
    let start = SystemTime::now() - Duration::from_secs(events);
    for chunk in (0..events).collect::<Vec<_>>().chunks(10_000) {
        let batch = chunk
            .iter()
            .map(|&n| {
                NewEvent::new(
                    if n % 3 == 0 {
                        "invoice.issued"
                    } else {
                        "appointment.created"
                    },
                    format!(r#"{{"n":{n},"source":"web","customer":{{"tier":"gold"}}}}"#),
                )
                .entity(Entity::new("appointment", (n % 1000).to_string()))
                .occurred_at(start + Duration::from_secs(n))
                .with("actor_id", "alice")
            })
            .collect();
        store.append(batch).await?;
    }

    let api = events_http::Api::new(store.clone()).token("bench");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = events_http::axum::serve(listener, api.router()).await;
    });
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let get = |path: String| {
        let client = client.clone();
        let uri = format!("{base}{path}");
        async move {
            let request = hyper::Request::get(uri)
                .header("authorization", "Bearer bench")
                .body(Empty::new())
                .expect("a request");
            let response = client.request(request).await.expect("an answer");
            assert_eq!(response.status(), 200);
            response
                .into_body()
                .collect()
                .await
                .expect("a body")
                .to_bytes()
                .len()
        }
    };

    println!("{events} events, {requests} requests each, one at a time\n");
    type Case = (&'static str, EventQuery, String);
    let cases: [Case; 3] = [
        (
            "first page of 100, newest first",
            EventQuery::new().order(events_core::store::Order::Desc),
            "/events?order=desc".into(),
        ),
        (
            "10 events of one name after a cursor",
            EventQuery::new()
                .name("invoice.*")
                .after(events / 2)
                .limit(10),
            format!("/events?event_name=invoice.*&after={}&limit=10", events / 2),
        ),
        (
            "1 event",
            EventQuery::new().limit(1),
            "/events?limit=1".into(),
        ),
    ];
    for (name, query, path) in cases {
        let mut direct = Vec::with_capacity(requests);
        let mut bytes = 0;
        for _ in 0..requests {
            let t = Instant::now();
            let page = store.events(&query).await?;
            // What the route does besides: every event to JSON text.
            bytes = serde_json::to_vec(&page)?.len();
            direct.push(t.elapsed());
        }
        let mut http = Vec::with_capacity(requests);
        let mut body = 0;
        for _ in 0..requests {
            let t = Instant::now();
            body = get(path.clone()).await;
            http.push(t.elapsed());
        }
        println!("{name} ({bytes} B serialized direct, {body} B over HTTP)");
        let a = summary("  store + serde_json (baseline)", direct);
        let b = summary(&format!("  GET {path}"), http);
        println!("  HTTP adds {:.1} µs a request\n", b - a);
    }

    let mut direct = Vec::with_capacity(requests);
    let query = TimelineQuery::new(Entity::new("appointment", "7")).related(true);
    for _ in 0..requests {
        let t = Instant::now();
        let page = store.timeline(&query).await?;
        serde_json::to_vec(&page)?;
        direct.push(t.elapsed());
    }
    let mut http = Vec::with_capacity(requests);
    let path = "/events/timeline?entity_type=appointment&entity_id=7&related=true".to_owned();
    for _ in 0..requests {
        let t = Instant::now();
        get(path.clone()).await;
        http.push(t.elapsed());
    }
    println!("timeline of one entity, first 100 (memory store scans the log)");
    let a = summary("  store + serde_json (baseline)", direct);
    let b = summary("  GET /events/timeline", http);
    println!("  HTTP adds {:.1} µs a request", b - a);
    Ok(())
}
