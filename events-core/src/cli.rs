//! The operator commands, for an application's own binary:
//!
//! ```no_run
//! // The crate that declares your events and listeners, when it is not
//! // this binary: listeners register at link time, and a binary links only
//! // the crates it uses. Without this line the commands see no listener.
//! // use my_app as _;
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     // `my-app list`, `my-app work --queue high,default`, `my-app failed`, ...
//!     events::cli::run().await
//! }
//! ```
//!
//! [`run`] prints what goes wrong as a command line should: a mistake in the
//! arguments with clap's own message and exit status 2, any other error as
//! one line, `error: ` and the error with its causes ([`Chain`]), and exit
//! status 1; output into a closed pipe (`my-app list --json | head -c1`)
//! ends quietly with status 0.
//!
//! Settings come from [`Config::from_env`]; flags override them (`config`
//! shows each setting, its value and where it came from). The queue is
//! `--queue-url`, else `EVENTS_QUEUE_URL`, else the installed dispatcher's.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use serde_json::{Value, json};

use crate::config::{self, Config, ConfigError, Invalid, Source};
use crate::dispatch::global;
use crate::error::Chain;
use crate::listener::{ListenerInfo, Mode, RetryDefaults};
use crate::queue::{FailedJob, Queue, QueueError};
use crate::registry::{EventInfo, registry};
use crate::worker::{Worker, shutdown_signal};

/// Why a command failed.
///
/// Print it with [`CliError::report`] (what [`run`] does): clap's own
/// message for a usage mistake, `error: ` and the [`Chain`] of causes for
/// the others. Following [the crate's rule](crate::error), `Display` says
/// what failed at this layer and `source()` gives the cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The arguments did not parse (`Display` is clap's message, with
    /// usage).
    #[error(transparent)]
    Usage(#[from] clap::Error),
    /// `work --metrics-addr` was given to a program built without metrics.
    #[error(
        "--metrics-addr needs metrics: build with the `metrics` feature of `events` (or give `Commands::metrics_endpoint` an endpoint)"
    )]
    NoMetrics,
    /// The metrics endpoint could not start at the address given.
    #[error("cannot serve metrics at {addr}")]
    MetricsAddr {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `serve` was run by a program built with no server part.
    #[error(
        "nothing to serve: this build has no server part; turn on a feature of `events` that has one (`dashboard`, `metrics`, `broadcast`), or give `Commands::server` one"
    )]
    NothingToServe,
    /// `serve` could not bind its address, or its server failed.
    #[error("cannot serve at {addr}")]
    Serve {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The command needs a queue and none is configured.
    #[error(
        "no queue configured: pass --queue-url, set EVENTS_QUEUE_URL, or install a dispatcher with a queue"
    )]
    NoQueue,
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The command needs the event log and none is configured.
    #[error(
        "no event store configured: pass --store-url, set EVENTS_STORE_URL, or install a dispatcher with a store"
    )]
    NoStore,
    /// The event store failed (or its URL cannot be opened).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A replay stopped; its checkpoints stand at what it handled.
    #[error(transparent)]
    Replay(#[from] crate::store::ReplayError),
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
    /// `clear` was not confirmed: no `--force`, and no terminal to ask on.
    #[error(
        "not clearing queue `{queue}` ({waiting} waiting job(s)): there is no terminal to confirm on; pass --force to delete them"
    )]
    Unconfirmed {
        /// The queue.
        queue: String,
        /// The jobs waiting on it.
        waiting: usize,
    },
    /// Writing the output failed.
    #[error("cannot write the output")]
    Io(#[from] std::io::Error),
}

