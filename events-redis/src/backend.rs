//! [`RedisBackend`]: the [`Backend`] over a Redis server.

mod activity;
mod browse;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use events_core::queue::{
    Activity, ActivityReport, Backend, FailedJob, Job, JobPage, JobQuery, JobView, QueueError,
    QueueStats, millis, new_job_id,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, RedisResult, Value};
use tokio::sync::{Notify, oneshot};

use crate::BACKEND;
use crate::codec::{self, Row};
use crate::error::RedisQueueError;
use crate::keys::{Keys, QueueKeys};
use crate::scripts::{Lua, Scripts};
use crate::server::{self, Finding};

/// How a [`RedisBackend`] behaves: its key prefix, how long an operation
/// keeps trying while Redis cannot be reached, and how much one claim
/// promotes and reclaims.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisOptions {
    pub(crate) prefix: String,
    pub(crate) op_timeout: Duration,
    pub(crate) promote_cap: usize,
    pub(crate) reclaim_cap: usize,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            prefix: crate::DEFAULT_PREFIX.to_owned(),
            op_timeout: Duration::from_secs(5),
            promote_cap: 1000,
            reclaim_cap: 100,
        }
    }
}

impl RedisOptions {
    /// The defaults: prefix `events`, operations that keep trying for 5 s,
    /// claims that promote up to 1,000 due delayed jobs and reclaim up to
    /// 100 lapsed leases per queue.
    pub fn new() -> RedisOptions {
        RedisOptions::default()
    }

    /// The key prefix that keeps applications apart on one Redis (`?prefix=`
    /// in the URL): letters, digits, `-`, `_` and `.`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Result<RedisOptions, String> {
        let prefix = prefix.into();
        crate::keys::check_prefix(&prefix)?;
        self.prefix = prefix;
        Ok(self)
    }

    /// How long one operation keeps trying while Redis cannot be reached
    /// or is loading its data, before it fails with an error saying so.
    pub fn op_timeout(mut self, timeout: Duration) -> RedisOptions {
        self.op_timeout = timeout;
        self
    }

    /// At most how many due delayed jobs one claim moves to a ready list
    /// per queue (at least 1). A bound on how long one claim holds Redis.
    pub fn promote_cap(mut self, cap: usize) -> RedisOptions {
        self.promote_cap = cap.max(1);
        self
    }

    /// At most how many lapsed leases one claim hands back per queue (at
    /// least 1).
    pub fn reclaim_cap(mut self, cap: usize) -> RedisOptions {
        self.reclaim_cap = cap.max(1);
        self
    }
}

/// The Redis queue: jobs on a Redis server that workers on many machines
/// share, with per-job leases fenced by the attempt number.
///
/// Opened lazily: no connection is made until the first operation, on the
/// Tokio runtime that runs it (a runtime of its own gets a connection of
/// its own). Concurrent operations of one process share round trips: the
/// claims, acks, lease extensions and enqueues issued while one round trip
/// is under way go together in the next, each kind as one script call.
///
/// **Layout.** Every key of a queue shares the hash tag `{prefix:queue}`: a
/// hash per job (`..:job:<id>`), a ready list, a delayed sorted set scored
/// by due time, a leased sorted set scored by lease deadline, the failed
/// store (a sorted set by failure time) and a stats hash; the queue names
/// are in the set `prefix:queues`, and wake-ups go out on the channel
/// `prefix:wake`. What workers report lives under the tag `{prefix}` of its
/// own: `{prefix}:workers` (a set of worker ids), `{prefix}:worker:<id>`
/// (the last heartbeat, expiring after three missed reports),
/// `{prefix}:minute:<m>` (a hash of counters per queue and listener, every
/// worker's added up, expiring after
/// [`MINUTES_KEPT`](events_core::queue::activity::MINUTES_KEPT)) and
/// `{prefix}:finished` (the latest finished tries, capped at
/// [`FINISHED_KEPT`](events_core::queue::activity::FINISHED_KEPT)).
///
/// **Listings** only read, in bounded steps (no call reads more than 1,000
/// jobs' times or 200 jobs' bodies); the round trips are listed on
/// each method of its [`Backend`] implementation.
///
/// **Guarantees.** Every state change is one Lua script, so it is atomic;
/// each one on a claimed job checks the attempt it was claimed under, so a
/// worker whose lease lapsed gets `false` and changes nothing; times come
/// from the server's `TIME`. Delivery is at-least-once: a job whose worker
/// died runs again once its lease lapses. A dispatch's jobs are stored all
/// or none.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), events_core::queue::QueueError> {
/// use events_redis::{RedisBackend, RedisOptions};
/// use std::time::Duration;
///
/// let options = RedisOptions::new()
///     .prefix("shop")
///     .expect("a valid prefix")
///     .op_timeout(Duration::from_secs(2));
/// let backend = RedisBackend::open_with("redis://127.0.0.1:6379/0", options)?;
/// for finding in backend.check_server().await? {
///     eprintln!("warning: {finding}");
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisBackend {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("server", &self.inner.server)
            .field("prefix", &self.inner.keys.prefix())
            .finish()
    }
}

struct Inner {
    client: redis::Client,
    /// `host:port/db`, for messages (never the password).
    server: String,
    options: RedisOptions,
    keys: Keys,
    scripts: Scripts,
    conn: Mutex<Option<(tokio::runtime::Id, ConnectionManager)>>,
    /// The queue of each job this process claimed and has not finished
    /// with, so fenced calls find its keys without asking Redis.
    held: Mutex<HashMap<String, Arc<QueueKeys>>>,
    /// Queues this process has registered in the queue set.
    registered: Mutex<HashSet<String>>,
    batch: Mutex<Batch>,
    /// Round trips made so far (pipelines sent, each answered once).
    round_trips: AtomicU64,
    wake: Arc<Wake>,
    checked: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some((_, task)) = lock(&self.wake.listener).take() {
            task.abort();
        }
    }
}

/// Wake-ups from the server's pub/sub channel.
#[derive(Default)]
struct Wake {
    notify: Notify,
    /// Messages seen so far (and reconnections, which may have missed some).
    generation: AtomicU64,
    /// The generation when the latest claim began: a message after it may
    /// be for a job that claim did not see.
    claimed_at: AtomicU64,
    /// When the next delayed job is due or lease lapses, as the latest
    /// claim saw it: ms since `origin` (-1: none known).
    next_due: AtomicI64,
    origin: std::sync::OnceLock<Instant>,
    /// Whether the subscription is up.
    live: AtomicBool,
    listener: Mutex<Option<(tokio::runtime::Id, tokio::task::JoinHandle<()>)>>,
}

