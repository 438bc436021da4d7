use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

fn report(job: &events::FailedJob) {
    let _ = job;
}

#[listener(on_failure = report)]
fn on_created(event: &Created) {
    let _ = event;
}

fn main() {}
