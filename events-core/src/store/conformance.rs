//! The event store conformance suite (feature `conformance`): every
//! behaviour an [`EventStore`] promises, written once as an `async fn`
//! over a [`Store`], and [`store_conformance_tests!`](crate::store_conformance_tests)
//! to run them all against a store, one `#[test]` each.
//!
//! ```ignore
//! events_core::store_conformance_tests!(|| async { MyStore::connect_for_tests().await });
//! ```
//!
//! The closure makes a fresh, empty store for each case; it may return
//! `(store, guard)`, the guard kept until the case ends.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::SystemTime;

use super::{
    Bucket, Delivery, DeliveryQuery, DeliveryResult, Entity, EventQuery, EventStore, NewEvent,
    Order, Prune, StatsQuery, Store, StoreError, Subscription, SubscriptionChange, TimelineQuery,
};
use crate::envelope::{EventId, Metadata};
use crate::queue::{from_millis, millis};

/// What a conformance case runs against: a store, or a store and something
/// to keep alive while the case runs.
pub trait Subject {
    /// The store to test, and what to drop once the case ends.
    fn into_store(self) -> (Store, Box<dyn Send>);
}

impl<S: EventStore> Subject for S {
    fn into_store(self) -> (Store, Box<dyn Send>) {
        (Store::with_store("conformance://", self), Box::new(()))
    }
}

impl<S: EventStore, G: Send + 'static> Subject for (S, G) {
    fn into_store(self) -> (Store, Box<dyn Send>) {
        (
            Store::with_store("conformance://", self.0),
            Box::new(self.1),
        )
    }
}

/// Runs one case on a fresh runtime against the store `make` makes.
pub fn run<M, F, S, C, R>(make: M, case: C)
where
    M: FnOnce() -> F,
    F: Future<Output = S>,
    S: Subject,
    C: FnOnce(Store) -> R,
    R: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the conformance suite needs a Tokio runtime");
    runtime.block_on(async {
        let (store, keep) = make().await.into_store();
        case(store).await;
        drop(keep);
    });
}

/// Generates one `#[test]` per store conformance case.
///
/// ```ignore
/// mod memory {
///     events_core::store_conformance_tests!(|| async { events_core::store::MemoryStore::default() });
/// }
/// ```
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr $(,)?) => {
        $crate::store_conformance_tests!(@cases $make;
            appends_in_order_and_reads_back_what_it_stored
            storing_one_id_twice_keeps_the_first
            an_invalid_event_refuses_the_whole_batch
            history_filters_by_name_entity_actor_and_time
            history_pages_by_position_both_ways
            timeline_of_one_entity_and_its_related_events
            entity_streams_count_versions
            an_append_expecting_another_version_is_a_conflict
            concurrent_appenders_one_wins_each_version
            stats_count_per_name_per_bucket
            schemas_list_each_name_and_version
            checkpoints_are_kept_per_projector
            prune_deletes_older_events_per_name
            subscriptions_are_created_changed_and_deleted
            delivery_outcomes_disable_and_reset
            the_delivery_log_is_filtered_newest_first_and_pruned
        );
    };
    (@cases $make:expr; $($case:ident)*) => {$(
        #[test]
        fn $case() {
            $crate::store::conformance::run($make, $crate::store::conformance::$case);
        }
    )*};
}

/// A time `secs` seconds after a fixed instant, to the millisecond.
fn at(secs: u64) -> SystemTime {
    from_millis(1_700_000_000_000 + (secs * 1000) as i64)
}

fn event(name: &str, n: u32) -> NewEvent {
    NewEvent::new(name, format!("{{\"n\":{n}}}"))
}

fn about(name: &str, entity: &str, n: u32) -> NewEvent {
    event(name, n).entity(entity.parse().expect("a test entity"))
}

fn ns(page: &super::EventPage) -> Vec<u64> {
    page.events
        .iter()
        .map(|e| e.payload_value().unwrap()["n"].as_u64().unwrap())
        .collect()
}

