//! The registry: every listener submitted at link time (and, through them,
//! the event types they listen to), collected once, validated, sorted
//! (priority, then name: never link order) and indexed by event type so
//! dispatch finds its listeners with one lookup.

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{OnceLock, RwLock};

use crate::event::{Event, EventDef, EventEntry, FromJson};
use crate::listener::{ListenerDef, ListenerInfo, Run, Target, UnitFn};

/// Every listener for one event type, in run order.
pub(crate) struct Table {
    /// Sync and async listeners run inside dispatch: what dispatch reads,
    /// copied into one contiguous array.
    pub(crate) inline: Box<[Inline]>,
    /// Whether every inline listener is a plain `fn` (the fast path).
    pub(crate) all_sync: bool,
    /// When every inline listener is a typed `fn(&E)` returning `()` with no
    /// `when`, the bare function pointers in run order: dispatch calls them
    /// as a static array would be called. Nothing to check per listener.
    pub(crate) plain: Option<Box<[UnitFn]>>,
    /// The event type every `Call::Typed` entry takes: the table's key.
    pub(crate) typed_for: TypeId,
    /// The inline listeners' registrations, for reports.
    pub(crate) inline_defs: Box<[&'static ListenerDef]>,
    /// Queued listeners, enqueued after the inline ones succeeded.
    pub(crate) queued: Box<[&'static ListenerDef]>,
}

/// A per-event-type cache of the global registry's table for `E`.
///
/// Typed by the event, and invariant in it, so one type's slot cannot be
/// handed out as another's: not even as a subtype's (`W<for<'a> fn(&'a T)>`
/// and `W<fn(&'static T)>` are different types, one a subtype of the other).
/// A slot for `E` is filled only by `registry::table::<E>`, with the table
/// keyed by `TypeId::of::<E>()`, and dispatch checks that key anyway. A bare
/// atomic pointer: cheap for the compiler to evaluate in every event's
/// `static`, and one load to read.
#[doc(hidden)]
pub struct TableSlot<E: ?Sized>(AtomicPtr<Table>, PhantomData<fn(&E) -> &E>);

impl<E: ?Sized> TableSlot<E> {
    /// An empty slot, for a `static`.
    pub const fn new() -> TableSlot<E> {
        TableSlot(AtomicPtr::new(std::ptr::null_mut()), PhantomData)
    }
}

impl<E: ?Sized> Default for TableSlot<E> {
    fn default() -> Self {
        TableSlot::new()
    }
}

/// One listener run inside dispatch.
#[derive(Clone, Copy)]
pub(crate) struct Inline {
    pub(crate) call: Call,
    pub(crate) when: Option<fn(&crate::event::AnyEvent) -> bool>,
    pub(crate) name: &'static str,
}

/// How an inline listener is called.
#[derive(Clone, Copy)]
pub(crate) enum Call {
    /// Checked when the table was built: takes exactly the table's event
    /// type, so dispatch may call it as `fn(&E) -> Outcome` (see
    /// [`Table::typed_for`]).
    Typed(crate::listener::TypedCall),
    /// The same, for a listener returning nothing: called as `fn(&E)`.
    TypedUnit(crate::listener::TypedCall),
    Sync(crate::listener::SyncFn),
    Async(crate::listener::AsyncFn),
    /// A plain `fn` taking extractors: called with the dispatch's context.
    SyncCx(crate::listener::SyncCxFn),
    /// An `async fn` taking extractors.
    AsyncCx(crate::listener::AsyncCxFn),
}

/// An event type the registry knows: one that a listener listens to.
#[derive(Debug, Clone, Copy)]
pub struct EventInfo {
    def: &'static EventDef,
}

impl EventInfo {
    /// `Event::NAME`.
    pub fn name(&self) -> &'static str {
        self.def.name
    }
    /// The Rust type's path.
    pub fn type_name(&self) -> &'static str {
        (self.def.type_name)()
    }
    /// Whether a queued job can rebuild it (`Deserialize`).
    pub fn is_deserializable(&self) -> bool {
        (self.def.json)().from.is_some()
    }
    /// The source file it is declared in.
    pub fn file(&self) -> &'static str {
        self.def.file
    }
    /// The line it is declared on.
    pub fn line(&self) -> u32 {
        self.def.line
    }
}

