//! `postgres://user@host:port/db`: the PostgreSQL event store of the
//! `events` framework, for an event log that many machines append to and
//! read. The `events` facade compiles it in with its `postgres` feature.
//!
//! Linking this crate registers the `postgres` and `postgresql` store
//! schemes, so `Store::open("postgres://..")` and `EVENTS_STORE_URL` open
//! it. Opening connects to nothing: the first operation connects (a pool
//! of [`PostgresOptions::pool_size`] connections, made as needed) and
//! makes the tables when they are missing (see [the layout](crate#layout)).
//!
//! ```no_run
//! use events_core::store::{EventQuery, NewEvent};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), events_core::store::StoreError> {
//! let store = events_postgres::PostgresStore::store("postgres://postgres@127.0.0.1:5432/app")?;
//! store.append(vec![NewEvent::new("order.placed", r#"{"order_id":7}"#)]).await?;
//! let page = store.events(&EventQuery::new().name("order.*")).await?;
//! println!("{} orders placed", page.events.len());
//! # Ok(()) }
//! ```
//!
//! # URLs
//!
//! Anything `tokio-postgres` reads (`postgres://user:password@host:port/db`,
//! `?connect_timeout=5`, `?application_name=..`, `?options=-csearch_path%3Dlog`
//! to keep the tables in a schema of their own), plus two keys of this
//! store: `pool_size=N` (connections, default 4) and `timeout=30s` (how
//! long one operation may take, default 30 s; past it the operation fails
//! in words and its connection is dropped, so a dead or unreachable server
//! is an error, never a hang).
//!
//! TLS: this store connects without it. `sslmode=prefer` (the driver's
//! default) and `sslmode=disable` connect in plain text; `sslmode=require`
//! is refused when the store is opened, in words, rather than connecting
//! unencrypted. Reach a server that needs TLS through a local TLS proxy
//! (pgbouncer, stunnel) for now.
//!
//! # Positions follow commit order
//!
//! A sequence alone hands out positions in the order appends *start*: a
//! later position can commit first, and a reader that saw it would never
//! see the earlier one. Here every append locks the one row of
//! `events_log_head` (the last position given out) inside its transaction
//! and updates it there, so appends commit one after another in position
//! order, and a reader at position `p` never later finds an event below
//! `p`. The same lock makes [`append_expecting`] exact: of concurrent
//! appenders expecting one version, one wins, the others get
//! [`StoreError::Conflict`]; a unique index on (entity type, entity id,
//! entity version) backs it up. An append costs two round trips
//! (statements pipelined) and a commit.
//!
//! [`append_expecting`]: events_core::store::EventStore::append_expecting
//! [`StoreError::Conflict`]: events_core::store::StoreError::Conflict
//!
//! # Layout
//!
//! Payloads are kept as TEXT, byte for byte as appended (JSONB would
//! reorder keys and respace them, and webhook signatures are made over
//! the payload's bytes); cast `payload::jsonb` to query inside them.
//! Metadata and the related entities are JSONB. Times are milliseconds
//! since the Unix epoch (BIGINT), as the store's contract keeps them.
//! The tables, all prefixed `events_log`:
//!
//! | table | what it holds |
//! | --- | --- |
//! | `events_log` | one row per event, indexed by id, name, actor, occurred-at, (entity, position) for timelines and (entity, version) for streams |
//! | `events_log_related` | (related entity, position): the timeline's index of related events |
//! | `events_log_streams` | the version of each entity's stream |
//! | `events_log_head` | the last position given out |
//! | `events_log_checkpoints` | a position per projector |
//! | `events_log_subscriptions`, `events_log_deliveries` | webhook subscriptions and the delivery log |
//! | `events_log_schema` | the layout's version (1) |

#![warn(missing_docs)]

mod error;
mod pool;
mod schema;
mod store;

use std::str::FromStr;
use std::time::Duration;

use events_core::store::{Store, StoreError};
use tokio_postgres::config::{Host, SslMode};

pub use error::PostgresError;

/// The name under which this store's errors travel in
/// [`StoreError::Backend`]: its URL scheme.
pub const STORE: &str = "postgres";

