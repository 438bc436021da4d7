//! The event log's HTTP API over a real socket with a real client, on the
//! memory store and on SQLite: closed without a token or an authenticator, history with
//! every filter and paged by cursor, one entity's timeline, stats buckets,
//! schemas, bad input answered 4xx in words, a failing store answered 503
//! with its causes, and the OpenAPI description checked against what the
//! server answers.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use events_core::EventId;
use events_core::store::{
    Appended, Entity, EventPage, EventQuery, EventStore, NewEvent, Prune, SchemaSeen, StatsQuery,
    StatsRow, Store, StoreError, StoredEvent, TimelineQuery,
};
use events_http::Api;
use serde_json::{Value, json};
use support::{Client, TOKEN, serve};

/// The tests that read what a store holds run on the memory store and on
/// SQLite (a fresh file each).
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Store::memory()).await
            })*
        }
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                let dir = tempfile::tempdir().unwrap();
                let store = events_sqlite::SqliteStore::open(dir.path().join("log.db")).unwrap();
                super::$name(super::Store::with_store("sqlite://log.db", store)).await
            })*
        }
    };
}

on_every_store!(
    an_event_has_the_documented_fields,
    history_filters_by_name_entity_actor_and_time,
    history_pages_by_cursor_both_ways,
    the_timeline_of_one_entity_with_and_without_related_events,
    stats_count_per_name_per_bucket,
    schemas_list_fields_seen_and_the_schema_the_application_knows,
);

/// 2026-01-01T00:00:00Z.
const BASE_MS: u64 = 1_767_225_600_000;

fn at(ms_after_base: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(BASE_MS + ms_after_base)
}

/// Serves `api` and gives a client bearing the token.
async fn open(api: Api) -> Client {
    let base = serve(api.router()).await;
    Client::new(&base, Some(TOKEN))
}

