//! The Pusher Channels protocol, version 7: the frames a client and the
//! server exchange over the WebSocket, the rules for channel names and
//! socket ids, and the error and close codes pusher-js understands.
//!
//! Every frame is a JSON object with an `event`, usually a `channel`, and a
//! `data` that is, in most frames the server sends, **a JSON string holding
//! JSON** (`"data":"{\"socket_id\":\"1.2\"}"`): Pusher encodes it twice.
//! [`Frame::data_as`] reads either form.
//!
//! ```
//! use events_broadcast::protocol::{ConnectionEstablished, Frame, ServerMessage};
//!
//! let text = ServerMessage::ConnectionEstablished(ConnectionEstablished {
//!     socket_id: "123.456".into(),
//!     activity_timeout: 120,
//! })
//! .to_json();
//! assert_eq!(
//!     text,
//!     r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"123.456\",\"activity_timeout\":120}"}"#
//! );
//! let frame = Frame::parse(&text)?;
//! let established: ConnectionEstablished = frame.data_as()?;
//! assert_eq!(established.socket_id, "123.456");
//! # Ok::<(), events_broadcast::protocol::ProtocolError>(())
//! ```

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version this server speaks (`?protocol=7`).
pub const PROTOCOL_VERSION: u8 = 7;

/// The longest channel name accepted, in bytes.
pub use events_core::broadcast::MAX_CHANNEL_NAME;

/// The default limit on a message's size, in bytes: a frame a client sends,
/// and an event's `data` published through the HTTP API (10 KB, Pusher's).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 10 * 1024;

/// The error and close codes of the protocol.
///
/// pusher-js acts on a close code's range: 4000–4099 it does not reconnect,
/// 4100–4199 it reconnects after a back-off, 4200–4299 it reconnects at
/// once; `pusher:error` frames with codes 4300 and up leave the connection
/// open.
pub mod codes {
    /// The app key in the URL is no app of this server (close).
    pub const APP_NOT_FOUND: u16 = 4001;
    /// The client sent an invalid `?version=`/`?protocol=` (close).
    pub const INVALID_VERSION: u16 = 4006;
    /// The client speaks a protocol version this server does not (close).
    pub const UNSUPPORTED_PROTOCOL: u16 = 4007;
    /// The client named no protocol version (close).
    pub const NO_PROTOCOL: u16 = 4008;
    /// A private or presence subscription whose signature does not verify.
    pub const UNAUTHORIZED: u16 = 4009;
    /// The connection could not keep up with its messages: it is closed,
    /// and the client reconnects after a back-off.
    pub const OVER_CAPACITY: u16 = 4100;
    /// The server is going away (shutdown or restart): reconnect now.
    pub const RECONNECT: u16 = 4200;
    /// The server pinged and no pong came within the timeout (close).
    pub const PONG_NOT_RECEIVED: u16 = 4201;
    /// A frame the server could not use: not JSON, too large, an unknown
    /// event, a bad channel name. The connection stays open.
    pub const BAD_MESSAGE: u16 = 4300;
    /// A client event over the connection's rate limit was dropped.
    pub const CLIENT_EVENT_RATE_LIMIT: u16 = 4301;
    /// A client event the server refused (a public channel, a channel the
    /// socket is not subscribed to, a name without `client-`).
    pub const CLIENT_EVENT_REJECTED: u16 = 4302;
}

/// Why a frame or name could not be used, in words a client can show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The text is not a JSON object with an `event`.
    #[error("the message is not a Pusher frame (a JSON object with an `event`): {0}")]
    NotAFrame(String),
    /// The frame's `data` does not have the shape its event needs.
    #[error("the data of `{event}` is not what it needs: {reason}")]
    BadData {
        /// The frame's event.
        event: String,
        /// What was wrong.
        reason: String,
    },
    /// A channel name that breaks the naming rules.
    #[error("invalid channel name `{name}`: {reason}")]
    BadChannel {
        /// The name, cut to the length limit.
        name: String,
        /// What was wrong.
        reason: &'static str,
    },
    /// A socket id not of the form `digits.digits`.
    #[error(
        "invalid socket id `{0}`: a socket id is two numbers joined by a dot, such as `1234.5678`"
    )]
    BadSocketId(String),
    /// A message over the size limit.
    #[error("the message is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// Its size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

