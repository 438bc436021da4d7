//! Webhooks delivered to a real receiver: `tests/webhooks/receiver.py`, a
//! Python HTTP server that verifies every request with the
//! `standardwebhooks` package from PyPI (the Standard Webhooks project's
//! own library, independent of the Rust signing under test) and answers as
//! each test tells it (500s, then 200, 410, 429 with `Retry-After`, slow).
//!
//! The Python it runs is `EVENTS_TEST_WEBHOOKS_PYTHON`, else
//! `target/webhooks-venv/bin/python` (`.ci/run` makes that venv and
//! installs the package). Without it the tests fail, saying how to make it.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use events::store::{DeliveryQuery, NewEvent, Store, StoredEvent, SubscriptionChange};
use events::webhooks::{NewSubscription, QUEUE, WebhookError, Webhooks};
use events::{Queue, Worker};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// The receiver process and what it printed.
struct Receiver {
    port: u16,
    records: Arc<Mutex<Vec<Value>>>,
    _child: Child,
}

fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("EVENTS_TEST_WEBHOOKS_PYTHON") {
        return path.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/webhooks-venv/bin/python");
    assert!(
        venv.exists(),
        "the webhook tests need Python with the `standardwebhooks` package: run \
         `python3 -m venv target/webhooks-venv && target/webhooks-venv/bin/pip install standardwebhooks` \
         (as .ci/run does), or set EVENTS_TEST_WEBHOOKS_PYTHON"
    );
    venv
}

