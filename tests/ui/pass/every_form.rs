//! Every accepted listener shape compiles, and the registry sees each one.
use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event(name = "order.created")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderCreated {
    pub id: u64,
}

#[event]
pub enum Signal {
    Up,
    Down,
}

#[derive(Debug, thiserror::Error)]
#[error("mail failed")]
pub struct MailError;

#[listener]
fn unit(_: &OrderCreated) {}

#[listener(priority = -5)]
fn flow(_: &Signal) -> Flow {
    Flow::Stop
}

#[listener(priority = 10, name = "orders.mail")]
async fn result_unit(_: &OrderCreated) -> Result<(), MailError> {
    Ok(())
}

#[listener]
async fn result_flow(_: &OrderCreated) -> Result<Flow, Box<dyn std::error::Error + Send + Sync>> {
    Ok(Flow::Continue)
}

fn is_big(order: &OrderCreated) -> bool {
    order.id > 100
}

#[listener(
    queue = "sync",
    tries = 3,
    backoff = ["1s", "5s", "15s"],
    delay = "5s",
    timeout = "30s",
    when = is_big
)]
async fn queued(_: &OrderCreated) -> Result<(), MailError> {
    Ok(())
}

#[listener(queue = "default", backoff = 2, timeout = 60)]
fn queued_sync_fn(_: &OrderCreated) {}

#[listener(pattern = "order.*")]
async fn wildcard(event: &AnyEvent) -> Result<(), MailError> {
    let _ = (event.name(), event.payload(), event.downcast_ref::<OrderCreated>());
    Ok(())
}

#[listener(pattern = "*", queue = "audit")]
fn queued_wildcard(event: &AnyEvent) {
    let _ = event.name();
}

#[derive(Default)]
pub struct OrderSubscriber;

#[subscriber]
impl OrderSubscriber {
    #[listen]
    async fn on_created(&self, _: &OrderCreated) -> Result<(), MailError> {
        Ok(())
    }

    #[listen(queue = "notifications", tries = 3)]
    async fn on_created_later(&self, _: &OrderCreated) {}

    #[listen(priority = 1)]
    fn on_signal(&self, _: &Signal) {}

    /// Not a listener: left alone.
    pub fn helper(&self) -> u8 {
        1
    }
}

fn main() {
    events::assert_listening::<OrderCreated, unit>();
    events::assert_listening::<Signal, flow>();
    events::assert_listening::<OrderCreated, queued>();
    assert_eq!(<result_unit as events::Listener>::NAME, "orders.mail");
    assert_eq!(OrderSubscriber.helper(), 1);
    // The framework's own listeners (`events.webhooks.deliver` with the
    // `webhooks` feature) are not this file's.
    let names: Vec<&str> = events::registry()
        .listeners()
        .iter()
        .map(|l| l.name())
        .filter(|n| !n.starts_with("events."))
        .collect();
    assert_eq!(names.len(), 11, "{names:?}");
}
