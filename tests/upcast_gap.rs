//! An event whose upcasters leave a gap: a dispatcher with a store and a
//! replay refuse to start, saying which version has none.

use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event(name = "gap.moved", store, version = 3)]
#[derive(Serialize, Deserialize)]
struct Moved {
    to: String,
}

#[upcast(Moved, from = 1)]
fn moved_v1(v: serde_json::Value) -> serde_json::Value {
    v
}

#[listener(name = "gap::project")]
fn project(_: &Moved) {}

#[tokio::test]
async fn a_gap_in_the_chain_is_a_startup_error() {
    let store = events::store::Store::memory();
    let error = events::Dispatcher::builder()
        .store(store.clone())
        .build()
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("`gap.moved` is at version 3") && text.contains("none reads version 2"),
        "{text}"
    );
    // Without a store, nothing reads old records: no error.
    events::Dispatcher::builder().build().unwrap();
    let replay = store
        .replay()
        .listener("gap::project")
        .run()
        .await
        .unwrap_err();
    assert!(replay.to_string().contains("cannot run"), "{replay}");
    let _ = Moved { to: "x".into() }.to;
}
