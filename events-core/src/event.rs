//! Events: the `Event` trait that `#[event]` implements, and `AnyEvent`, the
//! type-erased view that wildcard listeners receive.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::OnceLock;

/// A domain event: something that happened, which listeners react to.
///
/// Implemented by `#[event]`; do not implement it by hand. `NAME` is the
/// event's stable name (the type's name unless `#[event(name = "a.b")]` sets
/// one): wildcard patterns match it and queued jobs record it.
///
/// ```
/// use events::prelude::*;
///
/// #[event(name = "order.shipped")]
/// struct OrderShipped { order_id: u64 }
///
/// assert_eq!(OrderShipped::NAME, "order.shipped");
/// # let _ = OrderShipped { order_id: 1 }.order_id;
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event",
    label = "a listener's parameter must be `&E` where `E` has `#[event]`",
    note = "add `#[event]` to `{Self}`, or take `&AnyEvent` with `pattern = \"..\"`"
)]
pub trait Event: Shareable {
    /// The event's name, as wildcard patterns and queued jobs see it.
    const NAME: &'static str;

    /// What `#[event]` generates for a non-generic type: its registration
    /// (name, JSON support, source position) and a slot caching its listener
    /// table, so dispatch skips the registry's hash lookup. `None` for a
    /// generic type (a static in a generic impl would be shared by every
    /// instantiation): its listeners are found by `TypeId`, and it has no
    /// JSON.
    #[doc(hidden)]
    fn __static() -> Option<&'static EventStatic<Self>> {
        None
    }
}

/// `Send + Sync + 'static`: what every event must be, since listeners and
/// queued jobs run on other threads.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an event: it is not `Send + Sync + 'static`",
    label = "listeners and queued jobs see events from other threads",
    note = "replace `Rc` with `Arc`, `RefCell` with `Mutex`, and borrowed fields with owned ones"
)]
pub trait Shareable: Any + Send + Sync + 'static {}

#[diagnostic::do_not_recommend]
impl<T: Any + Send + Sync + 'static> Shareable for T {}

/// The type-erased view of an event that the dispatcher and wildcard
/// listeners work with. Implemented for every [`Event`].
#[doc(hidden)]
pub trait ErasedEvent: Any + Send + Sync {
    /// The event's name.
    fn name(&self) -> &str;
    /// The name as `Event::NAME`, `None` for an event known only by its JSON.
    fn static_name(&self) -> Option<&'static str>;
    /// The event as JSON text, where it can be serialized.
    fn json(&self) -> Option<Result<String, serde_json::Error>>;
    /// The event as `Any`, for downcasting.
    fn as_any(&self) -> &dyn Any;
}

