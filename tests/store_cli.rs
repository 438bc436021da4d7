//! The operator commands of the event log: `replay` and `prune`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use events::cli::{CliError, Commands};
use events::prelude::*;
use events::store::{EventQuery, NewEvent, Store};
use serde::{Deserialize, Serialize};

#[event(name = "cli_log.sold", store)]
#[derive(Serialize, Deserialize)]
struct Sold {
    cents: u64,
}

static REVENUE: AtomicU64 = AtomicU64::new(0);

#[listener(name = "cli_log::revenue")]
fn revenue(e: &Sold) {
    REVENUE.fetch_add(e.cents, Ordering::SeqCst);
}

async fn run(store: &Store, args: &[&str]) -> (Result<(), CliError>, String) {
    let mut out = Vec::new();
    let mut argv = vec!["app"];
    argv.extend_from_slice(args);
    let result = Commands::new()
        .store(store.clone())
        .run_to(argv, &mut out)
        .await;
    (result, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn replay_runs_the_named_listener_from_its_checkpoint_and_prune_deletes_old_events() {
    let store = Store::memory();
    let long_ago = SystemTime::now() - Duration::from_secs(200 * 86_400);
    store
        .append(vec![
            NewEvent::new("cli_log.sold", r#"{"cents":5}"#).occurred_at(long_ago),
            NewEvent::new("cli_log.sold", r#"{"cents":7}"#),
        ])
        .await
        .unwrap();

    let (result, out) = run(
        &store,
        &["replay", "--listener", "cli_log::revenue", "--dry-run"],
    )
    .await;
    result.unwrap();
    assert!(
        out.contains("cli_log::revenue: would get 2 event(s)"),
        "{out}"
    );
    assert!(out.contains("dry run"), "{out}");
    assert_eq!(REVENUE.load(Ordering::SeqCst), 0);

    let (result, out) = run(&store, &["replay", "--listener", "cli_log::revenue"]).await;
    result.unwrap();
    assert!(
        out.contains("cli_log::revenue: got 2 event(s), positions 0..=2"),
        "{out}"
    );
    assert_eq!(REVENUE.load(Ordering::SeqCst), 12);
    let (result, out) = run(&store, &["replay", "--listener", "cli_log::revenue"]).await;
    result.unwrap();
    assert!(out.contains("got 0 event(s)"), "{out}");

    let (result, out) = run(&store, &["prune", "--older-than", "90d"]).await;
    result.unwrap();
    assert!(out.contains("1 stored event(s) older than"), "{out}");
    assert_eq!(
        store.events(&EventQuery::new()).await.unwrap().events.len(),
        1
    );
}

#[tokio::test]
async fn replay_says_what_is_missing() {
    let store = Store::memory();
    let (result, _) = run(&store, &["replay"]).await;
    let error = result.unwrap_err();
    assert_eq!(error.exit_code(), 2, "{error}");
    assert!(error.to_string().contains("--listener"), "{error}");
    let (result, _) = run(&store, &["replay", "--listener", "cli_log::revenu"]).await;
    let error = result.unwrap_err().to_string();
    assert!(error.contains("did you mean `cli_log::revenue`"), "{error}");

    let mut out = Vec::new();
    let error = Commands::new()
        .run_to(["app", "prune", "--older-than", "1d"], &mut out)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("no event store configured"),
        "{error}"
    );
}
