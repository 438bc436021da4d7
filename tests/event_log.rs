//! Dispatchers that store events in the event log: which events go in,
//! with what (id, name, version, payload, metadata, entity), when a
//! dispatch keeps them out, and that their jobs go with them.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use events::prelude::*;
use events::store::{AppendHook, Entity, EventQuery, NewEvent, Store, StoreError};
use serde::{Deserialize, Serialize};

#[event(
    name = "log.booked",
    store,
    entity = "appointment:{appointment_id}",
    version = 3
)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Booked {
    appointment_id: u64,
    r#type: String,
}

#[event(name = "log.viewed")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Viewed {
    page: String,
}

#[event(name = "log.rejected", store)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Rejected {
    n: u32,
}

#[event(name = "log.halted", store)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Halted {
    n: u32,
}

#[event(name = "log.queued", store, entity = "order:{order}")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Queued {
    order: String,
}

/// Not `Serialize`: `store_all` cannot keep it.
#[event(name = "log.opaque")]
struct Opaque;

#[derive(Debug, thiserror::Error)]
#[error("refused")]
struct Refused;

#[listener]
fn refuse(_: &Rejected) -> Result<(), Refused> {
    Err(Refused)
}

#[listener]
fn halt(_: &Halted) -> Flow {
    Flow::Stop
}

#[listener(queue = "log-tests")]
fn ship(_: &Queued) {}

/// What the append hook's jobs carry: never dispatched, only enqueued by
/// the hook.
#[event(name = "log.hook_job")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct HookJob {
    event: String,
}

static HOOKED: AtomicUsize = AtomicUsize::new(0);

#[listener(queue = "log-hooks")]
fn hooked(_: &HookJob) {
    HOOKED.fetch_add(1, Ordering::SeqCst);
}

fn dispatcher(store: &Store) -> events::Dispatcher {
    events::Dispatcher::builder()
        .store(store.clone())
        .build()
        .unwrap()
}

async fn all(store: &Store) -> Vec<events::store::StoredEvent> {
    store.events(&EventQuery::new()).await.unwrap().events
}

#[tokio::test]
async fn a_stored_event_keeps_its_envelope_entity_and_version() {
    let store = Store::memory();
    let d = dispatcher(&store);
    d.dispatch(Booked {
        appointment_id: 123,
        r#type: "checkup".into(),
    })
    .with("actor_id", "ada")
    .with("correlation_id", "req-9")
    .await
    .unwrap();
    let stored = all(&store).await;
    assert_eq!(stored.len(), 1);
    let e = &stored[0];
    assert_eq!(e.name, "log.booked");
    assert_eq!(e.version, 3);
    assert_eq!(e.entity, Some(Entity::new("appointment", "123")));
    assert_eq!(e.entity_version, Some(1));
    assert_eq!(e.actor(), Some("ada"));
    assert_eq!(e.metadata.get("correlation_id"), Some("req-9"));
    assert_eq!(
        e.payload_value().unwrap(),
        serde_json::json!({"appointment_id": 123, "type": "checkup"})
    );
    assert!(e.occurred_at <= std::time::SystemTime::now());
}

#[tokio::test]
async fn only_events_marked_store_go_in_unless_every_event_is_stored() {
    let store = Store::memory();
    let d = dispatcher(&store);
    d.dispatch(Viewed { page: "/".into() }).await.unwrap();
    assert!(all(&store).await.is_empty(), "an unmarked event was stored");

    let config = events::Config::from_vars([("EVENTS_STORE_ENABLED", "true")]).unwrap();
    let every = events::Dispatcher::builder()
        .config(&config)
        .store(store.clone())
        .build()
        .unwrap();
    every.dispatch(Viewed { page: "/a".into() }).await.unwrap();
    // Not `Serialize`: skipped, not an error.
    every.dispatch(Opaque).await.unwrap();
    let stored = all(&store).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].name, "log.viewed");
    assert_eq!(stored[0].version, 1);
    assert_eq!(stored[0].entity, None);
}

#[tokio::test]
async fn a_failed_dispatch_stores_nothing_and_a_halted_one_is_stored() {
    let store = Store::memory();
    let d = dispatcher(&store);
    let error = d.dispatch(Rejected { n: 1 }).await.unwrap_err();
    assert_eq!(error.listener(), Some("event_log::refuse"));
    assert!(all(&store).await.is_empty());
    let done = d.dispatch(Halted { n: 2 }).await.unwrap();
    assert!(done.halted());
    let stored = all(&store).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].name, "log.halted");
}

#[tokio::test]
async fn a_faked_event_is_not_stored() {
    let store = Store::memory();
    let d = dispatcher(&store);
    let fake = events::fake_only::<(Booked,)>();
    d.dispatch(Booked {
        appointment_id: 1,
        r#type: "x".into(),
    })
    .await
    .unwrap();
    fake.assert_dispatched::<Booked>();
    assert!(all(&store).await.is_empty());
}

#[tokio::test]
async fn jobs_go_with_the_stored_event_to_the_queue() {
    let store = Store::memory();
    let queue = events::queue::connect("memory://").await.unwrap();
    let d = events::Dispatcher::builder()
        .store(store.clone())
        .queue(queue.clone())
        .build()
        .unwrap();
    let done = d
        .dispatch(Queued {
            order: "A-1".into(),
        })
        .await
        .unwrap();
    assert_eq!(done.queued(), 1);
    assert_eq!(queue.size("log-tests").await.unwrap(), 1);
    let stored = all(&store).await;
    assert_eq!(stored.len(), 1);
    let jobs = queue
        .backend()
        .claim(
            &["log-tests".to_owned()],
            10,
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(
        jobs[0].envelope.id, stored[0].id,
        "the job and the record share the event id"
    );
}

/// Makes one job of `hooked` per stored event.
struct Hook;

#[async_trait]
impl AppendHook for Hook {
    async fn jobs(&self, events: &[NewEvent]) -> Result<Vec<events::Job>, StoreError> {
        Ok(events
            .iter()
            .map(|e| {
                events::Job::from_parts(
                    format!("hook-{}", e.id),
                    "log-hooks",
                    "event_log::hooked",
                    "log.hook_job",
                    serde_json::json!({"event": e.id.to_string()}).to_string(),
                    events::Envelope::from_parts(e.id, e.occurred_at, e.metadata.clone()),
                )
            })
            .collect())
    }
}

#[tokio::test]
async fn append_hooks_add_their_jobs_to_the_same_write() {
    let store = Store::memory();
    let queue = events::queue::connect("memory://").await.unwrap();
    let d = events::Dispatcher::builder()
        .store(store.clone())
        .queue(queue.clone())
        .on_append(Hook)
        .build()
        .unwrap();
    let done = d
        .dispatch(Queued {
            order: "B-2".into(),
        })
        .await
        .unwrap();
    assert_eq!(done.queued(), 2);
    assert_eq!(queue.size("log-hooks").await.unwrap(), 1);
    assert_eq!(queue.size("log-tests").await.unwrap(), 1);
    // Unstored events get no hook jobs.
    d.dispatch(Viewed { page: "/".into() }).await.unwrap();
    assert_eq!(queue.size("log-hooks").await.unwrap(), 1);
    let report = events::Worker::new(queue.clone())
        .queues(["log-hooks"])
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!(report.succeeded, 1, "{report:?}");
    assert_eq!(HOOKED.load(Ordering::SeqCst), 1);
}
