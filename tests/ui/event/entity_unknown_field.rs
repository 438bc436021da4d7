use events::prelude::*;
use serde::Serialize;

#[event(store, entity = "appointment:{appointment}")]
#[derive(Serialize)]
struct Booked {
    appointment_id: u64,
}

fn main() {}