impl<E: Event> ErasedEvent for E {
    fn name(&self) -> &str {
        E::NAME
    }
    fn static_name(&self) -> Option<&'static str> {
        Some(E::NAME)
    }
    fn json(&self) -> Option<Result<String, serde_json::Error>> {
        to_json(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An event known only by its name and JSON: what a queued wildcard listener
/// gets when no listener in this program made the event's type known to the
/// registry. `AnyEvent::downcast_ref::<E>()` still rebuilds an `E` of that
/// name from the JSON, once, and keeps it here.
pub(crate) struct RawEvent {
    pub(crate) name: String,
    pub(crate) json: String,
    pub(crate) rebuilt: OnceLock<Option<Box<dyn ErasedEvent>>>,
}

impl RawEvent {
    pub(crate) fn new(name: String, json: String) -> RawEvent {
        RawEvent {
            name,
            json,
            rebuilt: OnceLock::new(),
        }
    }

    /// The event rebuilt as an `E`, when `E` has this name and can be
    /// deserialized from the JSON.
    fn rebuilt<E: Event>(&self) -> Option<&E> {
        if self.name != E::NAME {
            return None;
        }
        self.rebuilt
            .get_or_init(|| {
                let from_json = (def_of::<E>()?.json)().from?;
                from_json(&self.json).ok()
            })
            .as_deref()?
            .as_any()
            .downcast_ref::<E>()
    }
}

impl fmt::Debug for RawEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawEvent")
            .field("name", &self.name)
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

impl ErasedEvent for RawEvent {
    fn name(&self) -> &str {
        &self.name
    }
    fn static_name(&self) -> Option<&'static str> {
        None
    }
    fn json(&self) -> Option<Result<String, serde_json::Error>> {
        Some(Ok(self.json.clone()))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Any event, seen by name: what a wildcard listener
/// (`#[listener(pattern = "order.*")]`) takes as `&AnyEvent`.
///
/// ```
/// use events::prelude::*;
/// use serde::Serialize;
///
/// #[event(name = "order.paid")]
/// #[derive(Serialize)]
/// struct OrderPaid { amount: u32 }
///
/// let paid = OrderPaid { amount: 30 };
/// let any = AnyEvent::new(&paid);
/// assert_eq!(any.name(), "order.paid");
/// assert_eq!(any.payload().unwrap()["amount"], 30);
/// assert_eq!(any.downcast_ref::<OrderPaid>().unwrap().amount, 30);
/// ```
#[repr(transparent)]
pub struct AnyEvent {
    inner: dyn ErasedEvent,
}

impl AnyEvent {
    /// Views `event` as an `AnyEvent`.
    pub fn new<E: Event>(event: &E) -> &AnyEvent {
        Self::from_erased(event)
    }

    /// Views an erased event as an `AnyEvent`.
    #[doc(hidden)]
    pub fn from_erased(event: &dyn ErasedEvent) -> &AnyEvent {
        // SAFETY: `AnyEvent` is `repr(transparent)` over `dyn ErasedEvent`,
        // so both references have the same layout and metadata; the lifetime
        // is carried over unchanged (the `Path::new`/`OsStr` pattern).
        unsafe { &*(event as *const dyn ErasedEvent as *const AnyEvent) }
    }

    /// The event's name (`Event::NAME`).
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// The event as JSON, or `None` when its type does not implement
    /// `Serialize` (or its `Serialize` impl failed).
    pub fn payload(&self) -> Option<serde_json::Value> {
        match self.inner.json()? {
            Ok(text) => serde_json::from_str(&text).ok(),
            Err(_) => None,
        }
    }

    /// The event as JSON text, like [`payload`](Self::payload).
    pub fn payload_json(&self) -> Option<String> {
        self.inner.json()?.ok()
    }

    /// Whether the event is an `E` (see [`downcast_ref`](Self::downcast_ref)).
    pub fn is<E: Event>(&self) -> bool {
        self.downcast_ref::<E>().is_some()
    }

    /// The event as an `E`, or `None` when it is another event.
    ///
    /// A queued wildcard listener sees the event rebuilt from its job's
    /// JSON: it gets the concrete event back when its type implements
    /// `Deserialize` (rebuilt on the first call, for the first type of that
    /// name asked for); otherwise only `name` and `payload` work.
    pub fn downcast_ref<E: Event>(&self) -> Option<&E> {
        let any = self.inner.as_any();
        match any.downcast_ref::<E>() {
            Some(event) => Some(event),
            None => any.downcast_ref::<RawEvent>()?.rebuilt::<E>(),
        }
    }

    #[doc(hidden)]
    pub fn erased(&self) -> &dyn ErasedEvent {
        &self.inner
    }
}

impl fmt::Debug for AnyEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyEvent")
            .field("name", &self.name())
            .field("payload", &self.payload_json())
            .finish()
    }
}

/// An event type as `#[event]` describes it: what the registry lists and
/// how a queued job's JSON becomes the event again. The registry learns it
/// from the listeners of the type (see [`EventStatic`]), so an event costs
/// no link-time registration of its own.
#[doc(hidden)]
pub struct EventDef {
    /// `Event::NAME`.
    pub name: &'static str,
    /// `std::any::type_name` of the type, for reports.
    pub type_name: fn() -> &'static str,
    /// The type's id.
    pub type_id: fn() -> TypeId,
    /// Which of serde's traits the type implements, found by
    /// [`spec::JsonProbe`].
    pub json: fn() -> Json,
    /// Where the type is declared.
    pub file: &'static str,
    /// Line of the declaration.
    pub line: u32,
}

impl fmt::Debug for EventDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventDef")
            .field("name", &self.name)
            .field("type_name", &(self.type_name)())
            .field("file", &self.file)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

/// The `static` that `#[event]` gives a non-generic event type: its
/// [`EventDef`] and the slot that caches its listener table.
#[doc(hidden)]
pub struct EventStatic<E: ?Sized> {
    /// The type's description.
    pub def: EventDef,
    /// What the event log needs to know of it.
    pub log: LogDef,
    /// Its listener table, once dispatch has looked it up.
    pub slot: crate::registry::TableSlot<E>,
}

impl<E: ?Sized> EventStatic<E> {
    /// The static for a type described by `def`, not in the event log.
    pub const fn new(def: EventDef) -> EventStatic<E> {
        EventStatic::logged(def, LogDef::NONE)
    }

    /// The static for a type described by `def` and, for the event log,
    /// `log`.
    pub const fn logged(def: EventDef, log: LogDef) -> EventStatic<E> {
        EventStatic {
            def,
            log,
            slot: crate::registry::TableSlot::new(),
        }
    }
}

/// What `#[event(store, entity = "..", version = N)]` says of a type for
/// the event log.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct LogDef {
    /// `store`: a dispatcher with a store keeps every dispatch of it.
    pub store: bool,
    /// The version of its shape (1 unless `version` sets one).
    pub version: u32,
    /// The entity an event of the type concerns, from the template
    /// (`None` if handed another type).
    pub entity: Option<fn(&dyn Any) -> Option<crate::store::Entity>>,
    /// Its JSON Schema, where the type implements `schemars::JsonSchema`
    /// and the `schemars` feature is on.
    pub schema: fn() -> Option<serde_json::Value>,
}

