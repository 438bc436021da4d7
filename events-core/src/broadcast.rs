//! Broadcasting: events that leave the process toward browsers, as
//! Laravel's `ShouldBroadcast` events do.
//!
//! An event declares where it goes, and the framework does the rest:
//!
//! ```
//! use events::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[event(
//!     name = "message.ready",
//!     broadcast = ["messages", "private-session.{session_id}"],
//!     broadcast_as = "message_post",
//! )]
//! #[derive(Serialize, Deserialize)]
//! struct MessageReady { session_id: u64, text: String }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), events::DispatchError> {
//! let broadcasts = events::fake_broadcasts();
//! MessageReady { session_id: 7, text: "hi".into() }.dispatch().await?;
//! broadcasts.assert_broadcast_on::<MessageReady>("private-session.7");
//! # Ok(()) }
//! ```
//!
//! - **Channels.** `broadcast = [..]` lists channel names; `{field}`
//!   interpolates a field of the event (checked at compile time).
//!   `private-` and `presence-` prefixes choose the kind of channel, as on
//!   the wire. `broadcast_on = path` adds the channels a
//!   `fn(&E) -> Vec<Channel>` returns, for what a template cannot say.
//! - **Name and data.** Clients see the event under `broadcast_as` (default:
//!   the event's name) with the event's JSON as data, or what
//!   `broadcast_with = path` (`fn(&E) -> serde_json::Value`) returns.
//! - **Whether.** `broadcast_when = path` (`fn(&E) -> bool`) decides per
//!   event.
//! - **When.** A broadcast goes through the queue by default, as
//!   `ShouldBroadcast` does: a job on the queue `broadcasts` (or
//!   `broadcast_queue = ".."`) publishes it, so a slow broadcast server
//!   never holds up the code that dispatched; the event is then stored as
//!   JSON in the job and must be `Serialize` and `Deserialize`.
//!   `broadcast_now` publishes inside dispatch instead (Laravel's
//!   `ShouldBroadcastNow`).
//! - **`to_others`.** Dispatching with
//!   [`Dispatching::to_others`](crate::Dispatching::to_others) and the
//!   sender's socket id (the `X-Socket-ID` header Laravel Echo sends)
//!   leaves that socket out.
//!
//! Where broadcasts go is the application's choice: a [`Publish`]
//! implementation given as the [`Broadcasts`] state of the dispatcher
//! (for `broadcast_now`) and of the worker (for queued broadcasts):
//! `events::broadcast::Broadcaster` (feature `broadcast`) publishes to its
//! own sockets and, with Redis, to every node's.

use std::fmt;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::context::{Context, lock};
use crate::envelope::{Metadata, keys};
use crate::event::{AnyEvent, Event};
use crate::listener::{BoxError, BoxFuture, Flow, Outcome};

/// The longest channel name the Pusher protocol allows.
pub const MAX_CHANNEL_NAME: usize = 164;

/// The kind of a channel, chosen by its name's prefix as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// Anyone may subscribe.
    Public,
    /// `private-..`: subscribing needs the application's authorization.
    Private,
    /// `presence-..`: authorized, and subscribers see who else is there.
    Presence,
}

/// A channel a broadcast goes to, by its name as clients subscribe to it
/// (`messages`, `private-session.7`, `presence-room.lobby`).
///
/// ```
/// use events::broadcast::{Channel, ChannelKind};
///
/// assert_eq!(Channel::private("session.7").name(), "private-session.7");
/// assert_eq!(Channel::new("presence-room.1").kind(), ChannelKind::Presence);
/// assert_eq!(Channel::from("messages").kind(), ChannelKind::Public);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Channel(String);

impl Channel {
    /// The channel named `name` as on the wire: its prefix, if any, says
    /// its kind.
    pub fn new(name: impl Into<String>) -> Channel {
        Channel(name.into())
    }

    /// The public channel `name` (Laravel's `new Channel('..')`).
    pub fn public(name: impl Into<String>) -> Channel {
        Channel(name.into())
    }

    /// The private channel `private-{name}` (Laravel's `new
    /// PrivateChannel('..')`).
    pub fn private(name: impl AsRef<str>) -> Channel {
        Channel(format!("private-{}", name.as_ref()))
    }

    /// The presence channel `presence-{name}` (Laravel's `new
    /// PresenceChannel('..')`).
    pub fn presence(name: impl AsRef<str>) -> Channel {
        Channel(format!("presence-{}", name.as_ref()))
    }

