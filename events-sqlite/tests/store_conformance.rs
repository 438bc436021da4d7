//! The SQLite event store runs the exported store conformance suite, each
//! case on a fresh file in its own temporary directory.

use events_sqlite::SqliteStore;

events_core::store_conformance_tests!(|| async {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path().join("events.sqlite")).expect("a fresh store file");
    (store, dir)
});
