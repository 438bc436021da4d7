//! The Redis backend's errors, carried in
//! [`QueueError::Backend`](events_core::queue::QueueError::Backend) or
//! [`QueueError::Unrecoverable`](events_core::queue::QueueError::Unrecoverable).

use std::time::Duration;

use events_core::queue::QueueError;
use redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::BACKEND;

/// What went wrong talking to Redis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisQueueError {
    /// Redis could not be reached (or kept answering that it is loading)
    /// for as long as an operation keeps trying.
    #[error("cannot reach Redis at {server}: gave up after {:.1} s", waited.as_secs_f64())]
    Unreachable {
        /// `host:port/db`.
        server: String,
        /// How long the operation kept trying.
        waited: Duration,
        /// The last error, when there was one.
        #[source]
        source: Option<RedisError>,
    },
    /// Redis answered with an error.
    #[error("Redis at {server} refused the operation")]
    Server {
        /// `host:port/db`.
        server: String,
        /// What it said.
        #[source]
        source: RedisError,
    },
    /// The round trip this operation shared with others failed; the first
    /// of them got the error itself.
    #[error("the round trip this operation shared with others failed: {0}")]
    Batch(String),
    /// The round trip carrying this operation was cancelled before Redis
    /// answered (its task ended): whether it took effect is unknown.
    #[error(
        "the round trip to Redis at {server} carrying this operation ended before Redis answered"
    )]
    Dropped {
        /// `host:port/db`.
        server: String,
    },
}

/// Errors worth trying again: the connection, a timeout, or a server
/// loading its data or failing over.
pub(crate) fn is_transient(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || matches!(
            error.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ClusterDown
            )
        )
}

/// A [`QueueError`] for `error`: [`QueueError::Unrecoverable`] for what no
/// retry mends (a refused password, a missing permission, keys of another
/// type under this prefix), [`QueueError::Backend`] for the rest.
pub(crate) fn classify(server: &str, error: RedisError) -> QueueError {
    let permanent = matches!(
        error.kind(),
        ErrorKind::AuthenticationFailed
            | ErrorKind::InvalidClientConfig
            | ErrorKind::Server(ServerErrorKind::NoPerm)
    ) || matches!(error.code(), Some("WRONGTYPE" | "NOAUTH" | "WRONGPASS"));
    let error = RedisQueueError::Server {
        server: server.to_owned(),
        source: error,
    };
    if permanent {
        QueueError::unrecoverable(BACKEND, error)
    } else {
        QueueError::backend(BACKEND, error)
    }
}
