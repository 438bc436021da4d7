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
    assert!(
        out.starts_with("order.placed (cli::OrderPlaced)\n"),
        "{out}"
    );
    let lines: Vec<&str> = out.lines().collect();
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
    assert_eq!(json["events"][0]["name"], "order.placed");
    assert_eq!(json["events"][0]["listeners"].as_array().unwrap().len(), 3);
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
    assert!(
        out.starts_with("flowchart LR\n    E0[\"order.placed\"]\n"),
        "{out}"
    );
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
        "QUEUE                 PENDING  RESERVED  FAILED\nmail                        2         0       0\n"
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

    assert_eq!(
        cli(&queue, &["retry", &id]).await.unwrap(),
        format!("failed job {id} put back on its queue\n")
    );
    assert_eq!(queue.size("mail").await.unwrap(), 1);
    cli(&queue, &["work", "--stop-when-empty"]).await.unwrap();
    assert_eq!(
        cli(&queue, &["retry", "all"]).await.unwrap(),
        "1 failed job(s) put back on their queues\n"
    );
    cli(&queue, &["work", "--max-jobs", "1"]).await.unwrap();
    cli(&queue, &["work", "--stop-when-empty"]).await.unwrap();

    let out = cli(&queue, &["monitor"]).await.unwrap();
    assert!(
        out.ends_with("mail                        0         0       1\n"),
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
        "QUEUE                 PENDING  RESERVED  FAILED\n(no jobs)\n"
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
    assert_eq!(
        out,
        "\
VARIABLE                    VALUE                         SOURCE
EVENTS_DEFAULT_QUEUE        default                       default
EVENTS_ENABLED              true                          default
EVENTS_QUEUE_URL            redis://app:***@cache:6379/0  env EVENTS_QUEUE_URL
EVENTS_RETRY_ATTEMPTS       1                             default
EVENTS_RETRY_DELAY_SECONDS  1,5,15                        env EVENTS_RETRY_DELAY_SECONDS
EVENTS_TIMEOUT              60s                           default
EVENTS_WORKER_CONCURRENCY   4                             env EVENTS_WORKER_CONCURRENCY
warning: unknown variable EVENTS_TIMOUT: did you mean EVENTS_TIMEOUT?
"
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
    assert_eq!(settings.len(), 7);
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
    assert!(
        out.contains("EVENTS_ENABLED              flase (invalid)  env EVENTS_ENABLED\n"),
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
    assert_eq!(
        out,
        "QUEUE                 PENDING  RESERVED  FAILED\n(no jobs)\n"
    );
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
    let cause = "no listener of that name is registered in this program, so they wait for a worker that has it (likely causes: this binary does not link the library that defines it, or the listener was renamed and its old jobs keep the old name)";
    assert_eq!(
        out,
        format!(
            "warning: jobs for listener `app::renamed_listener` left waiting, untouched: {cause}\n\
             warning: 3 job(s) for listener `app::renamed_listener` left waiting, untouched: {cause}\n\
             finished 0 job(s) in 0 tries: 0 succeeded, 0 failed, 0 tries retried; 0 lost their lease, 0 handed back; 3 job(s) left waiting for a listener this program does not have\n"
        )
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
