// A hand-written `Event` impl cannot hand out another type's static (and
// the table slot in it):
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

    fn __static() -> Option<&'static events::__private::EventStatic<Self>> {
        <Real as Event>::__static()
    }
}

fn main() {}
