use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

#[derive(Default)]
pub struct Subs;

#[subscriber]
impl Subs {
    #[listen]
    fn on_created(event: &Created) {
        let _ = event;
    }
}

fn main() {}
