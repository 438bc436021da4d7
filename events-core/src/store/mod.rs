//! The event log: events stored once, with their envelope and the entity
//! they concern, queried by name, entity, actor and time, replayed into
//! projectors, and pushed to webhook subscriptions.
//!
//! [`EventStore`] is the seam every storage implements (memory here,
//! SQLite in `events-sqlite`, PostgreSQL in `events-postgres`); [`Store`]
//! is the cheap handle applications hold. Every store passes one
//! conformance suite ([`store_conformance_tests!`](crate::store_conformance_tests),
//! feature `conformance`).
//!
//! ```
//! use events::store::{EventQuery, NewEvent, Store};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), events::store::StoreError> {
//! let store = Store::memory();
//! let event = NewEvent::new("appointment.created", r#"{"appointment_id":7}"#)
//!     .entity("appointment:7".parse()?);
//! let appended = store.append(vec![event]).await?;
//! assert_eq!(appended[0].position, 1);
//!
//! let page = store.events(&EventQuery::new().name("appointment.*")).await?;
//! assert_eq!(page.events.len(), 1);
//! assert_eq!(page.events[0].entity.as_ref().unwrap().id, "7");
//! # Ok(()) }
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::envelope::{EventId, Metadata};
use crate::queue::{Job, Queue, QueueError};

#[cfg(feature = "conformance")]
pub mod conformance;
mod memory;
mod replay;
mod scheme;
mod upcast;
mod webhooks;

pub use memory::MemoryStore;
pub use replay::{Progress, Replay, ReplayError, ReplayReport, Replayed};
pub use scheme::{StoreScheme, schemes};
#[doc(hidden)]
pub use upcast::UpcastDef;
pub use upcast::{UpcastError, current_version, json_schema, problems as upcast_problems, upcast};
pub use webhooks::{
    Delivery, DeliveryQuery, DeliveryResult, Subscription, SubscriptionChange, SubscriptionState,
};

/// `EVENTS_STORE_URL`: where the event log lives (`sqlite://path`,
/// `postgres://..`, `memory://`).
pub const STORE_URL: &str = "EVENTS_STORE_URL";
/// `EVENTS_STORE_ENABLED`: `true` stores every event a dispatcher with a
/// store dispatches, not only those declared `#[event(store)]`.
pub const STORE_ENABLED: &str = "EVENTS_STORE_ENABLED";

inventory::submit! {
    crate::config::Var::new(STORE_URL, "Where the event log is stored: `sqlite://path`, `postgres://user@host/db` or `memory://`.")
}
inventory::submit! {
    crate::config::Var::new(STORE_ENABLED, "`true` stores every dispatched event in the event log, not only those marked `#[event(store)]`.")
        .with_default("false")
}

/// What an event concerns: a type and an id, written `type:id`
/// (`appointment:123`), so the timeline of one entity is one indexed query.
///
/// ```
/// let entity: events::store::Entity = "appointment:123".parse().unwrap();
/// assert_eq!((entity.kind.as_str(), entity.id.as_str()), ("appointment", "123"));
/// assert_eq!(entity.to_string(), "appointment:123");
/// assert!("appointment".parse::<events::store::Entity>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Entity {
    /// The entity's type (`appointment`).
    pub kind: String,
    /// Its id within the type (`123`).
    pub id: String,
}

impl Entity {
    /// The entity `kind:id`.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Entity {
        Entity {
            kind: kind.into(),
            id: id.into(),
        }
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.id)
    }
}

impl FromStr for Entity {
    type Err = StoreError;

    /// Splits at the first `:`; both parts must be non-empty.
    fn from_str(text: &str) -> Result<Entity, StoreError> {
        match text.split_once(':') {
            Some((kind, id)) if !kind.trim().is_empty() && !id.trim().is_empty() => {
                Ok(Entity::new(kind, id))
            }
            _ => Err(StoreError::Invalid(format!(
                "`{text}` is not an entity: write it as `type:id`, such as `appointment:123`"
            ))),
        }
    }
}

