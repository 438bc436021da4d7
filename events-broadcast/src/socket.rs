//! One WebSocket connection at `/app/{key}`: the handshake, its
//! subscriptions, client events, pings, and its end.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use crate::Inner;
use crate::hub::{self, AppHub, Conn, Delivery, Kick};
use crate::protocol::{
    ChannelKind, ClientMessage, ConnectionEstablished, Member, PresenceData, ServerMessage,
    Subscribe, SubscriptionError, SubscriptionSucceeded, codes, error_frame, validate_channel,
};
use crate::sign::verify_channel_auth;

/// The most channels one connection may be subscribed to at once.
pub(crate) const MAX_SUBSCRIPTIONS: usize = 1000;

/// Why the server closes a connection: a close code and its reason.
type Close = (u16, &'static str);

/// `GET /app/{key}`: upgrades, then speaks the protocol, or says why not
/// (`pusher:error` and a close code) when the key or the protocol version
/// is wrong.
pub(crate) async fn upgrade(
    State(inner): State<Arc<Inner>>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let refusal = match inner.hub.by_key(&key) {
        None => Some((
            codes::APP_NOT_FOUND,
            format!("App key {key} does not exist on this server"),
        )),
        Some(_) => protocol_refusal(query.get("protocol").map(String::as_str)),
    };
    let app = inner.hub.by_key(&key).cloned();
    // Frames over the limit get words, not a dropped connection: the hard
    // limit of the WebSocket layer is well above it.
    let hard_limit = inner
        .options
        .max_message_size
        .saturating_mul(4)
        .max(64 * 1024);
    // tungstenite allocates its read buffer up front (128 KiB by default:
    // 1.3 GB for 10,000 sockets); Pusher frames are small, so 4 KiB. Each
    // frame is written and flushed at once (the outbox queues the rest),
    // so no write buffer either.
    ws.max_message_size(hard_limit)
        .max_frame_size(hard_limit)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            match (refusal, app) {
                (None, Some(app)) => run(socket, inner, app).await,
                (Some((code, message)), _) => refuse(socket, code, message).await,
                (None, None) => refuse(socket, codes::APP_NOT_FOUND, "no such app".into()).await,
            }
        })
}

/// Why the client's `?protocol=` will not do.
fn protocol_refusal(protocol: Option<&str>) -> Option<(u16, String)> {
    match protocol {
        None => Some((
            codes::NO_PROTOCOL,
            "No protocol version supplied: connect with ?protocol=7".into(),
        )),
        Some(version) => match version.parse::<u8>() {
            Err(_) => Some((
                codes::INVALID_VERSION,
                format!("Invalid protocol version `{version}`: connect with ?protocol=7"),
            )),
            Ok(5..=7) => None,
            Ok(other) => Some((
                codes::UNSUPPORTED_PROTOCOL,
                format!("Unsupported protocol version {other}: this server speaks 5 to 7"),
            )),
        },
    }
}

/// Sends `pusher:error` and closes with `code`.
async fn refuse(mut socket: WebSocket, code: u16, message: String) {
    let _ = socket
        .send(Message::Text(error_frame(code, message.clone()).into()))
        .await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from(message.chars().take(120).collect::<String>()),
        })))
        .await;
}

/// A socket id: two random numbers, `digits.digits`.
pub(crate) fn new_socket_id() -> String {
    let random = |salt: u64| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(salt);
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        hasher.finish() % 10_000_000_000
    };
    format!("{}.{}", random(1), random(2))
}

/// A token bucket: `rate` client events a second, bursts of `rate`.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u32) -> Bucket {
        Bucket {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            at: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One connection's state.
struct Session {
    inner: Arc<Inner>,
    app: Arc<AppHub>,
    socket_id: String,
    conn: Conn,
    sink: SplitSink<WebSocket, Message>,
    /// Each subscribed channel, with the user id on presence channels.
    subscriptions: HashMap<String, Option<String>>,
    /// On each presence channel, the version of the members this socket
    /// was sent: changes no newer are in them already.
    since: HashMap<String, u64>,
    last_seen: Instant,
    pinged_at: Option<Instant>,
    bucket: Bucket,
}

/// Keeps the server's count of open connections.
struct Open(Arc<Inner>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.closed();
    }
}

