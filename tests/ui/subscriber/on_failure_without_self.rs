use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

#[derive(Default)]
pub struct Subs;

#[subscriber]
impl Subs {
    #[listen(queue = "default", on_failure = failed)]
    async fn on_created(&self, event: &Created) {
        let _ = event;
    }

    fn failed(job: &events::FailedJob) {
        let _ = job;
    }
}

fn main() {}