/// The kind of a channel, from its name's prefix, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// No prefix: anyone may subscribe.
    Public,
    /// `private-` (and `private-encrypted-`): a signature is needed.
    Private,
    /// `presence-`: a signature over the member's data is needed, and
    /// subscribers see who else is there.
    Presence,
}

impl ChannelKind {
    /// The kind of `channel`.
    pub fn of(channel: &str) -> ChannelKind {
        if channel.starts_with("presence-") {
            ChannelKind::Presence
        } else if channel.starts_with("private-") {
            ChannelKind::Private
        } else {
            ChannelKind::Public
        }
    }

    /// Whether subscribing needs a signature.
    pub fn needs_auth(self) -> bool {
        self != ChannelKind::Public
    }
}

/// Checks a channel name: 1 to [`MAX_CHANNEL_NAME`] bytes of
/// `A-Z a-z 0-9 _ - = @ , . ;`, and a `#` only in `#server-to-user-..`
/// channels, which clients may not use (so never here).
///
/// ```
/// use events_broadcast::protocol::validate_channel;
/// assert!(validate_channel("private-session.7").is_ok());
/// assert!(validate_channel("presence-room;a=b,c@d").is_ok());
/// assert!(validate_channel("chat room").is_err());
/// assert!(validate_channel(&"a".repeat(165)).is_err());
/// ```
pub fn validate_channel(name: &str) -> Result<(), ProtocolError> {
    match events_core::broadcast::channel_name_problem(name) {
        None => Ok(()),
        Some(reason) => Err(ProtocolError::BadChannel {
            name: name.chars().take(MAX_CHANNEL_NAME).collect(),
            reason,
        }),
    }
}

/// The most channels one event may go to (Pusher's 100).
pub(crate) const MAX_EVENT_CHANNELS: usize = 100;

/// Checks where one event goes: each channel's name, and the socket it
/// leaves out (the sender's, for `to_others`).
pub(crate) fn validate_targets<C: AsRef<str>>(
    channels: &[C],
    except: Option<&str>,
) -> Result<(), ProtocolError> {
    for channel in channels {
        validate_channel(channel.as_ref())?;
    }
    if let Some(socket) = except {
        validate_socket_id(socket)?;
    }
    Ok(())
}

/// Checks a socket id: `\d+\.\d+`.
///
/// ```
/// use events_broadcast::protocol::validate_socket_id;
/// assert!(validate_socket_id("1234.1234").is_ok());
/// assert!(validate_socket_id("1234").is_err());
/// assert!(validate_socket_id("1.2:private-x").is_err());
/// ```
pub fn validate_socket_id(socket_id: &str) -> Result<(), ProtocolError> {
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    match socket_id.split_once('.') {
        Some((a, b)) if digits(a) && digits(b) => Ok(()),
        _ => Err(ProtocolError::BadSocketId(
            socket_id.chars().take(48).collect(),
        )),
    }
}

/// A frame as it travels, either way: its `event`, `channel`, `data`, and
/// the `user_id` the server adds to client events on presence channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// The event's name (`pusher:subscribe`, `client-typing`, ...).
    pub event: String,
    /// The channel it concerns, where it concerns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Its data: a JSON string holding JSON in most server frames, an
    /// object in most client frames.
    #[serde(default)]
    pub data: Value,
    /// On a client event in a presence channel, the sender's user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

impl Frame {
    /// Reads a frame from the text of a WebSocket message.
    pub fn parse(text: &str) -> Result<Frame, ProtocolError> {
        serde_json::from_str(text).map_err(|e| ProtocolError::NotAFrame(e.to_string()))
    }

    /// Its `data` read as `T`, whether it came as an object or as a string
    /// holding JSON.
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T, ProtocolError> {
        let bad = |e: serde_json::Error| ProtocolError::BadData {
            event: self.event.clone(),
            reason: e.to_string(),
        };
        match &self.data {
            Value::String(text) => serde_json::from_str(text).map_err(bad),
            other => T::deserialize(other).map_err(bad),
        }
    }
}

