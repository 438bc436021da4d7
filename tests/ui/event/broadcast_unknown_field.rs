use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event(broadcast = ["messages", "private-session.{sesion_id}"])]
#[derive(Serialize, Deserialize)]
struct MessageReady {
    session_id: u64,
}

fn main() {}
