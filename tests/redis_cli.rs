//! The operator commands on the Redis queue, reached the way an operator
//! reaches it: by URL, from `--queue-url` and from `EVENTS_QUEUE_URL`.
//!
//! Needs a Redis server: `EVENTS_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379/0`); each test uses a key prefix of its own and
//! deletes its keys. Fails, saying what to start, when none answers.

use std::sync::atomic::{AtomicUsize, Ordering};

use events::cli::{CliError, run_to, run_with_env};
use events::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
#[error("the label printer jammed")]
pub struct Jammed;

#[event(name = "parcel.shipped")]
#[derive(Serialize, Deserialize)]
pub struct ParcelShipped {
    pub id: u64,
    pub jam: bool,
}

static PRINTED: AtomicUsize = AtomicUsize::new(0);

#[listener(queue = "labels", tries = 1)]
async fn print_label(e: &ParcelShipped) -> Result<(), Jammed> {
    if e.jam {
        return Err(Jammed);
    }
    PRINTED.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

fn server_url() -> String {
    std::env::var("EVENTS_TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379/0".to_owned())
}

/// A URL on a fresh prefix, and what deletes its keys at the end.
fn fresh() -> (String, Cleanup) {
    let prefix = format!(
        "evcli-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let base = server_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    (format!("{base}{sep}prefix={prefix}"), Cleanup(prefix))
}

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(mut conn) = redis::Client::open(server_url()).and_then(|c| c.get_connection())
        else {
            return;
        };
        for pattern in [format!("{{{}:*", self.0), format!("{}:*", self.0)] {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query(&mut conn)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
            }
        }
    }
}

async fn cli(args: &[&str]) -> Result<String, CliError> {
    let mut out = Vec::new();
    run_to(
        std::iter::once("app").chain(args.iter().copied()),
        None,
        &mut out,
    )
    .await?;
    Ok(String::from_utf8(out).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_takes_a_redis_url() {
    let (url, _cleanup) = fresh();
    let queue = events::queue::connect(&url).await.unwrap();
    let dispatcher = events::Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap();
    dispatcher
        .dispatch(ParcelShipped { id: 1, jam: true })
        .await
        .unwrap_or_else(|e| {
            panic!(
                "this test needs a Redis server at {} (set EVENTS_TEST_REDIS_URL or start `redis-server`): {}",
                server_url(),
                events::error::Chain(&e)
            )
        });
    dispatcher
        .dispatch(ParcelShipped { id: 2, jam: false })
        .await
        .unwrap();

    let monitor = cli(&["--queue-url", &url, "monitor"]).await.unwrap();
    assert_eq!(
        monitor,
        "QUEUE   READY  DELAYED  RESERVED  FAILED\nlabels      2        0         0       0\n"
    );
    let out = cli(&["--queue-url", &url, "work", "--stop-when-empty"])
        .await
        .unwrap();
    assert!(
        out.contains("finished 2 job(s) in 2 tries: 1 succeeded, 1 failed"),
        "{out}"
    );
    assert_eq!(PRINTED.load(Ordering::SeqCst), 1);

    // The same queue from the environment, as on another machine.
    let env = [("EVENTS_QUEUE_URL", url.as_str())];
    let mut out = Vec::new();
    run_with_env(["app", "failed"], None, env, &mut out)
        .await
        .unwrap();
    let failed = String::from_utf8(out).unwrap();
    assert!(failed.contains("redis_cli::print_label"), "{failed}");
    assert!(failed.contains("the label printer jammed"), "{failed}");

    let id = queue.failed().await.unwrap()[0].id.clone();
    let out = cli(&["--queue-url", &url, "retry", &id]).await.unwrap();
    assert!(
        out.starts_with(&format!("failed job {id} put back on its queue as ")),
        "{out}"
    );
    assert_eq!(queue.size("labels").await.unwrap(), 1);
    let out = cli(&["--queue-url", &url, "clear", "labels", "--force"])
        .await
        .unwrap();
    assert!(out.contains('1'), "{out}");
    assert!(queue.stats().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_redis_url_with_a_mistake_is_refused_in_words() {
    let error = cli(&["--queue-url", "redis://127.0.0.1/0?prefix=a:b", "monitor"])
        .await
        .unwrap_err();
    let text = events::error::Chain(&error).to_string();
    assert!(text.contains("the prefix `a:b` holds `:`"), "{text}");
}
