use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

fn report(message: &str) {
    let _ = message;
}

#[listener(queue = "default", on_failure = report)]
fn on_created(event: &Created) {
    let _ = event;
}

fn main() {}
