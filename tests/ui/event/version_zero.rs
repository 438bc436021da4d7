use events::prelude::*;
use serde::Serialize;

#[event(store, version = 0)]
#[derive(Serialize)]
struct Booked {
    appointment_id: u64,
}

fn main() {}
