//! A hand-written `Event` impl that shares another type's table slot must not
//! make dispatch call a listener with the wrong event type. (Reported in
//! review: it segfaulted in release builds.)

use std::sync::Mutex;

use events::Event;
use events::prelude::*;

static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[event]
pub struct Real {
    pub text: String,
}

#[listener]
fn read_text(e: &Real) {
    SEEN.lock().unwrap().push(e.text.clone());
}

/// Not declared with `#[event]`: its impl borrows `Real`'s cache slot.
pub struct Impostor {
    pub number: [usize; 3],
}

impl Event for Impostor {
    const NAME: &'static str = "impostor";

    fn __table_slot() -> Option<&'static events::__private::TableSlot> {
        <Real as Event>::__table_slot()
    }
}

#[tokio::test]
async fn a_shared_table_slot_never_reaches_another_types_listeners() {
    Real {
        text: "hello".into(),
    }
    .dispatch()
    .await
    .unwrap();
    let done = Impostor { number: [1, 2, 3] }.dispatch().await.unwrap();
    assert_eq!(done.ran(), 0, "`read_text` takes `&Real`, not `&Impostor`");
    assert_eq!(*SEEN.lock().unwrap(), ["hello"]);
    assert_eq!(Impostor { number: [0; 3] }.number.len(), 3);
}
