//! The chat example as people use it: its page, the vendored pusher-js and
//! the broadcast server served in this process, and two people (ann and
//! bob, two headless Chromium contexts driven by playwright-core:
//! `tests/browser/chat.mjs`, `npm ci` there first) in one room. Both see
//! both members; ann's "typing…" (a client event) and message (a `POST
//! /messages`, dispatched as `#[event(broadcast)]`, to others) reach bob
//! and not ann again; a message dispatched from Rust reaches both; bob
//! leaving reaches ann. The page's `POST /messages` refuses bad input in
//! words.
//!
//! Screenshots land in `target/chat-screenshots/` (or `EVENTS_SCREENSHOTS`).
//! Under `CI=true` a missing `node`, `chromium` or
//! `tests/browser/node_modules` fails the test; elsewhere it says what is
//! missing and passes.

#[path = "../examples/support/chat_app.rs"]
mod chat_app;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// What is missing to run the browser, in words; `None`: nothing.
fn missing(browser_dir: &Path) -> Option<String> {
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        return Some("`node` is not on PATH (apt-get install nodejs)".into());
    }
    if !chromium().exists() {
        return Some(format!(
            "{} is missing (apt-get install chromium, or set CHROMIUM)",
            chromium().display()
        ));
    }
    if !browser_dir.join("node_modules/playwright-core").exists() {
        return Some(format!(
            "playwright-core is not installed: run `npm ci` in {}",
            browser_dir.display()
        ));
    }
    None
}

/// Reads the script's lines until `step NAME`; its JSON.
async fn step(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    name: &str,
    seen: &mut Vec<String>,
) -> Value {
    let wait = async {
        while let Some(line) = lines.next_line().await.expect("reads the script's output") {
            seen.push(line.clone());
            if let Some(rest) = line.strip_prefix("step ") {
                let (got, json) = rest.split_once(' ').unwrap_or((rest, "{}"));
                assert_eq!(got, name, "the script's steps so far: {seen:#?}");
                return serde_json::from_str(json).expect("the step's JSON");
            }
            assert!(
                !line.starts_with("failed:"),
                "the browser script failed: {seen:#?}"
            );
        }
        panic!("the script ended before `{name}`: {seen:#?}");
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .unwrap_or_else(|_| panic!("no `{name}` within 60 s: {seen:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_chat_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let browser_dir = root.join("tests/browser");
    if let Some(what) = missing(&browser_dir) {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("the chat's browser test cannot run under CI: {what}");
        }
        eprintln!("skipping the chat's browser test: {what}");
        return;
    }
    let chat = chat_app::start(0).await.expect("the chat starts");
    let shots = std::env::var_os("EVENTS_SCREENSHOTS")
        .map_or_else(|| root.join("target/chat-screenshots"), PathBuf::from);

    let mut child = tokio::process::Command::new("node")
        .arg(browser_dir.join("chat.mjs"))
        .arg(&chat.url)
        .arg(&shots)
        .current_dir(&browser_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let mut stdin = child.stdin.take().expect("its stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("its stdout")).lines();
    let mut seen = Vec::new();

    let joined = step(&mut lines, "joined", &mut seen).await;
    assert_eq!(joined["members"], json!(["ann", "bob"]));
    assert_eq!(chat.broadcaster.connections(), 2, "one socket per page");

    let posted = step(&mut lines, "posted", &mut seen).await;
    assert_eq!(posted["bob"], json!([{"user": "ann", "text": "hello bob"}]));

    chat.dispatcher
        .dispatch(chat_app::MessagePosted {
            room: "lobby".into(),
            user: "rust".into(),
            text: "from rust".into(),
        })
        .await
        .expect("dispatches");
    stdin
        .write_all(b"dispatched\n")
        .await
        .expect("tells the script");
    let received = step(&mut lines, "received", &mut seen).await;
    for who in ["ann", "bob"] {
        assert_eq!(
            received[who],
            json!({"user": "rust", "text": "from rust"}),
            "{who}"
        );
    }

    let left = step(&mut lines, "left", &mut seen).await;
    assert_eq!(left["members"], json!(["ann"]));
    drop(stdin);
    while let Ok(Some(line)) = lines.next_line().await {
        seen.push(line);
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the script ends")
        .expect("its status");
    assert!(status.success(), "the script: {status}, {seen:#?}");
    assert!(
        chat.dispatcher
            .drain(Duration::from_secs(5))
            .await
            .is_empty(),
        "every broadcast ran"
    );
    chat.task.abort();
}

/// A raw HTTP/1.1 POST of JSON; the status and the JSON body.
async fn post(url: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let request = format!(
        "POST /messages HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("reads");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posting_refuses_bad_input_in_words() {
    let chat = chat_app::start(0).await.expect("the chat starts");
    let ann = [("X-Chat-User", "ann")];

    let (status, body) = post(&chat.url, &[], r#"{"room":"lobby","text":"hi"}"#).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("sign in"),
        "{body}"
    );
    let (status, body) = post(
        &chat.url,
        &[("X-Chat-User", "ann smith")],
        r#"{"room":"lobby","text":"hi"}"#,
    )
    .await;
    assert_eq!(status, 401, "a name with a space: {body}");

    let (status, body) = post(&chat.url, &ann, r#"{"room":"lobby"}"#).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("text"), "{body}");
    let (status, body) = post(&chat.url, &ann, r#"{"room":"a.b","text":"hi"}"#).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("room"), "{body}");
    let (status, body) = post(&chat.url, &ann, r#"{"room":"lobby","text":"   "}"#).await;
    assert_eq!(status, 400, "{body}");
    let long = format!(r#"{{"room":"lobby","text":"{}"}}"#, "x".repeat(501));
    let (status, body) = post(&chat.url, &ann, &long).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("500"), "{body}");

    let (status, body) = post(
        &chat.url,
        &[("X-Chat-User", "ann"), ("X-Socket-ID", "not a socket")],
        r#"{"room":"lobby","text":"  hi  "}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body, json!({"room": "lobby", "user": "ann", "text": "hi"}));
    assert!(
        chat.dispatcher
            .drain(Duration::from_secs(5))
            .await
            .is_empty(),
        "the broadcast ran"
    );
}
