//! `#[event(broadcast ..)]`: the channels, name and data an event
//! declares, published inside dispatch (`broadcast_now`) or by a queued
//! job, and what `events::fake_broadcasts()` records. The publisher here
//! is the test's own `Publish` (no server): the broadcast server's own
//! tests (tests/broadcast_pusher.rs) receive these with pusher-js.

use std::sync::{Arc, Mutex};

use events::broadcast::{Broadcast, Broadcasts, Channel, ChannelKind, Publish};
use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event(
    name = "message.ready",
    broadcast = ["messages", "private-session.{session_id}", "private-agent.{agent_type}"],
    broadcast_as = "message_post"
)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MessageReady {
    session_id: u64,
    agent_type: String,
    text: String,
}

fn case_channels(e: &CaseClosed) -> Vec<Channel> {
    e.watchers
        .iter()
        .map(|w| Channel::private(format!("user.{w}")))
        .collect()
}

fn worth_it(e: &CaseClosed) -> bool {
    !e.watchers.is_empty()
}

fn summary(e: &CaseClosed) -> serde_json::Value {
    serde_json::json!({ "case": e.case, "watching": e.watchers.len() })
}

#[event(
    name = "case.closed",
    broadcast = ["presence-case.{case}"],
    broadcast_on = case_channels,
    broadcast_when = worth_it,
    broadcast_with = summary,
    broadcast_now
)]
#[derive(Debug, Clone)]
struct CaseClosed {
    case: u32,
    watchers: Vec<u32>,
}

#[event(broadcast = ["queues"], broadcast_queue = "realtime")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct QueueCreated {
    name: String,
}

#[event(broadcast = ["rooms.{room}"], broadcast_now)]
#[derive(Debug, Clone, Serialize)]
struct Typed {
    room: String,
}

/// An error and its sources, as a report prints them.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(next) = source {
        text.push_str(": ");
        text.push_str(&next.to_string());
        source = next.source();
    }
    text
}

/// Keeps what it is asked to publish.
#[derive(Clone, Default)]
struct Kept(Arc<Mutex<Vec<Broadcast>>>);

#[async_trait::async_trait]
impl Publish for Kept {
    async fn publish(&self, broadcast: &Broadcast) -> Result<(), events::BoxError> {
        self.0.lock().unwrap().push(broadcast.clone());
        Ok(())
    }
}