impl Receiver {
    async fn start() -> Receiver {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/webhooks/receiver.py");
        let mut child = Command::new(python())
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the receiver starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the receiver says where it listens within 20 s")
            .unwrap()
            .expect("the receiver printed a line (is `standardwebhooks` installed?)");
        let port = serde_json::from_str::<Value>(&first).unwrap()["listening"]
            .as_u64()
            .unwrap() as u16;
        let records = Arc::new(Mutex::new(Vec::new()));
        let sink = records.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock()
                    .unwrap()
                    .push(serde_json::from_str(&line).unwrap());
            }
        });
        Receiver {
            port,
            records,
            _child: child,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Tells the receiver how to answer requests to `path`.
    async fn plan(&self, path: &str, secret: &str, plan: Value, delay: f64) {
        let body =
            json!({"path": path, "secret": secret, "plan": plan, "delay": delay}).to_string();
        let mut tcp = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let request = format!(
            "POST /_control HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    }

    fn requests(&self, path: &str) -> Vec<Value> {
        self.records
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r["path"] == path)
            .cloned()
            .collect()
    }

    /// Waits until `n` requests to `path` came (at most 30 s).
    async fn wait_for(&self, path: &str, n: usize) -> Vec<Value> {
        for _ in 0..600 {
            let got = self.requests(path);
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{n} requests to {path} expected within 30 s, got {:?}",
            self.requests(path)
        );
    }
}

/// A worker of the webhooks queue in the background, stopped on drop.
struct Working {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<events::WorkReport>,
}

fn work(queue: &Queue, webhooks: &Webhooks, concurrency: usize) -> Working {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = Worker::new(queue.clone())
        .queues([QUEUE])
        .state(webhooks.clone())
        .concurrency(concurrency)
        .poll_interval(Duration::from_millis(20));
    let task = tokio::spawn(async move {
        worker
            .run_until(async {
                let _ = stopped.await;
            })
            .await
            .expect("the worker runs")
    });
    Working {
        stop: Some(stop),
        task,
    }
}

impl Working {
    async fn stop(mut self) -> events::WorkReport {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap()
    }
}

fn webhooks(store: &Store) -> Webhooks {
    Webhooks::new(store.clone())
        .allow_private(true)
        .require_https(false)
        .jitter(0.0)
}

async fn append(store: &Store, name: &str, payload: Value) -> StoredEvent {
    let event = NewEvent::new(name, payload.to_string());
    let id = event.id;
    store.append(vec![event]).await.unwrap();
    store.event(id).await.unwrap().unwrap()
}

fn at(record: &Value) -> f64 {
    record["received_at"].as_f64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_on_schedule_until_the_receiver_verifies_and_accepts_then_410_disables() {
    let receiver = Receiver::start().await;
    let store = Store::memory();
    let queue = Queue::memory();
    let steps = vec![Duration::from_millis(400), Duration::from_millis(800)];
    let webhooks = webhooks(&store).retry_schedule(steps.clone());
    let sub = webhooks
        .subscribe(
            NewSubscription::new(receiver.url("/hook"), ["appointment.*"]).description("calendar"),
        )
        .await
        .unwrap();
    assert!(sub.id.starts_with("sub_") && sub.secret.starts_with("whsec_"));
    receiver
        .plan(
            "/hook",
            &sub.secret,
            json!([{"status": 500}, {"status": 502}, {"status": 200, "body": "thanks"}]),
            0.0,
        )
        .await;

    let event = append(&store, "appointment.created", json!({"appointment_id": 7})).await;
    let other = append(&store, "invoice.paid", json!({"invoice": 1})).await;
    assert_eq!(
        webhooks
            .enqueue_for(&[event.clone(), other], &queue)
            .await
            .unwrap(),
        1,
        "only the matching event becomes a delivery"
    );
    let worker = work(&queue, &webhooks, 2);
    let got = receiver.wait_for("/hook", 3).await;

    // The independent implementation verified every attempt, each signed
    // afresh, all under one webhook-id, with the body {type, timestamp, data}.
    for r in &got {
        assert_eq!(r["verified"], true, "{r}");
        assert_eq!(r["type"], "appointment.created");
        assert_eq!(r["data"], json!({"appointment_id": 7}));
        assert_eq!(r["content_type"], "application/json");
    }
    let ids: Vec<&Value> = got.iter().map(|r| &r["webhook_id"]).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert!(ids[0].as_str().unwrap().contains(&event.id.to_string()));
    // The retries waited the schedule (no jitter here): at least each step.
    assert!(at(&got[1]) - at(&got[0]) >= 0.4, "{got:?}");
    assert!(at(&got[2]) - at(&got[1]) >= 0.8, "{got:?}");

    // The log has every attempt, newest first.
    let mut log = Vec::new();
    for _ in 0..100 {
        log = webhooks
            .deliveries(&DeliveryQuery::new().subscription(&sub.id))
            .await
            .unwrap();
        if log.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let attempts: Vec<(u32, Option<u16>, bool)> = log
        .iter()
        .rev()
        .map(|d| (d.attempt, d.status, d.succeeded))
        .collect();
    assert_eq!(
        attempts,
        [
            (1, Some(500), false),
            (2, Some(502), false),
            (3, Some(200), true)
        ]
    );
    assert_eq!(log[0].response.as_deref(), Some("thanks"));
    assert_eq!(log[0].error, None);
    assert!(log[1].error.as_deref().unwrap().contains("HTTP 502"));
    assert!(log.iter().all(|d| d.event_id == event.id && !d.replay));
    let now = webhooks.subscription(&sub.id).await.unwrap().unwrap();
    assert_eq!(
        (now.active, now.consecutive_failures),
        (true, 0),
        "a success resets the count"
    );

    // 410 turns it off at once, with the reason; then nothing more goes out.
    receiver
        .plan("/hook", &sub.secret, json!([{"status": 410}]), 0.0)
        .await;
    let gone = append(
        &store,
        "appointment.cancelled",
        json!({"appointment_id": 7}),
    )
    .await;
    webhooks.enqueue_for(&[gone], &queue).await.unwrap();
    receiver.wait_for("/hook", 4).await;
    let mut off = None;
    for _ in 0..100 {
        let sub = webhooks.subscription(&sub.id).await.unwrap().unwrap();
        if !sub.active {
            off = Some(sub);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let off = off.expect("410 turned the subscription off");
    assert!(off.disabled_reason.unwrap().contains("410"));
    let later = append(&store, "appointment.created", json!({"appointment_id": 8})).await;
    assert_eq!(webhooks.enqueue_for(&[later], &queue).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.requests("/hook").len(), 4, "no retry after 410");
    let report = worker.stop().await;
    assert_eq!(
        report.failed, 1,
        "the 410 delivery went to the failed store"
    );
    let failed = queue.failed().await.unwrap();
    assert!(failed[0].error.contains("410"), "{failed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_consecutive_failures_disable_and_record_why() {
    let receiver = Receiver::start().await;
    let store = Store::memory();
    let queue = Queue::memory();
    // No retry: each event is one attempt.
    let webhooks = webhooks(&store).retry_schedule(vec![]);
    let sub = webhooks
        .subscribe(NewSubscription::new(receiver.url("/down"), ["*"]))
        .await
        .unwrap();
    receiver
        .plan("/down", &sub.secret, json!([{"status": 500}]), 0.0)
        .await;
    let mut stored = Vec::new();
    for n in 0..12 {
        stored.push(append(&store, "order.placed", json!({"n": n})).await);
    }
    assert_eq!(webhooks.enqueue_for(&stored, &queue).await.unwrap(), 12);
    let worker = work(&queue, &webhooks, 1);
    receiver.wait_for("/down", 10).await;
    // Let the two remaining jobs run: they find the subscription off.
    for _ in 0..200 {
        if queue.size(QUEUE).await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    worker.stop().await;
    let got = receiver.requests("/down");
    assert_eq!(got.len(), 10, "the 11th and 12th were not sent");
    assert!(got.iter().all(|r| r["verified"] == true));
    let off = webhooks.subscription(&sub.id).await.unwrap().unwrap();
    assert!(!off.active);
    assert_eq!(off.consecutive_failures, 10);
    let reason = off.disabled_reason.unwrap();
    assert!(reason.contains("10 consecutive"), "{reason}");
    assert!(reason.contains("HTTP 500"), "{reason}");
    let log = webhooks
        .deliveries(&DeliveryQuery::new().subscription(&sub.id))
        .await
        .unwrap();
    assert_eq!(log.len(), 10);

    // Turned on again, its count starts over.
    let on = webhooks
        .update(&sub.id, &SubscriptionChange::new().active(true))
        .await
        .unwrap()
        .unwrap();
    assert!(on.active && on.consecutive_failures == 0 && on.disabled_reason.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_on_429_is_honoured() {
    let receiver = Receiver::start().await;
    let store = Store::memory();
    let queue = Queue::memory();
    let webhooks = webhooks(&store).retry_schedule(vec![Duration::from_millis(50)]);
    let sub = webhooks
        .subscribe(NewSubscription::new(receiver.url("/busy"), ["*"]))
        .await
        .unwrap();
    receiver
        .plan(
            "/busy",
            &sub.secret,
            json!([{"status": 429, "retry_after": 2}, {"status": 204}]),
            0.0,
        )
        .await;
    let event = append(&store, "a", json!({})).await;
    webhooks.enqueue_for(&[event], &queue).await.unwrap();
    let worker = work(&queue, &webhooks, 1);
    let got = receiver.wait_for("/busy", 2).await;
    worker.stop().await;
    let waited = at(&got[1]) - at(&got[0]);
    assert!(
        waited >= 2.0,
        "Retry-After: 2 waited {waited}s, not the 50 ms step"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_keep_the_webhook_id_are_signed_afresh_and_do_not_count() {
    let receiver = Receiver::start().await;
    let store = Store::memory();
    let queue = Queue::memory();
    let webhooks = webhooks(&store).retry_schedule(vec![]);
    let sub = webhooks
        .subscribe(NewSubscription::new(receiver.url("/replay"), ["*"]))
        .await
        .unwrap();
    receiver
        .plan(
            "/replay",
            &sub.secret,
            json!([{"status": 500}, {"status": 500}, {"status": 200}]),
            0.0,
        )
        .await;
    let first = append(&store, "a", json!({"n": 1})).await;
    let second = append(&store, "b", json!({"n": 2})).await;
    let since = SystemTime::now() - Duration::from_secs(1);
    webhooks
        .enqueue_for(&[first.clone(), second], &queue)
        .await
        .unwrap();
    let worker = work(&queue, &webhooks, 1);
    receiver.wait_for("/replay", 2).await;
    for _ in 0..100 {
        if webhooks
            .deliveries(&DeliveryQuery::new())
            .await
            .unwrap()
            .len()
            == 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.stop().await;
    let failed = webhooks
        .deliveries(&DeliveryQuery::new().event(first.id))
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        webhooks
            .subscription(&sub.id)
            .await
            .unwrap()
            .unwrap()
            .consecutive_failures,
        2
    );

    // One replay: answered 200, logged as a replay under the same id.
    let replayed = webhooks.replay(&failed[0].id).await.unwrap();
    assert!(replayed.replay && replayed.succeeded);
    assert_eq!(replayed.webhook_id, failed[0].webhook_id);
    let got = receiver.requests("/replay");
    assert_eq!(got.len(), 3);
    assert_eq!(got[2]["webhook_id"], got[0]["webhook_id"]);
    assert_eq!(got[2]["verified"], true);
    assert_eq!(got[2]["data"], json!({"n": 1}));
    // Replays do not count toward disabling (nor reset the count).
    assert_eq!(
        webhooks
            .subscription(&sub.id)
            .await
            .unwrap()
            .unwrap()
            .consecutive_failures,
        2
    );

    // Every failed delivery since: only the second event's is left.
    assert_eq!(webhooks.replay_failed_since(since).await.unwrap(), 1);
    let got = receiver.requests("/replay");
    assert_eq!(got.len(), 4);
    assert_eq!(got[3]["data"], json!({"n": 2}));
    assert_eq!(webhooks.replay_failed_since(since).await.unwrap(), 0);
    assert!(matches!(
        webhooks.replay("msg_nothing_here_x").await,
        Err(WebhookError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_endpoint_sends_a_signed_sample_and_tells_what_came_back() {
    let receiver = Receiver::start().await;
    let store = Store::memory();
    let webhooks = webhooks(&store);
    let sub = webhooks
        .subscribe(NewSubscription::new(receiver.url("/t"), ["*"]))
        .await
        .unwrap();
    receiver
        .plan(
            "/t",
            &sub.secret,
            json!([{"status": 202, "body": "got it"}]),
            0.0,
        )
        .await;
    let test = webhooks
        .test(&receiver.url("/t"), Some("appointment.created"))
        .await
        .unwrap();
    assert_eq!(test.status, Some(202));
    assert_eq!(test.response.as_deref(), Some("got it"));
    assert!(test.succeeded && test.error.is_none());
    assert_eq!(test.subscription_id.as_deref(), Some(sub.id.as_str()));
    assert_eq!(test.secret, None);
    let got = receiver.requests("/t");
    assert_eq!(got[0]["verified"], true);
    assert_eq!(got[0]["type"], "appointment.created");
    // A URL no subscription has: signed with a one-off secret it returns;
    // a 404 comes back as what it is.
    let other = webhooks.test(&receiver.url("/none"), None).await.unwrap();
    assert_eq!(other.status, Some(404));
    assert!(!other.succeeded);
    assert!(other.secret.unwrap().starts_with("whsec_"));
    // Nothing listening: an error in words, no status.
    let closed = webhooks.test("http://127.0.0.1:9/x", None).await.unwrap();
    assert_eq!(closed.status, None);
    assert!(closed.error.unwrap().contains("could not connect"));
    // The test endpoint follows the same address rules.
    let strict = Webhooks::new(store.clone()).require_https(false);
    assert!(matches!(
        strict.test(&receiver.url("/t"), None).await,
        Err(WebhookError::Forbidden(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_addresses_are_refused_unless_allowed() {
    let store = Store::memory();
    let strict = Webhooks::new(store.clone()).require_https(false);
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://localhost:8080/hook",
        "http://[::1]:8080/hook",
        "http://[::ffff:127.0.0.1]:8080/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://0.0.0.0:8080/hook",
    ] {
        let error = strict
            .subscribe(NewSubscription::new(url, ["*"]))
            .await
            .unwrap_err();
        assert!(
            matches!(error, WebhookError::Forbidden(_)),
            "{url}: {error}"
        );
        assert_eq!(error.status(), 403);
        assert!(
            error.to_string().contains("EVENTS_WEBHOOKS_ALLOW_PRIVATE"),
            "{error}"
        );
    }
    let error = strict
        .subscribe(NewSubscription::new("http://localhost:8080/hook", ["*"]))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("`localhost` resolves to"),
        "{error}"
    );
    // https is required by default.
    let error = Webhooks::new(store.clone())
        .allow_private(true)
        .subscribe(NewSubscription::new("http://127.0.0.1:8080/hook", ["*"]))
        .await
        .unwrap_err();
    assert!(matches!(error, WebhookError::Invalid(_)), "{error}");
    assert!(error.to_string().contains("not https"), "{error}");
    // Bad input is a 4xx in words.
    let error = webhooks(&store)
        .subscribe(NewSubscription::new(
            "http://127.0.0.1:8080/hook",
            Vec::<String>::new(),
        ))
        .await
        .unwrap_err();
    assert_eq!(error.status(), 400);
    // Allowed, it is taken; an update to a private URL is refused again by
    // a strict handle.
    let sub = webhooks(&store)
        .subscribe(NewSubscription::new("http://127.0.0.1:8080/hook", ["*"]))
        .await
        .unwrap();
    let error = strict
        .update(
            &sub.id,
            &SubscriptionChange::new().url("http://localhost:9000/x"),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, WebhookError::Forbidden(_)));
    assert!(
        webhooks(&store)
            .update("sub_missing", &SubscriptionChange::new().active(false))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_connected_to_is_checked_at_delivery_too() {
    // A subscription made while private addresses were allowed (or whose
    // name resolved elsewhere when it was made) is refused when delivered
    // by a strict handle: the check runs on the address connected to.
    let receiver = Receiver::start().await;
    let store = Store::memory();
    let queue = Queue::memory();
    let sub = webhooks(&store)
        .subscribe(NewSubscription::new(receiver.url("/private"), ["*"]))
        .await
        .unwrap();
    receiver
        .plan("/private", &sub.secret, json!([{"status": 200}]), 0.0)
        .await;
    let strict = Webhooks::new(store.clone())
        .require_https(false)
        .retry_schedule(vec![]);
    let event = append(&store, "a", json!({})).await;
    strict.enqueue_for(&[event], &queue).await.unwrap();
    let worker = work(&queue, &strict, 1);
    let mut log = Vec::new();
    for _ in 0..200 {
        log = strict.deliveries(&DeliveryQuery::new()).await.unwrap();
        if !log.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.stop().await;
    assert_eq!(log.len(), 1);
    let error = log[0].error.as_deref().unwrap();
    assert!(error.contains("127.0.0.1 is a loopback address"), "{error}");
    assert_eq!(log[0].status, None);
    assert!(receiver.requests("/private").is_empty(), "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_does_not_delay_another() {
    let slow = Receiver::start().await;
    let fast = Receiver::start().await;
    let store = Store::memory();
    let queue = Queue::memory();
    let webhooks = webhooks(&store)
        .endpoint_concurrency(2)
        .timeout(Duration::from_secs(20));
    let slow_sub = webhooks
        .subscribe(NewSubscription::new(slow.url("/slow"), ["slow"]))
        .await
        .unwrap();
    let fast_sub = webhooks
        .subscribe(NewSubscription::new(fast.url("/fast"), ["fast"]))
        .await
        .unwrap();
    slow.plan("/slow", &slow_sub.secret, json!([{"status": 200}]), 3.0)
        .await;
    fast.plan("/fast", &fast_sub.secret, json!([{"status": 200}]), 0.0)
        .await;
    let mut events = Vec::new();
    for n in 0..6 {
        events.push(append(&store, "slow", json!({"n": n})).await);
    }
    events.push(append(&store, "fast", json!({})).await);
    assert_eq!(webhooks.enqueue_for(&events, &queue).await.unwrap(), 7);
    let worker = work(&queue, &webhooks, 4);
    fast.wait_for("/fast", 1).await;
    // When the fast endpoint got its delivery, the slow one (two at a time,
    // 3 s each) had finished at most two of its six.
    let slow_done = slow.requests("/slow").len();
    assert!(
        slow_done <= 2,
        "the fast delivery waited for {slow_done} slow ones"
    );
    slow.wait_for("/slow", 6).await;
    worker.stop().await;
    assert!(
        slow.requests("/slow").iter().all(|r| r["verified"] == true),
        "every slow delivery verified"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_outlasts_the_timeout_fails_in_words() {
    let receiver = Receiver::start().await;
    let store = Store::memory();
    let webhooks = webhooks(&store).timeout(Duration::from_millis(300));
    let sub = webhooks
        .subscribe(NewSubscription::new(receiver.url("/hang"), ["*"]))
        .await
        .unwrap();
    receiver
        .plan("/hang", &sub.secret, json!([{"status": 200}]), 2.0)
        .await;
    let test = webhooks.test(&receiver.url("/hang"), None).await.unwrap();
    assert_eq!(test.status, None);
    assert!(
        test.error
            .as_deref()
            .unwrap()
            .contains("no response within 300ms"),
        "{test:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_wait_durably_on_the_sqlite_queue() {
    // The jobs live in the SQLite queue: a worker started later (here, on
    // a queue opened again from the file) delivers them.
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("queue.db").display());
    let store = Store::memory();
    let webhooks = webhooks(&store);
    let sub = webhooks
        .subscribe(
            NewSubscription::new(receiver.url("/durable"), ["appointment.*"])
                .filter("status", json!("paid")),
        )
        .await
        .unwrap();
    receiver
        .plan("/durable", &sub.secret, json!([{"status": 200}]), 0.0)
        .await;
    let paid = append(
        &store,
        "appointment.updated",
        json!({"status": "paid", "n": 1}),
    )
    .await;
    let due = append(
        &store,
        "appointment.updated",
        json!({"status": "due", "n": 2}),
    )
    .await;
    {
        let queue = events::queue::connect(&url).await.unwrap();
        assert_eq!(
            webhooks.enqueue_for(&[paid, due], &queue).await.unwrap(),
            1,
            "the filter keeps the unpaid one out"
        );
        assert_eq!(queue.size(QUEUE).await.unwrap(), 1);
    }
    let queue = events::queue::connect(&url).await.unwrap();
    let worker = work(&queue, &webhooks, 1);
    let got = receiver.wait_for("/durable", 1).await;
    worker.stop().await;
    assert_eq!(got[0]["verified"], true);
    assert_eq!(got[0]["data"]["n"], 1);
}
