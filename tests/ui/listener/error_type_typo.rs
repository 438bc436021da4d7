use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

#[listener]
fn on_created(event: &Created) -> Result<(), MailEror> {
    let _ = event;
    Ok(())
}

fn main() {}
