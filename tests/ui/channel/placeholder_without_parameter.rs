use events::channel;

pub struct User {
    pub id: u64,
}

#[channel("private-session.{id}")]
fn session(user: &User) -> bool {
    user.id == 7
}

fn main() {}
