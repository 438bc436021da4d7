//! A generic event type: dispatch builds its listener table on first use.
use events::prelude::*;

#[event(name = "wrapped")]
pub struct Wrapped<T: Send + Sync + 'static> {
    pub inner: T,
}

#[listener]
fn on_wrapped_u8(event: &Wrapped<u8>) {
    let _ = event.inner;
}

fn main() {
    assert_eq!(events::listeners_for::<Wrapped<u8>>().len(), 1);
    assert_eq!(events::listeners_for::<Wrapped<u16>>().len(), 0);
}
