//! The WebSocket at `/app/{key}`, frame by frame, with a real client
//! (tokio-tungstenite) against a server on a free port.

mod support;

use std::time::Duration;

use events_broadcast::protocol::{PresenceData, PusherError, SubscriptionError, codes};
use events_broadcast::{App, Broadcaster};
use serde_json::json;
use support::{Client, KEY, app, closed, data, open, serve};

fn builder() -> events_broadcast::Builder {
    Broadcaster::builder().app(app())
}

fn error_of(frame: &events_broadcast::protocol::Frame) -> PusherError {
    assert_eq!(frame.event, "pusher:error", "{frame:?}");
    frame.data_as().expect("error data")
}

#[tokio::test]
async fn a_connection_is_established_with_a_socket_id_and_the_activity_timeout() {
    let server = serve(builder().activity_timeout(Duration::from_secs(42))).await;
    let a = Client::connect(server.addr, KEY).await;
    let b = Client::connect(server.addr, KEY).await;
    assert!(
        events_broadcast::protocol::validate_socket_id(&a.socket_id).is_ok(),
        "{}",
        a.socket_id
    );
    assert_ne!(a.socket_id, b.socket_id);
    assert_eq!(a.activity_timeout, 42);
    assert_eq!(server.broadcaster.connections(), 2);
}

#[tokio::test]
async fn an_unknown_key_gets_4001_and_a_close() {
    let server = serve(builder()).await;
    let mut ws = open(server.addr, "/app/nope?protocol=7").await;
    let (code, _, frames) = closed(&mut ws).await;
    assert_eq!(code, codes::APP_NOT_FOUND);
    assert_eq!(frames.len(), 1, "{frames:?}");
    let error = error_of(&frames[0]);
    assert_eq!(error.code, Some(4001));
    assert!(error.message.contains("nope"), "{}", error.message);
}

#[tokio::test]
async fn protocol_versions_are_checked() {
    let server = serve(builder()).await;
    for (query, code) in [
        ("", codes::NO_PROTOCOL),
        ("?protocol=x", codes::INVALID_VERSION),
        ("?protocol=8", codes::UNSUPPORTED_PROTOCOL),
    ] {
        let mut ws = open(server.addr, &format!("/app/{KEY}{query}")).await;
        let (closed_with, _, frames) = closed(&mut ws).await;
        assert_eq!(closed_with, code, "{query}");
        assert_eq!(error_of(&frames[0]).code, Some(code));
    }
}

#[tokio::test]
async fn a_public_channel_gets_published_events_except_the_excluded_socket() {
    let server = serve(builder()).await;
    let mut a = Client::connect(server.addr, KEY).await;
    let mut b = Client::connect(server.addr, KEY).await;
    for client in [&mut a, &mut b] {
        let ok = client.subscribe("messages").await;
        assert_eq!(ok.event, "pusher_internal:subscription_succeeded");
        assert_eq!(ok.channel.as_deref(), Some("messages"));
        assert_eq!(ok.data, json!("{}"));
    }
    server
        .broadcaster
        .publish(
            "1",
            &["messages", "elsewhere"],
            "message_post",
            &json!({"id": 7, "text": "hi"}),
            None,
        )
        .await
        .expect("publishes");
    for client in [&mut a, &mut b] {
        let event = client.expect("message_post").await;
        assert_eq!(event.channel.as_deref(), Some("messages"));
        assert!(event.data.is_string(), "data travels as a JSON string");
        assert_eq!(data(&event), json!({"id": 7, "text": "hi"}));
    }
    // to_others: b sent it.
    server
        .broadcaster
        .publish("1", &["messages"], "second", &json!(1), Some(&b.socket_id))
        .await
        .expect("publishes");
    assert_eq!(a.expect("second").await.data, json!("1"));
    b.nothing_for(Duration::from_millis(300)).await;

    // Unsubscribed: nothing more.
    a.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "messages"}}))
        .await;
    a.send(json!({"event": "pusher:ping", "data": {}})).await;
    a.expect("pusher:pong").await;
    server
        .broadcaster
        .publish("1", &["messages"], "third", &json!(null), None)
        .await
        .expect("publishes");
    b.expect("third").await;
    a.nothing_for(Duration::from_millis(300)).await;

    let unknown = server
        .broadcaster
        .publish("2", &["messages"], "x", &json!(null), None)
        .await;
    assert!(
        matches!(
            unknown,
            Err(events_broadcast::BroadcastError::UnknownApp(_))
        ),
        "{unknown:?}"
    );
    let bad = server
        .broadcaster
        .publish("1", &["bad channel"], "x", &json!(null), None)
        .await;
    assert!(bad.is_err());
}

