use events::prelude::*;

#[event(store)]
struct Booked {
    appointment_id: u64,
}

fn main() {
    let _ = Booked { appointment_id: 1 }.appointment_id;
}
