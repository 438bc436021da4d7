use events::channel;
use events::channel::Member;

pub struct User {
    pub id: u64,
}

#[channel("private-session.{id}")]
fn session(user: &User, id: u64) -> Option<Member> {
    (user.id == id).then(|| Member::new(id.to_string()))
}

fn main() {}
