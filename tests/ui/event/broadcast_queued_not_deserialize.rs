use events::prelude::*;
use serde::Serialize;

#[event(broadcast = ["messages"])]
#[derive(Serialize)]
struct MessageReady {
    text: String,
}

fn main() {}
