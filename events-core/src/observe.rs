//! Observers: what sees every dispatch, every sync listener's run and each
//! queued job's life without being a listener. Metrics, traces, audit
//! trails and dashboards plug in here.
//!
//! Give one to a dispatcher with `Dispatcher::builder().observe(o)` and to a
//! worker with `Worker::new(q).observe(o)`. Every method has a default that
//! does nothing; implement the ones you need. With no observer, dispatch
//! costs what it did before observers existed.
//!
//! ```
//! use events::observe::{DispatchRecord, Observer};
//! use events::prelude::*;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//!
//! #[derive(Default)]
//! struct Count(AtomicUsize);
//!
//! impl Observer for Count {
//!     fn dispatched(&self, _: &DispatchRecord<'_>) {
//!         self.0.fetch_add(1, Ordering::Relaxed);
//!     }
//! }
//!
//! #[event]
//! struct Pinged;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let count = Arc::new(Count::default());
//! let dispatcher = events::Dispatcher::builder().observe(count.clone()).build()?;
//! dispatcher.dispatch(Pinged).await?;
//! assert_eq!(count.0.load(Ordering::Relaxed), 1);
//! # Ok(()) }
//! ```

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use crate::dispatch::{DispatchError, Dispatched};
use crate::envelope::{Envelope, Metadata};
use crate::queue::Job;

/// Sees dispatches, listener runs and jobs. Methods are called on the task
/// doing the work, so keep them quick; a panic in one is caught and logged.
#[allow(unused_variables)]
pub trait Observer: Send + Sync + 'static {
    /// Adds to the metadata of a dispatch of `event` before any listener
    /// sees it (a trace context, say). Values given at the dispatch win:
    /// use [`Metadata::insert_default`].
    fn enrich(&self, event: &str, metadata: &mut Metadata) {}

    /// A span the rest of the dispatch runs in (listeners, enqueueing).
    fn dispatch_span(&self, event: &str, envelope: &Envelope) -> Option<tracing::Span> {
        None
    }

    /// A dispatch ended, well or not.
    fn dispatched(&self, record: &DispatchRecord<'_>) {}

    /// A listener ran inside dispatch.
    fn listener_ran(&self, run: &ListenerRun<'_>) {}

    /// A job was stored (or handed to the in-process runner).
    fn job_enqueued(&self, job: &Job) {}

    /// A worker claimed a job and is about to run it.
    fn job_claimed(&self, job: &Job) {}

    /// A span the job's try runs in.
    fn job_span(&self, job: &Job) -> Option<tracing::Span> {
        None
    }

    /// The job's listener succeeded and the job is done.
    fn job_succeeded(&self, job: &Job, took: Duration) {}

    /// A try failed and the job will run again after `delay`.
    fn job_retried(&self, job: &Job, error: &str, delay: Duration) {}

    /// The listener asked to run again after `delay` without counting the
    /// try (`ctx.job().release_after(..)`).
    fn job_released(&self, job: &Job, delay: Duration) {}

    /// The job went to the failed store.
    fn job_failed(&self, job: &Job, error: &str) {}

    /// The worker lost the job's lease (another worker has it): its result
    /// was discarded.
    fn job_lease_lost(&self, job: &Job) {}
}

impl<O: Observer + ?Sized> Observer for Arc<O> {
    fn enrich(&self, event: &str, metadata: &mut Metadata) {
        (**self).enrich(event, metadata)
    }
    fn dispatch_span(&self, event: &str, envelope: &Envelope) -> Option<tracing::Span> {
        (**self).dispatch_span(event, envelope)
    }
    fn dispatched(&self, record: &DispatchRecord<'_>) {
        (**self).dispatched(record)
    }
    fn listener_ran(&self, run: &ListenerRun<'_>) {
        (**self).listener_ran(run)
    }
    fn job_enqueued(&self, job: &Job) {
        (**self).job_enqueued(job)
    }
    fn job_claimed(&self, job: &Job) {
        (**self).job_claimed(job)
    }
    fn job_span(&self, job: &Job) -> Option<tracing::Span> {
        (**self).job_span(job)
    }
    fn job_succeeded(&self, job: &Job, took: Duration) {
        (**self).job_succeeded(job, took)
    }
    fn job_retried(&self, job: &Job, error: &str, delay: Duration) {
        (**self).job_retried(job, error, delay)
    }
    fn job_released(&self, job: &Job, delay: Duration) {
        (**self).job_released(job, delay)
    }
    fn job_failed(&self, job: &Job, error: &str) {
        (**self).job_failed(job, error)
    }
    fn job_lease_lost(&self, job: &Job) {
        (**self).job_lease_lost(job)
    }
}

/// One dispatch, as observers see it when it ends.
#[derive(Debug)]
#[non_exhaustive]
pub struct DispatchRecord<'a> {
    /// The event's name.
    pub event: &'static str,
    /// Its envelope.
    pub envelope: &'a Envelope,
    /// What the dispatch did, or why it failed.
    pub result: Result<&'a Dispatched, &'a DispatchError>,
    /// How long it took, listeners and enqueueing included.
    pub took: Duration,
}

/// One run of a listener inside dispatch.
#[derive(Debug)]
#[non_exhaustive]
pub struct ListenerRun<'a> {
    /// The listener's name.
    pub listener: &'static str,
    /// The event's name.
    pub event: &'static str,
    /// The event's envelope.
    pub envelope: &'a Envelope,
    /// How long it ran.
    pub took: Duration,
    /// How it ended.
    pub outcome: ListenerOutcome<'a>,
}

/// How a listener run ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum ListenerOutcome<'a> {
    /// It let the dispatch go on.
    Continued,
    /// It returned `Flow::Stop`.
    Stopped,
    /// It returned an error (the dispatch fails with it).
    Failed(&'a (dyn StdError + Send + Sync + 'static)),
}

/// The observers of a dispatcher or a worker, called in the order given.
#[derive(Clone, Default)]
pub(crate) struct Observers(Arc<[Arc<dyn Observer>]>);

impl Observers {
    pub(crate) fn new(list: Vec<Arc<dyn Observer>>) -> Observers {
        Observers(list.into())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Calls `f` on each observer; a panicking observer is logged and the
    /// others still run.
    pub(crate) fn each(&self, mut f: impl FnMut(&dyn Observer)) {
        for observer in self.0.iter() {
            let call = std::panic::AssertUnwindSafe(|| f(&**observer));
            if std::panic::catch_unwind(call).is_err() {
                tracing::error!("an observer panicked; it is skipped for this call");
            }
        }
    }

    /// The first span an observer gives.
    pub(crate) fn span(
        &self,
        f: impl Fn(&dyn Observer) -> Option<tracing::Span>,
    ) -> Option<tracing::Span> {
        self.0.iter().find_map(|o| f(&**o))
    }
}

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} observer(s)", self.0.len())
    }
}
