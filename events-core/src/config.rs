//! Configuration from the environment: the `EVENTS_*` variables, their
//! defaults, and where each value came from.
//!
//! [`Config::from_env`] reads every registered variable. The core's own are
//! below ([`ENABLED`], [`QUEUE_URL`], ...); a capability crate registers its
//! own at link time with `inventory::submit!` of a [`Var`], and reads the raw
//! value back with [`Config::get`] to parse it itself:
//!
//! ```
//! use events::config::{Config, Source, Var};
//!
//! inventory::submit! {
//!     Var::new("EVENTS_EXAMPLE_APP_KEY", "The example capability's key.")
//!         .with_default("local")
//!         .aliases(&["EXAMPLE_APP_KEY"])
//! }
//!
//! let config = Config::from_vars([("EXAMPLE_APP_KEY", "k-123")])?;
//! let key = config.get("EVENTS_EXAMPLE_APP_KEY").expect("registered, with a default");
//! assert_eq!(key.value(), "k-123");
//! assert_eq!(key.source(), Source::Env("EXAMPLE_APP_KEY"));
//! # Ok::<(), events::config::ConfigError>(())
//! ```
//!
//! An empty value counts as unset (as `FOO=` in a compose file usually
//! means). A value that does not parse is an error naming the variable, the
//! value and what was expected, every one of them at once; an unknown
//! `EVENTS_*` variable is a [`ConfigWarning`], logged and kept in
//! [`Config::warnings`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::listener::RetryDefaults;

/// `EVENTS_ENABLED`: `false` turns dispatching off (see [`Config::enabled`]).
pub const ENABLED: &str = "EVENTS_ENABLED";
/// `EVENTS_QUEUE_URL`: the queue of the default dispatcher and the CLI.
pub const QUEUE_URL: &str = "EVENTS_QUEUE_URL";
/// `EVENTS_DEFAULT_QUEUE`: what a worker works when nothing names a queue.
pub const DEFAULT_QUEUE: &str = "EVENTS_DEFAULT_QUEUE";
/// `EVENTS_RETRY_ATTEMPTS`: tries of queued listeners that declare none.
pub const RETRY_ATTEMPTS: &str = "EVENTS_RETRY_ATTEMPTS";
/// `EVENTS_RETRY_DELAY_SECONDS`: backoff of queued listeners that declare
/// none.
pub const RETRY_DELAY_SECONDS: &str = "EVENTS_RETRY_DELAY_SECONDS";
/// `EVENTS_TIMEOUT`: the worker's timeout for listeners that declare none.
pub const TIMEOUT: &str = "EVENTS_TIMEOUT";
/// `EVENTS_WORKER_CONCURRENCY`: how many jobs a worker runs at once.
pub const WORKER_CONCURRENCY: &str = "EVENTS_WORKER_CONCURRENCY";

/// The prefix of every variable this framework reads; unknown names with it
/// are warned about.
pub const PREFIX: &str = "EVENTS_";

inventory::submit! {
    Var::new(ENABLED, "`false` turns events off: dispatches run no listener, enqueue no job and are recorded nowhere (fakes in tests still record).")
        .with_default("true")
}
inventory::submit! {
    Var::new(QUEUE_URL, "The queue queued listeners' jobs go to (`memory://`, `sqlite://path`); unset: they run in-process.")
}
inventory::submit! {
    Var::new(DEFAULT_QUEUE, "The queue a worker works when none is chosen (`work --queue`) and no queued listener or stored job names one.")
        .with_default("default")
}
inventory::submit! {
    Var::new(RETRY_ATTEMPTS, "Tries of a queued listener that sets no `tries`.")
        .with_default("1")
}
inventory::submit! {
    Var::new(RETRY_DELAY_SECONDS, "Seconds before each retry of a queued listener that sets no `backoff`: one number, or a list such as `1,5,15` whose last value repeats.")
        .with_default("0")
}
inventory::submit! {
    Var::new(TIMEOUT, "The worker's timeout for listeners that set no `timeout`: seconds, or a duration such as `90s`, `2m`.")
        .with_default("60s")
}
inventory::submit! {
    Var::new(WORKER_CONCURRENCY, "How many jobs a worker runs at once.")
        .with_default("1")
}

/// A configuration variable: its name, default, meaning, and other names it
/// is also read from. Registered at link time with `inventory::submit!`
/// (see the [module](self) example); every registered variable is known to
/// [`Config`], shown by the CLI's `config` command, and not warned about.
///
/// Built with `const fn`s, so registration data stays static.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var {
    name: &'static str,
    default: Option<&'static str>,
    help: &'static str,
    aliases: &'static [&'static str],
    secret: bool,
}

inventory::collect!(Var);

