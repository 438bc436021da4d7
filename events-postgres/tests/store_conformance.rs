//! The store conformance suite against the machine's PostgreSQL, one fresh
//! database per case (see `support`).

mod support;

events_core::store_conformance_tests!(support::fresh);