/// `pusher:connection_established`: the socket id and how long the client
/// may stay silent before it should ping, in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionEstablished {
    /// The connection's id, `digits.digits`.
    pub socket_id: String,
    /// Seconds of silence after which the client pings.
    pub activity_timeout: u64,
}

/// `pusher:subscribe`'s data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribe {
    /// The channel to join.
    pub channel: String,
    /// For private and presence channels, `key:signature`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// For presence channels, the member's data as a JSON string (signed
    /// as it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_data: Option<String>,
}

/// `pusher:unsubscribe`'s data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsubscribe {
    /// The channel to leave.
    pub channel: String,
}

pub use events_core::channel::Member;

/// The `presence` part of a presence channel's subscription_succeeded:
/// every member's id, their info by id, and how many there are.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PresenceData {
    /// The members' ids.
    pub ids: Vec<String>,
    /// Each member's info, by id (`null` where they have none).
    pub hash: BTreeMap<String, Value>,
    /// How many members there are.
    pub count: usize,
}

impl PresenceData {
    /// The presence data of `members` (one entry per user).
    pub fn of<'a>(members: impl IntoIterator<Item = &'a Member>) -> PresenceData {
        let mut data = PresenceData::default();
        for member in members {
            if data.hash.contains_key(&member.user_id) {
                continue;
            }
            data.ids.push(member.user_id.clone());
            data.hash.insert(
                member.user_id.clone(),
                member.user_info.clone().unwrap_or(Value::Null),
            );
        }
        data.count = data.ids.len();
        data
    }
}

/// `pusher_internal:subscription_succeeded`'s data: empty for public and
/// private channels, the members for presence ones.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SubscriptionSucceeded {
    /// The members, on a presence channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<PresenceData>,
}

/// `pusher_internal:member_removed`'s data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRemoved {
    /// The user who left (their last connection did).
    pub user_id: String,
}

/// `pusher:error`'s data: a code from [`codes`] and the reason in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PusherError {
    /// The code, from [`codes`].
    pub code: Option<u16>,
    /// What went wrong.
    pub message: String,
}

/// `pusher:subscription_error`'s data, as pusher-js reports a refused
/// subscription to `channel.bind("pusher:subscription_error", ..)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionError {
    /// `AuthError` when the signature did not verify.
    #[serde(rename = "type")]
    pub kind: String,
    /// What went wrong.
    pub error: String,
    /// An HTTP-like status: 401 for a bad signature, 400 for a bad request.
    pub status: u16,
}

/// A message the client sends, read from its frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// `pusher:subscribe`.
    Subscribe(Subscribe),
    /// `pusher:unsubscribe`.
    Unsubscribe(Unsubscribe),
    /// `pusher:ping`: answer with a pong.
    Ping,
    /// `pusher:pong`: the answer to the server's ping.
    Pong,
    /// A `client-*` event on a channel.
    ClientEvent {
        /// The event's name, starting with `client-`.
        event: String,
        /// The channel it is for.
        channel: String,
        /// Its data, as sent.
        data: Value,
    },
    /// Any other event (`pusher:signin`, a typo): the server says it does
    /// not know it.
    Other(String),
}

impl ClientMessage {
    /// Reads a client message from a WebSocket text message.
    ///
    /// ```
    /// use events_broadcast::protocol::ClientMessage;
    /// let message = ClientMessage::parse(
    ///     r#"{"event":"pusher:subscribe","data":{"channel":"private-a","auth":"k:s"}}"#,
    /// )?;
    /// let ClientMessage::Subscribe(subscribe) = message else { panic!() };
    /// assert_eq!(subscribe.auth.as_deref(), Some("k:s"));
    /// # Ok::<(), events_broadcast::protocol::ProtocolError>(())
    /// ```
    pub fn parse(text: &str) -> Result<ClientMessage, ProtocolError> {
        let frame = Frame::parse(text)?;
        Ok(match frame.event.as_str() {
            "pusher:subscribe" => ClientMessage::Subscribe(frame.data_as()?),
            "pusher:unsubscribe" => ClientMessage::Unsubscribe(frame.data_as()?),
            "pusher:ping" => ClientMessage::Ping,
            "pusher:pong" => ClientMessage::Pong,
            event if event.starts_with("client-") => {
                let Some(channel) = frame.channel else {
                    return Err(ProtocolError::BadData {
                        event: frame.event,
                        reason: "a client event needs a `channel`".to_owned(),
                    });
                };
                ClientMessage::ClientEvent {
                    event: frame.event,
                    channel,
                    data: frame.data,
                }
            }
            _ => ClientMessage::Other(frame.event),
        })
    }
}

