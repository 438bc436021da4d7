use events::prelude::*;

#[event]
pub struct Created {
    pub id: u64,
}

#[derive(Default)]
pub struct Subs;

#[subscriber(tries = 3)]
impl Subs {
    #[listen]
    fn on_created(&self, event: &Created) {
        let _ = event;
    }
}

fn main() {}
