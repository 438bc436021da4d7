// A hand-written `Event` impl cannot hand out another type's table slot:
// dispatch calls a slot's listeners as `fn(&Self)`, so sharing one would
// call `Real`'s listeners with an `Impostor`.
use events::Event;
use events::prelude::*;

#[event]
pub struct Real {
    pub text: String,
}

pub struct Impostor {
    pub number: [usize; 3],
}

impl Event for Impostor {
    const NAME: &'static str = "impostor";

    fn __table_slot() -> Option<&'static events::__private::TableSlot<Self>> {
        <Real as Event>::__table_slot()
    }
}

fn main() {}
