//! The dashboard as users use it: the example's shop (jobs ready, delayed,
//! reserved by two running reports, failed) served in this process, and
//! headless Chromium (Debian's `chromium`) driven by playwright-core
//! (`tests/browser/dashboard.mjs`, `npm ci` there first) opens the page,
//! finds the figures and the failed jobs, and clicks "Retry" on one; then
//! the backend is asked whether that job is back on its queue.
//!
//! Screenshots land in `target/dashboard-screenshots/` (or
//! `EVENTS_SCREENSHOTS`). Under `CI=true` a missing `node`, `chromium` or
//! `tests/browser/node_modules` fails the test; elsewhere it says what is
//! missing and passes.

#[path = "../examples/support/dashboard_app.rs"]
mod dashboard_app;

#[path = "support/node.rs"]
mod node_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use events::queue::JobState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_sees_the_failed_job_and_retries_it_from_the_page() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let browser_dir = root.join("tests/browser");
    let missing = node_support::missing(&browser_dir, "playwright-core", true);
    if !node_support::can_run("the dashboard's browser test", missing) {
        return;
    }

    let app = dashboard_app::start(dashboard_app::Setup {
        queue_url: None,
        port: 0,
        token: dashboard_app::random_token(),
        // The two running reports outlast the test: both worker slots stay
        // busy, so the retried job stays on its queue for the check below.
        report_time: Duration::from_secs(600),
        keep_busy: false,
    })
    .await
    .expect("the shop starts");
    assert_eq!(
        app.failed.len(),
        3,
        "the setup leaves three failed payments"
    );

    let shots = std::env::var_os("EVENTS_SCREENSHOTS")
        .map_or_else(|| root.join("target/dashboard-screenshots"), PathBuf::from);
    let script = browser_dir.join("dashboard.mjs");
    let url = app.url.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(url)
            .arg(&shots)
            .output()
    })
    .await
    .expect("the browser's thread")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        output.status
    );

    let result: serde_json::Value = stdout
        .lines()
        .find_map(|line| line.strip_prefix("result: "))
        .map(|json| serde_json::from_str(json).expect("the result line is JSON"))
        .expect("the script prints its result");
    let retried = result["retried"].as_str().expect("the retried job's id");
    let new_id = result["new_id"].as_str().expect("the new job's id");
    assert!(
        app.failed.iter().any(|id| id == retried),
        "the page retried {retried}, one of the failed jobs {:?}",
        app.failed
    );

    // The backend agrees: the job is off the failed store, and back on its
    // queue (ready: both worker slots are held by the reports).
    let failed: Vec<String> = app
        .queue
        .failed()
        .await
        .expect("the failed store")
        .into_iter()
        .map(|f| f.id)
        .collect();
    assert!(
        !failed.iter().any(|id| id == retried),
        "{retried} is still failed"
    );
    assert_eq!(failed.len(), 2, "the two others are still failed");
    let job = app
        .queue
        .job(new_id)
        .await
        .expect("the backend answers")
        .unwrap_or_else(|| panic!("the retried job {new_id} is not on any queue"));
    assert_eq!(job.queue, "payments");
    assert!(job.listener.ends_with("::charge_card"), "{}", job.listener);
    assert_eq!(
        job.state,
        JobState::Ready,
        "the retried job waits on its queue"
    );
    assert!(
        job.payload.contains("\"card\""),
        "its payload is kept: {}",
        job.payload
    );
}
