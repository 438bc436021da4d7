//! What `tests/redis_crash.rs` needs around its processes: the shared test
//! Redis with a fresh key prefix per test (deleted when the test ends), a
//! private `redis-server` for the tests that stop or restart Redis, child
//! processes that are killed if the test fails, and the run records the
//! children leave in a directory.
//!
//! The shared server is `EVENTS_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379/0`); the private ones need `redis-server` on the
//! `PATH`. A test never skips without them: it fails, saying what to start
//! or install.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

// --- the shared server and key prefixes ---------------------------------------------

/// The shared server the tests use.
pub fn server_url() -> String {
    std::env::var("EVENTS_TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379/0".to_owned())
}

/// Fails the test, saying what to start, when no Redis answers at `url`.
pub fn require_redis(url: &str) {
    let answer: redis::RedisResult<String> = redis::Client::open(url)
        .and_then(|client| client.get_connection())
        .and_then(|mut conn| redis::cmd("PING").query(&mut conn));
    if let Err(error) = answer {
        panic!(
            "this test needs a Redis server at {url} (set EVENTS_TEST_REDIS_URL, or start one: `redis-server --daemonize yes`): {error}"
        );
    }
}

/// A prefix no other test (in this process or another) uses.
pub fn fresh_prefix(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "evcrash-{what}-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `base` (a server URL) with `?prefix=prefix`.
pub fn with_prefix(base: &str, prefix: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}prefix={prefix}")
}

/// Deletes every key under its prefix on its server when dropped, even
/// when the test panics.
pub struct Cleanup {
    pub server: String,
    pub prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        delete_prefix(&self.server, &self.prefix);
    }
}

/// The keys of `prefix` on the server at `url`: its queues' (`{prefix:..}`)
/// and its own (`prefix:..`).
pub fn keys_of(url: &str, prefix: &str) -> Vec<String> {
    let mut conn = connect(url);
    let mut all = Vec::new();
    for pattern in [format!("{{{prefix}:*"), format!("{prefix}:*")] {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query(&mut conn)
            .expect("KEYS answers");
        all.extend(keys);
    }
    all
}

/// Deletes the keys of `prefix` on the server at `url`.
pub fn delete_prefix(url: &str, prefix: &str) {
    let Ok(mut conn) = redis::Client::open(url).and_then(|client| client.get_connection()) else {
        return;
    };
    for pattern in [format!("{{{prefix}:*"), format!("{prefix}:*")] {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query(&mut conn)
            .unwrap_or_default();
        for chunk in keys.chunks(500) {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(chunk).query(&mut conn);
        }
    }
}

/// A plain connection to the server at `url`.
pub fn connect(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .and_then(|client| client.get_connection())
        .unwrap_or_else(|error| panic!("cannot connect to Redis at {url}: {error}"))
}

// --- a private redis-server -----------------------------------------------------------

