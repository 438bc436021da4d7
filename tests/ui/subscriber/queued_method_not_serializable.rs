use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

#[event]
pub struct Plain;

#[derive(Default)]
pub struct Subs;

#[subscriber]
impl Subs {
    #[listen(queue = "mail")]
    async fn on_plain(&self, event: &Plain) {
        let _ = event;
    }
}

fn main() {}
