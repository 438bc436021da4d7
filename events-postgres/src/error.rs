//! What can go wrong talking to PostgreSQL, in words. Every one travels
//! as [`StoreError::Backend`] with the store name `postgres`; print it
//! with `events_core::error::Chain` to see the driver's own words too.

use std::time::Duration;

use events_core::store::StoreError;

/// Why the PostgreSQL event store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// No connection could be made (refused, unknown host, bad password,
    /// no such database, or the connect timeout passed); `source()` is the
    /// driver's reason.
    #[error(
        "cannot connect to PostgreSQL at {target}: is the server running and does the URL name the right host, port, user and database?"
    )]
    Connect {
        /// `host:port/database as user`.
        target: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// An operation did not finish in time: the server is down,
    /// unreachable or overloaded. The connection it used was dropped, so
    /// the server rolls back whatever it had begun.
    #[error(
        "PostgreSQL at {target} did not finish {operation} within {after:?}: the server is down, unreachable or overloaded (the connection was dropped, so nothing half-done stays)"
    )]
    Timeout {
        /// `host:port/database as user`.
        target: String,
        /// What was being done, in words.
        operation: &'static str,
        /// The operation timeout.
        after: Duration,
    },
    /// The connection broke while an operation was running; the next
    /// operation connects again.
    #[error(
        "the connection to PostgreSQL at {target} was lost while {operation}; the next operation connects again"
    )]
    Lost {
        /// `host:port/database as user`.
        target: String,
        /// What was being done, in words.
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The server answered with an error.
    #[error("PostgreSQL at {target} refused {operation}")]
    Query {
        /// `host:port/database as user`.
        target: String,
        /// What was being done, in words.
        operation: &'static str,
        /// The driver's error (its source is the server's message).
        #[source]
        source: tokio_postgres::Error,
    },
    /// The tables were made by a newer build of this crate.
    #[error(
        "the event store's tables in {target} are at schema version {found}, newer than the {known} this build of events-postgres knows: upgrade it"
    )]
    NewerSchema {
        /// `host:port/database as user`.
        target: String,
        /// The version found.
        found: i32,
        /// The version this build writes.
        known: i32,
    },
}

impl From<PostgresError> for StoreError {
    fn from(error: PostgresError) -> StoreError {
        StoreError::backend(crate::STORE, error)
    }
}
