//! Channel authorization: who the request's user is (the application's
//! authenticator), which private and presence channels they may join (its
//! callbacks, by channel pattern), and `POST /broadcasting/auth`, which
//! answers with the signature Pusher clients send when they subscribe.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use events_core::StateMap;
use events_core::channel::{Answer, ChannelDef};

use crate::Inner;
use crate::protocol::{ChannelKind, Member, validate_channel, validate_socket_id};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
type Authenticate<U> = Arc<dyn Fn(Parts) -> BoxFuture<'static, Option<U>> + Send + Sync>;
type DecideFn<U> = Arc<dyn Fn(&U, &Params) -> Decision + Send + Sync>;

/// How a route decides: a closure given at run time, or a function
/// registered with `#[channel]`.
enum Decide<U> {
    Now(DecideFn<U>),
    Registered(&'static ChannelDef),
}

/// What a channel callback says.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    Deny,
    Allow,
    Member(Member),
}

pub use events_core::channel::Params;

/// A piece of a channel pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// A placeholder: one or more characters other than `.` (as Laravel's
    /// `{param}` is).
    Param(String),
}

/// A channel pattern such as `private-session.{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    source: String,
    pieces: Vec<Piece>,
}

impl Pattern {
    pub(crate) fn parse(source: &str) -> Result<Pattern, String> {
        let mut pieces = Vec::new();
        let mut rest = source;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let Some(end) = rest.find('}') else {
                        return Err(format!("`{source}` has a `{{` with no `}}`"));
                    };
                    let name = &rest[1..end];
                    let ident = name
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !ident {
                        return Err(format!(
                            "`{source}`: the placeholder `{{{name}}}` must be a name such as `{{id}}`"
                        ));
                    }
                    if matches!(pieces.last(), Some(Piece::Param(_))) {
                        return Err(format!(
                            "`{source}`: two placeholders must be apart, such as `{{a}}.{{b}}`"
                        ));
                    }
                    if pieces.iter().any(|p| p == &Piece::Param(name.to_owned())) {
                        return Err(format!("`{source}` names `{{{name}}}` twice"));
                    }
                    pieces.push(Piece::Param(name.to_owned()));
                    rest = &rest[end + 1..];
                }
                found => {
                    let end = found.unwrap_or(rest.len());
                    let text = &rest[..end];
                    if text.contains('}') {
                        return Err(format!("`{source}` has a `}}` with no `{{`"));
                    }
                    pieces.push(Piece::Text(text.to_owned()));
                    rest = &rest[end..];
                }
            }
        }
        // The literal parts must be possible in a channel name.
        let literal: String = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.as_str(),
                Piece::Param(_) => "x",
            })
            .collect();
        validate_channel(&literal).map_err(|e| format!("`{source}` can match no channel: {e}"))?;
        Ok(Pattern {
            source: source.to_owned(),
            pieces,
        })
    }

    /// The placeholders' values when `channel` matches.
    pub(crate) fn matches(&self, channel: &str) -> Option<Params> {
        let mut pairs = Vec::new();
        match_pieces(&self.pieces, channel, &mut pairs).then(|| Params::new(pairs))
    }
}

fn match_pieces(pieces: &[Piece], text: &str, out: &mut Vec<(String, String)>) -> bool {
    match pieces.split_first() {
        None => text.is_empty(),
        Some((Piece::Text(t), rest)) => text
            .strip_prefix(t.as_str())
            .is_some_and(|after| match_pieces(rest, after, out)),
        Some((Piece::Param(name), rest)) => {
            let longest = text.find('.').unwrap_or(text.len());
            // Longest first, as a greedy `[^.]+` does.
            for end in (1..=longest).rev() {
                if !text.is_char_boundary(end) {
                    continue;
                }
                out.push((name.clone(), text[..end].to_owned()));
                if match_pieces(rest, &text[end..], out) {
                    return true;
                }
                out.pop();
            }
            false
        }
    }
}

/// A channel pattern and its callback.
struct Route<U> {
    pattern: Pattern,
    kind: ChannelKind,
    decide: Decide<U>,
}