/// A mistake in what was registered, found when the registry is built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Two listeners share a name, so queued jobs could not tell them apart.
    #[error(
        "two listeners are named `{name}`: one at {first_file}:{first_line}, one at {second_file}:{second_line}; \
         give one of them another `name = \"..\"`"
    )]
    DuplicateListener {
        /// The shared name.
        name: &'static str,
        /// Where the first is declared.
        first_file: &'static str,
        /// Its line.
        first_line: u32,
        /// Where the second is declared.
        second_file: &'static str,
        /// Its line.
        second_line: u32,
    },
    /// Two event types share a name, so wildcard listeners and queued jobs
    /// could not tell them apart.
    #[error(
        "two events are named `{name}`: `{first_type}` at {first_file}:{first_line} and `{second_type}` at \
         {second_file}:{second_line}; give one of them another `#[event(name = \"..\")]`"
    )]
    DuplicateEvent {
        /// The shared name.
        name: &'static str,
        /// The first type.
        first_type: &'static str,
        /// Where it is declared.
        first_file: &'static str,
        /// Its line.
        first_line: u32,
        /// The second type.
        second_type: &'static str,
        /// Where it is declared.
        second_file: &'static str,
        /// Its line.
        second_line: u32,
    },
    /// An event's upcasters do not lead from every older version to its
    /// current one (`#[event(version = N)]`), or one is declared twice or
    /// beyond the current version.
    #[error("event `{event}` is at version {version}, and its upcasters are wrong: {reason}")]
    UpcastChain {
        /// The event's name.
        event: &'static str,
        /// Its current version.
        version: u32,
        /// What is wrong, in words.
        reason: String,
    },
    /// A listener takes `State<T>` and nothing gave a `T` to what runs it.
    #[error(
        "listener `{listener}` ({file}:{line}) takes `State<{type_name}>`, but no `{type_name}` was given: \
         add `.state(value)` to `{runner}`"
    )]
    MissingState {
        /// The listener.
        listener: &'static str,
        /// The state type it needs.
        type_name: &'static str,
        /// Where the listener is declared.
        file: &'static str,
        /// Its line.
        line: u32,
        /// What runs it and must be given the state: `Dispatcher::builder()`
        /// or `Worker::new(..)`.
        runner: &'static str,
    },
}

/// Everything registered in this program. Built once, on first use.
pub struct Registry {
    listeners: Vec<ListenerInfo>,
    events: Vec<EventInfo>,
    /// Event types only wildcard listeners hear, from `#[event]`'s own
    /// registrations: for reports.
    wildcard_only: Vec<EventInfo>,
    tables: HashMap<TypeId, Table, BuildHasherDefault<TypeIdHasher>>,
    /// Tables of event types no typed listener names (only wildcards match
    /// them, or nothing) and of generic events, built on first dispatch and
    /// kept.
    late: RwLock<HashMap<TypeId, &'static Table, BuildHasherDefault<TypeIdHasher>>>,
    problems: Vec<RegistryError>,
}

/// The program's registry, built from the link-time submissions on first use.
///
/// ```
/// for listener in events::registry().listeners() {
///     println!("{} -> {} ({:?})", listener.event(), listener.name(), listener.mode());
/// }
/// ```
#[inline]
pub fn registry() -> &'static Registry {
    REGISTRY.get_or_init(Registry::from_inventory)
}

static REGISTRY: OnceLock<Registry> = OnceLock::new();

/// The global registry's table of `E`: from the type's own slot once filled
/// (one atomic load), else one hash lookup; generic event types get theirs
/// built on first dispatch.
///
/// The table returned is always keyed by `TypeId::of::<E>()`: dispatch
/// relies on it to call typed listeners as `fn(&E)`. A slot should hold the
/// table of its own type only: `__static` holds a `TableSlot<Self>`,
/// invariant in `Self`, and slots are filled only through here (`fill_slot`), from
/// `lookup::<E>()`. Since `Event` is a safe trait, what a slot holds is
/// still checked against `E` before it is trusted (one compare).
#[inline]
pub(crate) fn table<E: Event>() -> &'static Table {
    let Some(slot) = E::__static().map(|s| &s.slot) else {
        return registry().lookup::<E>();
    };
    let cached = slot.0.load(Ordering::Acquire);
    if cached.is_null() {
        return fill_slot(slot);
    }
    // SAFETY: a slot holds null or a pointer made from a `&'static Table`
    // (the store in `fill_slot`, the only one).
    let table = unsafe { &*cached };
    if table.typed_for != TypeId::of::<E>() {
        // Another type's table, reached through a slot some impl shared.
        return lookup_cold::<E>();
    }
    table
}

