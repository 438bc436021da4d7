use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

#[listener]
fn audit(event: &AnyEvent) {
    let _ = event;
}

fn main() {}