fn no_schema() -> Option<serde_json::Value> {
    None
}

impl LogDef {
    /// Not stored unless every event is, version 1, no entity.
    pub const NONE: LogDef = LogDef {
        store: false,
        version: 1,
        entity: None,
        schema: no_schema,
    };

    /// A description.
    pub const fn new(
        store: bool,
        version: u32,
        entity: Option<fn(&dyn Any) -> Option<crate::store::Entity>>,
        schema: fn() -> Option<serde_json::Value>,
    ) -> LogDef {
        LogDef {
            store,
            version,
            entity,
            schema,
        }
    }
}

impl fmt::Debug for LogDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogDef")
            .field("store", &self.store)
            .field("version", &self.version)
            .field("entity", &self.entity.is_some())
            .finish()
    }
}

/// Link-time registration of a non-generic event type, submitted by
/// `#[event]`: how the registry learns of event types that no typed
/// listener names but wildcard listeners match.
#[doc(hidden)]
pub struct EventEntry {
    /// The type's description (`None` for a hand-written impl whose static
    /// describes another type).
    pub def: fn() -> Option<&'static EventDef>,
    /// What the event log needs to know of it (`None` likewise).
    pub log: fn() -> Option<&'static LogDef>,
}

inventory::collect!(EventEntry);

/// The description of `E`, when `#[event]` generated one for it. A
/// description of another type (an impl written by hand can return any
/// static) is ignored.
pub(crate) fn def_of<E: Event>() -> Option<&'static EventDef> {
    E::__static()
        .map(|s| &s.def)
        .filter(|def| (def.type_id)() == TypeId::of::<E>())
}

/// What the event log needs to know of `E`, when `#[event]` generated its
/// static ([`def_of`]'s check applies).
pub(crate) fn log_of<E: Event>() -> Option<&'static LogDef> {
    E::__static()
        .filter(|s| (s.def.type_id)() == TypeId::of::<E>())
        .map(|s| &s.log)
}