async fn run(socket: WebSocket, inner: Arc<Inner>, app: Arc<AppHub>) {
    inner.opened();
    let _open = Open(inner.clone());
    let (tx, mut rx) = mpsc::channel(inner.options.outbox);
    let kick = Arc::new(Kick::default());
    let (sink, mut stream) = socket.split();
    let mut session = Session {
        socket_id: new_socket_id(),
        conn: Conn {
            tx,
            kick: kick.clone(),
        },
        sink,
        subscriptions: HashMap::new(),
        since: HashMap::new(),
        last_seen: Instant::now(),
        pinged_at: None,
        bucket: Bucket::new(inner.options.client_events_per_second),
        app,
        inner: inner.clone(),
    };
    let mut closing = inner.closing.subscribe();
    let check_every = (inner
        .options
        .activity_timeout
        .min(inner.options.pong_timeout)
        / 4)
    .clamp(Duration::from_millis(50), Duration::from_secs(5));
    let mut tick = tokio::time::interval(check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let established = ServerMessage::ConnectionEstablished(ConnectionEstablished {
        socket_id: session.socket_id.clone(),
        activity_timeout: inner.options.activity_timeout.as_secs(),
    })
    .to_json();
    let close: Option<Close> = if *closing.borrow_and_update() {
        Some((codes::RECONNECT, "the server is shutting down"))
    } else if session.send(established).await.is_err() {
        None
    } else {
        // Each of these completes once and ends the loop: made once, not
        // on every wake-up (each registers a waiter under a lock).
        let kicked = kick.kicked();
        let shutting_down = closing.changed();
        tokio::pin!(kicked, shutting_down);
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(Ok(message)) => {
                        session.last_seen = Instant::now();
                        session.pinged_at = None;
                        match message {
                            Message::Text(text) => {
                                if let Err(close) = session.on_text(text.as_str()).await {
                                    break close;
                                }
                            }
                            Message::Binary(_) => {
                                if session.error(codes::BAD_MESSAGE, "binary messages are not part of the protocol: send JSON text").await.is_err() {
                                    break None;
                                }
                            }
                            Message::Close(_) => break None,
                            Message::Ping(_) | Message::Pong(_) => {}
                        }
                    }
                    Some(Err(_)) | None => break None,
                },
                Some(out) = rx.recv() => {
                    if session.known(&out) {
                        continue;
                    }
                    if session.sink.send(Message::Text(out.frame)).await.is_err() {
                        break None;
                    }
                }
                code = &mut kicked => {
                    let reason = if code == codes::OVER_CAPACITY {
                        "the connection could not keep up with its messages"
                    } else {
                        "the server lost this connection's presence: reconnect to join again"
                    };
                    break Some((code, reason));
                }
                _ = &mut shutting_down => {
                    break Some((codes::RECONNECT, "the server is shutting down"));
                }
                _ = tick.tick() => {
                    if let Err(close) = session.check_activity().await {
                        break close;
                    }
                }
            }
        }
    };
    if let Some((code, reason)) = close {
        let _ = session
            .sink
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            })))
            .await;
    }
    session.leave_all().await;
}

impl Session {
    /// Whether `out` is a presence change the members this socket was
    /// sent already include.
    fn known(&self, out: &hub::Out) -> bool {
        out.change.as_ref().is_some_and(|(channel, version)| {
            self.since
                .get(&**channel)
                .is_some_and(|since| version <= since)
        })
    }

    async fn send(&mut self, frame: String) -> Result<(), Close> {
        self.sink
            .send(Message::Text(frame.into()))
            .await
            .map_err(|_| (1006, "the connection broke"))
    }

    async fn error(&mut self, code: u16, message: impl Into<String>) -> Result<(), Option<Close>> {
        self.send(error_frame(code, message))
            .await
            .map_err(|_| None)
    }

    /// Pings a silent client, and closes with 4201 when its pong is late.
    async fn check_activity(&mut self) -> Result<(), Option<Close>> {
        let options = &self.inner.options;
        match self.pinged_at {
            Some(at) if at.elapsed() >= options.pong_timeout => {
                Err(Some((codes::PONG_NOT_RECEIVED, "Pong reply not received")))
            }
            Some(_) => Ok(()),
            None if self.last_seen.elapsed() >= options.activity_timeout => {
                self.pinged_at = Some(Instant::now());
                self.send(ServerMessage::Ping.to_json())
                    .await
                    .map_err(|_| None)
            }
            None => Ok(()),
        }
    }

    /// One text message from the client.
    async fn on_text(&mut self, text: &str) -> Result<(), Option<Close>> {
        let limit = self.inner.options.max_message_size;
        if text.len() > limit {
            return self
                .error(
                    codes::BAD_MESSAGE,
                    format!(
                        "the message is {} bytes, over the limit of {limit}",
                        text.len()
                    ),
                )
                .await;
        }
        let message = match ClientMessage::parse(text) {
            Ok(message) => message,
            Err(e) => return self.error(codes::BAD_MESSAGE, e.to_string()).await,
        };
        match message {
            ClientMessage::Ping => self
                .send(ServerMessage::Pong.to_json())
                .await
                .map_err(|_| None),
            ClientMessage::Pong => Ok(()),
            ClientMessage::Subscribe(subscribe) => self.subscribe(subscribe).await,
            ClientMessage::Unsubscribe(unsubscribe) => {
                self.unsubscribe(&unsubscribe.channel).await;
                Ok(())
            }
            ClientMessage::ClientEvent {
                event,
                channel,
                data,
            } => self.client_event(event, channel, data).await,
            ClientMessage::Other(event) => {
                self.error(
                    codes::BAD_MESSAGE,
                    format!("this server does not know the event `{event}`"),
                )
                .await
            }
        }
    }

