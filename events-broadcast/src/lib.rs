//! # events-broadcast
//!
//! The broadcast server of the `events` framework: events reach browsers
//! over WebSockets, and **pusher-js and Laravel Echo connect unchanged**,
//! because the server speaks the Pusher Channels protocol v7 (as Pusher,
//! Laravel Reverb and Soketi do).
//!
//! A [`Broadcaster`] is an [`axum::Router`] to mount (or `cli serve` with
//! the facade's `broadcast` feature) with these routes:
//!
//! | route | what |
//! | --- | --- |
//! | `GET /app/{key}` | the WebSocket: public, `private-` and `presence-` channels, client events |
//! | `POST /apps/{id}/events`, `/apps/{id}/batch_events` | publish, signed as Pusher signs (timestamp within ±600 s) |
//! | `GET /apps/{id}/channels`, `/channels/{name}`, `/channels/{name}/users` | what is occupied, and who is there (signed) |
//! | `POST /broadcasting/auth` | Laravel's auth endpoint: the application's [`Channels`] decide, the server signs |
//!
//! ```no_run
//! use events_broadcast::{App, Broadcaster, Channels, Member};
//!
//! struct User { id: u64, name: String }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let channels = Channels::new(|request: &axum::http::request::Parts| {
//!     // The application finds its user from the request's headers or cookies.
//!     let id = request.headers.get("x-user-id")?.to_str().ok()?.parse().ok()?;
//!     Some(User { id, name: format!("user {id}") })
//! })
//! .channel("private-session.{id}", |user: &User, params| {
//!     params.parse::<u64>("id") == Some(user.id)
//! })
//! .presence("presence-room.{room}", |user: &User, _params| {
//!     Some(Member::new(user.id.to_string()).info(serde_json::json!({ "name": user.name })))
//! });
//!
//! let broadcaster = Broadcaster::builder()
//!     .app(App::new("1", "app-key", "app-secret"))
//!     .channels(channels)
//!     .build()?;
//! let app = axum::Router::new().merge(broadcaster.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! # let serving = async move { axum::serve(listener, app).await };
//! // Later, from anywhere in the program:
//! broadcaster
//!     .publish("1", &["private-session.7"], "message_post", &serde_json::json!({"text": "hi"}), None)
//!     .await?;
//! # let _ = serving; Ok(()) }
//! ```
//!
//! **Several processes.** With the `redis` feature and
//! [`Builder::redis`], every publish goes once to Redis pub/sub under the
//! configured prefix and each node delivers it to its own sockets;
//! presence members live in Redis, so every node lists the same members
//! and `member_added` / `member_removed` go out once per user. Two prefixes
//! never see each other's messages.

#![warn(missing_docs)]

mod api;
mod app;
mod auth;
mod hub;
pub mod protocol;
mod publisher;
#[cfg(feature = "redis")]
mod redis;
pub mod sign;
mod socket;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use events_core::Config;
use tokio::sync::{Notify, watch};

pub use app::{APP_ID_VAR, APP_KEY_VAR, APP_SECRET_VAR, App, REDIS_URL_VAR};
pub use auth::{Channels, Params};
pub use protocol::Member;
pub use publisher::{HOST_VAR, PORT_VAR, Publisher, SCHEME_VAR, VIA_VAR};
#[cfg(feature = "redis")]
pub use redis::RedisFanout;

/// The `axum` this crate is built on, for mounting its router.
pub use axum;

use hub::{Delivery, Hub};

/// The broadcast server: its apps, its sockets, its channel authorization
/// and its fan-out. Cheap to clone; every clone is the same server.
#[derive(Clone)]
pub struct Broadcaster {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Broadcaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broadcaster")
            .field("apps", &self.inner.apps)
            .field("options", &self.inner.options)
            .field("connections", &self.connections())
            .finish_non_exhaustive()
    }
}

/// Limits and timings of the server (see the [`Builder`] methods).
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) activity_timeout: Duration,
    pub(crate) pong_timeout: Duration,
    pub(crate) max_message_size: usize,
    pub(crate) client_events_per_second: u32,
    pub(crate) outbox: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            activity_timeout: Duration::from_secs(120),
            pong_timeout: Duration::from_secs(30),
            max_message_size: protocol::DEFAULT_MAX_MESSAGE_SIZE,
            client_events_per_second: 10,
            outbox: 256,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) apps: Vec<App>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) options: Options,
    pub(crate) channels: Option<Arc<dyn auth::Authorize>>,
    pub(crate) auth_app: Option<App>,
    pub(crate) fanout: Fanout,
    /// `true` once [`Broadcaster::shutdown`] has begun.
    pub(crate) closing: watch::Sender<bool>,
    pub(crate) open: AtomicUsize,
    pub(crate) all_closed: Notify,
}