#[tokio::test]
async fn private_channels_need_the_app_s_signature() {
    let server = serve(builder()).await;
    let mut client = Client::connect(server.addr, KEY).await;

    // No auth.
    let refused = client.subscribe("private-session.7").await;
    assert_eq!(refused.event, "pusher:subscription_error");
    assert_eq!(refused.channel.as_deref(), Some("private-session.7"));
    let why: SubscriptionError = refused.data_as().expect("error data");
    assert_eq!((why.kind.as_str(), why.status), ("AuthError", 401));
    assert_eq!(
        error_of(&client.next().await).code,
        Some(codes::UNAUTHORIZED)
    );

    // A signature for another socket, another channel, another secret.
    let other_socket = app().sign_channel("1.2", "private-session.7", None);
    let other_channel = app().sign_channel(&client.socket_id, "private-session.8", None);
    let other_secret =
        App::new("1", KEY, "wrong").sign_channel(&client.socket_id, "private-session.7", None);
    for auth in [other_socket, other_channel, other_secret, "garbage".into()] {
        let refused = client
            .subscribe_with(json!({"channel": "private-session.7", "auth": auth}))
            .await;
        assert_eq!(refused.event, "pusher:subscription_error", "{auth}");
        let error = error_of(&client.next().await);
        assert_eq!(error.code, Some(4009));
        assert!(
            error.message.contains("Invalid signature"),
            "{}",
            error.message
        );
    }
    server
        .broadcaster
        .publish("1", &["private-session.7"], "secret", &json!(1), None)
        .await
        .expect("publishes");
    client.nothing_for(Duration::from_millis(200)).await;

    let ok = client.subscribe_private("private-session.7").await;
    assert_eq!(ok.event, "pusher_internal:subscription_succeeded");
    server
        .broadcaster
        .publish(
            "1",
            &["private-session.7"],
            "secret",
            &json!({"a": 1}),
            None,
        )
        .await
        .expect("publishes");
    let event = client.expect("secret").await;
    assert_eq!(data(&event), json!({"a": 1}));
}