impl Wake {
    fn origin(&self) -> Instant {
        *self.origin.get_or_init(Instant::now)
    }

    fn woken(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_waiters();
    }
}

/// Requests waiting for the next round trip.
#[derive(Default)]
struct Batch {
    ops: Vec<Op>,
    /// Whether a flush is under way: new requests wait for it, then go
    /// together in the next one.
    flushing: bool,
}

enum Op {
    Enqueue {
        jobs: Vec<Job>,
        reply: oneshot::Sender<Result<(), QueueError>>,
    },
    Claim {
        queues: Vec<String>,
        limit: usize,
        lease_ms: u64,
        reply: oneshot::Sender<Result<Vec<Job>, QueueError>>,
    },
    Ack(Fenced),
    Extend(Fenced),
}

/// An ack or a lease extension: a call on one claimed job, fenced by its
/// attempt, answered `true` or `false`.
struct Fenced {
    keys: Arc<QueueKeys>,
    id: String,
    attempt: u32,
    /// The new lease (extensions only).
    lease_ms: u64,
    reply: AckReply,
}

/// A lease or delay of `Duration::MAX` means "never"; scores stay far below
/// where an `f64` loses whole milliseconds.
const MAX_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

fn ms(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis())
        .unwrap_or(u64::MAX)
        .min(MAX_MS)
}

/// How long an idle worker waits with the wake-up channel live and nothing
/// due that it knows of, before it claims anyway.
const IDLE_CHECK: Duration = Duration::from_secs(60);

/// Failed jobs and waiting jobs are listed and deleted this many per script
/// call, so that no call holds Redis long.
const PAGE: usize = 1000;

impl RedisBackend {
    /// The backend for `url` (`redis://[user:password@]host[:port][/db]`,
    /// `rediss://` for TLS), with `options`. Makes no connection yet.
    pub fn open_with(url: &str, options: RedisOptions) -> Result<RedisBackend, QueueError> {
        let client = redis::Client::open(url).map_err(|error| QueueError::BadUrl {
            url: crate::redact(url),
            reason: error.to_string(),
        })?;
        let info = client.get_connection_info();
        let server = format!("{}/{}", info.addr(), info.redis_settings().db());
        let keys = Keys::new(&options.prefix);
        Ok(RedisBackend {
            inner: Arc::new(Inner {
                client,
                server,
                keys,
                options,
                scripts: Scripts::new(),
                conn: Mutex::new(None),
                held: Mutex::new(HashMap::new()),
                registered: Mutex::new(HashSet::new()),
                batch: Mutex::new(Batch::default()),
                round_trips: AtomicU64::new(0),
                wake: Arc::new(Wake {
                    next_due: AtomicI64::new(-1),
                    ..Wake::default()
                }),
                checked: AtomicBool::new(false),
            }),
        })
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        self.inner.keys.prefix()
    }

    /// `host:port/db` of the server.
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    /// How many round trips to Redis this backend (and its clones) made
    /// so far: each a pipeline of one or more script calls, sent and
    /// answered once. Requests issued at the same time share one, so this
    /// is what a benchmark divides by the jobs to count round trips per
    /// job. Wake-up subscriptions are not counted.
    pub fn round_trips(&self) -> u64 {
        self.inner.round_trips.load(Ordering::Relaxed)
    }

    /// Asks the server what could lose jobs: an eviction policy other than
    /// `noeviction`, no persistence at all (neither AOF nor RDB snapshots),
    /// or that it cannot tell (`CONFIG` refused). The backend logs these
    /// as warnings once, at its first connection; this returns them.
    pub async fn check_server(&self) -> Result<Vec<Finding>, QueueError> {
        let conn = self.inner.conn()?;
        server::check(conn, &self.inner.server).await
    }
}