impl serde::Serialize for Entity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Entity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Entity, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An event to append: what the dispatcher hands the store, or what an
/// application appends itself.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NewEvent {
    /// The envelope's event id: storing one id twice keeps the first.
    pub id: EventId,
    /// The event's name (`Event::NAME`).
    pub name: String,
    /// The version of the event's shape (`#[event(version = N)]`, 1 when
    /// none is set).
    pub version: u32,
    /// The event as JSON text.
    pub payload: String,
    /// When it occurred (the envelope's time).
    pub occurred_at: SystemTime,
    /// The envelope's metadata (actor, correlation, causation, trace, ..).
    pub metadata: Metadata,
    /// The entity it concerns, from `#[event(entity = "type:{field}")]`.
    pub entity: Option<Entity>,
    /// Further entities it concerns, from the metadata key
    /// [`keys::RELATED`](crate::keys::RELATED): their timelines list it
    /// when asked to include related events.
    pub related: Vec<Entity>,
}

impl NewEvent {
    /// An event named `name` with the JSON text `payload`, a new id, now,
    /// version 1, no metadata and no entity.
    pub fn new(name: impl Into<String>, payload: impl Into<String>) -> NewEvent {
        let id = EventId::new();
        NewEvent {
            id,
            name: name.into(),
            version: 1,
            payload: payload.into(),
            occurred_at: id.timestamp(),
            metadata: Metadata::default(),
            entity: None,
            related: Vec::new(),
        }
    }

    /// Sets the id (and, as the envelope does, keeps `occurred_at`).
    pub fn id(mut self, id: EventId) -> NewEvent {
        self.id = id;
        self
    }

    /// Sets the version.
    pub fn version(mut self, version: u32) -> NewEvent {
        self.version = version;
        self
    }

    /// Sets when it occurred.
    pub fn occurred_at(mut self, at: SystemTime) -> NewEvent {
        self.occurred_at = at;
        self
    }

    /// Sets the entity.
    pub fn entity(mut self, entity: Entity) -> NewEvent {
        self.entity = Some(entity);
        self
    }

    /// Sets the metadata; the related entities are read from its
    /// [`keys::RELATED`](crate::keys::RELATED) value (entities separated by
    /// commas; one that does not parse is skipped).
    pub fn metadata(mut self, metadata: Metadata) -> NewEvent {
        self.related = related_of(&metadata);
        self.metadata = metadata;
        self
    }

    /// Adds one metadata entry (see [`metadata`](Self::metadata) for
    /// [`keys::RELATED`](crate::keys::RELATED)).
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> NewEvent {
        let mut metadata = std::mem::take(&mut self.metadata);
        metadata.insert(key, value);
        self.metadata(metadata)
    }

    /// Checks what a store needs: a name, a version of at least 1, a JSON
    /// payload. Stores refuse a batch holding an event that fails it.
    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |reason: String| {
            Err(StoreError::Invalid(format!(
                "event `{}` ({}) cannot be stored: {reason}",
                self.id, self.name
            )))
        };
        if self.name.trim().is_empty() {
            return bad("its name is empty".into());
        }
        if self.version == 0 {
            return bad("its version is 0; versions start at 1".into());
        }
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&self.payload) {
            return bad(format!("its payload is not JSON ({e})"));
        }
        Ok(())
    }
}

