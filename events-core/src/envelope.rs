//! The envelope every dispatch gets: the event's id, when it occurred, and
//! string metadata (actor, tenant, correlation id, trace context, ..). Queued
//! jobs store it, keep it across retries and into the failed store, and
//! listeners read it through [`Context`](crate::Context).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Metadata keys the framework and its capabilities read and write. Any
/// other key is the application's own.
pub mod keys {
    /// Who caused the event (a user or service id).
    pub const ACTOR_ID: &str = "actor_id";
    /// What kind of actor it is (`user`, `service`, ..).
    pub const ACTOR_TYPE: &str = "actor_type";
    /// The tenant the event belongs to.
    pub const TENANT: &str = "tenant";
    /// Ties together the events of one request or workflow.
    pub const CORRELATION_ID: &str = "correlation_id";
    /// The id of the event that caused this one.
    pub const CAUSATION_ID: &str = "causation_id";
    /// The W3C trace context of the dispatching span.
    pub const TRACEPARENT: &str = "traceparent";
    /// The W3C trace state that goes with [`TRACEPARENT`].
    pub const TRACESTATE: &str = "tracestate";
    /// Further entities the event concerns, as `type:id` separated by
    /// commas (`invoice:5,customer:9`): the event log lists the event on
    /// their timelines too, when asked for related events.
    pub const RELATED: &str = "related";
    /// The socket id of the client that caused the event (the
    /// `X-Socket-ID` header Laravel Echo sends): its broadcasts leave that
    /// socket out (`to_others`).
    pub const SOCKET_ID: &str = "socket_id";
}

/// An event's id: a ULID (48 bits of milliseconds since the epoch, then 80
/// bits that are random per process and count up within it), so ids sort by
/// time and never repeat, across processes and machines.
///
/// Written as the 26 characters of Crockford's base 32, as ULIDs are.
///
/// ```
/// let a = events::EventId::new();
/// let b = events::EventId::new();
/// assert!(a < b);
/// let text = a.to_string();
/// assert_eq!(text.len(), 26);
/// assert_eq!(text.parse::<events::EventId>().unwrap(), a);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(u128);

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl EventId {
    /// A new id, for now.
    pub fn new() -> EventId {
        EventId::at(SystemTime::now())
    }

    /// A new id whose time part is `at`.
    pub fn at(at: SystemTime) -> EventId {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let millis = millis_since_epoch(at) & ((1 << 48) - 1);
        // 80 bits: 48 drawn once per process, then a counter, so ids of one
        // process and one millisecond still sort in the order they were made.
        let random = u128::from(process_random() & ((1 << 48) - 1));
        let n = u128::from(NEXT.fetch_add(1, Ordering::Relaxed) as u32);
        EventId((u128::from(millis) << 80) | (random << 32) | n)
    }

    /// The id whose 128 bits are `bits`.
    pub const fn from_u128(bits: u128) -> EventId {
        EventId(bits)
    }

    /// The id's 128 bits.
    pub const fn as_u128(&self) -> u128 {
        self.0
    }

    /// When the id was made, to the millisecond.
    pub fn timestamp(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis((self.0 >> 80) as u64)
    }
}

impl Default for EventId {
    fn default() -> Self {
        EventId::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; 26];
        for (i, c) in out.iter_mut().enumerate() {
            let shift = 125 - 5 * i as u32;
            *c = CROCKFORD[((self.0 >> shift) & 31) as usize];
        }
        // Every byte is ASCII from the alphabet.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

/// Why a text is not an [`EventId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not an event id: expected 26 characters of Crockford base 32 (a ULID)")]
pub struct ParseEventIdError {
    text: String,
}

impl FromStr for EventId {
    type Err = ParseEventIdError;

    fn from_str(text: &str) -> Result<EventId, ParseEventIdError> {
        let bad = || ParseEventIdError {
            text: text.to_owned(),
        };
        if text.len() != 26 {
            return Err(bad());
        }
        let mut bits: u128 = 0;
        for (i, byte) in text.bytes().enumerate() {
            let value = match byte.to_ascii_uppercase() {
                b'O' => 0,
                b'I' | b'L' => 1,
                b => CROCKFORD.iter().position(|&c| c == b).ok_or_else(bad)? as u128,
            };
            // The first character carries 3 bits only.
            if i == 0 && value > 7 {
                return Err(bad());
            }
            bits = (bits << 5) | value;
        }
        Ok(EventId(bits))
    }
}

impl serde::Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for EventId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<EventId, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn process_random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static PROCESS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PROCESS.get_or_init(|| {
        // `RandomState` is seeded from the OS's randomness.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.finish()
    })
}

fn millis_since_epoch(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// An event's string metadata, by key, in key order. Empty costs nothing
/// to make, clone or drop.
///
/// ```
/// let mut metadata = events::Metadata::new();
/// metadata.insert("actor_id", "42");
/// assert_eq!(metadata.get("actor_id"), Some("42"));
/// assert_eq!(metadata.get("tenant"), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata(
    /// Sorted by key, keys unique: a few keys are found faster by binary
    /// search in one array than in a tree, and no metadata is no
    /// allocation.
    Vec<(String, String)>,
);

impl Metadata {
    /// No metadata.
    pub const fn new() -> Metadata {
        Metadata(Vec::new())
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.find(key).ok().map(|i| self.0[i].1.as_str())
    }

