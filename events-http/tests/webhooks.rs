//! The webhook routes over a real socket, through a real `Webhooks` on a
//! memory store, delivering to a real local receiver: a subscription
//! created (its secret shown once) → listed → updated → deleted, URLs
//! refused in words (malformed, not https, a private address), bodies
//! refused in words (unknown field, not JSON, wrong content type), the
//! delivery log after real deliveries with each of its filters, and the
//! test delivery. Without a `Webhooks` the routes answer 501.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use events_core::queue::Queue;
use events_core::store::{NewEvent, Store};
use events_http::Api;
use events_http::axum::{self, Router, http::HeaderMap, routing::post};
use events_webhooks::Webhooks;
use serde_json::{Value, json};
use support::{Client, TOKEN, serve};

/// What the receiver got: the `webhook-id`, `webhook-timestamp` and
/// `webhook-signature` headers and the body, per request.
type Received = Arc<Mutex<Vec<(String, i64, String, String)>>>;

/// A receiver: `/ok` answers 200 `thanks`, `/fail` 500 `nope`.
async fn receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let keep = |received: Received, status: u16, text: &'static str| {
        move |headers: HeaderMap, body: String| {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned()
            };
            received.lock().unwrap().push((
                header("webhook-id"),
                header("webhook-timestamp").parse().unwrap_or(0),
                header("webhook-signature"),
                body,
            ));
            async move { (axum::http::StatusCode::from_u16(status).unwrap(), text) }
        }
    };
    let app = Router::new()
        .route("/ok", post(keep(received.clone(), 200, "thanks")))
        .route("/fail", post(keep(received.clone(), 500, "nope")));
    (serve(app).await, received)
}

/// Webhooks that may reach the local receiver, and no retry.
fn local_webhooks(store: &Store) -> Webhooks {
    Webhooks::new(store.clone())
        .allow_private(true)
        .require_https(false)
        .retry_schedule(Vec::new())
}

async fn open(api: Api) -> Client {
    Client::new(&serve(api.router()).await, Some(TOKEN))
}

#[tokio::test]
async fn without_webhooks_the_routes_answer_501_in_words() {
    let client = open(Api::new(Store::memory()).token(TOKEN)).await;
    for (method, path) in [
        ("GET", "/events/subscriptions"),
        ("POST", "/events/subscriptions"),
        ("PUT", "/events/subscriptions/sub_1"),
        ("DELETE", "/events/subscriptions/sub_1"),
        ("GET", "/events/webhook-logs"),
        ("POST", "/events/test-webhook"),
    ] {
        let answer = client.json(method, path, &json!({})).await;
        assert_eq!(answer.status, 501, "{method} {path}: {}", answer.body);
        assert!(
            answer.error().contains("give it a Webhooks"),
            "{}",
            answer.body
        );
    }
}

