use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event(store, version = 2)]
#[derive(Serialize, Deserialize)]
struct Moved {
    to: String,
}

#[upcast(Moved, from = 1)]
fn moved_v1(v: &str) -> String {
    v.to_owned()
}

fn main() {}