impl Kept {
    fn taken(&self) -> Vec<Broadcast> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[test]
fn the_declared_listeners_are_registered_by_name() {
    let registry = events::registry();
    let now = registry
        .listener("broadcast_declare::CaseClosed::broadcast")
        .expect("broadcast_now registers a listener");
    assert_eq!(now.mode(), events::Mode::Sync);
    let queued = registry
        .listener("broadcast_declare::MessageReady::broadcast")
        .expect("a queued broadcast registers a listener");
    match queued.mode() {
        events::Mode::Queued(options) => {
            assert_eq!(options.queue(), "broadcasts");
            assert_eq!(options.tries(), 3);
        }
        other => panic!("expected a queued broadcast, got {other:?}"),
    }
    match registry
        .listener("broadcast_declare::QueueCreated::broadcast")
        .unwrap()
        .mode()
    {
        events::Mode::Queued(options) => assert_eq!(options.queue(), "realtime"),
        other => panic!("expected a queued broadcast, got {other:?}"),
    }
}

#[tokio::test]
async fn broadcast_now_publishes_inside_dispatch_with_on_when_and_with() {
    let kept = Kept::default();
    let dispatcher = events::Dispatcher::builder()
        .state(Broadcasts::new(kept.clone()))
        .build()
        .unwrap();
    let done = dispatcher
        .dispatch(CaseClosed {
            case: 9,
            watchers: vec![1, 2],
        })
        .await
        .unwrap();
    assert_eq!(done.ran(), 1);
    let sent = kept.taken();
    assert_eq!(sent.len(), 1);
    let b = &sent[0];
    assert_eq!(b.event, "case.closed");
    assert_eq!(b.name, "case.closed", "no broadcast_as: the event's name");
    let names: Vec<&str> = b.channels.iter().map(Channel::name).collect();
    assert_eq!(
        names,
        ["presence-case.9", "private-user.1", "private-user.2"]
    );
    assert_eq!(b.channels[0].kind(), ChannelKind::Presence);
    assert_eq!(b.data, serde_json::json!({"case": 9, "watching": 2}));
    assert_eq!(b.except, None);

    // `broadcast_when` says no: nothing goes out, and the listener is
    // counted as skipped.
    let done = dispatcher
        .dispatch(CaseClosed {
            case: 10,
            watchers: vec![],
        })
        .await
        .unwrap();
    assert_eq!(done.skipped(), 1);
    assert!(kept.taken().is_empty());
}

#[tokio::test]
async fn to_others_leaves_the_senders_socket_out() {
    let kept = Kept::default();
    let dispatcher = events::Dispatcher::builder()
        .state(Broadcasts::new(kept.clone()))
        .build()
        .unwrap();
    dispatcher
        .dispatch(Typed {
            room: "lobby".into(),
        })
        .to_others("123.456")
        .await
        .unwrap();
    let sent = kept.taken();
    assert_eq!(sent[0].except.as_deref(), Some("123.456"));
    assert_eq!(sent[0].data, serde_json::json!({"room": "lobby"}));
}

#[tokio::test]
async fn a_queued_broadcast_is_a_job_that_the_worker_publishes() {
    let queue = events::Queue::memory();
    let dispatcher = events::Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap();
    let event = MessageReady {
        session_id: 7,
        agent_type: "sales".into(),
        text: "hi".into(),
    };
    let done = dispatcher.dispatch(event).to_others("1.2").await.unwrap();
    assert_eq!(done.queued(), 1);
    assert_eq!(queue.size("broadcasts").await.unwrap(), 1);

    let kept = Kept::default();
    let report = events::Worker::new(queue.clone())
        .queues(["broadcasts"])
        .state(Broadcasts::new(kept.clone()))
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!(report.succeeded, 1, "{report:?}");
    let sent = kept.taken();
    assert_eq!(sent.len(), 1);
    let b = &sent[0];
    assert_eq!(b.name, "message_post");
    let names: Vec<&str> = b.channels.iter().map(Channel::name).collect();
    assert_eq!(
        names,
        ["messages", "private-session.7", "private-agent.sales"]
    );
    assert_eq!(
        b.data,
        serde_json::json!({"session_id": 7, "agent_type": "sales", "text": "hi"})
    );
    assert_eq!(
        b.except.as_deref(),
        Some("1.2"),
        "the metadata travels with the job"
    );
}

#[tokio::test]
async fn without_a_publisher_the_error_says_what_to_add() {
    // Inside dispatch: the dispatch fails, in words.
    let dispatcher = events::Dispatcher::builder().build().unwrap();
    let error = dispatcher
        .dispatch(Typed { room: "x".into() })
        .await
        .unwrap_err();
    let error = chain(&error);
    assert!(
        error.contains("no `Broadcasts` was given to the dispatcher"),
        "{error}"
    );

    // In a worker: the job fails, kept in the failed store to retry.
    let queue = events::Queue::memory();
    let dispatcher = events::Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap();
    dispatcher
        .dispatch(QueueCreated { name: "q".into() })
        .await
        .unwrap();
    let report = events::Worker::new(queue.clone())
        .queues(["realtime"])
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!(report.failed, 1, "{report:?}");
    let failed = queue.failed().await.unwrap();
    assert!(
        failed[0]
            .error
            .contains("no `Broadcasts` was given to the worker"),
        "{}",
        failed[0].error
    );
}

#[tokio::test]
async fn a_channel_made_from_a_field_is_checked_when_it_is_rendered() {
    let kept = Kept::default();
    let dispatcher = events::Dispatcher::builder()
        .state(Broadcasts::new(kept.clone()))
        .build()
        .unwrap();
    let error = dispatcher
        .dispatch(Typed {
            room: "a room".into(),
        })
        .await
        .unwrap_err();
    let error = chain(&error);
    assert!(
        error.contains("`rooms.a room` is not a channel name"),
        "{error}"
    );
    assert!(kept.taken().is_empty(), "nothing half-sent");
}

#[tokio::test]
async fn the_fake_records_queued_and_immediate_broadcasts_instead_of_sending_them() {
    let queue = events::Queue::memory();
    let dispatcher = events::Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap();
    let fake = events::fake_broadcasts();
    dispatcher
        .dispatch(MessageReady {
            session_id: 7,
            agent_type: "support".into(),
            text: "hello".into(),
        })
        .await
        .unwrap();
    // No publisher is configured: the fake records before one is needed.
    dispatcher
        .dispatch(Typed { room: "r1".into() })
        .await
        .unwrap();
    dispatcher
        .dispatch(CaseClosed {
            case: 1,
            watchers: vec![],
        })
        .await
        .unwrap();
    fake.assert_broadcast_on::<MessageReady>("private-session.7");
    fake.assert_broadcast_on::<MessageReady>("private-agent.support");
    fake.assert_broadcast_on::<Typed>("rooms.r1");
    fake.assert_broadcast_times::<MessageReady>(1);
    fake.assert_not_broadcast::<CaseClosed>();
    fake.assert_not_broadcast::<QueueCreated>();
    fake.assert_broadcast_where::<MessageReady>(|b| b.name == "message_post");
    assert_eq!(
        queue.size("broadcasts").await.unwrap(),
        0,
        "nothing enqueued"
    );

    let missing = std::panic::catch_unwind(|| {
        fake.assert_broadcast_on::<MessageReady>("private-session.8");
    })
    .unwrap_err();
    let message = missing.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("expected `message.ready` to be broadcast on `private-session.8`"),
        "{message}"
    );
    assert!(message.contains("private-session.7"), "{message}");
}

#[tokio::test]
async fn without_a_fake_nothing_is_recorded_for_the_next_test() {
    // A fake of another test (they run in parallel) never sees this
    // dispatch, and this one publishes for real.
    let kept = Kept::default();
    let dispatcher = events::Dispatcher::builder()
        .state(Broadcasts::new(kept.clone()))
        .build()
        .unwrap();
    dispatcher
        .dispatch(Typed {
            room: "solo".into(),
        })
        .await
        .unwrap();
    assert_eq!(kept.taken().len(), 1);
}
