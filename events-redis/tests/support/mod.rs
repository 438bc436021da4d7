//! What the Redis tests share: the server they use and a fresh key prefix
//! per test, whose keys are deleted when the test ends.
//!
//! The tests need a Redis server: `EVENTS_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379/0`). `.ci/run` starts one when none runs. A test
//! never skips without it: it fails, saying what to start.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use events_redis::{RedisBackend, RedisOptions};

/// The server the tests use.
pub fn server_url() -> String {
    std::env::var("EVENTS_TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379/0".to_owned())
}

/// A prefix no other test (in this process or another) uses.
pub fn fresh_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "evtest-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Deletes every key under its prefix when dropped.
pub struct Cleanup {
    pub prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        delete_prefix(&self.prefix);
    }
}

/// Deletes the keys of `prefix`: its queues' (`{prefix:..}`), its own
/// (`prefix:..`) and its workers' reports (`{prefix}:..`).
pub fn delete_prefix(prefix: &str) {
    let client = redis::Client::open(server_url()).expect("EVENTS_TEST_REDIS_URL is a Redis URL");
    let Ok(mut conn) = client.get_connection() else {
        return;
    };
    for pattern in [
        format!("{{{prefix}:*"),
        format!("{prefix}:*"),
        format!("{{{prefix}}}:*"),
    ] {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query(&mut conn)
            .unwrap_or_default();
        for chunk in keys.chunks(500) {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(chunk).query(&mut conn);
        }
    }
}

/// The URL of a fresh prefix on the test server.
pub fn fresh_url() -> (String, Cleanup) {
    let prefix = fresh_prefix();
    let base = server_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    (format!("{base}{sep}prefix={prefix}"), Cleanup { prefix })
}

/// A backend on a fresh prefix, and what cleans it up.
pub fn fresh() -> (RedisBackend, Cleanup) {
    let prefix = fresh_prefix();
    let backend = RedisBackend::open_with(
        &server_url(),
        RedisOptions::new().prefix(&prefix).expect("a valid prefix"),
    )
    .expect("EVENTS_TEST_REDIS_URL is a Redis URL");
    (backend, Cleanup { prefix })
}

/// Fails the test, saying what to start, when no Redis answers.
pub fn require_redis() {
    let client = redis::Client::open(server_url()).expect("EVENTS_TEST_REDIS_URL is a Redis URL");
    let answer: redis::RedisResult<String> = client
        .get_connection()
        .and_then(|mut conn| redis::cmd("PING").query(&mut conn));
    if let Err(error) = answer {
        panic!(
            "these tests need a Redis server at {} (set EVENTS_TEST_REDIS_URL, or start one: `redis-server --daemonize yes`): {error}",
            server_url()
        );
    }
}