/// Positions go up by append order; every field reads back as stored,
/// metadata and related entities included.
pub async fn appends_in_order_and_reads_back_what_it_stored(store: Store) {
    assert_eq!(store.last_position().await.unwrap(), 0);
    let metadata: Metadata = [
        ("actor_id", "42"),
        ("correlation_id", "req-1"),
        ("related", "customer:9"),
    ]
    .into_iter()
    .collect();
    let first = about("appointment.created", "appointment:7", 1)
        .version(2)
        .occurred_at(at(10))
        .metadata(metadata.clone());
    let id = first.id;
    let appended = store
        .append(vec![first, event("other", 2), event("other", 3)])
        .await
        .unwrap();
    assert_eq!(appended.len(), 3);
    assert!(appended.iter().all(|a| a.stored));
    assert!(appended[0].position < appended[1].position);
    assert!(appended[1].position < appended[2].position);
    assert_eq!(store.last_position().await.unwrap(), appended[2].position);

    let stored = store.event(id).await.unwrap().expect("the event is stored");
    assert_eq!(stored.position, appended[0].position);
    assert_eq!(stored.name, "appointment.created");
    assert_eq!(stored.version, 2);
    assert_eq!(stored.payload_value().unwrap(), serde_json::json!({"n": 1}));
    assert_eq!(stored.occurred_at, at(10));
    assert_eq!(stored.metadata, metadata);
    assert_eq!(stored.actor(), Some("42"));
    assert_eq!(stored.entity, Some(Entity::new("appointment", "7")));
    assert_eq!(stored.entity_version, Some(1));
    assert_eq!(stored.related, vec![Entity::new("customer", "9")]);
    assert!(store.event(EventId::new()).await.unwrap().is_none());

    let later = store.append(vec![event("other", 4)]).await.unwrap();
    assert!(later[0].position > appended[2].position);
}

/// An id stored already is skipped, in a later batch or the same one.
pub async fn storing_one_id_twice_keeps_the_first(store: Store) {
    let one = event("a", 1);
    let mut again = event("a", 2);
    again.id = one.id;
    let appended = store
        .append(vec![one.clone(), again.clone()])
        .await
        .unwrap();
    assert!(appended[0].stored);
    assert!(!appended[1].stored);
    assert_eq!(appended[1].position, appended[0].position);
    let later = store.append(vec![again]).await.unwrap();
    assert_eq!(later[0], appended[1]);
    let page = store.events(&EventQuery::new()).await.unwrap();
    assert_eq!(ns(&page), vec![1]);
}

/// One event a store cannot take refuses its batch, in words.
pub async fn an_invalid_event_refuses_the_whole_batch(store: Store) {
    let error = store
        .append(vec![event("a", 1), NewEvent::new("a", "{oops")])
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Invalid(_)), "{error:?}");
    assert!(error.to_string().contains("not JSON"), "{error}");
    assert_eq!(store.last_position().await.unwrap(), 0);
    assert!(
        store
            .events(&EventQuery::new())
            .await
            .unwrap()
            .events
            .is_empty()
    );
}

/// Names and patterns, an entity, an entity type, an actor, a time range:
/// each filter holds, and they add up.
pub async fn history_filters_by_name_entity_actor_and_time(store: Store) {
    store
        .append(vec![
            about("appointment.created", "appointment:1", 1).occurred_at(at(1)),
            about("appointment.cancelled", "appointment:1", 2)
                .occurred_at(at(2))
                .with("actor_id", "ada"),
            about("appointment.created", "appointment:2", 3)
                .occurred_at(at(3))
                .with("actor_id", "ada"),
            about("invoice.paid", "invoice:1", 4).occurred_at(at(4)),
            event("user_logged_in", 5).occurred_at(at(5)),
        ])
        .await
        .unwrap();
    let query = |q: EventQuery| {
        let store = store.clone();
        async move { ns(&store.events(&q).await.unwrap()) }
    };
    assert_eq!(query(EventQuery::new()).await, vec![1, 2, 3, 4, 5]);
    assert_eq!(
        query(EventQuery::new().name("appointment.*")).await,
        vec![1, 2, 3]
    );
    assert_eq!(
        query(EventQuery::new().name("invoice.paid").name("*.cancelled")).await,
        vec![2, 4]
    );
    // `_` is no wildcard in a name.
    assert_eq!(
        query(EventQuery::new().name("user_logged_in")).await,
        vec![5]
    );
    assert_eq!(query(EventQuery::new().name("user_logged*")).await, vec![5]);
    assert!(query(EventQuery::new().name("user%")).await.is_empty());
    assert!(
        query(EventQuery::new().name("userXlogged_in"))
            .await
            .is_empty()
    );
    assert_eq!(
        query(EventQuery::new().entity("appointment:1".parse().unwrap())).await,
        vec![1, 2]
    );
    assert_eq!(
        query(EventQuery::new().entity_type("appointment")).await,
        vec![1, 2, 3]
    );
    assert_eq!(query(EventQuery::new().actor("ada")).await, vec![2, 3]);
    assert_eq!(
        query(EventQuery::new().since(at(2)).until(at(4))).await,
        vec![2, 3]
    );
    assert_eq!(
        query(
            EventQuery::new()
                .name("appointment.*")
                .actor("ada")
                .since(at(3))
        )
        .await,
        vec![3]
    );
    let backwards = store
        .events(&EventQuery::new().since(at(4)).until(at(2)))
        .await
        .unwrap_err();
    assert!(matches!(backwards, StoreError::Invalid(_)), "{backwards:?}");
}