/// The first dispatch of `E`: finds its table and caches it in its slot.
/// Threads racing here store the same `&'static Table`.
#[cold]
#[inline(never)]
fn fill_slot<E: Event>(slot: &TableSlot<E>) -> &'static Table {
    let table = registry().lookup::<E>();
    slot.0
        .store(std::ptr::from_ref(table).cast_mut(), Ordering::Release);
    table
}

#[cold]
#[inline(never)]
fn lookup_cold<E: Event>() -> &'static Table {
    registry().lookup::<E>()
}

/// The listeners of `E`, in the order dispatch considers them: sync ones
/// first (higher priority, then name), then queued ones. Wildcard listeners
/// whose pattern matches `E::NAME` are included.
pub fn listeners_for<E: Event>() -> Vec<ListenerInfo> {
    let table = table::<E>();
    table
        .inline_defs
        .iter()
        .chain(table.queued.iter())
        .map(|def| ListenerInfo { def })
        .collect()
}

impl Registry {
    /// Collects, validates and indexes what was submitted at link time.
    pub(crate) fn from_inventory() -> Registry {
        let declared = inventory::iter::<EventEntry>
            .into_iter()
            .filter_map(|entry| (entry.def)())
            .collect();
        Registry::build(
            inventory::iter::<ListenerDef>.into_iter().collect(),
            declared,
        )
    }

    /// The registry of `listeners`; of the `declared` event types (every
    /// `#[event]` linked in), those only wildcard listeners hear are kept
    /// for reports.
    pub(crate) fn build(
        mut listeners: Vec<&'static ListenerDef>,
        declared: Vec<&'static EventDef>,
    ) -> Registry {
        listeners.sort_by(|a, b| run_order(&ListenerInfo { def: a }, &ListenerInfo { def: b }));
        let listeners: Vec<ListenerInfo> = listeners
            .into_iter()
            .map(|def| ListenerInfo { def })
            .collect();

        // One pass to group typed listeners by event type (kept in run
        // order) and set wildcard ones apart. Event types are known through
        // their listeners: the first typed listener of each type brings what
        // `#[event]` generated for it.
        let mut typed: HashMap<TypeId, Vec<ListenerInfo>, BuildHasherDefault<TypeIdHasher>> =
            HashMap::default();
        let mut wildcards = Vec::new();
        let mut events: Vec<&'static EventDef> = Vec::new();
        for listener in &listeners {
            match listener.def.target {
                Target::Event { type_id, def, .. } => {
                    let group = typed.entry(type_id()).or_insert_with(|| {
                        events.extend(def());
                        Vec::new()
                    });
                    group.push(*listener);
                }
                Target::Pattern(_) => wildcards.push(*listener),
            }
        }
        let by_name = |a: &&'static EventDef, b: &&'static EventDef| {
            a.name
                .cmp(b.name)
                .then_with(|| (a.type_name)().cmp((b.type_name)()))
        };
        events.sort_by(by_name);
        let events: Vec<EventInfo> = events.into_iter().map(|def| EventInfo { def }).collect();
        // Event types no typed listener names, that a wildcard hears.
        let mut wildcard_only: Vec<&'static EventDef> = declared
            .into_iter()
            .filter(|def| {
                let type_id = (def.type_id)();
                !typed.contains_key(&type_id)
                    && wildcards.iter().any(|l| l.listens_to(type_id, def.name))
            })
            .collect();
        wildcard_only.sort_by(by_name);
        wildcard_only.dedup_by_key(|def| (def.type_id)());
        let wildcard_only = wildcard_only
            .into_iter()
            .map(|def| EventInfo { def })
            .collect();

        let mut problems = Vec::new();
        let mut by_name: Vec<&ListenerInfo> = listeners.iter().collect();
        by_name.sort_by(|a, b| (a.name(), a.file(), a.line()).cmp(&(b.name(), b.file(), b.line())));
        for pair in by_name.windows(2) {
            if pair[0].name() == pair[1].name() {
                problems.push(RegistryError::DuplicateListener {
                    name: pair[0].name(),
                    first_file: pair[0].file(),
                    first_line: pair[0].line(),
                    second_file: pair[1].file(),
                    second_line: pair[1].line(),
                });
            }
        }
        for pair in events.windows(2) {
            let (a, b) = (pair[0].def, pair[1].def);
            if a.name == b.name && (a.type_id)() != (b.type_id)() {
                problems.push(RegistryError::DuplicateEvent {
                    name: a.name,
                    first_type: (a.type_name)(),
                    first_file: a.file,
                    first_line: a.line,
                    second_type: (b.type_name)(),
                    second_file: b.file,
                    second_line: b.line,
                });
            }
        }

        // Each event's table is its own group plus the wildcards its name
        // matches.
        let mut tables = HashMap::default();
        for event in &events {
            let type_id = (event.def.type_id)();
            tables.entry(type_id).or_insert_with(|| {
                let mine = typed.get(&type_id).map_or(&[][..], Vec::as_slice);
                Self::table_from(mine, &wildcards, type_id, event.def.name)
            });
        }
        Registry {
            listeners,
            events,
            wildcard_only,
            tables,
            late: RwLock::default(),
            problems,
        }
    }

