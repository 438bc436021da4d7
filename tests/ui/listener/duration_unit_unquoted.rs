use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

#[listener(queue = "default", timeout = 250ms)]
fn on_created(event: &Created) {
    let _ = event;
}

fn main() {}
