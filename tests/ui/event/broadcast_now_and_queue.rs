use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event(broadcast = ["chat"], broadcast_now, broadcast_queue = "realtime")]
#[derive(Serialize, Deserialize)]
struct Said {
    id: u64,
}

fn main() {}
