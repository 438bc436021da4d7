use events::prelude::*;
use events::State;

#[event]
pub struct Created {
    pub id: u64,
}

pub struct Pool;

#[listener]
fn on_created(event: &Created, State(pool): State<Pool>) {
    let _ = (event, pool);
}

fn main() {}
