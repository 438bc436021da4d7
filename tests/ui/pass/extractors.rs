//! Every form of listener parameter after the event.

use events::prelude::*;
use events::{Context, EventId, Metadata, State};
use serde::{Deserialize, Serialize};

#[derive(Clone)]
pub struct Pool;

#[derive(Clone)]
pub struct Mailer;

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

#[listener]
fn by_ref(_: &Created, _ctx: &Context) {}

#[listener]
fn by_value(_: &Created, _ctx: Context, _id: EventId, _m: Metadata) {}

#[listener]
async fn async_state(_: &Created, State(_pool): State<Pool>, State(_mail): State<Mailer>) {}

#[listener(queue = "default", tries = 3)]
async fn queued(_: &Created, ctx: Context, State(_pool): State<Pool>) -> Result<(), std::io::Error> {
    if let Some(job) = ctx.job() {
        job.release_after(std::time::Duration::from_secs(1));
    }
    Ok(())
}

#[listener(queue = "default")]
fn queued_sync(_: &Created, _ctx: &Context) {}

#[listener(pattern = "*")]
fn wildcard(_: &AnyEvent, _ctx: &Context) {}

#[listener(pattern = "*", queue = "audit")]
async fn queued_wildcard(_: &AnyEvent, _m: Metadata) {}

/// Not `Default`: its listeners take no `self`.
pub struct Stateless(#[allow(dead_code)] u8);

#[subscriber(queue = "subs", tries = 2, backoff = "1s")]
impl Stateless {
    #[listen]
    async fn created(_: &Created, State(_pool): State<Pool>) {}

    #[listen(tries = 5)]
    fn created_again(_: &Created, _ctx: &Context) {}
}

fn main() {
    events::assert_listening::<Created, by_ref>();
    events::assert_listening::<Created, queued>();
}
