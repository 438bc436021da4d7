//! `#[channel("..")]` as an application writes it: callbacks registered at
//! link time decide `POST /broadcasting/auth`, their placeholders parsed
//! into typed parameters; a server whose users are of another type refuses
//! to start, naming the callback.

#[path = "support/http.rs"]
mod http_support;

use std::time::Duration;

use events::broadcast::axum::http::request::Parts;
use events::broadcast::{App, Broadcaster, Channels, Member, sign};
use events::{State, channel};
use serde_json::{Value, json};

#[derive(Debug)]
struct User {
    id: u64,
    name: String,
    teams: Vec<String>,
}

#[channel("private-session.{id}")]
fn session(user: &User, id: u64) -> bool {
    user.id == id
}

#[channel("presence-room.{room}")]
async fn room(user: &User, room: String) -> Option<Member> {
    tokio::time::sleep(Duration::from_millis(1)).await;
    (room != "closed").then(|| Member::new(user.id.to_string()).info(json!({"name": user.name})))
}

/// Who is in which team: application state the callback takes.
#[derive(Clone)]
struct Teams(std::sync::Arc<Vec<(&'static str, u64)>>);

/// State comes from `Channels::state`, in any place among the placeholders.
#[channel("private-team.{team}.{member_id}")]
fn team(user: &User, team: String, State(teams): State<Teams>, member_id: u64) -> bool {
    user.teams.contains(&team)
        && member_id == user.id
        && teams.0.iter().any(|(t, id)| *t == team && *id == member_id)
}

fn user_of(parts: &Parts) -> Option<User> {
    let value = parts.headers.get("authorization")?.to_str().ok()?;
    match value.strip_prefix("Bearer ")? {
        "ann" => Some(User {
            id: 7,
            name: "Ann".into(),
            teams: vec!["red".into(), "green".into()],
        }),
        _ => None,
    }
}

/// A POST of a form from `user`; the status and the JSON body.
async fn post_form(addr: &str, path: &str, user: &str, form: &str) -> (u16, Value) {
    let bearer = format!("Bearer {user}");
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    http_support::json(addr, "POST", path, &headers, form).await
}

#[test]
fn the_callbacks_are_registered_by_pattern() {
    let patterns: Vec<(&str, &str, u32)> = events::channel::registered()
        .iter()
        .map(|def| (def.pattern, def.file, def.line))
        .collect();
    assert_eq!(
        patterns
            .iter()
            .map(|(pattern, _, _)| *pattern)
            .collect::<Vec<_>>(),
        [
            "presence-room.{room}",
            "private-session.{id}",
            "private-team.{team}.{member_id}"
        ]
    );
    assert!(
        patterns
            .iter()
            .all(|(_, file, line)| file.ends_with("broadcast_channel.rs") && *line > 0)
    );
    let names: Vec<&str> = events::channel::registered()
        .iter()
        .map(|d| d.name)
        .collect();
    assert!(names.contains(&"broadcast_channel::session"), "{names:?}");
}

#[tokio::test]
async fn registered_callbacks_decide_the_auth_endpoint() {
    let broadcaster = Broadcaster::builder()
        .app(App::new("1", "key", "secret"))
        .channels(
            Channels::new(user_of).state(Teams(std::sync::Arc::new(vec![("red", 7), ("blue", 9)]))),
        )
        .build()
        .expect("builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("its address").to_string();
    let router = broadcaster.router();
    tokio::spawn(async move { events::broadcast::axum::serve(listener, router).await });

    let form = |channel: &str| format!("socket_id=1.2&channel_name={channel}");
    let (status, body) = post_form(
        &addr,
        "/broadcasting/auth",
        "ann",
        &form("private-session.7"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let auth = body["auth"].as_str().expect("auth");
    assert!(sign::verify_channel_auth(
        "key",
        "secret",
        "1.2",
        "private-session.7",
        None,
        auth
    ));

    let (status, body) = post_form(
        &addr,
        "/broadcasting/auth",
        "ann",
        &form("presence-room.lobby"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let channel_data: Value =
        serde_json::from_str(body["channel_data"].as_str().expect("channel_data")).expect("JSON");
    assert_eq!(
        channel_data,
        json!({"user_id": "7", "user_info": {"name": "Ann"}})
    );

    let (status, _) = post_form(
        &addr,
        "/broadcasting/auth",
        "ann",
        &form("private-team.red.7"),
    )
    .await;
    assert_eq!(status, 200);

    for channel in [
        "private-session.9",
        "private-session.abc",
        "presence-room.closed",
        "private-team.blue.7",
        "private-team.red.x",
        // ann says she is in green, but the state's teams say not.
        "private-team.green.7",
    ] {
        let (status, body) = post_form(&addr, "/broadcasting/auth", "ann", &form(channel)).await;
        assert_eq!(status, 403, "{channel}: {body}");
    }
    let (status, _) = post_form(
        &addr,
        "/broadcasting/auth",
        "eve",
        &form("private-session.7"),
    )
    .await;
    assert_eq!(status, 403, "nobody signed in");
}

#[test]
fn a_callback_whose_state_was_not_given_refuses_to_start() {
    let error = Broadcaster::builder()
        .app(App::new("1", "key", "secret"))
        .channels(Channels::new(user_of))
        .build()
        .expect_err("team takes State<Teams>");
    let text = error.to_string();
    assert!(
        text.contains("the channel callback `broadcast_channel::team` for `private-team.{team}.{member_id}`")
            && text.contains("takes `State<broadcast_channel::Teams>`, which was not given: add it with `Channels::state(..)`"),
        "{text}"
    );
}

#[test]
fn a_server_of_another_user_type_refuses_to_start() {
    struct Admin;
    let error = Broadcaster::builder()
        .app(App::new("1", "key", "secret"))
        .channels(Channels::new(|_: &Parts| Some(Admin)))
        .build()
        .expect_err("the callbacks take &User");
    let text = error.to_string();
    assert!(
        text.contains("takes `&broadcast_channel::User`")
            && text.contains("this server's users are `broadcast_channel::")
            && text.contains("Admin"),
        "{text}"
    );
}
