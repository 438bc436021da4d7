//! Subscribers may say `Self`, gate methods with `#[cfg]`, use raw
//! identifiers; listeners may take lifetimes and be deprecated.
#![deny(warnings)]
use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct r#Match {
    pub score: u32,
}

#[derive(Default)]
pub struct Scores;

#[subscriber]
impl Scores {
    fn is_high(e: &r#Match) -> bool {
        e.score > 10
    }

    fn report(job: &events::FailedJob) {
        let _ = job;
    }

    #[listen(when = Self::is_high)]
    fn r#loop(&self, e: &r#Match) {
        let _ = e.score;
    }

    #[listen(queue = "scores", on_failure = Self::report)]
    async fn later(&self, e: &r#Match) {
        let _ = e.score;
    }

    #[listen]
    #[cfg(any())]
    fn compiled_out(&self, e: &r#Match) {
        let _ = e.score;
    }
}

#[listener]
fn with_lifetime<'a>(e: &'a r#Match) {
    let _ = e.score;
}

#[deprecated = "kept for the test"]
#[listener]
fn old_listener(e: &r#Match) {
    let _ = e.score;
}

fn main() {
    // Names without the module path (trybuild names the crate itself).
    let names: Vec<&str> = events::listeners_for::<r#Match>()
        .iter()
        .map(|l| l.name().split_once("::").unwrap().1)
        .collect();
    assert_eq!(names, ["Scores::loop", "old_listener", "with_lifetime", "Scores::later"]);
    assert_eq!(<r#Match as events::Event>::NAME, "Match");
}
