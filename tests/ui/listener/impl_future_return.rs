use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

#[listener]
fn later(event: &Created) -> impl std::future::Future<Output = ()> {
    let _ = event;
    async {}
}

fn main() {}