/// The entities named by the metadata key `related`.
pub(crate) fn related_of(metadata: &Metadata) -> Vec<Entity> {
    metadata
        .get(crate::keys::RELATED)
        .map(|list| {
            list.split(',')
                .filter_map(|one| one.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// An event as the store keeps it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct StoredEvent {
    /// Its place in the log: positions increase in the order appends
    /// commit, so a reader that has seen position `p` never later finds a
    /// new event below `p`.
    pub position: u64,
    /// The envelope's event id.
    pub id: EventId,
    /// The event's name.
    pub name: String,
    /// The version of its shape when it was stored.
    pub version: u32,
    /// The event as JSON text, as stored (not upcast).
    pub payload: String,
    /// When it occurred, to the millisecond.
    #[serde(with = "crate::envelope::epoch_millis")]
    pub occurred_at: SystemTime,
    /// The envelope's metadata.
    pub metadata: Metadata,
    /// The entity it concerns.
    pub entity: Option<Entity>,
    /// Its place in its entity's stream (1 for the entity's first event),
    /// `None` without an entity.
    pub entity_version: Option<u64>,
    /// Further entities it concerns.
    pub related: Vec<Entity>,
}

impl StoredEvent {
    /// Builds a record from its parts, as a store reads them back.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(position: u64, event: NewEvent, entity_version: Option<u64>) -> StoredEvent {
        StoredEvent {
            position,
            id: event.id,
            name: event.name,
            version: event.version,
            payload: event.payload,
            occurred_at: event.occurred_at,
            metadata: event.metadata,
            entity: event.entity,
            entity_version,
            related: event.related,
        }
    }

    /// The payload parsed.
    pub fn payload_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(&self.payload)
    }

    /// The actor, from the metadata's [`keys::ACTOR_ID`](crate::keys::ACTOR_ID).
    pub fn actor(&self) -> Option<&str> {
        self.metadata.get(crate::keys::ACTOR_ID)
    }
}

/// What an append did with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Appended {
    /// The event's position (the earlier one's, when its id was stored
    /// already).
    pub position: u64,
    /// `false` when an event with this id was stored already: it was kept
    /// and this one dropped.
    pub stored: bool,
}

impl Appended {
    /// An append's result for one event.
    pub fn new(position: u64, stored: bool) -> Appended {
        Appended { position, stored }
    }
}

/// Reading order by position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Oldest first (replay, catching up).
    #[default]
    Asc,
    /// Newest first (history screens).
    Desc,
}

/// Which events to read: every filter given must hold. Paged by position:
/// `after` / `before` exclude the position given, so a page's
/// [`next`](EventPage::next) is the next page's cursor.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct EventQuery {
    /// Names or wildcard patterns (`appointment.*`, `*`); empty: any name.
    pub names: Vec<String>,
    /// Only events about this entity.
    pub entity: Option<Entity>,
    /// Only events about entities of this type.
    pub entity_type: Option<String>,
    /// Only events whose metadata `actor_id` is this.
    pub actor: Option<String>,
    /// Occurred at or after.
    pub since: Option<SystemTime>,
    /// Occurred before.
    pub until: Option<SystemTime>,
    /// Positions above this.
    pub after: Option<u64>,
    /// Positions below this.
    pub before: Option<u64>,
    /// Reading order.
    pub order: Order,
    /// At most this many (default 100).
    pub limit: usize,
}

impl EventQuery {
    /// Every event, oldest first, 100 at a time.
    pub fn new() -> EventQuery {
        EventQuery {
            limit: 100,
            ..EventQuery::default()
        }
    }

    /// Adds a name or wildcard pattern.
    pub fn name(mut self, pattern: impl Into<String>) -> Self {
        self.names.push(pattern.into());
        self
    }

    /// Only events about `entity`.
    pub fn entity(mut self, entity: Entity) -> Self {
        self.entity = Some(entity);
        self
    }

    /// Only events about entities of type `kind`.
    pub fn entity_type(mut self, kind: impl Into<String>) -> Self {
        self.entity_type = Some(kind.into());
        self
    }

    /// Only events of this actor.
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Occurred at or after `at`.
    pub fn since(mut self, at: SystemTime) -> Self {
        self.since = Some(at);
        self
    }

    /// Occurred before `at`.
    pub fn until(mut self, at: SystemTime) -> Self {
        self.until = Some(at);
        self
    }

    /// Positions above `position`.
    pub fn after(mut self, position: u64) -> Self {
        self.after = Some(position);
        self
    }

    /// Positions below `position`.
    pub fn before(mut self, position: u64) -> Self {
        self.before = Some(position);
        self
    }

