use events::channel;

pub struct User {
    pub id: u64,
}

#[channel("private-session.{id}")]
fn session(user: &User, id: u64, team: String) -> bool {
    user.id == id && !team.is_empty()
}

fn main() {}
