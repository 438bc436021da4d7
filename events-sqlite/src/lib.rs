//! `sqlite://path`: the embedded durable queue of the `events` framework,
//! through rusqlite. The `events` facade compiles it in with its `sqlite`
//! feature (on by default) and re-exports [`SqliteBackend`] as
//! `events::queue::SqliteBackend`.
//!
//! Linking this crate registers the `sqlite` scheme, so
//! `events::queue::connect("sqlite://path")`, `EVENTS_QUEUE_URL` and the
//! CLI's `--queue-url` open its files.
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
mod thread;

use events_core::queue::{Queue, QueueError};

pub use backend::{SqliteBackend, SqliteOptions, Synchronous};
pub use browse::SEARCHED_ROWS;
pub use error::SqliteError;
pub use schema::{SCHEMA_VERSION, UNREADABLE};

/// The name under which this backend's errors travel in
/// [`QueueError::Backend`]: its URL scheme.
pub const BACKEND: &str = "sqlite";

/// Opens `sqlite://path` (`sqlite:///abs/path` for an absolute path),
/// optionally with `?synchronous=full|normal|off`: what the `sqlite` scheme
/// registers.
fn open_url(url: &str) -> Result<Queue, QueueError> {
    let bad = |reason: String| QueueError::BadUrl {
        url: url.to_owned(),
        reason,
    };
    let rest = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .ok_or_else(|| bad(EXPECTED.to_owned()))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(bad(EXPECTED.to_owned()));
    }
    let mut options = SqliteOptions::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        match pair.split_once('=') {
            Some(("synchronous", value)) => {
                options = options.synchronous(value.parse().map_err(bad)?);
            }
            _ => {
                return Err(bad(format!(
                    "unknown option `{pair}`: the one option is `synchronous=full|normal|off`"
                )));
            }
        }
    }
    let backend = SqliteBackend::open_with(std::path::Path::new(path), &options)?;
    Ok(Queue::with_backend(url, backend))
}

const EXPECTED: &str = "expected `sqlite://path`, or `sqlite:///path` for an absolute one";

events_core::queue_scheme!("sqlite", open_url);

/// Makes sure this crate is linked into a binary that never names it: the
/// `events` facade calls it from the functions every queue user goes
/// through, so the `sqlite` scheme above is registered.
#[doc(hidden)]
#[inline(never)]
pub fn link() {
    std::hint::black_box(open_url as fn(&str) -> Result<Queue, QueueError>);
}