    /// Refuses a subscription: `pusher:subscription_error` on the channel
    /// (what `channel.bind("pusher:subscription_error")` sees) and
    /// `pusher:error` with `code`.
    async fn refuse(
        &mut self,
        channel: &str,
        code: u16,
        status: u16,
        message: String,
    ) -> Result<(), Option<Close>> {
        let kind = if code == codes::UNAUTHORIZED {
            "AuthError"
        } else {
            "SubscriptionError"
        };
        let frame = ServerMessage::SubscriptionError {
            channel,
            data: SubscriptionError {
                kind: kind.to_owned(),
                error: message.clone(),
                status,
            },
        }
        .to_json();
        self.send(frame).await.map_err(|_| None)?;
        self.error(code, message).await
    }

    async fn subscribe(&mut self, subscribe: Subscribe) -> Result<(), Option<Close>> {
        let Subscribe {
            channel,
            auth,
            channel_data,
        } = subscribe;
        if let Err(e) = validate_channel(&channel) {
            return self
                .refuse(&channel, codes::BAD_MESSAGE, 400, e.to_string())
                .await;
        }
        let kind = ChannelKind::of(&channel);
        let app = self.app.app.clone();
        if kind.needs_auth() {
            let signed = auth.as_deref().is_some_and(|auth| {
                verify_channel_auth(
                    app.key(),
                    app.secret(),
                    &self.socket_id,
                    &channel,
                    if kind == ChannelKind::Presence {
                        Some(channel_data.as_deref().unwrap_or(""))
                    } else {
                        None
                    },
                    auth,
                )
            });
            if !signed {
                let why = if auth.is_none() {
                    format!("{channel} needs an auth signature (from the auth endpoint)")
                } else {
                    format!(
                        "Invalid signature: the auth for {channel} is not this app's signature of this socket's id and the channel"
                    )
                };
                return self.refuse(&channel, codes::UNAUTHORIZED, 401, why).await;
            }
        }
        if let Some(user_id) = self.subscriptions.get(&channel).cloned() {
            // Subscribing twice is harmless: say it worked again.
            let presence = match user_id {
                Some(_) => match self.inner.presence_members(&self.app, &channel).await {
                    Ok(members) => Some(PresenceData::of(&members)),
                    Err(e) => {
                        return self
                            .error(
                                codes::BAD_MESSAGE,
                                format!("cannot list the members now: {e}"),
                            )
                            .await;
                    }
                },
                None => None,
            };
            return self.succeeded(&channel, presence).await;
        }
        if self.subscriptions.len() >= MAX_SUBSCRIPTIONS {
            return self
                .refuse(
                    &channel,
                    codes::BAD_MESSAGE,
                    400,
                    format!("a connection may be on at most {MAX_SUBSCRIPTIONS} channels at once: unsubscribe from some first"),
                )
                .await;
        }
        if kind != ChannelKind::Presence {
            self.app
                .subscribe(&channel, &self.socket_id, self.conn.clone(), 0);
            self.subscriptions.insert(channel.clone(), None);
            self.inner.count(&self.app, &channel, 1).await;
            return self.succeeded(&channel, None).await;
        }
        let member: Member = match serde_json::from_str(channel_data.as_deref().unwrap_or("")) {
            Ok(member) => member,
            Err(e) => {
                return self
                    .refuse(
                        &channel,
                        codes::BAD_MESSAGE,
                        400,
                        format!("channel_data must be JSON with a user_id: {e}"),
                    )
                    .await;
            }
        };
        // On the channel before joining, so no change made after the
        // members are read is missed; what comes meanwhile is sent after
        // subscription_succeeded (this task sends that first).
        self.app
            .subscribe(&channel, &self.socket_id, self.conn.clone(), 0);
        let joined = self
            .inner
            .presence_join(&self.app, &channel, &self.socket_id, &member)
            .await;
        let (first, members, version) = match joined {
            Ok(joined) => joined,
            Err(e) => {
                self.app.unsubscribe(&channel, &self.socket_id);
                return self
                    .refuse(
                        &channel,
                        codes::BAD_MESSAGE,
                        503,
                        format!("cannot join the presence channel now: {e}"),
                    )
                    .await;
            }
        };
        // Changes up to `version` are in `members`: not sent again.
        self.app.set_since(&channel, &self.socket_id, version);
        self.since.insert(channel.clone(), version);
        self.subscriptions
            .insert(channel.clone(), Some(member.user_id.clone()));
        self.inner.count(&self.app, &channel, 1).await;
        self.succeeded(&channel, Some(PresenceData::of(&members)))
            .await?;
        if first {
            let added = Delivery::MemberAdded {
                app: self.app.app.id().to_owned(),
                channel: channel.clone(),
                member,
                except: self.socket_id.clone(),
                version,
            };
            if let Err(e) = self.inner.send(added).await {
                tracing::warn!(%channel, error = %e, "cannot announce a presence member");
            }
        }
        Ok(())
    }

