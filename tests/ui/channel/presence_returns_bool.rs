use events::channel;

pub struct User {
    pub id: u64,
}

#[channel("presence-room.{room}")]
async fn room(user: &User, room: String) -> bool {
    user.id > 0 && !room.is_empty()
}

fn main() {}
