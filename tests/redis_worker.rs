//! The worker suite (`tests/worker_suite`), run on a real Redis, and what
//! the Redis queue promises beyond the conformance suite: a stored job that
//! cannot be read fails alone, 10,000 delayed jobs due at once are promoted
//! in bounded chunks, the start-up warnings, connection loss, wake-ups that
//! cost no polling, and `rediss://`.
//!
//! Needs the shared Redis (`EVENTS_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379/0`; each test uses a fresh key prefix and deletes
//! its keys) and `redis-server` on the `PATH` for the tests that start a
//! private one. Without them the tests fail, saying what to start.

mod redis_support;
mod worker_suite;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use events::Worker;
use events::prelude::*;
use events::queue::{Job, Queue, RedisBackend, RedisOptions};
use redis_support::{PrivateRedis, Reply, fresh_prefix, fresh_url};
use serde::{Deserialize, Serialize};
use worker_suite::{dispatcher, raw_job};

/// A queue on a fresh prefix of the shared server.
async fn fresh_queue() -> (Queue, redis_support::Cleanup, redis_support::Resp) {
    let (url, cleanup, conn) = fresh_url();
    let queue = events::queue::connect(&url).await.unwrap();
    (queue, cleanup, conn)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

// --- the worker suite (tests/worker_suite), on Redis -------------------------------

#[tokio::test]
async fn a_flaky_listener_succeeds_on_its_third_try() {
    let (queue, _cleanup, _) = fresh_queue().await;
    worker_suite::a_flaky_listener_succeeds_on_its_third_try(queue).await;
}

#[tokio::test]
async fn a_listener_out_of_tries_lands_in_the_failed_store_and_its_hook_runs() {
    let (queue, _cleanup, _) = fresh_queue().await;
    worker_suite::a_listener_out_of_tries_lands_in_the_failed_store_and_its_hook_runs(queue).await;
}

#[tokio::test]
async fn poison_payloads_panics_and_hangs_become_failed_jobs_and_unknown_listeners_wait() {
    let (queue, _cleanup, _) = fresh_queue().await;
    worker_suite::poison_payloads_panics_and_hangs_become_failed_jobs_and_unknown_listeners_wait(
        queue,
    )
    .await;
}

#[tokio::test]
async fn queues_are_worked_in_priority_order() {
    let (queue, _cleanup, _) = fresh_queue().await;
    worker_suite::queues_are_worked_in_priority_order(queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_hands_back_jobs_that_outlive_the_grace_period() {
    let (queue, _cleanup, _) = fresh_queue().await;
    worker_suite::shutdown_hands_back_jobs_that_outlive_the_grace_period(queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_keeps_its_lease_past_its_length() {
    // Each worker on a backend (a connection) of its own, as on two
    // machines.
    let (url, _cleanup, _) = fresh_url();
    worker_suite::a_running_job_keeps_its_lease_past_its_length(|| {
        events::queue::open(&url).unwrap()
    })
    .await;
}

// --- a listener this program lacks ------------------------------------------------

#[event(name = "redis.forever")]
#[derive(Serialize, Deserialize)]
pub struct Forever;

#[listener(queue = "forever")]
fn forever(_: &Forever) {}

#[tokio::test]
async fn jobs_of_a_listener_this_program_lacks_wait_untried_and_the_worker_stops() {
    let (url, _cleanup, mut conn) = fresh_url();
    let prefix = url.rsplit_once("prefix=").unwrap().1.to_owned();
    let queue = events::queue::connect(&url).await.unwrap();
    let old = raw_job("old-queue", "app::removed_listener", "gone", "{}");
    let old_id = old.id.clone();
    queue.enqueue(old).await.unwrap();
    // Its listener is known, but it waits on the queue of a listener that
    // is not: it runs.
    queue
        .enqueue(raw_job(
            "old-queue",
            "redis_worker::forever",
            "redis.forever",
            "null",
        ))
        .await
        .unwrap();

    // The default worker works every queue that holds jobs, not only those
    // today's listeners name; `run_until_empty` ends although one is left.
    let report = tokio::time::timeout(
        Duration::from_secs(30),
        Worker::new(queue.clone()).run_until_empty(),
    )
    .await
    .expect("the worker stops when only jobs it cannot run are left")
    .unwrap();
    assert_eq!(
        (report.succeeded, report.failed, report.set_aside),
        (1, 0, 1),
        "{report:?}"
    );
    assert!(queue.failed().await.unwrap().is_empty(), "nothing failed");
    assert_eq!(
        queue.size("old-queue").await.unwrap(),
        1,
        "the unknown listener's job waits"
    );
    // In Redis: handed back untried (the try taken back), delayed about a
    // minute, out of the way.
    let key = format!("{{{prefix}:old-queue}}:job:{old_id}");
    let fields = conn.cmd(&["HMGET", &key, "s", "v", "x"]).items();
    // `s`: the state, then the tries started.
    assert_eq!(
        fields[0],
        Reply::Bulk(Some(b"d0".to_vec())),
        "delayed, and untried"
    );
    let due_in = fields[1].int() - now_ms();
    assert!(
        (50_000..=61_000).contains(&due_in),
        "out of the way for a minute: due in {due_in} ms"
    );
    assert_eq!(fields[2], Reply::Bulk(None), "no error recorded");
}

// --- a stored job that cannot be read ------------------------------------------------

static READABLE: Mutex<Vec<u64>> = Mutex::new(Vec::new());

#[event(name = "redis.readable")]
#[derive(Serialize, Deserialize)]
pub struct Readable {
    pub n: u64,
}

#[listener(queue = "unreadable")]
fn readable(e: &Readable) {
    READABLE.lock().unwrap().push(e.n);
}

/// Writes a job hash by hand, as `redis-cli` would, ready to claim.
fn write_raw_job(conn: &mut redis_support::Resp, prefix: &str, queue: &str, id: &str, body: &[u8]) {
    let tag = format!("{{{prefix}:{queue}}}");
    let key = format!("{tag}:job:{id}");
    let now = now_ms().to_string();
    let reply = conn
        .try_cmd(&[
            b"HSET",
            key.as_bytes(),
            b"b",
            body,
            b"s",
            b"w0",
            b"v",
            now.as_bytes(),
        ])
        .unwrap();
    assert_eq!(reply, Reply::Int(3));
    conn.cmd(&["RPUSH", &format!("{tag}:ready"), id]);
    conn.cmd(&["SADD", &format!("{prefix}:queues"), queue]);
}

#[tokio::test]
async fn a_stored_job_that_is_not_json_or_not_utf8_fails_alone_with_its_reason() {
    let (url, _cleanup, mut conn) = fresh_url();
    let prefix = url.rsplit_once("prefix=").unwrap().1.to_owned();
    let queue = events::queue::connect(&url).await.unwrap();
    let d = dispatcher(&queue);
    d.dispatch(Readable { n: 1 }).await.unwrap();
    write_raw_job(
        &mut conn,
        &prefix,
        "unreadable",
        "not-json",
        b"{\"listener\": oops",
    );
    write_raw_job(
        &mut conn,
        &prefix,
        "unreadable",
        "not-utf8",
        b"{\"listener\":\"\xff\xfe\"}",
    );
    d.dispatch(Readable { n: 2 }).await.unwrap();

    // One claim takes all four: the two readable jobs come back, the two
    // others go to the failed store with the reason.
    let claimed = queue
        .backend()
        .claim(&["unreadable".to_owned()], 10, Duration::from_secs(30))
        .await
        .expect("one unreadable job never fails the claim");
    assert_eq!(
        claimed
            .iter()
            .map(|j| j.payload.as_str())
            .collect::<Vec<_>>(),
        [r#"{"n":1}"#, r#"{"n":2}"#]
    );
    let failed = queue
        .failed()
        .await
        .expect("the failed store lists jobs whose body cannot be read");
    let mut reasons: Vec<(String, String)> = failed
        .iter()
        .map(|f| (f.id.clone(), f.error.clone()))
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0].0, "not-json");
    assert!(
        reasons[0]
            .1
            .starts_with("the stored job cannot be read: its body is not a job's JSON: "),
        "{reasons:?}"
    );
    assert_eq!(reasons[1].0, "not-utf8");
    assert!(
        reasons[1]
            .1
            .starts_with("the stored job cannot be read: its body is not UTF-8: "),
        "{reasons:?}"
    );
    // The readable ones go on: hand them back, and a worker runs them,
    // along with another one written after a second unreadable job.
    for job in &claimed {
        assert!(
            queue
                .backend()
                .abandon(&job.id, job.attempt, Duration::ZERO)
                .await
                .unwrap()
        );
    }
    write_raw_job(&mut conn, &prefix, "unreadable", "empty", b"");
    d.dispatch(Readable { n: 3 }).await.unwrap();
    let report = Worker::new(queue.clone())
        .queues(["unreadable"])
        .concurrency(2)
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!(report.succeeded, 3, "{report:?}");
    let mut ran = READABLE.lock().unwrap().clone();
    ran.sort();
    assert_eq!(ran, [1, 2, 3]);
    assert_eq!(queue.failed().await.unwrap().len(), 3);
    assert_eq!(queue.size("unreadable").await.unwrap(), 0);
    // The failed ones can be forgotten like any other.
    assert!(queue.forget("not-utf8").await.unwrap());
    assert_eq!(queue.flush_failed().await.unwrap(), 2);
}

// --- 10,000 delayed jobs due at once ----------------------------------------------

static TICKS: AtomicUsize = AtomicUsize::new(0);

#[event(name = "redis.tick")]
#[derive(Serialize, Deserialize)]
pub struct Tick {
    pub n: u64,
}

#[listener(queue = "due")]
fn tick(_: &Tick) {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

/// The longest script run in the slow log, in µs, and how many it holds.
fn longest_script(conn: &mut redis_support::Resp) -> (i64, usize) {
    let entries = conn.cmd(&["SLOWLOG", "GET", "-1"]).items();
    let mut longest = 0;
    let mut scripts = 0;
    for entry in &entries {
        let fields = entry.items();
        let command = fields[3].items()[0].text().to_uppercase();
        if command == "EVALSHA" || command == "EVAL" {
            scripts += 1;
            longest = longest.max(fields[2].int());
        }
    }
    (longest, scripts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_delayed_jobs_due_at_once_are_promoted_in_bounded_chunks_and_all_run() {
    const JOBS: usize = 10_000;
    let server = PrivateRedis::start(&[]);
    let mut conn = server.conn();
    let queue = events::queue::connect(&server.url("due")).await.unwrap();
    let due = SystemTime::now() + Duration::from_millis(1500);
    let jobs: Vec<Job> = (0..JOBS)
        .map(|n| {
            let mut job = raw_job(
                "due",
                "redis_worker::tick",
                "redis.tick",
                &format!(r#"{{"n":{n}}}"#),
            );
            job.id = format!("due-{n}");
            job.available_at = due;
            job
        })
        .collect();
    for chunk in jobs.chunks(500) {
        queue.enqueue_many(chunk.to_vec()).await.unwrap();
    }
    assert_eq!(conn.cmd(&["ZCARD", "{due:due}:delayed"]).int(), JOBS as i64);
    tokio::time::sleep(
        due.duration_since(SystemTime::now())
            .unwrap_or_default()
            .saturating_add(Duration::from_millis(50)),
    )
    .await;

    // Every script from here on is logged with its duration.
    conn.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    conn.cmd(&["CONFIG", "SET", "slowlog-max-len", "100000"]);
    conn.cmd(&["SLOWLOG", "RESET"]);

    // One claim promotes one chunk (1,000, the default cap), not all.
    let first = queue
        .backend()
        .claim(&["due".to_owned()], 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        conn.cmd(&["ZCARD", "{due:due}:delayed"]).int(),
        (JOBS - 1000) as i64,
        "one claim promotes at most 1,000"
    );
    assert_eq!(conn.cmd(&["LLEN", "{due:due}:ready"]).int(), 999);
    assert!(
        queue
            .backend()
            .abandon(&first[0].id, first[0].attempt, Duration::ZERO)
            .await
            .unwrap()
    );

    let started = Instant::now();
    let report = tokio::time::timeout(
        Duration::from_secs(40),
        Worker::new(queue.clone())
            .queues(["due"])
            .concurrency(8)
            .run_until_empty(),
    )
    .await
    .expect("10,000 due jobs run within 40 s")
    .unwrap();
    let took = started.elapsed();
    assert_eq!(report.succeeded, JOBS as u64, "{report:?}");
    assert_eq!(TICKS.load(Ordering::Relaxed), JOBS);
    assert_eq!(conn.cmd(&["ZCARD", "{due:due}:delayed"]).int(), 0);
    assert_eq!(conn.cmd(&["LLEN", "{due:due}:ready"]).int(), 0);

    let (longest, scripts) = longest_script(&mut conn);
    println!(
        "10,000 due delayed jobs: ran in {:.2} s; {scripts} scripts logged, the longest {:.2} ms",
        took.as_secs_f64(),
        longest as f64 / 1000.0
    );
    assert!(scripts >= 10, "the slow log caught the claims: {scripts}");
    assert!(
        longest < 50_000,
        "a script held Redis for {longest} µs (bound: 50 ms)"
    );
}

// --- start-up checks -------------------------------------------------------------

/// Warnings logged by the backend, each as `(server, message)`.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<(String, String)>>>);

struct Fields<'a> {
    server: &'a mut String,
    message: &'a mut String,
}

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "server" => *self.server = format!("{value:?}"),
            "message" => *self.message = format!("{value:?}"),
            _ => {}
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "server" => *self.server = value.to_owned(),
            "message" => *self.message = value.to_owned(),
            _ => {}
        }
    }
}

impl tracing::Subscriber for Warnings {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() != tracing::Level::WARN {
            return;
        }
        let (mut server, mut message) = (String::new(), String::new());
        event.record(&mut Fields {
            server: &mut server,
            message: &mut message,
        });
        self.0.lock().unwrap().push((server, message));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

impl Warnings {
    /// The warnings logged for `server`, once `count` of them came (or 5 s
    /// passed), and 200 ms more for any extra one.
    async fn of(&self, server: &str, count: usize) -> Vec<String> {
        let ours = || -> Vec<String> {
            self.0
                .lock()
                .unwrap()
                .iter()
                .filter(|(s, _)| s == server)
                .map(|(_, m)| m.clone())
                .collect()
        };
        let started = Instant::now();
        while ours().len() < count && started.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        ours()
    }
}

/// The warnings every test of this file logs (one subscriber per process).
fn warnings() -> Warnings {
    static WARNINGS: std::sync::OnceLock<Warnings> = std::sync::OnceLock::new();
    WARNINGS
        .get_or_init(|| {
            let warnings = Warnings::default();
            tracing::subscriber::set_global_default(warnings.clone())
                .expect("no other subscriber in this test binary");
            warnings
        })
        .clone()
}

const EVICTS: &str = "Redis evicts keys when its memory is full (maxmemory-policy allkeys-lru): queued jobs can vanish; set `maxmemory-policy noeviction`";
const NO_DISK: &str = "Redis keeps nothing on disk (appendonly no, no save points): a restart loses every queued job; set `appendonly yes`";

#[tokio::test]
async fn a_server_that_evicts_and_keeps_nothing_on_disk_gives_both_warnings_once() {
    let warnings = warnings();
    let server = PrivateRedis::start(&[
        "--maxmemory-policy",
        "allkeys-lru",
        "--save",
        "",
        "--appendonly",
        "no",
    ]);
    let backend = RedisBackend::open(&server.url("warned")).unwrap();
    let findings: Vec<String> = backend
        .check_server()
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(findings, [EVICTS, NO_DISK]);

    // Logged at the first connection, once, however many operations follow.
    let queue = Queue::with_backend(&server.url("warned"), backend);
    for n in 0..5 {
        let mut job = raw_job("w", "redis_worker::tick", "redis.tick", "{}");
        job.id = format!("w{n}");
        queue.enqueue(job).await.unwrap();
        queue.size("w").await.unwrap();
    }
    assert_eq!(
        warnings.of(&server.server(), 2).await,
        [EVICTS, NO_DISK],
        "each warning once, in words"
    );

    // Persistence on and `noeviction`: nothing to say.
    let safe = PrivateRedis::start(&["--appendonly", "yes"]);
    let backend = RedisBackend::open(&safe.url("safe")).unwrap();
    assert_eq!(backend.check_server().await.unwrap(), []);
}

#[tokio::test]
async fn where_config_is_refused_it_says_it_could_not_check_and_works() {
    let warnings = warnings();
    let server = PrivateRedis::start(&["--rename-command", "CONFIG", ""]);
    let url = server.url("noconfig");
    let backend = RedisBackend::open(&url).unwrap();
    let findings = backend.check_server().await.unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    let text = findings[0].to_string();
    assert!(could_not_check(&text), "{text}");
    let queue = Queue::with_backend(&url, backend);
    dispatcher(&queue).dispatch(Unchecked).await.unwrap();
    let report = Worker::new(queue.clone())
        .queues(["unchecked"])
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!(report.succeeded, 1, "{report:?}");
    assert_eq!(UNCHECKED.load(Ordering::SeqCst), 1);
    // And it said so in the log, once.
    let logged = warnings.of(&server.server(), 1).await;
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(could_not_check(&logged[0]), "{logged:?}");

    // A user whose ACL forbids CONFIG, as on a managed Redis: the same.
    let acl = PrivateRedis::start(&[]);
    acl.conn().cmd(&[
        "ACL", "SETUSER", "app", "on", ">secret", "~*", "&*", "+@all", "-config",
    ]);
    let url = format!("redis://app:secret@127.0.0.1:{}/0?prefix=acl", acl.port);
    let backend = RedisBackend::open(&url).unwrap();
    let findings = backend.check_server().await.unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    let text = findings[0].to_string();
    assert!(
        could_not_check(&text) && text.contains("no permissions to run the 'config|get' command"),
        "{text}"
    );
    let queue = Queue::with_backend(&url, backend);
    queue
        .enqueue(raw_job(
            "acl",
            "redis_worker::unchecked",
            "redis.unchecked",
            "null",
        ))
        .await
        .unwrap();
    assert_eq!(queue.size("acl").await.unwrap(), 1);
}

fn could_not_check(text: &str) -> bool {
    text.starts_with(
        "could not check Redis's eviction and persistence settings (CONFIG GET was refused: ",
    ) && text.ends_with("); make sure `maxmemory-policy` is `noeviction` and `appendonly` is `yes`")
}

static UNCHECKED: AtomicUsize = AtomicUsize::new(0);

#[event(name = "redis.unchecked")]
#[derive(Serialize, Deserialize)]
pub struct Unchecked;

#[listener(queue = "unchecked")]
fn unchecked(_: &Unchecked) {
    UNCHECKED.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test]
async fn the_shared_server_gets_the_warnings_its_config_calls_for() {
    let (url, _cleanup, mut conn) = fresh_url();
    let get = |conn: &mut redis_support::Resp, name: &str| {
        conn.cmd(&["CONFIG", "GET", name]).items()[1].text()
    };
    let policy = get(&mut conn, "maxmemory-policy");
    let appendonly = get(&mut conn, "appendonly");
    let save = get(&mut conn, "save");
    let mut expected = Vec::new();
    if policy != "noeviction" {
        expected.push(format!("Redis evicts keys when its memory is full (maxmemory-policy {policy}): queued jobs can vanish; set `maxmemory-policy noeviction`"));
    }
    if appendonly != "yes" && save.trim().is_empty() {
        expected.push(NO_DISK.to_owned());
    }
    let findings: Vec<String> = RedisBackend::open(&url)
        .unwrap()
        .check_server()
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    println!(
        "the shared server (maxmemory-policy {policy}, appendonly {appendonly}, save {save:?}): {findings:?}"
    );
    assert_eq!(findings, expected);
}

// --- connection loss -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_fails_in_words_while_redis_is_down_and_the_same_queue_works_when_it_is_back() {
    let mut server = PrivateRedis::start(&[]);
    let queue = events::queue::connect(&server.url("down")).await.unwrap();
    let d = dispatcher(&queue);
    d.dispatch(Tick { n: 1 }).await.unwrap();

    server.kill();
    let started = Instant::now();
    let error = tokio::time::timeout(Duration::from_secs(15), d.dispatch(Tick { n: 2 }))
        .await
        .expect("dispatch never hangs while Redis is down")
        .expect_err("dispatch fails while Redis is down");
    let took = started.elapsed();
    let text = events::error::Chain(&error).to_string();
    println!("dispatch with Redis down failed after {took:?}: {text}");
    assert!(
        text.contains(&format!("cannot reach Redis at {}", server.server())),
        "{text}"
    );
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(8),
        "it kept trying for the operation timeout (5 s), no longer: {took:?}"
    );

    // A shorter operation timeout gives up sooner.
    let quick = RedisBackend::open_with(
        &format!("redis://127.0.0.1:{}/0", server.port),
        RedisOptions::new()
            .prefix("down")
            .unwrap()
            .op_timeout(Duration::from_millis(500)),
    )
    .unwrap();
    let quick = Queue::with_backend("redis://quick", quick);
    let started = Instant::now();
    assert!(quick.size("due").await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    server.restart();
    d.dispatch(Tick { n: 3 }).await.unwrap();
    assert_eq!(
        queue.size("due").await.unwrap(),
        1,
        "the same queue works again (the first job was lost with the unpersisted server)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_to_a_redis_that_stopped_answering_fails_in_words_and_never_hangs() {
    let server = PrivateRedis::start(&[]);
    let queue = events::queue::connect(&server.url("stopped"))
        .await
        .unwrap();
    let d = dispatcher(&queue);
    d.dispatch(Tick { n: 1 }).await.unwrap();

    // Stopped (SIGSTOP): connections open, nothing answers.
    server.signal("-STOP");
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(30), d.dispatch(Tick { n: 2 })).await;
    let took = started.elapsed();
    server.signal("-CONT");
    let error = answer
        .expect("dispatch never hangs while Redis does not answer")
        .expect_err("dispatch fails while Redis does not answer");
    let text = events::error::Chain(&error).to_string();
    println!("dispatch with Redis stopped failed after {took:?}: {text}");
    assert!(text.contains(&server.server()), "{text}");
    assert!(
        took < Duration::from_secs(12),
        "it gave up about the operation timeout (5 s): {took:?}"
    );

    // Answering again: the same queue works (the stopped dispatch may or
    // may not have stored its job: Redis had it, unanswered).
    d.dispatch(Tick { n: 3 }).await.unwrap();
    let size = queue.size("due").await.unwrap();
    assert!((2..=3).contains(&size), "{size}");
}

#[tokio::test]
async fn a_queue_idle_across_a_redis_restart_that_lost_everything_is_listed_again() {
    let mut server = PrivateRedis::start(&[]);
    let queue = events::queue::connect(&server.url("emptied"))
        .await
        .unwrap();
    let d = dispatcher(&queue);
    d.dispatch(Tick { n: 1 }).await.unwrap();
    assert_eq!(queue.size("due").await.unwrap(), 1);

    // Nothing happens while Redis restarts, without persistence: it comes
    // back empty, and the next dispatch is the first this queue sees.
    server.restart();
    d.dispatch(Tick { n: 2 }).await.unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        stats
            .iter()
            .map(|s| (s.queue.as_str(), s.pending))
            .collect::<Vec<_>>(),
        [("due", 1)],
        "the queue of the job dispatched after the restart is listed"
    );
}

static RESUMED: Mutex<Vec<u64>> = Mutex::new(Vec::new());

#[event(name = "redis.resumed")]
#[derive(Serialize, Deserialize)]
pub struct Resumed {
    pub n: u64,
}

/// Three tries: a claim that Redis ran just before it died, whose answer
/// never came back, charges a try to a job no worker runs; its lease lapses
/// and it runs on the next try. (With one try, such a job lands in the
/// failed store as "a worker died or stalled while running it": seen here
/// in about half the runs when this listener had one try.)
#[listener(queue = "resume", timeout = "1h", tries = 3)]
async fn resumed(e: &Resumed) {
    tokio::time::sleep(Duration::from_millis(10)).await;
    RESUMED.lock().unwrap().push(e.n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_redis_goes_away_for_two_seconds_resumes_and_finishes() {
    const JOBS: u64 = 150;
    let mut server = PrivateRedis::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let queue = events::queue::connect(&server.url("resume")).await.unwrap();
    let d = dispatcher(&queue);
    for n in 0..JOBS {
        d.dispatch(Resumed { n }).await.unwrap();
    }
    let worker = tokio::spawn(
        Worker::new(queue.clone())
            .queues(["resume"])
            .concurrency(2)
            .lease(Duration::from_secs(2))
            .run_until_empty(),
    );
    let started = Instant::now();
    while RESUMED.lock().unwrap().len() < 30 {
        assert!(started.elapsed() < Duration::from_secs(10), "no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    let at_kill = RESUMED.lock().unwrap().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.restart();
    let back = Instant::now();
    let report = tokio::time::timeout(Duration::from_secs(30), worker)
        .await
        .expect("the worker finishes once Redis is back")
        .unwrap()
        .expect("the worker survives Redis going away");
    let mut ran = RESUMED.lock().unwrap().clone();
    println!(
        "{} runs before the kill; finished {:?} after Redis came back; {report:?}",
        at_kill,
        back.elapsed()
    );
    ran.sort();
    ran.dedup();
    let missing: Vec<u64> = (0..JOBS)
        .filter(|n| ran.binary_search(n).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "jobs {missing:?} never ran; stats {:?}; failed {:?}",
        queue.stats().await,
        queue.failed().await
    );
    assert_eq!(queue.size("resume").await.unwrap(), 0);
    assert!(queue.failed().await.unwrap().is_empty());
}

// --- wake-ups ----------------------------------------------------------------------

static WOKEN: Mutex<Vec<(u64, Instant)>> = Mutex::new(Vec::new());

#[event(name = "redis.wake")]
#[derive(Serialize, Deserialize)]
pub struct Wake {
    pub n: u64,
}

#[listener(queue = "wake")]
fn woken(e: &Wake) {
    WOKEN.lock().unwrap().push((e.n, Instant::now()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_sends_nothing_and_a_new_job_starts_within_milliseconds() {
    let server = PrivateRedis::start(&[]);
    let mut conn = server.conn();
    let url = server.url("wake");
    let worker_queue = events::queue::connect(&url).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(
        Worker::new(worker_queue)
            .queues(["wake"])
            .concurrency(2)
            .poll_interval(Duration::from_millis(50))
            .run_until(async {
                let _ = stopped.await;
            }),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    conn.cmd(&["CONFIG", "RESETSTAT"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let evalsha = conn.calls("evalsha");
    let info = conn.cmd(&["INFO", "commandstats"]).text();
    let calls: u64 = info
        .lines()
        .filter(|l| {
            l.starts_with("cmdstat_")
                && !l.starts_with("cmdstat_info")
                && !l.starts_with("cmdstat_config")
        })
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    println!("an idle worker (poll 50 ms) over 3 s: {evalsha} EVALSHA, {calls} commands in all");
    assert!(
        calls <= 2,
        "an idle worker polls: {calls} commands in 3 s\n{info}"
    );

    // A producer on a connection of its own: each job starts within ms.
    let producer = dispatcher(&events::queue::connect(&url).await.unwrap());
    let mut delays = Vec::new();
    for n in 0..5 {
        let sent = Instant::now();
        producer.dispatch(Wake { n }).await.unwrap();
        let started = loop {
            if let Some((_, at)) = WOKEN.lock().unwrap().iter().find(|(m, _)| *m == n) {
                break *at;
            }
            assert!(sent.elapsed() < Duration::from_secs(5), "job {n} never ran");
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        delays.push(started.duration_since(sent));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let longest = delays.iter().max().unwrap();
    println!("from dispatch to the listener on an idle worker: {delays:?}");
    assert!(
        *longest < Duration::from_millis(200),
        "a job waited {longest:?} for an idle worker"
    );
    let _ = stop.send(());
    worker.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_keeps_waking_at_once_across_a_redis_restart() {
    static AWOKEN: Mutex<Vec<(u64, Instant)>> = Mutex::new(Vec::new());

    #[event(name = "redis.awake")]
    #[derive(Serialize, Deserialize)]
    pub struct Awake {
        pub n: u64,
    }

    #[listener(queue = "awake")]
    fn awake(e: &Awake) {
        AWOKEN.lock().unwrap().push((e.n, Instant::now()));
    }

    let mut server = PrivateRedis::start(&[]);
    let url = server.url("awake");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(
        Worker::new(events::queue::connect(&url).await.unwrap())
            .queues(["awake"])
            .poll_interval(Duration::from_millis(50))
            .run_until(async {
                let _ = stopped.await;
            }),
    );
    let producer = dispatcher(&events::queue::connect(&url).await.unwrap());
    let delay_of = |n: u64, sent: Instant| async move {
        loop {
            if let Some((_, at)) = AWOKEN.lock().unwrap().iter().find(|(m, _)| *m == n) {
                return at.duration_since(sent);
            }
            assert!(
                sent.elapsed() < Duration::from_secs(10),
                "job {n} never ran"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Instant::now();
    producer.dispatch(Awake { n: 1 }).await.unwrap();
    let before = delay_of(1, sent).await;

    server.restart();
    // Back for 3 s: the wake-up channel is up again, and the worker idle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut conn = server.conn();
    conn.cmd(&["CONFIG", "RESETSTAT"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let evalsha = conn.calls("evalsha");
    let sent = Instant::now();
    producer.dispatch(Awake { n: 2 }).await.unwrap();
    let after = delay_of(2, sent).await;
    println!(
        "an idle worker's wake-up: {before:?} before a Redis restart, {after:?} after; {evalsha} scripts in 1 s of idling after it"
    );
    assert!(
        evalsha <= 1,
        "the idle worker polls after the restart: {evalsha} scripts in 1 s"
    );
    assert!(
        after < Duration::from_millis(200),
        "after the restart a job waited {after:?} for an idle worker"
    );
    let _ = stop.send(());
    worker.await.unwrap().unwrap();
}

// --- rediss:// -----------------------------------------------------------------------

/// A self-signed certificate for `localhost` and 127.0.0.1, made by
/// `openssl req` in `dir`: `(cert, key)`.
fn self_signed(dir: &std::path::Path) -> (String, String) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let status = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("this test makes a certificate with `openssl` (apt-get install openssl)");
    assert!(status.success(), "openssl req failed: {status}");
    (
        cert.to_str().unwrap().to_owned(),
        key.to_str().unwrap().to_owned(),
    )
}

/// A private `redis-server` serving TLS on a port of its own (its plain
/// port stays open for the test's own look at the keys), with its
/// certificate: `(server, tls_port, cert, certs_dir)`.
fn tls_server() -> (PrivateRedis, String, String, tempfile::TempDir) {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path());
    let tls_port = redis_support::free_port().to_string();
    let server = PrivateRedis::start(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &cert,
        "--tls-auth-clients",
        "no",
    ]);
    (server, tls_port, cert, certs)
}

#[tokio::test]
async fn a_rediss_queue_enqueues_and_claims_over_tls() {
    let (server, tls_port, _cert, _certs) = tls_server();
    let prefix = fresh_prefix();
    // The certificate is our own: tell the client not to verify it.
    let url = format!("rediss://localhost:{tls_port}/0?prefix={prefix}#insecure");
    let queue = events::queue::connect(&url).await.unwrap();
    let mut job = raw_job("tls", "redis_worker::tick", "redis.tick", r#"{"n":7}"#);
    job.id = "over-tls".into();
    queue.enqueue(job).await.unwrap();
    let claimed = queue
        .backend()
        .claim(&["tls".to_owned()], 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        (claimed[0].id.as_str(), claimed[0].payload.as_str()),
        ("over-tls", r#"{"n":7}"#)
    );
    assert!(
        queue
            .backend()
            .ack(&claimed[0].id, claimed[0].attempt)
            .await
            .unwrap()
    );
    // It went over TLS: the plain port saw no job, the server counts a TLS
    // client... and the job is gone after its ack.
    let mut conn = server.conn();
    let tag = format!("{{{prefix}:tls}}");
    assert_eq!(conn.cmd(&["LLEN", &format!("{tag}:ready")]).int(), 0);
    assert_eq!(
        conn.cmd(&["EXISTS", &format!("{tag}:job:over-tls")]).int(),
        0
    );
    let stats: HashMap<String, String> = conn
        .cmd(&["HGETALL", &format!("{tag}:stats")])
        .items()
        .chunks(2)
        .map(|kv| (kv[0].text(), kv[1].text()))
        .collect();
    assert_eq!(stats.get("enqueued").map(String::as_str), Some("1"));
    // Without `#insecure`, a certificate no one trusts is refused, in words.
    let strict =
        events::queue::connect(&format!("rediss://localhost:{tls_port}/0?prefix={prefix}"))
            .await
            .unwrap();
    let error = tokio::time::timeout(Duration::from_secs(15), strict.size("tls"))
        .await
        .expect("never hangs")
        .expect_err("an untrusted certificate is refused");
    println!("untrusted certificate: {}", events::error::Chain(&error));
}

const CHILD_TLS_URL: &str = "EVENTS_TEST_CHILD_TLS_URL";

/// Not a test of its own: the client process of
/// `a_rediss_queue_trusts_a_certificate_the_system_trust_store_names` (this
/// binary again, with `CHILD_TLS_URL` set). Without it, it does nothing.
#[tokio::test]
async fn child_tls_client() {
    let Ok(url) = std::env::var(CHILD_TLS_URL) else {
        return;
    };
    let queue = events::queue::connect(&url).await.unwrap();
    let mut job = raw_job("tls", "redis_worker::tick", "redis.tick", r#"{"n":8}"#);
    job.id = "trusted".into();
    queue.enqueue(job).await.unwrap();
    let claimed = queue
        .backend()
        .claim(&["tls".to_owned()], 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        queue
            .backend()
            .ack(&claimed[0].id, claimed[0].attempt)
            .await
            .unwrap()
    );
    println!("CLAIMED {} OVER TLS", claimed[0].id);
}

/// A real trust path, no `#insecure`: the certificate is trusted through
/// OpenSSL's `SSL_CERT_FILE`, set for a client process of its own (the
/// variable is read process-wide, so not in this one).
#[test]
fn a_rediss_queue_trusts_a_certificate_the_system_trust_store_names() {
    let (server, tls_port, cert, _certs) = tls_server();
    let prefix = fresh_prefix();
    let url = format!("rediss://localhost:{tls_port}/0?prefix={prefix}");
    let run = |trust: Option<&str>| {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child
            .args([
                "--exact",
                "child_tls_client",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(CHILD_TLS_URL, &url)
            .env_remove("SSL_CERT_DIR");
        match trust {
            Some(cert) => child.env("SSL_CERT_FILE", cert),
            None => child.env_remove("SSL_CERT_FILE"),
        };
        child.output().unwrap()
    };
    let trusted = run(Some(&cert));
    let out = String::from_utf8_lossy(&trusted.stdout);
    assert!(
        trusted.status.success() && out.contains("CLAIMED trusted OVER TLS"),
        "{out}\n{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    // The same client without the certificate in its trust store refuses
    // the server.
    let untrusted = run(None);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&untrusted.stdout),
        String::from_utf8_lossy(&untrusted.stderr)
    );
    assert!(!untrusted.status.success(), "{out}");
    assert!(out.contains("certificate verify failed"), "{out}");
    // One job went through, once.
    let mut conn = server.conn();
    let succeeded = conn.cmd(&["HGET", &format!("{{{prefix}:tls}}:stats"), "succeeded"]);
    assert_eq!(succeeded, Reply::Bulk(Some(b"1".to_vec())));
}

#[tokio::test]
async fn a_server_down_at_the_first_connection_is_checked_once_it_is_back() {
    let warnings = warnings();
    let mut server = PrivateRedis::start(&[
        "--maxmemory-policy",
        "allkeys-lru",
        "--save",
        "",
        "--appendonly",
        "no",
    ]);
    server.kill();
    let backend = RedisBackend::open_with(
        &format!("redis://{}", server.server()),
        events::queue::RedisOptions::new()
            .prefix("late")
            .unwrap()
            .op_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    let queue = Queue::with_backend(&server.url("late"), backend);
    assert!(queue.size("w").await.is_err(), "Redis is down");
    server.restart();
    // The check asks again while the server is away, and warns once it
    // answers, without another operation.
    assert_eq!(
        warnings.of(&server.server(), 2).await,
        [EVICTS, NO_DISK],
        "the warnings come once the server is back"
    );
    assert_eq!(queue.size("w").await.unwrap(), 0);
}
