use events::prelude::*;
use serde::{Deserialize, Serialize};

fn rooms(e: &Said) -> Vec<String> {
    vec![format!("room.{}", e.id)]
}

#[event(broadcast_on = rooms)]
#[derive(Serialize, Deserialize)]
struct Said {
    id: u64,
}

fn main() {}
