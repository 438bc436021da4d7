use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

#[listener]
fn on_text(text: &str) {
    let _ = text;
}

fn main() {}
