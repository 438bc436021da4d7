//! `crate = path` makes the generated code name the runtime through a renamed
//! dependency.
extern crate events as renamed_events;

use renamed_events::prelude::*;

#[event(crate = ::renamed_events, name = "renamed.ping")]
pub struct Ping;

#[listener(crate = ::renamed_events)]
fn on_ping(_: &Ping) {}

#[derive(Default)]
pub struct Subs;

#[subscriber(crate = "::renamed_events")]
impl Subs {
    #[listen]
    fn on_ping(&self, _: &Ping) {}
}

fn main() {
    renamed_events::assert_listening::<Ping, on_ping>();
    assert_eq!(renamed_events::listeners_for::<Ping>().len(), 2);
}