impl Var {
    /// A variable with no default, read from `name` only.
    pub const fn new(name: &'static str, help: &'static str) -> Var {
        Var {
            name,
            default: None,
            help,
            aliases: &[],
            secret: false,
        }
    }

    /// Its value when the environment sets none.
    pub const fn with_default(self, value: &'static str) -> Var {
        Var {
            default: Some(value),
            ..self
        }
    }

    /// Other names the variable is read from when `name` is unset, in order
    /// (for example `REVERB_APP_KEY` for `EVENTS_BROADCAST_APP_KEY`). When
    /// both are set, `name` wins and a warning says so.
    pub const fn aliases(self, names: &'static [&'static str]) -> Var {
        Var {
            aliases: names,
            ..self
        }
    }

    /// Marks the value as a secret: the CLI's `config` shows that it is set,
    /// never what it is.
    pub const fn secret(self) -> Var {
        Var {
            secret: true,
            ..self
        }
    }

    /// The variable's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its default, if it has one.
    pub fn default_value(&self) -> Option<&'static str> {
        self.default
    }

    /// What it means, in a sentence.
    pub fn help(&self) -> &'static str {
        self.help
    }

    /// The other names it is read from.
    pub fn alias_names(&self) -> &'static [&'static str] {
        self.aliases
    }

    /// Whether its value is a secret.
    pub fn is_secret(&self) -> bool {
        self.secret
    }
}

/// Every registered variable, sorted by name; a name registered twice is
/// listed once (the first registration in name order wins).
///
/// ```
/// let names: Vec<&str> = events::config::vars().iter().map(|v| v.name()).collect();
/// assert!(names.contains(&"EVENTS_QUEUE_URL"));
/// ```
pub fn vars() -> Vec<&'static Var> {
    let mut vars: Vec<&'static Var> = inventory::iter::<Var>.into_iter().collect();
    // Sort by everything, so that which duplicate is kept does not depend on
    // link order.
    vars.sort_by_key(|v| (v.name, v.default, v.help));
    vars.dedup_by_key(|v| v.name);
    vars
}

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// The variable's default: nothing set it.
    Default,
    /// The environment, through this variable (the name or an alias).
    Env(&'static str),
    /// A command-line flag, such as `--queue-url`.
    Flag(&'static str),
}

impl Source {
    /// `"default"`, `"env"` or `"flag"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::Env(_) => "env",
            Source::Flag(_) => "flag",
        }
    }

    /// The variable or flag that set the value; `None` for a default.
    pub fn origin(&self) -> Option<&'static str> {
        match self {
            Source::Default => None,
            Source::Env(name) | Source::Flag(name) => Some(name),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Env(name) => write!(f, "env {name}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A variable's raw value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    value: String,
    source: Source,
}

impl Setting {
    /// The value as given (trimmed).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Where it came from.
    pub fn source(&self) -> Source {
        self.source
    }
}

/// A value that does not parse: which variable (or flag), the value, and
/// what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} is `{value}`, expected {expected}", Described(.variable, .origin))]
pub struct Invalid {
    variable: &'static str,
    origin: Source,
    value: String,
    expected: String,
}

/// How an invalid value names what set it: the variable, the alias it was
/// read through, or the flag.
struct Described<'a>(&'a &'static str, &'a Source);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Source::Env(name) if name == self.0 => f.write_str(name),
            Source::Env(alias) => write!(f, "{alias} (read as {})", self.0),
            Source::Flag(flag) => write!(f, "{flag} (for {})", self.0),
            Source::Default => write!(f, "the default of {}", self.0),
        }
    }
}

impl Invalid {
    /// A value of `variable`, from `source`, that is not what was
    /// `expected` (words such as "a whole number of seconds"): for
    /// capability crates parsing their own variables.
    pub fn new(variable: &'static str, setting: &Setting, expected: impl Into<String>) -> Invalid {
        Invalid {
            variable,
            origin: setting.source,
            value: setting.value.clone(),
            expected: expected.into(),
        }
    }

    /// The variable.
    pub fn variable(&self) -> &'static str {
        self.variable
    }

    /// Where the value came from.
    pub fn origin(&self) -> Source {
        self.origin
    }

    /// The value.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// What was expected, in words.
    pub fn expected(&self) -> &str {
        &self.expected
    }
}

/// Why a configuration could not be read: every value that does not parse.
///
/// ```
/// let error = events::Config::from_vars([
///     ("EVENTS_ENABLED", "flase"),
///     ("EVENTS_TIMEOUT", "soon"),
/// ])
/// .unwrap_err();
/// assert_eq!(error.problems().len(), 2);
/// assert!(error.to_string().contains("EVENTS_ENABLED is `flase`, expected a boolean"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    problems: Vec<Invalid>,
}

