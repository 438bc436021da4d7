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
//! Settings come from [`Config::from_env`]; flags override them (`config`
//! shows each setting, its value and where it came from). The queue is
//! `--queue-url`, else `EVENTS_QUEUE_URL`, else the installed dispatcher's.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use crate::config::{self, Config, ConfigError, Invalid, Source};
use crate::dispatch::global;
use crate::listener::{ListenerInfo, Mode, RetryDefaults};
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
    /// The configuration (environment or flags) has values that do not
    /// parse.
    #[error(transparent)]
    Config(#[from] ConfigError),
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
        /// Jobs to run at once [default: EVENTS_WORKER_CONCURRENCY, else 1].
        #[arg(long, value_name = "N")]
        concurrency: Option<String>,
        /// Stop when the queues hold no job.
        #[arg(long)]
        stop_when_empty: bool,
        /// Stop after this many jobs.
        #[arg(long)]
        max_jobs: Option<u64>,
        /// Timeout for listeners that declare none: seconds, or a duration
        /// such as 90s or 2m [default: EVENTS_TIMEOUT, else 60s].
        #[arg(long, value_name = "DURATION")]
        timeout: Option<String>,
        /// Stop (gracefully) after this long: seconds, or a duration such
        /// as 90s or 1h.
        #[arg(long, value_parser = work_duration, value_name = "DURATION")]
        max_time: Option<Duration>,
        /// How long to wait between looks at the queue when it is empty:
        /// seconds, or a duration such as 3s or 250ms [default: 1s].
        #[arg(long, value_parser = work_duration, value_name = "DURATION")]
        sleep: Option<Duration>,
        /// Print no start line and no line per retried or failed job (the
        /// warnings and the summary still print).
        #[arg(long, short)]
        quiet: bool,
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
    /// Each setting, its value and where it came from (default,
    /// environment, flag), then the warnings.
    Config {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
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
    execute(args, queue, Config::load_env(), &[], out).await
}

/// Like [`run_to`], with the environment given as pairs instead of read
/// from the process: for tests, which then never touch the process
/// environment.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), events::cli::CliError> {
/// let mut out = Vec::new();
/// let env = [("EVENTS_WORKER_CONCURRENCY", "4")];
/// events::cli::run_with_env(["app", "config"], None, env, &mut out).await?;
/// let table = String::from_utf8_lossy(&out);
/// assert!(table.contains("EVENTS_WORKER_CONCURRENCY"));
/// assert!(table.contains("env EVENTS_WORKER_CONCURRENCY"));
/// # Ok(()) }
/// ```
pub async fn run_with_env<I, T, E, K, V>(
    args: I,
    queue: Option<Queue>,
    env: E,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
    E: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let env = env
        .into_iter()
        .map(|(k, v)| (k.as_ref().to_owned(), Ok(v.as_ref().to_owned())));
    execute(args, queue, Config::load(env), &[], out).await
}

/// Configures how a worker started by `work` is built.
type WorkerSetup = Box<dyn Fn(Worker) -> Worker + Send + Sync>;

/// The operator commands with what the application's workers need: the
/// state its queued listeners take as `State<T>`, observers, a queue.
///
/// ```no_run
/// #[derive(Clone)]
/// struct Pool;
///
/// #[tokio::main]
/// async fn main() -> Result<(), events::cli::CliError> {
///     let pool = Pool;
///     events::cli::Commands::new().state(pool).run().await
/// }
/// ```
#[derive(Default)]
#[must_use]
pub struct Commands {
    queue: Option<Queue>,
    worker: Vec<WorkerSetup>,
}

impl Commands {
    /// The commands as [`run`] has them: no state, no observer, the queue
    /// from `--queue-url` or the environment.
    pub fn new() -> Commands {
        Commands::default()
    }

    /// Runs the commands on `queue` unless `--queue-url` names another.
    pub fn queue(mut self, queue: Queue) -> Self {
        self.queue = Some(queue);
        self
    }

    /// Gives `work`'s worker the state queued listeners take as
    /// `State<T>` (see `Worker::state`).
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.worker
            .push(Box::new(move |worker| worker.state(value.clone())));
        self
    }

    /// Adds an observer to `work`'s worker (see `Worker::observe`).
    pub fn observe(mut self, observer: impl crate::observe::Observer) -> Self {
        let observer = Arc::new(observer);
        self.worker
            .push(Box::new(move |worker| worker.observe(observer.clone())));
        self
    }

    /// Runs the command in the process's arguments, printing to stdout.
    pub async fn run(self) -> Result<(), CliError> {
        let mut stdout = std::io::stdout();
        self.run_to(std::env::args_os(), &mut stdout).await
    }

    /// Runs the command in `args` (the first is the program's name),
    /// writing to `out`.
    pub async fn run_to<I, T>(self, args: I, out: &mut (dyn Write + Send)) -> Result<(), CliError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        execute(args, self.queue, Config::load_env(), &self.worker, out).await
    }
}