impl CliError {
    /// The exit status this error calls for: 2 for a mistake in the
    /// arguments (clap's convention; 0 for `--help` and `--version`), 0 for
    /// output into a closed pipe (the reader had what it wanted, as
    /// `head` does), 1 for anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(error) => u8::try_from(error.exit_code()).unwrap_or(2),
            CliError::Io(error) if error.kind() == std::io::ErrorKind::BrokenPipe => 0,
            _ => 1,
        }
    }

    /// Prints the error to stderr as a command line should, and returns
    /// its [exit status](CliError::exit_code): clap's own message for a
    /// usage mistake; nothing for a closed output pipe; otherwise one line,
    /// `error: ` and the error with its causes ([`Chain`]).
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::process::ExitCode {
    /// let mut out = Vec::new();
    /// let result = events::cli::Commands::new().run_to(["app", "failed"], &mut out).await;
    /// // .. use `out` ..
    /// match result {
    ///     Ok(()) => std::process::ExitCode::SUCCESS,
    ///     Err(error) => error.report(),
    /// }
    /// # }
    /// ```
    pub fn report(&self) -> ExitCode {
        // Nowhere left to say it when stderr fails too.
        let _ = self.write_report(&mut std::io::stderr().lock());
        ExitCode::from(self.exit_code())
    }

    /// What [`report`](CliError::report) prints.
    fn write_report(&self, err: &mut dyn Write) -> std::io::Result<()> {
        match self {
            CliError::Usage(error) => write!(err, "{}", error.render()),
            CliError::Io(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => writeln!(err, "error: {}", Chain(other)),
        }
    }
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
    /// The event log to use (sqlite://path, postgres://..); default:
    /// EVENTS_STORE_URL.
    #[arg(long, global = true, value_name = "URL")]
    store_url: Option<String>,
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
        /// How often the worker reports its heartbeat and counts to the
        /// queue, for the dashboard: seconds, or a duration such as 10s;
        /// 0 turns reports off [default: 5s].
        #[arg(long, value_parser = report_every, value_name = "DURATION")]
        report_every: Option<Duration>,
        /// Print no start line and no line per retried or failed job (the
        /// warnings and the summary still print).
        #[arg(long, short)]
        quiet: bool,
        /// Serve Prometheus metrics at http://ADDR/metrics while working,
        /// e.g. 127.0.0.1:9100 (needs the `metrics` feature).
        #[arg(long, value_name = "ADDR")]
        metrics_addr: Option<std::net::SocketAddr>,
    },
    /// The failed store, as a table.
    Failed {
        #[command(flatten)]
        filter: Filter,
    },
    /// Put failed jobs back on their queues, tries reset, each under a new
    /// id (printed): one id, `all`, or those --queue/--listener match.
    Retry {
        /// A failed job's id, or `all`.
        id: Option<String>,
        #[command(flatten)]
        filter: Filter,
    },
    /// Delete one failed job.
    Forget {
        /// The failed job's id.
        id: String,
    },
    /// Delete every failed job (or those --queue/--listener match).
    Flush {
        #[command(flatten)]
        filter: Filter,
    },
    /// Delete the failed jobs that failed longer ago than --older-than.
    PruneFailed {
        /// How long ago: a duration such as 7d, 12h or 90m.
        #[arg(long, value_parser = humantime::parse_duration, value_name = "AGE")]
        older_than: Duration,
        #[command(flatten)]
        filter: Filter,
    },
    /// Delete the jobs waiting on a queue, ready or delayed (jobs workers
    /// hold are left to them); asks first unless --force.
    Clear {
        /// The queue.
        queue: String,
        /// Do not ask.
        #[arg(long)]
        force: bool,
    },
    /// Ready, delayed, reserved and failed jobs per queue.
    Monitor {
        /// Print again every this often, until interrupted.
        #[arg(long, value_parser = humantime::parse_duration, value_name = "EVERY")]
        watch: Option<Duration>,
    },
    /// Events and listeners as a Mermaid flowchart.
    Graph,
    /// Replay stored events into the listeners named (projectors), each
    /// from its checkpoint; no other listener runs.
    Replay {
        /// The listeners to replay into (as `list` names them).
        #[arg(
            long = "listener",
            value_delimiter = ',',
            value_name = "LISTENERS",
            required = true
        )]
        listeners: Vec<String>,
        /// Only events of this name or pattern (repeatable).
        #[arg(long = "event", value_name = "NAME")]
        events: Vec<String>,
        /// Only events about this entity, `type:id`.
        #[arg(long, value_name = "ENTITY")]
        entity: Option<String>,
        /// Start after this position (unless a checkpoint is further on).
        #[arg(long, value_name = "POSITION")]
        from: Option<u64>,
        /// Stop at this position.
        #[arg(long, value_name = "POSITION")]
        to: Option<u64>,
        /// Ignore the checkpoints: start at --from (or the beginning).
        #[arg(long)]
        restart: bool,
        /// Count what would be replayed; run nothing, move no checkpoint.
        #[arg(long)]
        dry_run: bool,
        /// Events read per page.
        #[arg(long, default_value_t = 1000, value_name = "N")]
        batch: usize,
    },
    /// Delete stored events that occurred longer ago than --older-than.
    Prune {
        /// How long ago: a duration such as 90d, 12h or 30m.
        #[arg(long, value_parser = humantime::parse_duration, value_name = "AGE")]
        older_than: Duration,
        /// Only events of this name or pattern (repeatable).
        #[arg(long = "event", value_name = "NAME")]
        events: Vec<String>,
    },
    /// Serve every server part compiled in (the dashboard at /dashboard,
    /// Prometheus metrics at /metrics, the broadcast server at /app/{key})
    /// until SIGINT/SIGTERM.
    Serve {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// The port (0: any free one; the start line says which).
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
    /// Each setting, its value and where it came from (default,
    /// environment, flag), then the warnings.
    Config {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Which failed jobs a command takes: `*` in either matches any run of
/// characters (`--listener 'billing::*'`).
#[derive(clap::Args, Debug, Default, Clone)]
struct Filter {
    /// Only failed jobs of this queue.
    #[arg(long = "queue", value_name = "QUEUE")]
    queue: Option<String>,
    /// Only failed jobs of this listener.
    #[arg(long = "listener", value_name = "LISTENER")]
    listener: Option<String>,
}

impl Filter {
    fn is_empty(&self) -> bool {
        self.queue.is_none() && self.listener.is_none()
    }

    fn matches(&self, job: &FailedJob) -> bool {
        let hit = |pattern: &Option<String>, value: &str| {
            pattern
                .as_deref()
                .is_none_or(|p| crate::pattern::matches(p, value))
        };
        hit(&self.queue, &job.queue) && hit(&self.listener, &job.listener)
    }

    /// ` matching --queue a --listener b`, or nothing.
    fn describe(&self) -> String {
        let mut text = String::new();
        if let Some(queue) = &self.queue {
            text.push_str(&format!(" --queue {queue}"));
        }
        if let Some(listener) = &self.listener {
            text.push_str(&format!(" --listener {listener}"));
        }
        if text.is_empty() {
            text
        } else {
            format!(" matching{text}")
        }
    }
}

/// Runs the command in the process's arguments, printing to stdout, and
/// gives the exit status, having printed any error as
/// [`CliError::report`] does. `--help` prints the help and succeeds.
///
/// ```no_run
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     events::cli::run().await
/// }
/// ```
pub async fn run() -> ExitCode {
    Commands::new().run().await
}

/// Runs the command in `args` (the first is the program's name), on `queue`
/// when given, printing to stdout; warnings go to stderr.
pub async fn run_from<I, T>(args: I, queue: Option<Queue>) -> Result<(), CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut stdout = std::io::stdout();
    run_to(args, queue, &mut stdout).await
}

/// Like [`run_from`], writing to `out`: for tests and embedding. It never
/// reads the terminal: `clear` needs `--force`.
pub async fn run_to<I, T>(
    args: I,
    queue: Option<Queue>,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut commands = Commands::new();
    commands.queue = queue;
    commands.run_to(args, out).await
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
    let mut commands = Commands::new();
    commands.queue = queue;
    let mut stderr = std::io::stderr();
    let mut io = Io {
        out,
        err: &mut stderr,
        input: Input::None,
    };
    execute(args, &commands, Config::load(env), &mut io).await
}

/// Configures how a worker started by `work` is built.
type WorkerSetup = Box<dyn Fn(Worker) -> Worker + Send + Sync>;

/// What [`MetricsEndpoint::start`] gives: the observer of the worker's
/// jobs, or why the endpoint could not start.
pub type EndpointStart<'a> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<Arc<dyn crate::observe::Observer>, std::io::Error>>
            + Send
            + 'a,
    >,
>;

/// What `work --metrics-addr ADDR` starts, given by a metrics crate (the
/// facade's `metrics` feature gives one to [`run`]): it starts serving
/// metrics at `addr` and watching `queue`, and returns the observer that
/// records the worker's jobs.
pub trait MetricsEndpoint: Send + Sync + 'static {
    /// Starts the endpoint at `addr` for `queue`; an error when the
    /// address cannot be bound.
    fn start<'a>(&'a self, addr: std::net::SocketAddr, queue: &'a Queue) -> EndpointStart<'a>;
}