/// The application's channel authorization: how to find the `User` of an
/// auth request, and a callback per channel pattern deciding whether that
/// user may join. Give it to [`Builder::channels`](crate::Builder::channels).
///
/// Patterns carry the channel's prefix (`private-session.{id}`,
/// `presence-room.{room}`); a `{name}` placeholder matches one or more
/// characters other than `.`, and the callback reads it from [`Params`].
/// The first pattern that matches decides; a channel no pattern matches,
/// or a request whose user is not found, gets 403.
pub struct Channels<U> {
    authenticate: Authenticate<U>,
    routes: Vec<Route<U>>,
    problems: Vec<String>,
    state: StateMap,
}

impl<U> std::fmt::Debug for Channels<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels")
            .field(
                "patterns",
                &self
                    .routes
                    .iter()
                    .map(|r| r.pattern.source.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl<U: Send + Sync + 'static> Channels<U> {
    /// Channel authorization whose user `authenticate` finds from the
    /// request's method, URI and headers (its session cookie, its bearer
    /// token); `None` means nobody is signed in (403).
    pub fn new(authenticate: impl Fn(&Parts) -> Option<U> + Send + Sync + 'static) -> Channels<U> {
        Channels {
            authenticate: Arc::new(move |parts: Parts| {
                let user = authenticate(&parts);
                Box::pin(std::future::ready(user))
            }),
            routes: Vec::new(),
            problems: Vec::new(),
            state: StateMap::new(),
        }
        .with_registered()
    }

    /// As [`new`](Self::new), with an authenticator that awaits (a session
    /// store, a database).
    ///
    /// ```
    /// # struct User;
    /// # async fn session_user(_token: Option<String>) -> Option<User> { None }
    /// let channels = events_broadcast::Channels::new_async(|parts| async move {
    ///     let token = parts.headers.get("authorization")?.to_str().ok()?.to_owned();
    ///     session_user(Some(token)).await
    /// });
    /// # let _ = channels;
    /// ```
    pub fn new_async<F, Fut>(authenticate: F) -> Channels<U>
    where
        F: Fn(Parts) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<U>> + Send + 'static,
    {
        Channels {
            authenticate: Arc::new(move |parts| Box::pin(authenticate(parts))),
            routes: Vec::new(),
            problems: Vec::new(),
            state: StateMap::new(),
        }
        .with_registered()
    }

    /// Adds the callbacks registered with `#[channel]`; one whose user type
    /// is not `U` is a problem [`build`](crate::Builder::build) reports.
    fn with_registered(mut self) -> Self {
        for def in events_core::channel::registered() {
            if (def.user_type)() != std::any::TypeId::of::<U>() {
                self.problems.push(format!(
                    "the channel callback `{}` for `{}` ({}:{}) takes `&{}`, but this server's users are `{}`: give Channels::new an authenticator of that type, or change the callback's user",
                    def.name,
                    def.pattern,
                    def.file,
                    def.line,
                    (def.user_type_name)(),
                    std::any::type_name::<U>(),
                ));
                continue;
            }
            let kind = ChannelKind::of(def.pattern);
            self = self.route(def.pattern, kind, Decide::Registered(def));
        }
        self
    }

    fn route(mut self, pattern: &str, kind: ChannelKind, decide: Decide<U>) -> Self {
        let prefix = match kind {
            ChannelKind::Presence => "presence-",
            _ => "private-",
        };
        if self.routes.iter().any(|r| r.pattern.source == pattern) {
            self.problems.push(format!(
                "two callbacks authorize the pattern `{pattern}`: keep one"
            ));
            return self;
        }
        match Pattern::parse(pattern) {
            Ok(parsed) if ChannelKind::of(pattern) == kind => self.routes.push(Route {
                pattern: parsed,
                kind,
                decide,
            }),
            Ok(_) if kind == ChannelKind::Public => self.problems.push(format!(
                "the pattern `{pattern}` must start with `private-` or `presence-` (public channels need no authorization)"
            )),
            Ok(_) => self.problems.push(format!(
                "the pattern `{pattern}` must start with `{prefix}` (the prefix chooses the channel's kind, as on the wire)"
            )),
            Err(problem) => self.problems.push(problem),
        }
        self
    }

    /// Lets a user join the private channels matching `pattern` (which
    /// starts with `private-`) when `allow` says so.
    pub fn channel(
        self,
        pattern: &str,
        allow: impl Fn(&U, &Params) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.route(
            pattern,
            ChannelKind::Private,
            Decide::Now(Arc::new(move |user, params| {
                if allow(user, params) {
                    Decision::Allow
                } else {
                    Decision::Deny
                }
            })),
        )
    }

    /// Lets a user join the presence channels matching `pattern` (which
    /// starts with `presence-`) as the [`Member`] `member` gives (the id
    /// other members count them by, and what they see); `None` denies.
    pub fn presence(
        self,
        pattern: &str,
        member: impl Fn(&U, &Params) -> Option<Member> + Send + Sync + 'static,
    ) -> Self {
        self.route(
            pattern,
            ChannelKind::Presence,
            Decide::Now(Arc::new(move |user, params| match member(user, params) {
                Some(member) => Decision::Member(member),
                None => Decision::Deny,
            })),
        )
    }

    /// Gives the `#[channel]` callbacks the state their `State<T>`
    /// parameters take (a database pool, a team directory), as
    /// `Worker::state` gives listeners theirs; a callback whose state type
    /// nobody gave is an error of [`build`](crate::Builder::build), naming
    /// both. Give several types with several calls.
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// What cannot work, in words: bad patterns, callbacks of another user
    /// type, and state the callbacks take that was not given.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = self.problems.clone();
        for route in &self.routes {
            let Decide::Registered(def) = &route.decide else {
                continue;
            };
            for need in def.needs {
                if !self.state.has(need.type_id()) {
                    problems.push(format!(
                        "the channel callback `{}` for `{}` ({}:{}) takes `State<{}>`, which was not given: add it with `Channels::state(..)`",
                        def.name,
                        def.pattern,
                        def.file,
                        def.line,
                        need.type_name(),
                    ));
                }
            }
        }
        problems
    }
}

