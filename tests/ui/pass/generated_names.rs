//! Listeners, predicates and hooks named like the locals the generated code
//! binds (`__typed`, `__event`, `__owned`, `__cx`, `__json`, `__name`,
//! `__job`): the generated locals are hygienic, so these names resolve to the
//! user's functions.

use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Clone, Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

#[derive(Clone)]
pub struct Config;

#[listener]
fn __typed(event: &Created) -> Result<(), std::io::Error> {
    let _ = event.id;
    Ok(())
}

#[listener]
async fn __event(event: &Created) -> Result<(), std::io::Error> {
    let _ = event.id;
    Ok(())
}

#[listener(pattern = "Created*")]
fn __cx(event: &AnyEvent, ctx: &events::Context) -> Flow {
    let _ = (event.name(), ctx.metadata());
    Flow::Continue
}

#[listener(pattern = "Created*")]
async fn __cx_owned(event: &AnyEvent, events::State(config): events::State<Config>) {
    let _ = (event.name(), config);
}

#[listener(queue = "default")]
async fn __owned(event: &Created) {
    let _ = event.id;
}

#[listener(queue = "default", tries = 2)]
async fn __json(event: &Created, ctx: &events::Context) {
    let _ = (event.id, ctx.metadata());
}

#[listener(pattern = "Created*", queue = "default")]
async fn __name(event: &AnyEvent) {
    let _ = event.name();
}

/// Predicates named like the event the generated condition binds.
mod guards {
    use super::Created;
    use events::prelude::*;

    #[listener(when = __typed)]
    fn guarded(event: &Created) {
        let _ = event.id;
    }

    fn __typed(event: &Created) -> bool {
        event.id > 0
    }

    #[listener(pattern = "Created*", when = __event)]
    async fn guarded_any(event: &AnyEvent) {
        let _ = event.name();
    }

    fn __event(event: &AnyEvent) -> bool {
        !event.name().is_empty()
    }
}

fn __job(job: &events::FailedJob) {
    let _ = &job.error;
}

#[listener(queue = "default", on_failure = __job)]
fn hooked(event: &Created) {
    let _ = event.id;
}

fn main() {
    events::assert_listening::<Created, __typed>();
    events::assert_listening::<Created, __owned>();
}