impl Inner {
    /// The connection for the runtime this runs on, made on first use.
    fn conn(self: &Arc<Self>) -> Result<ConnectionManager, QueueError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| QueueError::NoRuntime)?
            .id();
        let mut slot = lock(&self.conn);
        if let Some((id, conn)) = &*slot
            && *id == runtime
        {
            return Ok(conn.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(self.options.op_timeout.max(Duration::from_secs(1))))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            .map_err(|error| self.error(error))?;
        *slot = Some((runtime, conn.clone()));
        drop(slot);
        if !self.checked.swap(true, Ordering::AcqRel) {
            let (conn, server) = (conn.clone(), self.server.clone());
            let backend = Arc::downgrade(self);
            tokio::spawn(async move {
                // While Redis cannot be reached, ask again once it can, for
                // as long as the backend lives.
                let mut pause = Duration::from_millis(500);
                loop {
                    match server::check(conn.clone(), &server).await {
                        Ok(findings) => {
                            for finding in findings {
                                tracing::warn!(server = %server, "{finding}");
                            }
                            return;
                        }
                        Err(QueueError::Backend { .. }) if backend.strong_count() > 0 => {
                            tokio::time::sleep(pause).await;
                            pause = (pause * 2).min(Duration::from_secs(30));
                        }
                        Err(error) => {
                            tracing::warn!(
                                server = %server,
                                error = %events_core::error::Chain(&error),
                                "could not check the Redis server's settings"
                            );
                            return;
                        }
                    }
                }
            });
        }
        Ok(conn)
    }

    fn error(&self, error: impl Into<redis::RedisError>) -> QueueError {
        crate::error::classify(&self.server, error.into())
    }

    /// Runs `cmds` in one round trip, each command's result apart. Loads
    /// the scripts and runs again the commands the server did not know
    /// (`NOSCRIPT`: a restarted server forgets its scripts), and tries
    /// again while the server cannot be reached or is loading, until the
    /// operation timeout.
    async fn run(self: &Arc<Self>, cmds: Vec<Cmd>) -> Result<Vec<RedisResult<Value>>, QueueError> {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(25);
        let mut results: Vec<Option<RedisResult<Value>>> = cmds.iter().map(|_| None).collect();
        let mut all = Pipeline::with_capacity(cmds.len());
        all.ignore_errors();
        for cmd in cmds {
            all.add_command(cmd);
        }
        let mut loaded = false;
        loop {
            let todo: Vec<usize> = (0..results.len())
                .filter(|&i| results[i].is_none())
                .collect();
            if todo.is_empty() {
                return Ok(results.into_iter().map(Option::unwrap).collect());
            }
            // The first time, all of them; after `NOSCRIPT` or a transient
            // refusal, those that did not run.
            let subset;
            let pipe = if todo.len() == results.len() {
                &all
            } else {
                let mut some = Pipeline::with_capacity(todo.len());
                some.ignore_errors();
                for (i, cmd) in all.cmd_iter().enumerate() {
                    if results[i].is_none() {
                        some.add_command(cmd.clone());
                    }
                }
                subset = some;
                &subset
            };
            let mut conn = self.conn()?;
            self.round_trips.fetch_add(1, Ordering::Relaxed);
            match pipe.query_async::<Vec<RedisResult<Value>>>(&mut conn).await {
                Ok(answers) => {
                    let mut missing = false;
                    for (i, answer) in todo.into_iter().zip(answers) {
                        match answer {
                            Err(error) if is_noscript(&error) && !loaded => missing = true,
                            Err(error) if crate::error::is_transient(&error) => {}
                            other => results[i] = Some(other),
                        }
                    }
                    if missing {
                        self.load_scripts(&mut conn).await?;
                        loaded = true;
                        continue;
                    }
                    if results.iter().all(Option::is_some) {
                        continue;
                    }
                    // A command refused as transient (Redis loading after a
                    // restart): wait like a lost connection.
                    if started.elapsed() >= self.options.op_timeout {
                        return Err(self.gave_up(started, None));
                    }
                }
                Err(error) if crate::error::is_transient(&error) => {
                    // The server may come back empty (restarted without
                    // persistence): register the queues again.
                    lock(&self.registered).clear();
                    if started.elapsed() >= self.options.op_timeout {
                        return Err(self.gave_up(started, Some(error)));
                    }
                }
                Err(error) => return Err(self.error(error)),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// Runs one command: [`run`](Self::run) with one.
    async fn run_one(self: &Arc<Self>, cmd: Cmd) -> Result<Value, QueueError> {
        let answer = self.run(vec![cmd]).await?;
        answer
            .into_iter()
            .next()
            .expect("one answer per command")
            .map_err(|error| self.error(error))
    }

    fn gave_up(&self, started: Instant, error: Option<redis::RedisError>) -> QueueError {
        QueueError::backend(
            BACKEND,
            RedisQueueError::Unreachable {
                server: self.server.clone(),
                waited: started.elapsed(),
                source: error,
            },
        )
    }

    async fn load_scripts(&self, conn: &mut ConnectionManager) -> Result<(), QueueError> {
        let mut pipe = Pipeline::new();
        for lua in self.scripts.all() {
            pipe.cmd("SCRIPT").arg("LOAD").arg(&lua.code);
        }
        pipe.query_async::<Vec<String>>(conn)
            .await
            .map(drop)
            .map_err(|error| self.error(error))
    }

    fn evalsha(lua: &Lua, keys: &[&str]) -> Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&lua.sha).arg(keys.len()).arg(keys);
        cmd
    }

    fn queue_keys(&self, queue: &str) -> Arc<QueueKeys> {
        self.keys.queue(queue)
    }

    /// Adds `queues` to the queue set once per process: the set lists the
    /// queues `stats`, `failed` and the rest look at. Returns the queues not
    /// registered yet and the command adding them, which the caller must
    /// [`forget_registered`](Self::forget_registered) if it fails.
    fn register<'q>(&self, queues: &[&'q str]) -> Option<(Vec<&'q str>, Cmd)> {
        let mut registered = lock(&self.registered);
        let new: Vec<&str> = queues
            .iter()
            .copied()
            .filter(|queue| registered.insert((*queue).to_owned()))
            .collect();
        (!new.is_empty()).then(|| {
            let mut cmd = redis::cmd("SADD");
            cmd.arg(self.keys.queue_set()).arg(&new);
            (new, cmd)
        })
    }

    fn forget_registered(&self, queues: &[&str]) {
        let mut registered = lock(&self.registered);
        for queue in queues {
            registered.remove(*queue);
        }
    }

    async fn queues(self: &Arc<Self>) -> Result<Vec<String>, QueueError> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(self.keys.queue_set());
        let value = self.run_one(cmd).await?;
        let mut queues: Vec<String> =
            redis::from_redis_value(value).map_err(|error| self.error(error))?;
        queues.sort_unstable();
        Ok(queues)
    }

    /// Queues the request and waits for its answer: [`send`](Self::send).
    async fn submit<T>(
        self: &Arc<Self>,
        op: Op,
        answer: oneshot::Receiver<Result<T, QueueError>>,
    ) -> Result<T, QueueError> {
        self.send(vec![op]).await;
        self.answer(answer).await
    }

    /// Queues requests to go in one round trip. The first caller finding no
    /// flush under way starts one, on a task of its own: the requests that
    /// arrive meanwhile go together in its next round trip. The task, not
    /// the caller, does the flushing, so a caller that is cancelled (a
    /// heartbeat's extension dropped by a `select!`, a web request whose
    /// client went away) never strands the requests of others.
    async fn send(self: &Arc<Self>, ops: Vec<Op>) {
        let lead = {
            let mut batch = lock(&self.batch);
            batch.ops.extend(ops);
            !std::mem::replace(&mut batch.flushing, true)
        };
        if lead {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(flusher(self.clone()))),
                // No runtime to run a task on: flush here (an operation
                // then fails for want of a runtime, as a connection needs
                // one).
                Err(_) => flusher(self.clone()).await,
            }
        }
    }

    /// The answer to a request [`send`](Self::send) queued.
    async fn answer<T>(
        &self,
        answer: oneshot::Receiver<Result<T, QueueError>>,
    ) -> Result<T, QueueError> {
        answer.await.unwrap_or_else(|_| {
            Err(QueueError::backend(
                BACKEND,
                RedisQueueError::Dropped {
                    server: self.server.clone(),
                },
            ))
        })
    }

    /// Sends one batch of requests in one round trip and answers each.
    async fn flush(self: &Arc<Self>, ops: Vec<Op>) {
        let mut enqueues = Vec::new();
        let mut claims: Vec<(ClaimKey, Vec<(usize, ClaimReply)>)> = Vec::new();
        let mut acks = Vec::new();
        let mut extends = Vec::new();
        for op in ops {
            match op {
                Op::Enqueue { jobs, reply } => enqueues.push((jobs, reply)),
                Op::Claim {
                    queues,
                    limit,
                    lease_ms,
                    reply,
                } => {
                    let key = (queues, lease_ms);
                    match claims.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, group)) => group.push((limit, reply)),
                        None => claims.push((key, vec![(limit, reply)])),
                    }
                }
                Op::Ack(ack) => acks.push(ack),
                Op::Extend(extend) => extends.push(extend),
            }
        }
        // Grouped by queue, as the scripts take them.
        acks.sort_by(|a, b| a.keys.queue.cmp(&b.keys.queue));
        extends.sort_by(|a, b| a.keys.queue.cmp(&b.keys.queue));
        let mut cmds = Vec::new();
        // Enqueues first, so that the claims in the same trip see them.
        let mut registered_now = Vec::new();
        if !enqueues.is_empty() {
            let jobs: Vec<&Job> = enqueues.iter().flat_map(|(jobs, _)| jobs.iter()).collect();
            let queues: Vec<&str> = distinct(jobs.iter().map(|job| job.queue.as_str()));
            if let Some((new, cmd)) = self.register(&queues) {
                registered_now = new;
                cmds.push(cmd);
            }
            cmds.push(self.enqueue_cmd(&jobs, &queues));
        }
        if !acks.is_empty() {
            cmds.push(self.fenced_cmd(true, &acks));
        }
        if !extends.is_empty() {
            cmds.push(self.fenced_cmd(false, &extends));
        }
        for ((queues, lease_ms), group) in &claims {
            let limit = group.iter().map(|(limit, _)| limit).sum();
            cmds.push(self.claim_cmd(queues, limit, *lease_ms));
        }
        let answers = match self.run(cmds).await {
            Ok(answers) => answers,
            Err(error) => {
                self.forget_registered(&registered_now);
                let message = error.to_string();
                let again =
                    || QueueError::backend(BACKEND, RedisQueueError::Batch(message.clone()));
                let mut first = Some(error);
                let mut next = || first.take().unwrap_or_else(again);
                for (_, reply) in enqueues {
                    let _ = reply.send(Err(next()));
                }
                for fenced in acks.into_iter().chain(extends) {
                    let _ = fenced.reply.send(Err(next()));
                }
                for (_, group) in claims {
                    for (_, reply) in group {
                        let _ = reply.send(Err(next()));
                    }
                }
                return;
            }
        };
        let mut answers = answers.into_iter();
        if !enqueues.is_empty() {
            let mut result = Ok(());
            if !registered_now.is_empty()
                && let Some(Err(error)) = answers.next()
            {
                result = Err(self.error(error));
            }
            let stored = answers.next().expect("one answer per command");
            if let (Ok(()), Err(error)) = (&result, stored) {
                result = Err(self.error(error));
            }
            if result.is_err() {
                self.forget_registered(&registered_now);
            } else {
                // A lost connection during the round trip forgot the
                // registrations (the server may have come back empty) after
                // this batch was built: register its queues again.
                let queues: Vec<&str> = distinct(
                    enqueues
                        .iter()
                        .flat_map(|(jobs, _)| jobs.iter())
                        .map(|job| job.queue.as_str()),
                );
                // The jobs are stored: a failure here only leaves the next
                // enqueue to list the queues.
                if let Some((new, cmd)) = self.register(&queues)
                    && let Err(error) = self.run_one(cmd).await
                {
                    self.forget_registered(&new);
                    tracing::warn!(server = %self.server, error = %events_core::error::Chain(&error), "cannot list the queues of stored jobs; the next enqueue tries again");
                }
            }
            for (_, reply) in enqueues {
                let _ = reply.send(result.as_ref().map(|_| ()).map_err(clone_error));
            }
        }
        if !acks.is_empty() {
            let answer = answers.next().expect("one answer per command");
            self.answer_fenced(acks, answer, true);
        }
        if !extends.is_empty() {
            let answer = answers.next().expect("one answer per command");
            self.answer_fenced(extends, answer, false);
        }
        for ((queues, _), group) in claims {
            let answer = answers.next().expect("one answer per command");
            let jobs = match answer {
                Ok(value) => self.claimed(&queues, value).await,
                Err(error) => Err(self.error(error)),
            };
            match jobs {
                Ok(jobs) => {
                    let mut jobs = jobs.into_iter();
                    for (limit, reply) in group {
                        let _ = reply.send(Ok(jobs.by_ref().take(limit).collect()));
                    }
                    // Claimed for a request that went away cannot happen
                    // (the sum of limits was asked), but be safe: hand back.
                    for job in jobs {
                        let _ = self
                            .put_back(&job.id, job.attempt, Duration::ZERO, None)
                            .await;
                    }
                }
                Err(error) => {
                    let message = error.to_string();
                    let mut first = Some(error);
                    for (_, reply) in group {
                        let error = first.take().unwrap_or_else(|| {
                            QueueError::backend(BACKEND, RedisQueueError::Batch(message.clone()))
                        });
                        let _ = reply.send(Err(error));
                    }
                }
            }
        }
    }

    fn enqueue_cmd(&self, jobs: &[&Job], queues: &[&str]) -> Cmd {
        let keys: Vec<Arc<QueueKeys>> = queues.iter().map(|q| self.queue_keys(q)).collect();
        let mut names: Vec<&str> = Vec::with_capacity(keys.len() * 3);
        for k in &keys {
            names.extend([k.ready.as_str(), k.delayed.as_str(), k.stats.as_str()]);
        }
        let mut cmd = Inner::evalsha(&self.scripts.enqueue, &names);
        cmd.arg(self.keys.wake_channel()).arg(queues.len());
        let now = millis(SystemTime::now());
        for (queue, k) in queues.iter().zip(&keys) {
            let mine: Vec<&&Job> = jobs.iter().filter(|job| job.queue == *queue).collect();
            cmd.arg(&k.jobs).arg(mine.len());
            for job in mine {
                // Negative for a job available since then: it is ready,
                // and listings order it by that time.
                let delay = millis(job.available_at) - now;
                cmd.arg(&job.id).arg(codec::body(job)).arg(delay);
            }
        }
        cmd
    }

    /// One script call for acks or extensions, sorted by queue: KEYS the
    /// queues' `leased` (and, for acks, `stats`) keys, ARGV per queue its
    /// job key prefix, its count, then per job `id`, `attempt` (and, for
    /// extensions, `lease_ms`).
    fn fenced_cmd(&self, acks: bool, ops: &[Fenced]) -> Cmd {
        let lua = if acks {
            &self.scripts.ack
        } else {
            &self.scripts.extend
        };
        let groups: Vec<&[Fenced]> = ops.chunk_by(|a, b| a.keys.queue == b.keys.queue).collect();
        let mut names = Vec::with_capacity(groups.len() * 2);
        for group in &groups {
            names.push(group[0].keys.leased.as_str());
            if acks {
                names.push(group[0].keys.stats.as_str());
            }
        }
        let mut cmd = Inner::evalsha(lua, &names);
        cmd.arg(groups.len());
        for group in groups {
            cmd.arg(&group[0].keys.jobs).arg(group.len());
            for op in group {
                cmd.arg(&op.id).arg(op.attempt);
                if !acks {
                    cmd.arg(op.lease_ms);
                }
            }
        }
        cmd
    }

    /// Answers acks or extensions from their script's answer (1 or 0 each,
    /// in order). A job acked, or whose lease is lost, is no longer held.
    fn answer_fenced(&self, ops: Vec<Fenced>, answer: RedisResult<Value>, acks: bool) {
        let done: Result<Vec<i64>, QueueError> = answer
            .and_then(|value| redis::from_redis_value(value).map_err(Into::into))
            .map_err(|error| self.error(error));
        match done {
            Ok(done) => {
                for (i, op) in ops.into_iter().enumerate() {
                    let held = done.get(i).copied() == Some(1);
                    if acks || !held {
                        lock(&self.held).remove(&op.id);
                    }
                    let _ = op.reply.send(Ok(held));
                }
            }
            Err(error) => {
                let message = error.to_string();
                let mut first = Some(error);
                for op in ops {
                    let error = first.take().unwrap_or_else(|| {
                        QueueError::backend(BACKEND, RedisQueueError::Batch(message.clone()))
                    });
                    let _ = op.reply.send(Err(error));
                }
            }
        }
    }

    fn claim_cmd(&self, queues: &[String], limit: usize, lease_ms: u64) -> Cmd {
        let keys: Vec<Arc<QueueKeys>> = queues.iter().map(|q| self.queue_keys(q)).collect();
        let mut names = Vec::with_capacity(keys.len() * 5);
        for k in &keys {
            names.extend([
                k.ready.as_str(),
                k.delayed.as_str(),
                k.leased.as_str(),
                k.failed.as_str(),
                k.stats.as_str(),
            ]);
        }
        let mut cmd = Inner::evalsha(&self.scripts.claim, &names);
        cmd.arg(limit)
            .arg(lease_ms)
            .arg(self.options.promote_cap)
            .arg(self.options.reclaim_cap);
        for k in &keys {
            cmd.arg(&k.jobs);
        }
        cmd
    }

    /// The jobs a claim script returned. A job whose stored body cannot be
    /// read goes to the failed store with the reason; the others are
    /// returned.
    async fn claimed(
        self: &Arc<Self>,
        queues: &[String],
        value: Value,
    ) -> Result<Vec<Job>, QueueError> {
        let values: Vec<Value> = redis::from_redis_value(value).map_err(|e| self.error(e))?;
        let mut values = values.into_iter();
        let next: i64 = values
            .next()
            .map(redis::from_redis_value)
            .transpose()
            .map_err(|e| self.error(e))?
            .unwrap_or(-1);
        let wake = &self.wake;
        let now = i64::try_from(wake.origin().elapsed().as_millis()).unwrap_or(i64::MAX / 2);
        let due = if next < 0 { -1 } else { now + next };
        // Claims on other queues (another worker of this process) may know
        // of something due sooner: keep the sooner of the two while it is
        // still ahead, so no waiting slot starts a job late (at worst one
        // wakes for nothing).
        let _ = wake
            .next_due
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |known| {
                let ahead = known > now;
                Some(match (due >= 0, ahead) {
                    (true, true) => due.min(known),
                    (true, false) => due,
                    (false, true) => known,
                    (false, false) => -1,
                })
            });
        let rest: Vec<Value> = values.collect();
        let mut jobs = Vec::with_capacity(rest.len() / 6);
        let mut unreadable = Vec::new();
        for row in rest.chunks(6) {
            let row = Row::from_values(row).map_err(|reason| {
                QueueError::Corrupt(format!("a claim's answer cannot be read: {reason}"))
            })?;
            let Some(queue) = queues.get(row.queue) else {
                return Err(QueueError::Corrupt(format!(
                    "a claim's answer names queue #{} of {}",
                    row.queue,
                    queues.len()
                )));
            };
            let keys = self.queue_keys(queue);
            lock(&self.held).insert(row.id.clone(), keys);
            match codec::job(queue, &row) {
                Ok(job) => jobs.push(job),
                Err(reason) => unreadable.push((row.id, row.attempt, reason)),
            }
        }
        for (id, attempt, reason) in unreadable {
            tracing::error!(job = %id, %reason, "a job stored in Redis cannot be read; it goes to the failed store");
            self.fail_job(
                &id,
                attempt,
                &format!("the stored job cannot be read: {reason}"),
            )
            .await?;
        }
        Ok(jobs)
    }

    /// Acks a job and claims the next in one round trip: what a worker's
    /// slot does between two jobs.
    async fn ack_and_claim(
        self: &Arc<Self>,
        id: &str,
        attempt: u32,
        queues: &[String],
        limit: usize,
        lease: Duration,
    ) -> (Result<bool, QueueError>, Result<Vec<Job>, QueueError>) {
        let keys = match self.locate(id).await {
            Ok(Some(keys)) => keys,
            Ok(None) => return (Ok(false), self.claim(queues, limit, lease).await),
            Err(error) => return (Err(error), self.claim(queues, limit, lease).await),
        };
        if limit == 0 || queues.is_empty() {
            return (
                self.fenced_op(id, attempt, 0, Op::Ack).await,
                Ok(Vec::new()),
            );
        }
        let wake = &self.wake;
        wake.claimed_at
            .store(wake.generation.load(Ordering::Acquire), Ordering::Release);
        let (ack_reply, acked) = oneshot::channel();
        let (claim_reply, claimed) = oneshot::channel();
        self.send(vec![
            Op::Ack(Fenced {
                keys,
                id: id.to_owned(),
                attempt,
                lease_ms: 0,
                reply: ack_reply,
            }),
            Op::Claim {
                queues: queues.to_vec(),
                limit,
                lease_ms: ms(lease),
                reply: claim_reply,
            },
        ])
        .await;
        (self.answer(acked).await, self.answer(claimed).await)
    }

    /// Claims up to `limit` jobs, in the next round trip.
    async fn claim(
        self: &Arc<Self>,
        queues: &[String],
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Job>, QueueError> {
        if limit == 0 || queues.is_empty() {
            return Ok(Vec::new());
        }
        let wake = &self.wake;
        wake.claimed_at
            .store(wake.generation.load(Ordering::Acquire), Ordering::Release);
        let (reply, answer) = oneshot::channel();
        let op = Op::Claim {
            queues: queues.to_vec(),
            limit,
            lease_ms: ms(lease),
            reply,
        };
        self.submit(op, answer).await
    }

    /// Acks or extends a job, in the next round trip.
    async fn fenced_op(
        self: &Arc<Self>,
        id: &str,
        attempt: u32,
        lease_ms: u64,
        op: fn(Fenced) -> Op,
    ) -> Result<bool, QueueError> {
        let Some(keys) = self.locate(id).await? else {
            return Ok(false);
        };
        let (reply, answer) = oneshot::channel();
        let fenced = Fenced {
            keys,
            id: id.to_owned(),
            attempt,
            lease_ms,
            reply,
        };
        self.submit(op(fenced), answer).await
    }

    /// The queue keys of a job: from the jobs this process holds, or else
    /// by asking Redis which queue has it.
    async fn locate(self: &Arc<Self>, id: &str) -> Result<Option<Arc<QueueKeys>>, QueueError> {
        if let Some(keys) = lock(&self.held).get(id) {
            return Ok(Some(keys.clone()));
        }
        let queues = self.queues().await?;
        let cmds: Vec<Cmd> = queues
            .iter()
            .map(|queue| {
                let mut cmd = redis::cmd("EXISTS");
                cmd.arg(format!("{}{id}", self.queue_keys(queue).jobs));
                cmd
            })
            .collect();
        let answers = self.run(cmds).await?;
        for (queue, answer) in queues.iter().zip(answers) {
            if matches!(answer, Ok(Value::Int(1))) {
                return Ok(Some(self.queue_keys(queue)));
            }
        }
        Ok(None)
    }

    async fn fenced(self: &Arc<Self>, cmd: Cmd, id: &str, done: bool) -> Result<bool, QueueError> {
        let value = self.run_one(cmd).await?;
        if done {
            lock(&self.held).remove(id);
        }
        Ok(matches!(value, Value::Int(1)))
    }

    async fn put_back(
        self: &Arc<Self>,
        id: &str,
        attempt: u32,
        delay: Duration,
        error: Option<&str>,
    ) -> Result<bool, QueueError> {
        let Some(k) = self.locate(id).await? else {
            return Ok(false);
        };
        let mut cmd = Inner::evalsha(
            &self.scripts.put_back,
            &[&k.ready, &k.delayed, &k.leased, &k.stats],
        );
        cmd.arg(self.keys.wake_channel())
            .arg(&k.jobs)
            .arg(id)
            .arg(attempt)
            .arg(ms(delay))
            .arg(if error.is_some() {
                "release"
            } else {
                "abandon"
            })
            .arg(error.unwrap_or(""));
        self.fenced(cmd, id, true).await
    }

    async fn fail_job(
        self: &Arc<Self>,
        id: &str,
        attempt: u32,
        error: &str,
    ) -> Result<bool, QueueError> {
        let Some(k) = self.locate(id).await? else {
            return Ok(false);
        };
        let mut cmd = Inner::evalsha(&self.scripts.fail, &[&k.leased, &k.failed, &k.stats]);
        cmd.arg(&k.jobs).arg(id).arg(attempt).arg(error);
        self.fenced(cmd, id, true).await
    }

    /// One queue's failed store, oldest failure first, with each one's
    /// order (microseconds).
    async fn failed_of(self: &Arc<Self>, queue: &str) -> Result<Vec<(i64, FailedJob)>, QueueError> {
        let k = self.queue_keys(queue);
        let mut out = Vec::new();
        loop {
            let mut cmd = Inner::evalsha(&self.scripts.failed, &[&k.failed]);
            cmd.arg(&k.jobs).arg(out.len()).arg(PAGE);
            let value = self.run_one(cmd).await?;
            let values: Vec<Value> = redis::from_redis_value(value).map_err(|e| self.error(e))?;
            let page = values.len() / 6;
            for row in values.chunks(6) {
                out.push(codec::failed(queue, row).map_err(QueueError::Corrupt)?);
            }
            if page < PAGE {
                return Ok(out);
            }
        }
    }

    async fn retry_in(
        self: &Arc<Self>,
        queue: &str,
        ids: &[String],
    ) -> Result<Vec<Option<String>>, QueueError> {
        let k = self.queue_keys(queue);
        let new_ids: Vec<String> = ids.iter().map(|_| new_job_id(SystemTime::now())).collect();
        let cmds: Vec<Cmd> = ids
            .iter()
            .zip(&new_ids)
            .map(|(old, new)| {
                let mut cmd = Inner::evalsha(&self.scripts.retry, &[&k.ready, &k.failed, &k.stats]);
                cmd.arg(self.keys.wake_channel())
                    .arg(&k.jobs)
                    .arg(old)
                    .arg(new);
                cmd
            })
            .collect();
        let answers = self.run(cmds).await?;
        answers
            .into_iter()
            .zip(new_ids)
            .map(|(answer, new)| match answer {
                Ok(Value::Int(1)) => Ok(Some(new)),
                Ok(_) => Ok(None),
                Err(error) => Err(self.error(error)),
            })
            .collect()
    }

    /// Makes sure the wake-up subscription runs on this runtime.
    fn listen(self: &Arc<Self>) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut listener = lock(&self.wake.listener);
        if let Some((id, task)) = &*listener
            && *id == handle.id()
            && !task.is_finished()
        {
            return;
        }
        if let Some((_, task)) = listener.take() {
            task.abort();
        }
        let task = handle.spawn(subscribe(
            self.client.clone(),
            self.keys.wake_channel().to_owned(),
            self.wake.clone(),
            self.server.clone(),
        ));
        *listener = Some((handle.id(), task));
    }
}

