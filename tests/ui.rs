//! Compile-time checks, pinned with trybuild: `tests/ui/<attribute>/<mistake>.rs`
//! with the compiler's output in `.stderr`, one mistake per file.
//!
//! The expected output depends on the compiler's wording: these files were
//! written on rustc 1.95.0, the toolchain CI uses (the machine's only one).
//! It also depends on the features: rustc shortens a path (`Event`,
//! `State<T>`) only while no other crate in the build has an item of that
//! name, and the `dashboard` feature brings axum's `State` and SSE `Event`.
//! The files are pinned as CI runs them, with `--all-features`. After an
//! intended change: `TRYBUILD=overwrite cargo test --all-features --test
//! ui`, then read the diff before committing.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/event/*.rs");
    t.compile_fail("tests/ui/listener/*.rs");
    t.compile_fail("tests/ui/subscriber/*.rs");
    t.compile_fail("tests/ui/assert/*.rs");
    t.compile_fail("tests/ui/channel/*.rs");
    t.compile_fail("tests/ui/upcast/*.rs");
}
