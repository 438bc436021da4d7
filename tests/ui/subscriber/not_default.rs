use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

pub struct Subs {
    pub prefix: String,
}

#[subscriber]
impl Subs {
    #[listen]
    fn on_created(&self, event: &Created) {
        let _ = (&self.prefix, event);
    }
}

fn main() {}