/// What [`Server::serve`] gives: the server running until its shutdown
/// future completes, or why it stopped.
pub type ServeFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), std::io::Error>> + Send + 'a>>;

/// What `serve` runs, given by the facade for the server parts compiled in
/// (the dashboard, metrics): HTTP lives in those crates, not here.
pub trait Server: Send + Sync + 'static {
    /// Where each part is served under `config`, for the start line
    /// (`"dashboard at /dashboard"`); `store` is the event log `serve`
    /// found, if any.
    fn parts(&self, config: &Config, store: Option<&crate::store::Store>) -> Vec<String>;

    /// Serves on `listener` for `queue` and the event log `store` (found
    /// as `replay` finds it: `--store-url`, the program's
    /// [`Commands::store`], the installed dispatcher's, `EVENTS_STORE_URL`;
    /// `None` without any), configured by `config`, until `shutdown`
    /// completes.
    fn serve<'a>(
        &'a self,
        listener: tokio::net::TcpListener,
        queue: Queue,
        store: Option<crate::store::Store>,
        config: &'a Config,
        shutdown: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>,
    ) -> ServeFuture<'a>;
}

/// The operator commands with what the application's workers need: the
/// state its queued listeners take as `State<T>`, observers, a queue.
///
/// ```no_run
/// #[derive(Clone)]
/// struct Pool;
///
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     let pool = Pool;
///     events::cli::Commands::new()
///         .version(env!("CARGO_PKG_VERSION"))
///         .state(pool)
///         .run()
///         .await
/// }
/// ```
#[derive(Default)]
#[must_use]
pub struct Commands {
    queue: Option<Queue>,
    store: Option<crate::store::Store>,
    worker: Vec<WorkerSetup>,
    version: Option<&'static str>,
    metrics: Option<Box<dyn MetricsEndpoint>>,
    server: Option<Box<dyn Server>>,
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

    /// Runs `replay` and `prune` on `store` unless `--store-url` names
    /// another.
    pub fn store(mut self, store: crate::store::Store) -> Self {
        self.store = Some(store);
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

    /// What `work --metrics-addr` starts (see [`MetricsEndpoint`]); without
    /// one, that flag is an error saying so.
    pub fn metrics_endpoint(mut self, endpoint: impl MetricsEndpoint) -> Self {
        self.metrics = Some(Box::new(endpoint));
        self
    }

    /// What `serve` runs (see [`Server`]); without one, `serve` is an
    /// error saying which features have a server part.
    pub fn server(mut self, server: impl Server) -> Self {
        self.server = Some(Box::new(server));
        self
    }

    /// The application's version, which `--version` prints
    /// (`.version(env!("CARGO_PKG_VERSION"))`). Without it there is no
    /// `--version` flag.
    pub fn version(mut self, version: &'static str) -> Self {
        self.version = Some(version);
        self
    }

    /// Runs the command in the process's arguments, printing to stdout,
    /// and gives the exit status, having printed any error as
    /// [`CliError::report`] does. `clear` asks for confirmation when stdin
    /// is a terminal.
    pub async fn run(self) -> ExitCode {
        let mut stdout = std::io::stdout();
        let mut stderr = std::io::stderr();
        let mut io = Io {
            out: &mut stdout,
            err: &mut stderr,
            input: if std::io::stdin().is_terminal() {
                Input::Terminal
            } else {
                Input::None
            },
        };
        let result = execute(std::env::args_os(), &self, Config::load_env(), &mut io).await;
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => error.report(),
        }
    }

    /// Runs the command in `args` (the first is the program's name),
    /// writing to `out` (warnings go to stderr), and returns what went
    /// wrong instead of printing it. It never reads the terminal: `clear`
    /// needs `--force`.
    pub async fn run_to<I, T>(self, args: I, out: &mut (dyn Write + Send)) -> Result<(), CliError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut stderr = std::io::stderr();
        let mut io = Io {
            out,
            err: &mut stderr,
            input: Input::None,
        };
        execute(args, &self, Config::load_env(), &mut io).await
    }
}

/// Where a command writes, and what it may read.
struct Io<'a> {
    /// Its output.
    out: &'a mut (dyn Write + Send),
    /// Warnings and prompts.
    err: &'a mut (dyn Write + Send),
    /// Where `clear` asks for confirmation.
    input: Input,
}

