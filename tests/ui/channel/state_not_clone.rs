use events::{State, channel};

pub struct User {
    pub id: u64,
}

/// Not `Clone`: the server hands each callback a clone of its state.
pub struct Pool;

#[channel("private-session.{id}")]
fn session(user: &User, id: u64, State(pool): State<Pool>) -> bool {
    let _ = pool;
    user.id == id
}

fn main() {}
