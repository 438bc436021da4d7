//! The shared backend conformance suite, against a real Redis server (see
//! `support` for which), each case on a key prefix of its own.

mod support;

events_core::conformance_tests!(|| async {
    support::require_redis();
    support::fresh()
});
