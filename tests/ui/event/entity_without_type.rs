use events::prelude::*;
use serde::Serialize;

#[event(store, entity = "{appointment_id}")]
#[derive(Serialize)]
struct Booked {
    appointment_id: u64,
}

fn main() {}
