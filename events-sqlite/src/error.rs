//! What can go wrong in the SQLite queue. It reaches callers inside
//! [`QueueError::Backend`] (or [`QueueError::Unrecoverable`] when trying
//! again cannot help), as its `source()`, and follows the rule of
//! `events_core::error`: `Display` says what failed here, `source()` is
//! what SQLite said; `events_core::error::Chain` prints both.

use events_core::queue::QueueError;
use rusqlite::ErrorCode;

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
    /// The thread that would run this queue's SQLite connection could not
    /// be started.
    #[error("could not start a thread to run SQLite on `{path}`")]
    Thread {
        /// The database file.
        path: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The thread that runs this queue's SQLite connection is gone (it
    /// panicked: a bug); the queue must be opened again.
    #[error("the thread running SQLite on `{path}` stopped; open the queue again")]
    Stopped {
        /// The database file.
        path: String,
    },
}

impl SqliteError {
    /// Whether trying again cannot help: the file is read-only, corrupt,
    /// not a database, or cannot be opened or written for want of
    /// permission. A busy database, a full disk (space can be freed) or a
    /// passing I/O error can heal.
    pub fn is_permanent(&self) -> bool {
        match self {
            SqliteError::Sqlite { source, .. } => permanent(source),
            SqliteError::NoWal { .. }
            | SqliteError::SchemaTooNew { .. }
            | SqliteError::Stopped { .. } => true,
            SqliteError::Thread { .. } => false,
        }
    }
}

/// Whether SQLite's error is one that trying again cannot mend.
pub(crate) fn permanent(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(
            ErrorCode::ReadOnly
                | ErrorCode::DatabaseCorrupt
                | ErrorCode::NotADatabase
                | ErrorCode::CannotOpen
                | ErrorCode::PermissionDenied
                | ErrorCode::AuthorizationForStatementDenied
        )
    )
}

impl From<SqliteError> for QueueError {
    fn from(error: SqliteError) -> QueueError {
        if error.is_permanent() {
            QueueError::unrecoverable(crate::BACKEND, error)
        } else {
            QueueError::backend(crate::BACKEND, error)
        }
    }
}