/// [`Channels`] of any user type, for the server.
pub(crate) trait Authorize: Send + Sync {
    /// What the callbacks say about the request's user joining `channel`;
    /// `Err` says why not, in words.
    fn authorize<'a>(
        &'a self,
        parts: Parts,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<Decision, &'static str>>;
}

impl<U: Send + Sync + 'static> Authorize for Channels<U> {
    fn authorize<'a>(
        &'a self,
        parts: Parts,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<Decision, &'static str>> {
        Box::pin(async move {
            let kind = ChannelKind::of(channel);
            let Some((route, params)) = self
                .routes
                .iter()
                .filter(|r| r.kind == kind)
                .find_map(|r| r.pattern.matches(channel).map(|p| (r, p)))
            else {
                return Err("no channel pattern of this server matches the channel");
            };
            let Some(user) = (self.authenticate)(parts).await else {
                return Err("the request's user is not signed in");
            };
            let decision = match &route.decide {
                Decide::Now(decide) => decide(&user, &params),
                Decide::Registered(def) => {
                    match (def.authorize)(&user, &params, &self.state).await {
                        Answer::Allowed => Decision::Allow,
                        Answer::Member(member) => Decision::Member(member),
                        Answer::MissingState(type_name) => {
                            // The build refuses this; a server that got
                            // here anyway says so rather than deny quietly.
                            tracing::error!(
                                callback = def.name,
                                "the channel callback takes State<{type_name}>, which the server was not given"
                            );
                            Decision::Deny
                        }
                        _ => Decision::Deny,
                    }
                }
            };
            match decision {
                Decision::Deny => Err("the user may not join this channel"),
                decision => Ok(decision),
            }
        })
    }
}

/// The body of an auth request: form-encoded (pusher-js) or JSON.
#[derive(Debug, Deserialize)]
struct AuthRequest {
    socket_id: String,
    channel_name: String,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": message.into() })),
    )
        .into_response()
}