    /// Reading order.
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// At most `limit` events.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Whether `event` passes every filter but the paging ones (`after`,
    /// `before`, `limit`): the one rule stores written in Rust follow, and
    /// what SQL stores mirror.
    pub fn admits(&self, event: &StoredEvent) -> bool {
        (self.names.is_empty()
            || self
                .names
                .iter()
                .any(|p| crate::pattern::matches(p, &event.name)))
            && self
                .entity
                .as_ref()
                .is_none_or(|e| event.entity.as_ref() == Some(e))
            && self
                .entity_type
                .as_ref()
                .is_none_or(|k| event.entity.as_ref().is_some_and(|e| &e.kind == k))
            && self
                .actor
                .as_deref()
                .is_none_or(|a| event.actor() == Some(a))
            && self.since.is_none_or(|t| event.occurred_at >= t)
            && self.until.is_none_or(|t| event.occurred_at < t)
    }

    /// Checks the query: a time range that ends before it starts, or a
    /// limit of zero, is refused in words.
    pub fn validate(&self) -> Result<(), StoreError> {
        if let (Some(since), Some(until)) = (self.since, self.until)
            && until < since
        {
            return Err(StoreError::Invalid(
                "the time range ends before it starts (`until` is earlier than `since`)".into(),
            ));
        }
        if self.limit == 0 {
            return Err(StoreError::Invalid("`limit` must be at least 1".into()));
        }
        Ok(())
    }
}

/// One page of events.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct EventPage {
    /// The events, in the query's order.
    pub events: Vec<StoredEvent>,
    /// The cursor of the next page (pass it as `after` reading oldest
    /// first, as `before` newest first), `None` on the last page.
    pub next: Option<u64>,
}

impl EventPage {
    /// A page of `events` read for `query`: `next` is the last position
    /// when the page is full.
    pub fn of(events: Vec<StoredEvent>, query: &EventQuery) -> EventPage {
        let next = if events.len() >= query.limit {
            events.last().map(|e| e.position)
        } else {
            None
        };
        EventPage { events, next }
    }
}

/// The timeline of one entity: its events, and with `related` those whose
/// metadata names it too.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TimelineQuery {
    /// The entity.
    pub entity: Entity,
    /// Whether events that name it among their related entities count.
    pub related: bool,
    /// Positions above this.
    pub after: Option<u64>,
    /// Reading order (default oldest first).
    pub order: Order,
    /// At most this many (default 100).
    pub limit: usize,
}

impl TimelineQuery {
    /// The first 100 events about `entity`, oldest first.
    pub fn new(entity: Entity) -> TimelineQuery {
        TimelineQuery {
            entity,
            related: false,
            after: None,
            order: Order::Asc,
            limit: 100,
        }
    }

    /// Includes events whose related entities name it.
    pub fn related(mut self, related: bool) -> Self {
        self.related = related;
        self
    }

    /// Positions above (oldest first) or below (newest first) `position`.
    pub fn after(mut self, position: u64) -> Self {
        self.after = Some(position);
        self
    }

    /// Reading order.
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// At most `limit` events.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Whether `event` belongs on the timeline (paging aside).
    pub fn admits(&self, event: &StoredEvent) -> bool {
        event.entity.as_ref() == Some(&self.entity)
            || (self.related && event.related.contains(&self.entity))
    }
}

/// The width of a statistics bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    /// One minute.
    Minute,
    /// One hour.
    #[default]
    Hour,
    /// One day (UTC).
    Day,
}

impl Bucket {
    /// The bucket's width in milliseconds.
    pub fn millis(self) -> i64 {
        match self {
            Bucket::Minute => 60_000,
            Bucket::Hour => 3_600_000,
            Bucket::Day => 86_400_000,
        }
    }

    /// The start of the bucket holding `at`.
    pub fn start_of(self, at: SystemTime) -> SystemTime {
        let ms = crate::queue::millis(at);
        crate::queue::from_millis(ms - ms.rem_euclid(self.millis()))
    }
}

impl FromStr for Bucket {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Bucket, StoreError> {
        match text.to_ascii_lowercase().as_str() {
            "minute" | "m" => Ok(Bucket::Minute),
            "hour" | "h" => Ok(Bucket::Hour),
            "day" | "d" => Ok(Bucket::Day),
            _ => Err(StoreError::Invalid(format!(
                "`{text}` is not a bucket: use `minute`, `hour` or `day`"
            ))),
        }
    }
}