#[tokio::test]
async fn presence_members_are_unique_by_user_id() {
    let server = serve(builder()).await;
    let channel = "presence-room.1";
    let mut ann = Client::connect(server.addr, KEY).await;
    let joined = ann
        .subscribe_presence(channel, "7", json!({"name": "Ann"}))
        .await;
    assert_eq!(joined.event, "pusher_internal:subscription_succeeded");
    let presence = data(&joined)["presence"].clone();
    let presence: PresenceData = serde_json::from_value(presence).expect("presence data");
    assert_eq!(presence.ids, vec!["7"]);
    assert_eq!(presence.count, 1);
    assert_eq!(presence.hash["7"], json!({"name": "Ann"}));

    // Bob joins: Ann hears of it; Bob sees both.
    let mut bob = Client::connect(server.addr, KEY).await;
    let joined = bob
        .subscribe_presence(channel, "9", json!({"name": "Bob"}))
        .await;
    let presence: PresenceData =
        serde_json::from_value(data(&joined)["presence"].clone()).expect("presence data");
    assert_eq!(presence.count, 2);
    assert_eq!(presence.hash["7"], json!({"name": "Ann"}));
    let added = ann.expect("pusher_internal:member_added").await;
    assert_eq!(added.channel.as_deref(), Some(channel));
    assert_eq!(
        data(&added),
        json!({"user_id": "9", "user_info": {"name": "Bob"}})
    );
    bob.nothing_for(Duration::from_millis(200)).await;

    // Ann's second tab: no member_added, the count stays 2.
    let mut ann2 = Client::connect(server.addr, KEY).await;
    let joined = ann2
        .subscribe_presence(channel, "7", json!({"name": "Ann"}))
        .await;
    let presence: PresenceData =
        serde_json::from_value(data(&joined)["presence"].clone()).expect("presence data");
    assert_eq!(presence.count, 2);
    bob.nothing_for(Duration::from_millis(300)).await;

    // Ann's first tab goes: she is still there.
    ann.close().await;
    bob.nothing_for(Duration::from_millis(300)).await;
    // Her last tab goes: member_removed.
    ann2.close().await;
    let removed = bob.expect("pusher_internal:member_removed").await;
    assert_eq!(data(&removed), json!({"user_id": "7"}));

    // A bad channel_data, a signature over other data.
    let refused = bob
        .subscribe_with(json!({"channel": "presence-room.2", "auth": app().sign_channel(&bob.socket_id, "presence-room.2", Some("{}")), "channel_data": "{}"}))
        .await;
    assert_eq!(refused.event, "pusher:subscription_error");
    assert!(error_of(&bob.next().await).message.contains("user_id"));
    let signed_data = json!({"user_id": "9"}).to_string();
    let refused = bob
        .subscribe_with(json!({"channel": "presence-room.2", "auth": app().sign_channel(&bob.socket_id, "presence-room.2", Some(&signed_data)), "channel_data": json!({"user_id": "1"}).to_string()}))
        .await;
    assert_eq!(refused.event, "pusher:subscription_error");
    assert_eq!(error_of(&bob.next().await).code, Some(codes::UNAUTHORIZED));
}

#[tokio::test]
async fn pings_are_answered_and_silent_clients_are_pinged_then_closed_with_4201() {
    let server = serve(
        builder()
            .activity_timeout(Duration::from_secs(1))
            .pong_timeout(Duration::from_millis(600)),
    )
    .await;
    let mut client = Client::connect(server.addr, KEY).await;
    client
        .send(json!({"event": "pusher:ping", "data": {}}))
        .await;
    let pong = client.expect("pusher:pong").await;
    assert_eq!(pong.data, json!("{}"));

    // Silent for the activity timeout: the server pings; a pong keeps
    // the connection.
    let ping = client
        .next_within(Duration::from_secs(3))
        .await
        .expect("a ping");
    assert_eq!(ping.event, "pusher:ping");
    client
        .send(json!({"event": "pusher:pong", "data": {}}))
        .await;
    let ping = client
        .next_within(Duration::from_secs(3))
        .await
        .expect("another ping");
    assert_eq!(ping.event, "pusher:ping");
    // No pong this time: closed with 4201.
    let (code, reason, _) = client.closed().await;
    assert_eq!(code, codes::PONG_NOT_RECEIVED);
    assert!(reason.contains("Pong"), "{reason}");
}

