//! A broadcast server on a free port of 127.0.0.1, and a WebSocket client
//! that speaks to it as pusher-js does (tokio-tungstenite).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use events_broadcast::protocol::{ConnectionEstablished, Frame};
use events_broadcast::{App, Broadcaster, Builder};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const APP_ID: &str = "1";
pub const KEY: &str = "app-key";
pub const SECRET: &str = "app-secret";

pub fn app() -> App {
    App::new(APP_ID, KEY, SECRET)
}

/// How long a frame that should come may take.
pub const WAIT: Duration = Duration::from_secs(5);

pub struct Server {
    pub addr: SocketAddr,
    pub broadcaster: Broadcaster,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `builder`'s broadcaster on a free port.
pub async fn serve(builder: Builder) -> Server {
    let broadcaster = builder.build().expect("the broadcaster builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("its address");
    let router = broadcaster.router();
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serves");
    });
    Server {
        addr,
        broadcaster,
        task,
    }
}

pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub socket_id: String,
    pub activity_timeout: u64,
}

/// Opens `/app/{key}?protocol=7` and reads its first frame as it is.
pub async fn open(
    addr: SocketAddr,
    path_and_query: &str,
) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
    let url = format!("ws://{addr}{path_and_query}");
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("connects in time")
        .expect("connects");
    ws
}

impl Client {
    /// Connects to the app `key` and reads `pusher:connection_established`.
    pub async fn connect(addr: SocketAddr, key: &str) -> Client {
        let ws = open(
            addr,
            &format!("/app/{key}?protocol=7&client=rust&version=8.4.0"),
        )
        .await;
        let mut client = Client {
            ws,
            socket_id: String::new(),
            activity_timeout: 0,
        };
        let frame = client.expect("pusher:connection_established").await;
        let established: ConnectionEstablished = frame.data_as().expect("its data");
        assert!(
            frame.data.is_string(),
            "connection_established's data is a JSON string: {frame:?}"
        );
        client.socket_id = established.socket_id;
        client.activity_timeout = established.activity_timeout;
        client
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_text(frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("sends");
    }

    /// The next frame within `WAIT`.
    pub async fn next(&mut self) -> Frame {
        self.next_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("no frame came within {WAIT:?}"))
    }

    /// The next frame within `wait`, or `None`. Panics on a close.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Some(Frame::parse(text.as_str()).expect("the server sends frames"));
                }
                Some(Ok(Message::Close(close))) => panic!("the server closed: {close:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("the connection broke: {e}"),
                None => panic!("the connection ended"),
            }
        }
    }

    /// The next frame, which must be `event`.
    pub async fn expect(&mut self, event: &str) -> Frame {
        let frame = self.next().await;
        assert_eq!(frame.event, event, "expected {event}, got {frame:?}");
        frame
    }

    /// Asserts no frame comes within `wait`.
    pub async fn nothing_for(&mut self, wait: Duration) {
        if let Some(frame) = self.next_within(wait).await {
            panic!("expected nothing, got {frame:?}");
        }
    }

    /// Reads frames until the close; its code and reason, and the frames
    /// before it.
    pub async fn closed(&mut self) -> (u16, String, Vec<Frame>) {
        closed(&mut self.ws).await
    }

    pub async fn subscribe(&mut self, channel: &str) -> Frame {
        self.subscribe_with(serde_json::json!({ "channel": channel }))
            .await
    }

    pub async fn subscribe_with(&mut self, data: Value) -> Frame {
        self.send(serde_json::json!({ "event": "pusher:subscribe", "data": data }))
            .await;
        self.next().await
    }

    /// Subscribes to a private channel with the app's signature.
    pub async fn subscribe_private(&mut self, channel: &str) -> Frame {
        let auth = app().sign_channel(&self.socket_id, channel, None);
        self.subscribe_with(serde_json::json!({ "channel": channel, "auth": auth }))
            .await
    }

    /// Subscribes to a presence channel as `user_id` with `info`.
    pub async fn subscribe_presence(&mut self, channel: &str, user_id: &str, info: Value) -> Frame {
        let data = serde_json::json!({ "user_id": user_id, "user_info": info }).to_string();
        let auth = app().sign_channel(&self.socket_id, channel, Some(&data));
        self.subscribe_with(
            serde_json::json!({ "channel": channel, "auth": auth, "channel_data": data }),
        )
        .await
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        // Read until the server's close answer so it has seen ours.
        let _ = tokio::time::timeout(WAIT, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}

/// Reads `ws` until its close: the code, the reason and the frames before.
pub async fn closed(
    ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>,
) -> (u16, String, Vec<Frame>) {
    let mut frames = Vec::new();
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the server closes in time");
        match message {
            Some(Ok(Message::Text(text))) => {
                frames.push(Frame::parse(text.as_str()).expect("a frame"));
            }
            Some(Ok(Message::Close(Some(close)))) => {
                return (u16::from(close.code), close.reason.to_string(), frames);
            }
            Some(Ok(Message::Close(None))) => {
                return (u16::from(CloseCode::Status), String::new(), frames);
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("the connection broke before a close frame: {e}"),
            None => panic!("the connection ended with no close frame"),
        }
    }
}

/// The frame's data as JSON, decoding Pusher's string encoding.
pub fn data(frame: &Frame) -> Value {
    frame.data_as().expect("the data is JSON")
}
