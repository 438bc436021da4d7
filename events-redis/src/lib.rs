//! `redis://host:port/db`: the Redis queue of the `events` framework, for
//! workers on many machines. The `events` facade compiles it in with its
//! `redis` feature and re-exports [`RedisBackend`] as
//! `events::queue::RedisBackend`.
//!
//! Linking this crate registers the `redis` and `rediss` (TLS) schemes, so
//! `events::queue::connect("redis://127.0.0.1:6379/0")`, `EVENTS_QUEUE_URL`
//! and the CLI's `--queue-url` open it. `?prefix=app` keeps applications
//! apart on one Redis (default `events`).
//!
//! Each change of a job's state is one Lua script, fenced by the attempt
//! number and timed by the server's clock; see [`RedisBackend`] for the
//! layout and the guarantees.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), events_core::queue::QueueError> {
//! let queue = events_redis::RedisBackend::queue("redis://127.0.0.1:6379/0?prefix=shop")?;
//! println!("{} jobs wait on `mail`", queue.size("mail").await?);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod backend;
mod codec;
mod error;
mod keys;
mod scripts;
mod server;

use events_core::queue::{Queue, QueueError};

pub use backend::{RedisBackend, RedisOptions};
pub use error::RedisQueueError;
pub use server::Finding;

/// The name under which this backend's errors travel in
/// [`QueueError::Backend`]: its URL scheme.
pub const BACKEND: &str = "redis";

/// The key prefix when the URL names none.
pub const DEFAULT_PREFIX: &str = "events";

impl RedisBackend {
    /// A [`Queue`] over the Redis at `url` (see [`RedisBackend::open`]).
    pub fn queue(url: &str) -> Result<Queue, QueueError> {
        Ok(Queue::with_backend(url, RedisBackend::open(url)?))
    }

    /// The backend for `url`: `redis://[user:password@]host[:port][/db]`,
    /// `rediss://` for TLS, with `?prefix=name` to choose the key prefix
    /// (letters, digits, `-`, `_`, `.`; default `events`). Makes no
    /// connection yet.
    pub fn open(url: &str) -> Result<RedisBackend, QueueError> {
        let (server_url, options) = parse(url)?;
        RedisBackend::open_with(&server_url, options)
    }
}

/// Splits our options (`prefix`) off the URL; the rest is redis-rs's.
fn parse(url: &str) -> Result<(String, RedisOptions), QueueError> {
    let bad = |reason: String| QueueError::BadUrl {
        url: redact(url),
        reason,
    };
    // A fragment (`#insecure`, redis-rs's way to skip verifying a TLS
    // certificate) comes after the query and belongs to redis-rs.
    let (url_only, fragment) = match url.split_once('#') {
        Some((before, after)) => (before, Some(after)),
        None => (url, None),
    };
    let (base, query) = url_only.split_once('?').unwrap_or((url_only, ""));
    let mut options = RedisOptions::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        match pair.split_once('=') {
            Some(("prefix", value)) => options = options.prefix(value).map_err(bad)?,
            _ => {
                return Err(bad(format!(
                    "unknown option `{pair}`: the one option is `prefix=name`"
                )));
            }
        }
    }
    let base = match fragment {
        Some(fragment) => format!("{base}#{fragment}"),
        None => base.to_owned(),
    };
    Ok((base, options))
}

/// `url` without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

fn open_url(url: &str) -> Result<Queue, QueueError> {
    RedisBackend::queue(url)
}

events_core::queue_scheme!("redis", open_url);
events_core::queue_scheme!("rediss", open_url);

/// Makes sure this crate is linked into a binary that never names it: the
/// `events` facade calls it from the functions every queue user goes
/// through, so the `redis` schemes above are registered.
#[doc(hidden)]
#[inline(never)]
pub fn link() {
    std::hint::black_box(open_url as fn(&str) -> Result<Queue, QueueError>);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_say_what_is_wrong_and_hide_the_password() {
        let error = RedisBackend::open("redis://u:secret@localhost/0?prefx=a").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("unknown option `prefx=a`"), "{text}");
        assert!(!text.contains("secret"), "{text}");
        let error = RedisBackend::open("redis://localhost/0?prefix=a:b").unwrap_err();
        assert!(error.to_string().contains("holds `:`"), "{error}");
        let backend = RedisBackend::open("redis://localhost:6380/3?prefix=shop").unwrap();
        assert_eq!(
            (backend.prefix(), backend.server()),
            ("shop", "localhost:6380/3")
        );
        assert_eq!(
            RedisBackend::open("redis://localhost").unwrap().prefix(),
            "events"
        );
        // The fragment after the query is redis-rs's, not part of the prefix.
        let (server, options) = parse("rediss://localhost:6380/0?prefix=tls#insecure").unwrap();
        assert_eq!(
            (server.as_str(), options.prefix.as_str()),
            ("rediss://localhost:6380/0#insecure", "tls")
        );
    }
}
