//! The operator commands, for an application's own binary:
//!
//! ```no_run
//! #[tokio::main]
//! async fn main() -> Result<(), events::cli::CliError> {
//!     // `my-app list`, `my-app work --queue high,default`, `my-app failed`, ...
//!     events::cli::run().await
//! }
//! ```
//!
//! The queue is `--queue-url`, else `EVENTS_QUEUE_URL`, else the installed
//! dispatcher's.

use std::io::Write;
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use crate::dispatch::global;
use crate::listener::{ListenerInfo, Mode};
use crate::queue::{Queue, QueueError};
use crate::registry::registry;
use crate::worker::{Worker, shutdown_signal};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The arguments did not parse (the message is clap's, with usage).
    #[error("{0}")]
    Usage(#[from] clap::Error),
    /// The command needs a queue and none is configured.
    #[error(
        "no queue configured: pass --queue-url, set EVENTS_QUEUE_URL, or install a dispatcher with a queue"
    )]
    NoQueue,
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// `EVENTS_QUEUE_URL` names a queue that cannot be opened.
    #[error("cannot open the queue that EVENTS_QUEUE_URL names")]
    QueueUrl(#[source] std::sync::Arc<QueueError>),
    /// No failed job has that id.
    #[error("no failed job with id `{0}`")]
    NotFound(String),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Parser, Debug)]
#[command(
    about = "Events and queued jobs: inspect, work, retry.",
    disable_version_flag = true
)]
struct Cli {
    /// The queue to use (memory://, sqlite://path); default: EVENTS_QUEUE_URL.
    #[arg(long, global = true, value_name = "URL")]
    queue_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Events and their listeners: sync or queued with options, source.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run queued jobs until SIGINT/SIGTERM (or until empty).
    Work {
        /// Queues to work, highest priority first (default: every queue a
        /// listener names).
        #[arg(long = "queue", value_delimiter = ',', value_name = "QUEUES")]
        queues: Vec<String>,
        /// Jobs to run at once.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Stop when the queues hold no job.
        #[arg(long)]
        stop_when_empty: bool,
        /// Stop after this many jobs.
        #[arg(long)]
        max_jobs: Option<u64>,
        /// Timeout for listeners that declare none.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
        timeout: Duration,
    },
    /// The failed store.
    Failed,
    /// Put failed jobs back on their queues: one id, or `all`.
    Retry {
        /// A failed job's id, or `all`.
        id: String,
    },
    /// Delete one failed job.
    Forget {
        /// The failed job's id.
        id: String,
    },
    /// Delete every failed job.
    Flush,
    /// Depth and failed count per queue.
    Monitor {
        /// Print again every this often, until interrupted.
        #[arg(long, value_parser = humantime::parse_duration, value_name = "EVERY")]
        watch: Option<Duration>,
    },
    /// Events and listeners as a Mermaid flowchart.
    Graph,
}

/// Runs the command in the process's arguments, printing to stdout. `--help`
/// prints the help and succeeds.
pub async fn run() -> Result<(), CliError> {
    run_from(std::env::args_os(), None).await
}

/// Runs the command in `args` (the first is the program's name), on `queue`
/// when given, printing to stdout.
pub async fn run_from<I, T>(args: I, queue: Option<Queue>) -> Result<(), CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut stdout = std::io::stdout();
    run_to(args, queue, &mut stdout).await
}

