//! # events
//!
//! Laravel's event system for Rust services, declared with attributes and
//! found at link time: no registration list, and mistakes are compile errors.
//!
//! ```
//! use events::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[event(name = "appointment.created")]
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! pub struct AppointmentCreated { pub appointment_id: u64 }
//!
//! #[listener(priority = 10)]
//! fn log_booking(e: &AppointmentCreated) {
//!     println!("booked #{}", e.appointment_id);
//! }
//!
//! #[listener(queue = "calendar", tries = 3, backoff = ["1s", "5s"])]
//! async fn sync_to_calendar(e: &AppointmentCreated) -> Result<(), std::io::Error> {
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), events::DispatchError> {
//! let done = AppointmentCreated { appointment_id: 7 }.dispatch().await?;
//! assert_eq!((done.ran(), done.queued()), (1, 1));
//! # Ok(()) }
//! ```
//!
//! See the README for the attribute reference and the testing guide.
//!
//! Errors follow one rule (see [`error`]): `Display` says what failed at
//! its own layer and `source()` gives the cause; print them with
//! [`error::Chain`] to see the causes too.
//!
//! # Features
//!
//! - `sqlite` (default): the embedded durable queue, `sqlite://path`
//!   (crate `events-sqlite`), and `events::queue::SqliteBackend`.
//! - `store`: the event log, `events::store`, with `sqlite://path` stores
//!   ([`store::SqliteStore`], crate `events-sqlite`, on its own file or on
//!   the queue's); it turns on `sqlite` and needs nothing more. With
//!   `sqlite` alone the `sqlite://` store scheme and `SqliteStore` are
//!   there too: `store` is the name to ask for the event log by.
//! - `redis`: the Redis queue for workers on many machines,
//!   `redis://host:port/db` (`rediss://` for TLS, `?prefix=app`; crate
//!   `events-redis`), and `events::queue::RedisBackend`.
//! - `postgres`: the event log on PostgreSQL, `postgres://user@host/db`
//!   (and `postgresql://`; crate `events-postgres`), and
//!   `events::postgres::PostgresStore`.
//! - `cli` (default): the operator commands, `events::cli::run()`.
//! - `metrics`: Prometheus metrics, [`metrics::Metrics`] (an observer
//!   recording through the `metrics` facade), a `/metrics` endpoint, and
//!   `work --metrics-addr ADDR` (crate `events-metrics`).
//! - `otel`: OpenTelemetry spans, `events::otel::OpenTelemetry` (an
//!   observer) and `events::otel::layer` (crate `events-otel`); off by
//!   default.
//! - `dashboard`: the dashboard in the browser, `events::dashboard::Dashboard`
//!   (an axum `Router`; crate `events-dashboard`), which `cli serve` mounts.
//! - `webhooks`: outgoing webhooks, `events::webhooks::Webhooks`:
//!   subscriptions to stored events, Standard Webhooks 1.0 signatures,
//!   deliveries on the queue with retries, auto-disable and a delivery log
//!   (crate `events-webhooks`).
//! - `http`: the event log's HTTP API, `events::http::Api` (an axum
//!   `Router` of JSON routes under `/events` with an OpenAPI description;
//!   crate `events-http`), which `cli serve` mounts.
//! - `broadcast`: the broadcast server, `events::broadcast::Broadcaster`
//!   (an axum `Router` speaking the Pusher Channels protocol v7, so
//!   pusher-js and Laravel Echo connect unchanged; crate
//!   `events-broadcast`), which `cli serve` mounts; with `redis` too,
//!   fan-out between server processes through Redis.
//! - `conformance`: the backend conformance suite,
//!   `events::conformance_tests!`, for a queue backend's own tests.
//!
//! With no feature, sync listeners run and queued ones run in-process (or
//! on `memory://`).

#![warn(missing_docs)]

pub use events_core::*;
pub use events_macros::{channel, event, listen, listener, subscriber, upcast};

pub mod queue {
    //! Queues for queued listeners: the job a dispatch enqueues, the
    //! backend trait every store implements, and the [`Queue`] handle;
    //! with the `sqlite` feature, `SqliteBackend` too, and with `redis`,
    //! `RedisBackend`.
    //!
    //! Backends register their URL schemes at link time. A registration
    //! lives in a static of the backend's crate that nothing references by
    //! symbol, and a linker drops unreferenced objects. Today rustc keeps
    //! the `#[used]` statics of every crate it links (`tests/env_queue.rs`
    //! opens `sqlite://` through `events-core` alone, in a binary that
    //! never names `events-sqlite`), and it links `events-sqlite` because
    //! this facade re-exports from it. The functions here that open a queue
    //! by URL also call `events_sqlite::link()` first, so a binary going
    //! through them references the crate by symbol whatever the linker.

    pub use events_core::queue::*;
    #[cfg(feature = "redis")]
    pub use events_redis::{RedisBackend, RedisOptions};
    #[cfg(feature = "sqlite")]
    pub use events_sqlite::{SqliteBackend, SqliteError, SqliteOptions, Synchronous};

    /// Opens the queue at `url` through the backend that registered its
    /// scheme: `memory://` always, `sqlite://path` with the `sqlite`
    /// feature (on by default; `sqlite:///abs/path` for an absolute path),
    /// `redis://host:port/db` with the `redis` feature. A scheme whose feature is off is
    /// an error naming the feature.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), events::queue::QueueError> {
    /// let queue = events::queue::connect("memory://").await?;
    /// assert_eq!(queue.size("default").await?, 0);
    /// # Ok(()) }
    /// ```
    ///
    /// On a Tokio runtime the file is opened on its blocking pool, so
    /// opening never stalls the runtime's other tasks.
    pub async fn connect(url: &str) -> Result<Queue, QueueError> {
        crate::link_backends();
        events_core::queue::connect(url).await
    }

    /// [`connect`] without awaiting: [`Queue::open`], after making sure the
    /// backends compiled into the facade are linked.
    pub fn open(url: &str) -> Result<Queue, QueueError> {
        crate::link_backends();
        Queue::open(url)
    }

    /// The queue `EVENTS_QUEUE_URL` names, if it is set, opened with
    /// [`open`].
    pub fn from_env() -> Option<Result<Queue, QueueError>> {
        crate::link_backends();
        events_core::queue::from_env()
    }
}

#[cfg(feature = "postgres")]
pub mod postgres {
    //! The event log on PostgreSQL (feature `postgres`): [`PostgresStore`],
    //! opened by `events::store::Store::open("postgres://..")` or
    //! `EVENTS_STORE_URL`. See the README's "Event log on PostgreSQL".
    pub use events_postgres::*;
}

pub mod store {
    //! The event log: what `events_core::store` holds (the [`EventStore`]
    //! trait, the [`Store`] handle, queries, the memory store), and with
    //! the `sqlite` feature (which `store` turns on) [`SqliteStore`], the
    //! log on SQLite. Open one by URL with [`connect`] or [`open`]
    //! (`sqlite://path`, `memory://`), or on a SQLite queue's own file with
    //! `SqliteStore::for_queue(&queue)`, so that an append and its jobs are
    //! one transaction.

    pub use events_core::store::*;
    #[cfg(feature = "sqlite")]
    pub use events_sqlite::SqliteStore;

    /// Opens the store at `url` (`sqlite://path` with the `sqlite`
    /// feature, `memory://` always) without blocking the runtime: as
    /// `events_core::store::connect`, after making sure the stores compiled
    /// into the facade are linked.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), events::store::StoreError> {
    /// let store = events::store::connect("memory://").await?;
    /// assert_eq!(store.last_position().await?, 0);
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        crate::link_backends();
        events_core::store::connect(url).await
    }

    /// [`connect`] without awaiting: [`Store::open`], after making sure the
    /// stores compiled into the facade are linked.
    pub fn open(url: &str) -> Result<Store, StoreError> {
        crate::link_backends();
        Store::open(url)
    }
}

