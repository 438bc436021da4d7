//! The default dispatcher reads `Config::from_env()` once, at the first
//! dispatch. Tests never change their own process's environment: each case
//! runs this binary again as a child process with the environment it needs
//! (the `child_*` tests: ignored, and doing nothing without the
//! `CONFIG_TEST_CHILD` marker the parent sets), and the parent checks its
//! exit status and output.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use events::prelude::*;
use events::queue::Queue;
use serde::{Deserialize, Serialize};

#[event(name = "env.checked")]
#[derive(Serialize, Deserialize)]
pub struct Checked;

static SYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[listener]
fn counts(_: &Checked) {
    SYNC_RUNS.fetch_add(1, Ordering::SeqCst);
}

#[listener(queue = "env")]
fn undeclared(_: &Checked) {}

#[listener(queue = "env", tries = 2)]
fn declares_two(_: &Checked) {}

/// Runs the ignored test `name` of this binary in a child process with
/// `env` added to the (inherited) environment, the `EVENTS_*` variables of
/// the parent removed; returns its output, failing on a failed child.
fn child(name: &str, env: &[(&str, &str)]) -> String {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args([
        name,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (var, _) in std::env::vars() {
        if var.starts_with("EVENTS_") {
            command.env_remove(var);
        }
    }
    command.env("CONFIG_TEST_CHILD", "1");
    command.envs(env.iter().copied());
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "child {name} failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "child {name} did not run:\n{text}"
    );
    text
}

/// Whether this process is a child the parent started (`--include-ignored`
/// in the parent's own process would otherwise run the children there).
fn is_child() -> bool {
    std::env::var_os("CONFIG_TEST_CHILD").is_some()
}

#[test]
fn events_enabled_false_turns_the_default_dispatcher_off() {
    // The queue URL cannot be opened: a disabled dispatcher does not try.
    child(
        "child_disabled",
        &[
            ("EVENTS_ENABLED", "false"),
            ("EVENTS_QUEUE_URL", "kafka://nowhere"),
        ],
    );
}

#[tokio::test]
#[ignore = "run in a child process by events_enabled_false_turns_the_default_dispatcher_off"]
async fn child_disabled() {
    if !is_child() {
        return;
    }
    assert!(!events::global().unwrap().is_enabled());
    let done = Checked.dispatch().await.unwrap();
    assert_eq!((done.ran(), done.queued()), (0, 0));
    assert_eq!(SYNC_RUNS.load(Ordering::SeqCst), 0);
}

#[test]
fn the_default_dispatcher_takes_the_queue_and_retry_defaults_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("env.sqlite").display());
    child(
        "child_enabled",
        &[("EVENTS_QUEUE_URL", &url), ("EVENTS_RETRY_ATTEMPTS", "4")],
    );
}

#[tokio::test]
#[ignore = "run in a child process by the_default_dispatcher_takes_the_queue_and_retry_defaults_from_the_environment"]
async fn child_enabled() {
    if !is_child() {
        return;
    }
    let done = Checked.dispatch().await.unwrap();
    assert_eq!((done.ran(), done.queued()), (1, 2));
    let url = std::env::var("EVENTS_QUEUE_URL").unwrap();
    let queue = Queue::open(&url).unwrap();
    let mut jobs = queue
        .backend()
        .claim(&["env".to_owned()], 10, Duration::from_secs(30))
        .await
        .unwrap();
    jobs.sort_by(|a, b| a.listener.cmp(&b.listener));
    let tries: Vec<(&str, u32)> = jobs
        .iter()
        .map(|j| (j.listener.as_str(), j.max_tries))
        .collect();
    assert_eq!(
        tries,
        [
            ("env_config::declares_two", 2),
            ("env_config::undeclared", 4)
        ]
    );
}

#[test]
fn a_bad_value_fails_every_dispatch_in_words() {
    let out = child(
        "child_invalid",
        &[
            ("EVENTS_ENABLED", "flase"),
            ("EVENTS_QUEUE_ULR", "memory://"),
        ],
    );
    assert!(
        out.contains("unknown variable EVENTS_QUEUE_ULR: did you mean EVENTS_QUEUE_URL?"),
        "the warning is logged:\n{out}"
    );
}

#[tokio::test]
#[ignore = "run in a child process by a_bad_value_fails_every_dispatch_in_words"]
async fn child_invalid() {
    if !is_child() {
        return;
    }
    // The warning goes through `tracing`: print it where the parent reads.
    let subscriber = LineSubscriber;
    let _guard = tracing::subscriber::set_default(subscriber);
    for _ in 0..2 {
        let error = Checked.dispatch().await.unwrap_err();
        assert!(
            matches!(error, events::DispatchError::Config(_)),
            "{error:?}"
        );
        let source = std::error::Error::source(&error).unwrap().to_string();
        assert_eq!(
            source,
            "invalid configuration: EVENTS_ENABLED is `flase`, expected a boolean: true or false (also 1/0, yes/no, on/off)"
        );
    }
    assert_eq!(SYNC_RUNS.load(Ordering::SeqCst), 0);
}

/// Prints each event's message on stderr.
struct LineSubscriber;

impl tracing::Subscriber for LineSubscriber {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Message(tracing::Level);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    eprintln!("{} {value:?}", self.0);
                }
            }
        }
        event.record(&mut Message(*event.metadata().level()));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