#[tokio::test]
async fn client_events_go_to_the_others_on_private_and_presence_channels_only() {
    let server = serve(builder().client_events_per_second(3)).await;
    let mut a = Client::connect(server.addr, KEY).await;
    let mut b = Client::connect(server.addr, KEY).await;
    a.subscribe("public").await;
    a.send(json!({"event": "client-typing", "channel": "public", "data": {}}))
        .await;
    let error = error_of(&a.next().await);
    assert_eq!(error.code, Some(codes::CLIENT_EVENT_REJECTED));
    assert!(
        error.message.contains("private and presence"),
        "{}",
        error.message
    );

    a.send(json!({"event": "client-typing", "channel": "private-chat", "data": {}}))
        .await;
    let error = error_of(&a.next().await);
    assert!(
        error.message.contains("subscribe to private-chat"),
        "{}",
        error.message
    );

    for client in [&mut a, &mut b] {
        assert_eq!(
            client.subscribe_private("private-chat").await.event,
            "pusher_internal:subscription_succeeded"
        );
    }
    a.send(json!({"event": "client-typing", "channel": "private-chat", "data": {"who": "a"}}))
        .await;
    let typed = b.expect("client-typing").await;
    assert_eq!(typed.channel.as_deref(), Some("private-chat"));
    assert_eq!(data(&typed), json!({"who": "a"}));
    assert_eq!(typed.user_id, None);
    a.nothing_for(Duration::from_millis(200)).await;

    // Three a second: the fourth is refused and goes nowhere.
    for _ in 0..2 {
        a.send(json!({"event": "client-typing", "channel": "private-chat", "data": {}}))
            .await;
    }
    a.send(json!({"event": "client-typing", "channel": "private-chat", "data": {"n": 4}}))
        .await;
    let error = error_of(&a.next().await);
    assert_eq!(error.code, Some(codes::CLIENT_EVENT_RATE_LIMIT));
    for _ in 0..2 {
        b.expect("client-typing").await;
    }
    b.nothing_for(Duration::from_millis(200)).await;

    // On a presence channel the sender's user id comes along.
    let mut c = Client::connect(server.addr, KEY).await;
    let mut d = Client::connect(server.addr, KEY).await;
    c.subscribe_presence("presence-room", "7", json!(null))
        .await;
    d.subscribe_presence("presence-room", "9", json!(null))
        .await;
    c.expect("pusher_internal:member_added").await;
    c.send(json!({"event": "client-wave", "channel": "presence-room", "data": {"x": 1}}))
        .await;
    let wave = d.expect("client-wave").await;
    assert_eq!(wave.user_id.as_deref(), Some("7"));
    c.nothing_for(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn bad_frames_get_pusher_error_in_words_and_the_connection_stays() {
    let server = serve(builder().max_message_size(1024)).await;
    let mut client = Client::connect(server.addr, KEY).await;
    client.send_text("not json".into()).await;
    let error = error_of(&client.next().await);
    assert_eq!(error.code, Some(codes::BAD_MESSAGE));
    assert!(
        error.message.contains("not a Pusher frame"),
        "{}",
        error.message
    );

    client
        .send(json!({"event": "client-x", "channel": "private-a", "data": "x".repeat(2000)}))
        .await;
    let error = error_of(&client.next().await);
    assert!(
        error.message.contains("over the limit of 1024"),
        "{}",
        error.message
    );

    client
        .send(json!({"event": "pusher:bogus", "data": {}}))
        .await;
    let error = error_of(&client.next().await);
    assert!(error.message.contains("pusher:bogus"), "{}", error.message);

    client
        .send(json!({"event": "pusher:subscribe", "data": {}}))
        .await;
    let error = error_of(&client.next().await);
    assert!(error.message.contains("channel"), "{}", error.message);

    for bad in ["has space", &"a".repeat(165)] {
        let refused = client.subscribe(bad).await;
        assert_eq!(refused.event, "pusher:subscription_error", "{bad}");
        let error = error_of(&client.next().await);
        assert!(
            error.message.contains("invalid channel name"),
            "{}",
            error.message
        );
    }
    let longest = "a".repeat(164);
    assert_eq!(
        client.subscribe(&longest).await.event,
        "pusher_internal:subscription_succeeded"
    );

    client.send(json!({"event": "pusher:ping"})).await;
    client.expect("pusher:pong").await;
}

#[tokio::test]
async fn shutdown_closes_with_4200_so_clients_reconnect() {
    let server = serve(builder()).await;
    let mut a = Client::connect(server.addr, KEY).await;
    let mut b = Client::connect(server.addr, KEY).await;
    b.subscribe_presence("presence-x", "1", json!(null)).await;
    let shutdown = server.broadcaster.clone();
    let done = tokio::spawn(async move { shutdown.shutdown().await });
    for client in [&mut a, &mut b] {
        let (code, _, _) = client.closed().await;
        assert_eq!(code, codes::RECONNECT);
    }
    tokio::time::timeout(Duration::from_secs(5), done)
        .await
        .expect("shutdown returns once the sockets are gone")
        .expect("the task");
    assert_eq!(server.broadcaster.connections(), 0);
    // A new connection during shutdown is sent elsewhere the same way.
    let mut ws = open(server.addr, &format!("/app/{KEY}?protocol=7")).await;
    let (code, _, frames) = closed(&mut ws).await;
    assert_eq!(code, codes::RECONNECT);
    assert!(frames.is_empty(), "{frames:?}");
}

#[tokio::test]
async fn apps_on_one_server_never_see_each_other() {
    let server = serve(builder().app(App::new("2", "other-key", "other-secret"))).await;
    let mut one = Client::connect(server.addr, KEY).await;
    let mut two = Client::connect(server.addr, "other-key").await;
    one.subscribe("news").await;
    two.subscribe("news").await;
    server
        .broadcaster
        .publish("2", &["news"], "for-two", &json!(2), None)
        .await
        .expect("publishes");
    assert_eq!(two.expect("for-two").await.data, json!("2"));
    one.nothing_for(Duration::from_millis(300)).await;

    // App 1's signature opens nothing of app 2.
    let auth = app().sign_channel(&two.socket_id, "private-a", None);
    let refused = two
        .subscribe_with(json!({"channel": "private-a", "auth": auth}))
        .await;
    assert_eq!(refused.event, "pusher:subscription_error");
}

#[test]
fn builds_refuse_what_cannot_work() {
    let duplicate = Broadcaster::builder()
        .app(app())
        .app(App::new("1", "k2", "s"))
        .build()
        .expect_err("two apps with id 1");
    assert!(
        duplicate.to_string().contains("share the id `1`"),
        "{duplicate}"
    );
    let key = Broadcaster::builder()
        .app(app())
        .app(App::new("2", KEY, "s"))
        .build()
        .expect_err("two apps with one key");
    assert!(key.to_string().contains("key"), "{key}");
    let empty = Broadcaster::builder()
        .app(App::new("1", "k", ""))
        .build()
        .expect_err("an empty secret");
    assert!(empty.to_string().contains("empty"), "{empty}");
    let auth_app = Broadcaster::builder()
        .app(app())
        .auth_app("9")
        .build()
        .expect_err("no app 9");
    assert!(auth_app.to_string().contains("`9`"), "{auth_app}");
    let pattern = Broadcaster::builder()
        .app(app())
        .channels(
            events_broadcast::Channels::new(|_| Some(())).channel("session.{id}", |_, _| true),
        )
        .build()
        .expect_err("a pattern without its prefix");
    assert!(pattern.to_string().contains("private-"), "{pattern}");
    let config = events_core::Config::from_vars([("REVERB_APP_KEY", "k")]).expect("config");
    let half = Broadcaster::builder()
        .config(&config)
        .build()
        .expect_err("a key alone");
    assert!(
        half.to_string()
            .contains("EVENTS_BROADCAST_APP_ID, EVENTS_BROADCAST_APP_SECRET"),
        "{half}"
    );
}

#[tokio::test]
async fn a_connection_holds_at_most_1000_channels() {
    let server = serve(builder()).await;
    let mut client = Client::connect(server.addr, KEY).await;
    for i in 0..1000 {
        client
            .send(json!({"event": "pusher:subscribe", "data": {"channel": format!("c{i}")}}))
            .await;
    }
    for _ in 0..1000 {
        client
            .expect("pusher_internal:subscription_succeeded")
            .await;
    }
    let refused = client.subscribe("one-too-many").await;
    assert_eq!(refused.event, "pusher:subscription_error");
    let error = error_of(&client.next().await);
    assert!(error.message.contains("at most 1000"), "{}", error.message);
    // Leaving one makes room.
    client
        .send(json!({"event": "pusher:unsubscribe", "data": {"channel": "c0"}}))
        .await;
    assert_eq!(
        client.subscribe("one-too-many").await.event,
        "pusher_internal:subscription_succeeded"
    );
}
