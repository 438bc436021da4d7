// `#[channel]` in its forms: sync and async, private and presence, one
// placeholder, several, none; raw identifiers; a renamed crate path.
use events::channel;
use events::channel::Member;

pub struct User {
    pub id: u64,
}

#[channel("private-session.{id}")]
fn session(user: &User, id: u64) -> bool {
    user.id == id
}

#[channel("presence-room.{room}")]
async fn room(user: &User, room: String) -> Option<Member> {
    (!room.is_empty()).then(|| Member::new(user.id.to_string()))
}

#[channel("private-team.{team}.{type}")]
fn team(_user: &User, team: String, r#type: String) -> bool {
    team != r#type
}

#[channel("private-admin", crate = ::events)]
fn admin(user: &User) -> bool {
    user.id == 1
}

fn main() {
    let patterns: Vec<&str> = events::channel::registered()
        .iter()
        .map(|def| def.pattern)
        .collect();
    assert_eq!(
        patterns,
        [
            "presence-room.{room}",
            "private-admin",
            "private-session.{id}",
            "private-team.{team}.{type}"
        ]
    );
}
