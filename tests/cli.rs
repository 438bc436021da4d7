//! The operator commands, run as an application's binary would run them,
//! against a SQLite queue in a temporary directory.

use std::sync::atomic::{AtomicUsize, Ordering};

use events::cli::{CliError, run_to};
use events::prelude::*;
use events::queue::Queue;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
#[error("the mail server said no")]
pub struct MailDown;

#[event(name = "order.placed")]
#[derive(Serialize, Deserialize)]
pub struct OrderPlaced {
    pub id: u64,
    pub fail: bool,
}

#[listener(priority = 5)]
fn reserve_stock(_: &OrderPlaced) {}

static MAILED: AtomicUsize = AtomicUsize::new(0);

#[listener(queue = "mail", tries = 2, backoff = "10ms", timeout = "5s")]
async fn mail_receipt(e: &OrderPlaced) -> Result<(), MailDown> {
    if e.fail {
        return Err(MailDown);
    }
    MAILED.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[listener(pattern = "order.*")]
fn order_audit(_: &AnyEvent) {}

async fn cli(queue: &Queue, args: &[&str]) -> Result<String, CliError> {
    let mut out = Vec::new();
    let argv = std::iter::once("app").chain(args.iter().copied());
    run_to(argv, Some(queue.clone()), &mut out).await?;
    Ok(String::from_utf8(out).unwrap())
}

fn sqlite() -> (Queue, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (
        events::queue::SqliteBackend::queue(dir.path().join("q.sqlite")).unwrap(),
        dir,
    )
}

#[tokio::test]
async fn list_shows_events_listeners_options_and_sources() {
    let (queue, _dir) = sqlite();
    let out = cli(&queue, &["list"]).await.unwrap();
    assert!(
        out.starts_with("order.placed (cli::OrderPlaced)\n"),
        "{out}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[1].starts_with("  -> cli::reserve_stock: sync [priority 5]  (tests/cli.rs:"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("  -> cli::order_audit: sync [pattern `order.*`]  (tests/cli.rs:"),
        "{out}"
    );
    assert!(
        lines[3].starts_with("  -> cli::mail_receipt: queued `mail`, tries 2, backoff 10ms, timeout 5s  (tests/cli.rs:"),
        "{out}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&cli(&queue, &["list", "--json"]).await.unwrap()).unwrap();
    assert_eq!(json["events"][0]["name"], "order.placed");
    assert_eq!(json["events"][0]["listeners"].as_array().unwrap().len(), 3);
    let mail = json["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "cli::mail_receipt")
        .unwrap();
    assert_eq!(mail["mode"], "queued");
    assert_eq!(mail["queue"]["queue"], "mail");
    assert_eq!(mail["queue"]["tries"], 2);
    assert_eq!(mail["queue"]["backoff_ms"][0], 10);
    assert_eq!(mail["queue"]["timeout_ms"], 5000);
    assert_eq!(mail["file"], "tests/cli.rs");
}

#[tokio::test]
async fn graph_is_a_mermaid_flowchart() {
    let (queue, _dir) = sqlite();
    let out = cli(&queue, &["graph"]).await.unwrap();
    assert!(
        out.starts_with("flowchart LR\n    E0[\"order.placed\"]\n"),
        "{out}"
    );
    assert!(out.contains("-->|\"sync\"|"), "{out}");
    assert!(out.contains("-->|\"order.*\"|"), "{out}");
    assert!(out.contains("-.->|\"queued: mail\"|"), "{out}");
}

#[tokio::test]
async fn work_failed_retry_forget_flush_monitor() {
    let (queue, _dir) = sqlite();
    let dispatcher = events::Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap();
    dispatcher
        .dispatch(OrderPlaced { id: 1, fail: true })
        .await
        .unwrap();
    dispatcher
        .dispatch(OrderPlaced { id: 2, fail: false })
        .await
        .unwrap();

    let out = cli(&queue, &["monitor"]).await.unwrap();
    assert_eq!(
        out,
        "QUEUE                 PENDING  RESERVED  FAILED\nmail                        2         0       0\n"
    );

    let out = cli(&queue, &["work", "--queue", "mail", "--stop-when-empty"])
        .await
        .unwrap();
    assert_eq!(
        out,
        "worked 3 job(s): 1 succeeded, 1 retried, 1 failed, 0 lost their lease, 0 handed back\n"
    );
    assert_eq!(MAILED.load(Ordering::SeqCst), 1);

    let out = cli(&queue, &["failed"]).await.unwrap();
    let failed = queue.failed().await.unwrap();
    let id = failed[0].id.clone();
    assert!(out.starts_with("ID "), "{out}");
    assert!(out.contains(&id), "{out}");
    assert!(out.contains("cli::mail_receipt"), "{out}");
    assert!(out.contains("2/2"), "{out}");
    assert!(
        out.contains("listener `cli::mail_receipt` failed: the mail server said no"),
        "{out}"
    );

    assert_eq!(
        cli(&queue, &["retry", &id]).await.unwrap(),
        format!("failed job {id} put back on its queue\n")
    );
    assert_eq!(queue.size("mail").await.unwrap(), 1);
    cli(&queue, &["work", "--stop-when-empty"]).await.unwrap();
    assert_eq!(
        cli(&queue, &["retry", "all"]).await.unwrap(),
        "1 failed job(s) put back on their queues\n"
    );
    cli(&queue, &["work", "--max-jobs", "1"]).await.unwrap();
    cli(&queue, &["work", "--stop-when-empty"]).await.unwrap();

    let out = cli(&queue, &["monitor"]).await.unwrap();
    assert!(
        out.ends_with("mail                        0         0       1\n"),
        "{out}"
    );
    // Each retry enqueued the job under a new id (see `Backend::retry`).
    let id = queue.failed().await.unwrap()[0].id.clone();
    assert_eq!(
        cli(&queue, &["forget", &id]).await.unwrap(),
        format!("failed job {id} deleted\n")
    );
    assert_eq!(cli(&queue, &["failed"]).await.unwrap(), "no failed jobs\n");
    assert_eq!(
        cli(&queue, &["flush"]).await.unwrap(),
        "0 failed job(s) deleted\n"
    );
    assert_eq!(
        cli(&queue, &["monitor"]).await.unwrap(),
        "QUEUE                 PENDING  RESERVED  FAILED\n(no jobs)\n"
    );
}

#[tokio::test]
async fn mistakes_are_reported_in_words() {
    let (queue, _dir) = sqlite();
    let error = cli(&queue, &["retry", "no-such-job"]).await.unwrap_err();
    assert_eq!(error.to_string(), "no failed job with id `no-such-job`");
    let error = cli(&queue, &["forget", "no-such-job"]).await.unwrap_err();
    assert!(matches!(error, CliError::NotFound(_)));
    let error = cli(&queue, &["wrok"]).await.unwrap_err();
    assert!(
        error.to_string().contains("unrecognized subcommand 'wrok'"),
        "{error}"
    );
    let help = cli(&queue, &["--help"]).await.unwrap();
    for command in [
        "list", "work", "failed", "retry", "forget", "flush", "monitor", "graph",
    ] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
    let error = cli(&queue, &["--queue-url", "kafka://x", "failed"])
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("unsupported queue URL `kafka://x`"),
        "{error}"
    );
}
