//! Replay: stored events read back in position order and handed to the
//! listeners named (projectors), checkpointed per listener so an
//! interrupted replay resumes where it stopped.
//!
//! A replay runs only the listeners it is given: never every listener of
//! an event, so side effects (mail, payments, webhooks) are not repeated
//! unless a listener that has them is named.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{EventQuery, Store, StoreError, StoredEvent};
use crate::context::{Context, StateMap};
use crate::envelope::Envelope;
use crate::event::{AnyEvent, ErasedEvent};
use crate::listener::{BoxError, ListenerDef, Run, Target};
use crate::registry::{self, RegistryError};

/// How far a replay got, as its progress callback sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Events read so far.
    pub read: u64,
    /// The position of the last event read.
    pub position: u64,
    /// The last position of the log when the replay started.
    pub last: u64,
}

/// What one listener got from a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Replayed {
    /// The listener.
    pub listener: &'static str,
    /// Events handed to it (with `dry_run`: that would have been).
    pub events: u64,
    /// Where it started: after this position.
    pub from: u64,
    /// Its checkpoint now.
    pub to: u64,
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ReplayReport {
    /// Per listener, in the order given.
    pub listeners: Vec<Replayed>,
    /// Events read from the store.
    pub read: u64,
    /// How long it took.
    pub took: Duration,
    /// Whether it was a dry run (nothing called, no checkpoint moved).
    pub dry_run: bool,
}

impl ReplayReport {
    /// Events read per second.
    pub fn per_second(&self) -> f64 {
        self.read as f64 / self.took.as_secs_f64().max(1e-9)
    }
}

