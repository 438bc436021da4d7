use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

#[listener]
fn count(event: &Created) -> u64 {
    event.id
}

fn main() {}
