//! The dashboard's server over a real socket: closed without a token or a
//! hook, the token as a bearer or a cookie (set once by `?token=`), the
//! CSRF header on changes, and its JSON API on every backend (memory,
//! SQLite, Redis): jobs in each state, one job, retry and forget, bad
//! input answered with 4xx in words, the live feed.
//!
//! The Redis case needs the shared Redis (`EVENTS_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379/0`), on a fresh key prefix it deletes after.

mod redis_support;

#[path = "support/cli.rs"]
mod cli_support;

use std::time::{Duration, SystemTime};

use events::Envelope;
use events::dashboard::{Dashboard, axum};
use events::queue::{Job, Queue};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "t0ken with spaces & symbols";

/// Serves `dashboard` under `/dashboard` on a free port; gives its address.
async fn serve(dashboard: Dashboard) -> String {
    let app = dashboard.mount("/dashboard");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// An answer: status, headers (lower-case names), body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request on its own connection.
async fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: 0\r\n"
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    parse(&raw)
}

fn parse(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        unchunk(body)
    } else {
        body.to_owned()
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

async fn get(addr: &str, path: &str) -> Answer {
    request(addr, "GET", path, &[("authorization", &bearer())]).await
}

async fn post(addr: &str, path: &str) -> Answer {
    request(addr, "POST", path, &[("authorization", &bearer())]).await
}

#[tokio::test]
async fn the_dashboard_is_closed_without_a_token_or_a_hook() {
    let addr = serve(Dashboard::new(Queue::memory())).await;
    for path in [
        "/dashboard",
        "/dashboard/api/overview",
        "/dashboard/assets/app.js",
    ] {
        let answer = request(&addr, "GET", path, &[("authorization", "Bearer anything")]).await;
        assert_eq!(answer.status, 401, "{path}");
        assert!(
            answer.json()["error"]
                .as_str()
                .unwrap()
                .contains("EVENTS_DASHBOARD_TOKEN")
        );
    }
    let empty = Dashboard::new(Queue::memory()).token("");
    assert!(!empty.is_open(), "an empty token opens nothing");
}

#[tokio::test]
async fn a_token_opens_it_as_a_bearer_or_through_the_cookie_its_link_sets() {
    let addr = serve(Dashboard::new(Queue::memory()).token(TOKEN)).await;
    let none = request(&addr, "GET", "/dashboard/api/overview", &[]).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    let wrong = request(
        &addr,
        "GET",
        "/dashboard/api/overview",
        &[("authorization", "Bearer nope")],
    )
    .await;
    assert_eq!(wrong.status, 403);
    let right = get(&addr, "/dashboard/api/overview").await;
    assert_eq!(right.status, 200, "{}", right.body);
    assert_eq!(right.json()["jobs_last_hour"], 0);

    // The page, its <base> set to the mount, and its strict CSP.
    let page = get(&addr, "/dashboard").await;
    assert_eq!(page.status, 200);
    let slash = get(&addr, "/dashboard/?a=1").await;
    assert_eq!(
        (slash.status, slash.header("location")),
        (308, Some("/dashboard?a=1"))
    );
    assert!(
        page.body.contains(r#"<base href="/dashboard/">"#),
        "{}",
        page.body
    );
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("script-src 'self'")
    );

    let bad_link = request(&addr, "GET", "/dashboard?token=guess", &[]).await;
    assert_eq!(bad_link.status, 403);
    let link = request(
        &addr,
        "GET",
        "/dashboard?tab=jobs&token=t0ken%20with%20spaces%20%26%20symbols",
        &[],
    )
    .await;
    assert_eq!(link.status, 303, "{link:?}");
    assert_eq!(
        link.header("location"),
        Some("/dashboard?tab=jobs"),
        "the token leaves the address"
    );
    let cookie = link.header("set-cookie").unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(cookie.contains("Path=/dashboard"), "{cookie}");
    assert!(
        !cookie.contains(TOKEN),
        "the raw token is not in the cookie"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let with_cookie = request(&addr, "GET", "/dashboard/api/queues", &[("cookie", &pair)]).await;
    assert_eq!(with_cookie.status, 200, "{}", with_cookie.body);
    let forged = request(
        &addr,
        "GET",
        "/dashboard/api/queues",
        &[("cookie", "events_dashboard=00")],
    )
    .await;
    assert_eq!(forged.status, 401);

    // A change authorized by the cookie needs the header a cross-site form
    // cannot send.
    let csrf = request(
        &addr,
        "POST",
        "/dashboard/api/failed/retry",
        &[("cookie", &pair)],
    )
    .await;
    assert_eq!(csrf.status, 403);
    assert!(csrf.body.contains("x-events-dashboard"), "{}", csrf.body);
    let ok = request(
        &addr,
        "POST",
        "/dashboard/api/failed/retry",
        &[("cookie", &pair), ("x-events-dashboard", "1")],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["retried"], 0);
}

#[tokio::test]
async fn an_authorization_hook_decides_from_the_request() {
    let dashboard = Dashboard::new(Queue::memory())
        .authorize(|request| request.headers.get("x-staff").is_some_and(|v| v == "yes"));
    let addr = serve(dashboard).await;
    assert_eq!(
        request(&addr, "GET", "/dashboard/api/overview", &[])
            .await
            .status,
        401
    );
    assert_eq!(
        request(
            &addr,
            "GET",
            "/dashboard/api/overview",
            &[("x-staff", "yes")]
        )
        .await
        .status,
        200
    );
    let change = request(
        &addr,
        "POST",
        "/dashboard/api/failed/forget",
        &[("x-staff", "yes")],
    )
    .await;
    assert_eq!(
        change.status, 403,
        "a hook's yes still needs the CSRF header"
    );
}

fn job(id: &str, queue: &str, payload: &str) -> Job {
    let mut job = Job::from_parts(
        id,
        queue,
        "app::send_invoice",
        "invoice.paid",
        payload,
        Envelope::new().with("actor", "42"),
    );
    job.max_tries = 2;
    job.available_at = SystemTime::now() - Duration::from_secs(5);
    job
}

/// Jobs in every state: two ready, one delayed, one reserved, one failed.
async fn fill(queue: &Queue) {
    queue
        .enqueue(job("ready-1", "mail", r#"{"customer":"Acme"}"#))
        .await
        .unwrap();
    queue
        .enqueue(job("ready-2", "mail", r#"{"customer":"Globex"}"#))
        .await
        .unwrap();
    let mut later = job("delayed-1", "mail", "{}");
    later.available_at = SystemTime::now() + Duration::from_secs(3600);
    queue.enqueue(later).await.unwrap();
    queue.enqueue(job("held-1", "work", "{}")).await.unwrap();
    queue
        .enqueue(job("broken-1", "billing", r#"{"amount":12}"#))
        .await
        .unwrap();
    let backend = queue.backend();
    let held = backend
        .claim(&["work".to_owned()], 1, Duration::from_secs(300))
        .await
        .unwrap();
    assert_eq!(held[0].id, "held-1");
    let broken = backend
        .claim(&["billing".to_owned()], 1, Duration::from_secs(300))
        .await
        .unwrap();
    assert!(
        backend
            .fail(&broken[0].id, broken[0].attempt, "card declined")
            .await
            .unwrap()
    );
}

/// What every backend's dashboard answers.
async fn the_api_on(queue: Queue) {
    fill(&queue).await;
    let addr = serve(Dashboard::new(queue.clone()).token(TOKEN)).await;

    let overview = get(&addr, "/dashboard/api/overview").await.json();
    assert_eq!(overview["failed_last_7_days"], 1, "{overview}");
    assert_eq!(
        overview["totals"],
        serde_json::json!({"ready": 2, "delayed": 1, "reserved": 1, "failed": 1})
    );
    assert_eq!(overview["longest_wait"]["queue"], "mail");
    assert!(
        overview["longest_wait"]["seconds"].as_f64().unwrap() >= 4.0,
        "{overview}"
    );

    let queues = get(&addr, "/dashboard/api/queues").await.json();
    let mail = queues
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "mail")
        .unwrap();
    assert_eq!(
        (mail["ready"].as_u64(), mail["delayed"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(mail["per_minute"].as_array().unwrap().len(), 60);

    for (state, ids) in [
        ("ready", vec!["ready-1", "ready-2"]),
        ("delayed", vec!["delayed-1"]),
        ("reserved", vec!["held-1"]),
        ("failed", vec!["broken-1"]),
        ("pending", vec!["delayed-1", "ready-1", "ready-2"]),
    ] {
        let page = get(&addr, &format!("/dashboard/api/jobs?state={state}"))
            .await
            .json();
        let mut listed: Vec<&str> = page["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap())
            .collect();
        listed.sort_unstable();
        assert_eq!(listed, ids, "{state}: {page}");
        assert_eq!(page["total"], ids.len());
    }
    let all = get(&addr, "/dashboard/api/jobs?limit=2").await.json();
    assert_eq!(
        (all["total"].as_u64(), all["jobs"].as_array().unwrap().len()),
        (Some(5), 2)
    );
    let found = get(&addr, "/dashboard/api/jobs?q=globex").await.json();
    assert_eq!(found["jobs"][0]["id"], "ready-2", "{found}");
    assert_eq!(found["total"], 1);
    let in_queue = get(&addr, "/dashboard/api/jobs?queue=billing").await.json();
    assert_eq!(in_queue["total"], 1);

    let one = get(&addr, "/dashboard/api/jobs/broken-1").await.json();
    assert_eq!(one["state"], "failed");
    assert_eq!(one["error"], "card declined");
    assert_eq!(one["payload"]["amount"], 12, "the payload as JSON");
    assert_eq!(one["metadata"]["actor"], "42");
    assert_eq!(
        (one["attempt"].as_u64(), one["max_tries"].as_u64()),
        (Some(1), Some(2))
    );
    let missing = get(&addr, "/dashboard/api/jobs/no-such-job").await;
    assert_eq!(missing.status, 404);
    assert!(
        missing.json()["error"]
            .as_str()
            .unwrap()
            .contains("no-such-job")
    );

    // Bad input: 400, in words.
    for (path, words) in [
        ("/dashboard/api/jobs?state=done", "unknown state `done`"),
        (
            "/dashboard/api/jobs?limit=ten",
            "`limit` must be a whole number",
        ),
        ("/dashboard/api/jobs?limit=100000", "`limit` is at most 500"),
        ("/dashboard/api/jobs?page=2", "unknown parameter `page`"),
    ] {
        let answer = get(&addr, path).await;
        assert_eq!(answer.status, 400, "{path}");
        let error = answer.json()["error"].as_str().unwrap().to_owned();
        assert!(error.contains(words), "{path}: {error}");
    }
    let long = format!("/dashboard/api/jobs?q={}", "x".repeat(300));
    assert_eq!(get(&addr, &long).await.status, 400);

    // Retry from the page: the job is back on its queue, no longer failed.
    let retried = post(&addr, "/dashboard/api/jobs/broken-1/retry").await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    let new_id = retried.json()["id"].as_str().unwrap().to_owned();
    let back = queue.job(&new_id).await.unwrap().expect("the retried job");
    assert_eq!(
        (back.queue.as_str(), back.state),
        ("billing", events::queue::JobState::Ready)
    );
    assert!(queue.failed().await.unwrap().is_empty());
    assert_eq!(
        post(&addr, "/dashboard/api/jobs/broken-1/retry")
            .await
            .status,
        404
    );

    // Forget: fail it again, then forget it from the page.
    let claimed = queue
        .backend()
        .claim(&["billing".to_owned()], 1, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(
        queue
            .backend()
            .fail(&claimed[0].id, claimed[0].attempt, "declined again")
            .await
            .unwrap()
    );
    let forgot = post(&addr, &format!("/dashboard/api/jobs/{new_id}/forget")).await;
    assert_eq!(forgot.status, 200, "{}", forgot.body);
    assert!(queue.failed().await.unwrap().is_empty());
    assert!(queue.job(&new_id).await.unwrap().is_none());

    // The registry, with the graph's Mermaid text.
    let registry = get(&addr, "/dashboard/api/registry").await.json();
    assert!(
        registry["mermaid"]
            .as_str()
            .unwrap()
            .starts_with("flowchart LR")
    );
    assert!(registry["listeners"].as_array().is_some());

    // The live feed: a snapshot at once.
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "GET /dashboard/api/live HTTP/1.1\r\nhost: {addr}\r\nauthorization: {}\r\n\r\n",
        bearer()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("event: snapshot") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("a snapshot within 10 s")
            .unwrap();
        assert!(n > 0, "the feed closed: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("text/event-stream"), "{text}");
    assert!(
        text.contains(r#""queues""#) && text.contains(r#""overview""#),
        "{text}"
    );
}

#[tokio::test]
async fn the_api_on_memory() {
    the_api_on(Queue::memory()).await;
}

#[tokio::test]
async fn the_api_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("queue.db").display());
    the_api_on(events::queue::connect(&url).await.unwrap()).await;
}

#[tokio::test]
async fn the_api_on_redis() {
    let (url, _cleanup, _conn) = redis_support::fresh_url();
    the_api_on(events::queue::connect(&url).await.unwrap()).await;
}

/// The command line of `child_serve_process`, one argument a line.
const CHILD_ARGS: &str = "EVENTS_TEST_SERVE_ARGS";

/// Not a test of its own: the application binary `serve_*` tests start
/// (this test binary again, with `CHILD_ARGS` set), running
/// `events::cli::commands()` as `events::cli::run()` does. Without
/// `CHILD_ARGS` it does nothing.
#[tokio::test]
async fn child_serve_process() {
    cli_support::run_child(CHILD_ARGS).await;
}

/// `serve` in a real process: one port with the dashboard (behind its
/// token) and `/metrics`; SIGTERM stops it.
#[tokio::test]
async fn serve_mounts_the_dashboard_and_metrics_and_stops_on_sigterm() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("queue.db").display());
    fill(&events::queue::connect(&url).await.unwrap()).await;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_serve_process",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD_ARGS, "serve\n--port\n0")
        .env("EVENTS_QUEUE_URL", &url)
        .env("EVENTS_DASHBOARD_TOKEN", TOKEN)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
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
    assert!(
        line.contains("dashboard at /dashboard") && line.contains("metrics at /metrics"),
        "{line}"
    );
    let addr = line["serving http://".len()..]
        .split(' ')
        .next()
        .unwrap()
        .to_owned();

    assert_eq!(
        request(&addr, "GET", "/dashboard/api/overview", &[])
            .await
            .status,
        401
    );
    let overview = get(&addr, "/dashboard/api/overview").await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    assert_eq!(overview.json()["totals"]["failed"], 1);
    let metrics = request(&addr, "GET", "/metrics", &[]).await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );

    let started = std::time::Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A build whose `Commands` has no server part says so.
#[tokio::test]
async fn serve_without_a_server_part_says_which_features_have_one() {
    let mut out = Vec::new();
    let error = events_core_commands()
        .queue(Queue::memory())
        .run_to(["app", "serve"], &mut out)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("nothing to serve") && text.contains("`dashboard`"),
        "{text}"
    );
    assert_eq!(error.exit_code(), 1);
}

fn events_core_commands() -> events::cli::Commands {
    events::cli::Commands::new()
}
