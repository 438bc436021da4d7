//! `cli serve` with the `http` feature, in a real process: the event log's
//! API at `/events` on `--host H --port P`, behind `EVENTS_HTTP_TOKEN`,
//! on the store `EVENTS_STORE_URL` names; without a store, `/events`
//! answers 503 saying which variable to set. The routes themselves are
//! tested in `events-http/tests`.

#[path = "support/cli.rs"]
mod cli_support;

#[path = "support/http.rs"]
mod http_support;

use std::io::BufRead;

use serde_json::Value;

const TOKEN: &str = "serve-t0ken";

/// The command line of `child_serve_process`, one argument a line.
const CHILD_ARGS: &str = "EVENTS_TEST_SERVE_ARGS";

/// Not a test of its own: the application binary the `serve_*` tests
/// start (this test binary again, with `CHILD_ARGS` set), running
/// `events::cli::commands()` as `events::cli::run()` does. Without
/// `CHILD_ARGS` it does nothing.
#[tokio::test]
async fn child_serve_process() {
    cli_support::run_child(CHILD_ARGS).await;
}

/// A `serve` child process and its address.
struct Served {
    child: std::process::Child,
    line: String,
    addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve --host 127.0.0.1 --port 0` with `env`; waits for its
/// start line.
async fn start(env: &[(&str, &str)]) -> Served {
    start_with(&[], env).await
}

/// [`start`] with more arguments after `serve --host 127.0.0.1 --port 0`.
async fn start_with(args: &[&str], env: &[(&str, &str)]) -> Served {
    let mut argv = String::from("serve\n--host\n127.0.0.1\n--port\n0");
    for arg in args {
        argv.push('\n');
        argv.push_str(arg);
    }
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "child_serve_process",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD_ARGS, argv)
        .env("EVENTS_QUEUE_URL", "memory://")
        .env_remove("EVENTS_STORE_URL")
        .env_remove("EVENTS_HTTP_TOKEN")
        .env_remove("EVENTS_DASHBOARD_TOKEN")
        .stdout(std::process::Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        lines
            .find_map(|l| {
                // The test harness writes its own words before the line.
                let l = l.ok()?;
                let at = l.find("serving http://")?;
                Some(l[at..].to_owned())
            })
            .expect("the start line")
    })
    .await
    .unwrap();
    let addr = line["serving http://".len()..]
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    Served { child, line, addr }
}

/// One GET on its own connection: status and JSON body.
async fn request(addr: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| ("authorization", b))
        .into_iter()
        .collect();
    let (status, body) = http_support::request(addr, "GET", path, &headers, "").await;
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (status, json)
}

/// A SQLite event log in a temp directory with three events, two about
/// `appointment:7`.
async fn sqlite_log() -> (tempfile::TempDir, String) {
    use events::store::{Entity, NewEvent};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("log.db").display());
    let store = events::store::connect(&url).await.unwrap();
    store
        .append(vec![
            NewEvent::new("appointment.created", r#"{"appointment_id":7}"#)
                .entity(Entity::new("appointment", "7")),
            NewEvent::new("invoice.issued", r#"{"invoice_id":5}"#),
            NewEvent::new("appointment.confirmed", r#"{"appointment_id":7}"#)
                .entity(Entity::new("appointment", "7")),
        ])
        .await
        .unwrap();
    (dir, url)
}

#[tokio::test]
async fn serve_mounts_the_event_log_api_behind_its_token() {
    let (_dir, url) = sqlite_log().await;
    let served = start(&[("EVENTS_STORE_URL", &url), ("EVENTS_HTTP_TOKEN", TOKEN)]).await;
    assert!(
        served.line.contains("event log API at /events")
            && !served.line.contains("closed: set EVENTS_HTTP_TOKEN"),
        "{}",
        served.line
    );
    assert!(served.addr.starts_with("127.0.0.1:"), "{}", served.line);

    let (status, body) = request(&served.addr, "/events", None).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = request(&served.addr, "/events", Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "appointment.created",
            "invoice.issued",
            "appointment.confirmed"
        ]
    );
    let (status, timeline) = request(
        &served.addr,
        "/events/timeline?entity_type=appointment&entity_id=7",
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{timeline}");
    assert_eq!(timeline["version"], 2);
    assert_eq!(timeline["events"].as_array().unwrap().len(), 2);
    let (status, doc) = request(&served.addr, "/events/openapi.json", Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(doc["paths"]["/events/timeline"]["get"].is_object(), "{doc}");
    let (status, body) = request(&served.addr, "/events?limit=0", Some(TOKEN)).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("`limit`"));
}

/// `--store-url` names the store as it does for `replay`.
#[tokio::test]
async fn serve_takes_the_store_from_store_url() {
    let (_dir, url) = sqlite_log().await;
    let served = start_with(&["--store-url", &url], &[("EVENTS_HTTP_TOKEN", TOKEN)]).await;
    let (status, body) = request(&served.addr, "/events/stats?bucket=day", Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totals"]["appointment.created"], 1, "{body}");
    assert_eq!(body["totals"]["invoice.issued"], 1, "{body}");
}

#[tokio::test]
async fn serve_without_a_token_says_the_api_is_closed() {
    let served = start(&[("EVENTS_STORE_URL", "memory://")]).await;
    assert!(
        served.line.contains("closed: set EVENTS_HTTP_TOKEN"),
        "{}",
        served.line
    );
    let (status, body) = request(&served.addr, "/events", Some(TOKEN)).await;
    assert_eq!(status, 401);
    assert!(body["error"].as_str().unwrap().contains("closed"), "{body}");
}

#[tokio::test]
async fn serve_without_a_store_answers_503_naming_the_variable() {
    let served = start(&[("EVENTS_HTTP_TOKEN", TOKEN)]).await;
    assert!(
        served.line.contains("--store-url or set EVENTS_STORE_URL"),
        "{}",
        served.line
    );
    for path in ["/events", "/events/timeline?entity_type=a&entity_id=1"] {
        let (status, body) = request(&served.addr, path, Some(TOKEN)).await;
        assert_eq!(status, 503, "{path}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("--store-url or EVENTS_STORE_URL"),
            "{body}"
        );
    }
}

/// With the dashboard compiled in too, both parts share the port.
#[cfg(feature = "dashboard")]
#[tokio::test]
async fn serve_mounts_the_api_beside_the_dashboard() {
    let served = start(&[
        ("EVENTS_STORE_URL", "memory://"),
        ("EVENTS_HTTP_TOKEN", TOKEN),
        ("EVENTS_DASHBOARD_TOKEN", "dash-t0ken"),
    ])
    .await;
    assert!(
        served.line.contains("dashboard at /dashboard")
            && served.line.contains("event log API at /events"),
        "{}",
        served.line
    );
    let (status, body) = request(&served.addr, "/dashboard/api/queues", Some("dash-t0ken")).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = request(&served.addr, "/events", Some("dash-t0ken")).await;
    assert_eq!(status, 401, "each part keeps its own token");
    let (status, _) = request(&served.addr, "/events", Some(TOKEN)).await;
    assert_eq!(status, 200);
}

/// A stored event whose payload type derives `JsonSchema`.
#[cfg(feature = "schemars")]
#[events::event(name = "http.booked", store)]
#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct Booked {
    appointment_id: u64,
    note: Option<String>,
}

/// Without a `schema_for` hook, `/events/schemas` gives the registry's
/// schema for the current version of a type it knows, and none for other
/// versions or names.
#[cfg(feature = "schemars")]
#[tokio::test]
async fn schemas_come_from_the_registry_without_a_hook() {
    use events::store::{NewEvent, Store};
    let store = Store::memory();
    store
        .append(vec![
            NewEvent::new("http.booked", r#"{"appointment_id":1,"note":null}"#),
            NewEvent::new("http.booked", r#"{"appointment_id":1,"when":"soon"}"#).version(3),
            NewEvent::new("http.unknown", r#"{"x":1}"#),
        ])
        .await
        .unwrap();
    let api = events::http::Api::new(store).token(TOKEN);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        events::http::axum::serve(listener, api.router())
            .await
            .unwrap()
    });
    let (status, body) = request(&addr, "/events/schemas", Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    let schemas = body["schemas"].as_array().unwrap();
    let find = |name: &str, version: u64| {
        schemas
            .iter()
            .find(|s| s["name"] == name && s["version"] == version)
            .unwrap_or_else(|| panic!("{name} v{version} in {body}"))
    };
    let current = find("http.booked", 1);
    assert_eq!(current["schema"]["type"], "object", "{current}");
    assert_eq!(
        current["schema"]["properties"]["appointment_id"]["type"],
        "integer"
    );
    assert_eq!(
        current["fields"],
        serde_json::json!(["appointment_id", "note"])
    );
    assert_eq!(find("http.booked", 3)["schema"], Value::Null);
    assert_eq!(
        find("http.booked", 3)["fields"],
        serde_json::json!(["appointment_id", "when"])
    );
    assert_eq!(find("http.unknown", 1)["schema"], Value::Null);
    let _ = Booked {
        appointment_id: 1,
        note: None,
    }
    .note;
}