    /// The table of one event type, from its typed listeners and every
    /// wildcard listener (both in run order), merged back into run order.
    fn table_from(
        typed: &[ListenerInfo],
        wildcards: &[ListenerInfo],
        type_id: TypeId,
        name: &str,
    ) -> Table {
        let mut listeners: Vec<ListenerInfo> = typed
            .iter()
            .chain(wildcards.iter().filter(|l| l.listens_to(type_id, name)))
            .copied()
            .collect();
        if listeners.len() > typed.len() {
            listeners.sort_by(run_order);
        }
        let mine = || listeners.iter();
        let inline: Box<[Inline]> = mine()
            .filter_map(|l| {
                let call = match l.def.run {
                    // Only a call built for this very type may be called as
                    // `fn(&E)` by `dispatch::<E>`; any other (a registration
                    // not made by the macros) is left out.
                    Run::Typed(call) if call.type_id() == type_id && call.is_unit() => {
                        Call::TypedUnit(call)
                    }
                    Run::Typed(call) if call.type_id() == type_id => Call::Typed(call),
                    Run::Typed(_) => return None,
                    Run::Sync(call) => Call::Sync(call),
                    Run::Async(call) => Call::Async(call),
                    Run::SyncCx(call) => Call::SyncCx(call),
                    Run::AsyncCx(call) => Call::AsyncCx(call),
                    Run::Queued { .. } => return None,
                };
                Some(Inline {
                    call,
                    when: l.def.when,
                    name: l.def.name,
                })
            })
            .collect();
        let plain = inline
            .iter()
            .map(|i| match i.call {
                Call::TypedUnit(call) if i.when.is_none() => call.unit_fn(),
                _ => None,
            })
            .collect();
        Table {
            all_sync: inline
                .iter()
                .all(|i| !matches!(i.call, Call::Async(_) | Call::AsyncCx(_))),
            plain,
            typed_for: type_id,
            inline,
            inline_defs: mine()
                .filter(|l| !matches!(l.def.run, Run::Queued { .. }))
                .map(|l| l.def)
                .collect(),
            queued: mine()
                .filter(|l| matches!(l.def.run, Run::Queued { .. }))
                .map(|l| l.def)
                .collect(),
        }
    }

