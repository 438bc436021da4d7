//! A process that serves no sockets publishes through a server's HTTP API
//! (`Publisher::http`): the broadcast reaches the server's WebSocket
//! clients with its name and data, leaves the sender's socket out, goes in
//! several signed requests past Pusher's 100 channels, works with the
//! server mounted under a path, and fails in words when the server is
//! away or refuses the signature.

mod support;

use events_broadcast::{App, Broadcaster, Publisher};
use events_core::broadcast::{Broadcast, Channel, Publish};
use serde_json::json;
use support::{APP_ID, Client, KEY, app, data, serve};

fn news(data: serde_json::Value) -> Broadcast {
    Broadcast::new("story.published", "story", [Channel::public("news")], data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_through_the_http_api_reaches_the_sockets() {
    let server = serve(Broadcaster::builder().app(app())).await;
    let publisher =
        Publisher::http(&format!("http://{}", server.addr), app()).expect("a valid URL");
    assert_eq!(
        publisher.describe(),
        format!("the HTTP API of http://{} (app {APP_ID})", server.addr)
    );
    let mut a = Client::connect(server.addr, KEY).await;
    let mut b = Client::connect(server.addr, KEY).await;
    a.subscribe("news").await;
    b.subscribe("news").await;

    // Several in a row, over the kept connection.
    for n in 0..5 {
        publisher
            .publish(&news(json!({"n": n})))
            .await
            .expect("publishes");
        assert_eq!(data(&a.expect("story").await), json!({"n": n}));
        assert_eq!(data(&b.expect("story").await), json!({"n": n}));
    }

    // to_others: a's socket is left out.
    publisher
        .publish(&news(json!("not a")).except(a.socket_id.clone()))
        .await
        .expect("publishes");
    assert_eq!(data(&b.expect("story").await), json!("not a"));
    a.nothing_for(std::time::Duration::from_millis(300)).await;

    // 150 channels: two requests (Pusher allows 100 per event).
    let mut c = Client::connect(server.addr, KEY).await;
    c.subscribe("room-0").await;
    c.subscribe("room-149").await;
    let rooms = (0..150).map(|i| Channel::public(format!("room-{i}")));
    publisher
        .publish(&Broadcast::new("x", "wide", rooms, json!(1)))
        .await
        .expect("publishes to 150 channels");
    c.expect("wide").await;
    c.expect("wide").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_mounted_under_a_path_is_signed_for_that_path() {
    let broadcaster = Broadcaster::builder().app(app()).build().expect("builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("its address");
    let router = axum::Router::new().nest("/realtime", broadcaster.router());
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serves");
    });
    let ws = support::open(
        addr,
        &format!("/realtime/app/{KEY}?protocol=7&client=rust&version=8.4.0"),
    )
    .await;
    drop(ws);
    let publisher =
        Publisher::http(&format!("http://{addr}/realtime/"), app()).expect("a valid URL");
    publisher
        .publish(&news(json!(1)))
        .await
        .expect("the signature covers the path the server sees");
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_an_absent_server_are_errors_in_words() {
    let server = serve(Broadcaster::builder().app(app())).await;
    let forged = Publisher::http(
        &format!("http://{}", server.addr),
        App::new(APP_ID, KEY, "not-the-secret"),
    )
    .expect("a valid URL");
    let error = forged
        .publish(&news(json!(1)))
        .await
        .expect_err("a wrong secret is refused")
        .to_string();
    assert!(
        error.contains("refused the broadcast (401") && error.contains("signature"),
        "{error}"
    );
    let unknown = Publisher::http(
        &format!("http://{}", server.addr),
        App::new("other", KEY, "s"),
    )
    .expect("a valid URL");
    let error = unknown
        .publish(&news(json!(1)))
        .await
        .expect_err("an unknown app is refused")
        .to_string();
    assert!(error.contains("refused the broadcast (404"), "{error}");

    // Bad channels are refused before anything is sent.
    let error = forged
        .publish(&Broadcast::new(
            "x",
            "y",
            [Channel::public("a b")],
            json!(1),
        ))
        .await
        .expect_err("a channel name with a space")
        .to_string();
    assert!(error.contains("channel"), "{error}");

    let addr = server.addr;
    drop(server);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let gone = Publisher::http(&format!("http://{addr}"), app()).expect("a valid URL");
    let error = gone
        .publish(&news(json!(1)))
        .await
        .expect_err("nobody listens")
        .to_string();
    assert!(
        error.contains(&format!(
            "cannot connect to the broadcast server at http://{addr}"
        )),
        "{error}"
    );

    for (url, words) in [
        ("ftp://host", "scheme `ftp`"),
        ("host:8080", "scheme"),
        ("http://", "not a URL"),
        ("http://host?x=1", "query"),
        ("http://ann:secret@host", "names a user"),
    ] {
        let error = Publisher::http(url, app()).expect_err(url).to_string();
        assert!(error.contains(words), "{url}: {error}");
    }
}
