use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

#[event]
pub struct Cancelled;

#[listener]
fn on_created(event: &Created) {
    let _ = event;
}

fn main() {
    events::assert_listening::<Cancelled, on_created>();
}
