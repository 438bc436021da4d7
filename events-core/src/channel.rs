//! Broadcast channel authorization declared with `#[channel("..")]`: a
//! function deciding whether a user may join the private or presence
//! channels a pattern matches, registered at link time (like listeners).
//! The broadcast server (`events-broadcast`) reads them with
//! [`registered`]; nothing here knows about WebSockets.
//!
//! ```ignore
//! #[channel("private-session.{id}")]
//! fn session(user: &User, id: u64) -> bool { user.id == id }
//!
//! #[channel("presence-room.{room}")]
//! async fn room(user: &User, room: String) -> Option<Member> {
//!     Some(Member::new(user.id.to_string()))
//! }
//! ```

use std::any::{Any, TypeId};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::listener::BoxFuture;

/// A presence channel's member: the user's id and what other members see
/// of them (what a presence channel's callback returns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The user's id; members are unique by it (one user in three tabs is
    /// one member). Read from a string or a number.
    #[serde(deserialize_with = "user_id")]
    pub user_id: String,
    /// What other members see (a name, an avatar), any JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_info: Option<Value>,
}

impl Member {
    /// A member with no user info.
    ///
    /// ```
    /// let member = events_core::channel::Member::new("7").info(serde_json::json!({"name": "Ann"}));
    /// assert_eq!(member.user_id, "7");
    /// ```
    pub fn new(user_id: impl Into<String>) -> Member {
        Member {
            user_id: user_id.into(),
            user_info: None,
        }
    }

    /// The member with `info` for others to see.
    pub fn info(mut self, info: Value) -> Member {
        self.user_info = Some(info);
        self
    }
}

/// A user id as a string or a number (Laravel's ids are numbers).
fn user_id<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(s) if !s.is_empty() => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(serde::de::Error::custom(
            "user_id must be a non-empty string or a number",
        )),
    }
}

/// The values of a channel pattern's placeholders: for
/// `private-session.{id}` and the channel `private-session.7`, `id` is
/// `"7"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// The placeholders and their text, in the pattern's order.
    pub fn new(pairs: Vec<(String, String)>) -> Params {
        Params { pairs }
    }

    /// The placeholder `name`'s text.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The placeholder `name` parsed as `T`; `None` when it is not there or
    /// does not parse (so `params.parse::<u64>("id") == Some(user.id)`
    /// denies `private-session.abc`).
    pub fn parse<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        self.get(name)?.parse().ok()
    }

    /// Every placeholder and its text, in the pattern's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// What a channel callback said.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Answer {
    /// No.
    Denied,
    /// Yes, to a private channel.
    Allowed,
    /// Yes, to a presence channel, as this member.
    Member(Member),
    /// A placeholder's text does not parse as its parameter's type (so the
    /// channel is none of this callback's).
    BadParam(&'static str),
    /// The user given is not of the type the callback takes.
    WrongUser,
    /// A `State<T>` parameter's type was not given to the server (its
    /// start-up check reports it first), by name.
    MissingState(&'static str),
}

/// The user, as the server hands it to a registered callback.
pub type AnyUser = dyn Any + Send + Sync;

/// What `#[channel]` registers: its pattern, the function, the user type
/// it takes, and where it is.
pub struct ChannelDef {
    /// The channel pattern, such as `private-session.{id}`.
    pub pattern: &'static str,
    /// The function's path (`my_app::channels::session`).
    pub name: &'static str,
    /// The type of the callback's user (`&User` takes `User`).
    pub user_type: fn() -> TypeId,
    /// That type's name, for messages.
    pub user_type_name: fn() -> &'static str,
    /// The state types its `State<T>` parameters take, checked when the
    /// server is built.
    pub needs: &'static [crate::StateNeed],
    /// Runs the callback, its `State<T>` parameters taken from the state.
    pub authorize:
        for<'a> fn(&'a AnyUser, &'a Params, &'a crate::StateMap) -> BoxFuture<'a, Answer>,
    /// The source file.
    pub file: &'static str,
    /// The line of the function.
    pub line: u32,
}

impl std::fmt::Debug for ChannelDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelDef")
            .field("pattern", &self.pattern)
            .field("name", &self.name)
            .field("user", &(self.user_type_name)())
            .field("file", &self.file)
            .field("line", &self.line)
            .finish()
    }
}

inventory::collect!(ChannelDef);

/// Every channel callback registered with `#[channel]` in this program,
/// by pattern (then name): link order is unspecified.
pub fn registered() -> Vec<&'static ChannelDef> {
    let mut defs: Vec<&'static ChannelDef> = inventory::iter::<ChannelDef>.into_iter().collect();
    defs.sort_by(|a, b| (a.pattern, a.name).cmp(&(b.pattern, b.name)));
    defs
}

/// What a private channel's callback returns.
#[diagnostic::on_unimplemented(
    message = "a private channel's callback returns `bool`, not `{Self}`",
    label = "`true` lets the user join, `false` refuses",
    note = "for a presence channel, name it `presence-..` and return `Option<Member>`"
)]
pub trait PrivateAnswer {
    /// The answer.
    fn answer(self) -> Answer;
}

impl PrivateAnswer for bool {
    fn answer(self) -> Answer {
        if self {
            Answer::Allowed
        } else {
            Answer::Denied
        }
    }
}

/// What a presence channel's callback returns.
#[diagnostic::on_unimplemented(
    message = "a presence channel's callback returns `Option<Member>`, not `{Self}`",
    label = "`Some(member)` lets the user join as that member, `None` refuses",
    note = "for a private channel, name it `private-..` and return `bool`"
)]
pub trait PresenceAnswer {
    /// The answer.
    fn answer(self) -> Answer;
}

impl PresenceAnswer for Option<Member> {
    fn answer(self) -> Answer {
        match self {
            Some(member) => Answer::Member(member),
            None => Answer::Denied,
        }
    }
}

/// A type a channel placeholder parses into.
#[diagnostic::on_unimplemented(
    message = "a channel placeholder cannot be parsed into `{Self}`",
    label = "placeholders are text from the channel's name",
    note = "take a type that implements `FromStr`: `u64`, `String`, `uuid::Uuid`, ..."
)]
pub trait PlaceholderParam: Sized {
    /// Parses the placeholder's text.
    fn parse_param(text: &str) -> Option<Self>;
}

#[diagnostic::do_not_recommend]
impl<T: std::str::FromStr> PlaceholderParam for T {
    fn parse_param(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_take_numeric_ids() {
        let member: Member =
            serde_json::from_str(r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#)
                .expect("a member");
        assert_eq!(member.user_id, "10");
        assert!(serde_json::from_str::<Member>(r#"{"user_id":""}"#).is_err());
        assert!(serde_json::from_str::<Member>(r#"{"user_info":{}}"#).is_err());
    }

    #[test]
    fn answers() {
        assert_eq!(PrivateAnswer::answer(true), Answer::Allowed);
        assert_eq!(PrivateAnswer::answer(false), Answer::Denied);
        assert_eq!(PresenceAnswer::answer(None), Answer::Denied);
        assert_eq!(
            PresenceAnswer::answer(Some(Member::new("1"))),
            Answer::Member(Member::new("1"))
        );
        let params = Params::new(vec![("id".into(), "7".into())]);
        assert_eq!(params.parse::<u64>("id"), Some(7));
        assert_eq!(u64::parse_param("x"), None);
    }
}