/// A store with the appointment story: 3 appointments, one invoice, two
/// actors, spread over two days.
async fn story(store: Store) -> Store {
    let mut events = Vec::new();
    for n in 1..=3u64 {
        events.push(
            NewEvent::new(
                "appointment.created",
                json!({"appointment_id": n, "source": "web"}).to_string(),
            )
            .entity(Entity::new("appointment", n.to_string()))
            .occurred_at(at(n * 60_000))
            .with("actor_id", if n == 2 { "bob" } else { "alice" }),
        );
    }
    events.push(
        NewEvent::new("appointment.confirmed", r#"{"appointment_id":1}"#)
            .entity(Entity::new("appointment", "1"))
            .occurred_at(at(3_600_000 + 5_000))
            .with("actor_id", "alice"),
    );
    events.push(
        NewEvent::new("invoice.issued", r#"{"invoice_id":5,"amount":120}"#)
            .entity(Entity::new("invoice", "5"))
            .occurred_at(at(86_400_000 + 1))
            .with("related", "appointment:1")
            .version(2),
    );
    events.push(
        NewEvent::new(
            "appointment.cancelled",
            r#"{"appointment_id":2,"reason":"ill"}"#,
        )
        .entity(Entity::new("appointment", "2"))
        .occurred_at(at(86_400_000 + 120_000))
        .with("actor_id", "bob"),
    );
    store.append(events).await.unwrap();
    store
}

fn positions(page: &Value) -> Vec<u64> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn without_a_token_or_an_authenticator_every_route_answers_401() {
    let client = Client::new(
        &serve(Api::new(story(Store::memory()).await).router()).await,
        Some(TOKEN),
    );
    for (method, path) in [
        ("GET", "/events"),
        (
            "GET",
            "/events/timeline?entity_type=appointment&entity_id=1",
        ),
        ("GET", "/events/stats"),
        ("GET", "/events/schemas"),
        ("GET", "/events/subscriptions"),
        ("POST", "/events/subscriptions"),
        ("PUT", "/events/subscriptions/x"),
        ("DELETE", "/events/subscriptions/x"),
        ("GET", "/events/webhook-logs"),
        ("POST", "/events/test-webhook"),
        ("GET", "/events/openapi.json"),
        ("GET", "/events/nothing-here"),
    ] {
        let answer = client.send(method, path, &[], None).await;
        assert_eq!(answer.status, 401, "{method} {path}: {}", answer.body);
        assert!(answer.error().contains("closed"), "{}", answer.body);
    }
}

#[tokio::test]
async fn the_token_opens_it_and_nothing_else_does() {
    let base = serve(Api::new(story(Store::memory()).await).token(TOKEN).router()).await;
    let with = Client::new(&base, Some(TOKEN));
    assert_eq!(with.get("/events").await.status, 200);

    let without = Client::new(&base, None).get("/events").await;
    assert_eq!(without.status, 401);
    assert!(without.error().contains("Authorization: Bearer"));
    assert_eq!(
        without.header("www-authenticate"),
        Some("Bearer realm=\"events\"")
    );

    for wrong in [
        &TOKEN[..TOKEN.len() - 1],
        "t0ken: with spaces & symbolz",
        "x",
    ] {
        let answer = Client::new(&base, Some(wrong)).get("/events").await;
        assert_eq!(answer.status, 401, "{wrong}");
        assert!(answer.error().contains("not the events API's"));
    }
    let basic = Client::new(&base, None)
        .send("GET", "/events", &[("authorization", "Basic dTpw")], None)
        .await;
    assert_eq!(basic.status, 401);
}

#[tokio::test]
async fn an_authenticator_decides_from_the_request() {
    let api = Api::new(story(Store::memory()).await)
        .authorize(|request| request.headers.get("x-api-key").is_some_and(|k| k == "k-1"));
    let base = serve(api.router()).await;
    let client = Client::new(&base, None);
    let yes = client
        .send("GET", "/events", &[("x-api-key", "k-1")], None)
        .await;
    assert_eq!(yes.status, 200, "{}", yes.body);
    let no = client
        .send("GET", "/events", &[("x-api-key", "k-2")], None)
        .await;
    assert_eq!(no.status, 401);
    assert!(no.error().contains("authenticator refused"));
}

#[tokio::test]
async fn the_token_comes_from_events_http_token() {
    let config = events_core::Config::from_vars([("EVENTS_HTTP_TOKEN", TOKEN)]).unwrap();
    let api = Api::new(Store::memory()).config(&config);
    assert!(api.is_open());
    let client = open(api).await;
    assert_eq!(client.get("/events").await.status, 200);
    let var = events_core::config::vars()
        .into_iter()
        .find(|v| v.name() == "EVENTS_HTTP_TOKEN")
        .expect("registered");
    assert!(var.is_secret());

    let empty = events_core::Config::from_vars([("EVENTS_HTTP_TOKEN", "")]).unwrap();
    assert!(!Api::new(Store::memory()).config(&empty).is_open());
}

async fn an_event_has_the_documented_fields(store: Store) {
    let client = open(Api::new(story(store).await).token(TOKEN)).await;
    let page = client.ok("/events?limit=1").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    let event = &page["events"][0];
    let id: EventId = event["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        event,
        &json!({
            "position": 1,
            "id": id.to_string(),
            "name": "appointment.created",
            "version": 1,
            "payload": {"appointment_id": 1, "source": "web"},
            "occurred_at": "2026-01-01T00:01:00.000Z",
            "metadata": {"actor_id": "alice"},
            "entity": {"type": "appointment", "id": "1"},
            "entity_version": 1,
            "related": [],
        })
    );
    assert_eq!(page["next"], 1);
    assert_eq!(page["order"], "asc");

    let invoice = client.ok("/events?event_name=invoice.issued").await;
    let invoice = &invoice["events"][0];
    assert_eq!(invoice["version"], 2);
    assert_eq!(
        invoice["related"],
        json!([{"type": "appointment", "id": "1"}])
    );
}

async fn history_filters_by_name_entity_actor_and_time(store: Store) {
    let client = open(Api::new(story(store).await).token(TOKEN)).await;
    let cases: &[(&str, &[u64])] = &[
        ("/events", &[1, 2, 3, 4, 5, 6]),
        ("/events?event_name=appointment.*", &[1, 2, 3, 4, 6]),
        ("/events?name=appointment.created", &[1, 2, 3]),
        (
            "/events?event_name=invoice.issued,appointment.cancelled",
            &[5, 6],
        ),
        ("/events?entity_type=invoice", &[5]),
        ("/events?entity_type=appointment&entity_id=1", &[1, 4]),
        ("/events?actor=bob", &[2, 6]),
        (
            "/events?actor=alice&event_name=appointment.created",
            &[1, 3],
        ),
        // RFC 3339 with an offset, and epoch milliseconds; `to` excludes.
        ("/events?from=2026-01-01T02:00:00%2B01:00", &[4, 5, 6]),
        (
            &format!(
                "/events?from={}&to={}",
                BASE_MS + 120_000,
                BASE_MS + 86_400_001
            ),
            &[2, 3, 4],
        ),
        ("/events?to=2026-01-01T00:02:00Z", &[1]),
        ("/events?order=desc", &[6, 5, 4, 3, 2, 1]),
        ("/events?after=2&before=5", &[3, 4]),
        ("/events?event_name=nothing.*", &[]),
    ];
    for (path, want) in cases {
        let page = client.ok(path).await;
        assert_eq!(&positions(&page), want, "{path}");
    }
}

async fn history_pages_by_cursor_both_ways(store: Store) {
    let events: Vec<NewEvent> = (0..25)
        .map(|n| NewEvent::new("tick", json!({ "n": n }).to_string()).occurred_at(at(n)))
        .collect();
    store.append(events).await.unwrap();
    let client = open(Api::new(store).token(TOKEN)).await;

    for (order, cursor, want) in [
        ("asc", "after", (1..=25).collect::<Vec<u64>>()),
        ("desc", "before", (1..=25).rev().collect()),
    ] {
        let mut seen = Vec::new();
        let mut path = format!("/events?limit=10&order={order}");
        let mut pages = 0;
        loop {
            let page = client.ok(&path).await;
            pages += 1;
            seen.extend(positions(&page));
            match page["next"].as_u64() {
                Some(next) => path = format!("/events?limit=10&order={order}&{cursor}={next}"),
                None => break,
            }
            assert!(pages < 10, "paging does not end");
        }
        assert_eq!(seen, want, "{order}");
        assert_eq!(pages, 3, "{order}");
    }
}

async fn the_timeline_of_one_entity_with_and_without_related_events(store: Store) {
    let client = open(Api::new(story(store).await).token(TOKEN)).await;
    let timeline = client
        .ok("/events/timeline?entity_type=appointment&entity_id=1")
        .await;
    assert_eq!(positions(&timeline), [1, 4]);
    assert_eq!(
        timeline["entity"],
        json!({"type": "appointment", "id": "1"})
    );
    assert_eq!(timeline["version"], 2);
    assert_eq!(timeline["related"], false);
    let names: Vec<&str> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["appointment.created", "appointment.confirmed"]);
    let versions: Vec<u64> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entity_version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2]);

    let with_related = client
        .ok("/events/timeline?entity_type=appointment&entity_id=1&related=true")
        .await;
    assert_eq!(positions(&with_related), [1, 4, 5]);

    let desc = client
        .ok("/events/timeline?entity_type=appointment&entity_id=1&related=true&order=desc&limit=2")
        .await;
    assert_eq!(positions(&desc), [5, 4]);
    assert_eq!(desc["next"], 4);
    let rest = client
        .ok("/events/timeline?entity_type=appointment&entity_id=1&related=true&order=desc&limit=2&after=4")
        .await;
    assert_eq!(positions(&rest), [1]);

    let nobody = client
        .ok("/events/timeline?entity_type=appointment&entity_id=404")
        .await;
    assert_eq!(positions(&nobody), Vec::<u64>::new());
    assert_eq!(nobody["version"], 0);
}

