//! What the Redis tests of the facade share: a tiny RESP client to look at
//! and write keys by hand (as `redis-cli` would), a fresh key prefix per
//! test on the shared server, and private `redis-server`s on free ports for
//! the tests that kill, restart or reconfigure Redis.
//!
//! The shared server is `EVENTS_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379/0`); private servers need `redis-server` on the
//! `PATH`. A test never skips without them: it fails, saying what to start.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One RESP reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text (a simple or bulk string).
    pub fn text(&self) -> String {
        match self {
            Reply::Simple(s) => s.clone(),
            Reply::Bulk(Some(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            other => panic!("expected a string reply, got {other:?}"),
        }
    }

    /// The reply as a number.
    pub fn int(&self) -> i64 {
        match self {
            Reply::Int(n) => *n,
            Reply::Bulk(Some(_)) | Reply::Simple(_) => self.text().parse().expect("a number"),
            other => panic!("expected a number, got {other:?}"),
        }
    }

    /// The reply as a list.
    pub fn items(&self) -> Vec<Reply> {
        match self {
            Reply::Array(Some(items)) => items.clone(),
            other => panic!("expected an array, got {other:?}"),
        }
    }
}

/// A blocking connection speaking RESP, for what the tests write and read
/// behind the backend's back.
pub struct Resp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Resp {
    /// Connects to `host:port` and selects database `db`.
    pub fn connect(addr: &str, db: u32) -> std::io::Result<Resp> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut resp = Resp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        if db != 0 {
            resp.try_cmd(&[b"SELECT", db.to_string().as_bytes()])?;
        }
        Ok(resp)
    }

    /// Sends one command; an error reply comes back as [`Reply::Error`].
    pub fn try_cmd(&mut self, args: &[&[u8]]) -> std::io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend(b"\r\n");
        }
        self.writer.write_all(&out)?;
        self.read()
    }

    /// Sends one command of text arguments; panics on an error reply.
    pub fn cmd(&mut self, args: &[&str]) -> Reply {
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        match self.try_cmd(&bytes) {
            Ok(Reply::Error(e)) => panic!("Redis refused {args:?}: {e}"),
            Ok(reply) => reply,
            Err(e) => panic!("Redis did not answer {args:?}: {e}"),
        }
    }

    fn line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        if line.is_empty() {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(line.trim_end_matches("\r\n").to_owned())
    }

    fn read(&mut self) -> std::io::Result<Reply> {
        let line = self.line()?;
        let (kind, rest) = line.split_at(1);
        let number = || -> std::io::Result<i64> {
            rest.parse()
                .map_err(|_| std::io::Error::other(format!("bad RESP line {line:?}")))
        };
        Ok(match kind {
            "+" => Reply::Simple(rest.to_owned()),
            "-" => Reply::Error(rest.to_owned()),
            ":" => Reply::Int(number()?),
            "$" => {
                let n = number()?;
                if n < 0 {
                    Reply::Bulk(None)
                } else {
                    let mut buf = vec![0; n as usize + 2];
                    self.reader.read_exact(&mut buf)?;
                    buf.truncate(n as usize);
                    Reply::Bulk(Some(buf))
                }
            }
            "*" => {
                let n = number()?;
                if n < 0 {
                    Reply::Array(None)
                } else {
                    let mut items = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        items.push(self.read()?);
                    }
                    Reply::Array(Some(items))
                }
            }
            _ => return Err(std::io::Error::other(format!("bad RESP line {line:?}"))),
        })
    }

    /// The number of calls of `command` in `INFO commandstats`.
    pub fn calls(&mut self, command: &str) -> u64 {
        let info = self.cmd(&["INFO", "commandstats"]).text();
        let tag = format!("cmdstat_{}:calls=", command.to_lowercase());
        info.lines()
            .find_map(|line| line.strip_prefix(&tag))
            .map_or(0, |rest| {
                rest.split(',').next().unwrap().parse().expect("a count")
            })
    }

    /// Deletes every key matching `pattern`.
    pub fn delete_matching(&mut self, pattern: &str) {
        let keys = self.cmd(&["KEYS", pattern]).items();
        for chunk in keys.chunks(500) {
            let mut args: Vec<Vec<u8>> = vec![b"DEL".to_vec()];
            for key in chunk {
                if let Reply::Bulk(Some(key)) = key {
                    args.push(key.clone());
                }
            }
            let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let _ = self.try_cmd(&args);
        }
    }
}

