use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

use std::rc::Rc;

async fn pause() {}

#[listener]
async fn holds_rc(event: &Created) {
    let shared = Rc::new(event.id);
    pause().await;
    let _ = shared;
}

fn main() {}