/// Counts of events per name per bucket.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct StatsQuery {
    /// The bucket width.
    pub bucket: Bucket,
    /// Names or patterns; empty: every name.
    pub names: Vec<String>,
    /// Occurred at or after.
    pub since: Option<SystemTime>,
    /// Occurred before.
    pub until: Option<SystemTime>,
}

impl StatsQuery {
    /// Every name, per `bucket`, over the whole log.
    pub fn new(bucket: Bucket) -> StatsQuery {
        StatsQuery {
            bucket,
            ..StatsQuery::default()
        }
    }

    /// Adds a name or pattern.
    pub fn name(mut self, pattern: impl Into<String>) -> Self {
        self.names.push(pattern.into());
        self
    }

    /// Occurred at or after `at`.
    pub fn since(mut self, at: SystemTime) -> Self {
        self.since = Some(at);
        self
    }

    /// Occurred before `at`.
    pub fn until(mut self, at: SystemTime) -> Self {
        self.until = Some(at);
        self
    }
}

/// How many events of one name occurred in one bucket.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct StatsRow {
    /// The event name.
    pub name: String,
    /// The bucket's start.
    #[serde(with = "crate::envelope::epoch_millis")]
    pub start: SystemTime,
    /// How many.
    pub count: u64,
}

impl StatsRow {
    /// A row.
    pub fn new(name: impl Into<String>, start: SystemTime, count: u64) -> StatsRow {
        StatsRow {
            name: name.into(),
            start,
            count,
        }
    }
}

/// One stored event name and version, as the log has seen it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct SchemaSeen {
    /// The event name.
    pub name: String,
    /// The version.
    pub version: u32,
    /// How many events of this name and version are stored.
    pub count: u64,
    /// When the newest occurred.
    #[serde(with = "crate::envelope::epoch_millis")]
    pub last_seen: SystemTime,
    /// The newest one's payload (for the field names seen).
    pub sample: String,
}

impl SchemaSeen {
    /// A row.
    pub fn new(
        name: impl Into<String>,
        version: u32,
        count: u64,
        last_seen: SystemTime,
        sample: impl Into<String>,
    ) -> SchemaSeen {
        SchemaSeen {
            name: name.into(),
            version,
            count,
            last_seen,
            sample: sample.into(),
        }
    }

    /// The top-level field names of the sample, sorted.
    pub fn fields(&self) -> Vec<String> {
        match serde_json::from_str::<serde_json::Value>(&self.sample) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }
}

/// What to prune: events that occurred before `before`, of these names
/// only when any is given.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Prune {
    /// Occurred before this.
    pub before: SystemTime,
    /// Names or patterns; empty: every name.
    pub names: Vec<String>,
}

impl Prune {
    /// Every event older than `age` (from now).
    pub fn older_than(age: Duration) -> Prune {
        Prune {
            before: SystemTime::now()
                .checked_sub(age)
                .unwrap_or(SystemTime::UNIX_EPOCH),
            names: Vec::new(),
        }
    }

    /// Every event that occurred before `at`.
    pub fn before(at: SystemTime) -> Prune {
        Prune {
            before: at,
            names: Vec::new(),
        }
    }

    /// Only events of this name or pattern.
    pub fn name(mut self, pattern: impl Into<String>) -> Self {
        self.names.push(pattern.into());
        self
    }