/// Like [`run_from`], writing to `out`: for tests and embedding.
pub async fn run_to<I, T>(
    args: I,
    queue: Option<Queue>,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp) => {
            write!(out, "{}", e.render())?;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let queue = || -> Result<Queue, CliError> {
        if let Some(url) = &cli.queue_url {
            return Ok(Queue::open(url)?);
        }
        if let Some(queue) = &queue {
            return Ok(queue.clone());
        }
        // The dispatcher's own queue (the default one reads EVENTS_QUEUE_URL):
        // opening the URL again would give `memory://` a second, empty queue.
        match global() {
            Ok(dispatcher) => dispatcher.queue().cloned().ok_or(CliError::NoQueue),
            Err(crate::dispatch::DispatchError::QueueUrl(problem)) => {
                Err(CliError::QueueUrl(problem))
            }
            Err(_) => Err(CliError::NoQueue),
        }
    };
    match &cli.command {
        Command::List { json } => list(out, *json),
        Command::Graph => graph(out),
        Command::Work {
            queues,
            concurrency,
            stop_when_empty,
            max_jobs,
            timeout,
        } => {
            let mut worker = Worker::new(queue()?)
                .concurrency(*concurrency)
                .timeout(*timeout);
            if !queues.is_empty() {
                worker = worker.queues(queues.clone());
            }
            if let Some(max) = max_jobs {
                worker = worker.max_jobs(*max);
            }
            let report = worker.work(shutdown_signal(), *stop_when_empty).await?;
            writeln!(
                out,
                "worked {} job(s): {} succeeded, {} retried, {} failed, {} lost their lease, {} handed back",
                report.processed(),
                report.succeeded,
                report.retried,
                report.failed,
                report.lost,
                report.released_at_shutdown
            )?;
            Ok(())
        }
        Command::Failed => failed(out, &queue()?).await,
        Command::Retry { id } => {
            let queue = queue()?;
            if id == "all" {
                let n = queue.retry_all().await?;
                writeln!(out, "{n} failed job(s) put back on their queues")?;
            } else if queue.retry(id).await? {
                writeln!(out, "failed job {id} put back on its queue")?;
            } else {
                return Err(CliError::NotFound(id.clone()));
            }
            Ok(())
        }
        Command::Forget { id } => {
            if queue()?.forget(id).await? {
                writeln!(out, "failed job {id} deleted")?;
                Ok(())
            } else {
                Err(CliError::NotFound(id.clone()))
            }
        }
        Command::Flush => {
            let n = queue()?.flush_failed().await?;
            writeln!(out, "{n} failed job(s) deleted")?;
            Ok(())
        }
        Command::Monitor { watch } => {
            let queue = queue()?;
            monitor(out, &queue).await?;
            if let Some(every) = watch {
                let mut stop = std::pin::pin!(shutdown_signal());
                loop {
                    tokio::select! {
                        () = &mut stop => return Ok(()),
                        () = tokio::time::sleep(*every) => monitor(out, &queue).await?,
                    }
                }
            }
            Ok(())
        }
    }
}

fn mode_text(listener: &ListenerInfo) -> String {
    match listener.mode() {
        Mode::Sync => "sync".to_owned(),
        Mode::Queued(o) => {
            let mut text = format!("queued `{}`, tries {}", o.queue(), o.tries());
            if !o.backoff().is_empty() {
                let list: Vec<String> = o.backoff().iter().map(|d| format_duration(*d)).collect();
                text.push_str(&format!(", backoff {}", list.join("/")));
            }
            if !o.delay().is_zero() {
                text.push_str(&format!(", delay {}", format_duration(o.delay())));
            }
            if let Some(t) = o.timeout() {
                text.push_str(&format!(", timeout {}", format_duration(t)));
            }
            text
        }
    }
}

fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// The events and their listeners, in dispatch order; wildcard listeners
/// under the events their pattern matches.
fn list(out: &mut dyn Write, as_json: bool) -> Result<(), CliError> {
    let registry = registry();
    let events: Vec<(&str, &str, Vec<ListenerInfo>)> = registry
        .events()
        .iter()
        .map(|e| {
            (
                e.name(),
                e.type_name(),
                listeners_of(e.name(), e.type_name()),
            )
        })
        .collect();
    if as_json {
        let value = json!({
            "events": events.iter().map(|(name, type_name, listeners)| json!({
                "name": name,
                "type": type_name,
                "listeners": listeners.iter().map(|l| l.name()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "listeners": registry.listeners().iter().map(listener_json).collect::<Vec<_>>(),
        });
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        )?;
        return Ok(());
    }
    for (name, type_name, listeners) in &events {
        writeln!(out, "{name} ({type_name})")?;
        if listeners.is_empty() {
            writeln!(out, "  (no listener)")?;
        }
        for l in listeners {
            let mut flags = Vec::new();
            if l.priority() != 0 {
                flags.push(format!("priority {}", l.priority()));
            }
            if let Some(pattern) = l.pattern() {
                flags.push(format!("pattern `{pattern}`"));
            }
            if l.is_conditional() {
                flags.push("conditional".to_owned());
            }
            let flags = if flags.is_empty() {
                String::new()
            } else {
                format!(" [{}]", flags.join(", "))
            };
            writeln!(
                out,
                "  -> {}: {}{flags}  ({}:{})",
                l.name(),
                mode_text(l),
                l.file(),
                l.line()
            )?;
        }
    }
    Ok(())
}

/// The listeners of the registered event with this name, in dispatch order.
fn listeners_of(name: &str, type_name: &str) -> Vec<ListenerInfo> {
    let mut listeners: Vec<ListenerInfo> = registry()
        .listeners()
        .iter()
        .filter(|l| match l.pattern() {
            Some(pattern) => crate::pattern::matches(pattern, name),
            None => l.event() == name && l.event_type() == Some(type_name),
        })
        .copied()
        .collect();
    // Sync listeners run first, then queued ones are enqueued: show that order.
    listeners.sort_by_key(|l| matches!(l.mode(), Mode::Queued(_)));
    listeners
}

fn listener_json(l: &ListenerInfo) -> Value {
    let mut value = json!({
        "name": l.name(),
        "event": l.event(),
        "event_type": l.event_type(),
        "pattern": l.pattern(),
        "mode": match l.mode() { Mode::Sync => "sync", Mode::Queued(_) => "queued" },
        "priority": l.priority(),
        "async": l.is_async(),
        "conditional": l.is_conditional(),
        "file": l.file(),
        "line": l.line(),
    });
    if let Mode::Queued(o) = l.mode() {
        value["queue"] = json!({
            "queue": o.queue(),
            "tries": o.tries(),
            "backoff_ms": o.backoff().iter().map(|d| d.as_millis() as u64).collect::<Vec<_>>(),
            "delay_ms": o.delay().as_millis() as u64,
            "timeout_ms": o.timeout().map(|t| t.as_millis() as u64),
        });
    }
    value
}

/// A Mermaid flowchart: events on the left, listeners on the right; solid
/// arrows for sync listeners, dotted for queued ones.
fn graph(out: &mut dyn Write) -> Result<(), CliError> {
    let registry = registry();
    writeln!(out, "flowchart LR")?;
    let listeners = registry.listeners();
    for (i, e) in registry.events().iter().enumerate() {
        writeln!(out, "    E{i}[\"{}\"]", mermaid_text(e.name()))?;
    }
    for (i, l) in listeners.iter().enumerate() {
        writeln!(out, "    L{i}(\"{}\")", mermaid_text(l.name()))?;
    }
    for (ei, e) in registry.events().iter().enumerate() {
        for (li, l) in listeners.iter().enumerate() {
            let hears = match l.pattern() {
                Some(pattern) => crate::pattern::matches(pattern, e.name()),
                None => l.event() == e.name() && l.event_type() == Some(e.type_name()),
            };
            if !hears {
                continue;
            }
            let label = match (l.mode(), l.pattern()) {
                (Mode::Queued(o), Some(p)) => format!("{p}, queued: {}", o.queue()),
                (Mode::Queued(o), None) => format!("queued: {}", o.queue()),
                (Mode::Sync, Some(p)) => p.to_owned(),
                (Mode::Sync, None) => "sync".to_owned(),
            };
            let arrow = if matches!(l.mode(), Mode::Queued(_)) {
                "-.->"
            } else {
                "-->"
            };
            writeln!(out, "    E{ei} {arrow}|\"{}\"| L{li}", mermaid_text(&label))?;
        }
    }
    Ok(())
}

/// Mermaid labels are quoted: keep quotes out of them.
fn mermaid_text(text: &str) -> String {
    text.replace('"', "#quot;")
}

async fn failed(out: &mut dyn Write, queue: &Queue) -> Result<(), CliError> {
    let failed = queue.failed().await?;
    if failed.is_empty() {
        writeln!(out, "no failed jobs")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<30} {:<14} {:<40} {:<8} {:<20} ERROR",
        "ID", "QUEUE", "LISTENER", "TRIES", "FAILED AT"
    )?;
    for job in failed {
        writeln!(
            out,
            "{:<30} {:<14} {:<40} {:<8} {:<20} {}",
            job.id,
            job.queue,
            job.listener,
            format!("{}/{}", job.attempts, job.max_tries),
            format_time(job.failed_at),
            job.error
        )?;
    }
    Ok(())
}

fn format_time(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

async fn monitor(out: &mut dyn Write, queue: &Queue) -> Result<(), CliError> {
    let stats = queue.stats().await?;
    writeln!(
        out,
        "{:<20} {:>8} {:>9} {:>7}",
        "QUEUE", "PENDING", "RESERVED", "FAILED"
    )?;
    if stats.is_empty() {
        writeln!(out, "(no jobs)")?;
    }
    for s in stats {
        writeln!(
            out,
            "{:<20} {:>8} {:>9} {:>7}",
            s.queue, s.pending, s.reserved, s.failed
        )?;
    }
    Ok(())
}