    /// Its name, as clients subscribe to it.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// Its kind, from its prefix.
    pub fn kind(&self) -> ChannelKind {
        if self.0.starts_with("presence-") {
            ChannelKind::Presence
        } else if self.0.starts_with("private-") {
            ChannelKind::Private
        } else {
            ChannelKind::Public
        }
    }

    /// Checks the name against the protocol's rules: 1 to 164 characters
    /// of letters, digits and `_ - = @ , . ;`. The error says what is
    /// wrong.
    ///
    /// ```
    /// use events::broadcast::Channel;
    /// assert!(Channel::new("private-session.7").validate().is_ok());
    /// assert!(Channel::new("chat room").validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), String> {
        let Some(why) = channel_name_problem(&self.0) else {
            return Ok(());
        };
        let shown: String = self.0.chars().take(MAX_CHANNEL_NAME).collect();
        Err(format!("`{shown}` is not a channel name: {why}"))
    }
}

/// What is wrong with `name` as a channel name, in words (1 to
/// [`MAX_CHANNEL_NAME`] characters of letters, digits and `_ - = @ , .
/// ;`); `None` when nothing is. The one rule, for declarations and for the
/// broadcast server.
///
/// ```
/// use events::broadcast::channel_name_problem;
/// assert_eq!(channel_name_problem("presence-room;a=b,c@d"), None);
/// assert_eq!(channel_name_problem(""), Some("it is empty"));
/// ```
pub fn channel_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_CHANNEL_NAME {
        Some("it is longer than 164 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-=@,.;".contains(&b))
    {
        Some("it may hold only letters, digits and the characters _ - = @ , . ;")
    } else {
        None
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Channel {
    fn from(name: &str) -> Channel {
        Channel::new(name)
    }
}

impl From<String> for Channel {
    fn from(name: String) -> Channel {
        Channel(name)
    }
}

impl AsRef<str> for Channel {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// One broadcast: what goes to the channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Broadcast {
    /// The name of the event it comes from ([`Event::NAME`]).
    pub event: String,
    /// The name clients see (`broadcast_as`, default: the event's name).
    pub name: String,
    /// The channels it goes to, each once.
    pub channels: Vec<Channel>,
    /// The data clients receive.
    pub data: serde_json::Value,
    /// The socket left out (the sender's, with `to_others`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub except: Option<String>,
}

impl Broadcast {
    /// A broadcast of `name` with `data` on `channels`, from the event
    /// `event`, to every socket.
    pub fn new(
        event: impl Into<String>,
        name: impl Into<String>,
        channels: impl IntoIterator<Item = Channel>,
        data: serde_json::Value,
    ) -> Broadcast {
        Broadcast {
            event: event.into(),
            name: name.into(),
            channels: channels.into_iter().collect(),
            data,
            except: None,
        }
    }

    /// Leaves the socket `socket_id` out.
    pub fn except(mut self, socket_id: impl Into<String>) -> Broadcast {
        self.except = Some(socket_id.into());
        self
    }

    /// Whether it goes to the channel named `channel`.
    pub fn is_on(&self, channel: &str) -> bool {
        self.channels.iter().any(|c| c.name() == channel)
    }
}

/// Where broadcasts go: a broadcast server in this process, a Redis that
/// servers listen to, a Pusher-compatible HTTP API.
///
/// ```
/// use events::broadcast::{Broadcast, Broadcasts, Publish};
///
/// struct Log;
///
/// #[async_trait::async_trait]
/// impl Publish for Log {
///     async fn publish(&self, broadcast: &Broadcast) -> Result<(), events::BoxError> {
///         println!("{} on {:?}", broadcast.name, broadcast.channels);
///         Ok(())
///     }
/// }
///
/// let dispatcher = events::Dispatcher::builder()
///     .state(Broadcasts::new(Log))
///     .build()?;
/// # Ok::<(), events::RegistryError>(())
/// ```
#[async_trait::async_trait]
pub trait Publish: Send + Sync + 'static {
    /// Sends `broadcast` to its channels' subscribers. An error fails the
    /// dispatch (`broadcast_now`) or the job, which is retried.
    async fn publish(&self, broadcast: &Broadcast) -> Result<(), BoxError>;
}

/// The application state broadcasting reads: the [`Publish`] broadcasts
/// go to. Give it to the dispatcher (`Dispatcher::builder().state(..)`)
/// for `broadcast_now` events, and to the worker
/// (`Worker::new(queue).state(..)`, or the CLI's `Commands::state`) for
/// queued ones. Cheap to clone.
#[derive(Clone)]
pub struct Broadcasts {
    publish: Arc<dyn Publish>,
}

impl Broadcasts {
    /// Broadcasts going to `publish`.
    pub fn new(publish: impl Publish) -> Broadcasts {
        Broadcasts {
            publish: Arc::new(publish),
        }
    }

    /// Sends `broadcast`.
    pub async fn publish(&self, broadcast: &Broadcast) -> Result<(), BoxError> {
        self.publish.publish(broadcast).await
    }
}

impl fmt::Debug for Broadcasts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcasts").finish_non_exhaustive()
    }
}

