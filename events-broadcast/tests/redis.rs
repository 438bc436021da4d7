//! Several server processes through Redis: two nodes on one prefix deliver
//! each publish once to their own sockets, list the same presence members,
//! and announce a user once however many nodes their tabs are on; a third
//! node on another prefix hears nothing of theirs.
//!
//! A node killed with SIGKILL (a child process) misses its beats, and the
//! live node announces its presence members gone.
//!
//! Needs the shared Redis (`EVENTS_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`); each test uses a prefix of its own and
//! deletes its keys at the end.

mod support;

use std::time::Duration;

use events_broadcast::protocol::PresenceData;
use events_broadcast::{Broadcaster, RedisFanout};
use serde_json::json;
use support::{Client, KEY, Server, app, data, serve};

fn redis_url() -> String {
    std::env::var("EVENTS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn unique_prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("events-bc-test-{name}-{}-{nanos}", std::process::id())
}

async fn node(prefix: &str) -> Server {
    node_beating(prefix, Duration::from_secs(5)).await
}

async fn node_beating(prefix: &str, heartbeat: Duration) -> Server {
    let url = format!("{}?prefix={prefix}", redis_url());
    let fanout = RedisFanout::connect(&url).await.unwrap_or_else(|e| {
        panic!(
            "these tests need a Redis server at {} (set EVENTS_TEST_REDIS_URL, or start one): {e}",
            redis_url()
        )
    });
    assert_eq!(fanout.prefix(), prefix);
    serve(
        Broadcaster::builder()
            .app(app())
            .redis(fanout.heartbeat(heartbeat)),
    )
    .await
}

const CHILD_PREFIX: &str = "EVENTS_TEST_BROADCAST_NODE_PREFIX";

/// A node in a process of its own, for the test below to kill: a no-op
/// unless started with `CHILD_PREFIX`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_node_process() {
    let Ok(prefix) = std::env::var(CHILD_PREFIX) else {
        return;
    };
    let server = node_beating(&prefix, Duration::from_millis(200)).await;
    println!("node-port {}", server.addr.port());
    tokio::time::sleep(Duration::from_secs(60)).await;
}

/// Deletes every key under `prefix`.
async fn clean(prefix: &str) {
    let client = redis::Client::open(redis_url()).expect("the URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connects");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .expect("DEL");
    }
}

