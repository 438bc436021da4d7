//! Dispatch calls typed listeners as `fn(&E)` without a downcast, trusting
//! that the table it reads is `E`'s. The table comes from a per-type slot
//! that `Event::__table_slot` hands out, and `Event` is a safe trait: a
//! hand-written impl must not be able to break that trust. (Reported in
//! review: a slot shared between two types segfaulted in release builds.)
//!
//! Sharing another type's slot is now a type error
//! (`tests/ui/event/shared_table_slot.rs`); what a safe impl can still do,
//! leak a fresh slot on every call or share none, must dispatch correctly.

use std::sync::Mutex;

use events::__private::TableSlot;
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

/// Not declared with `#[event]`: its impl leaks a new slot on every call.
pub struct Leaky {
    pub number: [usize; 3],
}

impl Event for Leaky {
    const NAME: &'static str = "leaky";

    fn __table_slot() -> Option<&'static TableSlot<Self>> {
        Some(Box::leak(Box::new(TableSlot::new())))
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
