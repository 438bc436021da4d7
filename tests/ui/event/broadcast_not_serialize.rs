use events::prelude::*;

#[event(broadcast = ["messages"], broadcast_now)]
struct MessageReady {
    text: String,
}

fn main() {}
