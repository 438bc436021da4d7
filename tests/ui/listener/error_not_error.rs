use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

#[listener]
async fn fails(event: &Created) -> Result<(), u32> {
    let _ = event;
    Ok(())
}

fn main() {}
