//! Attribute key names, in one place.

pub const QUEUE: &str = "queue";
pub const TRIES: &str = "tries";
pub const BACKOFF: &str = "backoff";
pub const DELAY: &str = "delay";
pub const TIMEOUT: &str = "timeout";
pub const PRIORITY: &str = "priority";
pub const NAME: &str = "name";
pub const PATTERN: &str = "pattern";
pub const WHEN: &str = "when";
pub const ON_FAILURE: &str = "on_failure";
pub const CRATE: &str = "crate";
pub const AFTER_COMMIT: &str = "after_commit";
pub const STORE: &str = "store";
pub const ENTITY: &str = "entity";
pub const VERSION: &str = "version";
pub const BROADCAST: &str = "broadcast";
pub const BROADCAST_AS: &str = "broadcast_as";
pub const BROADCAST_ON: &str = "broadcast_on";
pub const BROADCAST_WHEN: &str = "broadcast_when";
pub const BROADCAST_WITH: &str = "broadcast_with";
pub const BROADCAST_NOW: &str = "broadcast_now";
pub const BROADCAST_QUEUE: &str = "broadcast_queue";

/// Keys of `#[listener(..)]`.
pub const LISTENER_KEYS: &[&str] = &[
    QUEUE,
    TRIES,
    BACKOFF,
    DELAY,
    TIMEOUT,
    ON_FAILURE,
    PRIORITY,
    NAME,
    PATTERN,
    WHEN,
    AFTER_COMMIT,
    CRATE,
];
/// Keys of `#[listen(..)]` (the subscriber carries `crate`).
pub const LISTEN_KEYS: &[&str] = &[
    QUEUE,
    TRIES,
    BACKOFF,
    DELAY,
    TIMEOUT,
    ON_FAILURE,
    PRIORITY,
    NAME,
    PATTERN,
    WHEN,
    AFTER_COMMIT,
];
/// Keys of `#[event(..)]`.
pub const EVENT_KEYS: &[&str] = &[
    NAME,
    STORE,
    ENTITY,
    VERSION,
    BROADCAST,
    BROADCAST_AS,
    BROADCAST_ON,
    BROADCAST_WHEN,
    BROADCAST_WITH,
    BROADCAST_NOW,
    BROADCAST_QUEUE,
    CRATE,
];
/// Keys of `#[subscriber(..)]`: defaults for its `#[listen]` methods, and
/// the crate path.
pub const SUBSCRIBER_KEYS: &[&str] = &[QUEUE, TRIES, BACKOFF, DELAY, TIMEOUT, CRATE];