/// Where an answer to a prompt comes from.
enum Input {
    /// Nowhere: commands that would ask refuse instead.
    None,
    /// The process's stdin, a terminal.
    Terminal,
    /// Given lines, for tests.
    #[cfg(test)]
    Given(String),
}

impl Input {
    /// Asks `question` on `err` and reads a yes or no: `None` when there is
    /// no one to ask.
    fn confirm(&mut self, err: &mut dyn Write, question: &str) -> std::io::Result<Option<bool>> {
        let line = match self {
            Input::None => return Ok(None),
            Input::Terminal => {
                write!(err, "{question} [y/N] ")?;
                err.flush()?;
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                line
            }
            #[cfg(test)]
            Input::Given(lines) => {
                write!(err, "{question} [y/N] ")?;
                let (line, rest) = lines.split_once('\n').unwrap_or((lines.as_str(), ""));
                let line = line.to_owned();
                *lines = rest.to_owned();
                line
            }
        };
        let answer = line.trim().to_ascii_lowercase();
        Ok(Some(answer == "y" || answer == "yes"))
    }
}

/// Parses `args`, lays the flags over the configuration, and runs the
/// command. A configuration value that does not parse stops every command
/// but `config`, which shows it.
async fn execute<I, T>(
    args: I,
    commands: &Commands,
    env: (Config, Vec<Invalid>),
    io: &mut Io<'_>,
) -> Result<(), CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let result = execute_inner(args, commands, env, io).await;
    // Buffered output that cannot be written is an error too.
    result.and_then(|()| Ok(io.out.flush()?))
}

