use events::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[event(name = "smoke.created")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("boom")]
pub struct Boom;

#[listener(priority = 10)]
fn first(e: &Created) {
    LOG.lock().unwrap().push(format!("first {}", e.id));
}

#[listener]
async fn second(e: &Created) -> Result<(), Boom> {
    LOG.lock().unwrap().push(format!("second {}", e.id));
    Ok(())
}

#[listener(queue = "q", tries = 2, backoff = ["1s", "2s"], timeout = "5s")]
async fn queued(e: &Created) -> Result<(), Boom> {
    LOG.lock().unwrap().push(format!("queued {}", e.id));
    Ok(())
}

#[listener(pattern = "smoke.*")]
fn audit(e: &AnyEvent) {
    LOG.lock().unwrap().push(format!("audit {}", e.name()));
}

fn big(e: &Created) -> bool {
    e.id > 100
}

#[listener(when = big)]
fn only_big(e: &Created) -> Flow {
    LOG.lock().unwrap().push(format!("big {}", e.id));
    Flow::Continue
}

#[derive(Default)]
pub struct Sub;

#[subscriber]
impl Sub {
    #[listen(priority = 5)]
    async fn on_created(&self, e: &Created) -> Result<Flow, Boom> {
        LOG.lock().unwrap().push(format!("sub {}", e.id));
        Ok(Flow::Continue)
    }
    fn helper(&self) {}
}

#[tokio::test]
async fn smoke() {
    let q = events::fake_queue();
    let d = Created { id: 1 }.dispatch().await.unwrap();
    println!("{d:?} {:?}", LOG.lock().unwrap());
    q.assert_pushed::<queued>();
    q.run_pending().await.unwrap();
    println!("{:#?}", events::registry());
    println!("{:?}", LOG.lock().unwrap());
    events::assert_listening::<Created, first>();
}