#[cfg(feature = "metrics")]
pub mod metrics {
    //! Prometheus metrics (feature `metrics`): [`Metrics`], an observer
    //! for dispatchers and workers, and a `/metrics` endpoint. See the
    //! README's "Metrics" section for the table of names.
    pub use events_metrics::*;
}

#[cfg(feature = "otel")]
pub mod otel {
    //! OpenTelemetry (feature `otel`): [`OpenTelemetry`], an observer
    //! whose `events.dispatch` and `events.job` spans are OpenTelemetry
    //! spans of one trace, from the dispatch to every try on any worker,
    //! and [`layer`] for the application's subscriber. See the README's
    //! "Tracing with OpenTelemetry".
    pub use events_otel::*;
}

#[cfg(feature = "dashboard")]
pub mod dashboard {
    //! The dashboard in the browser (feature `dashboard`): [`Dashboard`],
    //! an axum `Router` to mount (by convention at `/dashboard`), closed
    //! until a token or an authorization hook opens it. See the README's
    //! "Dashboard" section.
    pub use events_dashboard::*;
}

#[cfg(feature = "webhooks")]
pub mod webhooks {
    //! Outgoing webhooks (feature `webhooks`): [`Webhooks`] over an event
    //! store, signed per Standard Webhooks 1.0, delivered by the queued
    //! listener of the [`QUEUE`] queue.
    pub use events_webhooks::*;
}

