use events::channel;

pub struct User {
    pub id: u64,
}

pub struct SessionId(u64);

#[channel("private-session.{id}")]
fn session(user: &User, id: SessionId) -> bool {
    user.id == id.0
}

fn main() {}
