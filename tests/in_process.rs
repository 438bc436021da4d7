//! Queued listeners with no queue configured run in-process: their failure
//! hooks are called after the last try, a program can wait for them at
//! shutdown, and the ones dropped with their runtime are named in a
//! warning instead of vanishing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use events::prelude::*;
use events::queue::FailedJob;
use serde::{Deserialize, Serialize};

#[event(name = "backup.requested")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupRequested {
    pub site: String,
}

#[listener(queue = "backups", tries = 2, on_failure = backup_failed)]
async fn run_backup(e: &BackupRequested) -> Result<(), std::io::Error> {
    Err(std::io::Error::other(format!("disk of {} is full", e.site)))
}

static FAILED: Mutex<Vec<(String, u32, String)>> = Mutex::new(Vec::new());

fn backup_failed(job: &FailedJob) {
    let event: BackupRequested = serde_json::from_str(&job.payload).unwrap();
    FAILED
        .lock()
        .unwrap()
        .push((event.site, job.attempts, job.error.clone()));
}

fn failures_of(site: &str) -> Vec<(u32, String)> {
    FAILED
        .lock()
        .unwrap()
        .iter()
        .filter(|f| f.0 == site)
        .map(|f| (f.1, f.2.clone()))
        .collect()
}

#[tokio::test]
async fn the_failure_hook_is_called_after_the_last_in_process_try() {
    let dispatcher = events::Dispatcher::builder().build().unwrap();
    dispatcher
        .dispatch(BackupRequested {
            site: "hook.example".into(),
        })
        .await
        .unwrap();
    let left = dispatcher.drain(Duration::from_secs(10)).await;
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        failures_of("hook.example"),
        [(
            2,
            "listener `in_process::run_backup` failed: disk of hook.example is full".to_owned()
        )],
        "the hook heard of the job once, after its second and last try"
    );
}

#[event(name = "report.scheduled")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportScheduled {
    pub tenant: String,
}

static SENT: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[listener(queue = "reports", delay = "1h")]
async fn send_report_later(e: &ReportScheduled) {
    SENT.lock().unwrap().push(format!("later {}", e.tenant));
}

#[listener(queue = "reports")]
async fn send_report_now(e: &ReportScheduled) {
    SENT.lock().unwrap().push(format!("now {}", e.tenant));
}

#[tokio::test]
async fn drain_waits_for_in_process_jobs_and_returns_those_left() {
    let dispatcher = events::Dispatcher::builder().build().unwrap();
    dispatcher
        .dispatch(ReportScheduled {
            tenant: "acme".into(),
        })
        .await
        .unwrap();
    let left = dispatcher.drain(Duration::from_millis(200)).await;
    assert!(
        SENT.lock().unwrap().contains(&"now acme".to_owned()),
        "drain waited for the quick job"
    );
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].listener, "in_process::send_report_later");
    assert_eq!(left[0].event, "report.scheduled");
    assert_eq!(left[0].attempt, 0, "it is still waiting for its delay");
}

#[tokio::test]
async fn shutdown_waits_for_the_global_dispatchers_jobs() {
    ReportScheduled {
        tenant: "globex".into(),
    }
    .dispatch()
    .await
    .unwrap();
    let left = events::shutdown(Duration::from_millis(200)).await;
    assert!(SENT.lock().unwrap().contains(&"now globex".to_owned()));
    assert!(
        left.iter()
            .any(|job| job.listener == "in_process::send_report_later"
                && job.payload.contains("globex")),
        "{left:?}"
    );
}

/// A `tracing` subscriber that keeps each event's message and fields.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<String>>>);

struct Text<'a>(&'a mut String);

impl tracing::field::Visit for Text<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={value:?} ", field.name()));
    }
}

impl tracing::Subscriber for Logs {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = format!("{} ", event.metadata().level());
        event.record(&mut Text(&mut text));
        self.0.lock().unwrap().push(text);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn jobs_dropped_with_their_runtime_are_named_in_a_warning() {
    let logs = Logs::default();
    tracing::subscriber::with_default(logs.clone(), || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let dispatcher = events::Dispatcher::builder().build().unwrap();
        runtime
            .block_on(dispatcher.dispatch(ReportScheduled {
                tenant: "initech".into(),
            }))
            .unwrap();
        drop(runtime);
    });
    let logs = logs.0.lock().unwrap();
    let dropped: Vec<&String> = logs
        .iter()
        .filter(|line| line.contains("dropped before it ran to its end"))
        .collect();
    // The delayed job was surely still waiting; the quick one may or may
    // not have run before the runtime went.
    let later: Vec<&&String> = dropped
        .iter()
        .filter(|line| line.contains("in_process::send_report_later"))
        .collect();
    assert_eq!(
        later.len(),
        1,
        "the warning names the job's listener: {logs:#?}"
    );
    assert!(later[0].starts_with("WARN"), "{}", later[0]);
}
