use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

fn is_big(id: &u64) -> bool {
    *id > 10
}

#[listener(when = is_big)]
fn on_created(event: &Created) {
    let _ = event;
}

fn main() {}