#[tokio::test]
async fn a_subscription_is_created_listed_updated_and_deleted() {
    let (base, _) = receiver().await;
    let store = Store::memory();
    let client = open(
        Api::new(store.clone())
            .token(TOKEN)
            .webhooks(local_webhooks(&store)),
    )
    .await;

    let created = client
        .json(
            "POST",
            "/events/subscriptions",
            &json!({"webhook_url": format!("{base}/ok"), "event_names": ["appointment.*"], "active": true}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let created = created.json();
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(events_webhooks::Secret::parse(secret).is_ok());
    assert_eq!(created["webhook_url"], format!("{base}/ok"));
    assert_eq!(created["event_names"], json!(["appointment.*"]));
    assert_eq!(created["active"], true);
    assert_eq!(created["consecutive_failures"], 0);
    assert!(
        events_http_time_is_rfc3339(created["created_at"].as_str().unwrap()),
        "{created}"
    );

    // A second, inactive one with filters and a description.
    let second = client
        .json(
            "POST",
            "/events/subscriptions",
            &json!({
                "webhook_url": format!("{base}/fail"),
                "event_names": ["*"],
                "active": false,
                "filters": {"customer.tier": "gold"},
                "description": "the audit system",
            }),
        )
        .await;
    assert_eq!(second.status, 201, "{}", second.body);
    let second_id = second.json()["id"].as_str().unwrap().to_owned();
    assert_ne!(second_id, id);
    assert_ne!(second.json()["secret"], created["secret"]);

    // Listed oldest first, secrets never shown again.
    let list = client.ok("/events/subscriptions").await;
    let subs = list["subscriptions"].as_array().unwrap();
    assert_eq!(subs.len(), 2);
    assert_eq!(subs[0]["id"], id);
    assert_eq!(subs[1]["id"], second_id);
    assert_eq!(subs[1]["active"], false);
    assert_eq!(subs[1]["filters"], json!({"customer.tier": "gold"}));
    assert_eq!(subs[1]["description"], "the audit system");
    assert!(!list.to_string().contains("whsec_"), "{list}");

    // Updated: each field given replaces the stored one.
    let updated = client
        .json(
            "PUT",
            &format!("/events/subscriptions/{id}"),
            &json!({"event_names": ["invoice.*", "appointment.created"], "active": false}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    let updated = updated.json();
    assert_eq!(
        updated["event_names"],
        json!(["invoice.*", "appointment.created"])
    );
    assert_eq!(updated["active"], false);
    assert_eq!(updated["webhook_url"], format!("{base}/ok"));
    assert!(updated.get("secret").is_none());
    let stored = store.subscription(&id).await.unwrap().unwrap();
    assert_eq!(stored.event_names, ["invoice.*", "appointment.created"]);
    assert!(!stored.active);
    assert_eq!(stored.secret, secret, "an update keeps the secret");

    let renamed = client
        .json(
            "PUT",
            &format!("/events/subscriptions/{id}"),
            &json!({"webhook_url": format!("{base}/elsewhere"), "active": true}),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(renamed.json()["webhook_url"], format!("{base}/elsewhere"));

    // Unknown ids and fields.
    let missing = client
        .json(
            "PUT",
            "/events/subscriptions/sub_nope",
            &json!({"active": true}),
        )
        .await;
    assert_eq!(missing.status, 404);
    assert!(
        missing
            .error()
            .contains("no subscription has id `sub_nope`")
    );
    let unknown = client
        .json(
            "PUT",
            &format!("/events/subscriptions/{id}"),
            &json!({"secret": "whsec_AAAA"}),
        )
        .await;
    assert_eq!(unknown.status, 422, "{}", unknown.body);
    assert!(
        unknown.error().contains("unknown field `secret`"),
        "{}",
        unknown.body
    );

    // Deleted, once.
    let deleted = client
        .send("DELETE", &format!("/events/subscriptions/{id}"), &[], None)
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(deleted.json(), json!({"deleted": id}));
    let again = client
        .send("DELETE", &format!("/events/subscriptions/{id}"), &[], None)
        .await;
    assert_eq!(again.status, 404);
    let list = client.ok("/events/subscriptions").await;
    assert_eq!(list["subscriptions"].as_array().unwrap().len(), 1);
}

fn events_http_time_is_rfc3339(text: &str) -> bool {
    humantime_like(text)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn humantime_like(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 24 && b[4] == b'-' && b[10] == b'T' && b[19] == b'.' && b[23] == b'Z'
}

#[tokio::test]
async fn bad_subscriptions_are_refused_in_words() {
    let store = Store::memory();
    // The defaults: https only, no private addresses.
    let strict = open(
        Api::new(store.clone())
            .token(TOKEN)
            .webhooks(Webhooks::new(store.clone())),
    )
    .await;
    let post = |body: Value| {
        let strict = strict.clone();
        async move { strict.json("POST", "/events/subscriptions", &body).await }
    };
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"webhook_url": "not a url", "event_names": ["*"]}),
            400,
            "",
        ),
        (
            json!({"webhook_url": "http://hooks.example.com/in", "event_names": ["*"]}),
            400,
            "https",
        ),
        (
            json!({"webhook_url": "https://127.0.0.1/in", "event_names": ["*"]}),
            403,
            "",
        ),
        (
            json!({"webhook_url": "https://[::1]:8443/in", "event_names": ["*"]}),
            403,
            "",
        ),
        (
            json!({"webhook_url": "https://169.254.169.254/latest/meta-data", "event_names": ["*"]}),
            403,
            "",
        ),
        (
            json!({"webhook_url": "https://93.184.215.14/in", "event_names": []}),
            400,
            "`event_names` is empty",
        ),
        (
            json!({"webhook_url": "https://93.184.215.14/in", "event_names": ["*"], "colour": "red"}),
            422,
            "unknown field `colour`",
        ),
        (
            json!({"event_names": ["*"]}),
            422,
            "missing field `webhook_url`",
        ),
        (
            json!({"webhook_url": "https://93.184.215.14/in", "event_names": "*"}),
            422,
            "invalid type",
        ),
    ];
    for (body, status, words) in cases {
        let answer = post(body.clone()).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.body);
        let error = answer.error();
        assert!(
            !error.is_empty() && error.contains(words),
            "{body}: {error}"
        );
    }
    let not_json = strict
        .send(
            "POST",
            "/events/subscriptions",
            &[("content-type", "application/json")],
            Some("{\"webhook_url\": "),
        )
        .await;
    assert_eq!(not_json.status, 400, "{}", not_json.body);
    assert!(not_json.error().contains("not JSON"));
    let no_type = strict
        .send(
            "POST",
            "/events/subscriptions",
            &[],
            Some(r#"{"webhook_url":"https://93.184.215.14/in","event_names":["*"]}"#),
        )
        .await;
    assert_eq!(no_type.status, 415, "{}", no_type.body);
    assert!(no_type.error().contains("Content-Type: application/json"));
    let not_an_object = strict
        .json("POST", "/events/subscriptions", &json!([1, 2]))
        .await;
    assert_eq!(not_an_object.status, 422, "{}", not_an_object.body);
    // Nothing was stored.
    assert!(store.subscriptions().await.unwrap().is_empty());
    let list = strict.ok("/events/subscriptions").await;
    assert_eq!(list["subscriptions"], json!([]));
}

#[tokio::test]
async fn the_delivery_log_after_real_deliveries_with_its_filters() {
    let (base, received) = receiver().await;
    let store = Store::memory();
    let webhooks = local_webhooks(&store);
    let client = open(
        Api::new(store.clone())
            .token(TOKEN)
            .webhooks(webhooks.clone()),
    )
    .await;
    let subscribe = |url: String, names: Value| {
        let client = client.clone();
        async move {
            let answer = client
                .json(
                    "POST",
                    "/events/subscriptions",
                    &json!({"webhook_url": url, "event_names": names}),
                )
                .await;
            assert_eq!(answer.status, 201, "{}", answer.body);
            answer.json()["id"].as_str().unwrap().to_owned()
        }
    };
    let good = subscribe(format!("{base}/ok"), json!(["appointment.*"])).await;
    let bad = subscribe(format!("{base}/fail"), json!(["*"])).await;

    let before = SystemTime::now() - Duration::from_secs(1);
    let appended = store
        .append(vec![
            NewEvent::new("appointment.created", r#"{"appointment_id":1}"#),
            NewEvent::new("invoice.issued", r#"{"invoice_id":5}"#),
        ])
        .await
        .unwrap();
    let page = store
        .events(&events_core::store::EventQuery::new())
        .await
        .unwrap();
    assert_eq!(appended.len(), 2);
    let queue = Queue::memory();
    // appointment.created to both, invoice.issued to `bad` only.
    assert_eq!(webhooks.enqueue_for(&page.events, &queue).await.unwrap(), 3);
    events_core::Worker::new(queue)
        .queues([events_webhooks::QUEUE])
        .state(webhooks.clone())
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!(received.lock().unwrap().len(), 3);

    let deliveries = |value: &Value| value["deliveries"].as_array().unwrap().clone();
    let all = deliveries(&client.ok("/events/webhook-logs").await);
    assert_eq!(all.len(), 3, "{all:?}");
    let created_id = page.events[0].id.to_string();

    let of_good = deliveries(
        &client
            .ok(&format!("/events/webhook-logs?subscription_id={good}"))
            .await,
    );
    assert_eq!(of_good.len(), 1);
    let entry = &of_good[0];
    assert_eq!(entry["subscription_id"], good);
    assert_eq!(entry["event_id"], created_id);
    assert_eq!(entry["event_name"], "appointment.created");
    assert_eq!(entry["url"], format!("{base}/ok"));
    assert_eq!(entry["status"], 200);
    assert_eq!(entry["succeeded"], true);
    assert_eq!(entry["response"], "thanks");
    assert_eq!(entry["attempt"], 1);
    assert_eq!(entry["replay"], false);
    assert_eq!(entry["error"], Value::Null);
    assert!(humantime_like(entry["at"].as_str().unwrap()), "{entry}");
    assert!(entry["webhook_id"].as_str().is_some_and(|w| !w.is_empty()));

    let failed = deliveries(&client.ok("/events/webhook-logs?failed=true").await);
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|d| d["subscription_id"] == bad.as_str()
        && d["status"] == 500
        && d["succeeded"] == false
        && d["error"].as_str().is_some_and(|e| !e.is_empty())));
    let succeeded = deliveries(&client.ok("/events/webhook-logs?failed=false").await);
    assert_eq!(succeeded.len(), 1);
    let of_event = deliveries(
        &client
            .ok(&format!("/events/webhook-logs?event_id={created_id}"))
            .await,
    );
    assert_eq!(of_event.len(), 2);
    let both = deliveries(
        &client
            .ok(&format!(
                "/events/webhook-logs?event_id={created_id}&subscription=sub_nobody"
            ))
            .await,
    );
    assert!(both.is_empty());
    assert_eq!(
        deliveries(&client.ok("/events/webhook-logs?limit=1").await).len(),
        1
    );
    let since = events_millis(before);
    assert_eq!(
        deliveries(
            &client
                .ok(&format!("/events/webhook-logs?since={since}"))
                .await
        )
        .len(),
        3
    );
    assert!(
        deliveries(
            &client
                .ok("/events/webhook-logs?since=2999-01-01T00:00:00Z")
                .await
        )
        .is_empty()
    );

    for (path, words) in [
        (
            "/events/webhook-logs?event_id=42",
            "`event_id`: `42` is not an event id",
        ),
        ("/events/webhook-logs?failed=maybe", "`failed` is `true`"),
        (
            "/events/webhook-logs?since=later",
            "`since`: `later` is not a time",
        ),
        ("/events/webhook-logs?limit=0", "`limit`"),
        ("/events/webhook-logs?status=500", "unknown field `status`"),
    ] {
        let answer = client.get(path).await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.body);
        assert!(answer.error().contains(words), "{path}: {}", answer.body);
    }
}

fn events_millis(at: SystemTime) -> u128 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

#[tokio::test]
async fn the_test_webhook_sends_a_signed_sample_and_shows_the_answer() {
    let (base, received) = receiver().await;
    let store = Store::memory();
    let client = open(
        Api::new(store.clone())
            .token(TOKEN)
            .webhooks(local_webhooks(&store)),
    )
    .await;

    let answer = client
        .json(
            "POST",
            "/events/test-webhook",
            &json!({"webhook_url": format!("{base}/ok"), "event_name": "appointment.created"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let sent = answer.json();
    assert_eq!(sent["succeeded"], true);
    assert_eq!(sent["status"], 200);
    assert_eq!(sent["response"], "thanks");
    assert_eq!(sent["event_name"], "appointment.created");
    let secret = sent["secret"]
        .as_str()
        .expect("a one-off secret")
        .to_owned();
    let (id, timestamp, signature, body) = received.lock().unwrap()[0].clone();
    assert_eq!(sent["webhook_id"], id);
    events_webhooks::verify(&secret, &id, timestamp, &signature, body.as_bytes())
        .expect("signed with the secret shown");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["type"], "appointment.created");

    // An endpoint that answers 500 is an answer too.
    let failing = client
        .json(
            "POST",
            "/events/test-webhook",
            &json!({"webhook_url": format!("{base}/fail")}),
        )
        .await;
    assert_eq!(failing.status, 200, "{}", failing.body);
    assert_eq!(failing.json()["succeeded"], false);
    assert_eq!(failing.json()["status"], 500);

    // Nobody listening: the answer says so.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}/in", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = client
        .json(
            "POST",
            "/events/test-webhook",
            &json!({"webhook_url": dead}),
        )
        .await;
    assert_eq!(unreachable.status, 200, "{}", unreachable.body);
    let unreachable = unreachable.json();
    assert_eq!(unreachable["succeeded"], false);
    assert_eq!(unreachable["status"], Value::Null);
    assert!(
        unreachable["error"]
            .as_str()
            .is_some_and(|e| e.contains("could not connect")),
        "{unreachable}"
    );

    for (body, status) in [
        (json!({"webhook_url": "::nope"}), 400),
        (json!({"url": format!("{base}/ok")}), 422),
        (
            json!({"webhook_url": format!("{base}/ok"), "extra": 1}),
            422,
        ),
    ] {
        let answer = client.json("POST", "/events/test-webhook", &body).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.body);
        assert!(!answer.error().is_empty());
    }
    // The test delivery is not logged.
    assert!(
        store
            .deliveries(&events_core::store::DeliveryQuery::new())
            .await
            .unwrap()
            .is_empty()
    );
}
