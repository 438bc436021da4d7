//! `cli serve` with the `broadcast` feature, in a real process configured
//! as a Laravel `.env` configures Reverb (`REVERB_APP_ID`, `_KEY`,
//! `_SECRET`): a WebSocket client connects to `/app/{key}`, an event
//! published through the signed HTTP API reaches it, and SIGTERM closes it
//! with 4200 (reconnect) before the process exits.

#[path = "support/cli.rs"]
mod cli_support;

#[path = "support/http.rs"]
mod http_support;

use std::io::BufRead;
use std::time::Duration;

use events::broadcast::protocol::{ConnectionEstablished, Frame};
use events::broadcast::sign;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const CHILD_ARGS: &str = "EVENTS_TEST_BROADCAST_SERVE_ARGS";

/// The `serve` process itself: a no-op unless the parent test started
/// this binary with `CHILD_ARGS`.
#[tokio::test]
async fn child_serve_process() {
    cli_support::run_child(CHILD_ARGS).await;
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next message within 5 s.
async fn next(ws: &mut Socket) -> Option<Message> {
    tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("a message in time")
        .map(|m| m.expect("no error"))
}

/// A JSON request; the status and the body.
async fn http(addr: &str, method: &str, target: &str, body: &str) -> (u16, String) {
    let json = [("Content-Type", "application/json")];
    http_support::request(addr, method, target, &json, body).await
}

#[tokio::test]
async fn serve_mounts_the_broadcast_server_configured_like_reverb() {
    let mut child = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args([
            "--exact",
            "child_serve_process",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD_ARGS, "serve\n--host\n127.0.0.1\n--port\n0")
        .env("EVENTS_QUEUE_URL", "memory://")
        .env("REVERB_APP_ID", "42")
        .env("REVERB_APP_KEY", "reverb-key")
        .env("REVERB_APP_SECRET", "reverb-secret")
        .env_remove("EVENTS_BROADCAST_REDIS_URL")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the serve process starts");
    let stdout = child.stdout.take().expect("its stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        lines
            .find_map(|l| {
                let l = l.ok()?;
                let at = l.find("serving http://")?;
                Some(l[at..].to_owned())
            })
            .expect("the start line")
    })
    .await
    .expect("the reader");
    assert!(
        line.contains("broadcasting at /app/reverb-key with its API at /apps/42"),
        "{line}"
    );
    let addr = line["serving http://".len()..]
        .split(' ')
        .next()
        .expect("an address")
        .to_owned();

    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{addr}/app/reverb-key?protocol=7&client=js&version=8.4.0"
    ))
    .await
    .expect("the WebSocket opens");
    let Some(Message::Text(text)) = next(&mut ws).await else {
        panic!("no connection_established")
    };
    let established: ConnectionEstablished = Frame::parse(text.as_str())
        .expect("a frame")
        .data_as()
        .expect("its data");
    ws.send(Message::Text(
        r#"{"event":"pusher:subscribe","data":{"channel":"orders"}}"#.into(),
    ))
    .await
    .expect("sends");
    let Some(Message::Text(text)) = next(&mut ws).await else {
        panic!("no answer to the subscribe")
    };
    assert_eq!(
        Frame::parse(text.as_str()).expect("a frame").event,
        "pusher_internal:subscription_succeeded"
    );

    // As a PHP service publishes: signed with the app's secret.
    let body = r#"{"name":"order.shipped","channels":["orders"],"data":"{\"id\":7}"}"#;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let query = sign::signed_query(
        "reverb-key",
        "reverb-secret",
        "POST",
        "/apps/42/events",
        &[],
        body.as_bytes(),
        now,
    );
    let (status, answer) = http(&addr, "POST", &format!("/apps/42/events?{query}"), body).await;
    assert_eq!(status, 200, "{answer}");
    let Some(Message::Text(text)) = next(&mut ws).await else {
        panic!("no event")
    };
    let frame = Frame::parse(text.as_str()).expect("a frame");
    assert_eq!(frame.event, "order.shipped");
    assert_eq!(frame.data, serde_json::json!("{\"id\":7}"));
    let (status, _) = http(&addr, "POST", "/apps/42/events", body).await;
    assert_eq!(status, 401, "unsigned requests are refused");
    assert!(!established.socket_id.is_empty());

    // SIGTERM: the socket is closed with 4200, then the process exits.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let close = loop {
        match next(&mut ws).await {
            Some(Message::Close(close)) => break close,
            Some(_) => continue,
            None => panic!("the socket ended without a close frame"),
        }
    };
    let close = close.expect("a close code");
    assert_eq!(u16::from(close.code), 4200, "{close:?}");
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("the waiter")
        .expect("waits");
    assert!(exit.success(), "{exit:?}");
}
