use events::prelude::*;
use events::Context;

#[event]
pub struct Created {
    pub id: u64,
}

#[listener]
fn on_created(event: &Created, ctx: &mut Context) {
    let _ = (event, ctx);
}

fn main() {}
