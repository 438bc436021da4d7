//! What the tests that run Node scripts (pusher-js, playwright-core with
//! Debian's Chromium) share: what is missing to run them, in words, and
//! the reading of a script's `step NAME JSON` lines. Include it with
//! `#[path = "support/node.rs"] mod node_support;`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The Chromium the browser scripts drive: `CHROMIUM`, else Debian's.
pub fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// What is missing to run a Node script of `dir` that imports `package`
/// (and, with `browser`, drives Chromium), in words; `None`: nothing.
pub fn missing(dir: &Path, package: &str, browser: bool) -> Option<String> {
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        return Some("`node` is not on PATH (apt-get install nodejs)".into());
    }
    if browser && !chromium().exists() {
        return Some(format!(
            "{} is missing (apt-get install chromium, or set CHROMIUM)",
            chromium().display()
        ));
    }
    if !dir.join("node_modules").join(package).exists() {
        return Some(format!(
            "{package} is not installed: run `npm ci` in {}",
            dir.display()
        ));
    }
    None
}

/// Whether the test may run: with something `missing`, it fails under
/// `CI=true` (CI installs all of it) and otherwise says what and skips.
pub fn can_run(test: &str, missing: Option<String>) -> bool {
    let Some(what) = missing else {
        return true;
    };
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{test} cannot run under CI: {what}");
    }
    eprintln!("skipping {test}: {what}");
    false
}

/// A Node script's output lines.
pub type Lines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

/// Reads the script's lines (keeping them in `seen`) until `step NAME`,
/// within `wait`; its JSON. A `failed:` line, another step, or the end of
/// the output fails the test with what the script said.
pub async fn step(lines: &mut Lines, name: &str, seen: &mut Vec<String>, wait: Duration) -> Value {
    let read = async {
        while let Some(line) = lines.next_line().await.expect("reads the script's output") {
            seen.push(line.clone());
            if let Some(rest) = line.strip_prefix("step ") {
                let (got, json) = rest.split_once(' ').unwrap_or((rest, "{}"));
                assert_eq!(got, name, "the script's steps so far: {seen:#?}");
                return serde_json::from_str(json).expect("the step's JSON");
            }
            assert!(!line.starts_with("failed:"), "the script failed: {seen:#?}");
        }
        panic!("the script ended before `{name}`: {seen:#?}");
    };
    tokio::time::timeout(wait, read)
        .await
        .unwrap_or_else(|_| panic!("no `{name}` within {wait:?}: {seen:#?}"))
}

/// A Node script that talks in lines: it prints `step NAME JSON` as it
/// goes, and reads lines the test writes.
pub struct Script {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    lines: Lines,
    /// Every line it printed so far.
    pub seen: Vec<String>,
    wait: Duration,
}

impl Script {
    /// Starts `node SCRIPT ARGS..` in `dir`; each step may take `wait`.
    pub fn start<I, A>(dir: &Path, script: &str, args: I, wait: Duration) -> Script
    where
        I: IntoIterator<Item = A>,
        A: AsRef<std::ffi::OsStr>,
    {
        let mut child = tokio::process::Command::new("node")
            .arg(dir.join(script))
            .args(args)
            .current_dir(dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let stdin = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().expect("its stdout")).lines();
        Script {
            child,
            stdin,
            lines,
            seen: Vec::new(),
            wait,
        }
    }

    /// The JSON of its next step, which must be `name`.
    pub async fn step(&mut self, name: &str) -> Value {
        step(&mut self.lines, name, &mut self.seen, self.wait).await
    }

    /// Writes `line` to its input.
    pub async fn tell(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("its input is open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("tells the script");
    }

    /// Closes its input, reads the rest of its output, and checks that it
    /// exits with success within 30 s; every line it printed.
    pub async fn finish(mut self) -> Vec<String> {
        drop(self.stdin.take());
        while let Ok(Some(line)) = self.lines.next_line().await {
            self.seen.push(line);
        }
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the script ends")
            .expect("its status");
        assert!(status.success(), "the script: {status}, {:#?}", self.seen);
        self.seen
    }
}