impl ConfigError {
    /// An error of these problems (at least one).
    pub fn new(problems: Vec<Invalid>) -> ConfigError {
        ConfigError { problems }
    }

    /// Each value that does not parse, in variable-name order.
    pub fn problems(&self) -> &[Invalid] {
        &self.problems
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "invalid configuration: {one}"),
            many => {
                write!(f, "invalid configuration ({} values):", many.len())?;
                for (i, problem) in many.iter().enumerate() {
                    let sep = if i == 0 { " " } else { "; " };
                    write!(f, "{sep}{problem}")?;
                }
                Ok(())
            }
        }
    }
}

// `Display` lists every problem, so there is no further source.
impl std::error::Error for ConfigError {}

/// Something in the environment that is probably a mistake, but not an
/// error.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigWarning {
    /// An `EVENTS_*` variable no registered [`Var`] has: a typo, or a
    /// capability that is not compiled in.
    Unknown {
        /// The variable as set.
        name: String,
        /// The closest registered name, when one is close.
        nearest: Option<&'static str>,
    },
    /// A variable and one of its aliases are both set; the variable wins.
    Shadowed {
        /// The variable that is used.
        name: &'static str,
        /// The alias that is ignored.
        alias: &'static str,
    },
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigWarning::Unknown {
                name,
                nearest: Some(nearest),
            } => write!(f, "unknown variable {name}: did you mean {nearest}?"),
            ConfigWarning::Unknown {
                name,
                nearest: None,
            } => write!(
                f,
                "unknown variable {name}: no registered variable has that name (is the capability that reads it compiled in?)"
            ),
            ConfigWarning::Shadowed { name, alias } => {
                write!(f, "{alias} is ignored: {name} is set too, and wins")
            }
        }
    }
}

/// The framework's settings: the typed core values, the raw value of every
/// registered variable, where each came from, and the warnings.
///
/// | variable | default | |
/// |---|---|---|
/// | `EVENTS_ENABLED` | `true` | [`enabled`](Self::enabled) |
/// | `EVENTS_QUEUE_URL` | unset | [`queue_url`](Self::queue_url) |
/// | `EVENTS_DEFAULT_QUEUE` | `default` | [`default_queue`](Self::default_queue) |
/// | `EVENTS_RETRY_ATTEMPTS` | `1` | [`retry_defaults`](Self::retry_defaults) |
/// | `EVENTS_RETRY_DELAY_SECONDS` | `0` | [`retry_defaults`](Self::retry_defaults) |
/// | `EVENTS_TIMEOUT` | `60s` | [`timeout`](Self::timeout) |
/// | `EVENTS_WORKER_CONCURRENCY` | `1` | [`worker_concurrency`](Self::worker_concurrency) |
///
/// ```
/// use events::Config;
/// use events::config::Source;
/// use std::time::Duration;
///
/// let config = Config::from_vars([
///     ("EVENTS_RETRY_ATTEMPTS", "3"),
///     ("EVENTS_RETRY_DELAY_SECONDS", "1,5,15"),
///     ("EVENTS_TIMEOUT", "2m"),
/// ])?;
/// assert_eq!(config.retry_defaults().tries(), 3);
/// assert_eq!(config.retry_defaults().backoff()[2], Duration::from_secs(15));
/// assert_eq!(config.timeout(), Duration::from_secs(120));
/// assert_eq!(config.get("EVENTS_TIMEOUT").unwrap().source(), Source::Env("EVENTS_TIMEOUT"));
/// assert_eq!(config.get("EVENTS_WORKER_CONCURRENCY").unwrap().source(), Source::Default);
/// assert!(config.enabled());
/// # Ok::<(), events::config::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Every registered variable that is set or has a default.
    settings: BTreeMap<&'static str, Setting>,
    enabled: bool,
    queue_url: Option<String>,
    default_queue: String,
    retry: RetryDefaults,
    timeout: Duration,
    concurrency: usize,
    warnings: Vec<ConfigWarning>,
}

impl Default for Config {
    /// Every variable at its default, as with an empty environment.
    fn default() -> Self {
        let mut config = Config {
            settings: BTreeMap::new(),
            enabled: true,
            queue_url: None,
            default_queue: "default".to_owned(),
            retry: RetryDefaults::default(),
            timeout: Duration::from_secs(60),
            concurrency: 1,
            warnings: Vec::new(),
        };
        for var in vars() {
            if let Some(value) = var.default {
                // The registered defaults are the one place the defaults are
                // written; a unit test parses each of them.
                let applied = config.apply(var.name, value, Source::Default);
                debug_assert!(applied.is_ok(), "{applied:?}");
            }
        }
        config
    }
}