async fn execute_inner<I, T>(
    args: I,
    commands: &Commands,
    (mut config, mut problems): (Config, Vec<Invalid>),
    io: &mut Io<'_>,
) -> Result<(), CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let setup = &commands.worker[..];
    let queue = &commands.queue;
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let mut command = Cli::command();
    if let Some(version) = commands.version {
        command = command.version(version).disable_version_flag(false);
    }
    let cli = match command
        .try_get_matches_from_mut(args.iter().cloned())
        .and_then(|matches| Cli::from_arg_matches(&matches))
    {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp) => {
            write!(io.out, "{}", e.render())?;
            return Ok(());
        }
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayVersion) => {
            // `my-app 1.2.3`: the program's name (clap would print this
            // crate's).
            let program = args
                .first()
                .map(std::path::Path::new)
                .and_then(std::path::Path::file_name)
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            writeln!(io.out, "{program} {}", commands.version.unwrap_or_default())?;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let mut flags = vec![
        (config::QUEUE_URL, "--queue-url", cli.queue_url.as_deref()),
        (
            crate::store::STORE_URL,
            "--store-url",
            cli.store_url.as_deref(),
        ),
    ];
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
        return show_config(io.out, &config, &problems, *json);
    }
    let out = &mut *io.out;
    if !problems.is_empty() {
        return Err(ConfigError::new(problems).into());
    }
    let queue = || open_queue(&config, queue.as_ref());
    let store = || open_store(&config, commands.store.as_ref());
    match &cli.command {
        Command::List { json } => {
            warn_if_nothing_registered(io.err)?;
            list(out, *json, config.retry_defaults())
        }
        Command::Graph => {
            warn_if_nothing_registered(io.err)?;
            graph(out)
        }
        Command::Serve { host, port } => {
            let server = commands.server.as_ref().ok_or(CliError::NothingToServe)?;
            let store = match store() {
                Ok(store) => Some(store),
                Err(CliError::NoStore) => None,
                Err(error) => return Err(error),
            };
            serve(out, &**server, queue()?, store, &config, host, *port).await
        }
        Command::Config { .. } => Ok(()),
        Command::Work {
            queues,
            stop_when_empty,
            max_jobs,
            max_time,
            sleep,
            report_every,
            quiet,
            metrics_addr,
            ..
        } => {
            let opened = queue()?;
            let mut worker = Worker::new(opened.clone()).config(&config);
            for setup in setup {
                worker = setup(worker);
            }
            if let Some(addr) = *metrics_addr {
                let endpoint = commands.metrics.as_ref().ok_or(CliError::NoMetrics)?;
                let observer = endpoint
                    .start(addr, &opened)
                    .await
                    .map_err(|source| CliError::MetricsAddr { addr, source })?;
                worker = worker.observe(observer);
                if !quiet {
                    writeln!(out, "serving metrics at http://{addr}/metrics")?;
                }
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
            if let Some(every) = report_every {
                worker = worker.report_every(*every);
            }
            let stop = Stop {
                when_empty: *stop_when_empty,
                after: *max_time,
            };
            work(out, io.err, worker, stop, *quiet).await
        }
        Command::Replay {
            listeners,
            events,
            entity,
            from,
            to,
            restart,
            dry_run,
            batch,
        } => {
            let mut replay = store()?
                .replay()
                .batch(*batch)
                .restart(*restart)
                .dry_run(*dry_run);
            for listener in listeners {
                replay = replay.listener(listener.clone());
            }
            for event in events {
                replay = replay.name(event.clone());
            }
            if let Some(entity) = entity {
                replay = replay.entity(entity.parse()?);
            }
            if let Some(from) = from {
                replay = replay.from(*from);
            }
            if let Some(to) = to {
                replay = replay.until_position(*to);
            }
            replay_command(out, replay).await
        }
        Command::Prune { older_than, events } => {
            let mut prune = crate::store::Prune::older_than(*older_than);
            for event in events {
                prune = prune.name(event.clone());
            }
            let n = store()?.prune(&prune).await?;
            let which = if events.is_empty() {
                String::new()
            } else {
                format!(" of {}", events.join(", "))
            };
            writeln!(
                out,
                "{n} stored event(s){which} older than {} deleted",
                format_duration(*older_than)
            )?;
            Ok(())
        }
        Command::Failed { filter } => failed(out, &queue()?, filter).await,
        Command::Retry { id, filter } => retry(out, &queue()?, id.as_deref(), filter).await,
        Command::Forget { id } => {
            if queue()?.forget(id).await? {
                writeln!(out, "failed job {id} deleted")?;
                Ok(())
            } else {
                Err(CliError::NotFound(id.clone()))
            }
        }
        Command::Flush { filter } => {
            let queue = queue()?;
            let n = if filter.is_empty() {
                queue.flush_failed().await?
            } else {
                forget_where(&queue, |job| filter.matches(job)).await?
            };
            writeln!(out, "{n} failed job(s){} deleted", filter.describe())?;
            Ok(())
        }
        Command::PruneFailed { older_than, filter } => {
            let queue = queue()?;
            let before = SystemTime::now()
                .checked_sub(*older_than)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let n =
                forget_where(&queue, |job| job.failed_at < before && filter.matches(job)).await?;
            writeln!(
                out,
                "{n} failed job(s){} that failed more than {} ago deleted",
                filter.describe(),
                format_duration(*older_than)
            )?;
            Ok(())
        }
        Command::Clear { queue: name, force } => {
            clear(out, io.err, &mut io.input, &queue()?, name, *force).await
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

/// `work --report-every`: a duration as [`work_duration`] takes it, or `0`
/// (reports off).
fn report_every(value: &str) -> Result<Duration, String> {
    if value.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    work_duration(value)
}

/// When `work` stops, besides SIGINT and SIGTERM.
struct Stop {
    /// `--stop-when-empty`.
    when_empty: bool,
    /// `--max-time`.
    after: Option<Duration>,
}

/// The `serve` command: binds, prints where each part is, serves until
/// SIGINT/SIGTERM.
async fn serve(
    out: &mut (dyn Write + Send),
    server: &dyn Server,
    queue: Queue,
    store: Option<crate::store::Store>,
    config: &Config,
    host: &str,
    port: u16,
) -> Result<(), CliError> {
    let addr = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| CliError::Serve {
            addr: addr.clone(),
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| CliError::Serve {
        addr: addr.clone(),
        source,
    })?;
    writeln!(
        out,
        "serving http://{bound} ({}) for {}; stop with Ctrl-C",
        server.parts(config, store.as_ref()).join(", "),
        redact_password(queue.url())
    )?;
    out.flush()?;
    server
        .serve(
            listener,
            queue,
            store,
            config,
            Box::pin(crate::worker::shutdown_signal()),
        )
        .await
        .map_err(|source| CliError::Serve {
            addr: bound.to_string(),
            source,
        })
}

/// The `work` command: a start line, one line per retried or failed job
/// (Laravel's `queue:work` habit), then a summary that counts jobs and
/// tries apart; on `err`, a warning when the program registers no queued
/// listener and one per listener whose jobs it leaves waiting.
async fn work(
    out: &mut (dyn Write + Send),
    err: &mut dyn Write,
    mut worker: Worker,
    stop: Stop,
    quiet: bool,
) -> Result<(), CliError> {
    let has_queued = registry()
        .listeners()
        .iter()
        .any(|l| matches!(l.mode(), Mode::Queued(_)));
    if !has_queued {
        writeln!(err, "{NO_QUEUED_LISTENER}")?;
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
            Some(line) = printed.recv() => line.write(out, err)?,
        }
    };
    while let Ok(line) = printed.try_recv() {
        line.write(out, err)?;
    }
    for (listener, ids) in crate::context::lock(&set_aside).iter() {
        let text = crate::worker::unknown_listener_text(listener, Some(ids.len()));
        writeln!(err, "warning: {text}")?;
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
    lines: tokio::sync::mpsc::UnboundedSender<Line>,
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
        let _ = self.lines.send(Line::Job(format!(
            "{}  {what:<5}  {}  job {}  try {}/{}: {text}",
            format_time(SystemTime::now()),
            job.listener,
            job.id,
            job.attempt,
            job.max_tries
        )));
    }
}

/// A line `work` prints while the worker runs.
enum Line {
    /// A retried or failed job: to the output.
    Job(String),
    /// A warning: to stderr.
    Warning(String),
}

impl Line {
    fn write(self, out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<()> {
        match self {
            Line::Job(line) => writeln!(out, "{line}"),
            Line::Warning(line) => writeln!(err, "{line}"),
        }
    }
}

/// The warning of `work` in a program that registers no queued listener.
const NO_QUEUED_LISTENER: &str = "\
warning: no queued listener is registered in this program, so `work` can run no job: it leaves every job waiting, untouched.
  Listeners register themselves at link time, and a binary links only the crates it uses:
  if yours live in your application's library, add `use my_app as _;` (with your library's
  crate name) to this binary's main.rs.";

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
            let _ = self.lines.send(Line::Warning(format!("warning: {reason}")));
        }
        ids.insert(crate::queue::fnv1a(job.id.as_bytes()));
    }
}

/// The queue for commands that need one: `--queue-url`; else the queue the
/// program passed; else the global dispatcher's, when it is the one
/// `EVENTS_QUEUE_URL` names or that names none (opening the URL again would
/// give `memory://` a second, empty queue); else `EVENTS_QUEUE_URL`'s.
/// The event log `replay` and `prune` work on: `--store-url`, else the
/// store the program gave, else the installed dispatcher's, else
/// `EVENTS_STORE_URL`.
fn open_store(
    config: &Config,
    given: Option<&crate::store::Store>,
) -> Result<crate::store::Store, CliError> {
    let setting = config.get(crate::store::STORE_URL);
    let flagged = setting.filter(|s| matches!(s.source(), Source::Flag(_)));
    if let Some(setting) = flagged {
        return Ok(crate::store::Store::open(setting.value())?);
    }
    if let Some(store) = given {
        return Ok(store.clone());
    }
    if let Ok(dispatcher) = global()
        && let Some(store) = dispatcher.store()
    {
        return Ok(store.clone());
    }
    match setting {
        Some(setting) => Ok(crate::store::Store::open(setting.value())?),
        None => Err(CliError::NoStore),
    }
}