/// A message the server sends. [`to_json`](Self::to_json) writes it as on
/// the wire, `data` encoded as a string where Pusher does.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage<'a> {
    /// `pusher:connection_established`.
    ConnectionEstablished(ConnectionEstablished),
    /// `pusher_internal:subscription_succeeded` on `channel`.
    SubscriptionSucceeded {
        /// The channel joined.
        channel: &'a str,
        /// Its data (the members, on a presence channel).
        data: SubscriptionSucceeded,
    },
    /// `pusher:subscription_error` on `channel`.
    SubscriptionError {
        /// The channel refused.
        channel: &'a str,
        /// Why.
        data: SubscriptionError,
    },
    /// `pusher_internal:member_added` on `channel`.
    MemberAdded {
        /// The presence channel.
        channel: &'a str,
        /// Who joined.
        member: &'a Member,
    },
    /// `pusher_internal:member_removed` on `channel`.
    MemberRemoved {
        /// The presence channel.
        channel: &'a str,
        /// Who left.
        user_id: &'a str,
    },
    /// `pusher:ping`: the server asks whether the client is there.
    Ping,
    /// `pusher:pong`: the answer to a client's ping.
    Pong,
    /// `pusher:error` (its data is an object, not a string, as Pusher
    /// sends it).
    Error(PusherError),
    /// An event on a channel: published (through the HTTP API or
    /// [`Broadcaster::publish`](crate::Broadcaster::publish)) or a client
    /// event.
    Event {
        /// The event's name.
        event: &'a str,
        /// The channel.
        channel: &'a str,
        /// Its data, already a string (JSON text, as publishers send it).
        data: &'a str,
        /// On a client event in a presence channel, the sender's user id.
        user_id: Option<&'a str>,
    },
}

/// The wire form of a server frame.
#[derive(Serialize)]
struct Wire<'a> {
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    data: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
}

/// `value` as JSON text inside a JSON string (Pusher's double encoding).
fn encoded<T: Serialize>(value: &T) -> Value {
    Value::String(serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned()))
}

impl ServerMessage<'_> {
    /// The frame's event name.
    pub fn event(&self) -> &str {
        match self {
            ServerMessage::ConnectionEstablished(_) => "pusher:connection_established",
            ServerMessage::SubscriptionSucceeded { .. } => "pusher_internal:subscription_succeeded",
            ServerMessage::SubscriptionError { .. } => "pusher:subscription_error",
            ServerMessage::MemberAdded { .. } => "pusher_internal:member_added",
            ServerMessage::MemberRemoved { .. } => "pusher_internal:member_removed",
            ServerMessage::Ping => "pusher:ping",
            ServerMessage::Pong => "pusher:pong",
            ServerMessage::Error(_) => "pusher:error",
            ServerMessage::Event { event, .. } => event,
        }
    }

    /// The frame as JSON text, ready to send.
    pub fn to_json(&self) -> String {
        let (channel, data, user_id) = match self {
            ServerMessage::ConnectionEstablished(data) => (None, encoded(data), None),
            ServerMessage::SubscriptionSucceeded { channel, data } => {
                (Some(*channel), encoded(data), None)
            }
            ServerMessage::SubscriptionError { channel, data } => (
                Some(*channel),
                serde_json::to_value(data).unwrap_or(Value::Null),
                None,
            ),
            ServerMessage::MemberAdded { channel, member } => {
                // The hash of subscription_succeeded has `null` for no
                // info; member_added says the same.
                let data = serde_json::json!({
                    "user_id": member.user_id,
                    "user_info": member.user_info.clone().unwrap_or(Value::Null),
                });
                (Some(*channel), encoded(&data), None)
            }
            ServerMessage::MemberRemoved { channel, user_id } => (
                Some(*channel),
                encoded(&MemberRemoved {
                    user_id: (*user_id).to_owned(),
                }),
                None,
            ),
            ServerMessage::Ping | ServerMessage::Pong => {
                (None, Value::String("{}".to_owned()), None)
            }
            ServerMessage::Error(error) => (
                None,
                serde_json::to_value(error).unwrap_or(Value::Null),
                None,
            ),
            ServerMessage::Event {
                channel,
                data,
                user_id,
                ..
            } => (Some(*channel), Value::String((*data).to_owned()), *user_id),
        };
        let wire = Wire {
            event: self.event(),
            channel,
            data,
            user_id,
        };
        serde_json::to_string(&wire).unwrap_or_else(|_| {
            r#"{"event":"pusher:error","data":{"code":4300,"message":"unencodable frame"}}"#
                .to_owned()
        })
    }
}