/// Pages follow each other without gaps or repeats, oldest first and
/// newest first, and the last page says it is.
pub async fn history_pages_by_position_both_ways(store: Store) {
    let events: Vec<NewEvent> = (1..=25).map(|n| event("e", n)).collect();
    store.append(events).await.unwrap();
    for order in [Order::Asc, Order::Desc] {
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let mut query = EventQuery::new().order(order).limit(10);
            match (order, cursor) {
                (Order::Asc, Some(c)) => query = query.after(c),
                (Order::Desc, Some(c)) => query = query.before(c),
                _ => {}
            }
            let page = store.events(&query).await.unwrap();
            pages += 1;
            seen.extend(ns(&page));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
            assert!(pages < 10, "paging does not end");
        }
        let mut want: Vec<u64> = (1..=25).collect();
        if order == Order::Desc {
            want.reverse();
        }
        assert_eq!(seen, want, "{order:?}");
        assert_eq!(pages, 3, "{order:?}");
    }
}

/// An entity's timeline holds its own events and, when asked, those that
/// name it as related; nothing else.
pub async fn timeline_of_one_entity_and_its_related_events(store: Store) {
    store
        .append(vec![
            about("appointment.created", "appointment:123", 1),
            about("appointment.created", "appointment:124", 2),
            about("invoice.sent", "invoice:9", 3).with("related", "appointment:123,customer:1"),
            about("appointment.confirmed", "appointment:123", 4),
        ])
        .await
        .unwrap();
    let entity: Entity = "appointment:123".parse().unwrap();
    let own = store
        .timeline(&TimelineQuery::new(entity.clone()))
        .await
        .unwrap();
    assert_eq!(ns(&own), vec![1, 4]);
    let all = store
        .timeline(&TimelineQuery::new(entity.clone()).related(true))
        .await
        .unwrap();
    assert_eq!(ns(&all), vec![1, 3, 4]);
    let newest = store
        .timeline(
            &TimelineQuery::new(entity.clone())
                .related(true)
                .order(Order::Desc)
                .limit(2),
        )
        .await
        .unwrap();
    assert_eq!(ns(&newest), vec![4, 3]);
    let rest = store
        .timeline(
            &TimelineQuery::new(entity)
                .related(true)
                .order(Order::Desc)
                .after(newest.next.expect("a full page has a next cursor")),
        )
        .await
        .unwrap();
    assert_eq!(ns(&rest), vec![1]);
    assert_eq!(rest.next, None);
}

/// Each entity's events are numbered from 1 within its stream.
pub async fn entity_streams_count_versions(store: Store) {
    let entity: Entity = "cart:1".parse().unwrap();
    assert_eq!(store.stream_version(&entity).await.unwrap(), 0);
    store
        .append(vec![
            about("cart.opened", "cart:1", 1),
            about("cart.opened", "cart:2", 2),
            about("item.added", "cart:1", 3),
        ])
        .await
        .unwrap();
    assert_eq!(store.stream_version(&entity).await.unwrap(), 2);
    let page = store.timeline(&TimelineQuery::new(entity)).await.unwrap();
    let versions: Vec<Option<u64>> = page.events.iter().map(|e| e.entity_version).collect();
    assert_eq!(versions, vec![Some(1), Some(2)]);
}

