use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

#[listener(delay = "5s")]
fn on_created(event: &Created) {
    let _ = event;
}

fn main() {}