    /// Whether `event` goes.
    pub fn admits(&self, event: &StoredEvent) -> bool {
        event.occurred_at < self.before
            && (self.names.is_empty()
                || self
                    .names
                    .iter()
                    .any(|p| crate::pattern::matches(p, &event.name)))
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another append to the entity's stream came first: its version is
    /// not the one expected.
    #[error(
        "the stream of `{entity}` is at version {actual}, not {expected} as expected: another append came first; read it again and retry"
    )]
    Conflict {
        /// The entity.
        entity: Entity,
        /// The version the caller expected.
        expected: u64,
        /// The stream's version.
        actual: u64,
    },
    /// Input the store cannot take (an event with no name, a payload that
    /// is not JSON, a bad time range), in words. Nothing was stored.
    #[error("{0}")]
    Invalid(String),
    /// The store URL's scheme is none this build knows.
    #[error("unsupported store URL `{url}`: this build opens {}", describe(known))]
    UnknownScheme {
        /// The URL given.
        url: String,
        /// The schemes compiled in, sorted.
        known: Vec<&'static str>,
    },
    /// The URL names a store this project has, left out of this build.
    #[error(
        "store URL `{url}` needs the {scheme}:// store, which this build leaves out: turn on the `events` crate's `{feature}` feature"
    )]
    MissingFeature {
        /// The URL given.
        url: String,
        /// Its scheme.
        scheme: String,
        /// The facade feature that compiles the store in.
        feature: &'static str,
    },
    /// A store URL is malformed (the store says how).
    #[error("bad store URL `{url}`: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store failed; `source()` is its own error.
    #[error("the {store} event store failed")]
    Backend {
        /// The store's name: its URL scheme.
        store: &'static str,
        /// What it said.
        #[source]
        source: crate::BoxError,
    },
    /// The events were stored, but the jobs of their dispatch could not be
    /// enqueued (the store and the queue are different databases, so the
    /// two writes could not be one).
    #[error("the events were stored, but their jobs could not be enqueued")]
    Enqueue(#[source] QueueError),
    /// A stored row could not be read back.
    #[error("corrupt row in the event store: {0}")]
    Corrupt(String),
    /// The store does not do this.
    #[error("the {store} event store cannot {operation}")]
    Unsupported {
        /// The store's name.
        store: String,
        /// What it cannot do, in words.
        operation: &'static str,
    },
}

impl StoreError {
    /// Wraps a store's own error: [`StoreError::Backend`].
    pub fn backend(
        store: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        StoreError::Backend {
            store,
            source: source.into(),
        }
    }

    fn unsupported<S: ?Sized>(operation: &'static str) -> StoreError {
        StoreError::Unsupported {
            store: std::any::type_name::<S>().to_owned(),
            operation,
        }
    }
}