/// The `replay` command: a progress bar on a terminal's stderr, then one
/// line per listener.
async fn replay_command(out: &mut dyn Write, replay: crate::store::Replay) -> Result<(), CliError> {
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} replaying [{bar:40}] {pos}/{len} positions ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let shown = bar.clone();
    let report = replay
        .progress(move |p| {
            shown.set_length(p.last);
            shown.set_position(p.position);
        })
        .run()
        .await;
    bar.finish_and_clear();
    let report = report?;
    let verb = if report.dry_run { "would get" } else { "got" };
    for run in &report.listeners {
        writeln!(
            out,
            "{}: {verb} {} event(s), positions {}..={}",
            run.listener, run.events, run.from, run.to
        )?;
    }
    writeln!(
        out,
        "{} stored event(s) read in {} ({:.0}/s){}",
        report.read,
        format_duration(report.took),
        report.per_second(),
        if report.dry_run {
            "; dry run: nothing ran, no checkpoint moved"
        } else {
            ""
        }
    )?;
    Ok(())
}

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
/// `value` with the password of a URL's user info replaced by `***`
/// (`redis://app:secret@host` → `redis://app:***@host`); anything else as
/// it is. `config` and the dashboard show queue URLs through it.
pub fn redact_password(value: &str) -> String {
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
    if as_json {
        let value = registry_json(defaults);
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        )?;
        return Ok(());
    }
    let events = events_and_listeners();
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