impl Config {
    /// Reads the process environment. See [`from_vars`](Self::from_vars).
    pub fn from_env() -> Result<Config, ConfigError> {
        let (config, problems) = Config::load_env();
        config.or_problems(problems)
    }

    /// [`load`](Self::load) on the process environment (names that are not
    /// UTF-8 are none of ours).
    pub(crate) fn load_env() -> (Config, Vec<Invalid>) {
        Config::load(std::env::vars_os().filter_map(|(name, value)| {
            let name = name.into_string().ok()?;
            let value = value
                .into_string()
                .map_err(|v| v.to_string_lossy().into_owned());
            Some((name, value))
        }))
    }

    /// Reads the variables in `vars` as if they were the environment: for
    /// tests, which then never touch the process environment.
    ///
    /// # Errors
    ///
    /// Every value that does not parse, each naming its variable, the value
    /// and what was expected.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let (config, problems) = Config::load(
            vars.into_iter()
                .map(|(k, v)| (k.as_ref().to_owned(), Ok(v.as_ref().to_owned()))),
        );
        config.or_problems(problems)
    }

    fn or_problems(self, problems: Vec<Invalid>) -> Result<Config, ConfigError> {
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(ConfigError::new(problems))
        }
    }

    /// Reads `vars` (a value that is not UTF-8 comes as `Err` with its lossy
    /// text): the configuration, with defaults kept where a value did not
    /// parse, and the values that did not. Logs the warnings.
    pub(crate) fn load(
        pairs: impl IntoIterator<Item = (String, Result<String, String>)>,
    ) -> (Config, Vec<Invalid>) {
        let registered = vars();
        let mut by_name: BTreeMap<&'static str, Result<String, String>> = BTreeMap::new();
        let mut unknown = Vec::new();
        for (name, value) in pairs {
            let known = registered
                .iter()
                .flat_map(|v| std::iter::once(v.name).chain(v.aliases.iter().copied()))
                .find(|known| *known == name);
            match known {
                Some(known) => {
                    by_name.insert(known, value);
                }
                None if name.starts_with(PREFIX) => unknown.push(name),
                None => {}
            }
        }
        // The environment's order is arbitrary: report in name order.
        unknown.sort();
        let mut warnings: Vec<ConfigWarning> = unknown
            .into_iter()
            .map(|name| {
                let nearest = nearest(&name, registered.iter().map(|v| v.name));
                ConfigWarning::Unknown { name, nearest }
            })
            .collect();
        let mut config = Config::default();
        let mut problems = Vec::new();
        for var in &registered {
            let mut set = std::iter::once(var.name)
                .chain(var.aliases.iter().copied())
                .filter_map(|n| match by_name.get(n) {
                    Some(Ok(v)) if v.trim().is_empty() => None,
                    Some(value) => Some((n, value)),
                    None => None,
                });
            let Some((from, value)) = set.next() else {
                continue;
            };
            for (alias, _) in set {
                warnings.push(ConfigWarning::Shadowed { name: from, alias });
            }
            let result = match value {
                Ok(value) => config.apply(var.name, value, Source::Env(from)),
                Err(lossy) => Err(Invalid {
                    variable: var.name,
                    origin: Source::Env(from),
                    value: lossy.clone(),
                    expected: "valid UTF-8".to_owned(),
                }),
            };
            if let Err(problem) = result {
                problems.push(problem);
            }
        }
        for warning in &warnings {
            tracing::warn!("{warning}");
        }
        config.warnings = warnings;
        (config, problems)
    }

    /// Sets `variable` from a command-line `flag`, as if the environment had
    /// set it (the same parsing, the same words when it does not parse);
    /// its source is then [`Source::Flag`].
    ///
    /// ```
    /// use events::Config;
    /// use events::config::{Source, WORKER_CONCURRENCY};
    ///
    /// let mut config = Config::from_vars([("EVENTS_WORKER_CONCURRENCY", "2")])?;
    /// config.set_flag(WORKER_CONCURRENCY, "--concurrency", "8")?;
    /// assert_eq!(config.worker_concurrency(), 8);
    /// assert_eq!(config.get(WORKER_CONCURRENCY).unwrap().source(), Source::Flag("--concurrency"));
    ///
    /// let error = config.set_flag(WORKER_CONCURRENCY, "--concurrency", "many").unwrap_err();
    /// assert_eq!(
    ///     error.to_string(),
    ///     "invalid configuration: --concurrency (for EVENTS_WORKER_CONCURRENCY) is `many`, expected a whole number of at least 1"
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_flag(
        &mut self,
        variable: &'static str,
        flag: &'static str,
        value: &str,
    ) -> Result<(), ConfigError> {
        self.apply(variable, value, Source::Flag(flag))
            .map_err(|problem| ConfigError::new(vec![problem]))
    }

    /// Parses `value` for `variable` into the typed field it sets (if any),
    /// and records it; on error, changes nothing.
    fn apply(
        &mut self,
        variable: &'static str,
        value: &str,
        source: Source,
    ) -> Result<(), Invalid> {
        let value = value.trim();
        let invalid = |expected: &str| Invalid {
            variable,
            origin: source,
            value: value.to_owned(),
            expected: expected.to_owned(),
        };
        match variable {
            ENABLED => {
                self.enabled = parse_bool(value).ok_or_else(|| {
                    invalid("a boolean: true or false (also 1/0, yes/no, on/off)")
                })?;
            }
            QUEUE_URL => self.queue_url = Some(value.to_owned()),
            DEFAULT_QUEUE => self.default_queue = value.to_owned(),
            RETRY_ATTEMPTS => {
                let tries = parse_count(value)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| invalid("a whole number of tries, at least 1"))?;
                self.retry = RetryDefaults::new(tries, self.retry.backoff().iter().copied());
            }
            RETRY_DELAY_SECONDS => {
                let backoff = parse_seconds_list(value).ok_or_else(|| {
                    invalid(
                        "whole seconds, or a comma list such as `1,5,15` (the last value repeats)",
                    )
                })?;
                self.retry = RetryDefaults::new(self.retry.tries(), backoff);
            }
            TIMEOUT => {
                self.timeout = parse_duration(value).ok_or_else(|| {
                    invalid("seconds, or a duration such as `90s` or `2m`, longer than zero")
                })?;
            }
            WORKER_CONCURRENCY => {
                self.concurrency =
                    parse_count(value).ok_or_else(|| invalid("a whole number of at least 1"))?;
            }
            _ => {}
        }
        self.settings.insert(
            variable,
            Setting {
                value: value.to_owned(),
                source,
            },
        );
        Ok(())
    }

    /// Whether events are on (`EVENTS_ENABLED`, default `true`). Off, a
    /// dispatcher configured with this config (the default global one
    /// included) runs no listener, enqueues no job and records nothing: a
    /// kill switch. Fakes in tests still record. Workers keep working what
    /// is already queued.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The queue URL (`EVENTS_QUEUE_URL`, or the CLI's `--queue-url`);
    /// `None`: queued listeners run in-process.
    pub fn queue_url(&self) -> Option<&str> {
        self.queue_url.as_deref()
    }

    /// The queue a worker works when none is chosen and no registered
    /// queued listener or stored job names one (`EVENTS_DEFAULT_QUEUE`,
    /// default `default`).
    ///
    /// Laravel's default queue is also where jobs that name no queue go;
    /// here every queued listener names its queue (`queue = ".."` is what
    /// makes it queued), so only the worker's fallback is left of it.
    pub fn default_queue(&self) -> &str {
        &self.default_queue
    }

    /// Tries and backoff for queued listeners that declare none
    /// (`EVENTS_RETRY_ATTEMPTS`, `EVENTS_RETRY_DELAY_SECONDS`).
    pub fn retry_defaults(&self) -> &RetryDefaults {
        &self.retry
    }

    /// The worker's timeout for listeners that declare none
    /// (`EVENTS_TIMEOUT`, default 60 s).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How many jobs a worker runs at once (`EVENTS_WORKER_CONCURRENCY`,
    /// default 1).
    pub fn worker_concurrency(&self) -> usize {
        self.concurrency
    }

    /// The raw value of a registered variable and its source: what the
    /// environment or a flag set, else its default; `None` when it is unset
    /// and has no default (or is not registered).
    pub fn get(&self, variable: &str) -> Option<&Setting> {
        self.settings.get(variable)
    }

    /// Every registered variable with its setting (`None`: unset, no
    /// default), sorted by name.
    pub fn settings(&self) -> impl Iterator<Item = (&'static Var, Option<&Setting>)> + '_ {
        vars()
            .into_iter()
            .map(|var| (var, self.settings.get(var.name)))
    }

    /// What looked wrong but was not an error: unknown `EVENTS_*` variables
    /// (with the nearest known name), aliases shadowed by their variable.
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A whole number of at least 1.
fn parse_count(value: &str) -> Option<usize> {
    value.parse::<usize>().ok().filter(|n| *n >= 1)
}

/// `5`, or `1,5,15` (spaces allowed around the commas): whole seconds.
fn parse_seconds_list(value: &str) -> Option<Vec<Duration>> {
    value
        .split(',')
        .map(|part| part.trim().parse::<u64>().ok().map(Duration::from_secs))
        .collect()
}

/// Whole seconds (`90`), or a duration (`90s`, `2m`, `1m 30s`, `250ms`);
/// longer than zero.
fn parse_duration(value: &str) -> Option<Duration> {
    let duration = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(value).ok()?,
    };
    (!duration.is_zero()).then_some(duration)
}

