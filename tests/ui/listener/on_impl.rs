use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

#[derive(Default)]
pub struct Handlers;

#[listener]
impl Handlers {
    fn on_created(&self, event: &Created) {
        let _ = event;
    }
}

fn main() {}
