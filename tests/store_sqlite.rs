//! The event log on SQLite through the facade (feature `store`): a store
//! and a queue opened by URL on one file append and enqueue in one
//! transaction, and `SqliteStore::for_queue` shares the queue's connection.

use std::time::Duration;

use events::Envelope;
use events::queue::Job;
use events::store::{EventQuery, NewEvent, SqliteStore, StoreError, TimelineQuery};

fn job_for(event: &NewEvent, listener: &str) -> Job {
    Job::from_parts(
        format!("{}-{listener}", event.id),
        "default",
        listener,
        &event.name,
        &event.payload,
        Envelope::from_parts(event.id, event.occurred_at, event.metadata.clone()),
    )
}

#[tokio::test]
async fn a_store_and_a_queue_on_one_file_write_together() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("app.sqlite").display());
    let queue = events::queue::connect(&url).await.unwrap();
    let store = events::store::connect(&url).await.unwrap();
    assert_eq!(store.url(), url);

    let event = NewEvent::new("appointment.created", r#"{"appointment_id":7}"#)
        .entity("appointment:7".parse().unwrap())
        .with("actor_id", "42");
    let appended = store
        .append_with_jobs(vec![event.clone()], vec![job_for(&event, "mail")], &queue)
        .await
        .unwrap();
    assert!(appended[0].stored);
    assert_eq!(queue.size("default").await.unwrap(), 1);
    let page = store
        .timeline(&TimelineQuery::new("appointment:7".parse().unwrap()))
        .await
        .unwrap();
    assert_eq!(page.events[0].actor(), Some("42"));

    // A job SQLite refuses (here: a trigger) takes the event with it.
    let raw = rusqlite::Connection::open(dir.path().join("app.sqlite")).unwrap();
    raw.execute_batch(
        "CREATE TRIGGER refuse BEFORE INSERT ON events_jobs BEGIN SELECT RAISE(ABORT, 'refused'); END;",
    )
    .unwrap();
    let second = NewEvent::new("appointment.cancelled", "{}");
    let error = store
        .append_with_jobs(vec![second.clone()], vec![job_for(&second, "mail")], &queue)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Backend { .. }), "{error:?}");
    assert!(store.event(second.id).await.unwrap().is_none());
    assert_eq!(
        store.events(&EventQuery::new()).await.unwrap().events.len(),
        1
    );

    // On the queue's own connection.
    raw.execute_batch("DROP TRIGGER refuse").unwrap();
    let shared = SqliteStore::for_queue(&queue).unwrap();
    assert!(shared.shares_file_with(&queue));
    use events::store::EventStore;
    shared
        .append_with_jobs(vec![second.clone()], vec![job_for(&second, "mail")], &queue)
        .await
        .unwrap();
    let claimed = queue
        .backend()
        .claim(&["default".to_owned()], 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(store.last_position().await.unwrap(), 2);
}
