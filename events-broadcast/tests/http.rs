//! The HTTP API (`/apps/{id}/..`, signed as Pusher signs) and the auth
//! endpoint (`POST /broadcasting/auth`), as a PHP or Node service and a
//! browser use them; events published over HTTP reach a real WebSocket
//! client.

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, request::Parts};
use events_broadcast::sign::{self, signed_query};
use events_broadcast::{Broadcaster, Channels, Member};
use serde_json::{Value, json};
use support::{APP_ID, Client, KEY, SECRET, app, data, serve};
use tower::ServiceExt;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

async fn call(router: &axum::Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("the router answers");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a body");
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    (status, value)
}

/// A signed POST of `body` to `path`, at `timestamp`.
fn post_signed(path: &str, body: &Value, timestamp: u64) -> Request<Body> {
    let body = body.to_string();
    let query = signed_query(KEY, SECRET, "POST", path, &[], body.as_bytes(), timestamp);
    Request::post(format!("{path}?{query}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("a request")
}

fn get_signed(path: &str, extra: &[(&str, &str)]) -> Request<Body> {
    let query = signed_query(KEY, SECRET, "GET", path, extra, b"", now());
    Request::get(format!("{path}?{query}"))
        .body(Body::empty())
        .expect("a request")
}

#[tokio::test]
async fn signed_events_reach_sockets_and_unsigned_ones_do_not() {
    let server = serve(Broadcaster::builder().app(app()).max_message_size(1024)).await;
    let router = server.broadcaster.router();
    let mut a = Client::connect(server.addr, KEY).await;
    let mut b = Client::connect(server.addr, KEY).await;
    a.subscribe("orders").await;
    b.subscribe("orders").await;

    let event = json!({"name": "order.shipped", "channels": ["orders"], "data": "{\"id\":7}"});
    let (status, body) = call(&router, post_signed("/apps/1/events", &event, now())).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    for client in [&mut a, &mut b] {
        let got = client.expect("order.shipped").await;
        assert_eq!(data(&got), json!({"id": 7}));
    }

    // socket_id: everyone but that socket.
    let event =
        json!({"name": "only-a", "channel": "orders", "data": "{}", "socket_id": b.socket_id});
    let (status, _) = call(&router, post_signed("/apps/1/events", &event, now())).await;
    assert_eq!(status, StatusCode::OK);
    a.expect("only-a").await;
    b.nothing_for(Duration::from_millis(200)).await;

    // Refusals, each in words; nothing reaches the sockets.
    let event = json!({"name": "nope", "channels": ["orders"], "data": "{}"});
    let (status, body) = call(&router, post_signed("/apps/1/events", &event, now() - 601)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"].as_str().unwrap_or("").contains("600 s"),
        "{body}"
    );
    let (status, _) = call(&router, post_signed("/apps/1/events", &event, now() + 700)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = call(&router, post_signed("/apps/2/events", &event, now())).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let body = event.to_string();
    let wrong_secret = signed_query(
        KEY,
        "wrong",
        "POST",
        "/apps/1/events",
        &[],
        body.as_bytes(),
        now(),
    );
    let request = Request::post(format!("/apps/1/events?{wrong_secret}"))
        .body(Body::from(body.clone()))
        .expect("a request");
    let (status, answer) = call(&router, request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or("")
            .contains("auth_signature"),
        "{answer}"
    );

    // Signed for one body, sent with another.
    let query = signed_query(
        KEY,
        SECRET,
        "POST",
        "/apps/1/events",
        &[],
        body.as_bytes(),
        now(),
    );
    let other = json!({"name": "evil", "channels": ["orders"], "data": "{}"}).to_string();
    let request = Request::post(format!("/apps/1/events?{query}"))
        .body(Body::from(other))
        .expect("a request");
    let (status, answer) = call(&router, request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        answer["error"].as_str().unwrap_or("").contains("body_md5"),
        "{answer}"
    );

    let request = Request::post("/apps/1/events")
        .body(Body::from(body))
        .expect("a request");
    let (status, answer) = call(&router, request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or("")
            .contains("not signed"),
        "{answer}"
    );

    // Too large, too many channels, bad names.
    let big = json!({"name": "big", "channels": ["orders"], "data": "x".repeat(1025)});
    let (status, _) = call(&router, post_signed("/apps/1/events", &big, now())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let many: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
    let wide = json!({"name": "wide", "channels": many, "data": "{}"});
    let (status, _) = call(&router, post_signed("/apps/1/events", &wide, now())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let bad = json!({"name": "bad", "channels": ["a b"], "data": "{}"});
    let (status, answer) = call(&router, post_signed("/apps/1/events", &bad, now())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or("")
            .contains("invalid channel name"),
        "{answer}"
    );

    a.nothing_for(Duration::from_millis(200)).await;
    b.nothing_for(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn batch_events_are_checked_whole_then_sent() {
    let server = serve(Broadcaster::builder().app(app())).await;
    let router = server.broadcaster.router();
    let mut client = Client::connect(server.addr, KEY).await;
    client.subscribe("a").await;
    client.subscribe("b").await;
    let batch = json!({"batch": [
        {"channel": "a", "name": "first", "data": "1"},
        {"channel": "b", "name": "second", "data": "{\"x\":2}"},
    ]});
    let (status, _) = call(&router, post_signed("/apps/1/batch_events", &batch, now())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(client.expect("first").await.channel.as_deref(), Some("a"));
    assert_eq!(data(&client.expect("second").await), json!({"x": 2}));

    // One bad event: none goes.
    let batch = json!({"batch": [
        {"channel": "a", "name": "fine", "data": "1"},
        {"channel": "b b", "name": "broken", "data": "1"},
    ]});
    let (status, _) = call(&router, post_signed("/apps/1/batch_events", &batch, now())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let eleven: Vec<Value> = (0..11)
        .map(|_| json!({"channel": "a", "name": "n", "data": "1"}))
        .collect();
    let (status, _) = call(
        &router,
        post_signed("/apps/1/batch_events", &json!({"batch": eleven}), now()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    client.nothing_for(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn channels_and_users_are_listed_to_signed_requests() {
    let server = serve(Broadcaster::builder().app(app())).await;
    let router = server.broadcaster.router();
    let mut ann = Client::connect(server.addr, KEY).await;
    let mut ann2 = Client::connect(server.addr, KEY).await;
    let mut bob = Client::connect(server.addr, KEY).await;
    ann.subscribe("news").await;
    ann.subscribe_presence("presence-room", "7", json!({"name": "Ann"}))
        .await;
    ann2.subscribe_presence("presence-room", "7", json!({"name": "Ann"}))
        .await;
    bob.subscribe_presence("presence-room", "9", json!(null))
        .await;

    let (status, body) = call(&router, get_signed("/apps/1/channels", &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"channels": {"news": {}, "presence-room": {}}}));

    let (status, body) = call(
        &router,
        get_signed(
            "/apps/1/channels",
            &[("filter_by_prefix", "presence-"), ("info", "user_count")],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"channels": {"presence-room": {"user_count": 2}}})
    );
    let (status, _) = call(
        &router,
        get_signed("/apps/1/channels", &[("info", "user_count")]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, body) = call(
        &router,
        get_signed(
            "/apps/1/channels/presence-room",
            &[("info", "user_count,subscription_count")],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"occupied": true, "user_count": 2, "subscription_count": 3})
    );
    let (_, body) = call(&router, get_signed("/apps/1/channels/empty", &[])).await;
    assert_eq!(body, json!({"occupied": false}));

    let (status, body) = call(
        &router,
        get_signed("/apps/1/channels/presence-room/users", &[]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"users": [{"id": "7"}, {"id": "9"}]}));
    let (status, _) = call(&router, get_signed("/apps/1/channels/news/users", &[])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Unsigned, or signed for another path: 401.
    let request = Request::get("/apps/1/channels")
        .body(Body::empty())
        .expect("a request");
    assert_eq!(call(&router, request).await.0, StatusCode::UNAUTHORIZED);
    let query = signed_query(KEY, SECRET, "GET", "/apps/1/channels", &[], b"", now());
    let request = Request::get(format!("/apps/1/channels/news?{query}"))
        .body(Body::empty())
        .expect("a request");
    assert_eq!(call(&router, request).await.0, StatusCode::UNAUTHORIZED);
    bob.close().await;
}

#[derive(Debug)]
struct User {
    id: u64,
    name: String,
}

fn user_of(parts: &Parts) -> Option<User> {
    let value = parts.headers.get("authorization")?.to_str().ok()?;
    let name = value.strip_prefix("Bearer ")?;
    let id = match name {
        "ann" => 7,
        "bob" => 9,
        _ => return None,
    };
    Some(User {
        id,
        name: name.to_owned(),
    })
}

fn channels() -> Channels<User> {
    Channels::new(user_of)
        .channel("private-session.{id}", |user: &User, params| {
            params.parse::<u64>("id") == Some(user.id)
        })
        .presence("presence-room.{room}", |user: &User, params| {
            (params.get("room") != Some("closed"))
                .then(|| Member::new(user.id.to_string()).info(json!({"name": user.name})))
        })
}

fn auth_request(user: Option<&str>, body: String, json: bool) -> Request<Body> {
    let mut request = Request::post("/broadcasting/auth").header(
        "content-type",
        if json {
            "application/json"
        } else {
            "application/x-www-form-urlencoded"
        },
    );
    if let Some(user) = user {
        request = request.header("authorization", format!("Bearer {user}"));
    }
    request.body(Body::from(body)).expect("a request")
}

fn form(socket_id: &str, channel: &str) -> String {
    serde_urlencoded::to_string([("socket_id", socket_id), ("channel_name", channel)])
        .expect("a form")
}

#[tokio::test]
async fn the_auth_endpoint_signs_what_the_callbacks_allow() {
    let server = serve(Broadcaster::builder().app(app()).channels(channels())).await;
    let router = server.broadcaster.router();
    let mut client = Client::connect(server.addr, KEY).await;
    let socket = client.socket_id.clone();

    // Ann's own session: signed, and the signature opens the channel.
    let (status, body) = call(
        &router,
        auth_request(Some("ann"), form(&socket, "private-session.7"), false),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let auth = body["auth"].as_str().expect("auth").to_owned();
    assert!(sign::verify_channel_auth(
        KEY,
        SECRET,
        &socket,
        "private-session.7",
        None,
        &auth
    ));
    let ok = client
        .subscribe_with(json!({"channel": "private-session.7", "auth": auth}))
        .await;
    assert_eq!(ok.event, "pusher_internal:subscription_succeeded");

    // JSON bodies work too; a presence channel gets channel_data.
    let json_body = json!({"socket_id": socket, "channel_name": "presence-room.1"}).to_string();
    let (status, body) = call(&router, auth_request(Some("bob"), json_body, true)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let channel_data = body["channel_data"]
        .as_str()
        .expect("channel_data")
        .to_owned();
    let member: Value = serde_json::from_str(&channel_data).expect("JSON");
    assert_eq!(
        member,
        json!({"user_id": "9", "user_info": {"name": "bob"}})
    );
    let joined = client
        .subscribe_with(json!({"channel": "presence-room.1", "auth": body["auth"], "channel_data": channel_data}))
        .await;
    assert_eq!(joined.event, "pusher_internal:subscription_succeeded");
    assert_eq!(data(&joined)["presence"]["ids"], json!(["9"]));

    // 403s: someone else's session, nobody signed in, a callback's no, no
    // pattern; 400s: a public channel, a bad socket id, a bad body.
    for (user, channel, status) in [
        (Some("ann"), "private-session.9", StatusCode::FORBIDDEN),
        (Some("ann"), "private-session.x", StatusCode::FORBIDDEN),
        (None, "private-session.7", StatusCode::FORBIDDEN),
        (Some("eve"), "private-session.7", StatusCode::FORBIDDEN),
        (Some("ann"), "presence-room.closed", StatusCode::FORBIDDEN),
        (Some("ann"), "private-other", StatusCode::FORBIDDEN),
        (Some("ann"), "presence-session.7", StatusCode::FORBIDDEN),
        (Some("ann"), "public", StatusCode::BAD_REQUEST),
    ] {
        let (got, body) = call(&router, auth_request(user, form(&socket, channel), false)).await;
        assert_eq!(got, status, "{user:?} on {channel}: {body}");
        assert!(body["error"].is_string(), "{body}");
        assert!(body.get("auth").is_none(), "{body}");
    }
    let (status, _) = call(
        &router,
        auth_request(Some("ann"), form("1234", "private-session.7"), false),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = call(
        &router,
        auth_request(Some("ann"), "socket_id=1.2".into(), false),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("channel_name"),
        "{body}"
    );
}

#[tokio::test]
async fn without_channels_the_auth_endpoint_refuses_everyone() {
    let server = serve(Broadcaster::builder().app(app())).await;
    let router = server.broadcaster.router();
    let (status, body) = call(
        &router,
        auth_request(Some("ann"), form("1.2", "private-session.7"), false),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("authorizes no channel"),
        "{body}"
    );
    let _ = APP_ID;
}

#[tokio::test]
async fn async_authenticators_work() {
    let channels = Channels::new_async(|parts: Parts| async move {
        tokio::task::yield_now().await;
        user_of(&parts)
    })
    .channel("private-session.{id}", |user: &User, params| {
        params.parse::<u64>("id") == Some(user.id)
    });
    let broadcaster = Broadcaster::builder()
        .app(app())
        .channels(channels)
        .build()
        .expect("builds");
    let router = broadcaster.router();
    let (status, _) = call(
        &router,
        auth_request(Some("bob"), form("1.2", "private-session.9"), false),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(
        &router,
        auth_request(Some("bob"), form("1.2", "private-session.7"), false),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_nested_router_takes_either_path_s_signature() {
    let broadcaster = Broadcaster::builder().app(app()).build().expect("builds");
    let router = axum::Router::new().nest("/ws", broadcaster.router());
    let event = json!({"name": "e", "channels": ["a"], "data": "{}"});
    let body = event.to_string();
    for signed_path in ["/ws/apps/1/events", "/apps/1/events"] {
        let query = signed_query(
            KEY,
            SECRET,
            "POST",
            signed_path,
            &[],
            body.as_bytes(),
            now(),
        );
        let request = Request::post(format!("/ws/apps/1/events?{query}"))
            .body(Body::from(body.clone()))
            .expect("a request");
        assert_eq!(
            call(&router, request).await.0,
            StatusCode::OK,
            "{signed_path}"
        );
    }
    let query = signed_query(
        KEY,
        SECRET,
        "POST",
        "/other/apps/1/events",
        &[],
        body.as_bytes(),
        now(),
    );
    let request = Request::post(format!("/ws/apps/1/events?{query}"))
        .body(Body::from(body))
        .expect("a request");
    assert_eq!(call(&router, request).await.0, StatusCode::UNAUTHORIZED);
}