/// A `redis-server` of the test's own on a free port, with AOF on
/// (`appendfsync everysec`) and its files in `dir`. Killed when dropped.
pub struct PrivateRedis {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts one; fails the test, saying what to install, when
    /// `redis-server` cannot be started.
    pub fn start(dir: &Path) -> PrivateRedis {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut server = PrivateRedis {
                port,
                dir: dir.to_owned(),
                child: None,
            };
            match server.launch() {
                Ok(()) => return server,
                Err(why) => last = why,
            }
        }
        panic!("could not start a private redis-server: {last}");
    }

    /// Its URL (database 0), without a prefix.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn launch(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("redis-server.log"))
            .unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--appendonly", "yes", "--appendfsync", "everysec"])
            .args(["--save", ""])
            .args(["--daemonize", "no"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "this test starts a private `redis-server` and none could be run ({error}): install Redis (`apt-get install redis-server`) so that `redis-server` is on the PATH"
                )
            });
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!(
                    "redis-server on port {} exited with {status}; its log: {}",
                    self.port,
                    tail(&self.dir.join("redis-server.log"), 20)
                ));
            }
            if self.ping() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "redis-server on port {} did not answer within 10 s",
            self.port
        ))
    }

    /// Whether it answers `PING`.
    pub fn ping(&self) -> bool {
        redis::Client::open(self.url())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_millis(500)))
            .and_then(|mut conn| redis::cmd("PING").query::<String>(&mut conn))
            .is_ok()
    }

    /// Stops it as an operator would (SIGTERM: it writes and syncs its
    /// AOF, then exits); returns once it has exited.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("the server runs");
        signal(child.id(), "TERM");
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "redis-server did not exit within 15 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills it with SIGKILL, as a crash of the process would. Redis writes
    /// its AOF before it answers, so the kernel holds every acknowledged
    /// write; `everysec` only delays the `fsync`, which matters to a crash
    /// of the machine, not of the process.
    pub fn crash(&mut self) {
        let mut child = self.child.take().expect("the server runs");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Starts it again on the same port, with the same files.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        if let Err(why) = self.launch() {
            panic!("could not start the private redis-server again: {why}");
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// --- child processes -------------------------------------------------------------------

/// Sends `SIGname` to process `pid`.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Whether process `pid` is stopped (state `T` in `/proc`).
pub fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after = stat.rsplit_once(") ")?.1.to_owned();
            after.chars().next()
        })
        .is_some_and(|state| state == 'T' || state == 't')
}

/// A child process (this test binary again, running one child "test"),
/// its output in a log file; killed when dropped unless it was waited for.
pub struct Proc {
    pub child: Child,
    pub name: String,
    pub log: PathBuf,
    done: bool,
}

impl Proc {
    /// Starts this test binary as `child_test`, with `env`, its output to
    /// `dir/<name>.log`.
    pub fn spawn(dir: &Path, name: &str, child_test: &str, env: &[(&str, String)]) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", child_test, "--test-threads=1", "--nocapture"])
            .env("RUST_BACKTRACE", "0")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Proc {
            child,
            name: name.to_owned(),
            log,
            done: false,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGKILL: no destructor, no shutdown, no ack.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.done = true;
    }

    /// Waits up to `limit` for it to exit successfully; fails the test
    /// with the end of its log otherwise.
    pub fn exits_ok_within(&mut self, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.done = true;
                assert!(
                    status.success(),
                    "{} (pid {}) exited with {status}; its log ends:\n{}",
                    self.name,
                    self.pid(),
                    tail(&self.log, 40)
                );
                return started.elapsed();
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.done = true;
                panic!(
                    "{} (pid {}) did not exit within {limit:?}; its log ends:\n{}",
                    self.name,
                    self.pid(),
                    tail(&self.log, 40)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last `lines` lines of a file, for failure messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Waits up to `limit` for `ready`; whether it came.
pub fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    ready()
}

// --- what the children record ------------------------------------------------------------

/// One line a child's listener wrote: a try that started or ran to its
/// end (`done`: the listener returned; the ack may not have followed).
#[derive(Debug, Clone)]
pub struct Record {
    pub kind: String,
    pub id: String,
    pub attempt: u32,
    pub pid: u32,
    /// When, in ms since the epoch.
    pub at: u64,
}

/// Every record the children left in `dir` (files `runs-<pid>`).
pub fn records(dir: &Path) -> Vec<Record> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("runs-") else {
            continue;
        };
        let pid: u32 = pid.parse().unwrap();
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            // A process killed mid-write may leave a torn last line.
            let parts: Vec<&str> = line.split(' ').collect();
            let [kind, id, attempt, at] = parts.as_slice() else {
                continue;
            };
            let (Ok(attempt), Ok(at)) = (attempt.parse(), at.parse()) else {
                continue;
            };
            out.push(Record {
                kind: (*kind).to_owned(),
                id: (*id).to_owned(),
                attempt,
                pid,
                at,
            });
        }
    }
    out
}

/// How many records of `kind` each job id has.
pub fn counts(records: &[Record], kind: &str) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for record in records.iter().filter(|r| r.kind == kind) {
        *out.entry(record.id.clone()).or_default() += 1;
    }
    out
}

/// Now in ms since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