fn describe(known: &[&str]) -> String {
    let urls: Vec<String> = known.iter().map(|s| format!("`{s}://`")).collect();
    match urls.as_slice() {
        [] => "no scheme".to_owned(),
        [one] => format!("only {one}"),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Where the event log lives. Every store passes the same conformance
/// suite; they differ only in where events are kept.
///
/// Times are kept to the millisecond. Every append is all or nothing.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` in one atomic write, in order, each
    /// [`validate`](NewEvent::validate)d first (one invalid event refuses
    /// the batch). Idempotent by id: an event whose id is stored already,
    /// or appears earlier in the batch, is skipped (`stored: false`, the
    /// kept event's position). An event with an entity takes the next
    /// version of the entity's stream.
    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Appended>, StoreError>;

    /// [`append`](EventStore::append) to the stream of `entity` when it is
    /// at version `expected` (0: no event yet), else
    /// [`StoreError::Conflict`] and nothing is stored. Every event must be
    /// about `entity`. Of concurrent appenders expecting one version,
    /// exactly one wins.
    async fn append_expecting(
        &self,
        entity: &Entity,
        expected: u64,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Appended>, StoreError>;

    /// Appends `events` and enqueues `jobs` on `queue` as one write where
    /// both live in one database, so a crash never leaves one without the
    /// other. The default, for a store and a queue apart, appends first,
    /// then enqueues: a failed enqueue comes back as
    /// [`StoreError::Enqueue`] with the events stored (the log is the
    /// record; a replay rebuilds what the jobs would have done).
    async fn append_with_jobs(
        &self,
        events: Vec<NewEvent>,
        jobs: Vec<Job>,
        queue: &Queue,
    ) -> Result<Vec<Appended>, StoreError> {
        let appended = self.append(events).await?;
        if !jobs.is_empty() {
            queue
                .backend()
                .enqueue_many(jobs)
                .await
                .map_err(StoreError::Enqueue)?;
        }
        Ok(appended)
    }

    /// The events `query` matches, one page.
    async fn events(&self, query: &EventQuery) -> Result<EventPage, StoreError>;

    /// The event with this id.
    async fn event(&self, id: EventId) -> Result<Option<StoredEvent>, StoreError>;

    /// The timeline of one entity, one page.
    async fn timeline(&self, query: &TimelineQuery) -> Result<EventPage, StoreError>;

    /// The version of an entity's stream: how many events it holds (0 for
    /// none).
    async fn stream_version(&self, entity: &Entity) -> Result<u64, StoreError>;

    /// The highest position ever given out (pruning does not lower it:
    /// positions are never reused), 0 for a log that never held an event.
    async fn last_position(&self) -> Result<u64, StoreError>;

    /// Counts per name per bucket, ordered by bucket start, then name.
    async fn stats(&self, query: &StatsQuery) -> Result<Vec<StatsRow>, StoreError>;

    /// Each name and version stored, sorted by name, then version.
    async fn schemas(&self) -> Result<Vec<SchemaSeen>, StoreError>;

    /// Deletes what `prune` matches; returns how many events went.
    async fn prune(&self, prune: &Prune) -> Result<u64, StoreError>;

    /// The position a projector got to, `None` before its first
    /// checkpoint.
    async fn checkpoint(&self, projector: &str) -> Result<Option<u64>, StoreError>;

    /// Records that `projector` handled every event up to `position`.
    async fn save_checkpoint(&self, projector: &str, position: u64) -> Result<(), StoreError>;

    /// Forgets a projector's checkpoint (its next replay starts over);
    /// whether it had one.
    async fn clear_checkpoint(&self, projector: &str) -> Result<bool, StoreError>;

    /// Stores a new webhook subscription (its id and secret chosen by the
    /// caller). The default says the store keeps none.
    async fn create_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let _ = subscription;
        Err(StoreError::unsupported::<Self>(
            "keep webhook subscriptions",
        ))
    }

    /// Every subscription, oldest first.
    async fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        Err(StoreError::unsupported::<Self>(
            "keep webhook subscriptions",
        ))
    }

    /// One subscription.
    async fn subscription(&self, id: &str) -> Result<Option<Subscription>, StoreError> {
        let _ = id;
        Err(StoreError::unsupported::<Self>(
            "keep webhook subscriptions",
        ))
    }

    /// Applies `change` to a subscription; the subscription as it is now,
    /// or `None` when there is none with this id. Turning one active again
    /// resets its failure count and reason.
    async fn update_subscription(
        &self,
        id: &str,
        change: &SubscriptionChange,
    ) -> Result<Option<Subscription>, StoreError> {
        let _ = (id, change);
        Err(StoreError::unsupported::<Self>(
            "keep webhook subscriptions",
        ))
    }

    /// Deletes a subscription (its delivery log stays); whether it was
    /// there.
    async fn delete_subscription(&self, id: &str) -> Result<bool, StoreError> {
        let _ = id;
        Err(StoreError::unsupported::<Self>(
            "keep webhook subscriptions",
        ))
    }

    /// Counts one delivery's outcome toward the subscription's state, in
    /// one atomic step: a success resets the consecutive failures; a
    /// failure adds one and, reaching `disable_after`, turns the
    /// subscription off with the reason; [`DeliveryResult::Gone`] turns it
    /// off at once. `None` when the subscription is gone.
    async fn note_delivery(
        &self,
        id: &str,
        result: &DeliveryResult,
        disable_after: u32,
    ) -> Result<Option<SubscriptionState>, StoreError> {
        let _ = (id, result, disable_after);
        Err(StoreError::unsupported::<Self>(
            "keep webhook subscriptions",
        ))
    }

    /// Adds one attempt to the delivery log.
    async fn log_delivery(&self, delivery: &Delivery) -> Result<(), StoreError> {
        let _ = delivery;
        Err(StoreError::unsupported::<Self>(
            "keep a webhook delivery log",
        ))
    }

    /// The delivery log `query` matches, newest first.
    async fn deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        let _ = query;
        Err(StoreError::unsupported::<Self>(
            "keep a webhook delivery log",
        ))
    }

    /// Deletes log entries older than `before`; how many went.
    async fn prune_deliveries(&self, before: SystemTime) -> Result<u64, StoreError> {
        let _ = before;
        Err(StoreError::unsupported::<Self>(
            "keep a webhook delivery log",
        ))
    }
}

