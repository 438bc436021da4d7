//! `sqlite://path`: the embedded durable queue of the `events` framework,
//! and its event log, through rusqlite. The `events` facade compiles it in
//! with its `sqlite` feature (on by default) and re-exports
//! [`SqliteBackend`] as `events::queue::SqliteBackend` and [`SqliteStore`]
//! as `events::store::SqliteStore`.
//!
//! Linking this crate registers the `sqlite` scheme of queues and of event
//! stores, so `events::queue::connect("sqlite://path")`,
//! `EVENTS_QUEUE_URL`, the CLI's `--queue-url`, `Store::open("sqlite://path")`
//! and `EVENTS_STORE_URL` open its files. A queue and a store may share one
//! file ([`SqliteStore::on_queue`]): an append and its dispatch's jobs are
//! then one transaction.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let queue = events_sqlite::SqliteBackend::queue(dir.path().join("queue.sqlite"))?;
//! assert_eq!(queue.size("default").await?, 0);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod activity;
mod backend;
mod browse;
mod error;
mod schema;
mod store;
mod thread;

use events_core::queue::{Queue, QueueError};

pub use backend::{SqliteBackend, SqliteOptions, Synchronous};
pub use browse::SEARCHED_ROWS;
pub use error::SqliteError;
pub use schema::{SCHEMA_VERSION, UNREADABLE};
pub use store::SqliteStore;

/// The name under which this backend's errors travel in
/// [`QueueError::Backend`]: its URL scheme.
pub const BACKEND: &str = "sqlite";

/// Reads `sqlite://path` (`sqlite:///abs/path` for an absolute path),
/// optionally with `?synchronous=full|normal|off`: the file and the
/// options, or what is wrong, in words.
pub(crate) fn parse_url(url: &str) -> Result<(&str, SqliteOptions), String> {
    let rest = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .ok_or_else(|| EXPECTED.to_owned())?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(EXPECTED.to_owned());
    }
    let mut options = SqliteOptions::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        match pair.split_once('=') {
            Some(("synchronous", value)) => {
                options = options.synchronous(value.parse()?);
            }
            _ => {
                return Err(format!(
                    "unknown option `{pair}`: the one option is `synchronous=full|normal|off`"
                ));
            }
        }
    }
    Ok((path, options))
}

/// Opens `sqlite://path` as a queue: what the `sqlite` queue scheme
/// registers.
fn open_url(url: &str) -> Result<Queue, QueueError> {
    let (path, options) = parse_url(url).map_err(|reason| QueueError::BadUrl {
        url: url.to_owned(),
        reason,
    })?;
    let backend = SqliteBackend::open_with(std::path::Path::new(path), &options)?;
    Ok(Queue::with_backend(url, backend))
}

const EXPECTED: &str = "expected `sqlite://path`, or `sqlite:///path` for an absolute one";

events_core::queue_scheme!("sqlite", open_url);
events_core::store_scheme!("sqlite", store::open_url);

/// Makes sure this crate is linked into a binary that never names it: the
/// `events` facade calls it from the functions every queue user goes
/// through, so the `sqlite` scheme above is registered.
#[doc(hidden)]
#[inline(never)]
pub fn link() {
    std::hint::black_box(open_url as fn(&str) -> Result<Queue, QueueError>);
    std::hint::black_box(
        store::open_url
            as fn(&str) -> Result<events_core::store::Store, events_core::store::StoreError>,
    );
}
