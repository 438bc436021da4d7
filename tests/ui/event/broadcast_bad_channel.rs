use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event(broadcast = ["chat room.{id}"])]
#[derive(Serialize, Deserialize)]
struct Said {
    id: u64,
}

fn main() {}