async fn keys(prefix: &str) -> Vec<String> {
    let client = redis::Client::open(redis_url()).expect("the URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connects");
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_reaches_every_node_s_sockets_once() {
    let prefix = unique_prefix("publish");
    let (one, two) = (node(&prefix).await, node(&prefix).await);
    let other_prefix = unique_prefix("other");
    let elsewhere = node(&other_prefix).await;

    let mut a = Client::connect(one.addr, KEY).await;
    let mut b = Client::connect(two.addr, KEY).await;
    let mut c = Client::connect(elsewhere.addr, KEY).await;
    for client in [&mut a, &mut b, &mut c] {
        client.subscribe("news").await;
    }
    one.broadcaster
        .publish("1", &["news"], "story", &json!({"n": 1}), None)
        .await
        .expect("publishes");
    assert_eq!(data(&a.expect("story").await), json!({"n": 1}));
    assert_eq!(data(&b.expect("story").await), json!({"n": 1}));
    a.nothing_for(Duration::from_millis(300)).await;
    b.nothing_for(Duration::from_millis(10)).await;
    // The other prefix heard nothing.
    c.nothing_for(Duration::from_millis(10)).await;

    // to_others across nodes: node one excludes a socket of node two.
    one.broadcaster
        .publish("1", &["news"], "not-b", &json!(2), Some(&b.socket_id))
        .await
        .expect("publishes");
    a.expect("not-b").await;
    b.nothing_for(Duration::from_millis(300)).await;

    // Client events cross nodes too, not back to the sender.
    a.subscribe_private("private-chat").await;
    b.subscribe_private("private-chat").await;
    b.send(json!({"event": "client-typing", "channel": "private-chat", "data": {"who": "b"}}))
        .await;
    assert_eq!(data(&a.expect("client-typing").await), json!({"who": "b"}));
    b.nothing_for(Duration::from_millis(300)).await;

    // And the other prefix's publishes never reach these.
    elsewhere
        .broadcaster
        .publish("1", &["news"], "theirs", &json!(3), None)
        .await
        .expect("publishes");
    c.expect("theirs").await;
    a.nothing_for(Duration::from_millis(300)).await;
    b.nothing_for(Duration::from_millis(10)).await;

    clean(&prefix).await;
    clean(&other_prefix).await;
}

fn presence_of(frame: &events_broadcast::protocol::Frame) -> PresenceData {
    serde_json::from_value(data(frame)["presence"].clone()).expect("presence data")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_members_are_the_same_on_every_node() {
    let prefix = unique_prefix("presence");
    let (one, two) = (node(&prefix).await, node(&prefix).await);
    let channel = "presence-room.1";

    let mut ann = Client::connect(one.addr, KEY).await;
    let joined = ann
        .subscribe_presence(channel, "7", json!({"name": "Ann"}))
        .await;
    assert_eq!(presence_of(&joined).ids, vec!["7"]);

    // Bob, on the other node, sees Ann; Ann hears of Bob once.
    let mut bob = Client::connect(two.addr, KEY).await;
    let joined = bob
        .subscribe_presence(channel, "9", json!({"name": "Bob"}))
        .await;
    let presence = presence_of(&joined);
    assert_eq!(presence.count, 2);
    assert_eq!(presence.hash["7"], json!({"name": "Ann"}));
    let added = ann.expect("pusher_internal:member_added").await;
    assert_eq!(
        data(&added),
        json!({"user_id": "9", "user_info": {"name": "Bob"}})
    );
    ann.nothing_for(Duration::from_millis(300)).await;
    bob.nothing_for(Duration::from_millis(10)).await;

    // Ann's second tab, on node two: still two members, no announcement.
    let mut ann2 = Client::connect(two.addr, KEY).await;
    let joined = ann2
        .subscribe_presence(channel, "7", json!({"name": "Ann"}))
        .await;
    assert_eq!(presence_of(&joined).count, 2);
    bob.nothing_for(Duration::from_millis(300)).await;

    // Client events on a presence channel carry the user id across nodes.
    bob.send(json!({"event": "client-wave", "channel": channel, "data": {}}))
        .await;
    assert_eq!(
        ann.expect("client-wave").await.user_id.as_deref(),
        Some("9")
    );
    assert_eq!(
        ann2.expect("client-wave").await.user_id.as_deref(),
        Some("9")
    );

    // Ann's first tab (node one) goes: no member_removed; her last (node
    // two) goes: one member_removed, seen on both nodes.
    ann.close().await;
    bob.nothing_for(Duration::from_millis(300)).await;
    let mut carl = Client::connect(one.addr, KEY).await;
    let joined = carl.subscribe_presence(channel, "11", json!(null)).await;
    assert_eq!(presence_of(&joined).count, 3);
    bob.expect("pusher_internal:member_added").await;
    ann2.expect("pusher_internal:member_added").await;
    ann2.close().await;
    assert_eq!(
        data(&bob.expect("pusher_internal:member_removed").await),
        json!({"user_id": "7"})
    );
    assert_eq!(
        data(&carl.expect("pusher_internal:member_removed").await),
        json!({"user_id": "7"})
    );
    bob.close().await;
    carl.expect("pusher_internal:member_removed").await;
    carl.close().await;

    // Everyone left: the presence hashes and the nodes' socket counts are
    // empty, so Redis holds only the nodes' beats.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        keys(&prefix).await,
        [format!("{prefix}:nodes")],
        "nothing but the beats is left behind"
    );
    clean(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_presence_members_of_a_killed_node_are_announced_gone() {
    use std::io::BufRead;
    let prefix = unique_prefix("killed");
    let one = node_beating(&prefix, Duration::from_millis(200)).await;
    let mut child = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args([
            "--exact",
            "child_node_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_PREFIX, &prefix)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the child node starts");
    let stdout = child.stdout.take().expect("its stdout");
    let port: u16 = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .find_map(|line| {
                let line = line.ok()?;
                let at = line.find("node-port ")?;
                line[at + "node-port ".len()..].trim().parse().ok()
            })
            .expect("the child says its port")
    })
    .await
    .expect("the reader");
    let two = std::net::SocketAddr::from(([127, 0, 0, 1], port));

    let channel = "presence-room.1";
    let mut ann = Client::connect(one.addr, KEY).await;
    ann.subscribe_presence(channel, "7", json!(null)).await;
    let mut bob = Client::connect(two, KEY).await;
    let joined = bob.subscribe_presence(channel, "9", json!(null)).await;
    assert_eq!(presence_of(&joined).count, 2);
    ann.expect("pusher_internal:member_added").await;

    // The child dies without closing anything.
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let removed = ann.expect("pusher_internal:member_removed").await;
    assert_eq!(data(&removed), json!({"user_id": "9"}));

    // Every node agrees: a newcomer sees Ann alone.
    let mut carl = Client::connect(one.addr, KEY).await;
    let joined = carl.subscribe_presence(channel, "11", json!(null)).await;
    assert_eq!(presence_of(&joined).ids, vec!["11", "7"]);
    drop(bob);
    clean(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_taken_for_dead_sends_its_presence_sockets_to_join_again() {
    let prefix = unique_prefix("swept");
    let one = node_beating(&prefix, Duration::from_millis(200)).await;
    let mut ann = Client::connect(one.addr, KEY).await;
    ann.subscribe_presence("presence-room.1", "7", json!(null))
        .await;
    let mut reader = Client::connect(one.addr, KEY).await;
    reader.subscribe("news").await;

    // As another node's sweep would after a long silence: the node and
    // its members are gone from Redis.
    let client = redis::Client::open(redis_url()).expect("the URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connects");
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}:nodes"))
        .query_async(&mut conn)
        .await
        .expect("DEL");

    let (code, reason, _) = ann.closed().await;
    assert_eq!(
        code,
        events_broadcast::protocol::codes::RECONNECT,
        "{reason}"
    );
    // A socket on no presence channel stays.
    reader.send(json!({"event": "pusher:ping"})).await;
    reader.expect("pusher:pong").await;
    clean(&prefix).await;
}

/// A signed GET of the HTTP API through `server`'s router.
async fn api_get(server: &Server, path: &str, extra: &[(&str, &str)]) -> serde_json::Value {
    use tower::ServiceExt;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let query = events_broadcast::sign::signed_query(
        support::KEY,
        support::SECRET,
        "GET",
        path,
        extra,
        b"",
        now,
    );
    let request = axum::http::Request::get(format!("{path}?{query}"))
        .body(axum::body::Body::empty())
        .expect("a request");
    let response = server
        .broadcaster
        .router()
        .oneshot(request)
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a body");
    serde_json::from_slice(&body).expect("JSON")
}

/// Asks until `path` answers `expected` (the nodes' first beats may still
/// be on their way), for at most 5 s.
async fn api_eventually(
    server: &Server,
    path: &str,
    extra: &[(&str, &str)],
    expected: serde_json::Value,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = api_get(server, path, extra).await;
        if got == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} answers {got}, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_counts_the_sockets_of_every_node() {
    let prefix = unique_prefix("counts");
    let one = node_beating(&prefix, Duration::from_millis(200)).await;
    let two = node_beating(&prefix, Duration::from_millis(200)).await;
    let mut a = Client::connect(one.addr, KEY).await;
    let mut b = Client::connect(one.addr, KEY).await;
    let mut c = Client::connect(two.addr, KEY).await;
    let mut d = Client::connect(two.addr, KEY).await;
    for client in [&mut a, &mut b, &mut c] {
        client.subscribe("news").await;
    }
    d.subscribe("sports").await;
    d.subscribe_presence("presence-room", "9", json!(null))
        .await;

    api_eventually(
        &one,
        "/apps/1/channels",
        &[],
        json!({"channels": {"news": {}, "presence-room": {}, "sports": {}}}),
    )
    .await;
    api_eventually(
        &one,
        "/apps/1/channels",
        &[("filter_by_prefix", "presence-"), ("info", "user_count")],
        json!({"channels": {"presence-room": {"user_count": 1}}}),
    )
    .await;
    api_eventually(
        &two,
        "/apps/1/channels/news",
        &[("info", "subscription_count")],
        json!({"occupied": true, "subscription_count": 3}),
    )
    .await;

    c.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "news"}}))
        .await;
    d.close().await;
    api_eventually(
        &one,
        "/apps/1/channels/news",
        &[("info", "subscription_count")],
        json!({"occupied": true, "subscription_count": 2}),
    )
    .await;
    api_eventually(
        &one,
        "/apps/1/channels",
        &[],
        json!({"channels": {"news": {}}}),
    )
    .await;
    clean(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_change_older_than_a_socket_s_members_is_not_sent_to_it() {
    let prefix = unique_prefix("stale");
    let one = node(&prefix).await;
    let mut ann = Client::connect(one.addr, KEY).await;
    ann.subscribe_presence("presence-room.1", "7", json!(null))
        .await;
    // As a node would publish a change that crossed Redis more slowly than
    // Ann's own join: one from 2001 (older than her members), one from
    // 2286 (newer). Versions are Redis's clock in microseconds.
    let client = redis::Client::open(redis_url()).expect("the URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connects");
    for (user, version) in [
        ("9", 1_000_000_000_000_000_u64),
        ("11", 9_999_999_999_000_000),
    ] {
        let change = json!({
            "kind": "member_added", "app": "1", "channel": "presence-room.1",
            "member": {"user_id": user}, "except": "0.0", "version": version,
        });
        let _: i64 = redis::cmd("PUBLISH")
            .arg(format!("{prefix}:broadcast"))
            .arg(change.to_string())
            .query_async(&mut conn)
            .await
            .expect("PUBLISH");
    }
    let added = ann.expect("pusher_internal:member_added").await;
    assert_eq!(data(&added)["user_id"], "11", "only the newer change");
    ann.nothing_for(Duration::from_millis(300)).await;
    clean(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_without_sockets_reaches_every_node_through_redis() {
    use events_core::broadcast::{Broadcast, Channel, Publish};
    let prefix = unique_prefix("publisher");
    let (one, two) = (node(&prefix).await, node(&prefix).await);
    let mut a = Client::connect(one.addr, KEY).await;
    let mut b = Client::connect(two.addr, KEY).await;
    a.subscribe("news").await;
    b.subscribe("news").await;

    let url = format!("{}?prefix={prefix}", redis_url());
    let publisher = events_broadcast::Publisher::redis(&url, "1")
        .await
        .expect("connects");
    assert!(
        publisher.describe().starts_with("Redis at redis://")
            && publisher
                .describe()
                .ends_with(&format!("prefix {prefix} (app 1)")),
        "{}",
        publisher.describe()
    );
    let story = Broadcast::new(
        "story.published",
        "story",
        [Channel::public("news")],
        json!({"n": 1}),
    );
    publisher.publish(&story).await.expect("publishes");
    assert_eq!(data(&a.expect("story").await), json!({"n": 1}));
    assert_eq!(data(&b.expect("story").await), json!({"n": 1}));
    publisher
        .publish(&story.clone().except(b.socket_id.clone()))
        .await
        .expect("publishes");
    a.expect("story").await;
    b.nothing_for(Duration::from_millis(300)).await;
    clean(&prefix).await;
}