/// The known name closest to `name` by edit distance (after the shared
/// `EVENTS_` prefix, ignoring case), if it is close: at most a third of the
/// name's length, and at most 3 edits. Ties go to the first in name order.
pub(crate) fn nearest(
    name: &str,
    known: impl Iterator<Item = &'static str>,
) -> Option<&'static str> {
    let tail = |n: &str| {
        n.strip_prefix(PREFIX)
            .unwrap_or(n)
            .to_ascii_uppercase()
            .into_bytes()
    };
    let wanted = tail(name);
    let limit = (wanted.len() / 3).clamp(1, 3);
    known
        .map(|candidate| (edit_distance(&wanted, &tail(candidate)), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min()
        .map(|(_, candidate)| candidate)
}

/// Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`:
/// the optimal string alignment distance.
fn edit_distance(a: &[u8], b: &[u8]) -> usize {
    // Three rows: the one before the previous (for swaps), the previous,
    // the current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Config {
        Config::from_vars(vars.iter().copied()).expect("valid")
    }

    fn error(vars: &[(&str, &str)]) -> ConfigError {
        Config::from_vars(vars.iter().copied()).expect_err("invalid")
    }

    #[test]
    fn defaults_with_an_empty_environment() {
        let c = config(&[]);
        assert!(c.enabled());
        assert_eq!(c.queue_url(), None);
        assert_eq!(c.default_queue(), "default");
        assert_eq!(c.retry_defaults(), &RetryDefaults::default());
        assert_eq!(c.timeout(), Duration::from_secs(60));
        assert_eq!(c.worker_concurrency(), 1);
        assert!(c.warnings().is_empty());
        assert_eq!(c.get(TIMEOUT).unwrap().source(), Source::Default);
        assert_eq!(c.get(TIMEOUT).unwrap().value(), "60s");
        assert_eq!(c.get(QUEUE_URL), None, "no default");
    }

    #[test]
    fn every_registered_default_parses() {
        for var in vars() {
            if let Some(value) = var.default_value() {
                let mut c = Config::default();
                assert_eq!(
                    c.apply(var.name(), value, Source::Default),
                    Ok(()),
                    "{}",
                    var.name()
                );
            }
        }
    }

    #[test]
    fn the_core_registers_its_variables() {
        let names: Vec<&str> = vars().iter().map(|v| v.name()).collect();
        for name in [
            ENABLED,
            QUEUE_URL,
            DEFAULT_QUEUE,
            RETRY_ATTEMPTS,
            RETRY_DELAY_SECONDS,
            TIMEOUT,
            WORKER_CONCURRENCY,
        ] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
        assert!(names.is_sorted());
    }

    #[test]
    fn every_value_parses_from_the_environment_with_its_source() {
        let c = config(&[
            ("EVENTS_ENABLED", "off"),
            ("EVENTS_QUEUE_URL", "sqlite://jobs.db"),
            ("EVENTS_DEFAULT_QUEUE", "low"),
            ("EVENTS_RETRY_ATTEMPTS", "4"),
            ("EVENTS_RETRY_DELAY_SECONDS", "1, 5,15"),
            ("EVENTS_TIMEOUT", "90"),
            ("EVENTS_WORKER_CONCURRENCY", " 8 "),
            ("PATH", "/usr/bin"),
        ]);
        assert!(!c.enabled());
        assert_eq!(c.queue_url(), Some("sqlite://jobs.db"));
        assert_eq!(c.default_queue(), "low");
        assert_eq!(c.retry_defaults().tries(), 4);
        assert_eq!(
            c.retry_defaults().backoff(),
            [1, 5, 15].map(Duration::from_secs)
        );
        assert_eq!(c.timeout(), Duration::from_secs(90));
        assert_eq!(c.worker_concurrency(), 8);
        assert_eq!(c.get(WORKER_CONCURRENCY).unwrap().value(), "8");
        // Every variable set here reads back as set from the environment
        // (other seams' variables, such as the event log's, keep their
        // defaults).
        let set = [
            "EVENTS_ENABLED",
            "EVENTS_QUEUE_URL",
            "EVENTS_DEFAULT_QUEUE",
            "EVENTS_RETRY_ATTEMPTS",
            "EVENTS_RETRY_DELAY_SECONDS",
            "EVENTS_TIMEOUT",
            "EVENTS_WORKER_CONCURRENCY",
        ];
        let mut checked = 0;
        for (var, setting) in c.settings().filter(|(v, _)| set.contains(&v.name())) {
            let setting = setting.expect("set here");
            assert_eq!(setting.source(), Source::Env(var.name()));
            checked += 1;
        }
        assert_eq!(checked, set.len());
        assert!(c.warnings().is_empty(), "PATH is none of ours");
    }

    #[test]
    fn durations_take_seconds_or_units() {
        for (text, expected) in [
            ("90s", Duration::from_secs(90)),
            ("2m", Duration::from_secs(120)),
            ("1m 30s", Duration::from_secs(90)),
            ("250ms", Duration::from_millis(250)),
            ("5", Duration::from_secs(5)),
        ] {
            assert_eq!(config(&[(TIMEOUT, text)]).timeout(), expected, "{text}");
        }
    }

    #[test]
    fn booleans_take_the_usual_spellings() {
        for (text, expected) in [
            ("TRUE", true),
            ("1", true),
            ("yes", true),
            ("On", true),
            ("false", false),
            ("0", false),
            ("No", false),
            ("off", false),
        ] {
            assert_eq!(config(&[(ENABLED, text)]).enabled(), expected, "{text}");
        }
    }

    #[test]
    fn an_empty_value_counts_as_unset() {
        let c = config(&[(QUEUE_URL, ""), (ENABLED, "  ")]);
        assert_eq!(c.queue_url(), None);
        assert!(c.enabled());
        assert_eq!(c.get(ENABLED).unwrap().source(), Source::Default);
    }

    #[test]
    fn every_bad_value_is_reported_in_words() {
        let e = error(&[
            ("EVENTS_ENABLED", "flase"),
            ("EVENTS_RETRY_ATTEMPTS", "0"),
            ("EVENTS_RETRY_DELAY_SECONDS", "1,x"),
            ("EVENTS_TIMEOUT", "0s"),
            ("EVENTS_WORKER_CONCURRENCY", "-2"),
            ("EVENTS_QUEUE_URL", "memory://"),
        ]);
        let problems: Vec<String> = e.problems().iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            [
                "EVENTS_ENABLED is `flase`, expected a boolean: true or false (also 1/0, yes/no, on/off)",
                "EVENTS_RETRY_ATTEMPTS is `0`, expected a whole number of tries, at least 1",
                "EVENTS_RETRY_DELAY_SECONDS is `1,x`, expected whole seconds, or a comma list such as `1,5,15` (the last value repeats)",
                "EVENTS_TIMEOUT is `0s`, expected seconds, or a duration such as `90s` or `2m`, longer than zero",
                "EVENTS_WORKER_CONCURRENCY is `-2`, expected a whole number of at least 1",
            ]
        );
        assert!(
            e.to_string().starts_with(
                "invalid configuration (5 values): EVENTS_ENABLED is `flase`, expected a boolean"
            ),
            "{e}"
        );
        let one = error(&[("EVENTS_TIMEOUT", "soon")]);
        assert_eq!(
            one.to_string(),
            "invalid configuration: EVENTS_TIMEOUT is `soon`, expected seconds, or a duration such as `90s` or `2m`, longer than zero"
        );
        assert_eq!(one.problems()[0].variable(), TIMEOUT);
        assert_eq!(one.problems()[0].value(), "soon");
    }

    #[test]
    fn a_value_that_is_not_utf8_is_an_error() {
        let (_, problems) = Config::load([(TIMEOUT.to_owned(), Err("6\u{fffd}s".to_owned()))]);
        assert_eq!(
            problems[0].to_string(),
            "EVENTS_TIMEOUT is `6\u{fffd}s`, expected valid UTF-8"
        );
    }

    #[test]
    fn unknown_variables_warn_with_the_nearest_known_name() {
        let c = config(&[
            ("EVENTS_QUEUE_ULR", "memory://"),
            ("EVENTS_TIMEOUTS", "5"),
            ("EVENTS_worker_concurrency", "2"),
            ("EVENTS_FROBNICATE", "1"),
            ("EVENT_TIMEOUT", "5"),
        ]);
        let warnings: Vec<String> = c.warnings().iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [
                "unknown variable EVENTS_FROBNICATE: no registered variable has that name (is the capability that reads it compiled in?)",
                "unknown variable EVENTS_QUEUE_ULR: did you mean EVENTS_QUEUE_URL?",
                "unknown variable EVENTS_TIMEOUTS: did you mean EVENTS_TIMEOUT?",
                "unknown variable EVENTS_worker_concurrency: did you mean EVENTS_WORKER_CONCURRENCY?",
            ],
            "EVENT_TIMEOUT lacks the prefix: none of ours"
        );
        assert_eq!(c.queue_url(), None, "a misspelled variable sets nothing");
        assert_eq!(
            c.warnings()[1],
            ConfigWarning::Unknown {
                name: "EVENTS_QUEUE_ULR".to_owned(),
                nearest: Some(QUEUE_URL)
            }
        );
    }

    #[test]
    fn nearest_stays_quiet_when_nothing_is_close() {
        let known = || [ENABLED, TIMEOUT, QUEUE_URL].into_iter();
        assert_eq!(nearest("EVENTS_ENABLE", known()), Some(ENABLED));
        assert_eq!(
            nearest("EVENTS_TIMEUOT", known()),
            Some(TIMEOUT),
            "a swap is one edit"
        );
        assert_eq!(nearest("EVENTS_URL", known()), None);
        assert_eq!(nearest("EVENTS_X", known()), None);
        assert_eq!(nearest("EVENTS_", known()), None);
    }

    #[test]
    fn edit_distance_counts_edits() {
        let d = |a: &str, b: &str| edit_distance(a.as_bytes(), b.as_bytes());
        assert_eq!(d("", ""), 0);
        assert_eq!(d("abc", ""), 3);
        assert_eq!(d("", "abc"), 3);
        assert_eq!(d("kitten", "sitting"), 3);
        assert_eq!(d("ab", "ba"), 1);
        assert_eq!(d("URL", "ULR"), 1);
        assert_eq!(d("same", "same"), 0);
    }

    #[test]
    fn flags_override_and_say_so() {
        let mut c = config(&[(TIMEOUT, "5s")]);
        c.set_flag(TIMEOUT, "--timeout", "2m").unwrap();
        assert_eq!(c.timeout(), Duration::from_secs(120));
        assert_eq!(c.get(TIMEOUT).unwrap().source(), Source::Flag("--timeout"));
        let e = c.set_flag(TIMEOUT, "--timeout", "later").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid configuration: --timeout (for EVENTS_TIMEOUT) is `later`, expected seconds, or a duration such as `90s` or `2m`, longer than zero"
        );
        assert_eq!(c.timeout(), Duration::from_secs(120), "unchanged on error");
        assert_eq!(c.get(TIMEOUT).unwrap().value(), "2m");
    }

    #[test]
    fn retry_attempts_and_delay_combine_in_either_order() {
        let c = config(&[(RETRY_DELAY_SECONDS, "3"), (RETRY_ATTEMPTS, "2")]);
        assert_eq!(
            c.retry_defaults(),
            &RetryDefaults::new(2, [Duration::from_secs(3)])
        );
        let c = config(&[(RETRY_ATTEMPTS, "2"), (RETRY_DELAY_SECONDS, "3")]);
        assert_eq!(
            c.retry_defaults(),
            &RetryDefaults::new(2, [Duration::from_secs(3)])
        );
    }

    inventory::submit! {
        Var::new("EVENTS_TEST_APP_SECRET", "A capability's secret, registered by a test.")
            .aliases(&["TEST_APP_SECRET", "LEGACY_TEST_SECRET"])
            .secret()
    }

    #[test]
    fn other_crates_register_variables_read_raw_through_aliases() {
        let var = vars()
            .into_iter()
            .find(|v| v.name() == "EVENTS_TEST_APP_SECRET")
            .unwrap();
        assert!(var.is_secret());
        assert_eq!(var.default_value(), None);

        let c = config(&[("LEGACY_TEST_SECRET", "s3")]);
        let s = c.get("EVENTS_TEST_APP_SECRET").unwrap();
        assert_eq!(
            (s.value(), s.source()),
            ("s3", Source::Env("LEGACY_TEST_SECRET"))
        );
        assert!(c.warnings().is_empty(), "a registered alias is known");

        let c = config(&[
            ("TEST_APP_SECRET", "alias"),
            ("EVENTS_TEST_APP_SECRET", "own"),
        ]);
        assert_eq!(c.get("EVENTS_TEST_APP_SECRET").unwrap().value(), "own");
        assert_eq!(
            c.warnings(),
            [ConfigWarning::Shadowed {
                name: "EVENTS_TEST_APP_SECRET",
                alias: "TEST_APP_SECRET"
            }]
        );
        assert_eq!(
            c.warnings()[0].to_string(),
            "TEST_APP_SECRET is ignored: EVENTS_TEST_APP_SECRET is set too, and wins"
        );
        assert_eq!(config(&[]).get("EVENTS_TEST_APP_SECRET"), None);
    }

    #[test]
    fn an_invalid_alias_value_names_the_alias() {
        let setting = Setting {
            value: "x".to_owned(),
            source: Source::Env("TEST_APP_SECRET"),
        };
        let problem = Invalid::new(
            "EVENTS_TEST_APP_SECRET",
            &setting,
            "a key starting with `whsec_`",
        );
        assert_eq!(
            problem.to_string(),
            "TEST_APP_SECRET (read as EVENTS_TEST_APP_SECRET) is `x`, expected a key starting with `whsec_`"
        );
    }
}
