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

mod backend;
mod error;
mod schema;

use events_core::queue::{Queue, QueueError};

pub use backend::SqliteBackend;
pub use error::SqliteError;
pub use schema::{SCHEMA_VERSION, UNREADABLE};

/// The name under which this backend's errors travel in
/// [`QueueError::Backend`]: its URL scheme.
pub const BACKEND: &str = "sqlite";

/// Opens `sqlite://path` (`sqlite:///abs/path` for an absolute path): what
/// the `sqlite` scheme registers.
fn open_url(url: &str) -> Result<Queue, QueueError> {
    let path = url
        .split_once("://")
        .map(|(_, path)| path)
        .filter(|path| !path.is_empty())
        .ok_or_else(|| QueueError::BadUrl {
            url: url.to_owned(),
            reason: "expected `sqlite://path`, or `sqlite:///path` for an absolute one".to_owned(),
        })?;
    SqliteBackend::queue(path)
}

events_core::queue_scheme!("sqlite", open_url);

/// Makes sure this crate is linked into a binary that never names it: the
/// `events` facade calls it from the functions every queue user goes
/// through, so the `sqlite` scheme above is registered.
#[doc(hidden)]
#[inline(never)]
pub fn link() {
    std::hint::black_box(open_url as fn(&str) -> Result<Queue, QueueError>);
}
