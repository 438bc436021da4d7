//! The memory backend runs the exported conformance suite
//! (`events::conformance_tests!`, feature `conformance`) the way a backend
//! in another crate does; `events-sqlite` runs it in its own tests.

events::conformance_tests!(|| async { events::queue::MemoryBackend::default() });