/// What `#[event(broadcast ..)]` generates for a type: its broadcast name,
/// how to find its channels and its data.
#[doc(hidden)]
pub struct BroadcastSpec<E: ?Sized> {
    /// `broadcast_as`, else the event's name.
    pub name: &'static str,
    /// The templates' channels, then `broadcast_on`'s.
    pub channels: fn(&E) -> Vec<Channel>,
    /// `broadcast_with`, else the event's JSON.
    pub data: fn(&E) -> Result<serde_json::Value, serde_json::Error>,
}

/// Implemented by `#[event(broadcast ..)]`.
#[doc(hidden)]
pub trait Broadcastable: Event + Sized {
    /// How the type broadcasts.
    const BROADCAST: BroadcastSpec<Self>;
}

/// The event's JSON: the default of `broadcast_with`; the one place
/// generated code requires `E: Serialize` for a `broadcast_now` event.
#[doc(hidden)]
pub fn json_data<E: BroadcastData>(event: &E) -> Result<serde_json::Value, serde_json::Error> {
    serde_json::to_value(event)
}

/// What a queued broadcast's listener needs of its event: the one place
/// generated code requires `E: Serialize + Deserialize`.
#[doc(hidden)]
pub struct BroadcastJob<E> {
    /// The job body.
    pub job: crate::listener::JobFn,
    /// The event as the job's payload.
    pub encode: fn(&AnyEvent) -> Option<Result<String, crate::listener::EncodeError>>,
    /// The event's JSON, the default data.
    pub data: fn(&E) -> Result<serde_json::Value, serde_json::Error>,
}

/// The [`BroadcastJob`] of `E`.
#[doc(hidden)]
pub const fn broadcast_job<E: Broadcastable + QueuedBroadcast>() -> BroadcastJob<E> {
    BroadcastJob {
        job: run_job::<E>,
        encode: crate::__private::encode_queued::<E>,
        data: queued_data::<E>,
    }
}

fn queued_data<E: Serialize>(event: &E) -> Result<serde_json::Value, serde_json::Error> {
    serde_json::to_value(event)
}

/// `broadcast_with`'s value.
#[doc(hidden)]
pub fn given_data(value: serde_json::Value) -> Result<serde_json::Value, serde_json::Error> {
    Ok(value)
}

/// Raised, on the `broadcast` key, by a broadcast event that is not
/// `Serialize` (its JSON is what clients receive).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is broadcast, so it must implement `Serialize`",
    label = "clients receive the event as JSON",
    note = "derive `serde::Serialize` on `{Self}`, or give `broadcast_with = path` to say what clients receive"
)]
pub trait BroadcastData: Serialize {}
#[diagnostic::do_not_recommend]
impl<T: Serialize> BroadcastData for T {}

/// Raised, on the `broadcast` key, by a queued broadcast event that is not
/// `Serialize` and `Deserialize`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is broadcast through the queue, so it must implement `Serialize` and `Deserialize`",
    label = "the broadcast's job stores the event as JSON",
    note = "derive `serde::Serialize` and `serde::Deserialize` on `{Self}`, or add `broadcast_now` to publish inside dispatch"
)]
pub trait QueuedBroadcast: Serialize + serde::de::DeserializeOwned {}
#[diagnostic::do_not_recommend]
impl<T: Serialize + serde::de::DeserializeOwned> QueuedBroadcast for T {}

/// `event`'s broadcast, with `metadata`'s socket left out; `None` when it
/// has no channel. A channel name that breaks the protocol's rules, or
/// data that does not serialize, is an error in words.
pub(crate) fn render<E: Broadcastable>(
    event: &E,
    metadata: &Metadata,
) -> Result<Option<Broadcast>, BoxError> {
    let spec = &E::BROADCAST;
    let mut channels = (spec.channels)(event);
    // Each channel once, in the order declared.
    let mut seen = std::collections::HashSet::with_capacity(channels.len());
    channels.retain(|c| seen.insert(c.name().to_owned()));
    if channels.is_empty() {
        return Ok(None);
    }
    for channel in &channels {
        channel
            .validate()
            .map_err(|why| format!("`{}` cannot be broadcast: {why}", E::NAME))?;
    }
    let data = (spec.data)(event).map_err(|e| {
        format!(
            "`{}` cannot be broadcast: its data does not serialize to JSON ({e})",
            E::NAME
        )
    })?;
    Ok(Some(Broadcast {
        event: E::NAME.to_owned(),
        name: spec.name.to_owned(),
        channels,
        data,
        except: metadata.get(keys::SOCKET_ID).map(str::to_owned),
    }))
}

