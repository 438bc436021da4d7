// A table slot cannot be shared through subtyping either: `W<for<'a>
// fn(&'a String)>` is a subtype of `W<fn(&'static String)>` but a different
// type, with other listeners.
use events::Event;
use events::__private::TableSlot;

pub struct W<T>(pub T);
type HigherRanked = W<for<'a> fn(&'a String)>;
type Static = W<fn(&'static String)>;

static SLOT: TableSlot<HigherRanked> = TableSlot::new();

impl Event for Static {
    const NAME: &'static str = "static";

    fn __table_slot() -> Option<&'static TableSlot<Self>> {
        Some(&SLOT)
    }
}

fn main() {}