/// What `list --json` prints: every event a listener hears (`name`, `type`,
/// its `listeners` in dispatch order) and every listener with its mode,
/// options (a queued one's `tries` and `backoff_ms` are what its jobs get,
/// `defaults` where it declares none), priority and source location. The
/// dashboard shows the same.
pub fn registry_json(defaults: &RetryDefaults) -> Value {
    let registry = registry();
    let events = events_and_listeners();
    json!({
        "events": events.iter().map(|(name, type_name, listeners)| json!({
            "name": name,
            "type": type_name,
            "listeners": listeners.iter().map(|l| l.name()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "listeners": registry.listeners().iter().map(|l| listener_json(l, defaults)).collect::<Vec<_>>(),
    })
}

/// Every event a listener hears with its listeners, in dispatch order.
fn events_and_listeners() -> Vec<(&'static str, &'static str, Vec<ListenerInfo>)> {
    every_event()
        .iter()
        .map(|e| {
            (
                e.name(),
                e.type_name(),
                listeners_of(e.name(), e.type_name()),
            )
        })
        .collect()
}

/// Every event a listener hears, by its type or through a wildcard, sorted
/// by name.
fn every_event() -> Vec<EventInfo> {
    let registry = registry();
    let mut events: Vec<EventInfo> = registry
        .events()
        .iter()
        .chain(registry.wildcard_only_events())
        .copied()
        .collect();
    events.sort_by(|a, b| (a.name(), a.type_name()).cmp(&(b.name(), b.type_name())));
    events
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

fn graph(out: &mut dyn Write) -> Result<(), CliError> {
    out.write_all(mermaid().as_bytes())?;
    Ok(())
}

/// What `graph` prints: a Mermaid flowchart of the registry, events on the
/// left, listeners on the right; solid arrows for sync listeners, dotted
/// for queued ones.
pub fn mermaid() -> String {
    use std::fmt::Write as _;
    let registry = registry();
    let mut out = String::from("flowchart LR\n");
    let listeners = registry.listeners();
    let events = every_event();
    for (i, e) in events.iter().enumerate() {
        let _ = writeln!(out, "    E{i}[\"{}\"]", mermaid_text(e.name()));
    }
    for (i, l) in listeners.iter().enumerate() {
        let _ = writeln!(out, "    L{i}(\"{}\")", mermaid_text(l.name()));
    }
    for (ei, e) in events.iter().enumerate() {
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
            let _ = writeln!(out, "    E{ei} {arrow}|\"{}\"| L{li}", mermaid_text(&label));
        }
    }
    out
}

/// Mermaid labels are quoted: keep quotes out of them.
fn mermaid_text(text: &str) -> String {
    text.replace('"', "#quot;")
}

/// Warns on stderr when this program registered no listener: the usual
/// cause is a binary that never names the library its listeners live in.
fn warn_if_nothing_registered(err: &mut dyn Write) -> std::io::Result<()> {
    if !registry().listeners().is_empty() {
        return Ok(());
    }
    writeln!(err, "{NOTHING_REGISTERED}")
}

/// The warning of [`warn_if_nothing_registered`].
const NOTHING_REGISTERED: &str = "\
warning: no listener is registered in this program, so there is nothing to show.
  Listeners register themselves at link time, and a binary links only the crates it uses:
  if yours live in your application's library, add `use my_app as _;` (with your library's
  crate name) to this binary's main.rs.";

/// A table: columns as wide as their widest cell, two spaces apart, the
/// `right`-aligned ones for numbers; the last column is not padded.
fn table(
    out: &mut dyn Write,
    header: &[&str],
    right: &[bool],
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|row| row[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            let last = i + 1 == row.len();
            if right[i] {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                if !last {
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// The failed store (what `filter` matches) as a table.
async fn failed(out: &mut dyn Write, queue: &Queue, filter: &Filter) -> Result<(), CliError> {
    let all = queue.failed().await?;
    let total = all.len();
    let failed: Vec<FailedJob> = all.into_iter().filter(|j| filter.matches(j)).collect();
    if failed.is_empty() {
        if total == 0 {
            writeln!(out, "no failed jobs")?;
        } else {
            writeln!(
                out,
                "no failed jobs{} ({total} in the store)",
                filter.describe()
            )?;
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = failed
        .iter()
        .map(|job| {
            vec![
                job.id.clone(),
                job.queue.clone(),
                job.listener.clone(),
                format!("{}/{}", job.attempts, job.max_tries),
                format_time(job.failed_at),
                // One line per job.
                job.error.replace('\n', "\\n"),
            ]
        })
        .collect();
    table(
        out,
        &["ID", "QUEUE", "LISTENER", "TRIES", "FAILED AT", "ERROR"],
        &[false; 6],
        &rows,
    )?;
    Ok(())
}

/// `retry`: one failed job by id, or every one `all` or the filter takes,
/// printing each new id.
async fn retry(
    out: &mut dyn Write,
    queue: &Queue,
    id: Option<&str>,
    filter: &Filter,
) -> Result<(), CliError> {
    use clap::error::ErrorKind;
    match id {
        Some(id) if id != "all" && !filter.is_empty() => {
            return Err(Cli::command()
                .error(
                    ErrorKind::ArgumentConflict,
                    format!(
                        "`retry {id}` names one failed job; --queue and --listener choose among \
                         all of them: give either the id, or `all` with the filters"
                    ),
                )
                .into());
        }
        Some(id) if id != "all" => {
            let Some(new_id) = queue.retry(id).await? else {
                return Err(CliError::NotFound(id.to_owned()));
            };
            writeln!(out, "failed job {id} put back on its queue as {new_id}")?;
            return Ok(());
        }
        None if filter.is_empty() => {
            return Err(Cli::command()
                .error(
                    ErrorKind::MissingRequiredArgument,
                    "retry what? give a failed job's id, `all`, or --queue/--listener",
                )
                .into());
        }
        _ => {}
    }
    let mut count = 0;
    for job in queue.failed().await? {
        if !filter.matches(&job) {
            continue;
        }
        // Gone meanwhile (retried or forgotten by someone else): skipped.
        if let Some(new_id) = queue.retry(&job.id).await? {
            writeln!(
                out,
                "failed job {} put back on queue `{}` as {new_id}",
                job.id, job.queue
            )?;
            count += 1;
        }
    }
    writeln!(
        out,
        "{count} failed job(s){} put back on their queues",
        filter.describe()
    )?;
    Ok(())
}

/// Forgets the failed jobs `keep` picks; returns how many.
async fn forget_where(queue: &Queue, pick: impl Fn(&FailedJob) -> bool) -> Result<usize, CliError> {
    let mut count = 0;
    for job in queue.failed().await? {
        if pick(&job) && queue.forget(&job.id).await? {
            count += 1;
        }
    }
    Ok(count)
}

/// `clear`: deletes the jobs waiting on `name`, once confirmed.
async fn clear(
    out: &mut dyn Write,
    err: &mut dyn Write,
    input: &mut Input,
    queue: &Queue,
    name: &str,
    force: bool,
) -> Result<(), CliError> {
    let stats = queue.stats().await?;
    let stats = stats.iter().find(|s| s.queue == name);
    let waiting = stats.map_or(0, |s| s.pending);
    if waiting == 0 {
        writeln!(out, "queue `{name}` has no waiting job: nothing deleted")?;
        return Ok(());
    }
    if !force {
        let delayed = stats.map_or(0, |s| s.delayed);
        let question = format!(
            "delete the {waiting} job(s) waiting on queue `{name}` ({} ready, {delayed} delayed)? this cannot be undone",
            waiting - delayed
        );
        match input.confirm(err, &question)? {
            Some(true) => {}
            Some(false) => {
                writeln!(out, "nothing deleted")?;
                return Ok(());
            }
            None => {
                return Err(CliError::Unconfirmed {
                    queue: name.to_owned(),
                    waiting,
                });
            }
        }
    }
    let deleted = queue.clear(name).await?;
    write!(out, "{deleted} waiting job(s) deleted from queue `{name}`")?;
    match stats.map_or(0, |s| s.reserved) {
        0 => writeln!(out)?,
        held => writeln!(out, "; {held} held by workers left to them")?,
    }
    Ok(())
}

fn format_time(at: SystemTime) -> String {
    crate::time::rfc3339_seconds(at)
}

/// Per queue: jobs ready to run, delayed (a `delay`, a backoff), held by
/// workers, and failed.
async fn monitor(out: &mut dyn Write, queue: &Queue) -> Result<(), CliError> {
    let stats = queue.stats().await?;
    let rows: Vec<Vec<String>> = stats
        .iter()
        .map(|s| {
            vec![
                s.queue.clone(),
                s.pending.saturating_sub(s.delayed).to_string(),
                s.delayed.to_string(),
                s.reserved.to_string(),
                s.failed.to_string(),
            ]
        })
        .collect();
    table(
        out,
        &["QUEUE", "READY", "DELAYED", "RESERVED", "FAILED"],
        &[false, true, true, true, true],
        &rows,
    )?;
    if stats.is_empty() {
        writeln!(out, "(no jobs)")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `args` with no environment, writing to buffers; `input` answers
    /// prompts. Returns the result, stdout and stderr.
    async fn run(
        commands: &Commands,
        args: &[&str],
        input: Input,
    ) -> (Result<(), CliError>, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut io = Io {
            out: &mut out,
            err: &mut err,
            input,
        };
        let argv = std::iter::once("app").chain(args.iter().copied());
        let env = Config::load(std::iter::empty::<(String, Result<String, String>)>());
        let result = execute(argv, commands, env, &mut io).await;
        (
            result,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    // This crate's own test binary links no listener: the situation of an
    // application binary that never names the library its listeners are in.
    #[tokio::test]
    async fn list_and_graph_warn_loudly_when_no_listener_is_registered() {
        assert!(registry().listeners().is_empty());
        for command in [&["list"][..], &["list", "--json"], &["graph"]] {
            let (result, out, err) = run(&Commands::new(), command, Input::None).await;
            result.unwrap();
            assert_eq!(err, format!("{NOTHING_REGISTERED}\n"), "{command:?}");
            assert!(
                err.contains("add `use my_app as _;`"),
                "the warning says the fix"
            );
            assert!(!out.contains("warning"), "stdout stays clean: {out}");
        }
        let json: Value = serde_json::from_str(
            &run(&Commands::new(), &["list", "--json"], Input::None)
                .await
                .1,
        )
        .unwrap();
        assert_eq!(json["listeners"], json!([]));
    }

    // No queued listener either: `work` says so, and leaves the jobs.
    #[tokio::test]
    async fn work_without_queued_listeners_warns_and_leaves_every_job_waiting() {
        let queue = Queue::memory();
        for n in 0..2 {
            let mut job = crate::queue::Job::from_parts(
                format!("job-{n}"),
                "default",
                "my_app::send_receipt",
                "order.placed",
                "{}",
                crate::envelope::Envelope::new(),
            );
            job.available_at = SystemTime::now();
            queue.enqueue(job).await.unwrap();
        }
        let commands = Commands::new().queue(queue.clone());
        let args = ["work", "--stop-when-empty", "--quiet"];
        let (result, out, err) = run(&commands, &args, Input::None).await;
        result.unwrap();
        let cause = "no listener of that name is registered in this program, so they wait for a worker that has it (likely causes: this binary does not link the library that defines it, or the listener was renamed and its old jobs keep the old name)";
        assert_eq!(
            err,
            format!(
                "{NO_QUEUED_LISTENER}\n\
                 warning: jobs for listener `my_app::send_receipt` left waiting, untouched: {cause}\n\
                 warning: 2 job(s) for listener `my_app::send_receipt` left waiting, untouched: {cause}\n"
            )
        );
        assert!(
            err.contains("add `use my_app as _;`"),
            "the warning says the fix"
        );
        assert_eq!(
            out,
            "finished 0 job(s) in 0 tries: 0 succeeded, 0 failed, 0 tries retried; 0 lost their lease, 0 handed back; 2 job(s) left waiting for a listener this program does not have\n"
        );
        assert_eq!(queue.size("default").await.unwrap(), 2, "the jobs wait");
        assert!(queue.failed().await.unwrap().is_empty(), "nothing failed");
    }

    async fn queue_with_waiting_jobs() -> Queue {
        let queue = Queue::memory();
        for n in 0..2 {
            let job = crate::queue::Job::from_parts(
                format!("job-{n}"),
                "bulk",
                "app::x",
                "e",
                "{}",
                crate::Envelope::new(),
            );
            queue.enqueue(job).await.unwrap();
        }
        queue
    }

    #[tokio::test]
    async fn clear_asks_on_a_terminal_and_deletes_only_on_yes() {
        let queue = queue_with_waiting_jobs().await;
        let commands = Commands::new().queue(queue.clone());
        let (result, out, err) =
            run(&commands, &["clear", "bulk"], Input::Given("n\n".into())).await;
        result.unwrap();
        assert_eq!(
            err,
            "delete the 2 job(s) waiting on queue `bulk` (2 ready, 0 delayed)? this cannot be undone [y/N] "
        );
        assert_eq!(out, "nothing deleted\n");
        assert_eq!(queue.size("bulk").await.unwrap(), 2);

        // Anything but yes is no.
        let (result, out, _) = run(&commands, &["clear", "bulk"], Input::Given("\n".into())).await;
        result.unwrap();
        assert_eq!(out, "nothing deleted\n");
        assert_eq!(queue.size("bulk").await.unwrap(), 2);

        let (result, out, _) = run(&commands, &["clear", "bulk"], Input::Given("y\n".into())).await;
        result.unwrap();
        assert_eq!(out, "2 waiting job(s) deleted from queue `bulk`\n");
        assert_eq!(queue.size("bulk").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn clear_without_a_terminal_refuses_unless_forced() {
        let queue = queue_with_waiting_jobs().await;
        let commands = Commands::new().queue(queue.clone());
        let (result, out, err) = run(&commands, &["clear", "bulk"], Input::None).await;
        assert!(matches!(
            result,
            Err(CliError::Unconfirmed { waiting: 2, .. })
        ));
        assert_eq!((out.as_str(), err.as_str()), ("", ""), "no prompt");
        assert_eq!(queue.size("bulk").await.unwrap(), 2);
        let (result, out, _) = run(&commands, &["clear", "bulk", "--force"], Input::None).await;
        result.unwrap();
        assert_eq!(out, "2 waiting job(s) deleted from queue `bulk`\n");
    }

    #[test]
    fn errors_are_reported_with_their_causes_and_status() {
        let mut err = Vec::new();
        let error = CliError::Queue(QueueError::backend(
            "sqlite",
            std::io::Error::other("database or disk is full"),
        ));
        error.write_report(&mut err).unwrap();
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "error: the sqlite queue failed: database or disk is full\n"
        );
        assert_eq!(error.exit_code(), 1);
        let pipe = CliError::Io(std::io::ErrorKind::BrokenPipe.into());
        let mut err = Vec::new();
        pipe.write_report(&mut err).unwrap();
        assert_eq!((err.len(), pipe.exit_code()), (0, 0));
    }
}