/// Adds jobs to an append of stored events, enqueued in the same write as
/// the events ([`DispatcherBuilder::on_append`](crate::DispatcherBuilder::on_append)):
/// how a webhook delivery is enqueued with the event it delivers. Each job
/// names a registered queued listener.
#[async_trait]
pub trait AppendHook: Send + Sync + 'static {
    /// The jobs to enqueue with `events`.
    async fn jobs(&self, events: &[NewEvent]) -> Result<Vec<Job>, StoreError>;
}

/// A handle to an event store: cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn EventStore>,
    url: Arc<str>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("url", &self.url).finish()
    }
}

impl Store {
    /// A store in memory (`memory://`): for tests and examples.
    pub fn memory() -> Store {
        Store::with_store("memory://", MemoryStore::default())
    }

    /// Wraps `store`, opened from `url`.
    pub fn with_store(url: &str, store: impl EventStore) -> Store {
        Store {
            inner: Arc::new(store),
            url: url.into(),
        }
    }

    /// Opens the store at `url` through the store that registered its
    /// scheme: `memory://` always, `sqlite://` and `postgres://` as the
    /// features add them. Must not wait on a network: a store connects at
    /// its first operation.
    pub fn open(url: &str) -> Result<Store, StoreError> {
        scheme::open(url)
    }

    /// The store `EVENTS_STORE_URL` names, if it is set.
    pub fn from_config(config: &crate::Config) -> Option<Result<Store, StoreError>> {
        config.get(STORE_URL).map(|s| Store::open(s.value()))
    }

    /// The URL it was opened from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The store itself.
    pub fn inner(&self) -> &dyn EventStore {
        &*self.inner
    }
}

impl std::ops::Deref for Store {
    type Target = dyn EventStore;

    fn deref(&self) -> &Self::Target {
        &*self.inner
    }
}

/// Opens a store on the blocking pool when on a Tokio runtime (opening a
/// file can take a while), as [`Store::open`] does.
pub async fn connect(url: &str) -> Result<Store, StoreError> {
    let url = url.to_owned();
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle
            .spawn_blocking(move || Store::open(&url))
            .await
            .map_err(|e| StoreError::backend("store", e))?,
        Err(_) => Store::open(&url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_event_says_why() {
        let error = NewEvent::new("a", "{not json").validate().unwrap_err();
        assert!(error.to_string().contains("not JSON"), "{error}");
        let error = NewEvent::new(" ", "{}").validate().unwrap_err();
        assert!(error.to_string().contains("name is empty"), "{error}");
        let error = NewEvent::new("a", "{}").version(0).validate().unwrap_err();
        assert!(error.to_string().contains("version is 0"), "{error}");
    }

    #[test]
    fn related_entities_come_from_the_metadata() {
        let event = NewEvent::new("a", "{}").with("related", "invoice:5, customer:9,bogus");
        assert_eq!(
            event.related,
            vec![Entity::new("invoice", "5"), Entity::new("customer", "9")]
        );
    }

    #[test]
    fn buckets_start_on_their_boundaries() {
        let at = crate::queue::from_millis(3_600_000 * 5 + 61_234);
        assert_eq!(
            crate::queue::millis(Bucket::Hour.start_of(at)),
            3_600_000 * 5
        );
        assert_eq!(
            crate::queue::millis(Bucket::Minute.start_of(at)),
            3_600_000 * 5 + 60_000
        );
        assert_eq!(crate::queue::millis(Bucket::Day.start_of(at)), 0);
        assert!("week".parse::<Bucket>().is_err());
    }

    #[test]
    fn a_backwards_time_range_is_refused() {
        let now = SystemTime::now();
        let query = EventQuery::new()
            .since(now)
            .until(now - Duration::from_secs(1));
        assert!(
            query
                .validate()
                .unwrap_err()
                .to_string()
                .contains("ends before")
        );
    }
}
