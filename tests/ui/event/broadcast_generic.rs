use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event(broadcast = ["chat"])]
#[derive(Serialize, Deserialize)]
struct Said<T> {
    body: T,
}

fn main() {}