#[cfg(feature = "http")]
pub mod http {
    //! The event log's HTTP API (feature `http`): [`Api`], an axum
    //! `Router` of JSON routes under `/events` (history, timelines,
    //! statistics, schemas, webhook subscriptions and their log) with an
    //! OpenAPI description at `/events/openapi.json`, closed until a token
    //! (`EVENTS_HTTP_TOKEN`) or an authenticator opens it. See the README's
    //! "HTTP API" section.
    pub use events_http::*;
}

pub mod broadcast {
    //! Broadcasting: what `#[event(broadcast = [..])]` declares
    //! ([`Channel`], [`Broadcast`]), where broadcasts go ([`Publish`],
    //! given as the [`Broadcasts`] state), and, with the feature
    //! `broadcast`, the broadcast server: `Broadcaster`, an axum `Router`
    //! speaking the Pusher Channels protocol v7 at `/app/{key}`, the
    //! signed HTTP API under `/apps/{id}` and `POST /broadcasting/auth`;
    //! `Channels` for the application's channel authorization; with the
    //! `redis` feature too, `RedisFanout` between server processes. See
    //! the README's "Broadcasting" section.
    #[cfg(feature = "broadcast")]
    pub use events_broadcast::*;
    pub use events_core::broadcast::*;
}

#[cfg(all(
    feature = "cli",
    any(
        feature = "metrics",
        feature = "dashboard",
        feature = "http",
        feature = "broadcast"
    )
))]
mod serve;

#[cfg(all(
    feature = "cli",
    any(
        feature = "metrics",
        feature = "dashboard",
        feature = "http",
        feature = "broadcast"
    )
))]
pub mod cli {
    //! The operator commands (see `events_core::cli`), with what this
    //! build's features add: `work --metrics-addr ADDR` (feature
    //! `metrics`) and `serve` (the dashboard at `/dashboard` with
    //! `dashboard`, the event log's API at `/events` with `http`, metrics
    //! at `/metrics` with `metrics`, the broadcast server at `/app/{key}`,
    //! `/apps/{id}` and `/broadcasting/auth` with `broadcast`).
    pub use crate::serve::Parts;
    pub use events_core::cli::*;

    /// The operator commands, as `events_core::cli::run`, with the parts
    /// this build's features add ([`commands`]).
    pub async fn run() -> std::process::ExitCode {
        commands().run().await
    }

    /// [`Commands::new`] with this build's parts: `work --metrics-addr`
    /// with `metrics`, `work` publishing broadcasts as the environment
    /// says with `broadcast` (`events::broadcast::Publisher::configured`),
    /// and `serve` running [`Parts`]. Add state and
    /// observers to it as to `Commands::new()`.
    pub fn commands() -> Commands {
        #[allow(unused_mut)]
        let mut commands = Commands::new().server(Parts);
        #[cfg(feature = "metrics")]
        {
            commands = commands.metrics_endpoint(crate::metrics::Endpoint);
        }
        #[cfg(feature = "broadcast")]
        {
            // `work` publishes `#[event(broadcast)]` jobs where the
            // environment says (the server's HTTP API or its Redis), read
            // at the first one; `.state(Broadcasts::new(..))` replaces it.
            commands = commands.state(crate::broadcast::Broadcasts::new(
                crate::broadcast::Publisher::configured(),
            ));
        }
        commands
    }

    /// The commands with this build's parts, on `queue` when given.
    fn commands_on(queue: Option<crate::Queue>) -> Commands {
        let commands = commands();
        match queue {
            Some(queue) => commands.queue(queue),
            None => commands,
        }
    }

    /// As `events_core::cli::run_from`, with this build's parts.
    pub async fn run_from<I, T>(args: I, queue: Option<crate::Queue>) -> Result<(), CliError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut stdout = std::io::stdout();
        run_to(args, queue, &mut stdout).await
    }

    /// As `events_core::cli::run_to`, with this build's parts.
    pub async fn run_to<I, T>(
        args: I,
        queue: Option<crate::Queue>,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<(), CliError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        commands_on(queue).run_to(args, out).await
    }
}

/// Names each backend crate compiled in, so the linker keeps the schemes
/// they register (see [`queue`]).
fn link_backends() {
    #[cfg(feature = "sqlite")]
    events_sqlite::link();
    #[cfg(feature = "redis")]
    events_redis::link();
    #[cfg(feature = "postgres")]
    events_postgres::link();
}

/// The attributes, `Event`, the `Dispatch` extension trait, `Flow` and
/// `AnyEvent`: `use events::prelude::*;`.
pub mod prelude {
    pub use events_core::{AnyEvent, Dispatch, Event, Flow};
    pub use events_macros::{event, listen, listener, subscriber, upcast};
}