/// Listens on the wake-up channel for as long as the backend lives,
/// connecting again whenever the connection drops.
async fn subscribe(client: redis::Client, channel: String, wake: Arc<Wake>, server: String) {
    use futures_util::StreamExt;
    let mut backoff = Duration::from_millis(100);
    let mut warned = false;
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    if warned {
                        tracing::info!(server = %server, "the wake-up channel is back");
                        warned = false;
                    }
                    wake.live.store(true, Ordering::Release);
                    // Jobs may have come while it was down.
                    wake.woken();
                    let mut messages = pubsub.on_message();
                    while messages.next().await.is_some() {
                        wake.woken();
                    }
                    wake.live.store(false, Ordering::Release);
                }
                Err(error) => {
                    if !warned {
                        tracing::warn!(server = %server, %error, "cannot subscribe to the wake-up channel; workers poll until it is back");
                        warned = true;
                    }
                }
            },
            Err(error) => {
                if !warned {
                    tracing::warn!(server = %server, %error, "cannot connect for wake-ups; workers poll until Redis is back");
                    warned = true;
                }
            }
        }
        wake.live.store(false, Ordering::Release);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

type ClaimReply = oneshot::Sender<Result<Vec<Job>, QueueError>>;
/// Claims with the same queues and lease go together: `(queues, lease_ms)`.
type ClaimKey = (Vec<String>, u64);
type AckReply = oneshot::Sender<Result<bool, QueueError>>;

