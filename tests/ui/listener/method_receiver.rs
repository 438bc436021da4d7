use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

pub struct Handlers;

impl Handlers {
    #[listener]
    fn on_created(&self, event: &Created) {
        let _ = event;
    }
}

fn main() {}
