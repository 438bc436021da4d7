//! The dashboard in the browser, on a shop with jobs in every state:
//!
//! ```text
//! cargo run --example dashboard --features dashboard
//! cargo run --example dashboard --features dashboard -- --port 0
//! ```
//!
//! It opens a SQLite queue in a temp directory (or `EVENTS_QUEUE_URL`),
//! dispatches orders (quick jobs, and reminders delayed ten minutes),
//! payments the provider declines (failed jobs) and slow reports (two
//! running, the rest waiting), starts a worker (concurrency 2) and serves
//! the dashboard at `http://127.0.0.1:<port>/dashboard` (`--port N`, else
//! `PORT`, else 8080; 0 picks a free one). The token is
//! `EVENTS_DASHBOARD_TOKEN`, or a random one; the line starting with
//! `dashboard: ` is the address to open, with `?token=` (the page trades it
//! for a cookie). A few events keep arriving every few seconds, so the
//! figures move. Ctrl-C stops it.

#[path = "support/dashboard_app.rs"]
mod dashboard_app;

#[path = "support/port.rs"]
mod port;

use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = port::port()?;
    let token = std::env::var(events::dashboard::TOKEN_VAR)
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(dashboard_app::random_token);
    let app = dashboard_app::start(dashboard_app::Setup {
        queue_url: std::env::var("EVENTS_QUEUE_URL").ok(),
        port,
        token,
        report_time: Duration::from_secs(45),
        keep_busy: true,
    })
    .await?;
    println!("queue: {}", app.queue.url());
    println!(
        "jobs in every state: ready, delayed, running, and {} failed",
        app.failed.len()
    );
    println!("dashboard: {}", app.url);
    println!("(Ctrl-C stops it)");
    events::shutdown_signal().await;
    Ok(())
}