/// Sends the queued requests, a round trip at a time, until none is left.
async fn flusher(inner: Arc<Inner>) {
    let mut guard = FlushGuard {
        inner: inner.clone(),
        finished: false,
    };
    loop {
        // Let the tasks that are ready to run issue theirs first (the
        // slots of a worker that the last round trip answered, finishing
        // their jobs): they go in this round trip instead of the next.
        tokio::task::yield_now().await;
        let ops = {
            let mut batch = lock(&inner.batch);
            if batch.ops.is_empty() {
                batch.flushing = false;
                // Finished: a request queued from now on starts another.
                guard.finished = true;
                return;
            }
            std::mem::take(&mut batch.ops)
        };
        inner.flush(ops).await;
    }
}

/// Ends a flusher that did not finish (its runtime shut down): the
/// requests left are dropped, so their callers get an error instead of
/// waiting forever, and the next request starts a flusher again.
struct FlushGuard {
    inner: Arc<Inner>,
    finished: bool,
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        if !self.finished {
            let mut batch = lock(&self.inner.batch);
            batch.ops.clear();
            batch.flushing = false;
        }
    }
}

fn distinct<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = Vec::new();
    for item in items {
        if !seen.contains(&item) {
            seen.push(item);
        }
    }
    seen
}

fn is_noscript(error: &redis::RedisError) -> bool {
    error.code() == Some("NOSCRIPT")
}

