use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

#[listener]
fn on_two(event: &Created, extra: &Created) {
    let _ = (event, extra);
}

fn main() {}