/// An append expecting a version the stream is not at stores nothing and
/// says which version it is at.
pub async fn an_append_expecting_another_version_is_a_conflict(store: Store) {
    let entity: Entity = "account:1".parse().unwrap();
    store
        .append_expecting(&entity, 0, vec![about("opened", "account:1", 1)])
        .await
        .unwrap();
    let error = store
        .append_expecting(&entity, 0, vec![about("deposited", "account:1", 2)])
        .await
        .unwrap_err();
    match &error {
        StoreError::Conflict {
            entity: e,
            expected,
            actual,
        } => {
            assert_eq!((e, *expected, *actual), (&entity, 0, 1));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(error.to_string().contains("version 1"), "{error}");
    store
        .append_expecting(
            &entity,
            1,
            vec![
                about("deposited", "account:1", 3),
                about("deposited", "account:1", 4),
            ],
        )
        .await
        .unwrap();
    assert_eq!(store.stream_version(&entity).await.unwrap(), 3);
    let wrong = store
        .append_expecting(&entity, 3, vec![about("x", "account:2", 5)])
        .await
        .unwrap_err();
    assert!(matches!(wrong, StoreError::Invalid(_)), "{wrong:?}");
    assert_eq!(store.stream_version(&entity).await.unwrap(), 3);
}

/// Eight appenders expecting the same version, ten rounds: exactly one
/// wins each version, and the stream holds one event per version.
pub async fn concurrent_appenders_one_wins_each_version(store: Store) {
    let entity: Entity = "counter:1".parse().unwrap();
    for version in 0..10u64 {
        let mut tasks = Vec::new();
        for writer in 0..8u32 {
            let store = store.clone();
            let entity = entity.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .append_expecting(
                        &entity,
                        version,
                        vec![about("incremented", "counter:1", writer)],
                    )
                    .await
            }));
        }
        let mut wins = 0;
        for task in tasks {
            match task.await.expect("an appender panicked") {
                Ok(_) => wins += 1,
                Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, version + 1),
                Err(other) => panic!("appender failed: {other}"),
            }
        }
        assert_eq!(wins, 1, "version {version}: {wins} appenders won");
    }
    assert_eq!(store.stream_version(&entity).await.unwrap(), 10);
    let page = store.timeline(&TimelineQuery::new(entity)).await.unwrap();
    let versions: Vec<u64> = page
        .events
        .iter()
        .filter_map(|e| e.entity_version)
        .collect();
    assert_eq!(versions, (1..=10).collect::<Vec<_>>());
}

/// Counts per name per minute, hour and day, within the range asked.
pub async fn stats_count_per_name_per_bucket(store: Store) {
    let hour = 3600;
    store
        .append(vec![
            event("a", 1).occurred_at(at(0)),
            event("a", 2).occurred_at(at(30)),
            event("a", 3).occurred_at(at(90)),
            event("b", 4).occurred_at(at(hour + 5)),
            event("a", 5).occurred_at(at(hour + 10)),
        ])
        .await
        .unwrap();
    // `at(0)` is 20 s into its minute: 0 s and 30 s share one, 90 s is
    // in the next, an hour and 10 s is 60 minutes on.
    let base = Bucket::Minute.start_of(at(0));
    assert_eq!(millis(at(0)) - millis(base), 20_000);
    let minutes = store
        .stats(&StatsQuery::new(Bucket::Minute).name("a"))
        .await
        .unwrap();
    let rows: Vec<(&str, i64, u64)> = minutes
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                (millis(r.start) - millis(base)) / 60_000,
                r.count,
            )
        })
        .collect();
    assert_eq!(rows, vec![("a", 0, 2), ("a", 1, 1), ("a", 60, 1)]);

    let days = store.stats(&StatsQuery::new(Bucket::Day)).await.unwrap();
    let total: u64 = days.iter().map(|r| r.count).sum();
    assert_eq!(total, 5);
    let names: Vec<&str> = days.iter().map(|r| r.name.as_str()).collect();
    assert!(names.contains(&"a") && names.contains(&"b"));

    let ranged = store
        .stats(
            &StatsQuery::new(Bucket::Hour)
                .since(at(hour))
                .until(at(2 * hour)),
        )
        .await
        .unwrap();
    let mut by_name: BTreeMap<String, u64> = BTreeMap::new();
    for row in ranged {
        *by_name.entry(row.name).or_default() += row.count;
    }
    assert_eq!(
        by_name,
        BTreeMap::from([("a".to_owned(), 1), ("b".to_owned(), 1)])
    );
}

