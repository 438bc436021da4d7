//! The chat behind `cargo run --example chat --features broadcast` and its
//! browser test (`tests/chat_browser.rs` includes this file): people in a
//! room (a presence channel), messages posted over HTTP and dispatched as
//! an `#[event(broadcast)]` event, "typing…" as a client event, and the
//! broadcast server beside the page on one port, as an application
//! serves them.
//!
//! Who you are is the `X-Chat-User` header the page sends: enough for a
//! demo on your own machine, not for anything else. A real application's
//! authenticator reads its session cookie or bearer token (see
//! `Channels::new`).

use std::error::Error;

use events::Dispatcher;
use events::broadcast::axum::extract::State;
use events::broadcast::axum::http::request::Parts;
use events::broadcast::axum::http::{HeaderMap, StatusCode, header};
use events::broadcast::axum::response::{Html, IntoResponse, Response};
use events::broadcast::axum::routing::{get, post};
use events::broadcast::axum::{self, Json, Router};
use events::broadcast::{App, Broadcaster, Broadcasts, Channels, Member};
use events::channel;
use events::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The app's key, as the page's pusher-js client gives it.
pub const KEY: &str = "chat-key";

/// A message someone posted in a room: sent to everyone in the room (but
/// the sender, through `to_others`) as `message`, through the queue (no
/// queue is configured here, so the job runs in this process).
#[event(
    name = "chat.message",
    broadcast = ["presence-room.{room}"],
    broadcast_as = "message"
)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessagePosted {
    /// The room's name (`lobby`).
    pub room: String,
    /// Who wrote it.
    pub user: String,
    /// What they wrote.
    pub text: String,
}

/// Someone in the chat: the name they gave.
#[derive(Debug)]
pub struct ChatUser {
    name: String,
}

/// Everyone signed in may join every room, as the member their name is.
#[channel("presence-room.{room}")]
fn room(user: &ChatUser, room: String) -> Option<Member> {
    let _ = room;
    Some(Member::new(user.name.clone()).info(json!({ "name": user.name })))
}

/// A name or a room: 1 to 20 letters, digits, `-` or `_` (so it is a valid
/// channel name segment and needs no escaping anywhere).
pub fn valid_name(name: &str) -> bool {
    (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn user_of(headers: &HeaderMap) -> Option<ChatUser> {
    let name = headers.get("x-chat-user")?.to_str().ok()?;
    valid_name(name).then(|| ChatUser {
        name: name.to_owned(),
    })
}

/// The chat, started: where it listens, and the parts a test reaches for.
pub struct Chat {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The dispatcher the page's messages go through.
    pub dispatcher: Dispatcher,
    /// The broadcast server.
    pub broadcaster: Broadcaster,
    /// The server's task.
    pub task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Shared {
    dispatcher: Dispatcher,
}

/// Serves the chat on `127.0.0.1:port` (`0`: any free port).
pub async fn start(port: u16) -> Result<Chat, Box<dyn Error>> {
    let channels = Channels::new(|parts: &Parts| user_of(&parts.headers));
    let broadcaster = Broadcaster::builder()
        .app(App::new("chat", KEY, random_secret()))
        .channels(channels)
        .build()?;
    let dispatcher = Dispatcher::builder()
        .state(Broadcasts::new(broadcaster.clone()))
        .build()?;
    let app = Router::new()
        .route("/", get(page))
        .route("/chat.js", get(script))
        .route("/pusher.min.js", get(pusher_js))
        .route("/messages", post(post_message))
        .with_state(Shared {
            dispatcher: dispatcher.clone(),
        })
        .merge(broadcaster.router());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("the chat stopped serving: {error}");
        }
    });
    Ok(Chat {
        url,
        dispatcher,
        broadcaster,
        task,
    })
}

/// A secret nobody can guess, new on each start (the page never needs it:
/// the auth endpoint signs with it).
fn random_secret() -> String {
    use std::hash::{BuildHasher, Hasher};
    (0..4)
        .map(|_| {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(0);
            format!("{:016x}", hasher.finish())
        })
        .collect()
}

/// A strict policy: the page runs only its own two scripts and talks only
/// to its own origin (the WebSocket included).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

async fn page() -> Response {
    let html = include_str!("../chat/index.html").replace("{{KEY}}", KEY);
    ([(header::CONTENT_SECURITY_POLICY, CSP)], Html(html)).into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../chat/chat.js"),
    )
        .into_response()
}

/// pusher-js 8.6.0, vendored (MIT, `examples/chat/pusher-js-LICENCE`): the
/// page works without a CDN.
async fn pusher_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../chat/pusher-8.6.0.min.js"),
    )
        .into_response()
}

#[derive(Deserialize)]
struct NewMessage {
    room: String,
    text: String,
}

fn refuse(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

/// `POST /messages` `{"room", "text"}` from the signed-in user: dispatched
/// to everyone else in the room (the `X-Socket-ID` header names the
/// sender's connection, which `to_others` leaves out).
async fn post_message(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Result<Json<NewMessage>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(user) = user_of(&headers) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "sign in first: the X-Chat-User header must be a name of 1 to 20 letters, digits, - or _",
        );
    };
    let Json(message) = match body {
        Ok(body) => body,
        Err(rejection) => return refuse(StatusCode::BAD_REQUEST, &rejection.body_text()),
    };
    if !valid_name(&message.room) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "a room's name is 1 to 20 letters, digits, - or _",
        );
    }
    let text = message.text.trim();
    if text.is_empty() || text.chars().count() > 500 {
        return refuse(StatusCode::BAD_REQUEST, "a message is 1 to 500 characters");
    }
    let event = MessagePosted {
        room: message.room,
        user: user.name,
        text: text.to_owned(),
    };
    let socket = headers
        .get("x-socket-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| events::broadcast::protocol::validate_socket_id(id).is_ok());
    let dispatch = shared.dispatcher.dispatch(event.clone());
    let result = match socket {
        Some(id) => dispatch.to_others(id).await,
        None => dispatch.await,
    };
    match result {
        Ok(_) => (StatusCode::CREATED, Json(event)).into_response(),
        Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}
