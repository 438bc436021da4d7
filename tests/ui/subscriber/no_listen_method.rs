use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

#[derive(Default)]
pub struct Subs;

#[subscriber]
impl Subs {
    pub fn helper(&self) {}
}

fn main() {}
