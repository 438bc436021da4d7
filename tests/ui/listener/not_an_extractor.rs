use events::prelude::*;

#[event]
pub struct Created {
    pub id: u64,
}

pub struct Pool;

#[listener]
fn on_created(event: &Created, pool: Pool) {
    let _ = (event, pool);
}

fn main() {}
