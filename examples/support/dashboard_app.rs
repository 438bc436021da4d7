//! The shop behind `cargo run --example dashboard` and the browser test
//! (`tests/dashboard_browser.rs` includes this file): a few events, queued
//! listeners that succeed, take their time, always fail or wait, a SQLite
//! queue holding jobs in every state, a worker, and the dashboard served
//! on a local port.

use std::error::Error;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use events::Dispatcher;
use events::Worker;
use events::dashboard::Dashboard;
use events::dashboard::axum::{self, Router};
use events::prelude::*;
use events::queue::Queue;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------- the events

#[event(name = "order.placed")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_id: u64,
    pub customer: String,
    pub total_cents: u64,
}

#[event(name = "payment.requested")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentRequested {
    pub order_id: u64,
    pub card: String,
    pub amount_cents: u64,
}

#[event(name = "report.requested")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportRequested {
    pub report: String,
    pub month: String,
}

// ------------------------------------------------------------- the listeners

/// Sync: runs inside the dispatch (a solid arrow on the Events screen).
#[listener(priority = 10)]
fn log_order(e: &OrderPlaced) {
    let _ = e;
}

/// Queued, and quick: always succeeds.
#[listener(queue = "orders", tries = 3, backoff = ["1s", "5s"])]
async fn record_order(e: &OrderPlaced) -> Result<(), std::io::Error> {
    tokio::time::sleep(Duration::from_millis(20 + e.order_id % 40)).await;
    Ok(())
}

/// Queued with a delay: the reminder waits ten minutes (delayed jobs).
#[listener(queue = "mail", delay = "10m")]
async fn send_review_reminder(e: &OrderPlaced) -> Result<(), std::io::Error> {
    let _ = e;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
#[error("the payment provider declined card {card}: 402 insufficient funds")]
pub struct Declined {
    card: String,
}

/// Queued, and doomed: the provider declines every card, so after two
/// tries the job lands in the failed store.
#[listener(queue = "payments", tries = 2, backoff = "200ms")]
async fn charge_card(e: &PaymentRequested) -> Result<(), Declined> {
    Err(Declined {
        card: e.card.clone(),
    })
}

/// How long a report takes: the worker's state, so the test can make it
/// outlast its run.
#[derive(Clone, Copy)]
pub struct ReportTime(pub Duration);

/// Queued, and slow: holds a worker's slot for [`ReportTime`] (reserved
/// jobs, and ready ones behind them).
#[listener(queue = "reports", timeout = "1h")]
async fn build_report(
    e: &ReportRequested,
    events::State(time): events::State<ReportTime>,
) -> Result<(), std::io::Error> {
    let _ = e;
    tokio::time::sleep(time.0).await;
    Ok(())
}

// ------------------------------------------------------------------ the app

/// How to start it.
pub struct Setup {
    /// The queue's URL; `None`: a SQLite file in a fresh temp directory.
    pub queue_url: Option<String>,
    /// The port on 127.0.0.1 (0: any free one).
    pub port: u16,
    /// The dashboard's token.
    pub token: String,
    /// How long a report takes.
    pub report_time: Duration,
    /// Keep dispatching a few events every few seconds, so the figures move.
    pub keep_busy: bool,
}

/// It, running.
pub struct App {
    pub queue: Queue,
    /// The page's address, with `?token=`.
    pub url: String,
    /// The failed jobs' ids, as the setup left them.
    pub failed: Vec<String>,
    /// Holds the temp directory of the SQLite file, if one was made.
    _dir: Option<tempfile::TempDir>,
}

/// A token nobody can guess: 128 bits from the process's random hasher
/// keys (std seeds them from the operating system) and the clock.
pub fn random_token() -> String {
    let mut token = String::new();
    for _ in 0..2 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        token.push_str(&format!("{:016x}", hasher.finish()));
    }
    token
}