async fn stats_count_per_name_per_bucket(store: Store) {
    let client = open(Api::new(story(store).await).token(TOKEN)).await;
    let rows = |stats: &Value| -> Vec<(String, String, u64)> {
        stats["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["start"].as_str().unwrap().to_owned(),
                    r["name"].as_str().unwrap().to_owned(),
                    r["count"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let row = |start: &str, name: &str, count: u64| (start.to_owned(), name.to_owned(), count);

    let day = client.ok("/events/stats?bucket=day").await;
    assert_eq!(day["bucket"], "day");
    assert_eq!(
        rows(&day),
        [
            row("2026-01-01T00:00:00.000Z", "appointment.confirmed", 1),
            row("2026-01-01T00:00:00.000Z", "appointment.created", 3),
            row("2026-01-02T00:00:00.000Z", "appointment.cancelled", 1),
            row("2026-01-02T00:00:00.000Z", "invoice.issued", 1),
        ]
    );
    assert_eq!(
        day["totals"],
        json!({"appointment.cancelled": 1, "appointment.confirmed": 1, "appointment.created": 3, "invoice.issued": 1})
    );

    let hour = client
        .ok("/events/stats?bucket=hour&event_name=appointment.*&to=2026-01-02T00:00:00Z")
        .await;
    assert_eq!(
        rows(&hour),
        [
            row("2026-01-01T00:00:00.000Z", "appointment.created", 3),
            row("2026-01-01T01:00:00.000Z", "appointment.confirmed", 1),
        ]
    );
    assert_eq!(hour["to"], "2026-01-02T00:00:00.000Z");
    assert_eq!(hour["from"], Value::Null);

    let minute = client
        .ok("/events/stats?bucket=minute&event_name=appointment.created")
        .await;
    assert_eq!(
        rows(&minute),
        [
            row("2026-01-01T00:01:00.000Z", "appointment.created", 1),
            row("2026-01-01T00:02:00.000Z", "appointment.created", 1),
            row("2026-01-01T00:03:00.000Z", "appointment.created", 1),
        ]
    );
    // Hour is the default.
    assert_eq!(client.ok("/events/stats").await["bucket"], "hour");
}

async fn schemas_list_fields_seen_and_the_schema_the_application_knows(store: Store) {
    let api = Api::new(story(store).await).token(TOKEN).schema_for(|name, version| {
        (name == "invoice.issued" && version == 2).then(|| {
            json!({"type": "object", "properties": {"invoice_id": {"type": "integer"}, "amount": {"type": "integer"}}})
        })
    });
    let client = open(api).await;
    let schemas = client.ok("/events/schemas").await;
    let list = schemas["schemas"].as_array().unwrap();
    let summary: Vec<(&str, u64, u64)> = list
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["version"].as_u64().unwrap(),
                s["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("appointment.cancelled", 1, 1),
            ("appointment.confirmed", 1, 1),
            ("appointment.created", 1, 3),
            ("invoice.issued", 2, 1),
        ]
    );
    assert_eq!(list[0]["fields"], json!(["appointment_id", "reason"]));
    assert_eq!(list[0]["schema"], Value::Null);
    assert_eq!(list[2]["last_seen"], "2026-01-01T00:03:00.000Z");
    assert_eq!(list[3]["fields"], json!(["amount", "invoice_id"]));
    assert_eq!(list[3]["schema"]["properties"]["amount"]["type"], "integer");
}

/// Asserts `path` answers `status` with an error whose words contain
/// `words`.
async fn refused(
    client: &Client,
    method: &str,
    path: &str,
    body: Option<(&str, &str)>,
    status: u16,
    words: &str,
) {
    let headers: Vec<(&str, &str)> = body.iter().map(|(ct, _)| ("content-type", *ct)).collect();
    let answer = client
        .send(method, path, &headers, body.map(|(_, b)| b))
        .await;
    assert_eq!(answer.status, status, "{method} {path}: {}", answer.body);
    let error = answer.error();
    assert!(
        error.contains(words),
        "{method} {path}: `{error}` does not say `{words}`"
    );
}

#[tokio::test]
async fn bad_input_is_a_4xx_in_words() {
    let client = open(Api::new(story(Store::memory()).await).token(TOKEN)).await;
    let cases: &[(&str, u16, &str)] = &[
        ("/events?colour=red", 400, "unknown field `colour`"),
        (
            "/events?from=yesterday",
            400,
            "`from`: `yesterday` is not a time",
        ),
        ("/events?to=2026-13-01T00:00:00Z", 400, "RFC 3339"),
        (
            "/events?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            400,
            "ends before it starts",
        ),
        ("/events?after=abc", 400, "`after` is a position"),
        ("/events?before=-1", 400, "`before` is a position"),
        (
            "/events?limit=0",
            400,
            "`limit` is a whole number from 1 to 1000",
        ),
        ("/events?limit=1001", 400, "not `1001`"),
        ("/events?limit=ten", 400, "not `ten`"),
        ("/events?limit=", 400, "not ``"),
        ("/events?before=9223372036854775808", 400, "below 2^63"),
        ("/events/stats?bucket=", 400, "not a bucket"),
        ("/events?order=sideways", 400, "`order` is `asc`"),
        ("/events?entity_id=1", 400, "needs `entity_type`"),
        ("/events?limit=1&limit=2", 400, "duplicate field `limit`"),
        (
            "/events/timeline?entity_type=appointment",
            400,
            "needs `entity_type` and `entity_id`",
        ),
        (
            "/events/timeline?entity_type=a&entity_id=1&related=maybe",
            400,
            "`related` is `true` or `false`",
        ),
        (
            "/events/timeline?entity_type=a&entity_id=1&after=x",
            400,
            "`after` is a position",
        ),
        ("/events/stats?bucket=week", 400, "not a bucket"),
        (
            "/events/stats?from=879186499042835",
            400,
            "after 9999-12-31",
        ),
        ("/events?to=10000-01-01T00:00:00Z", 400, "is not a time"),
        (
            "/events/stats?from=2026-01-02T00:00:00Z&to=1",
            400,
            "ends before it starts",
        ),
        (
            "/events/stats?bucket=day&limit=3",
            400,
            "unknown field `limit`",
        ),
        ("/events/schemas?x=1", 400, "unknown field `x`"),
        (
            "/events/nothing-here",
            404,
            "no route at `/events/nothing-here`",
        ),
        ("/events/subscriptions/a/b", 404, "no route"),
    ];
    for (path, status, words) in cases {
        refused(&client, "GET", path, None, *status, words).await;
    }
    // A query string that is not one.
    refused(
        &client,
        "GET",
        "/events?%zz=1",
        None,
        400,
        "bad query string",
    )
    .await;
    // A method a route does not take.
    let answer = client.send("DELETE", "/events", &[], None).await;
    assert_eq!(answer.status, 405);
    assert!(
        answer
            .error()
            .contains("`/events` does not take DELETE: it takes GET")
    );
    assert_eq!(answer.header("allow"), Some("GET"));
    let answer = client.send("GET", "/events/test-webhook", &[], None).await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.header("allow"), Some("POST"));
}

#[tokio::test]
async fn an_event_stored_past_the_year_9999_is_listed() {
    let store = Store::memory();
    let far = UNIX_EPOCH + Duration::from_millis(879_186_499_042_835);
    store
        .append(vec![NewEvent::new("far.future", "{}").occurred_at(far)])
        .await
        .unwrap();
    let client = open(Api::new(store).token(TOKEN)).await;
    let page = client.ok("/events").await;
    assert_eq!(
        page["events"][0]["occurred_at"],
        "29830-04-24T15:57:22.835Z"
    );
    let stats = client.ok("/events/stats?bucket=day").await;
    assert_eq!(stats["buckets"][0]["start"], "29830-04-24T00:00:00.000Z");
}

/// A store whose every operation fails as a disk would.
struct BrokenStore;

fn broken<T>() -> Result<T, StoreError> {
    Err(StoreError::backend(
        "broken",
        std::io::Error::other("database or disk is full"),
    ))
}

#[async_trait]
impl EventStore for BrokenStore {
    async fn append(&self, _: Vec<NewEvent>) -> Result<Vec<Appended>, StoreError> {
        broken()
    }
    async fn append_expecting(
        &self,
        _: &Entity,
        _: u64,
        _: Vec<NewEvent>,
    ) -> Result<Vec<Appended>, StoreError> {
        broken()
    }
    async fn events(&self, _: &EventQuery) -> Result<EventPage, StoreError> {
        broken()
    }
    async fn event(&self, _: EventId) -> Result<Option<StoredEvent>, StoreError> {
        broken()
    }
    async fn timeline(&self, _: &TimelineQuery) -> Result<EventPage, StoreError> {
        broken()
    }
    async fn stream_version(&self, _: &Entity) -> Result<u64, StoreError> {
        broken()
    }
    async fn last_position(&self) -> Result<u64, StoreError> {
        broken()
    }
    async fn stats(&self, _: &StatsQuery) -> Result<Vec<StatsRow>, StoreError> {
        broken()
    }
    async fn schemas(&self) -> Result<Vec<SchemaSeen>, StoreError> {
        broken()
    }
    async fn prune(&self, _: &Prune) -> Result<u64, StoreError> {
        broken()
    }
    async fn checkpoint(&self, _: &str) -> Result<Option<u64>, StoreError> {
        broken()
    }
    async fn save_checkpoint(&self, _: &str, _: u64) -> Result<(), StoreError> {
        broken()
    }
    async fn clear_checkpoint(&self, _: &str) -> Result<bool, StoreError> {
        broken()
    }
}

#[tokio::test]
async fn a_failing_store_is_a_503_with_its_causes() {
    let store = Store::with_store("broken://", BrokenStore);
    let client = open(Api::new(store).token(TOKEN)).await;
    for path in [
        "/events",
        "/events/timeline?entity_type=a&entity_id=1",
        "/events/stats",
        "/events/schemas",
    ] {
        let answer = client.get(path).await;
        assert_eq!(answer.status, 503, "{path}: {}", answer.body);
        assert_eq!(
            answer.error(),
            "the broken event store failed: database or disk is full"
        );
        assert_eq!(answer.header("retry-after"), Some("5"));
    }
    // Bad input is still refused before the store is asked.
    assert_eq!(client.get("/events?limit=0").await.status, 400);
}

#[tokio::test]
async fn the_openapi_description_names_every_route_the_server_answers() {
    let client = open(Api::new(story(Store::memory()).await).token(TOKEN)).await;
    let doc = client.ok("/events/openapi.json").await;
    assert_eq!(doc["openapi"], "3.0.3");
    assert_eq!(doc["servers"], json!([{"url": "/"}]));
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 9);
    const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];
    for (path, item) in paths {
        let concrete = path.replace("{id}", "some-id");
        let described: Vec<String> = item
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "parameters")
            .map(|k| k.to_ascii_uppercase())
            .collect();
        for method in METHODS {
            let answer = client
                .send(
                    method,
                    &concrete,
                    &[("content-type", "application/json")],
                    Some("{}"),
                )
                .await;
            if described.iter().any(|d| d == method) {
                assert!(
                    ![404, 405].contains(&answer.status)
                        || answer.error().contains("no subscription"),
                    "{method} {path} is described but answers {}: {}",
                    answer.status,
                    answer.body
                );
            } else {
                assert_eq!(
                    answer.status, 405,
                    "{method} {path} is not described but answers {}: {}",
                    answer.status, answer.body
                );
            }
        }
    }
}

#[tokio::test]
async fn nested_under_a_prefix_the_description_names_it() {
    let api = Api::new(Store::memory()).token(TOKEN);
    let app = events_http::axum::Router::new().nest("/api", api.router());
    let client = Client::new(&serve(app).await, Some(TOKEN));
    let doc = client.ok("/api/events/openapi.json").await;
    assert_eq!(doc["servers"], json!([{"url": "/api"}]));
    assert_eq!(client.get("/api/events").await.status, 200);
}
