//! A worker process that serves no sockets publishes `#[event(broadcast)]`
//! jobs as a Laravel `.env` says (`REVERB_APP_*`, `REVERB_HOST`,
//! `REVERB_PORT`, `REVERB_SCHEME`): `cli work` on a SQLite queue, in a
//! process of its own, sends each through the server's signed HTTP API,
//! and the server's WebSocket client receives it, leaving out the sender's
//! socket; with nowhere configured, the job fails in words.

#[path = "support/cli.rs"]
mod cli_support;

use std::time::Duration;

use events::broadcast::protocol::{ConnectionEstablished, Frame};
use events::broadcast::{App, Broadcaster};
use events::prelude::*;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const CHILD_ARGS: &str = "EVENTS_TEST_BROADCAST_WORK_ARGS";

/// Queued on `broadcasts` (the default), sent as `order.shipped`.
#[event(name = "order.shipped", broadcast = ["orders.{customer}"])]
#[derive(Serialize, Deserialize)]
struct OrderShipped {
    id: u64,
    customer: u64,
}

/// The `work` process itself: a no-op unless the parent test started
/// this binary with `CHILD_ARGS`.
#[tokio::test]
async fn child_work_process() {
    cli_support::run_child(CHILD_ARGS).await;
}

/// Runs `work --stop-when-empty` on `queue_url` in a child process with
/// `env`; its combined output.
fn work(queue_url: &str, env: &[(&str, &str)]) -> String {
    let mut command = std::process::Command::new(std::env::current_exe().expect("this binary"));
    command
        .args([
            "--exact",
            "child_work_process",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD_ARGS, "work\n--queue\nbroadcasts\n--stop-when-empty")
        .env("EVENTS_QUEUE_URL", queue_url);
    for name in [
        "EVENTS_BROADCAST_REDIS_URL",
        "EVENTS_BROADCAST_HOST",
        "EVENTS_BROADCAST_VIA",
        "REVERB_HOST",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let output = command.output().expect("the work process runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "work failed: {text}");
    text
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next frame within 10 s, or `None` when nothing came in `wait`.
async fn next_within(ws: &mut Socket, wait: Duration) -> Option<Frame> {
    match tokio::time::timeout(wait, ws.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => Some(Frame::parse(text.as_str()).expect("a frame")),
        Ok(other) => panic!("not a text frame: {other:?}"),
        Err(_) => None,
    }
}

async fn client(addr: std::net::SocketAddr, channel: &str) -> (Socket, String) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{addr}/app/reverb-key?protocol=7&client=js&version=8.4.0"
    ))
    .await
    .expect("the WebSocket opens");
    let established: ConnectionEstablished = next_within(&mut ws, Duration::from_secs(10))
        .await
        .expect("connection_established")
        .data_as()
        .expect("its data");
    ws.send(Message::Text(
        json!({"event": "pusher:subscribe", "data": {"channel": channel}})
            .to_string()
            .into(),
    ))
    .await
    .expect("sends");
    let answer = next_within(&mut ws, Duration::from_secs(10))
        .await
        .expect("an answer");
    assert_eq!(answer.event, "pusher_internal:subscription_succeeded");
    (ws, established.socket_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_publishes_through_the_servers_http_api_as_a_laravel_env_says() {
    let broadcaster = Broadcaster::builder()
        .app(App::new("42", "reverb-key", "reverb-secret"))
        .build()
        .expect("builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("its address");
    let router = broadcaster.router();
    let server = tokio::spawn(async move {
        events::broadcast::axum::serve(listener, router)
            .await
            .expect("serves");
    });
    let (mut ann, ann_socket) = client(addr, "orders.7").await;
    let (mut bob, _) = client(addr, "orders.7").await;

    let dir = tempfile::tempdir().expect("a temp dir");
    let url = format!("sqlite://{}", dir.path().join("q.sqlite").display());
    let queue = events::queue::connect(&url).await.expect("the queue");
    let dispatcher = events::Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .expect("builds");
    dispatcher
        .dispatch(OrderShipped { id: 1, customer: 7 })
        .await
        .expect("dispatches");
    dispatcher
        .dispatch(OrderShipped { id: 2, customer: 7 })
        .to_others(ann_socket)
        .await
        .expect("dispatches");

    let port = addr.port().to_string();
    let laravel = [
        ("REVERB_APP_ID", "42"),
        ("REVERB_APP_KEY", "reverb-key"),
        ("REVERB_APP_SECRET", "reverb-secret"),
        ("REVERB_HOST", "127.0.0.1"),
        ("REVERB_PORT", port.as_str()),
        ("REVERB_SCHEME", "http"),
    ];
    let output = work(&url, &laravel);
    assert!(output.contains("2 succeeded"), "{output}");

    for (who, ws) in [("ann", &mut ann), ("bob", &mut bob)] {
        let frame = next_within(ws, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("{who} got nothing"));
        assert_eq!(frame.event, "order.shipped", "{who}");
        assert_eq!(frame.channel.as_deref(), Some("orders.7"), "{who}");
        let data: serde_json::Value =
            serde_json::from_str(frame.data.as_str().expect("data is JSON text")).expect("JSON");
        assert_eq!(data, json!({"id": 1, "customer": 7}), "{who}");
    }
    let second = next_within(&mut bob, Duration::from_secs(10))
        .await
        .expect("bob gets the second");
    assert_eq!(second.event, "order.shipped");
    assert!(
        next_within(&mut ann, Duration::from_millis(300))
            .await
            .is_none(),
        "the second was to others than ann"
    );

    // Nowhere configured: the job fails, saying what to set.
    dispatcher
        .dispatch(OrderShipped { id: 3, customer: 7 })
        .await
        .expect("dispatches");
    let output = work(&url, &laravel[..3]);
    assert!(output.contains("1 failed"), "{output}");
    let failed = queue.failed().await.expect("the failed store");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0]
            .error
            .contains("nowhere to publish: set EVENTS_BROADCAST_HOST"),
        "{}",
        failed[0].error
    );
    server.abort();
}
