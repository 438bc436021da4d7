use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event(store, version = 2)]
#[derive(Serialize, Deserialize)]
struct Moved {
    to: String,
}

#[upcast(Moved)]
fn moved_v1(v: serde_json::Value) -> serde_json::Value {
    v
}

fn main() {}
