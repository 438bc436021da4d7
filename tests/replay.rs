//! Replaying stored events into the listeners named: only those run, each
//! is checkpointed, an interrupted replay resumes, filters and dry runs.

use std::sync::Mutex;

use events::prelude::*;
use events::store::{Entity, NewEvent, ReplayError, Store};
use serde::{Deserialize, Serialize};

#[event(name = "replay.deposited", store, entity = "account:{account}")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deposited {
    account: u32,
    cents: i64,
}

#[event(name = "replay.withdrawn", store, entity = "account:{account}")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Withdrawn {
    account: u32,
    cents: i64,
}

/// What each listener saw, by listener, in order: (listener, position
/// order is the order of pushes).
static SEEN: Mutex<Vec<(&'static str, String)>> = Mutex::new(Vec::new());

fn seen(listener: &str) -> Vec<String> {
    SEEN.lock()
        .unwrap()
        .iter()
        .filter(|(l, _)| *l == listener)
        .map(|(_, s)| s.clone())
        .collect()
}

#[listener(name = "replay::balances")]
fn balances(e: &Deposited) {
    SEEN.lock()
        .unwrap()
        .push(("replay::balances", format!("+{}@{}", e.cents, e.account)));
}

#[listener(name = "replay::balances_out")]
fn balances_out(e: &Withdrawn, ctx: &events::Context) {
    SEEN.lock().unwrap().push((
        "replay::balances_out",
        format!(
            "-{}@{} by {}",
            e.cents,
            e.account,
            ctx.metadata().get("actor_id").unwrap_or("?")
        ),
    ));
}

/// A side effect: must never run in a replay unless named.
#[listener(name = "replay::send_receipt")]
fn send_receipt(_: &Deposited) {
    SEEN.lock()
        .unwrap()
        .push(("replay::send_receipt", "sent".into()));
}

#[listener(name = "replay::audit", pattern = "replay.*")]
async fn audit(e: &AnyEvent) {
    SEEN.lock()
        .unwrap()
        .push(("replay::audit", e.name().to_owned()));
}

#[derive(Debug, thiserror::Error)]
#[error("the projection refused {0}")]
struct Refused(i64);

#[listener(name = "replay::picky")]
fn picky(e: &Deposited) -> Result<(), Refused> {
    if e.cents == 13 && !PICKY_FIXED.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(Refused(e.cents));
    }
    SEEN.lock()
        .unwrap()
        .push(("replay::picky", e.cents.to_string()));
    Ok(())
}
static PICKY_FIXED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[listener(name = "replay::queued_projector", queue = "projections")]
async fn queued_projector(e: &Withdrawn) {
    SEEN.lock()
        .unwrap()
        .push(("replay::queued_projector", e.cents.to_string()));
}

fn deposit(account: u32, cents: i64) -> NewEvent {
    NewEvent::new(
        "replay.deposited",
        serde_json::json!({"account": account, "cents": cents}).to_string(),
    )
    .entity(Entity::new("account", account.to_string()))
}

fn withdraw(account: u32, cents: i64) -> NewEvent {
    NewEvent::new(
        "replay.withdrawn",
        serde_json::json!({"account": account, "cents": cents}).to_string(),
    )
    .entity(Entity::new("account", account.to_string()))
    .with("actor_id", "ada")
}

// The listeners record into one static: the tests run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn only_the_named_listeners_run_and_are_checkpointed() {
    let _serial = SERIAL.lock().await;
    SEEN.lock().unwrap().clear();
    let store = Store::memory();
    store
        .append(vec![deposit(1, 100), withdraw(1, 30), deposit(2, 5)])
        .await
        .unwrap();
    let report = store
        .replay()
        .listener("replay::balances")
        .listener("replay::balances_out")
        .listener("replay::audit")
        .listener("replay::queued_projector")
        .run()
        .await
        .unwrap();
    assert_eq!(report.read, 3);
    let counts: Vec<(&str, u64)> = report
        .listeners
        .iter()
        .map(|r| (r.listener, r.events))
        .collect();
    assert_eq!(
        counts,
        vec![
            ("replay::balances", 2),
            ("replay::balances_out", 1),
            ("replay::audit", 3),
            ("replay::queued_projector", 1)
        ]
    );
    assert_eq!(seen("replay::balances"), vec!["+100@1", "+5@2"]);
    assert_eq!(seen("replay::balances_out"), vec!["-30@1 by ada"]);
    assert_eq!(seen("replay::queued_projector"), vec!["30"]);
    assert_eq!(seen("replay::audit").len(), 3);
    assert!(
        seen("replay::send_receipt").is_empty(),
        "a side effect ran in a replay"
    );
    assert_eq!(store.checkpoint("replay::balances").await.unwrap(), Some(3));

    // New events: the next replay starts at the checkpoint.
    store.append(vec![deposit(3, 7)]).await.unwrap();
    let again = store
        .replay()
        .listener("replay::balances")
        .run()
        .await
        .unwrap();
    assert_eq!(again.listeners[0].events, 1);
    assert_eq!(again.listeners[0].from, 3);
    assert_eq!(seen("replay::balances"), vec!["+100@1", "+5@2", "+7@3"]);
    // Restarting ignores the checkpoint.
    let restarted = store
        .replay()
        .listener("replay::balances")
        .restart(true)
        .run()
        .await
        .unwrap();
    assert_eq!(restarted.listeners[0].events, 3);
}

