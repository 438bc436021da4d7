use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event]
#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: u64,
}

#[event]
pub struct HoldsRc {
    pub shared: std::rc::Rc<u64>,
}

fn main() {}