/// A copy of an error for each request of a batch that failed as one.
fn clone_error(error: &QueueError) -> QueueError {
    match error {
        QueueError::InvalidJob {
            id,
            listener,
            reason,
        } => QueueError::InvalidJob {
            id: id.clone(),
            listener: listener.clone(),
            reason,
        },
        other => QueueError::backend(BACKEND, RedisQueueError::Batch(other.to_string())),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[async_trait]
impl Backend for RedisBackend {
    async fn enqueue_many(&self, jobs: Vec<Job>) -> Result<(), QueueError> {
        if jobs.is_empty() {
            return Ok(());
        }
        for job in &jobs {
            job.validate()?;
            crate::keys::check_queue(job)?;
        }
        let (reply, answer) = oneshot::channel();
        self.inner.submit(Op::Enqueue { jobs, reply }, answer).await
    }

    async fn claim(
        &self,
        queues: &[String],
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Job>, QueueError> {
        self.inner.claim(queues, limit, lease).await
    }

    /// The ack and the claim go in one round trip (one pipeline, with the
    /// other slots' acks and claims of the moment).
    async fn ack_and_claim(
        &self,
        id: &str,
        attempt: u32,
        queues: &[String],
        limit: usize,
        lease: Duration,
    ) -> (Result<bool, QueueError>, Result<Vec<Job>, QueueError>) {
        self.inner
            .ack_and_claim(id, attempt, queues, limit, lease)
            .await
    }

    async fn extend(&self, id: &str, attempt: u32, lease: Duration) -> Result<bool, QueueError> {
        self.inner
            .fenced_op(id, attempt, ms(lease), Op::Extend)
            .await
    }

    async fn ack(&self, id: &str, attempt: u32) -> Result<bool, QueueError> {
        self.inner.fenced_op(id, attempt, 0, Op::Ack).await
    }

    async fn release(
        &self,
        id: &str,
        attempt: u32,
        delay: Duration,
        error: &str,
    ) -> Result<bool, QueueError> {
        self.inner.put_back(id, attempt, delay, Some(error)).await
    }

    async fn abandon(&self, id: &str, attempt: u32, delay: Duration) -> Result<bool, QueueError> {
        self.inner.put_back(id, attempt, delay, None).await
    }

    async fn fail(&self, id: &str, attempt: u32, error: &str) -> Result<bool, QueueError> {
        self.inner.fail_job(id, attempt, error).await
    }

    async fn failed(&self) -> Result<Vec<FailedJob>, QueueError> {
        let mut all = Vec::new();
        for queue in self.inner.queues().await? {
            all.extend(self.inner.failed_of(&queue).await?);
        }
        all.sort_by(|(a, x), (b, y)| a.cmp(b).then_with(|| x.id.cmp(&y.id)));
        Ok(all.into_iter().map(|(_, job)| job).collect())
    }

    async fn retry(&self, id: &str) -> Result<Option<String>, QueueError> {
        for queue in self.inner.queues().await? {
            if let Some(new) = self
                .inner
                .retry_in(&queue, &[id.to_owned()])
                .await?
                .pop()
                .flatten()
            {
                return Ok(Some(new));
            }
        }
        Ok(None)
    }

    async fn retry_all(&self) -> Result<usize, QueueError> {
        let mut moved = 0;
        for queue in self.inner.queues().await? {
            let failed = self.inner.failed_of(&queue).await?;
            let ids: Vec<String> = failed.into_iter().map(|(_, job)| job.id).collect();
            for chunk in ids.chunks(PAGE) {
                moved += self
                    .inner
                    .retry_in(&queue, chunk)
                    .await?
                    .iter()
                    .filter(|new| new.is_some())
                    .count();
            }
        }
        Ok(moved)
    }

    async fn forget(&self, id: &str) -> Result<bool, QueueError> {
        let inner = &self.inner;
        let cmds: Vec<Cmd> = inner
            .queues()
            .await?
            .iter()
            .map(|queue| {
                let k = inner.queue_keys(queue);
                let mut cmd = Inner::evalsha(&inner.scripts.forget, &[&k.failed]);
                cmd.arg(&k.jobs).arg(id);
                cmd
            })
            .collect();
        let mut forgotten = false;
        for answer in inner.run(cmds).await? {
            forgotten |= matches!(answer.map_err(|e| inner.error(e))?, Value::Int(1));
        }
        Ok(forgotten)
    }

    async fn flush_failed(&self) -> Result<usize, QueueError> {
        let inner = &self.inner;
        let mut flushed = 0;
        for queue in inner.queues().await? {
            let k = inner.queue_keys(&queue);
            loop {
                let mut cmd = Inner::evalsha(&inner.scripts.flush_failed, &[&k.failed]);
                cmd.arg(&k.jobs).arg(PAGE);
                let n: usize = redis::from_redis_value(inner.run_one(cmd).await?)
                    .map_err(|e| inner.error(e))?;
                flushed += n;
                if n < PAGE {
                    break;
                }
            }
        }
        Ok(flushed)
    }

    async fn stats(&self) -> Result<Vec<QueueStats>, QueueError> {
        let inner = &self.inner;
        let queues = inner.queues().await?;
        let cmds: Vec<Cmd> = queues
            .iter()
            .map(|queue| {
                let k = inner.queue_keys(queue);
                Inner::evalsha(
                    &inner.scripts.stats,
                    &[&k.ready, &k.delayed, &k.leased, &k.failed],
                )
            })
            .collect();
        let mut stats = Vec::new();
        for (queue, answer) in queues.into_iter().zip(inner.run(cmds).await?) {
            let counts: Vec<usize> = answer
                .and_then(|value| redis::from_redis_value(value).map_err(Into::into))
                .map_err(|e| inner.error(e))?;
            let &[ready, due, delayed, reserved, failed] = counts.as_slice() else {
                return Err(QueueError::Corrupt(format!(
                    "the stats of queue `{queue}` came back as {} numbers, not 5",
                    counts.len()
                )));
            };
            if ready + due + delayed + reserved + failed == 0 {
                continue;
            }
            let mut row = QueueStats::new(queue);
            row.pending = ready + due + delayed;
            row.delayed = delayed;
            row.reserved = reserved;
            row.failed = failed;
            stats.push(row);
        }
        Ok(stats)
    }

    async fn clear(&self, queue: &str) -> Result<usize, QueueError> {
        let inner = &self.inner;
        let k = inner.queue_keys(queue);
        let mut cleared = 0;
        loop {
            let mut cmd = Inner::evalsha(&inner.scripts.clear, &[&k.ready, &k.delayed]);
            cmd.arg(&k.jobs).arg(PAGE);
            let n: usize =
                redis::from_redis_value(inner.run_one(cmd).await?).map_err(|e| inner.error(e))?;
            cleared += n;
            if n < PAGE {
                return Ok(cleared);
            }
        }
    }

    /// Lists jobs in bounded steps: see the layout above. Without a
    /// search: one round trip for the clock and the queues, one per
    /// 1,000 jobs of the deepest range read (usually one), one for the
    /// page's hashes. With a search: every job the query's states and
    /// queue allow is read, 200 per script call, the calls of all queues
    /// and structures sharing each round trip.
    async fn jobs(&self, query: &JobQuery) -> Result<JobPage, QueueError> {
        self.inner.jobs(query).await
    }

    /// Two round trips: the clock and the queue set, then the job's hash
    /// and lease in every queue.
    async fn job(&self, id: &str) -> Result<Option<JobView>, QueueError> {
        self.inner.job(id).await
    }

    /// One round trip (one script call).
    async fn report(&self, report: &ActivityReport) -> Result<(), QueueError> {
        self.inner.report(report).await
    }

    /// One round trip (one script call).
    async fn activity(&self, since: SystemTime) -> Result<Activity, QueueError> {
        self.inner.activity(since).await
    }

    /// Waits for a wake-up from the server (a job enqueued on an empty
    /// queue, a delayed one due before the others, a retry), until the
    /// next delayed job is due or lease lapses as the latest claim saw it.
    /// While the wake-up channel is live, an idle worker sends nothing:
    /// it waits up to a minute, however small `max`; while the channel is
    /// down it waits at most `max`, so workers poll.
    async fn wait(&self, max: Duration) {
        let inner = &self.inner;
        inner.listen();
        let wake = &inner.wake;
        let notified = wake.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if wake.generation.load(Ordering::Acquire) != wake.claimed_at.load(Ordering::Acquire) {
            // A wake-up came after the latest claim began.
            return;
        }
        let longest = if wake.live.load(Ordering::Acquire) {
            IDLE_CHECK.max(max)
        } else {
            max
        };
        let due = wake.next_due.load(Ordering::Acquire);
        let until_due = (due >= 0).then(|| {
            let now = i64::try_from(wake.origin().elapsed().as_millis()).unwrap_or(i64::MAX / 2);
            // A few ms late, so the server's clock has passed it too.
            Duration::from_millis(u64::try_from(due - now).unwrap_or(0) + 5)
        });
        let sleep = until_due.map_or(longest, |d| d.min(longest));
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep(sleep) => {}
        }
    }
}
