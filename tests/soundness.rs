//! Dispatch calls typed listeners as `fn(&E)` without a downcast, trusting
//! that the table it reads is `E`'s. The table comes from a per-type slot in
//! the static that `Event::__static` hands out, and `Event` is a safe trait:
//! a hand-written impl must not be able to break that trust. (Reported in
//! review: a slot shared between two types segfaulted in release builds.)
//!
//! Sharing another type's static is a type error
//! (`tests/ui/event/shared_table_slot.rs`); what a safe impl can still do,
//! leak a fresh static on every call, describe another type in it, or share
//! none, must dispatch correctly and mislead nothing.

use std::sync::Mutex;

use events::__private::{EventDef, EventStatic, Json, TypeId};
use events::Event;
use events::prelude::*;

static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[event]
pub struct Real {
    pub text: String,
}

#[listener]
fn read_text(e: &Real) {
    SEEN.lock().unwrap().push(format!("real {}", e.text));
}

/// Not declared with `#[event]`: its impl leaks a new static on every
/// call, and the description in it claims to be `Real`'s and serializable.
pub struct Leaky {
    pub number: [usize; 3],
}

fn claims_json() -> Json {
    Json {
        to: Some(|_| Some(Ok("{}".to_owned()))),
        from: None,
    }
}

impl Event for Leaky {
    const NAME: &'static str = "leaky";

    fn __static() -> Option<&'static EventStatic<Self>> {
        Some(Box::leak(Box::new(EventStatic::new(EventDef {
            name: "Real",
            type_name: || "impostor",
            type_id: TypeId::of::<Real>,
            json: claims_json,
            file: file!(),
            line: line!(),
        }))))
    }
}

#[listener]
fn read_number(e: &Leaky) {
    SEEN.lock().unwrap().push(format!("leaky {}", e.number[2]));
}

#[tokio::test]
async fn hand_written_slots_reach_their_own_types_listeners_only() {
    Real {
        text: "hello".into(),
    }
    .dispatch()
    .await
    .unwrap();
    for _ in 0..2 {
        let done = Leaky { number: [1, 2, 3] }.dispatch().await.unwrap();
        assert_eq!(done.ran(), 1);
    }
    assert_eq!(*SEEN.lock().unwrap(), ["real hello", "leaky 3", "leaky 3"]);
}

#[test]
fn a_description_of_another_type_is_ignored() {
    let leaky = Leaky { number: [1, 2, 3] };
    // The registry lists `Real` once, from `Real`'s own static.
    let real = events::registry().event("Real").unwrap();
    assert_eq!(real.type_name(), "soundness::Real");
    assert!(events::registry().event("leaky").is_none());
    // `Leaky` is not `Serialize`, whatever its static says.
    assert_eq!(AnyEvent::new(&leaky).payload_json(), None);
}
