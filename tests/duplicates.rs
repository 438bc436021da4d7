//! Start-up validation: two listeners pinned to one name make the registry
//! invalid, and every way of dispatching says so in plain words. (Its own
//! test binary, since the whole registry is affected.)

use events::RegistryError;
use events::prelude::*;

#[event]
pub struct Booked;

#[event(name = "Booked")]
pub struct AlsoNamedBooked;

#[listener(name = "notify")]
fn notify_by_mail(_: &Booked) {}

#[listener(name = "notify")]
fn notify_by_sms(_: &Booked) {}

// The registry learns event types through their listeners: one listener
// makes the second `Booked` known, and its name a duplicate.
#[listener]
fn archive(_: &AlsoNamedBooked) {}

#[test]
fn duplicates_are_reported_with_both_locations() {
    let problems = events::registry().problems();
    assert_eq!(problems.len(), 2, "{problems:?}");
    let RegistryError::DuplicateListener {
        name,
        first_file,
        first_line,
        second_file,
        second_line,
    } = &problems[0]
    else {
        panic!("expected a duplicate listener first: {problems:?}");
    };
    assert_eq!(*name, "notify");
    assert_eq!(
        (*first_file, *second_file),
        ("tests/duplicates.rs", "tests/duplicates.rs")
    );
    assert_eq!((*first_line, *second_line), (15, 18));
    assert_eq!(
        problems[0].to_string(),
        "two listeners are named `notify`: one at tests/duplicates.rs:15, one at tests/duplicates.rs:18; \
         give one of them another `name = \"..\"`"
    );
    assert_eq!(
        problems[1].to_string(),
        "two events are named `Booked`: `duplicates::AlsoNamedBooked` at tests/duplicates.rs:12 and \
         `duplicates::Booked` at tests/duplicates.rs:9; give one of them another `#[event(name = \"..\")]`"
    );
}

#[tokio::test]
async fn an_invalid_registry_refuses_to_dispatch() {
    let error = events::Dispatcher::builder().build().unwrap_err();
    assert!(matches!(
        error,
        RegistryError::DuplicateListener { name: "notify", .. }
    ));
    let error = Booked.dispatch().await.unwrap_err();
    assert_eq!(error.to_string(), "the event registry is invalid");
    let source = std::error::Error::source(&error).unwrap().to_string();
    assert!(
        source.starts_with("two listeners are named `notify`"),
        "{source}"
    );
}