/// Sends `broadcast` through the context's [`Broadcasts`], or records it
/// in the broadcast fake in force.
async fn send(broadcast: Broadcast, cx: &Context, runner: &str) -> Outcome {
    if let Some(fake) = crate::testing::current().and_then(|s| s.broadcasts) {
        fake.record(broadcast);
        return Ok(Flow::Continue);
    }
    let Some(broadcasts) = cx.state::<Broadcasts>() else {
        let error = format!(
            "`{}` is broadcast, but no `Broadcasts` was given to the {runner}: add one with `.state(events::broadcast::Broadcasts::new(..))` (an `events::broadcast::Broadcaster`, for one)",
            broadcast.event
        );
        // Trying again finds no publisher either: the job waits in the
        // failed store until the worker has one.
        if let Some(job) = cx.job() {
            job.fail_without_retry(error.clone());
        }
        return Err(error.into());
    };
    broadcasts.publish(&broadcast).await?;
    Ok(Flow::Continue)
}

/// The body of a `broadcast_now` event's listener: renders and publishes
/// inside dispatch.
#[doc(hidden)]
pub fn run_now<'a, E: Broadcastable>(
    event: &'a AnyEvent,
    cx: &'a Context,
) -> BoxFuture<'a, Outcome> {
    Box::pin(async move {
        let Some(event) = crate::__private::downcast::<E>(event) else {
            return Ok(Flow::Continue);
        };
        match render(event, cx.metadata())? {
            Some(broadcast) => send(broadcast, cx, "dispatcher").await,
            None => Ok(Flow::Continue),
        }
    })
}

/// The job body of a queued broadcast: rebuilds the event, renders and
/// publishes it. A broadcast that cannot be rendered fails without retry
/// (trying again renders the same).
#[doc(hidden)]
pub(crate) fn run_job<E: Broadcastable + serde::de::DeserializeOwned>(
    _name: &str,
    json: &str,
    cx: &Context,
) -> Result<BoxFuture<'static, Outcome>, serde_json::Error> {
    let event: E = serde_json::from_str(json)?;
    let cx = cx.clone();
    Ok(Box::pin(async move {
        let broadcast = match render(&event, cx.metadata()) {
            Ok(Some(broadcast)) => broadcast,
            Ok(None) => return Ok(Flow::Continue),
            Err(error) => {
                if let Some(job) = cx.job() {
                    job.fail_without_retry(error.to_string());
                }
                return Err(error);
            }
        };
        send(broadcast, &cx, "worker").await
    }))
}

/// Renders an event's broadcast, `None` if handed another type (see
/// [`BroadcastEntry`]).
#[doc(hidden)]
pub type RenderFn = fn(&AnyEvent, &Metadata) -> Option<Result<Option<Broadcast>, BoxError>>;

/// A queued broadcast's listener, by name, and how to render its event at
/// dispatch: what [`fake_broadcasts`] records instead of enqueueing.
#[doc(hidden)]
pub struct BroadcastEntry {
    /// The listener's name.
    pub listener: &'static str,
    /// Renders the event (`None` if handed another type).
    pub render: RenderFn,
}

inventory::collect!(BroadcastEntry);

/// [`BroadcastEntry::render`] for `E`.
#[doc(hidden)]
pub fn render_any<E: Broadcastable>(
    event: &AnyEvent,
    metadata: &Metadata,
) -> Option<Result<Option<Broadcast>, BoxError>> {
    let event = crate::__private::downcast::<E>(event)?;
    Some(render(event, metadata))
}

/// The queued broadcast listener named `listener`, if it is one.
pub(crate) fn entry(listener: &str) -> Option<&'static BroadcastEntry> {
    inventory::iter::<BroadcastEntry>
        .into_iter()
        .find(|e| e.listener == listener)
}

/// What a broadcast fake recorded.
#[derive(Default)]
pub(crate) struct BroadcastFakeState {
    recorded: Mutex<Vec<Broadcast>>,
}

impl BroadcastFakeState {
    pub(crate) fn record(&self, broadcast: Broadcast) {
        lock(&self.recorded).push(broadcast);
    }
}

