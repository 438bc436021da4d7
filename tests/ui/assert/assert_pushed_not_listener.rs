use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

#[event]
pub struct Cancelled;

#[listener(queue = "default")]
fn on_created(event: &Created) {
    let _ = event;
}

fn main() {
    let queue = events::fake_queue();
    queue.assert_pushed::<Cancelled>();
}
