//! The event store conformance suite run against the memory store, through
//! the facade (`events::store_conformance_tests!`, feature `conformance`),
//! the way a store in another crate runs it.

events::store_conformance_tests!(|| async { events::store::MemoryStore::default() });
