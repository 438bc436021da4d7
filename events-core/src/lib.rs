//! Runtime of the `events` framework: the registry that link-time
//! registrations build, the dispatcher, queued-job execution and the test
//! fakes. Use it through the `events` facade crate.

#![warn(missing_docs)]

pub mod auth;
pub mod broadcast;
pub mod channel;
#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
mod context;
mod dispatch;
mod envelope;
pub mod error;
mod event;
mod listener;
pub mod observe;
mod pattern;
pub mod queue;
mod registry;
pub mod store;
mod testing;
pub mod time;
mod worker;

#[doc(hidden)]
pub mod __private;

pub use broadcast::{BroadcastFake, fake_broadcasts};
pub use config::Config;
pub use context::{
    Context, ExtractError, FromContext, FromContextRef, JobContext, State, StateMap, StateNeed,
};
pub use dispatch::{
    Dispatch, DispatchError, Dispatched, Dispatcher, DispatcherBuilder, Dispatching, GivenMetadata,
    MetadataProvider, dispatch, global, install, shutdown,
};
pub use envelope::{Envelope, EventId, Metadata, ParseEventIdError, keys};
pub use event::{AnyEvent, Event, Shareable};
pub use listener::{
    BoxError, Flow, IntoOutcome, Listener, ListenerError, ListenerInfo, Listens, Mode,
    QueueOptions, RetryDefaults, TypedListener, assert_listening, assert_listening_named,
};
pub use pattern::matches as matches_pattern;
pub use queue::{FailedJob, Job, Queue};
pub use registry::{EventInfo, Registry, RegistryError, listeners_for, registry};
pub use testing::{EventFake, EventSet, QueueFake, fake, fake_except, fake_only, fake_queue};
pub use worker::{FailureHook, WorkReport, Worker, shutdown_signal};