    /// The table keyed by `TypeId::of::<E>()` (every table's `typed_for` is
    /// its key).
    fn lookup<E: Event>(&'static self) -> &'static Table {
        let type_id = TypeId::of::<E>();
        if let Some(table) = self.tables.get(&type_id) {
            return table;
        }
        self.late_table(type_id, E::NAME)
    }

    #[cold]
    fn late_table(&'static self, type_id: TypeId, name: &str) -> &'static Table {
        // A poisoned lock only means another thread panicked while inserting
        // a complete table: the map is still consistent.
        if let Some(table) = self
            .late
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&type_id)
        {
            return table;
        }
        let mut late = self.late.write().unwrap_or_else(|e| e.into_inner());
        // One leaked table per distinct generic event type, kept for the
        // program's life like the registry itself.
        late.entry(type_id).or_insert_with(|| {
            let (typed, wildcards): (Vec<ListenerInfo>, Vec<ListenerInfo>) = self
                .listeners
                .iter()
                .filter(|l| l.pattern().is_some() || l.listens_to(type_id, name))
                .partition(|l| l.pattern().is_none());
            Box::leak(Box::new(Self::table_from(
                &typed, &wildcards, type_id, name,
            )))
        })
    }

    /// Every listener, sorted by priority (higher first), then name.
    pub fn listeners(&self) -> &[ListenerInfo] {
        &self.listeners
    }

    /// The listener with this name.
    pub fn listener(&self, name: &str) -> Option<ListenerInfo> {
        self.listeners.iter().find(|l| l.name() == name).copied()
    }

    /// Every `#[event]` type that a typed listener listens to, sorted by
    /// name. (Like Laravel's `event:list`: an event no listener names has
    /// nothing to show.) Those only wildcard listeners hear are in
    /// [`wildcard_only_events`](Registry::wildcard_only_events).
    pub fn events(&self) -> &[EventInfo] {
        &self.events
    }

    /// The non-generic `#[event]` types linked into this program that no
    /// typed listener names but a wildcard listener's pattern matches,
    /// sorted by name: the rest of what dispatch can reach, for reports
    /// such as the CLI's `list` and `graph`. A queued wildcard listener's
    /// job still rebuilds them by name and JSON (see `AnyEvent`).
    pub fn wildcard_only_events(&self) -> &[EventInfo] {
        &self.wildcard_only
    }

    /// The event type with this name.
    pub fn event(&self, name: &str) -> Option<EventInfo> {
        self.events.iter().find(|e| e.name() == name).copied()
    }

    pub(crate) fn rebuilder(&self, name: &str) -> Option<FromJson> {
        self.event(name).and_then(|e| (e.def.json)().from)
    }

    /// What start-up validation found: duplicate listener or event names.
    pub fn problems(&self) -> &[RegistryError] {
        &self.problems
    }

    /// Checks that every listener `runs` selects finds the state types it
    /// needs in `state`; `runner` names what must be given them.
    pub(crate) fn check_state(
        &self,
        state: &crate::context::StateMap,
        runs: impl Fn(&ListenerInfo) -> bool,
        runner: &'static str,
    ) -> Result<(), RegistryError> {
        for listener in self.listeners.iter().filter(|l| runs(l)) {
            for need in listener.def.needs.iter().flatten() {
                if !state.has(need.type_id()) {
                    return Err(RegistryError::MissingState {
                        listener: listener.name(),
                        type_name: need.type_name(),
                        file: listener.file(),
                        line: listener.line(),
                        runner,
                    });
                }
            }
        }
        Ok(())
    }

    /// `Ok` when nothing is wrong, else the first problem (all of them are in
    /// [`problems`](Self::problems)).
    pub fn validate(&self) -> Result<(), RegistryError> {
        match self.problems.first() {
            Some(problem) => Err(problem.clone()),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("events", &self.events)
            .field("listeners", &self.listeners)
            .field("problems", &self.problems)
            .finish()
    }
}

/// Higher priority first, then by name; file and line break exact ties so
/// the order never depends on link order.
fn run_order(a: &ListenerInfo, b: &ListenerInfo) -> std::cmp::Ordering {
    b.priority()
        .cmp(&a.priority())
        .then_with(|| a.name().cmp(b.name()))
        .then_with(|| a.file().cmp(b.file()))
        .then_with(|| a.line().cmp(&b.line()))
}

/// `TypeId`s are hashes already: pass their bits through.
#[derive(Default)]
pub(crate) struct TypeIdHasher(u64);

impl Hasher for TypeIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // `TypeId` hashes through `write_u64`; mix anything else in.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}