/// How the store uses its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// At most this many connections at once (default 4; at least 1).
    pub pool_size: usize,
    /// How long one operation may take, waiting for a connection and
    /// connecting included (default 30 s).
    pub timeout: Duration,
    /// How long connecting may take, unless the URL sets
    /// `connect_timeout` (default 5 s).
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> PostgresOptions {
        PostgresOptions {
            pool_size: 4,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl PostgresOptions {
    /// The defaults.
    pub fn new() -> PostgresOptions {
        PostgresOptions::default()
    }

    /// Sets the pool size.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// Sets the operation timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

/// The event log in PostgreSQL. See [the crate's documentation](crate)
/// for URLs, the ordering guarantee and the tables.
pub struct PostgresStore {
    pool: pool::Pool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.pool.target())
            .finish()
    }
}

impl PostgresStore {
    /// The store at `url` (see [URLs](crate#urls)), with the options the
    /// URL gives over the defaults. Connects to nothing yet.
    pub fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let (config, options) = parse(url, PostgresOptions::default())?;
        Ok(PostgresStore::with_config(config, options))
    }

    /// As [`open`](Self::open), starting from `options` (keys in the URL
    /// override them).
    pub fn open_with(url: &str, options: PostgresOptions) -> Result<PostgresStore, StoreError> {
        let (config, options) = parse(url, options)?;
        Ok(PostgresStore::with_config(config, options))
    }

    /// A [`Store`] handle over the store at `url`.
    pub fn store(url: &str) -> Result<Store, StoreError> {
        Ok(Store::with_store(url, PostgresStore::open(url)?))
    }

    fn with_config(config: tokio_postgres::Config, options: PostgresOptions) -> PostgresStore {
        let target = describe(&config);
        PostgresStore {
            pool: pool::Pool::new(config, target, options.pool_size, options.timeout),
        }
    }

    /// Where it connects, in words: `host:port/database as user`.
    pub fn target(&self) -> &str {
        self.pool.target()
    }
}

/// Splits the store's own keys off the URL and reads the rest as
/// `tokio-postgres` does.
fn parse(
    url: &str,
    mut options: PostgresOptions,
) -> Result<(tokio_postgres::Config, PostgresOptions), StoreError> {
    let bad = |reason: String| StoreError::BadUrl {
        url: redact(url),
        reason,
    };
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, query),
        None => (url, ""),
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "pool_size" => {
                options.pool_size = match value.parse::<usize>() {
                    Ok(n) if n >= 1 => n,
                    _ => {
                        return Err(bad(format!(
                            "`pool_size={value}` is not a number of connections of at least 1"
                        )));
                    }
                }
            }
            "timeout" => {
                options.timeout = humantime_duration(value).ok_or_else(|| {
                    bad(format!(
                        "`timeout={value}` is not a duration such as `30s` or `500ms`"
                    ))
                })?;
            }
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config = tokio_postgres::Config::from_str(&rest).map_err(|e| {
        bad(format!(
            "{e}; write it as `postgres://user:password@host:port/database`"
        ))
    })?;
    if config.get_hosts().is_empty() {
        return Err(bad(
            "it names no host; write it as `postgres://user@host:port/database`".into(),
        ));
    }
    if config.get_ssl_mode() == SslMode::Require {
        return Err(bad(
            "`sslmode=require` asks for TLS, which this build of events-postgres does not speak: \
             use `sslmode=disable` or `prefer` (plain text) on a trusted network, or reach the \
             server through a local TLS proxy"
                .into(),
        ));
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(options.connect_timeout);
    }
    Ok((config, options))
}

fn humantime_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" | "min" => Some(Duration::from_secs(n * 60)),
        _ => None,
    }
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "?".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("(the login user)");
    let db = config.get_dbname().unwrap_or(user);
    format!("{host}:{port}/{db} as {user}")
}

fn open_url(url: &str) -> Result<Store, StoreError> {
    PostgresStore::store(url)
}

events_core::store_scheme!("postgres", open_url);
events_core::store_scheme!("postgresql", open_url);

/// Makes sure a binary references this crate by symbol, so the linker
/// keeps the scheme registrations above (the facade calls it).
#[doc(hidden)]
#[inline(never)]
pub fn link() {
    std::hint::black_box(open_url as fn(&str) -> Result<Store, StoreError>);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_keys_are_read_and_the_rest_passed_on() {
        let (config, options) = parse(
            "postgres://ada:secret@db.internal:6543/app?pool_size=9&timeout=250ms&application_name=x",
            PostgresOptions::default(),
        )
        .unwrap();
        assert_eq!(options.pool_size, 9);
        assert_eq!(options.timeout, Duration::from_millis(250));
        assert_eq!(config.get_application_name(), Some("x"));
        assert_eq!(describe(&config), "db.internal:6543/app as ada");
    }

    #[test]
    fn bad_urls_say_what_is_wrong_without_the_password() {
        let error = parse(
            "postgres://ada:secret@h/db?pool_size=0",
            PostgresOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("pool_size=0") && !error.contains("secret"),
            "{error}"
        );
        let error = parse("postgres://h/db?timeout=soon", PostgresOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`timeout=soon` is not a duration"),
            "{error}"
        );
        let error = parse(
            "postgres://h/db?sslmode=require",
            PostgresOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("does not speak"), "{error}");
        let error = parse("postgres://h:notaport/db", PostgresOptions::default())
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("bad store URL"), "{error}");
    }
}
