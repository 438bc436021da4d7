use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

#[event]
pub struct Plain {
    pub id: u64,
}

#[listener(queue = "default")]
async fn store(event: &Plain) {
    let _ = event.id;
}

fn main() {}