/// Records every broadcast of this thread's dispatches instead of
/// publishing or enqueueing it, until the returned fake is dropped; the
/// dispatch's listeners run as usual. Parallel tests never see each
/// other's broadcasts (see [`fake`](crate::fake) for the scope).
///
/// ```
/// use events::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[event(broadcast = ["orders.{id}"], broadcast_as = "order.shipped")]
/// #[derive(Serialize, Deserialize)]
/// struct Shipped { id: u64 }
///
/// #[event]
/// struct Quiet;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), events::DispatchError> {
/// let broadcasts = events::fake_broadcasts();
/// Shipped { id: 3 }.dispatch().await?;
/// Quiet.dispatch().await?;
/// broadcasts.assert_broadcast_on::<Shipped>("orders.3");
/// broadcasts.assert_not_broadcast::<Quiet>();
/// assert_eq!(broadcasts.broadcasts()[0].name, "order.shipped");
/// # Ok(()) }
/// ```
#[must_use = "the fake stops recording when dropped"]
pub fn fake_broadcasts() -> BroadcastFake {
    let state = Arc::new(BroadcastFakeState::default());
    BroadcastFake {
        _guard: crate::testing::install_broadcasts(state.clone()),
        state,
    }
}

/// The handle of a broadcast fake: its assertions. Dropping it ends the
/// fake.
pub struct BroadcastFake {
    state: Arc<BroadcastFakeState>,
    _guard: crate::testing::Guard,
}

impl BroadcastFake {
    fn of<E: Event>(&self) -> Vec<Broadcast> {
        lock(&self.state.recorded)
            .iter()
            .filter(|b| b.event == E::NAME)
            .cloned()
            .collect()
    }

    fn report(&self) -> String {
        let recorded = lock(&self.state.recorded);
        if recorded.is_empty() {
            return "nothing was broadcast".to_owned();
        }
        let mut out = format!("{} broadcast:", recorded.len());
        for b in recorded.iter() {
            let channels: Vec<&str> = b.channels.iter().map(Channel::name).collect();
            out.push_str(&format!(
                "\n  - `{}` as `{}` on [{}] {}",
                b.event,
                b.name,
                channels.join(", "),
                b.data
            ));
        }
        out
    }

    /// Panics unless an `E` was broadcast on the channel named `channel`.
    #[track_caller]
    pub fn assert_broadcast_on<E: Event>(&self, channel: &str) {
        if !self.of::<E>().iter().any(|b| b.is_on(channel)) {
            panic!(
                "expected `{}` to be broadcast on `{channel}`; {}",
                E::NAME,
                self.report()
            );
        }
    }

    /// Panics unless an `E` was broadcast whose broadcast satisfies
    /// `matching` (its name, channels, data, left-out socket).
    #[track_caller]
    pub fn assert_broadcast_where<E: Event>(&self, matching: impl Fn(&Broadcast) -> bool) {
        if !self.of::<E>().iter().any(matching) {
            panic!(
                "expected `{}` to be broadcast matching the condition; {}",
                E::NAME,
                self.report()
            );
        }
    }

    /// Panics unless `E` was broadcast exactly `times` times.
    #[track_caller]
    pub fn assert_broadcast_times<E: Event>(&self, times: usize) {
        let seen = self.of::<E>().len();
        if seen != times {
            panic!(
                "expected `{}` to be broadcast {times} time(s), but it was {seen}; {}",
                E::NAME,
                self.report()
            );
        }
    }

    /// Panics if an `E` was broadcast.
    #[track_caller]
    pub fn assert_not_broadcast<E: Event>(&self) {
        if !self.of::<E>().is_empty() {
            panic!(
                "expected `{}` not to be broadcast; {}",
                E::NAME,
                self.report()
            );
        }
    }

    /// Panics if anything was broadcast.
    #[track_caller]
    pub fn assert_nothing_broadcast(&self) {
        if !lock(&self.state.recorded).is_empty() {
            panic!("expected nothing to be broadcast; {}", self.report());
        }
    }

    /// Every broadcast recorded, in order.
    pub fn broadcasts(&self) -> Vec<Broadcast> {
        lock(&self.state.recorded).clone()
    }

    /// Wraps `future` so this fake records its broadcasts wherever it runs
    /// (see [`EventFake::scope`](crate::EventFake::scope)).
    pub fn scope<F: std::future::Future>(
        &self,
        future: F,
    ) -> impl std::future::Future<Output = F::Output> + use<F> {
        let mut scope = crate::testing::current().unwrap_or_default();
        scope.broadcasts = Some(self.state.clone());
        crate::testing::scoped(Some(scope), future)
    }
}

impl fmt::Debug for BroadcastFake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastFake")
            .field("broadcasts", &self.broadcasts())
            .finish()
    }
}