/// Parses `args`, lays the flags over the configuration, and runs the
/// command. A configuration value that does not parse stops every command
/// but `config`, which shows it.
async fn execute<I, T>(
    args: I,
    queue: Option<Queue>,
    (mut config, mut problems): (Config, Vec<Invalid>),
    setup: &[WorkerSetup],
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
    let mut flags = vec![(config::QUEUE_URL, "--queue-url", cli.queue_url.as_deref())];
    if let Command::Work {
        concurrency,
        timeout,
        ..
    } = &cli.command
    {
        flags.push((
            config::WORKER_CONCURRENCY,
            "--concurrency",
            concurrency.as_deref(),
        ));
        flags.push((config::TIMEOUT, "--timeout", timeout.as_deref()));
    }
    for (variable, flag, value) in flags {
        if let Some(value) = value
            && let Err(error) = config.set_flag(variable, flag, value)
        {
            problems.extend(error.problems().iter().cloned());
        }
    }
    if let Command::Config { json } = &cli.command {
        return show_config(out, &config, &problems, *json);
    }
    if !problems.is_empty() {
        return Err(ConfigError::new(problems).into());
    }
    let queue = || open_queue(&config, queue.as_ref());
    match &cli.command {
        Command::List { json } => list(out, *json, config.retry_defaults()),
        Command::Graph => graph(out),
        Command::Config { .. } => Ok(()),
        Command::Work {
            queues,
            stop_when_empty,
            max_jobs,
            max_time,
            sleep,
            quiet,
            ..
        } => {
            let mut worker = Worker::new(queue()?).config(&config);
            for setup in setup {
                worker = setup(worker);
            }
            if !queues.is_empty() {
                worker = worker.queues(queues.clone());
            }
            if let Some(max) = max_jobs {
                worker = worker.max_jobs(*max);
            }
            if let Some(sleep) = sleep {
                worker = worker.poll_interval(*sleep);
            }
            let stop = Stop {
                when_empty: *stop_when_empty,
                after: *max_time,
            };
            work(out, worker, stop, *quiet).await
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

/// `work`'s durations: whole seconds (`90`) or a duration (`90s`, `2m`,
/// `250ms`), longer than zero.
fn work_duration(value: &str) -> Result<Duration, String> {
    let duration = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(value).map_err(|e| {
            format!("`{value}` is not a duration ({e}): give seconds, or a duration such as `90s`, `2m` or `250ms`")
        })?,
    };
    if duration.is_zero() {
        return Err("the duration must be longer than zero".to_owned());
    }
    Ok(duration)
}

/// When `work` stops, besides SIGINT and SIGTERM.
struct Stop {
    /// `--stop-when-empty`.
    when_empty: bool,
    /// `--max-time`.
    after: Option<Duration>,
}

/// The `work` command: a start line, one line per retried or failed job
/// and per listener whose jobs are set aside (Laravel's `queue:work`
/// habit), then a summary that counts jobs and tries apart.
async fn work(
    out: &mut (dyn Write + Send),
    mut worker: Worker,
    stop: Stop,
    quiet: bool,
) -> Result<(), CliError> {
    let has_queued = registry()
        .listeners()
        .iter()
        .any(|l| matches!(l.mode(), Mode::Queued(_)));
    if !has_queued {
        writeln!(
            out,
            "warning: {} `work` leaves every job waiting, untouched.",
            crate::worker::NO_QUEUED_LISTENER
        )?;
    }
    let (lines, mut printed) = tokio::sync::mpsc::unbounded_channel();
    let set_aside = Arc::default();
    worker = worker.observe(JobLines {
        lines,
        quiet,
        set_aside: Arc::clone(&set_aside),
    });
    worker.resolve_queues().await?;
    if !quiet {
        let (queues, chosen) = worker.worked_queues();
        let names: Vec<String> = queues.iter().map(|q| format!("`{q}`")).collect();
        writeln!(
            out,
            "{}  working {} {}{}, concurrency {}, on {}",
            format_time(SystemTime::now()),
            if queues.len() == 1 { "queue" } else { "queues" },
            names.join(", "),
            match (queues.len(), chosen) {
                (1, _) => "",
                (_, true) => " in priority order",
                (_, false) => " in turn",
            },
            worker.slots(),
            redact_password(worker.queue_url()),
        )?;
    }
    let shutdown = async move {
        match stop.after {
            Some(after) => {
                tokio::select! {
                    () = shutdown_signal() => {}
                    () = tokio::time::sleep(after) => {}
                }
            }
            None => shutdown_signal().await,
        }
    };
    let mut run = std::pin::pin!(worker.work(shutdown, stop.when_empty));
    let report = loop {
        tokio::select! {
            report = &mut run => break report?,
            Some(line) = printed.recv() => writeln!(out, "{line}")?,
        }
    };
    while let Ok(line) = printed.try_recv() {
        writeln!(out, "{line}")?;
    }
    for (listener, ids) in crate::context::lock(&set_aside).iter() {
        let text = crate::worker::unknown_listener_text(listener, Some(ids.len()));
        writeln!(out, "warning: {text}")?;
    }
    let tries = |n: u64| if n == 1 { "try" } else { "tries" };
    let mut summary = format!(
        "finished {} job(s) in {} {}: {} succeeded, {} failed, {} {} retried; {} lost their lease, {} handed back",
        report.finished(),
        report.processed(),
        tries(report.processed()),
        report.succeeded,
        report.failed,
        report.retried,
        tries(report.retried),
        report.lost,
        report.released_at_shutdown
    );
    if report.released > 0 {
        summary.push_str(&format!(", {} released by their listener", report.released));
    }
    if report.set_aside > 0 {
        summary.push_str(&format!(
            "; {} job(s) left waiting for a listener this program does not have",
            report.set_aside
        ));
    }
    if report.abandoned > 0 {
        summary.push_str(&format!(
            "; {} plain `fn` listener run(s) abandoned still running past their timeout",
            report.abandoned
        ));
    }
    writeln!(out, "{summary}")?;
    Ok(())
}

/// Sends `work` a line per retried or failed job, and one per listener
/// whose jobs are set aside.
struct JobLines {
    lines: tokio::sync::mpsc::UnboundedSender<String>,
    quiet: bool,
    /// The jobs set aside, by listener.
    set_aside: Arc<std::sync::Mutex<SetAside>>,
}

/// The jobs set aside, by listener: 64-bit hashes of their ids.
type SetAside = std::collections::BTreeMap<String, std::collections::HashSet<u64>>;

impl JobLines {
    fn job(&self, job: &crate::queue::Job, what: &str, text: &str) {
        if self.quiet {
            return;
        }
        let _ = self.lines.send(format!(
            "{}  {what:<5}  {}  job {}  try {}/{}: {text}",
            format_time(SystemTime::now()),
            job.listener,
            job.id,
            job.attempt,
            job.max_tries
        ));
    }
}

impl crate::observe::Observer for JobLines {
    fn job_retried(&self, job: &crate::queue::Job, error: &str, delay: Duration) {
        let text = if delay.is_zero() {
            format!("{error} (again at once)")
        } else {
            format!("{error} (again in {})", format_duration(delay))
        };
        self.job(job, "RETRY", &text);
    }

    fn job_failed(&self, job: &crate::queue::Job, error: &str) {
        self.job(job, "FAIL", error);
    }

    fn job_set_aside(&self, job: &crate::queue::Job, reason: &str) {
        let mut set_aside = crate::context::lock(&self.set_aside);
        let ids = set_aside.entry(job.listener.clone()).or_default();
        if ids.is_empty() {
            let _ = self.lines.send(format!("warning: {reason}"));
        }
        ids.insert(crate::queue::fnv1a(job.id.as_bytes()));
    }
}

/// The queue for commands that need one: `--queue-url`; else the queue the
/// program passed; else the global dispatcher's, when it is the one
/// `EVENTS_QUEUE_URL` names or that names none (opening the URL again would
/// give `memory://` a second, empty queue); else `EVENTS_QUEUE_URL`'s.
fn open_queue(config: &Config, given: Option<&Queue>) -> Result<Queue, CliError> {
    let url = config.queue_url();
    let flagged = config
        .get(config::QUEUE_URL)
        .is_some_and(|s| matches!(s.source(), Source::Flag(_)));
    if let (Some(url), true) = (url, flagged) {
        return Ok(Queue::open(url)?);
    }
    if let Some(queue) = given {
        return Ok(queue.clone());
    }
    if let Ok(dispatcher) = global()
        && let Some(queue) = dispatcher.queue()
        && url.is_none_or(|url| url == queue.url())
    {
        return Ok(queue.clone());
    }
    match url {
        // A disabled default dispatcher opens no queue: the operator
        // commands still reach the one the environment names.
        Some(url) => Queue::open(url).map_err(|e| CliError::QueueUrl(Arc::new(e))),
        None => Err(CliError::NoQueue),
    }
}

/// The `config` command: every registered variable, its value and source;
/// then the warnings and the values that do not parse (which also make the
/// command fail, after printing).
fn show_config(
    out: &mut dyn Write,
    config: &Config,
    problems: &[Invalid],
    as_json: bool,
) -> Result<(), CliError> {
    let rows: Vec<(&str, String, Source, Option<&str>, &str)> = config
        .settings()
        .map(|(var, setting)| {
            let invalid = problems.iter().find(|p| p.variable() == var.name());
            let (value, source) = match (invalid, setting) {
                (Some(p), _) => (Some(p.value()), p.origin()),
                (None, Some(s)) => (Some(s.value()), s.source()),
                (None, None) => (None, Source::Default),
            };
            let shown = match value {
                None => "(unset)".to_owned(),
                Some(_) if var.is_secret() => "(set, hidden)".to_owned(),
                Some(value) => redact_password(value),
            };
            let shown = if invalid.is_some() {
                format!("{shown} (invalid)")
            } else {
                shown
            };
            (var.name(), shown, source, var.default_value(), var.help())
        })
        .collect();
    if as_json {
        let value = json!({
            "settings": rows.iter().map(|(name, value, source, default, help)| json!({
                "name": name,
                "value": value,
                "source": source.kind(),
                "from": source.origin(),
                "default": default,
                "help": help,
            })).collect::<Vec<_>>(),
            "warnings": config.warnings().iter().map(ToString::to_string).collect::<Vec<_>>(),
            "errors": problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
        });
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        )?;
    } else {
        let name_width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(8);
        let value_width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(5);
        writeln!(
            out,
            "{:<name_width$}  {:<value_width$}  SOURCE",
            "VARIABLE", "VALUE"
        )?;
        for (name, value, source, _, _) in &rows {
            writeln!(out, "{name:<name_width$}  {value:<value_width$}  {source}")?;
        }
        for warning in config.warnings() {
            writeln!(out, "warning: {warning}")?;
        }
        for problem in problems {
            writeln!(out, "error: {problem}")?;
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::new(problems.to_vec()).into())
    }
}

/// `scheme://user:password@host..` with the password replaced by `***`.
fn redact_password(value: &str) -> String {
    let Some((scheme, rest)) = value.split_once("://") else {
        return value.to_owned();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let Some((userinfo, _)) = authority.rsplit_once('@') else {
        return value.to_owned();
    };
    let Some((user, _)) = userinfo.split_once(':') else {
        return value.to_owned();
    };
    format!("{scheme}://{user}:***{}", &rest[userinfo.len()..])
}

fn mode_text(listener: &ListenerInfo, defaults: &RetryDefaults) -> String {
    match listener.mode() {
        Mode::Sync => "sync".to_owned(),
        Mode::Queued(o) => {
            let mut text = format!("queued `{}`, tries {}", o.queue(), o.tries_or(defaults));
            if o.declared_tries().is_none() {
                text.push_str(" (default)");
            }
            let backoff = o.declared_backoff().unwrap_or(defaults.backoff());
            if !backoff.is_empty() {
                let list: Vec<String> = backoff.iter().map(|d| format_duration(*d)).collect();
                text.push_str(&format!(", backoff {}", list.join("/")));
                if o.declared_backoff().is_none() {
                    text.push_str(" (default)");
                }
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
fn list(out: &mut dyn Write, as_json: bool, defaults: &RetryDefaults) -> Result<(), CliError> {
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
            "listeners": registry.listeners().iter().map(|l| listener_json(l, defaults)).collect::<Vec<_>>(),
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
                mode_text(l, defaults),
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

/// A listener as JSON; a queued one's `tries` and `backoff_ms` are what its
/// jobs get (the retry defaults where it declares none).
fn listener_json(l: &ListenerInfo, defaults: &RetryDefaults) -> Value {
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
            "tries": o.tries_or(defaults),
            "backoff_ms": o.declared_backoff().unwrap_or(defaults.backoff()).iter().map(|d| d.as_millis() as u64).collect::<Vec<_>>(),
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