// --- the shared server ------------------------------------------------------------

/// The shared server the tests use.
pub fn server_url() -> String {
    std::env::var("EVENTS_TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379/0".to_owned())
}

/// `host:port` and database of a `redis://host:port/db` URL.
fn address(url: &str) -> (String, u32) {
    let rest = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['?', '#'])
        .next()
        .unwrap();
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let (host, db) = rest.split_once('/').unwrap_or((rest, "0"));
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:6379")
    };
    (host, db.parse().unwrap_or(0))
}

/// A connection to the shared server; fails the test, saying what to
/// start, when none answers.
pub fn shared() -> Resp {
    let url = server_url();
    let (addr, db) = address(&url);
    let answer = Resp::connect(&addr, db).and_then(|mut conn| {
        conn.try_cmd(&[b"PING"])?;
        Ok(conn)
    });
    answer.unwrap_or_else(|error| {
        panic!(
            "these tests need a Redis server at {url} (set EVENTS_TEST_REDIS_URL, or start one: `redis-server --daemonize yes`): {error}"
        )
    })
}

/// A prefix no other test (in this process or another) uses.
pub fn fresh_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "evworker-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Deletes every key of its prefix on the shared server when dropped.
pub struct Cleanup {
    pub prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (addr, db) = address(&server_url());
        if let Ok(mut conn) = Resp::connect(&addr, db) {
            conn.delete_matching(&format!("{{{}:*", self.prefix));
            conn.delete_matching(&format!("{}:*", self.prefix));
        }
    }
}

/// A URL with a fresh prefix on the shared server, its cleanup, and a
/// connection to look at its keys.
pub fn fresh_url() -> (String, Cleanup, Resp) {
    let conn = shared();
    let prefix = fresh_prefix();
    let base = server_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    (
        format!("{base}{sep}prefix={prefix}"),
        Cleanup { prefix },
        conn,
    )
}

// --- private servers --------------------------------------------------------------

/// A `redis-server` of the test's own, on a free port with a temporary
/// directory, killed when dropped (a panicking test too).
pub struct PrivateRedis {
    pub port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    child: Option<Child>,
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PrivateRedis {
    /// Starts one with `args` on top of `--save "" --appendonly no`
    /// (later arguments win).
    pub fn start(args: &[&str]) -> PrivateRedis {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut server = PrivateRedis {
            port: free_port(),
            dir,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            child: None,
        };
        server.spawn();
        server
    }

    /// The temporary directory it runs in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn base_args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            self.dir.path().to_str().unwrap(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            "redis.log",
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
        args.extend(self.args.iter().cloned());
        args
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(self.base_args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "this test starts a private Redis and needs `redis-server` on the PATH (apt-get install redis-server): {error}"
                )
            });
        self.child = Some(child);
        self.wait_ready();
    }

    /// Waits until it answers PING (or, for a TLS-only server, accepts
    /// connections on its port).
    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                let log =
                    std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
                panic!(
                    "redis-server {:?} exited at once ({status}):\n{log}",
                    self.base_args()
                );
            }
            if let Ok(mut conn) = Resp::connect(&format!("127.0.0.1:{}", self.port), 0)
                && let Ok(Reply::Simple(pong)) = conn.try_cmd(&[b"PING"])
                && pong == "PONG"
            {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "a private redis-server on port {} did not answer within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `redis://127.0.0.1:port/0?prefix=...`.
    pub fn url(&self, prefix: &str) -> String {
        format!("redis://127.0.0.1:{}/0?prefix={prefix}", self.port)
    }

    /// `127.0.0.1:port/0`, as the backend names it in messages and logs.
    pub fn server(&self) -> String {
        format!("127.0.0.1:{}/0", self.port)
    }

    /// A plain connection to it.
    pub fn conn(&self) -> Resp {
        Resp::connect(&format!("127.0.0.1:{}", self.port), 0).expect("the private Redis answers")
    }

    /// Kills it with SIGKILL, like a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`-STOP`, `-CONT`) to it with `kill`.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("the server runs").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("`kill` runs");
        assert!(status.success(), "kill {signal} {pid}: {status}");
    }

    /// Starts it again, same port, same directory, same arguments.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The path of a file in its directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