/// `pusher:error` with `code` and `message`, as JSON text.
pub fn error_frame(code: u16, message: impl Into<String>) -> String {
    ServerMessage::Error(PusherError {
        code: Some(code),
        message: message.into(),
    })
    .to_json()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wire(text: &str) -> Value {
        serde_json::from_str(text).expect("valid JSON")
    }

    #[test]
    fn connection_established_double_encodes_its_data() {
        let text = ServerMessage::ConnectionEstablished(ConnectionEstablished {
            socket_id: "1.2".into(),
            activity_timeout: 30,
        })
        .to_json();
        let value = wire(&text);
        assert_eq!(value["event"], "pusher:connection_established");
        let data = value["data"].as_str().expect("data is a string");
        assert_eq!(
            wire(data),
            json!({"socket_id": "1.2", "activity_timeout": 30})
        );
        assert!(value.get("channel").is_none());
    }

    #[test]
    fn subscription_succeeded_is_empty_or_carries_presence() {
        let public = ServerMessage::SubscriptionSucceeded {
            channel: "chat",
            data: SubscriptionSucceeded::default(),
        }
        .to_json();
        assert_eq!(
            public,
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"chat","data":"{}"}"#
        );

        let members = [
            Member::new("7").info(json!({"name": "Ann"})),
            Member::new("9"),
            Member::new("7").info(json!({"name": "Ann again"})),
        ];
        let presence = ServerMessage::SubscriptionSucceeded {
            channel: "presence-room",
            data: SubscriptionSucceeded {
                presence: Some(PresenceData::of(&members)),
            },
        }
        .to_json();
        let value = wire(&presence);
        let data = wire(value["data"].as_str().expect("a string"));
        assert_eq!(
            data,
            json!({"presence": {"ids": ["7", "9"], "hash": {"7": {"name": "Ann"}, "9": null}, "count": 2}})
        );
    }

    #[test]
    fn member_frames() {
        let member = Member::new("7").info(json!({"name": "Ann"}));
        let added = wire(
            &ServerMessage::MemberAdded {
                channel: "presence-room",
                member: &member,
            }
            .to_json(),
        );
        assert_eq!(added["event"], "pusher_internal:member_added");
        assert_eq!(added["channel"], "presence-room");
        assert_eq!(
            wire(added["data"].as_str().expect("a string")),
            json!({"user_id": "7", "user_info": {"name": "Ann"}})
        );
        let removed = wire(
            &ServerMessage::MemberRemoved {
                channel: "presence-room",
                user_id: "7",
            }
            .to_json(),
        );
        assert_eq!(removed["event"], "pusher_internal:member_removed");
        assert_eq!(
            wire(removed["data"].as_str().expect("a string")),
            json!({"user_id": "7"})
        );
    }

    #[test]
    fn ping_pong_and_error() {
        assert_eq!(
            ServerMessage::Pong.to_json(),
            r#"{"event":"pusher:pong","data":"{}"}"#
        );
        assert_eq!(
            ServerMessage::Ping.to_json(),
            r#"{"event":"pusher:ping","data":"{}"}"#
        );
        let error = wire(&error_frame(codes::UNAUTHORIZED, "no"));
        assert_eq!(
            error,
            json!({"event": "pusher:error", "data": {"code": 4009, "message": "no"}})
        );
        let frame = Frame::parse(&error_frame(4301, "slow down")).expect("a frame");
        let data: PusherError = frame.data_as().expect("error data");
        assert_eq!(data.code, Some(4301));
    }

    #[test]
    fn events_keep_their_data_string_and_presence_user_id() {
        let text = ServerMessage::Event {
            event: "client-typing",
            channel: "presence-room",
            data: r#"{"typing":true}"#,
            user_id: Some("7"),
        }
        .to_json();
        assert_eq!(
            text,
            r#"{"event":"client-typing","channel":"presence-room","data":"{\"typing\":true}","user_id":"7"}"#
        );
    }

    #[test]
    fn client_messages_parse() {
        assert_eq!(
            ClientMessage::parse(r#"{"event":"pusher:ping","data":{}}"#),
            Ok(ClientMessage::Ping)
        );
        assert_eq!(
            ClientMessage::parse(r#"{"event":"pusher:pong"}"#),
            Ok(ClientMessage::Pong)
        );
        assert_eq!(
            ClientMessage::parse(r#"{"event":"pusher:unsubscribe","data":{"channel":"a"}}"#),
            Ok(ClientMessage::Unsubscribe(Unsubscribe {
                channel: "a".into()
            }))
        );
        // Some clients send subscribe's data as a string.
        let ClientMessage::Subscribe(subscribe) = ClientMessage::parse(
            r#"{"event":"pusher:subscribe","data":"{\"channel\":\"presence-a\",\"auth\":\"k:s\",\"channel_data\":\"{}\"}"}"#,
        )
        .expect("parses") else {
            panic!("not a subscribe")
        };
        assert_eq!(subscribe.channel, "presence-a");
        assert_eq!(subscribe.channel_data.as_deref(), Some("{}"));
        assert_eq!(
            ClientMessage::parse(r#"{"event":"client-x","channel":"private-a","data":{"a":1}}"#),
            Ok(ClientMessage::ClientEvent {
                event: "client-x".into(),
                channel: "private-a".into(),
                data: json!({"a": 1})
            })
        );
        assert!(matches!(
            ClientMessage::parse(r#"{"event":"client-x","data":{}}"#),
            Err(ProtocolError::BadData { .. })
        ));
        assert!(matches!(
            ClientMessage::parse("not json"),
            Err(ProtocolError::NotAFrame(_))
        ));
        assert!(matches!(
            ClientMessage::parse(r#"{"event":"pusher:subscribe","data":{}}"#),
            Err(ProtocolError::BadData { .. })
        ));
        assert_eq!(
            ClientMessage::parse(r#"{"event":"pusher:signin","data":{}}"#),
            Ok(ClientMessage::Other("pusher:signin".into()))
        );
    }

    #[test]
    fn channel_names() {
        assert!(validate_channel("a").is_ok());
        assert!(validate_channel(&"a".repeat(MAX_CHANNEL_NAME)).is_ok());
        assert!(validate_channel(&"a".repeat(MAX_CHANNEL_NAME + 1)).is_err());
        assert!(validate_channel("").is_err());
        assert!(validate_channel("A-Za-z0-9_-=@,.;").is_ok());
        for bad in ["a b", "a/b", "a:b", "é", "#server-to-user-1", "a*"] {
            assert!(validate_channel(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(ChannelKind::of("presence-a"), ChannelKind::Presence);
        assert_eq!(ChannelKind::of("private-encrypted-a"), ChannelKind::Private);
        assert_eq!(ChannelKind::of("privatea"), ChannelKind::Public);
    }

    #[test]
    fn socket_ids() {
        assert!(validate_socket_id("0.0").is_ok());
        for bad in ["", ".", "1.", ".1", "1.2.3", "a.1", "1 .2", "1.2\n"] {
            assert!(
                validate_socket_id(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }
}