/// `POST /broadcasting/auth`.
pub(crate) async fn endpoint(State(inner): State<Arc<Inner>>, request: Request<Body>) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 * 1024).await else {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the auth request's body is over 64 KB",
        );
    };
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let parsed: Result<AuthRequest, String> = if json {
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    } else {
        serde_urlencoded::from_bytes(&body).map_err(|e| e.to_string())
    };
    let request = match parsed {
        Ok(request) => request,
        Err(reason) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!(
                    "the auth request needs `socket_id` and `channel_name` (form or JSON): {reason}"
                ),
            );
        }
    };
    if let Err(e) = validate_socket_id(&request.socket_id) {
        return refuse(StatusCode::BAD_REQUEST, e.to_string());
    }
    if let Err(e) = validate_channel(&request.channel_name) {
        return refuse(StatusCode::BAD_REQUEST, e.to_string());
    }
    let kind = ChannelKind::of(&request.channel_name);
    if !kind.needs_auth() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "public channels need no authorization: only private- and presence- channels are signed",
        );
    }
    let Some(channels) = &inner.channels else {
        return refuse(
            StatusCode::FORBIDDEN,
            "this server authorizes no channel: the application gives it Channels",
        );
    };
    let Some(app) = &inner.auth_app else {
        return refuse(StatusCode::FORBIDDEN, "this server has no app to sign for");
    };
    let decision = channels.authorize(parts, &request.channel_name).await;
    let channel = request.channel_name.as_str();
    let socket = request.socket_id.as_str();
    match (kind, decision) {
        (ChannelKind::Private, Ok(Decision::Allow)) => axum::Json(serde_json::json!({
            "auth": app.sign_channel(socket, channel, None),
        }))
        .into_response(),
        (ChannelKind::Presence, Ok(Decision::Member(member))) => {
            let channel_data = match serde_json::to_string(&member) {
                Ok(data) => data,
                Err(e) => {
                    return refuse(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("the member's info does not serialize: {e}"),
                    );
                }
            };
            axum::Json(serde_json::json!({
                "auth": app.sign_channel(socket, channel, Some(&channel_data)),
                "channel_data": channel_data,
            }))
            .into_response()
        }
        (_, Err(reason)) => refuse(StatusCode::FORBIDDEN, reason),
        (_, Ok(_)) => refuse(
            StatusCode::FORBIDDEN,
            "the channel's callback does not fit its kind",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_capture_placeholders() {
        let pattern = Pattern::parse("private-session.{id}").expect("a pattern");
        let params = pattern.matches("private-session.7").expect("matches");
        assert_eq!(params.get("id"), Some("7"));
        assert_eq!(params.parse::<u64>("id"), Some(7));
        assert!(pattern.matches("private-session.").is_none());
        assert!(pattern.matches("private-session.7.8").is_none());
        assert!(pattern.matches("private-sessions.7").is_none());

        let two = Pattern::parse("presence-room.{room}-{part}").expect("a pattern");
        let params = two.matches("presence-room.a-b-c").expect("matches");
        assert_eq!(params.get("room"), Some("a-b"));
        assert_eq!(params.get("part"), Some("c"));
        let fixed = Pattern::parse("private-admin").expect("a pattern");
        assert!(fixed.matches("private-admin").is_some());
        assert!(fixed.matches("private-admins").is_none());
    }

    #[test]
    fn bad_patterns_say_why() {
        for (bad, words) in [
            ("private-{id", "no `}`"),
            ("private-id}", "no `{`"),
            ("private-{1d}", "must be a name"),
            ("private-{a}{b}", "apart"),
            ("private-{a}.{a}", "twice"),
            ("private room.{id}", "can match no channel"),
        ] {
            let problem = Pattern::parse(bad).expect_err(bad);
            assert!(problem.contains(words), "{bad}: {problem}");
        }
        let channels = Channels::new(|_| Some(()))
            .channel("session.{id}", |_, _| true)
            .presence("private-room", |_, _| None);
        assert_eq!(channels.problems().len(), 2, "{:?}", channels.problems());
        assert!(channels.problems()[0].contains("must start with `private-`"));
        assert!(channels.problems()[1].contains("must start with `presence-`"));
    }
}
