//! What can go wrong in the SQLite queue. It reaches callers inside
//! [`QueueError::Backend`], as its `source()`, and follows the rule of
//! `events_core::error`: `Display` says what failed here, `source()` is
//! what SQLite said; `events_core::error::Chain` prints both.

use events_core::queue::QueueError;

/// Why the SQLite queue failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteError {
    /// SQLite said no; `source()` is what it said.
    #[error("SQLite failed on `{path}`")]
    Sqlite {
        /// The database file.
        path: String,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The database could not be put in WAL mode.
    #[error(
        "`{path}`: journal mode is `{mode}` after asking for WAL; is the file on a filesystem that supports it?"
    )]
    NoWal {
        /// The database file.
        path: String,
        /// The mode SQLite reported.
        mode: String,
    },
    /// The database was written by a newer version of this library.
    #[error("`{path}` has schema version {found}, newer than the {supported} this build knows")]
    SchemaTooNew {
        /// The database file.
        path: String,
        /// Its version.
        found: i64,
        /// The newest this build migrates to.
        supported: i64,
    },
}

impl From<SqliteError> for QueueError {
    fn from(error: SqliteError) -> QueueError {
        QueueError::backend(crate::BACKEND, error)
    }
}