/// One row per name and version, with a count and the newest payload.
pub async fn schemas_list_each_name_and_version(store: Store) {
    store
        .append(vec![
            NewEvent::new("order.placed", r#"{"id":1}"#).occurred_at(at(1)),
            NewEvent::new("order.placed", r#"{"id":2,"total":5}"#).occurred_at(at(2)),
            NewEvent::new("order.placed", r#"{"order_id":3}"#)
                .version(2)
                .occurred_at(at(3)),
            NewEvent::new("cart.opened", r#"{"cart":1}"#).occurred_at(at(4)),
        ])
        .await
        .unwrap();
    let schemas = store.schemas().await.unwrap();
    let rows: Vec<(&str, u32, u64)> = schemas
        .iter()
        .map(|s| (s.name.as_str(), s.version, s.count))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("cart.opened", 1, 1),
            ("order.placed", 1, 2),
            ("order.placed", 2, 1)
        ]
    );
    assert_eq!(schemas[1].fields(), vec!["id", "total"]);
    assert_eq!(schemas[1].last_seen, at(2));
}

/// Checkpoints are kept per projector, moved, and cleared.
pub async fn checkpoints_are_kept_per_projector(store: Store) {
    assert_eq!(store.checkpoint("totals").await.unwrap(), None);
    store.save_checkpoint("totals", 10).await.unwrap();
    store.save_checkpoint("search", 3).await.unwrap();
    store.save_checkpoint("totals", 25).await.unwrap();
    assert_eq!(store.checkpoint("totals").await.unwrap(), Some(25));
    assert_eq!(store.checkpoint("search").await.unwrap(), Some(3));
    assert!(store.clear_checkpoint("totals").await.unwrap());
    assert!(!store.clear_checkpoint("totals").await.unwrap());
    assert_eq!(store.checkpoint("totals").await.unwrap(), None);
}

/// Pruning takes what occurred before the cut, of the names given; later
/// appends never reuse a position.
pub async fn prune_deletes_older_events_per_name(store: Store) {
    store
        .append(vec![
            event("audit.read", 1).occurred_at(at(1)),
            event("order.placed", 2).occurred_at(at(2)),
            event("audit.read", 3).occurred_at(at(100)),
        ])
        .await
        .unwrap();
    let last = store.last_position().await.unwrap();
    let gone = store
        .prune(&Prune::before(at(50)).name("audit.*"))
        .await
        .unwrap();
    assert_eq!(gone, 1);
    assert_eq!(
        ns(&store.events(&EventQuery::new()).await.unwrap()),
        vec![2, 3]
    );
    assert_eq!(store.prune(&Prune::before(at(50))).await.unwrap(), 1);
    assert_eq!(
        ns(&store.events(&EventQuery::new()).await.unwrap()),
        vec![3]
    );
    // Pruning everything leaves the highest position given out.
    assert_eq!(store.prune(&Prune::before(at(1_000))).await.unwrap(), 1);
    assert_eq!(store.last_position().await.unwrap(), last);
    let next = store.append(vec![event("x", 4)]).await.unwrap();
    assert!(next[0].position > last);
}

fn subscription(id: &str, names: &[&str]) -> Subscription {
    Subscription::new(
        id,
        format!("https://hooks.example.com/{id}"),
        names.iter().map(|s| s.to_string()).collect(),
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )
}

/// Subscriptions are stored whole, listed oldest first, changed field by
/// field, and deleted.
pub async fn subscriptions_are_created_changed_and_deleted(store: Store) {
    let mut first = subscription("sub-1", &["appointment.*"]);
    first
        .filters
        .insert("status".into(), serde_json::json!("paid"));
    first.description = Some("billing".into());
    store.create_subscription(&first).await.unwrap();
    store
        .create_subscription(&subscription("sub-2", &["*"]))
        .await
        .unwrap();
    let twice = store.create_subscription(&first).await.unwrap_err();
    assert!(matches!(twice, StoreError::Invalid(_)), "{twice:?}");

    let all = store.subscriptions().await.unwrap();
    let ids: Vec<&str> = all.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, vec!["sub-1", "sub-2"]);
    assert_eq!(all[0], first);
    assert_eq!(
        store.subscription("sub-1").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.subscription("nope").await.unwrap(), None);

    let changed = store
        .update_subscription(
            "sub-1",
            &SubscriptionChange::new()
                .active(false)
                .event_names(vec!["invoice.*".into()]),
        )
        .await
        .unwrap()
        .expect("sub-1 exists");
    assert!(!changed.active);
    assert_eq!(changed.event_names, vec!["invoice.*"]);
    assert_eq!(changed.url, first.url);
    assert_eq!(store.subscription("sub-1").await.unwrap(), Some(changed));
    assert_eq!(
        store
            .update_subscription("nope", &SubscriptionChange::new())
            .await
            .unwrap(),
        None
    );
    assert!(store.delete_subscription("sub-1").await.unwrap());
    assert!(!store.delete_subscription("sub-1").await.unwrap());
    assert_eq!(store.subscriptions().await.unwrap().len(), 1);
}

/// Ten consecutive failures turn a subscription off with the reason; a
/// success in between resets the count; a 410 turns it off at once;
/// turning it on again starts over.
pub async fn delivery_outcomes_disable_and_reset(store: Store) {
    store
        .create_subscription(&subscription("s", &["*"]))
        .await
        .unwrap();
    let failed = DeliveryResult::Failed("HTTP 500".into());
    for _ in 0..9 {
        let state = store
            .note_delivery("s", &failed, 10)
            .await
            .unwrap()
            .unwrap();
        assert!(state.active && !state.disabled_now);
    }
    let state = store
        .note_delivery("s", &DeliveryResult::Succeeded, 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.consecutive_failures, 0);
    let mut last = None;
    for _ in 0..10 {
        last = store.note_delivery("s", &failed, 10).await.unwrap();
    }
    let last = last.unwrap();
    assert!(!last.active && last.disabled_now);
    assert_eq!(last.consecutive_failures, 10);
    let stored = store.subscription("s").await.unwrap().unwrap();
    assert!(!stored.active);
    assert!(
        stored
            .disabled_reason
            .as_deref()
            .unwrap()
            .contains("HTTP 500"),
        "{stored:?}"
    );
    let again = store
        .update_subscription("s", &SubscriptionChange::new().active(true))
        .await
        .unwrap()
        .unwrap();
    assert!(again.active && again.consecutive_failures == 0 && again.disabled_reason.is_none());
    let gone = store
        .note_delivery("s", &DeliveryResult::Gone("HTTP 410 Gone".into()), 10)
        .await
        .unwrap()
        .unwrap();
    assert!(!gone.active && gone.disabled_now);
    assert_eq!(
        store
            .subscription("s")
            .await
            .unwrap()
            .unwrap()
            .disabled_reason
            .as_deref(),
        Some("HTTP 410 Gone")
    );
    assert_eq!(
        store
            .note_delivery("nope", &DeliveryResult::Succeeded, 10)
            .await
            .unwrap(),
        None
    );
}

fn delivery(n: u32, subscription: &str, event_id: EventId, secs: u64, ok: bool) -> Delivery {
    Delivery {
        id: format!("attempt-{n}"),
        webhook_id: format!("msg_{event_id}"),
        subscription_id: subscription.to_owned(),
        event_id,
        event_name: "appointment.created".into(),
        url: "https://hooks.example.com/x".into(),
        attempt: n,
        at: at(secs),
        status: Some(if ok { 200 } else { 500 }),
        latency_ms: 12,
        response: Some(if ok { "ok" } else { "boom" }.into()),
        error: (!ok).then(|| "HTTP 500".to_owned()),
        succeeded: ok,
        replay: false,
    }
}

/// The log reads newest first, by subscription, event, outcome and time;
/// every field reads back; pruning takes the old entries.
pub async fn the_delivery_log_is_filtered_newest_first_and_pruned(store: Store) {
    let (e1, e2) = (EventId::new(), EventId::new());
    let entries = [
        delivery(1, "a", e1, 10, false),
        delivery(2, "a", e1, 20, true),
        delivery(3, "b", e2, 30, true),
    ];
    for entry in &entries {
        store.log_delivery(entry).await.unwrap();
    }
    let ids = |list: Vec<Delivery>| list.into_iter().map(|d| d.id).collect::<Vec<_>>();
    let all = store.deliveries(&DeliveryQuery::new()).await.unwrap();
    assert_eq!(all[2], entries[0]);
    assert_eq!(ids(all), vec!["attempt-3", "attempt-2", "attempt-1"]);
    assert_eq!(
        ids(store
            .deliveries(&DeliveryQuery::new().subscription("a"))
            .await
            .unwrap()),
        vec!["attempt-2", "attempt-1"]
    );
    assert_eq!(
        ids(store
            .deliveries(&DeliveryQuery::new().succeeded(false))
            .await
            .unwrap()),
        vec!["attempt-1"]
    );
    assert_eq!(
        ids(store
            .deliveries(&DeliveryQuery::new().event(e2))
            .await
            .unwrap()),
        vec!["attempt-3"]
    );
    assert_eq!(
        ids(store
            .deliveries(&DeliveryQuery::new().since(at(20)).limit(1))
            .await
            .unwrap()),
        vec!["attempt-3"]
    );
    assert_eq!(store.prune_deliveries(at(25)).await.unwrap(), 2);
    assert_eq!(
        ids(store.deliveries(&DeliveryQuery::new()).await.unwrap()),
        vec!["attempt-3"]
    );
}