    async fn succeeded(
        &mut self,
        channel: &str,
        presence: Option<PresenceData>,
    ) -> Result<(), Option<Close>> {
        let frame = ServerMessage::SubscriptionSucceeded {
            channel,
            data: SubscriptionSucceeded { presence },
        }
        .to_json();
        self.send(frame).await.map_err(|_| None)
    }

    async fn unsubscribe(&mut self, channel: &str) {
        let Some(user_id) = self.subscriptions.remove(channel) else {
            return;
        };
        self.since.remove(channel);
        self.app.unsubscribe(channel, &self.socket_id);
        self.inner.count(&self.app, channel, -1).await;
        if user_id.is_some() {
            self.leave_presence(channel).await;
        }
    }

    async fn leave_presence(&self, channel: &str) {
        match self
            .inner
            .presence_leave(&self.app, channel, &self.socket_id)
            .await
        {
            Ok(Some((user_id, version))) => {
                let removed = Delivery::MemberRemoved {
                    app: self.app.app.id().to_owned(),
                    channel: channel.to_owned(),
                    user_id,
                    version,
                };
                if let Err(e) = self.inner.send(removed).await {
                    tracing::warn!(%channel, error = %e, "cannot announce that a member left");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(%channel, error = %e, "cannot take a member off a presence channel");
            }
        }
    }

    async fn client_event(
        &mut self,
        event: String,
        channel: String,
        data: serde_json::Value,
    ) -> Result<(), Option<Close>> {
        if !ChannelKind::of(&channel).needs_auth() {
            return self
                .error(
                    codes::CLIENT_EVENT_REJECTED,
                    format!(
                        "client events go on private and presence channels only, not on {channel}"
                    ),
                )
                .await;
        }
        let Some(user_id) = self.subscriptions.get(&channel).cloned() else {
            return self
                .error(
                    codes::CLIENT_EVENT_REJECTED,
                    format!("subscribe to {channel} before sending client events on it"),
                )
                .await;
        };
        if !self.bucket.take() {
            return self
                .error(
                    codes::CLIENT_EVENT_RATE_LIMIT,
                    format!(
                        "Client event rejected due to rate limit: at most {} a second",
                        self.inner.options.client_events_per_second
                    ),
                )
                .await;
        }
        let data = match data {
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        };
        let delivery = Delivery::Event {
            app: self.app.app.id().to_owned(),
            channels: vec![channel],
            event,
            data,
            except: Some(self.socket_id.clone()),
            user_id,
        };
        if let Err(e) = self.inner.send(delivery).await {
            return self
                .error(
                    codes::BAD_MESSAGE,
                    format!("the client event could not be sent: {e}"),
                )
                .await;
        }
        Ok(())
    }

    /// The connection is over: off every channel, presence members
    /// announced gone.
    async fn leave_all(&mut self) {
        let channels: Vec<String> = self.subscriptions.keys().cloned().collect();
        for channel in channels {
            self.unsubscribe(&channel).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_ids_have_the_protocol_s_shape() {
        let a = new_socket_id();
        let b = new_socket_id();
        assert!(crate::protocol::validate_socket_id(&a).is_ok(), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn protocol_versions() {
        assert_eq!(protocol_refusal(Some("7")), None);
        assert_eq!(protocol_refusal(Some("5")), None);
        assert_eq!(
            protocol_refusal(None).map(|r| r.0),
            Some(codes::NO_PROTOCOL)
        );
        assert_eq!(
            protocol_refusal(Some("x")).map(|r| r.0),
            Some(codes::INVALID_VERSION)
        );
        assert_eq!(
            protocol_refusal(Some("8")).map(|r| r.0),
            Some(codes::UNSUPPORTED_PROTOCOL)
        );
    }

    #[test]
    fn the_bucket_refills() {
        let mut bucket = Bucket::new(2);
        assert!(bucket.take());
        assert!(bucket.take());
        assert!(!bucket.take());
        bucket.at -= Duration::from_millis(600);
        assert!(bucket.take());
        let mut none = Bucket::new(0);
        assert!(!none.take());
    }
}
