//! The operator commands, run as an application's binary would run them,
//! against a SQLite queue in a temporary directory.

use std::sync::atomic::{AtomicUsize, Ordering};

use events::cli::{CliError, run_to, run_with_env};
use events::prelude::*;
use events::queue::Queue;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
#[error("the mail server said no")]
pub struct MailDown;

#[event(name = "order.placed")]
#[derive(Serialize, Deserialize)]
pub struct OrderPlaced {
    pub id: u64,
    pub fail: bool,
}

#[listener(priority = 5)]
fn reserve_stock(_: &OrderPlaced) {}

static MAILED: AtomicUsize = AtomicUsize::new(0);

#[listener(queue = "mail", tries = 2, backoff = "10ms", timeout = "5s")]
async fn mail_receipt(e: &OrderPlaced) -> Result<(), MailDown> {
    if e.fail {
        return Err(MailDown);
    }
    MAILED.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[listener(pattern = "order.*")]
fn order_audit(_: &AnyEvent) {}

async fn cli(queue: &Queue, args: &[&str]) -> Result<String, CliError> {
    let mut out = Vec::new();
    let argv = std::iter::once("app").chain(args.iter().copied());
    run_to(argv, Some(queue.clone()), &mut out).await?;
    Ok(String::from_utf8(out).unwrap())
}

fn sqlite() -> (Queue, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (
        events::queue::SqliteBackend::queue(dir.path().join("q.sqlite")).unwrap(),
        dir,
    )
}

#[tokio::test]
async fn list_shows_events_listeners_options_and_sources() {
    let (queue, _dir) = sqlite();
    let out = cli(&queue, &["list"]).await.unwrap();
    // Capability crates linked (webhooks) list their own events first.
    let ours = out
        .find("order.placed (cli::OrderPlaced)\n")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(ours == 0 || out[..ours].starts_with("events."), "{out}");
    let lines: Vec<&str> = out[ours..].lines().collect();
    assert!(
        lines[1].starts_with("  -> cli::reserve_stock: sync [priority 5]  (tests/cli.rs:"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("  -> cli::order_audit: sync [pattern `order.*`]  (tests/cli.rs:"),
        "{out}"
    );
    assert!(
        lines[3].starts_with("  -> cli::mail_receipt: queued `mail`, tries 2, backoff 10ms, timeout 5s  (tests/cli.rs:"),
        "{out}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&cli(&queue, &["list", "--json"]).await.unwrap()).unwrap();
    let placed = json["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "order.placed")
        .unwrap();
    assert_eq!(placed["listeners"].as_array().unwrap().len(), 3);
    let mail = json["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "cli::mail_receipt")
        .unwrap();
    assert_eq!(mail["mode"], "queued");
    assert_eq!(mail["queue"]["queue"], "mail");
    assert_eq!(mail["queue"]["tries"], 2);
    assert_eq!(mail["queue"]["backoff_ms"][0], 10);
    assert_eq!(mail["queue"]["timeout_ms"], 5000);
    assert_eq!(mail["file"], "tests/cli.rs");
}

#[tokio::test]
async fn graph_is_a_mermaid_flowchart() {
    let (queue, _dir) = sqlite();
    let out = cli(&queue, &["graph"]).await.unwrap();
    assert!(out.starts_with("flowchart LR\n    E0[\""), "{out}");
    assert!(out.contains("[\"order.placed\"]\n"), "{out}");
    assert!(out.contains("-->|\"sync\"|"), "{out}");
    assert!(out.contains("-->|\"order.*\"|"), "{out}");
    assert!(out.contains("-.->|\"queued: mail\"|"), "{out}");
}

#[tokio::test]
async fn work_failed_retry_forget_flush_monitor() {
    let (queue, _dir) = sqlite();
    let dispatcher = events::Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap();
    dispatcher
        .dispatch(OrderPlaced { id: 1, fail: true })
        .await
        .unwrap();
    dispatcher
        .dispatch(OrderPlaced { id: 2, fail: false })
        .await
        .unwrap();

    let out = cli(&queue, &["monitor"]).await.unwrap();
    assert_eq!(
        out,
        "QUEUE  READY  DELAYED  RESERVED  FAILED\nmail       2        0         0       0\n"
    );

    let out = cli(&queue, &["work", "--queue", "mail", "--stop-when-empty"])
        .await
        .unwrap();
    assert!(
        out.ends_with(
            "finished 2 job(s) in 3 tries: 1 succeeded, 1 failed, 1 try retried; 0 lost their lease, 0 handed back\n"
        ),
        "{out}"
    );
    assert_eq!(MAILED.load(Ordering::SeqCst), 1);

    let out = cli(&queue, &["failed"]).await.unwrap();
    let failed = queue.failed().await.unwrap();
    let id = failed[0].id.clone();
    assert!(out.starts_with("ID "), "{out}");
    assert!(out.contains(&id), "{out}");
    assert!(out.contains("cli::mail_receipt"), "{out}");
    assert!(out.contains("2/2"), "{out}");
    assert!(
        out.contains("listener `cli::mail_receipt` failed: the mail server said no"),
        "{out}"
    );

    let out = cli(&queue, &["retry", &id]).await.unwrap();
    let new_id = out
        .strip_prefix(&format!("failed job {id} put back on its queue as "))
        .and_then(|rest| rest.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("{out}"));
    assert_ne!(new_id, id);
    assert_eq!(queue.size("mail").await.unwrap(), 1);
    cli(&queue, &["work", "--stop-when-empty"]).await.unwrap();
    let failed_id = queue.failed().await.unwrap()[0].id.clone();
    assert_eq!(
        failed_id, new_id,
        "it failed again under the id retry printed"
    );
    let out = cli(&queue, &["retry", "all"]).await.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with(&format!(
            "failed job {failed_id} put back on queue `mail` as "
        )),
        "{out}"
    );
    assert_eq!(lines[1], "1 failed job(s) put back on their queues");
    cli(&queue, &["work", "--max-jobs", "1"]).await.unwrap();
    cli(&queue, &["work", "--stop-when-empty"]).await.unwrap();

    let out = cli(&queue, &["monitor"]).await.unwrap();
    assert!(
        out.ends_with("\nmail       0        0         0       1\n"),
        "{out}"
    );
    // Each retry enqueued the job under a new id (see `Backend::retry`).
    let id = queue.failed().await.unwrap()[0].id.clone();
    assert_eq!(
        cli(&queue, &["forget", &id]).await.unwrap(),
        format!("failed job {id} deleted\n")
    );
    assert_eq!(cli(&queue, &["failed"]).await.unwrap(), "no failed jobs\n");
    assert_eq!(
        cli(&queue, &["flush"]).await.unwrap(),
        "0 failed job(s) deleted\n"
    );
    assert_eq!(
        cli(&queue, &["monitor"]).await.unwrap(),
        "QUEUE  READY  DELAYED  RESERVED  FAILED\n(no jobs)\n"
    );
}

#[tokio::test]
async fn mistakes_are_reported_in_words() {
    let (queue, _dir) = sqlite();
    let error = cli(&queue, &["retry", "no-such-job"]).await.unwrap_err();
    assert_eq!(error.to_string(), "no failed job with id `no-such-job`");
    let error = cli(&queue, &["forget", "no-such-job"]).await.unwrap_err();
    assert!(matches!(error, CliError::NotFound(_)));
    let error = cli(&queue, &["wrok"]).await.unwrap_err();
    assert!(
        error.to_string().contains("unrecognized subcommand 'wrok'"),
        "{error}"
    );
    let help = cli(&queue, &["--help"]).await.unwrap();
    for command in [
        "list", "work", "failed", "retry", "forget", "flush", "monitor", "graph", "config",
    ] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
    let error = cli(&queue, &["--queue-url", "kafka://x", "failed"])
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("unsupported queue URL `kafka://x`"),
        "{error}"
    );
}

// --- configuration ------------------------------------------------------------

/// The rows of `config`'s table that the capability crates compiled in
/// add: each registers its variables when it is linked.
fn capability_rows() -> Vec<(&'static str, &'static str, &'static str)> {
    let mut rows = Vec::new();
    if cfg!(feature = "broadcast") {
        for name in [
            "EVENTS_BROADCAST_APP_ID",
            "EVENTS_BROADCAST_APP_KEY",
            "EVENTS_BROADCAST_APP_SECRET",
            "EVENTS_BROADCAST_HOST",
            "EVENTS_BROADCAST_PORT",
            "EVENTS_BROADCAST_REDIS_URL",
            "EVENTS_BROADCAST_SCHEME",
            "EVENTS_BROADCAST_VIA",
        ] {
            rows.push((name, "(unset)", "default"));
        }
    }
    if cfg!(feature = "dashboard") {
        rows.push(("EVENTS_DASHBOARD_TOKEN", "(unset)", "default"));
    }
    if cfg!(feature = "http") {
        rows.push(("EVENTS_HTTP_TOKEN", "(unset)", "default"));
    }
    if cfg!(feature = "webhooks") {
        rows.push(("EVENTS_WEBHOOKS_ALLOW_PRIVATE", "false", "default"));
        rows.push(("EVENTS_WEBHOOKS_REQUIRE_HTTPS", "true", "default"));
        rows.push(("EVENTS_WEBHOOKS_RETRY", "1m,5m,15m", "default"));
    }
    rows
}

/// The width of `config`'s name column: the longest name, and two spaces.
fn name_width() -> usize {
    capability_rows()
        .iter()
        .map(|(name, _, _)| name.len())
        .chain(std::iter::once("EVENTS_RETRY_DELAY_SECONDS".len()))
        .max()
        .unwrap_or(0)
        + 2
}

/// `config`'s table of `rows`, as it prints it.
fn table(rows: &[(&str, &str, &str)]) -> String {
    let name = name_width();
    let value = rows
        .iter()
        .map(|(_, v, _)| v.len())
        .max()
        .unwrap_or(0)
        .max(5)
        + 2;
    let mut out = format!("{:name$}{:value$}SOURCE\n", "VARIABLE", "VALUE");
    for (n, v, source) in rows {
        out += &format!("{n:name$}{v:value$}{source}\n");
    }
    out
}

async fn cli_env(
    queue: Option<&Queue>,
    env: &[(&str, &str)],
    args: &[&str],
) -> (Result<(), CliError>, String) {
    let mut out = Vec::new();
    let argv = std::iter::once("app").chain(args.iter().copied());
    let result = run_with_env(argv, queue.cloned(), env.iter().copied(), &mut out).await;
    (result, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn config_shows_each_setting_its_value_and_source() {
    let env = [
        ("EVENTS_QUEUE_URL", "redis://app:hunter2@cache:6379/0"),
        ("EVENTS_RETRY_DELAY_SECONDS", "1,5,15"),
        ("EVENTS_WORKER_CONCURRENCY", "4"),
        ("EVENTS_TIMOUT", "30s"),
        ("HOME", "/root"),
    ];
    let (result, out) = cli_env(None, &env, &["config"]).await;
    result.unwrap();
    let mut rows = vec![
        ("EVENTS_DEFAULT_QUEUE", "default", "default"),
        ("EVENTS_ENABLED", "true", "default"),
        (
            "EVENTS_QUEUE_URL",
            "redis://app:***@cache:6379/0",
            "env EVENTS_QUEUE_URL",
        ),
        ("EVENTS_RETRY_ATTEMPTS", "1", "default"),
        (
            "EVENTS_RETRY_DELAY_SECONDS",
            "1,5,15",
            "env EVENTS_RETRY_DELAY_SECONDS",
        ),
        // The event log's, in the core.
        ("EVENTS_STORE_ENABLED", "false", "default"),
        ("EVENTS_STORE_URL", "(unset)", "default"),
        ("EVENTS_TIMEOUT", "60s", "default"),
        (
            "EVENTS_WORKER_CONCURRENCY",
            "4",
            "env EVENTS_WORKER_CONCURRENCY",
        ),
    ];
    rows.extend(capability_rows());
    rows.sort();
    assert_eq!(
        out,
        table(&rows) + "warning: unknown variable EVENTS_TIMOUT: did you mean EVENTS_TIMEOUT?\n"
    );

    // A flag overrides the environment and says so.
    let (result, out) = cli_env(None, &env, &["--queue-url", "memory://", "config"]).await;
    result.unwrap();
    let line = out
        .lines()
        .find(|l| l.starts_with("EVENTS_QUEUE_URL"))
        .unwrap();
    assert!(
        line.contains(" memory:// ") && line.ends_with("flag --queue-url"),
        "{line}"
    );

    let (result, out) = cli_env(None, &env, &["config", "--json"]).await;
    result.unwrap();
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let settings = json["settings"].as_array().unwrap();
    assert_eq!(settings.len(), 9 + capability_rows().len());
    let concurrency = settings
        .iter()
        .find(|s| s["name"] == "EVENTS_WORKER_CONCURRENCY")
        .unwrap();
    assert_eq!(concurrency["value"], "4");
    assert_eq!(concurrency["source"], "env");
    assert_eq!(concurrency["from"], "EVENTS_WORKER_CONCURRENCY");
    assert_eq!(concurrency["default"], "1");
    let timeout = settings
        .iter()
        .find(|s| s["name"] == "EVENTS_TIMEOUT")
        .unwrap();
    assert_eq!(
        (&timeout["source"], &timeout["from"]),
        (&"default".into(), &serde_json::Value::Null)
    );
    assert!(timeout["help"].as_str().unwrap().contains("timeout"));
    assert_eq!(
        json["warnings"][0],
        "unknown variable EVENTS_TIMOUT: did you mean EVENTS_TIMEOUT?"
    );
    assert_eq!(json["errors"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn bad_values_are_shown_by_config_and_stop_every_other_command() {
    let env = [
        ("EVENTS_ENABLED", "flase"),
        ("EVENTS_WORKER_CONCURRENCY", "lots"),
    ];
    let (result, out) = cli_env(None, &env, &["config"]).await;
    let width = name_width();
    assert!(
        out.contains(&format!(
            "{:width$}flase (invalid)  env EVENTS_ENABLED\n",
            "EVENTS_ENABLED"
        )),
        "{out}"
    );
    assert!(
        out.ends_with(
            "error: EVENTS_ENABLED is `flase`, expected a boolean: true or false (also 1/0, yes/no, on/off)\n\
             error: EVENTS_WORKER_CONCURRENCY is `lots`, expected a whole number of at least 1\n"
        ),
        "{out}"
    );
    let error = result.unwrap_err();
    assert!(matches!(error, CliError::Config(_)), "{error:?}");

    let (queue, _dir) = sqlite();
    let (result, out) = cli_env(Some(&queue), &env, &["monitor"]).await;
    assert_eq!(out, "", "nothing ran");
    assert_eq!(
        result.unwrap_err().to_string(),
        "invalid configuration (2 values): EVENTS_ENABLED is `flase`, expected a boolean: true or false (also 1/0, yes/no, on/off); EVENTS_WORKER_CONCURRENCY is `lots`, expected a whole number of at least 1"
    );

    let (result, _) = cli_env(Some(&queue), &[], &["work", "--timeout", "soon"]).await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "invalid configuration: --timeout (for EVENTS_TIMEOUT) is `soon`, expected seconds, or a duration such as `90s` or `2m`, longer than zero"
    );
}

#[tokio::test]
async fn the_queue_url_comes_from_the_environment_when_no_flag_names_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("env.sqlite");
    let url = format!("sqlite://{}", path.display());
    let (result, out) = cli_env(None, &[("EVENTS_QUEUE_URL", &url)], &["monitor"]).await;
    result.unwrap();
    assert_eq!(out, "QUEUE  READY  DELAYED  RESERVED  FAILED\n(no jobs)\n");
    assert!(path.exists(), "the queue the environment names was opened");
}

#[event(name = "work.slow")]
#[derive(Serialize, Deserialize)]
pub struct SlowJob;

/// Declares no timeout: the worker's applies.
#[listener(queue = "slow")]
async fn slow_receipt(_: &SlowJob) {
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
}

#[tokio::test]
async fn work_takes_its_timeout_from_the_environment_unless_a_flag_sets_it() {
    let env = [("EVENTS_TIMEOUT", "50ms")];
    let (queue, _dir) = sqlite();
    let dispatcher = events::Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap();

    dispatcher.dispatch(SlowJob).await.unwrap();
    let (result, out) = cli_env(
        Some(&queue),
        &env,
        &["work", "--queue", "slow", "--stop-when-empty"],
    )
    .await;
    result.unwrap();
    assert!(out.contains("1 failed"), "{out}");
    let failed = queue.failed().await.unwrap();
    assert_eq!(
        failed[0].error,
        "listener `cli::slow_receipt` timed out after 50ms"
    );

    dispatcher.dispatch(SlowJob).await.unwrap();
    let args = [
        "work",
        "--queue",
        "slow",
        "--stop-when-empty",
        "--timeout",
        "5",
    ];
    let (result, out) = cli_env(Some(&queue), &env, &args).await;
    result.unwrap();
    assert!(out.contains("1 succeeded"), "{out}");
}

#[event(name = "work.wide")]
#[derive(Serialize, Deserialize)]
pub struct WideJob;

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static MOST_AT_ONCE: AtomicUsize = AtomicUsize::new(0);

#[listener(queue = "wide")]
async fn wide_receipt(_: &WideJob) {
    let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    MOST_AT_ONCE.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    RUNNING.fetch_sub(1, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_takes_its_concurrency_from_the_environment_unless_a_flag_sets_it() {
    let env = [("EVENTS_WORKER_CONCURRENCY", "4")];
    let (queue, _dir) = sqlite();
    let dispatcher = events::Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap();
    let work = ["work", "--queue", "wide", "--stop-when-empty"];

    for _ in 0..4 {
        dispatcher.dispatch(WideJob).await.unwrap();
    }
    let (result, out) = cli_env(Some(&queue), &env, &work).await;
    result.unwrap();
    assert!(out.contains("4 succeeded"), "{out}");
    assert!(
        MOST_AT_ONCE.load(Ordering::SeqCst) >= 2,
        "jobs ran side by side"
    );

    MOST_AT_ONCE.store(0, Ordering::SeqCst);
    for _ in 0..3 {
        dispatcher.dispatch(WideJob).await.unwrap();
    }
    let one_at_a_time = [&work[..], &["--concurrency", "1"]].concat();
    let (result, out) = cli_env(Some(&queue), &env, &one_at_a_time).await;
    result.unwrap();
    assert!(out.contains("3 succeeded"), "{out}");
    assert_eq!(MOST_AT_ONCE.load(Ordering::SeqCst), 1);
}

#[event(name = "work.retried")]
#[derive(Serialize, Deserialize)]
pub struct RetriedJob;

static RETRIED_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Declares neither `tries` nor `backoff`: the environment's apply.
#[listener(queue = "retried")]
async fn retried_receipt(_: &RetriedJob) -> Result<(), MailDown> {
    RETRIED_RUNS.fetch_add(1, Ordering::SeqCst);
    Err(MailDown)
}

#[tokio::test]
async fn list_shows_and_jobs_get_the_retry_defaults_of_the_environment() {
    let env = [
        ("EVENTS_RETRY_ATTEMPTS", "3"),
        ("EVENTS_RETRY_DELAY_SECONDS", "0"),
    ];
    let (queue, _dir) = sqlite();
    let (result, out) = cli_env(Some(&queue), &env, &["list"]).await;
    result.unwrap();
    assert!(
        out.contains(
            "  -> cli::retried_receipt: queued `retried`, tries 3 (default)  (tests/cli.rs:"
        ),
        "{out}"
    );
    assert!(
        out.contains("queued `mail`, tries 2, backoff 10ms, timeout 5s"),
        "declared values show as they are:\n{out}"
    );

    let config = events::Config::from_vars(env).unwrap();
    let dispatcher = events::Dispatcher::builder()
        .config(&config)
        .queue(queue.clone())
        .build()
        .unwrap();
    dispatcher.dispatch(RetriedJob).await.unwrap();
    let work = ["work", "--queue", "retried", "--stop-when-empty"];
    let (result, out) = cli_env(Some(&queue), &env, &work).await;
    result.unwrap();
    assert!(
        out.ends_with(
            "finished 1 job(s) in 3 tries: 0 succeeded, 1 failed, 2 tries retried; 0 lost their lease, 0 handed back\n"
        ),
        "{out}"
    );
    assert_eq!(RETRIED_RUNS.load(Ordering::SeqCst), 3);
}

// --- `work`'s output, stops and polling -------------------------------------------

#[event(name = "work.noisy")]
#[derive(Serialize, Deserialize)]
pub struct NoisyJob {
    pub fail: bool,
}

#[listener(queue = "noisy", tries = 2, backoff = "10ms")]
async fn noisy_receipt(e: &NoisyJob) -> Result<(), MailDown> {
    if e.fail { Err(MailDown) } else { Ok(()) }
}

#[tokio::test]
async fn work_prints_a_start_line_a_line_per_retried_or_failed_job_and_a_summary() {
    // A URL with a password: the start line hides it.
    let queue = Queue::with_backend(
        "memory://worker:hunter2@local",
        events::queue::MemoryBackend::default(),
    );
    let dispatcher = events::Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap();
    dispatcher.dispatch(NoisyJob { fail: true }).await.unwrap();
    dispatcher.dispatch(NoisyJob { fail: false }).await.unwrap();
    let id = queue
        .backend()
        .claim(&["noisy".to_owned()], 1, std::time::Duration::from_secs(30))
        .await
        .unwrap()[0]
        .id
        .clone();
    queue
        .backend()
        .abandon(&id, 1, std::time::Duration::ZERO)
        .await
        .unwrap();

    let work = ["work", "--queue", "noisy", "--stop-when-empty"];
    let out = cli(&queue, &work).await.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[0].ends_with("  working queue `noisy`, concurrency 1, on memory://worker:***@local"),
        "{out}"
    );
    assert!(
        lines[1].ends_with(&format!(
            "  RETRY  cli::noisy_receipt  job {id}  try 1/2: listener `cli::noisy_receipt` failed: the mail server said no (again in 10ms)"
        )),
        "{out}"
    );
    assert!(
        lines[2].ends_with(&format!(
            "  FAIL   cli::noisy_receipt  job {id}  try 2/2: listener `cli::noisy_receipt` failed: the mail server said no"
        )),
        "{out}"
    );
    // Two jobs, three tries: counted apart.
    assert_eq!(
        lines[3],
        "finished 2 job(s) in 3 tries: 1 succeeded, 1 failed, 1 try retried; 0 lost their lease, 0 handed back"
    );

    // `--quiet`: the summary only.
    queue.retry_all().await.unwrap();
    let quiet = [&work[..], &["--quiet"]].concat();
    let out = cli(&queue, &quiet).await.unwrap();
    assert_eq!(
        out,
        "finished 1 job(s) in 2 tries: 0 succeeded, 1 failed, 1 try retried; 0 lost their lease, 0 handed back\n"
    );
}

#[tokio::test]
async fn work_warns_once_per_listener_whose_jobs_it_leaves_waiting() {
    let (queue, _dir) = sqlite();
    for n in 0..3 {
        let mut job = events::queue::Job::from_parts(
            format!("gone-{n}"),
            "noisy",
            "app::renamed_listener",
            "work.noisy",
            r#"{"fail":false}"#,
            events::Envelope::new(),
        );
        job.available_at = std::time::SystemTime::now();
        queue.enqueue(job).await.unwrap();
    }
    let out = cli(&queue, &["work", "--stop-when-empty", "--quiet"])
        .await
        .unwrap();
    // The warnings, once per listener, go to stderr (see the `cli` module's
    // own tests); the summary counts the jobs left waiting.
    assert_eq!(
        out,
        "finished 0 job(s) in 0 tries: 0 succeeded, 0 failed, 0 tries retried; 0 lost their lease, 0 handed back; 3 job(s) left waiting for a listener this program does not have\n"
    );
    assert_eq!(queue.size("noisy").await.unwrap(), 3, "all three wait");
    assert!(queue.failed().await.unwrap().is_empty());
}

#[tokio::test]
async fn work_stops_after_max_time_and_polls_as_often_as_sleep_says() {
    let (queue, dir) = sqlite();
    // Another handle on the file, as another process: its enqueues do not
    // wake the worker, which sees them at its next look.
    let producer = events::queue::SqliteBackend::queue(dir.path().join("q.sqlite")).unwrap();
    let dispatcher = events::Dispatcher::builder()
        .queue(producer)
        .build()
        .unwrap();
    let enqueue_soon = || {
        let dispatcher = dispatcher.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            dispatcher.dispatch(NoisyJob { fail: false }).await.unwrap();
        })
    };

    let started = std::time::Instant::now();
    let producing = enqueue_soon();
    let args = [
        "work",
        "--queue",
        "noisy",
        "--max-time",
        "1500ms",
        "--sleep",
        "50ms",
        "-q",
    ];
    let out = cli(&queue, &args).await.unwrap();
    producing.await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(1500) && took < std::time::Duration::from_secs(10),
        "{took:?}"
    );
    assert!(
        out.starts_with("finished 1 job(s) in 1 try: 1 succeeded"),
        "{out}"
    );

    // Looking only every 20 s, it does not see the job before its time is up.
    let producing = enqueue_soon();
    let args = [
        "work",
        "--queue",
        "noisy",
        "--max-time",
        "1",
        "--sleep",
        "20s",
        "-q",
    ];
    let out = cli(&queue, &args).await.unwrap();
    producing.await.unwrap();
    assert!(out.starts_with("finished 0 job(s)"), "{out}");
    assert_eq!(queue.size("noisy").await.unwrap(), 1);

    let error = cli(&queue, &["work", "--sleep", "soon"]).await.unwrap_err();
    assert!(
        error.to_string().contains(
            "`soon` is not a duration (expected number at 0): give seconds, or a duration such as `90s`, `2m` or `250ms`"
        ),
        "{error}"
    );
    let error = cli(&queue, &["work", "--max-time", "0"]).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("the duration must be longer than zero"),
        "{error}"
    );
}

// --- failed-store filters, prune, clear, monitor --------------------------------

use std::time::Duration;

use events::cli::Commands;
use events::error::Chain;
use events::queue::{Backend, FailedJob, Job, QueueError, QueueStats};

/// Puts a job of `listener` on `queue` straight into the failed store.
async fn failed_job(queue: &Queue, id: &str, on: &str, listener: &str, error: &str) {
    let job = Job::from_parts(
        id,
        on,
        listener,
        "order.placed",
        "{}",
        events::Envelope::new(),
    );
    queue.enqueue(job).await.unwrap();
    let claimed = queue
        .backend()
        .claim(&[on.to_owned()], 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed[0].id, id);
    assert!(queue.backend().fail(id, 1, error).await.unwrap());
}

fn failed_ids(out: &str) -> Vec<&str> {
    out.lines()
        .skip(1)
        .map(|line| line.split(' ').next().unwrap())
        .collect()
}

#[tokio::test]
async fn failed_columns_are_as_wide_as_their_content() {
    let (queue, _dir) = sqlite();
    let long_id = "a-failed-job-id-longer-than-thirty";
    let long_listener = "app::billing::reminders::send_the_overdue_invoice_reminder";
    failed_job(&queue, "short", "q", "app::x", "no").await;
    failed_job(
        &queue,
        long_id,
        "mail",
        long_listener,
        "the mail server said no",
    )
    .await;

    let out = cli(&queue, &["failed"]).await.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let queue_at = long_id.len() + 2;
    let listener_at = queue_at + "QUEUE".len() + 2;
    let tries_at = listener_at + long_listener.len() + 2;
    for (line, queue_name) in [(lines[1], "q"), (lines[2], "mail")] {
        assert_eq!(
            &line[queue_at..queue_at + queue_name.len()],
            queue_name,
            "{out}"
        );
    }
    assert_eq!(lines[0].find("QUEUE"), Some(queue_at), "{out}");
    assert_eq!(lines[0].find("LISTENER"), Some(listener_at), "{out}");
    assert_eq!(lines[0].find("TRIES"), Some(tries_at), "{out}");
    assert_eq!(&lines[2][tries_at..tries_at + 3], "1/1", "{out}");
    assert!(lines[1].starts_with("short "), "{out}");
    assert!(
        lines[2].ends_with("  the mail server said no"),
        "the error comes last, whole: {out}"
    );
    assert!(
        out.lines().all(|line| !line.ends_with(' ')),
        "no trailing blanks: {out}"
    );
}

#[tokio::test]
async fn failed_retry_and_flush_take_queue_and_listener_filters() {
    let (queue, _dir) = sqlite();
    failed_job(&queue, "j1", "mail", "app::mail::receipt", "e1").await;
    failed_job(&queue, "j2", "mail", "app::mail::reminder", "e2").await;
    failed_job(&queue, "j3", "sms", "app::sms::send", "e3").await;
    failed_job(&queue, "j4", "push", "app::mail::receipt", "e4").await;
    failed_job(&queue, "j5", "push", "app::push::send", "e5").await;

    let out = cli(&queue, &["failed", "--queue", "mail"]).await.unwrap();
    assert_eq!(failed_ids(&out), ["j1", "j2"], "{out}");
    let out = cli(&queue, &["failed", "--listener", "app::mail::*"])
        .await
        .unwrap();
    assert_eq!(failed_ids(&out), ["j1", "j2", "j4"], "{out}");
    let both = [
        "failed",
        "--queue",
        "mail",
        "--listener",
        "app::mail::receipt",
    ];
    assert_eq!(failed_ids(&cli(&queue, &both).await.unwrap()), ["j1"]);
    assert_eq!(
        cli(&queue, &["failed", "--queue", "nope"]).await.unwrap(),
        "no failed jobs matching --queue nope (5 in the store)\n"
    );

    let out = cli(&queue, &["retry", "--queue", "sms"]).await.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let new_id = lines[0]
        .strip_prefix("failed job j3 put back on queue `sms` as ")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(
        lines[1],
        "1 failed job(s) matching --queue sms put back on their queues"
    );
    let claimed = queue
        .backend()
        .claim(&["sms".to_owned()], 5, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, new_id, "the id printed is the job's new id");

    let out = cli(
        &queue,
        &["retry", "all", "--listener", "app::mail::receipt"],
    )
    .await
    .unwrap();
    assert!(
        out.contains("failed job j1 put back on queue `mail` as "),
        "{out}"
    );
    assert!(
        out.contains("failed job j4 put back on queue `push` as "),
        "{out}"
    );
    assert!(
        out.ends_with(
            "\n2 failed job(s) matching --listener app::mail::receipt put back on their queues\n"
        ),
        "{out}"
    );
    assert_eq!(queue.size("mail").await.unwrap(), 1);
    assert_eq!(queue.size("push").await.unwrap(), 1);

    let error = cli(&queue, &["retry", "j2", "--queue", "mail"])
        .await
        .unwrap_err();
    assert!(matches!(error, CliError::Usage(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("give either the id, or `all` with the filters"),
        "{error}"
    );
    let error = cli(&queue, &["retry"]).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("retry what? give a failed job's id, `all`, or --queue/--listener"),
        "{error}"
    );

    assert_eq!(
        cli(&queue, &["flush", "--queue", "mail"]).await.unwrap(),
        "1 failed job(s) matching --queue mail deleted\n"
    );
    let left: Vec<String> = queue
        .failed()
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(left, ["j5"], "the filters kept the others");
}

#[tokio::test]
async fn prune_failed_deletes_only_failures_older_than_the_age_given() {
    let (queue, _dir) = sqlite();
    failed_job(&queue, "old", "q", "app::x", "e").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    failed_job(&queue, "new", "q", "app::x", "e").await;
    failed_job(&queue, "new-other", "other", "app::y", "e").await;

    assert_eq!(
        cli(&queue, &["prune-failed", "--older-than", "7d"])
            .await
            .unwrap(),
        "0 failed job(s) that failed more than 7days ago deleted\n"
    );
    assert_eq!(
        cli(&queue, &["prune-failed", "--older-than", "200ms"])
            .await
            .unwrap(),
        "1 failed job(s) that failed more than 200ms ago deleted\n"
    );
    let left: Vec<String> = queue
        .failed()
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(left, ["new", "new-other"]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        cli(
            &queue,
            &["prune-failed", "--older-than", "10ms", "--queue", "other"]
        )
        .await
        .unwrap(),
        "1 failed job(s) matching --queue other that failed more than 10ms ago deleted\n"
    );
    let error = cli(&queue, &["prune-failed"]).await.unwrap_err();
    assert!(matches!(error, CliError::Usage(_)), "{error:?}");
    let error = cli(&queue, &["prune-failed", "--older-than", "a week"])
        .await
        .unwrap_err();
    assert!(error.to_string().contains("--older-than"), "{error}");
    assert_eq!(
        queue.failed().await.unwrap().len(),
        1,
        "bad input deletes nothing"
    );
}

fn waiting_job(id: &str, on: &str, delay: Duration) -> Job {
    let mut job = Job::from_parts(
        id,
        on,
        "app::x",
        "order.placed",
        "{}",
        events::Envelope::new(),
    );
    job.available_at = std::time::SystemTime::now() + delay;
    job
}

#[tokio::test]
async fn clear_deletes_waiting_jobs_only_when_forced_or_confirmed() {
    let (queue, _dir) = sqlite();
    queue
        .enqueue(waiting_job("r1", "bulk", Duration::ZERO))
        .await
        .unwrap();
    queue
        .enqueue(waiting_job("r2", "bulk", Duration::ZERO))
        .await
        .unwrap();
    queue
        .enqueue(waiting_job("d1", "bulk", Duration::from_secs(600)))
        .await
        .unwrap();
    queue
        .enqueue(waiting_job("o1", "other", Duration::ZERO))
        .await
        .unwrap();

    // No terminal to ask on (as in CI, or piped): refused, in words.
    let error = cli(&queue, &["clear", "bulk"]).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "not clearing queue `bulk` (3 waiting job(s)): there is no terminal to confirm on; pass --force to delete them"
    );
    assert_eq!(error.exit_code(), 1);
    assert_eq!(queue.size("bulk").await.unwrap(), 3, "nothing deleted");

    assert_eq!(
        cli(&queue, &["clear", "bulk", "--force"]).await.unwrap(),
        "3 waiting job(s) deleted from queue `bulk`\n"
    );
    assert_eq!(queue.size("bulk").await.unwrap(), 0);
    assert_eq!(
        queue.size("other").await.unwrap(),
        1,
        "other queues untouched"
    );
    assert_eq!(
        cli(&queue, &["clear", "bulk"]).await.unwrap(),
        "queue `bulk` has no waiting job: nothing deleted\n"
    );
}

#[tokio::test]
async fn monitor_splits_ready_from_delayed_jobs() {
    let (queue, _dir) = sqlite();
    queue
        .enqueue(waiting_job("r1", "split", Duration::ZERO))
        .await
        .unwrap();
    queue
        .enqueue(waiting_job("r2", "split", Duration::ZERO))
        .await
        .unwrap();
    queue
        .enqueue(waiting_job("d1", "split", Duration::from_secs(600)))
        .await
        .unwrap();
    failed_job(&queue, "f1", "notifications", "app::x", "e").await;
    assert_eq!(
        cli(&queue, &["monitor"]).await.unwrap(),
        "\
QUEUE          READY  DELAYED  RESERVED  FAILED
notifications      0        0         0       1
split              2        1         0       0
"
    );
}

// --- events only wildcards hear ---------------------------------------------------

/// No typed listener: only `order_audit`'s `order.*` hears it.
#[event(name = "order.refunded")]
#[derive(Serialize, Deserialize)]
pub struct OrderRefunded;

#[tokio::test]
async fn list_and_graph_show_events_only_wildcard_listeners_hear() {
    let (queue, _dir) = sqlite();
    let out = cli(&queue, &["list"]).await.unwrap();
    assert!(
        out.contains("\norder.refunded (cli::OrderRefunded)\n  -> cli::order_audit: sync [pattern `order.*`]  (tests/cli.rs:"),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&cli(&queue, &["list", "--json"]).await.unwrap()).unwrap();
    let refunded = json["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "order.refunded")
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(refunded["listeners"][0], "cli::order_audit");

    let graph = cli(&queue, &["graph"]).await.unwrap();
    let node = graph
        .lines()
        .find(|l| l.ends_with("[\"order.refunded\"]"))
        .unwrap_or_else(|| panic!("{graph}"));
    let id = node.trim().split('[').next().unwrap();
    assert!(
        graph.contains(&format!("    {id} -->|\"order.*\"| ")),
        "{graph}"
    );
}

// --- errors and their causes -------------------------------------------------------

/// What a driver's error looks like: a layer of its own over the OS's.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
struct DiskError {
    what: &'static str,
    #[source]
    source: std::io::Error,
}

fn disk_full(what: &'static str) -> QueueError {
    QueueError::backend(
        "broken",
        DiskError {
            what,
            source: std::io::Error::other("database or disk is full"),
        },
    )
}

/// A memory queue whose disk is full: it cannot store a job or read its
/// failed store.
#[derive(Default)]
struct Broken(events::queue::MemoryBackend);

#[async_trait::async_trait]
impl Backend for Broken {
    async fn enqueue_many(&self, _: Vec<Job>) -> Result<(), QueueError> {
        Err(disk_full("cannot write the job rows"))
    }
    async fn claim(&self, q: &[String], n: usize, l: Duration) -> Result<Vec<Job>, QueueError> {
        self.0.claim(q, n, l).await
    }
    async fn extend(&self, id: &str, a: u32, l: Duration) -> Result<bool, QueueError> {
        self.0.extend(id, a, l).await
    }
    async fn ack(&self, id: &str, a: u32) -> Result<bool, QueueError> {
        self.0.ack(id, a).await
    }
    async fn release(&self, id: &str, a: u32, d: Duration, e: &str) -> Result<bool, QueueError> {
        self.0.release(id, a, d, e).await
    }
    async fn abandon(&self, id: &str, a: u32, d: Duration) -> Result<bool, QueueError> {
        self.0.abandon(id, a, d).await
    }
    async fn fail(&self, id: &str, a: u32, e: &str) -> Result<bool, QueueError> {
        self.0.fail(id, a, e).await
    }
    async fn failed(&self) -> Result<Vec<FailedJob>, QueueError> {
        Err(disk_full("cannot read the failed store"))
    }
    async fn retry(&self, id: &str) -> Result<Option<String>, QueueError> {
        self.0.retry(id).await
    }
    async fn retry_all(&self) -> Result<usize, QueueError> {
        self.0.retry_all().await
    }
    async fn forget(&self, id: &str) -> Result<bool, QueueError> {
        self.0.forget(id).await
    }
    async fn flush_failed(&self) -> Result<usize, QueueError> {
        self.0.flush_failed().await
    }
    async fn stats(&self) -> Result<Vec<QueueStats>, QueueError> {
        self.0.stats().await
    }
    async fn clear(&self, queue: &str) -> Result<usize, QueueError> {
        self.0.clear(queue).await
    }
}

fn broken() -> Queue {
    Queue::with_backend("broken://", Broken::default())
}

#[tokio::test]
async fn an_error_two_levels_deep_prints_its_causes_through_chain() {
    let dispatcher = events::Dispatcher::builder()
        .queue(broken())
        .build()
        .unwrap();
    let error = dispatcher
        .dispatch(OrderPlaced { id: 9, fail: false })
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot enqueue the jobs of `order.placed` (the first for queued listener `cli::mail_receipt`)",
        "Display says this layer only"
    );
    assert_eq!(
        Chain(&error).to_string(),
        "cannot enqueue the jobs of `order.placed` (the first for queued listener `cli::mail_receipt`): \
         the broken queue failed: cannot write the job rows: database or disk is full"
    );

    let error = cli(&broken(), &["failed"]).await.unwrap_err();
    assert_eq!(error.exit_code(), 1);
    assert_eq!(
        Chain(&error).to_string(),
        "the broken queue failed: cannot read the failed store: database or disk is full"
    );
}

// --- as a process: what the README's `main` prints, and its exit status -----------

const CHILD_ARGS: &str = "EVENTS_TEST_CLI_ARGS";
const CHILD_QUEUE: &str = "EVENTS_TEST_CLI_QUEUE";
const CHILD_GO: &str = "EVENTS_TEST_CLI_GO";

/// Not a test of its own: the application binary the process tests start
/// (this test binary again, with `CHILD_ARGS` set: the command line, one
/// argument a line). It does what `events::cli::run()` does with the
/// process's arguments: runs the command, prints any error with
/// `CliError::report`, and exits with its status. Without `CHILD_ARGS` it
/// does nothing.
#[tokio::test]
async fn child_cli_process() {
    let Ok(args) = std::env::var(CHILD_ARGS) else {
        return;
    };
    if let Ok(go) = std::env::var(CHILD_GO) {
        while !std::path::Path::new(&go).exists() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let mut commands = Commands::new().version("9.9.9");
    match std::env::var(CHILD_QUEUE).as_deref() {
        Ok("broken") => commands = commands.queue(broken()),
        Ok(path) => commands = commands.queue(events::queue::SqliteBackend::queue(path).unwrap()),
        Err(_) => {}
    }
    let argv = std::iter::once("app").chain(args.lines().filter(|a| !a.is_empty()));
    let mut stdout = std::io::stdout();
    let status = match commands.run_to(argv, &mut stdout).await {
        Ok(()) => 0,
        Err(error) => {
            error.report();
            error.exit_code()
        }
    };
    std::process::exit(status.into());
}

fn child_command(args: &[&str], queue: Option<&str>) -> std::process::Command {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "child_cli_process",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD_ARGS, args.join("\n"))
        .env_remove("EVENTS_QUEUE_URL")
        .env_remove("RUST_BACKTRACE");
    if let Some(queue) = queue {
        command.env(CHILD_QUEUE, queue);
    }
    command
}

/// Runs the application binary with `args`: its exit status and stderr.
fn run_app(args: &[&str], queue: Option<&str>) -> (Option<i32>, String, String) {
    let output = child_command(args, queue).output().unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn a_mistyped_command_prints_clap_message_and_exits_2() {
    let (status, _, stderr) = run_app(&["wrok"], None);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: unrecognized subcommand 'wrok'\n"),
        "{stderr}"
    );
    assert!(stderr.contains("\nUsage: app "), "{stderr}");
    assert!(!stderr.contains("ErrorInner"), "no Debug dump: {stderr}");

    let (status, stdout, stderr) = run_app(&["--help"], None);
    assert_eq!((status, stderr.as_str()), (Some(0), ""));
    assert!(stdout.contains("prune-failed"), "{stdout}");
    let (status, stdout, stderr) = run_app(&["--version"], None);
    assert_eq!((status, stderr.as_str()), (Some(0), ""));
    assert!(stdout.ends_with("app 9.9.9\n"), "{stdout}");
}

#[test]
fn other_errors_print_one_line_in_words_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.sqlite");
    let (status, _, stderr) = run_app(&["retry", "bogus"], Some(db.to_str().unwrap()));
    assert_eq!(
        (status, stderr.as_str()),
        (Some(1), "error: no failed job with id `bogus`\n")
    );

    let (status, _, stderr) = run_app(&["failed"], None);
    assert_eq!(
        (status, stderr.as_str()),
        (
            Some(1),
            "error: no queue configured: pass --queue-url, set EVENTS_QUEUE_URL, or install a dispatcher with a queue\n"
        )
    );

    // The cause, two levels down, is on the line.
    let (status, _, stderr) = run_app(&["failed"], Some("broken"));
    assert_eq!(
        (status, stderr.as_str()),
        (
            Some(1),
            "error: the broken queue failed: cannot read the failed store: database or disk is full\n"
        )
    );
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let mut child = child_command(&["list", "--json"], None)
        .env(CHILD_GO, &go)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // The test harness's own lines come first (`running 1 test`, then
    // `test child_cli_process ... ` as the child starts); then the reader
    // goes away (as `| head -c1` does) before the command writes a byte.
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"child_cli_process ... ") {
        stdout.read_exact(&mut byte).unwrap();
        seen.push(byte[0]);
    }
    drop(stdout);
    std::fs::write(&go, "").unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        (output.status.code(), stderr.as_str()),
        (Some(0), ""),
        "no panic, no error text"
    );
}

#[tokio::test]
async fn work_reports_its_activity_unless_report_every_is_zero() {
    let since = std::time::SystemTime::UNIX_EPOCH;
    for (flags, reported) in [(&[][..], 1), (&["--report-every", "0"][..], 0)] {
        let (queue, _dir) = sqlite();
        let dispatcher = events::Dispatcher::builder()
            .queue(queue.clone())
            .build()
            .unwrap();
        dispatcher.dispatch(NoisyJob { fail: false }).await.unwrap();
        let mut args = vec!["work", "--queue", "noisy", "--stop-when-empty", "-q"];
        args.extend_from_slice(flags);
        let out = cli(&queue, &args).await.unwrap();
        assert!(out.starts_with("finished 1 job(s)"), "{out}");
        let activity = queue.activity(since).await.unwrap();
        assert!(activity.workers.is_empty(), "it left: {activity:?}");
        assert_eq!(activity.finished.len(), reported, "{flags:?}: {activity:?}");
    }
    let (queue, _dir) = sqlite();
    let error = cli(&queue, &["work", "--report-every", "soon"])
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("`soon` is not a duration"), "{error}");
}
