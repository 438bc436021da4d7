use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

#[listener(timeout = 30)]
fn on_created(event: &Created) {
    let _ = event;
}

fn main() {}
