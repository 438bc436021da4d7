//! `EVENTS_QUEUE_URL` picks the default dispatcher's queue when the program
//! configures none. Its own test binary: the default dispatcher is built once
//! per process, from the environment at the first dispatch.

use events::prelude::*;
use events::queue::Queue;
use serde::{Deserialize, Serialize};

#[event(name = "env.ping")]
#[derive(Serialize, Deserialize)]
pub struct EnvPing {
    pub n: u32,
}

#[listener(queue = "env")]
fn env_listener(_: &EnvPing) {}

#[tokio::test]
async fn the_default_dispatcher_uses_the_queue_the_environment_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("env.sqlite");
    // SAFETY: the only test in this binary, before any thread reads the
    // environment.
    unsafe { std::env::set_var("EVENTS_QUEUE_URL", format!("sqlite://{}", path.display())) };

    let done = EnvPing { n: 1 }.dispatch().await.unwrap();
    assert_eq!(done.queued(), 1);
    assert_eq!(
        events::global().unwrap().queue().unwrap().url(),
        format!("sqlite://{}", path.display())
    );

    // `Queue::open` is events-core's: this binary never names the SQLite
    // crate, so this also shows its `sqlite` scheme registration survives
    // linking.
    let file = Queue::open(&format!("sqlite://{}", path.display())).unwrap();
    assert_eq!(
        file.size("env").await.unwrap(),
        1,
        "the job is in the file, waiting for a worker"
    );
    let report = events::Worker::new(file.clone())
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!(report.succeeded, 1);
}
