use events::channel;

pub struct User;

#[channel("session.{id}")]
fn session(_user: &User, id: u64) -> bool {
    id > 0
}

fn main() {}
