//! The SQLite backend runs the exported conformance suite, each case on a
//! fresh file in its own temporary directory.

use events_sqlite::SqliteBackend;

events_core::conformance_tests!(|| async {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let backend =
        SqliteBackend::open(&dir.path().join("queue.sqlite")).expect("a fresh queue file");
    (backend, dir)
});
