use events::channel;

#[channel("private-session.{id}")]
pub struct Session {
    pub id: u64,
}

fn main() {}
