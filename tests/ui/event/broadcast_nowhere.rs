use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event(broadcast_as = "message_post")]
#[derive(Serialize, Deserialize)]
struct Said {
    id: u64,
}

fn main() {}