    /// Sets `key` to `value`, returning the value it replaces.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> Option<String> {
        let key = key.into();
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value.into())),
            Err(i) => {
                self.0.insert(i, (key, value.into()));
                None
            }
        }
    }

    /// Sets `key` only when it has no value yet: what a dispatcher-wide
    /// provider uses, so a value given at the dispatch wins.
    pub fn insert_default(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        if let Err(i) = self.find(&key) {
            self.0.insert(i, (key, value.into()));
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.find(key).ok().map(|i| self.0.remove(i).1)
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Keys and values, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The metadata as a JSON object, as queues store it.
    pub fn to_json(&self) -> String {
        // A map of strings always serializes.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Reads metadata stored by [`to_json`](Self::to_json).
    pub fn from_json(json: &str) -> Result<Metadata, serde_json::Error> {
        serde_json::from_str(json)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Metadata {
    /// Collects pairs; of two values of one key, the last wins.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut metadata = Metadata::new();
        for (key, value) in iter {
            metadata.insert(key, value);
        }
        metadata
    }
}

impl serde::Serialize for Metadata {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> serde::Deserialize<'de> for Metadata {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Metadata, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(deserializer)?;
        Ok(Metadata(map.into_iter().collect()))
    }
}

/// What every dispatch carries besides the event: its id, when it occurred,
/// and its metadata.
///
/// ```
/// let envelope = events::Envelope::new().with("tenant", "acme");
/// assert_eq!(envelope.metadata.get("tenant"), Some("acme"));
/// assert_eq!(envelope.occurred_at, envelope.id.timestamp());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Envelope {
    /// The event's id, unique and time-ordered.
    pub id: EventId,
    /// When the event was dispatched, to the millisecond (what queues
    /// store, so it reads back equal).
    #[serde(with = "epoch_millis")]
    pub occurred_at: SystemTime,
    /// Its string metadata.
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

impl Envelope {
    /// An envelope for an event occurring now, with no metadata.
    pub fn new() -> Envelope {
        let id = EventId::new();
        Envelope {
            id,
            occurred_at: id.timestamp(),
            metadata: Metadata::new(),
        }
    }

    /// An envelope from its parts, as a queue reads it back.
    pub fn from_parts(id: EventId, occurred_at: SystemTime, metadata: Metadata) -> Envelope {
        Envelope {
            id,
            occurred_at,
            metadata,
        }
    }

    /// The envelope with `key` set to `value`.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Envelope {
        self.metadata.insert(key, value);
        self
    }
}

impl Default for Envelope {
    fn default() -> Self {
        Envelope::new()
    }
}

/// `SystemTime` as integer milliseconds since the epoch.
pub(crate) mod epoch_millis {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    pub fn serialize<S: serde::Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(super::millis_since_epoch(*at))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let millis = <u64 as serde::Deserialize>::deserialize(d)?;
        Ok(UNIX_EPOCH + Duration::from_millis(millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_then_by_order_made() {
        let earlier = EventId::at(UNIX_EPOCH + Duration::from_millis(1_000));
        let later = EventId::at(UNIX_EPOCH + Duration::from_millis(1_001));
        assert!(earlier < later);
        let ids: Vec<EventId> = (0..1000).map(|_| EventId::new()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn ids_round_trip_through_text_and_json() {
        let id = EventId::new();
        assert_eq!(id.to_string().parse::<EventId>(), Ok(id));
        assert_eq!(id.to_string().to_lowercase().parse::<EventId>(), Ok(id));
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<EventId>(&json).unwrap(), id);
        assert_eq!(
            EventId::from_u128(u128::MAX).to_string(),
            "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
        );
        assert_eq!(
            EventId::from_u128(0).to_string(),
            "00000000000000000000000000"
        );
    }

    #[test]
    fn bad_ids_are_refused_in_words() {
        for text in [
            "",
            "short",
            "8ZZZZZZZZZZZZZZZZZZZZZZZZZ",
            "0000000000000000000000000U",
        ] {
            let error = text.parse::<EventId>().unwrap_err();
            assert!(error.to_string().contains("is not an event id"), "{error}");
        }
    }

    #[test]
    fn metadata_keeps_keys_sorted_and_unique() {
        let mut metadata: Metadata = [("b", "2"), ("a", "1"), ("b", "3")].into_iter().collect();
        assert_eq!(
            metadata.iter().collect::<Vec<_>>(),
            [("a", "1"), ("b", "3")]
        );
        assert_eq!(metadata.insert("a", "x"), Some("1".to_owned()));
        metadata.insert_default("a", "ignored");
        metadata.insert_default("c", "4");
        assert_eq!(metadata.to_json(), r#"{"a":"x","b":"3","c":"4"}"#);
        assert_eq!(metadata.remove("b"), Some("3".to_owned()));
        assert_eq!((metadata.get("b"), metadata.len()), (None, 2));
        assert_eq!(
            Metadata::from_json(r#"{"z":"1","y":"2"}"#)
                .unwrap()
                .iter()
                .next(),
            Some(("y", "2"))
        );
    }

    #[test]
    fn envelopes_round_trip_through_json() {
        let envelope = Envelope::new().with(keys::ACTOR_ID, "42");
        let json = serde_json::to_string(&envelope).unwrap();
        assert_eq!(serde_json::from_str::<Envelope>(&json).unwrap(), envelope);
        let metadata = Metadata::from_json(&envelope.metadata.to_json()).unwrap();
        assert_eq!(metadata, envelope.metadata);
    }
}