/// How deliveries reach the sockets: this process's only, or every node's
/// through Redis.
pub(crate) enum Fanout {
    Local,
    #[cfg(feature = "redis")]
    Redis(Box<RedisFanout>),
}

/// Why a [`Broadcaster`] could not be built, in words.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Two apps share an id or a key.
    #[error("two broadcast apps share the {what} `{value}`: each app needs its own id and key")]
    DuplicateApp {
        /// `id` or `key`.
        what: &'static str,
        /// The shared value.
        value: String,
    },
    /// An app with an empty id, key or secret.
    #[error("the broadcast app `{0}` has an empty id, key or secret")]
    EmptyApp(String),
    /// Only some of the configuration's app variables are set.
    #[error(
        "the broadcast app is half configured: set {0} too (or REVERB_APP_ID / _KEY / _SECRET)"
    )]
    IncompleteApp(String),
    /// [`Builder::auth_app`] names no app.
    #[error("the auth endpoint's app `{0}` is not one of the server's apps")]
    UnknownAuthApp(String),
    /// A channel pattern of [`Channels`] that cannot work.
    #[error("channel authorization: {0}")]
    Channels(String),
    /// An option out of its range.
    #[error("broadcast option {0}")]
    Setting(String),
    /// The Redis URL or connection (feature `redis`).
    #[error("broadcast fan-out through Redis: {0}")]
    Redis(String),
    /// A [`Publisher`] the configuration or its URL cannot make.
    #[error("publishing broadcasts: {0}")]
    Publisher(String),
}

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BroadcastError {
    /// No app of the server has this id.
    #[error("no broadcast app has the id `{0}`")]
    UnknownApp(String),
    /// A channel name that breaks the rules.
    #[error(transparent)]
    Protocol(#[from] protocol::ProtocolError),
    /// The data does not serialize to JSON.
    #[error("the broadcast data does not serialize to JSON: {0}")]
    Data(#[source] serde_json::Error),
    /// Redis did not take the message (feature `redis`).
    #[error("cannot publish through Redis")]
    Redis(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Builds a [`Broadcaster`]: [`Broadcaster::builder`].
#[derive(Default)]
#[must_use]
pub struct Builder {
    apps: Vec<App>,
    options: Options,
    channels: Option<Arc<dyn auth::Authorize>>,
    channel_problems: Vec<String>,
    auth_app: Option<String>,
    problems: Vec<BuildError>,
    #[cfg(feature = "redis")]
    redis: Option<RedisFanout>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("apps", &self.apps)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// Serves `app` too (several apps share one server; sockets and
    /// channels of one never see another's).
    pub fn app(mut self, app: App) -> Self {
        self.apps.push(app);
        self
    }

    /// Serves the app the configuration names
    /// (`EVENTS_BROADCAST_APP_ID`, `_KEY`, `_SECRET`, or `REVERB_APP_*`),
    /// if it names one; a half-configured app is an error at
    /// [`build`](Self::build).
    pub fn config(mut self, config: &Config) -> Self {
        match App::from_config(config) {
            Ok(Some(app)) => self.apps.push(app),
            Ok(None) => {}
            Err(problem) => self.problems.push(problem),
        }
        self
    }

    /// The application's channel authorization, for `POST
    /// /broadcasting/auth`. Without it, that endpoint answers 403 to
    /// everyone (clients whose own backend signs, as Laravel's does, need
    /// none here).
    pub fn channels<U: Send + Sync + 'static>(mut self, channels: Channels<U>) -> Self {
        self.channel_problems = channels.problems();
        self.channels = Some(Arc::new(channels));
        self
    }

    /// The app whose secret signs what `/broadcasting/auth` answers, by id
    /// (default: the first app).
    pub fn auth_app(mut self, id: impl Into<String>) -> Self {
        self.auth_app = Some(id.into());
        self
    }

    /// How long a client may stay silent before the server pings it; sent
    /// to clients as `activity_timeout` (default 120 s, whole seconds, at
    /// least 1).
    pub fn activity_timeout(mut self, timeout: Duration) -> Self {
        self.options.activity_timeout = timeout;
        self
    }

    /// How long the server waits for the pong to its ping before closing
    /// with 4201 (default 30 s).
    pub fn pong_timeout(mut self, timeout: Duration) -> Self {
        self.options.pong_timeout = timeout;
        self
    }

    /// The largest message a client may send, and the largest `data` the
    /// HTTP API accepts, in bytes (default 10 KB).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.options.max_message_size = bytes;
        self
    }

    /// How many client events one connection may send per second (default
    /// 10, Pusher's); more get `pusher:error` 4301 and go nowhere.
    pub fn client_events_per_second(mut self, events: u32) -> Self {
        self.options.client_events_per_second = events;
        self
    }

    /// How many frames may wait for one slow socket before it is closed
    /// with 4100 (it reconnects after a back-off) (default 256).
    pub fn outbox(mut self, frames: usize) -> Self {
        self.options.outbox = frames;
        self
    }

    /// Fans out through Redis (feature `redis`): see [`RedisFanout`].
    #[cfg(feature = "redis")]
    pub fn redis(mut self, fanout: RedisFanout) -> Self {
        self.redis = Some(fanout);
        self
    }

    /// The server, or every problem with its settings.
    pub fn build(mut self) -> Result<Broadcaster, BuildError> {
        if let Some(problem) = self.problems.pop() {
            return Err(problem);
        }
        if let Some(problem) = self.channel_problems.first() {
            return Err(BuildError::Channels(problem.clone()));
        }
        let mut ids = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        for app in &self.apps {
            if app.id().is_empty() || app.key().is_empty() || app.secret().is_empty() {
                return Err(BuildError::EmptyApp(app.id().to_owned()));
            }
            if !ids.insert(app.id()) {
                return Err(BuildError::DuplicateApp {
                    what: "id",
                    value: app.id().to_owned(),
                });
            }
            if !keys.insert(app.key()) {
                return Err(BuildError::DuplicateApp {
                    what: "key",
                    value: app.key().to_owned(),
                });
            }
        }
        let options = &self.options;
        if options.activity_timeout < Duration::from_secs(1) {
            return Err(BuildError::Setting(
                "activity_timeout must be at least 1 s (clients get it in whole seconds)".into(),
            ));
        }
        if options.pong_timeout.is_zero() {
            return Err(BuildError::Setting(
                "pong_timeout must be longer than 0".into(),
            ));
        }
        if options.max_message_size < 256 {
            return Err(BuildError::Setting(
                "max_message_size must be at least 256 bytes".into(),
            ));
        }
        if options.outbox == 0 {
            return Err(BuildError::Setting(
                "outbox must hold at least 1 frame".into(),
            ));
        }
        let auth_app = match &self.auth_app {
            Some(id) => Some(
                self.apps
                    .iter()
                    .find(|a| a.id() == id)
                    .cloned()
                    .ok_or_else(|| BuildError::UnknownAuthApp(id.clone()))?,
            ),
            None => self.apps.first().cloned(),
        };
        let hub = Arc::new(Hub::new(&self.apps));
        #[cfg(feature = "redis")]
        let fanout = match self.redis {
            Some(redis) => {
                redis.start(hub.clone())?;
                Fanout::Redis(Box::new(redis))
            }
            None => Fanout::Local,
        };
        #[cfg(not(feature = "redis"))]
        let fanout = Fanout::Local;
        Ok(Broadcaster {
            inner: Arc::new(Inner {
                apps: self.apps,
                hub,
                options: self.options,
                channels: self.channels,
                auth_app,
                fanout,
                closing: watch::Sender::new(false),
                open: AtomicUsize::new(0),
                all_closed: Notify::new(),
            }),
        })
    }
}

impl Broadcaster {
    /// A builder with no app, no channel authorization, and Pusher's
    /// limits.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The server of the app `config` names (`EVENTS_BROADCAST_APP_*` or
    /// `REVERB_APP_*`), fanning out through `EVENTS_BROADCAST_REDIS_URL`
    /// when it is set (feature `redis`; without it, that variable is an
    /// error). `cli serve` runs this.
    pub async fn from_config(config: &Config) -> Result<Broadcaster, BuildError> {
        let builder = Broadcaster::builder().config(config);
        let url = app::setting(config, REDIS_URL_VAR);
        #[cfg(feature = "redis")]
        let builder = match url {
            Some(url) => builder.redis(RedisFanout::connect(&url).await?),
            None => builder,
        };
        #[cfg(not(feature = "redis"))]
        if url.is_some() {
            return Err(BuildError::Redis(format!(
                "{REDIS_URL_VAR} is set, but this build has no Redis fan-out: turn on the `redis` feature of events-broadcast"
            )));
        }
        builder.build()
    }

    /// The server's apps.
    pub fn apps(&self) -> &[App] {
        &self.inner.apps
    }

    /// How many WebSocket connections are open in this process.
    pub fn connections(&self) -> usize {
        self.inner.open.load(Ordering::Acquire)
    }

    /// The routes (see the [crate] docs): the WebSocket at `/app/{key}`,
    /// the HTTP API under `/apps/{id}`, and `POST /broadcasting/auth`.
    /// Merge it into the application's router, or nest it under a prefix.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/app/{key}", axum::routing::get(socket::upgrade))
            .merge(api::routes())
            .route("/broadcasting/auth", axum::routing::post(auth::endpoint))
            .with_state(self.inner.clone())
    }

    /// Publishes `event` with `data` (sent as its JSON text, as Pusher's
    /// server libraries do) on `channels` of the app `app_id`, to every
    /// socket subscribed there on every node, except `except_socket` (the
    /// sender's socket id, for `to_others`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let broadcaster = events_broadcast::Broadcaster::builder()
    ///     .app(events_broadcast::App::new("1", "key", "secret"))
    ///     .build()?;
    /// broadcaster
    ///     .publish("1", &["messages"], "message_post", &serde_json::json!({"id": 7}), None)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn publish<C: AsRef<str>>(
        &self,
        app_id: &str,
        channels: &[C],
        event: &str,
        data: &serde_json::Value,
        except_socket: Option<&str>,
    ) -> Result<(), BroadcastError> {
        let data = serde_json::to_string(data).map_err(BroadcastError::Data)?;
        self.publish_raw(app_id, channels, event, data, except_socket)
            .await
    }

    /// [`publish`](Self::publish) with `data` already JSON text.
    pub async fn publish_raw<C: AsRef<str>>(
        &self,
        app_id: &str,
        channels: &[C],
        event: &str,
        data: String,
        except_socket: Option<&str>,
    ) -> Result<(), BroadcastError> {
        if self.inner.hub.by_id(app_id).is_none() {
            return Err(BroadcastError::UnknownApp(app_id.to_owned()));
        }
        protocol::validate_targets(channels, except_socket)?;
        self.inner
            .send(Delivery::Event {
                app: app_id.to_owned(),
                channels: channels.iter().map(|c| c.as_ref().to_owned()).collect(),
                event: event.to_owned(),
                data,
                except: except_socket.map(str::to_owned),
                user_id: None,
            })
            .await
    }

    /// Closes every connection with 4200 (pusher-js reconnects at once, to
    /// this server when it is back or to another node) and waits, at most
    /// 5 s, until they have gone. New connections are refused the same way
    /// from then on. `cli serve` calls it on SIGINT/SIGTERM.
    pub async fn shutdown(&self) {
        self.inner.closing.send_replace(true);
        let wait = async {
            loop {
                let notified = self.inner.all_closed.notified();
                if self.inner.open.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
    }
}

/// A [`Broadcaster`] is where `#[event(broadcast ..)]` events go when it
/// is the dispatcher's or the worker's
/// [`Broadcasts`](events_core::broadcast::Broadcasts): it publishes them to
/// its first app (the auth endpoint's, with [`Builder::auth_app`]); for
/// another app, see [`Broadcaster::to_app`].
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use events_broadcast::{App, Broadcaster};
/// use events_core::broadcast::Broadcasts;
///
/// let broadcaster = Broadcaster::builder().app(App::new("1", "key", "secret")).build()?;
/// let dispatcher = events_core::Dispatcher::builder()
///     .state(Broadcasts::new(broadcaster.clone()))
///     .build()?;
/// # let _ = dispatcher; Ok(()) }
/// ```
#[async_trait::async_trait]
impl events_core::broadcast::Publish for Broadcaster {
    async fn publish(
        &self,
        broadcast: &events_core::broadcast::Broadcast,
    ) -> Result<(), events_core::BoxError> {
        let app = self
            .inner
            .auth_app
            .as_ref()
            .map(|a| a.id().to_owned())
            .ok_or("the broadcaster serves no app: give it one with `Builder::app` or the EVENTS_BROADCAST_APP_* variables")?;
        publish_to(self, &app, broadcast).await
    }
}

/// Broadcasts to one app of a [`Broadcaster`]: [`Broadcaster::to_app`].
#[derive(Clone, Debug)]
pub struct AppBroadcaster {
    broadcaster: Broadcaster,
    app: String,
}

impl Broadcaster {
    /// Where `#[event(broadcast ..)]` events go to reach the app `app_id`
    /// of this server (for a server of several apps).
    pub fn to_app(&self, app_id: impl Into<String>) -> AppBroadcaster {
        AppBroadcaster {
            broadcaster: self.clone(),
            app: app_id.into(),
        }
    }
}

#[async_trait::async_trait]
impl events_core::broadcast::Publish for AppBroadcaster {
    async fn publish(
        &self,
        broadcast: &events_core::broadcast::Broadcast,
    ) -> Result<(), events_core::BoxError> {
        publish_to(&self.broadcaster, &self.app, broadcast).await
    }
}

async fn publish_to(
    broadcaster: &Broadcaster,
    app: &str,
    broadcast: &events_core::broadcast::Broadcast,
) -> Result<(), events_core::BoxError> {
    broadcaster
        .publish(
            app,
            &broadcast.channels,
            &broadcast.name,
            &broadcast.data,
            broadcast.except.as_deref(),
        )
        .await
        .map_err(Into::into)
}

impl Inner {
    /// Delivers everywhere: to this process's sockets, or through Redis
    /// to every node's.
    pub(crate) async fn send(&self, delivery: Delivery) -> Result<(), BroadcastError> {
        match &self.fanout {
            Fanout::Local => {
                self.hub.deliver(&delivery);
                Ok(())
            }
            #[cfg(feature = "redis")]
            Fanout::Redis(redis) => redis.publish(&delivery).await,
        }
    }

    /// Adds a presence member: whether this is the user's first connection
    /// there, every member, and the version of that list (0 in one
    /// process, where deliveries keep their order).
    pub(crate) async fn presence_join(
        &self,
        app: &hub::AppHub,
        channel: &str,
        socket_id: &str,
        member: &Member,
    ) -> Result<(bool, Vec<Member>, u64), BroadcastError> {
        match &self.fanout {
            Fanout::Local => {
                let (first, members) = app.presence_join(channel, socket_id, member);
                Ok((first, members, 0))
            }
            #[cfg(feature = "redis")]
            Fanout::Redis(redis) => {
                redis
                    .presence_join(app.app.id(), channel, socket_id, member)
                    .await
            }
        }
    }

    /// Takes a socket off a presence channel: the user id when it was the
    /// user's last connection there, and the version of the change.
    pub(crate) async fn presence_leave(
        &self,
        app: &hub::AppHub,
        channel: &str,
        socket_id: &str,
    ) -> Result<Option<(String, u64)>, BroadcastError> {
        match &self.fanout {
            Fanout::Local => Ok(app.presence_leave(channel, socket_id).map(|user| (user, 0))),
            #[cfg(feature = "redis")]
            Fanout::Redis(redis) => redis.presence_leave(app.app.id(), channel, socket_id).await,
        }
    }

    /// The members of a presence channel.
    pub(crate) async fn presence_members(
        &self,
        app: &hub::AppHub,
        channel: &str,
    ) -> Result<Vec<Member>, BroadcastError> {
        match &self.fanout {
            Fanout::Local => Ok(app.presence_members(channel)),
            #[cfg(feature = "redis")]
            Fanout::Redis(redis) => redis.presence_members(app.app.id(), channel).await,
        }
    }

    /// Counts a socket on (`+1`) or off (`-1`) a channel where every node
    /// sees it (Redis); this process's hub counts for itself.
    pub(crate) async fn count(&self, app: &hub::AppHub, channel: &str, by: i64) {
        match &self.fanout {
            Fanout::Local => {
                let _ = (app, channel, by);
            }
            #[cfg(feature = "redis")]
            Fanout::Redis(redis) => {
                if let Err(e) = redis.count(app.app.id(), channel, by).await {
                    tracing::warn!(%channel, error = %events_core::error::Chain(&e), "cannot count a socket in Redis");
                }
            }
        }
    }

    /// The sockets on each occupied channel of `app` (or on `only`), on
    /// every node.
    pub(crate) async fn occupied(
        &self,
        app: &hub::AppHub,
        only: Option<&str>,
    ) -> Result<std::collections::BTreeMap<String, usize>, BroadcastError> {
        match &self.fanout {
            Fanout::Local => {
                let mut occupied = app.occupied();
                if let Some(only) = only {
                    occupied.retain(|channel, _| channel == only);
                }
                Ok(occupied)
            }
            #[cfg(feature = "redis")]
            Fanout::Redis(redis) => redis.occupied(app.app.id(), only).await,
        }
    }

    /// A connection opened.
    pub(crate) fn opened(&self) {
        self.open.fetch_add(1, Ordering::AcqRel);
    }

    /// A connection closed.
    pub(crate) fn closed(&self) {
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.all_closed.notify_waiters();
        }
    }
}