#[tokio::test]
async fn an_interrupted_replay_resumes_after_the_last_event_handled() {
    let _serial = SERIAL.lock().await;
    SEEN.lock().unwrap().clear();
    let store = Store::memory();
    store
        .append(vec![
            deposit(1, 11),
            deposit(1, 12),
            deposit(1, 13),
            deposit(1, 14),
        ])
        .await
        .unwrap();
    let error = store
        .replay()
        .listener("replay::picky")
        .batch(2)
        .run()
        .await
        .unwrap_err();
    match &error {
        ReplayError::Listener {
            listener, position, ..
        } => assert_eq!((*listener, *position), ("replay::picky", 3)),
        other => panic!("expected the listener's failure, got {other:?}"),
    }
    assert!(error.to_string().contains("stored event 3"), "{error}");
    assert_eq!(store.checkpoint("replay::picky").await.unwrap(), Some(2));
    PICKY_FIXED.store(true, std::sync::atomic::Ordering::SeqCst);
    let report = store
        .replay()
        .listener("replay::picky")
        .run()
        .await
        .unwrap();
    assert_eq!(report.listeners[0].events, 2);
    assert_eq!(seen("replay::picky"), vec!["11", "12", "13", "14"]);
}

#[tokio::test]
async fn filters_positions_and_dry_runs() {
    let _serial = SERIAL.lock().await;
    SEEN.lock().unwrap().clear();
    let store = Store::memory();
    store
        .append(vec![
            deposit(1, 1),
            deposit(2, 2),
            deposit(1, 3),
            deposit(1, 4),
        ])
        .await
        .unwrap();
    let dry = store
        .replay()
        .listener("replay::balances")
        .dry_run(true)
        .run()
        .await
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.listeners[0].events, 4);
    assert!(seen("replay::balances").is_empty());
    assert_eq!(store.checkpoint("replay::balances").await.unwrap(), None);

    store
        .replay()
        .listener("replay::balances")
        .entity(Entity::new("account", "1"))
        .from(1)
        .until_position(3)
        .run()
        .await
        .unwrap();
    assert_eq!(seen("replay::balances"), vec!["+3@1"]);
}

#[tokio::test]
async fn a_replay_names_its_listeners_and_says_what_is_wrong() {
    let store = Store::memory();
    let error = store.replay().run().await.unwrap_err();
    assert!(matches!(error, ReplayError::NoListener));
    assert!(error.to_string().contains("side effects"), "{error}");
    let error = store
        .replay()
        .listener("replay::balance")
        .run()
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("did you mean `replay::balances`"),
        "{error}"
    );
    store
        .append(vec![NewEvent::new(
            "replay.deposited",
            r#"{"account":"x"}"#,
        )])
        .await
        .unwrap();
    let error = store
        .replay()
        .listener("replay::balances")
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(error, ReplayError::Decode { position: 1, .. }),
        "{error:?}"
    );
}

/// Version 2 renamed `amount` to `cents`; version 1 records are upcast.
#[event(name = "replay.refunded", store, version = 2)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Refunded {
    cents: i64,
}

#[upcast(Refunded, from = 1)]
fn refunded_v1(mut v: serde_json::Value) -> serde_json::Value {
    let amount = v["amount"].take();
    serde_json::json!({ "cents": amount })
}

#[listener(name = "replay::refunds")]
fn refunds(e: &Refunded) {
    SEEN.lock()
        .unwrap()
        .push(("replay::refunds", e.cents.to_string()));
}

#[tokio::test]
async fn older_records_are_upcast_and_current_ones_read_as_stored() {
    let _serial = SERIAL.lock().await;
    SEEN.lock().unwrap().clear();
    let store = Store::memory();
    store
        .append(vec![
            NewEvent::new("replay.refunded", r#"{"amount":40}"#),
            NewEvent::new("replay.refunded", r#"{"cents":60}"#).version(2),
        ])
        .await
        .unwrap();
    store
        .replay()
        .listener("replay::refunds")
        .run()
        .await
        .unwrap();
    assert_eq!(seen("replay::refunds"), vec!["40", "60"]);
    let (version, payload) =
        events::store::upcast("replay.refunded", 1, r#"{"amount":5}"#).unwrap();
    assert_eq!((version, &*payload), (2, r#"{"cents":5}"#));
    assert!(matches!(payload, std::borrow::Cow::Owned(_)));
    let (_, current) = events::store::upcast("replay.refunded", 2, r#"{"cents":5}"#).unwrap();
    assert!(
        matches!(current, std::borrow::Cow::Borrowed(_)),
        "a current record was parsed"
    );
    let newer = events::store::upcast("replay.refunded", 3, "{}").unwrap_err();
    assert!(
        newer.to_string().contains("newer than version 2"),
        "{newer}"
    );
}

#[tokio::test]
async fn a_replay_can_run_on_a_spawned_task() {
    let store = Store::memory();
    let task = tokio::spawn(async move {
        store
            .replay()
            .listener("replay::balances")
            .progress(|_| {})
            .dry_run(true)
            .run()
            .await
    });
    assert_eq!(task.await.unwrap().unwrap().read, 0);
}