/// The event as JSON, when its type implements `Serialize`.
pub(crate) fn to_json<E: Event>(event: &E) -> Option<Result<String, serde_json::Error>> {
    (def_of::<E>()?.json)().to?(event)
}

/// How an event type converts to and from JSON: each is `None` when the
/// type lacks the serde trait it needs.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct Json {
    /// Serializes an event of the type (`None` if handed another type).
    pub to: Option<ToJson>,
    /// Rebuilds an event of the type from JSON.
    pub from: Option<FromJson>,
}

/// Serializes an event given as `Any`; `None` when it is not of the type
/// the function was made for.
#[doc(hidden)]
pub type ToJson = fn(&dyn Any) -> Option<Result<String, serde_json::Error>>;

/// Rebuilds an event from its JSON.
#[doc(hidden)]
pub type FromJson = fn(&str) -> Result<Box<dyn ErasedEvent>, serde_json::Error>;

/// Autoref specialization used by `#[event]`: one method call on
/// `&&&&Probe<T>` finds which of `Serialize` and `DeserializeOwned` `T`
/// implements. Method resolution tries the receiver as it is, then derefs
/// once at a time, and takes the first impl whose bounds hold: both traits,
/// then `Serialize` alone, then `DeserializeOwned` alone, then neither.
#[doc(hidden)]
pub mod spec {
    use super::{ErasedEvent, Event, Json};
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use std::any::Any;
    use std::marker::PhantomData;

    /// Wraps a type for method-resolution-based specialization.
    pub struct Probe<T>(pub PhantomData<T>);

    /// The probe for a JSON Schema: `&Probe<T>` has one where `T`
    /// implements `schemars::JsonSchema` (feature `schemars`), `Probe<T>`
    /// none.
    pub trait SchemaProbe {
        /// The type's JSON Schema, if it has one.
        fn __events_schema(&self) -> Option<serde_json::Value>;
    }

    #[cfg(feature = "schemars")]
    impl<T: schemars::JsonSchema> SchemaProbe for &Probe<T> {
        fn __events_schema(&self) -> Option<serde_json::Value> {
            serde_json::to_value(schemars::schema_for!(T)).ok()
        }
    }

    impl<T> SchemaProbe for Probe<T> {
        fn __events_schema(&self) -> Option<serde_json::Value> {
            None
        }
    }

    /// The probe's one method, implemented at four depths of reference.
    pub trait JsonProbe {
        /// The type's JSON support.
        fn __events_json(&self) -> Json;
    }

    impl<T: Serialize + DeserializeOwned + Event> JsonProbe for &&&Probe<T> {
        fn __events_json(&self) -> Json {
            Json {
                to: Some(to_json::<T>),
                from: Some(from_json::<T>),
            }
        }
    }

    impl<T: Serialize + Event> JsonProbe for &&Probe<T> {
        fn __events_json(&self) -> Json {
            Json {
                to: Some(to_json::<T>),
                from: None,
            }
        }
    }

    impl<T: DeserializeOwned + Event> JsonProbe for &Probe<T> {
        fn __events_json(&self) -> Json {
            Json {
                to: None,
                from: Some(from_json::<T>),
            }
        }
    }

    impl<T> JsonProbe for Probe<T> {
        fn __events_json(&self) -> Json {
            Json {
                to: None,
                from: None,
            }
        }
    }

    fn to_json<T: Serialize + 'static>(
        event: &dyn Any,
    ) -> Option<Result<String, serde_json::Error>> {
        event.downcast_ref::<T>().map(serde_json::to_string)
    }

    fn from_json<T: DeserializeOwned + Event>(
        text: &str,
    ) -> Result<Box<dyn ErasedEvent>, serde_json::Error> {
        Ok(Box::new(serde_json::from_str::<T>(text)?))
    }
}
