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

#[path = "support/http.rs"]
mod http_support;
#[path = "support/node.rs"]
mod node_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_chat_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let browser_dir = root.join("tests/browser");
    let missing = node_support::missing(&browser_dir, "playwright-core", true);
    if !node_support::can_run("the chat's browser test", missing) {
        return;
    }
    let chat = chat_app::start(0).await.expect("the chat starts");
    let shots = std::env::var_os("EVENTS_SCREENSHOTS")
        .map_or_else(|| root.join("target/chat-screenshots"), PathBuf::from);

    let mut script = node_support::Script::start(
        &browser_dir,
        "chat.mjs",
        [std::ffi::OsStr::new(&chat.url), shots.as_os_str()],
        Duration::from_secs(60),
    );

    let joined = script.step("joined").await;
    assert_eq!(joined["members"], json!(["ann", "bob"]));
    assert_eq!(chat.broadcaster.connections(), 2, "one socket per page");

    let posted = script.step("posted").await;
    assert_eq!(posted["bob"], json!([{"user": "ann", "text": "hello bob"}]));

    chat.dispatcher
        .dispatch(chat_app::MessagePosted {
            room: "lobby".into(),
            user: "rust".into(),
            text: "from rust".into(),
        })
        .await
        .expect("dispatches");
    script.tell("dispatched").await;
    let received = script.step("received").await;
    for who in ["ann", "bob"] {
        assert_eq!(
            received[who],
            json!({"user": "rust", "text": "from rust"}),
            "{who}"
        );
    }

    let left = script.step("left").await;
    assert_eq!(left["members"], json!(["ann"]));
    script.finish().await;
    assert!(
        chat.dispatcher
            .drain(Duration::from_secs(5))
            .await
            .is_empty(),
        "every broadcast ran"
    );
    chat.task.abort();
}

/// A POST of JSON to `/messages`; the status and the JSON body.
async fn post(url: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let addr = url.trim_start_matches("http://");
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    http_support::json(addr, "POST", "/messages", &all, body).await
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