/// Opens the queue, fills it with jobs in every state (ready, delayed,
/// reserved by two running reports, failed), starts a worker
/// (concurrency 2) and serves the dashboard under `/dashboard`.
pub async fn start(setup: Setup) -> Result<App, Box<dyn Error>> {
    let (url, dir) = match setup.queue_url {
        Some(url) => (url, None),
        None => {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}", dir.path().join("shop.sqlite").display());
            (url, Some(dir))
        }
    };
    let queue = events::queue::connect(&url).await?;
    let dashboard = Dashboard::new(queue.clone()).token(setup.token.clone());
    let dispatcher = Dispatcher::builder()
        .queue(queue.clone())
        .observe(dashboard.sync_runs())
        .build()?;

    // Orders (quick jobs, and reminders delayed ten minutes) and payments
    // the provider declines (failed after two tries).
    for order_id in 1..=12 {
        dispatcher.dispatch(order(order_id)).await?;
    }
    for order_id in [3, 7, 11] {
        dispatcher.dispatch(payment(order_id)).await?;
    }
    let worker = Worker::new(queue.clone())
        .concurrency(2)
        .state(ReportTime(setup.report_time));
    tokio::spawn(async move {
        if let Err(error) = worker.run_until(std::future::pending()).await {
            eprintln!("the worker stopped: {error}");
        }
    });
    wait_for(&queue, "the orders to run and the payments to fail", |s| {
        count(s, "orders", |s| s.pending + s.reserved) == 0
            && count(s, "payments", |s| s.failed) == 3
    })
    .await?;

    // Four reports: two run (reserved, holding both slots), two wait.
    for (report, month) in [
        ("sales", "2025-05"),
        ("refunds", "2025-05"),
        ("inventory", "2025-05"),
        ("payouts", "2025-05"),
    ] {
        dispatcher
            .dispatch(ReportRequested {
                report: report.into(),
                month: month.into(),
            })
            .await?;
    }
    wait_for(&queue, "two reports to start", |s| {
        count(s, "reports", |s| s.reserved) == 2
    })
    .await?;
    let failed = queue.failed().await?.into_iter().map(|f| f.id).collect();

    if setup.keep_busy {
        let dispatcher = dispatcher.clone();
        tokio::spawn(async move {
            let mut n = 100;
            loop {
                tokio::time::sleep(Duration::from_secs(3)).await;
                n += 1;
                let _ = dispatcher.dispatch(order(n)).await;
                if n % 10 == 0 {
                    let _ = dispatcher.dispatch(payment(n)).await;
                }
                if n % 20 == 0 {
                    let _ = dispatcher
                        .dispatch(ReportRequested {
                            report: format!("hourly-{n}"),
                            month: "2025-06".into(),
                        })
                        .await;
                }
            }
        });
    }

    // `/` leads to the page (keeping a `?token=`); `mount` answers
    // `/dashboard/` too.
    let to_page = |uri: axum::http::Uri| async move {
        let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        axum::response::Redirect::to(&format!("/dashboard{query}"))
    };
    let app = Router::new()
        .route("/", axum::routing::get(to_page))
        .merge(dashboard.mount("/dashboard"));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", setup.port)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("the dashboard's server stopped: {error}");
        }
    });
    Ok(App {
        queue,
        url: format!("http://{addr}/dashboard?token={}", setup.token),
        failed,
        _dir: dir,
    })
}

fn order(order_id: u64) -> OrderPlaced {
    let customers = ["ada", "grace", "edsger", "barbara", "ken"];
    OrderPlaced {
        order_id,
        customer: customers[order_id as usize % customers.len()].to_owned(),
        total_cents: 1_250 * order_id,
    }
}

fn payment(order_id: u64) -> PaymentRequested {
    PaymentRequested {
        order_id,
        card: format!("**** {:04}", 4000 + order_id),
        amount_cents: 1_250 * order_id,
    }
}

fn count(
    stats: &[events::queue::QueueStats],
    queue: &str,
    what: impl Fn(&events::queue::QueueStats) -> usize,
) -> usize {
    stats.iter().filter(|s| s.queue == queue).map(what).sum()
}

/// Waits (up to 30 s) until the queue's counts satisfy `done`.
async fn wait_for(
    queue: &Queue,
    what: &str,
    done: impl Fn(&[events::queue::QueueStats]) -> bool,
) -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    loop {
        let stats = queue.stats().await?;
        if done(&stats) {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(30) {
            return Err(format!("waited 30 s for {what}; the queues hold {stats:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
