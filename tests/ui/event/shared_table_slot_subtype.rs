// A table slot cannot be shared through subtyping either: `W<for<'a>
// fn(&'a String)>` is a subtype of `W<fn(&'static String)>` but a different
// type, with other listeners.
use events::Event;
use events::__private::{EventDef, EventStatic, Json, TypeId};

pub struct W<T>(pub T);
type HigherRanked = W<for<'a> fn(&'a String)>;
type Static = W<fn(&'static String)>;

fn no_json() -> Json {
    Json { to: None, from: None }
}

static STATIC: EventStatic<HigherRanked> = EventStatic::new(EventDef {
    name: "higher_ranked",
    type_name: || "HigherRanked",
    type_id: TypeId::of::<HigherRanked>,
    json: no_json,
    file: file!(),
    line: line!(),
});

impl Event for Static {
    const NAME: &'static str = "static";

    fn __static() -> Option<&'static EventStatic<Self>> {
        Some(&STATIC)
    }
}

fn main() {}