/// Why a replay stopped. Every checkpoint stands at the last event its
/// listener handled, so running the replay again resumes there.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// No listener was named.
    #[error(
        "name the listeners to replay into: a replay never runs a listener it was not given, so side effects (mail, payments, webhooks) are not repeated"
    )]
    NoListener,
    /// A listener name the registry does not know.
    #[error("no listener named `{name}` is registered{}", near.map(|n| format!("; did you mean `{n}`?")).unwrap_or_default())]
    UnknownListener {
        /// The name given.
        name: String,
        /// The nearest registered name.
        near: Option<&'static str>,
    },
    /// A listener needs state that was not given with `state(..)`.
    #[error("a listener to replay into cannot run")]
    Startup(#[source] RegistryError),
    /// A stored event could not be rebuilt: its type is not in this
    /// program, or its JSON no longer deserializes.
    #[error("stored event {position} (`{name}`) cannot be replayed: {reason}")]
    Decode {
        /// Its position.
        position: u64,
        /// Its name.
        name: String,
        /// Why, in words.
        reason: String,
    },
    /// A listener failed on an event.
    #[error("listener `{listener}` failed on stored event {position} (`{name}`)")]
    Listener {
        /// The listener.
        listener: &'static str,
        /// The event's position.
        position: u64,
        /// Its name.
        name: String,
        /// What the listener returned.
        #[source]
        source: BoxError,
    },
    /// The store failed.
    #[error("the event store failed during the replay")]
    Store(#[from] StoreError),
}

/// A replay being configured: [`Store::replay`].
#[must_use = "a replay does nothing until `run` is awaited"]
pub struct Replay {
    store: Store,
    listeners: Vec<String>,
    query: EventQuery,
    from: Option<u64>,
    to: Option<u64>,
    batch: usize,
    restart: bool,
    dry_run: bool,
    state: StateMap,
    progress: Option<OnProgress>,
}

/// A replay's progress callback.
type OnProgress = Box<dyn FnMut(&Progress) + Send + Sync>;

impl Store {
    /// Starts configuring a replay of this store's events.
    ///
    /// ```
    /// use events::prelude::*;
    /// use events::store::{NewEvent, Store};
    /// use serde::{Deserialize, Serialize};
    /// use std::sync::atomic::{AtomicU64, Ordering};
    ///
    /// #[event(name = "deposit.made", store)]
    /// #[derive(Serialize, Deserialize)]
    /// struct Deposited { cents: u64 }
    ///
    /// static TOTAL: AtomicU64 = AtomicU64::new(0);
    ///
    /// #[listener(name = "totals")]
    /// fn totals(e: &Deposited) { TOTAL.fetch_add(e.cents, Ordering::Relaxed); }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = Store::memory();
    /// store.append(vec![
    ///     NewEvent::new("deposit.made", r#"{"cents":250}"#),
    ///     NewEvent::new("deposit.made", r#"{"cents":100}"#),
    /// ]).await?;
    /// let report = store.replay().listener("totals").run().await?;
    /// assert_eq!(report.listeners[0].events, 2);
    /// assert_eq!(TOTAL.load(Ordering::Relaxed), 350);
    /// // Checkpointed: a second run finds nothing new.
    /// assert_eq!(store.replay().listener("totals").run().await?.listeners[0].events, 0);
    /// # Ok(()) }
    /// ```
    pub fn replay(&self) -> Replay {
        Replay {
            store: self.clone(),
            listeners: Vec::new(),
            query: EventQuery::new(),
            from: None,
            to: None,
            batch: 1_000,
            restart: false,
            dry_run: false,
            state: StateMap::default(),
            progress: None,
        }
    }
}

impl Replay {
    /// Replays into the listener of this name (as `list` shows it).
    pub fn listener(mut self, name: impl Into<String>) -> Self {
        self.listeners.push(name.into());
        self
    }

    /// Replays into the listener `L` (its generated type).
    pub fn to<L: crate::Listener>(self) -> Self {
        self.listener(L::NAME)
    }

    /// Only events of this name or pattern (several add up).
    pub fn name(mut self, pattern: impl Into<String>) -> Self {
        self.query.names.push(pattern.into());
        self
    }

    /// Only events about this entity.
    pub fn entity(mut self, entity: super::Entity) -> Self {
        self.query.entity = Some(entity);
        self
    }

    /// Only events that occurred at or after `at`.
    pub fn since(mut self, at: SystemTime) -> Self {
        self.query.since = Some(at);
        self
    }

    /// Only events that occurred before `at`.
    pub fn until(mut self, at: SystemTime) -> Self {
        self.query.until = Some(at);
        self
    }

    /// Starts after this position (unless a listener's checkpoint is
    /// further on).
    pub fn from(mut self, position: u64) -> Self {
        self.from = Some(position);
        self
    }

    /// Stops at this position (included).
    pub fn until_position(mut self, position: u64) -> Self {
        self.to = Some(position);
        self
    }

    /// Events read per page (default 1,000).
    pub fn batch(mut self, size: usize) -> Self {
        self.batch = size.max(1);
        self
    }

    /// Ignores the listeners' checkpoints: starts at `from` (or the
    /// beginning).
    pub fn restart(mut self, restart: bool) -> Self {
        self.restart = restart;
        self
    }

    /// Counts what would be replayed, calling nothing and moving no
    /// checkpoint.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Gives the listeners the state they take as `State<T>`.
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// Called after each page with how far the replay got.
    pub fn progress(mut self, report: impl FnMut(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Box::new(report));
        self
    }

    /// Runs the replay: reads the events in position order, page by page,
    /// hands each to the listeners it is for, and saves each listener's
    /// checkpoint after every page.
    pub async fn run(mut self) -> Result<ReplayReport, ReplayError> {
        let started = Instant::now();
        let defs = self.resolve()?;
        let registry = registry::registry();
        if let Some(problem) = super::upcast_problems().first() {
            return Err(ReplayError::Startup(problem.clone()));
        }
        registry
            .check_state(
                &self.state,
                |l| defs.iter().any(|d| std::ptr::eq(*d, l.def)),
                "Store::replay()",
            )
            .map_err(ReplayError::Startup)?;
        let state = Arc::new(std::mem::take(&mut self.state));
        let last = self.store.last_position().await?;
        let floor = self.from.unwrap_or(0);
        let mut runs = Vec::with_capacity(defs.len());
        for def in &defs {
            let saved = if self.restart {
                None
            } else {
                self.store.checkpoint(def.name).await?
            };
            let from = saved.map_or(floor, |c| c.max(floor));
            runs.push(Replayed {
                listener: def.name,
                events: 0,
                from,
                to: from,
            });
        }
        let mut cursor = runs.iter().map(|r| r.from).min().unwrap_or(floor);
        let end = self.to.map_or(last, |to| to.min(last));
        let mut read = 0u64;
        let mut rebuilders = Rebuilders::default();
        let mut query = self.query.clone().limit(self.batch);
        query.before = end.checked_add(1);
        while cursor < end {
            query.after = Some(cursor);
            let page = self.store.events(&query).await?;
            let page_end = page.next.unwrap_or(end);
            for event in &page.events {
                read += 1;
                self.one(event, &defs, &mut runs, &state, &mut rebuilders)
                    .await?;
            }
            // Every listener has seen the page (or skipped what was not
            // for it): its checkpoint moves to the page's end.
            for run in runs.iter_mut() {
                run.to = run.to.max(page_end);
            }
            self.save(&runs).await?;
            if let Some(progress) = &mut self.progress {
                progress(&Progress {
                    read,
                    position: page_end,
                    last,
                });
            }
            if page.next.is_none() {
                break;
            }
            cursor = page_end;
            // A long replay must not starve the runtime's other tasks.
            tokio::task::yield_now().await;
        }
        Ok(ReplayReport {
            listeners: runs,
            read,
            took: started.elapsed(),
            dry_run: self.dry_run,
        })
    }

    fn resolve(&self) -> Result<Vec<&'static ListenerDef>, ReplayError> {
        if self.listeners.is_empty() {
            return Err(ReplayError::NoListener);
        }
        let registry = registry::registry();
        let mut defs: Vec<&'static ListenerDef> = Vec::new();
        for name in &self.listeners {
            let Some(info) = registry.listener(name) else {
                let known = registry.listeners().iter().map(|l| l.name());
                return Err(ReplayError::UnknownListener {
                    name: name.clone(),
                    near: crate::config::nearest(name, known),
                });
            };
            if !defs.iter().any(|d| std::ptr::eq(*d, info.def)) {
                defs.push(info.def);
            }
        }
        Ok(defs)
    }

    async fn save(&self, runs: &[Replayed]) -> Result<(), StoreError> {
        if self.dry_run {
            return Ok(());
        }
        for run in runs {
            if run.to > run.from || run.events > 0 {
                self.store.save_checkpoint(run.listener, run.to).await?;
            }
        }
        Ok(())
    }

    /// Hands one stored event to each listener it is for. On an error,
    /// saves every checkpoint up to the event before.
    async fn one(
        &self,
        event: &StoredEvent,
        defs: &[&'static ListenerDef],
        runs: &mut [Replayed],
        state: &Arc<StateMap>,
        rebuilders: &mut Rebuilders,
    ) -> Result<(), ReplayError> {
        let mut rebuilt: Option<Box<dyn ErasedEvent>> = None;
        for (def, run) in defs.iter().zip(runs.iter_mut()) {
            if event.position <= run.from || !targets(def, &event.name) {
                continue;
            }
            if self.dry_run {
                run.events += 1;
                continue;
            }
            let outcome = call(def, event, &mut rebuilt, state, rebuilders).await;
            match outcome {
                Ok(()) => {
                    run.events += 1;
                    run.to = event.position;
                }
                Err(error) => {
                    // What ran before this event stays done.
                    for run in runs.iter_mut() {
                        run.to = run.to.max(event.position - 1).max(run.from);
                    }
                    let _ = self.save(runs).await;
                    return Err(error);
                }
            }
        }
        Ok(())
    }
}

/// How each event name seen is rebuilt, looked up in the registry once
/// per name rather than once per event.
#[derive(Default)]
struct Rebuilders(std::collections::HashMap<String, Option<crate::event::FromJson>>);

impl Rebuilders {
    fn get(&mut self, name: &str) -> Option<crate::event::FromJson> {
        if let Some(found) = self.0.get(name) {
            return *found;
        }
        let found = registry::registry().rebuilder(name);
        self.0.insert(name.to_owned(), found);
        found
    }
}

/// Whether `def` listens to events named `name`.
fn targets(def: &ListenerDef, name: &str) -> bool {
    match def.target {
        Target::Event { name: own, .. } => own == name,
        Target::Pattern(pattern) => crate::pattern::matches(pattern, name),
    }
}

/// Calls `def` with the stored event, rebuilding it once per event for the
/// listeners that take it as a value.
async fn call(
    def: &'static ListenerDef,
    event: &StoredEvent,
    rebuilt: &mut Option<Box<dyn ErasedEvent>>,
    state: &Arc<StateMap>,
    rebuilders: &mut Rebuilders,
) -> Result<(), ReplayError> {
    let failed = |source: BoxError| ReplayError::Listener {
        listener: def.name,
        position: event.position,
        name: event.name.clone(),
        source,
    };
    let decode = |reason: String| ReplayError::Decode {
        position: event.position,
        name: event.name.clone(),
        reason,
    };
    // An older record is brought to the current version first; a current
    // one is handed on as stored.
    let (_, payload) = super::upcast(&event.name, event.version, &event.payload)
        .map_err(|e| decode(e.to_string()))?;
    // Only listeners that take a context pay for the envelope.
    let envelope = || Envelope::from_parts(event.id, event.occurred_at, event.metadata.clone());
    let context = |erased: &dyn ErasedEvent| {
        Context::for_dispatch(
            erased.static_name().unwrap_or(def.name),
            envelope(),
            state.clone(),
        )
    };
    if let Run::Queued { job, .. } = def.run {
        let ctx = Context::for_dispatch(def.name, envelope(), state.clone());
        let run = job(&event.name, &payload, &ctx).map_err(|e| decode(e.to_string()))?;
        return run.await.map(|_| ()).map_err(failed);
    }
    if rebuilt.is_none() {
        let from_json = rebuilders.get(&event.name).ok_or_else(|| {
            decode(format!(
                "no event type named `{}` that can be deserialized is registered in this program",
                event.name
            ))
        })?;
        *rebuilt = Some(from_json(&payload).map_err(|e| decode(e.to_string()))?);
    }
    let erased: &dyn ErasedEvent = rebuilt.as_deref().expect("rebuilt just above");
    let any = AnyEvent::from_erased(erased);
    if let Some(when) = def.when
        && !when(any)
    {
        return Ok(());
    }
    let outcome = match def.run {
        Run::Typed(call) => call.call_any(erased.as_any()).ok_or_else(|| {
            decode(format!(
                "listener `{}` takes another type than the one registered as `{}`",
                def.name, event.name
            ))
        })?,
        Run::Sync(call) => call(any),
        Run::Async(call) => call(any).await,
        Run::SyncCx(call) => call(any, &context(erased)),
        Run::AsyncCx(call) => {
            let ctx = context(erased);
            call(any, &ctx).await
        }
        Run::Queued { .. } => unreachable!("handled above"),
    };
    outcome.map(|_| ()).map_err(failed)
}
