//! The broadcast server as browsers use it: the real npm `pusher-js`
//! client (`tests/pusher/pusher.mjs`, run with the machine's Node; `npm
//! ci` in `tests/pusher` first) connects, subscribes to a public, a
//! private and a presence channel through the real `/broadcasting/auth`,
//! receives events published from Rust with their name and data, sees
//! `member_added` / `member_removed`, is refused a private channel by the
//! endpoint (someone else's, nobody signed in) and by the server (a forged
//! signature), and reconnects on its own after the server restarts on the
//! same port.
//!
//! Under `CI=true` a missing `node` or `tests/pusher/node_modules` fails
//! the test; elsewhere it says what is missing and passes.

#[path = "support/node.rs"]
mod node_support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use events::broadcast::axum::http::request::Parts;
use events::broadcast::{App, Broadcaster, Broadcasts, Channels, Member};
use events::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const KEY: &str = "pusher-test-key";

/// Declared as an application declares it: queued (the default), sent
/// to pusher-js as `message_post` with the data `wire` makes.
#[event(
    name = "message.ready",
    broadcast = ["messages", "private-session.{session}"],
    broadcast_as = "message_post",
    broadcast_with = wire
)]
#[derive(Serialize, Deserialize)]
struct MessageReady {
    id: u64,
    session: u64,
    text: String,
}

fn wire(e: &MessageReady) -> Value {
    json!({"id": e.id, "text": e.text})
}

struct User {
    id: u64,
    name: String,
}

fn user_of(parts: &Parts) -> Option<User> {
    let value = parts.headers.get("authorization")?.to_str().ok()?;
    match value.strip_prefix("Bearer ")? {
        "ann" => Some(User {
            id: 7,
            name: "ann".into(),
        }),
        "bob" => Some(User {
            id: 9,
            name: "bob".into(),
        }),
        _ => None,
    }
}

/// A fresh server (as after a restart) on `listener`.
fn start(listener: tokio::net::TcpListener) -> (Broadcaster, tokio::task::JoinHandle<()>) {
    let channels = Channels::new(user_of)
        .channel("private-session.{id}", |user: &User, params| {
            params.parse::<u64>("id") == Some(user.id)
        })
        .presence("presence-room.{room}", |user: &User, _| {
            Some(Member::new(user.id.to_string()).info(json!({ "name": user.name })))
        });
    let broadcaster = Broadcaster::builder()
        .app(App::new("1", KEY, "pusher-test-secret"))
        .channels(channels)
        .build()
        .expect("the broadcaster builds");
    let router = broadcaster.router();
    let task = tokio::spawn(async move {
        events::broadcast::axum::serve(listener, router)
            .await
            .expect("serves");
    });
    (broadcaster, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_js_subscribes_receives_sees_members_is_refused_and_reconnects() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pusher");
    if !node_support::can_run(
        "the pusher-js test",
        node_support::missing(&dir, "pusher-js", false),
    ) {
        return;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr: SocketAddr = listener.local_addr().expect("its address");
    let (broadcaster, task) = start(listener);

    let port = addr.port().to_string();
    let mut script = node_support::Script::start(
        &dir,
        "pusher.mjs",
        [addr.ip().to_string().as_str(), port.as_str(), KEY],
        Duration::from_secs(45),
    );

    let subscribed = script.step("subscribed").await;
    assert!(subscribed["socket_id"].is_string(), "{subscribed}");
    // Dispatched from Rust: the event's job waits on the queue, and a
    // worker given the broadcaster publishes it.
    let queue = events::Queue::memory();
    let dispatcher = events::Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .expect("the dispatcher builds");
    dispatcher
        .dispatch(MessageReady {
            id: 1,
            session: 7,
            text: "hello".into(),
        })
        .await
        .expect("dispatches");
    let report = events::Worker::new(queue)
        .queues(["broadcasts"])
        .state(Broadcasts::new(broadcaster.clone()))
        .run_until_empty()
        .await
        .expect("the worker runs");
    assert_eq!(report.succeeded, 1, "{report:?}");
    let received = script.step("received").await;
    assert_eq!(
        received["events"],
        json!([
            {"channel": "messages", "data": {"id": 1, "text": "hello"}},
            {"channel": "private-session.7", "data": {"id": 1, "text": "hello"}},
        ])
    );

    let added = script.step("member_added").await;
    assert_eq!(
        added,
        json!({"id": "9", "info": {"name": "bob"}, "count": 2})
    );
    let removed = script.step("member_removed").await;
    assert_eq!(removed, json!({"id": "9", "count": 1}));

    let refused = script.step("refused").await;
    assert_eq!(
        refused,
        json!({
            "endpoint": 403,
            "anonymous": 403,
            "server": {"type": "AuthError", "status": 401, "code": 4009},
        })
    );

    // The restart: close every socket with 4200, stop, serve again on the
    // same port with a fresh server.
    script.step("restart").await;
    broadcaster.shutdown().await;
    task.abort();
    let _ = task.await;
    let listener = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => break listener,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await
    .expect("the port is free again");
    let (broadcaster, _task) = start(listener);
    script.tell("go restarted").await;

    let reconnected = script.step("reconnected").await;
    assert_ne!(reconnected["socket_id"], subscribed["socket_id"]);
    assert_eq!(reconnected["members"], 1, "{reconnected}");
    let states: Vec<&str> = reconnected["states"]
        .as_array()
        .expect("states")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        states.first() != Some(&"connected") && states.last() == Some(&"connected"),
        "the client went away and came back: {states:?}"
    );
    broadcaster
        .publish("1", &["messages"], "message_post", &json!({"id": 2}), None)
        .await
        .expect("publishes");
    let again = script.step("received_again").await;
    assert_eq!(again["data"], json!({"id": 2}));

    let seen = script.finish().await;
    println!("the pusher-js script's steps:\n{}", seen.join("\n"));
}
