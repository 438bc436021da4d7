//! `events::install` makes a dispatcher the global one, even after the
//! default one has served dispatches. Its own test binary: the global
//! dispatcher is process-wide.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use events::prelude::*;
use serde::{Deserialize, Serialize};

static RAN_IN_PROCESS: AtomicUsize = AtomicUsize::new(0);

#[event]
#[derive(Serialize, Deserialize)]
pub struct Signup {
    pub id: u64,
}

#[listener(queue = "mail")]
async fn welcome(_: &Signup) {
    RAN_IN_PROCESS.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test]
async fn install_takes_over_from_the_default_dispatcher() {
    // Default: no queue configured, so the job runs in this process.
    assert_eq!(Signup { id: 1 }.dispatch().await.unwrap().queued(), 1);
    for _ in 0..100 {
        if RAN_IN_PROCESS.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(RAN_IN_PROCESS.load(Ordering::SeqCst), 1);

    let queue = events::queue::connect("memory://").await.unwrap();
    let dispatcher = events::Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap();
    assert!(events::install(dispatcher).is_ok());
    let again = events::Dispatcher::builder().build().unwrap();
    assert!(events::install(again).is_err(), "only one install");

    // Installed: the job waits in the installed dispatcher's queue.
    events::dispatch(Signup { id: 2 }).await.unwrap();
    Signup { id: 3 }.dispatch().await.unwrap();
    assert_eq!(queue.size("mail").await.unwrap(), 2);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(RAN_IN_PROCESS.load(Ordering::SeqCst), 1);
}
