//! The Redis queue's reliability promises (issue 11, points 1, 2, 3, 4 and
//! 7), each checked from outside: the tests start real worker processes
//! (this binary again, running `child_process`) against a real Redis, kill,
//! stop and restart them, and count from the records the listeners leave in
//! a directory what ran, how often, and what is left in Redis.
//!
//! The tests that stop or restart Redis start a private `redis-server` on a
//! free port; the others use the shared server (`EVENTS_TEST_REDIS_URL`,
//! default `redis://127.0.0.1:6379/0`) under a key prefix of their own,
//! deleted when they end. Without Redis or `redis-server` they fail, saying
//! what to start. Each prints a `crash matrix` line (enqueued, completed,
//! failed, lost, duplicated, time); run with `--nocapture` to see them.
//!
//! The tests take turns (one lock): each times leases against a 2-core
//! machine, and running them side by side would only blur what they see.

#[path = "redis_crash_support/mod.rs"]
mod redis_support;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use events::prelude::*;
use events::queue::{Job, Queue};
use events::{Context, Envelope, WorkReport, Worker};
use redis_support::*;
use serde::{Deserialize, Serialize};

// --- the jobs ------------------------------------------------------------------------------

/// The queue every test works (each under its own prefix or server).
const QUEUE: &str = "crash";
const WORK: &str = "crash.work";
const FAILS: &str = "crash.fails";
const STALE: &str = "crash.stale";

#[event(name = "crash.work")]
#[derive(Serialize, Deserialize)]
pub struct Work {
    /// How long the try takes.
    pub ms: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Failure(String);

#[event(name = "crash.stale")]
#[derive(Serialize, Deserialize)]
pub struct Stale {
    /// How long the first try takes.
    pub first_ms: u64,
    /// How long later tries take.
    pub later_ms: u64,
    /// How the first try ends: `ok`, `error` (to be retried) or `fail`
    /// (straight to the failed store).
    pub first: String,
}

/// The job of the stale-worker test: its first try ends as the event says,
/// later tries succeed.
#[listener(queue = "crash", name = "crash.stale", tries = 3, timeout = "1m")]
async fn stale(e: &Stale, ctx: &Context) -> Result<(), Failure> {
    record("start", ctx);
    let first = ctx.job().is_some_and(|job| job.attempt() == 1);
    let ms = if first { e.first_ms } else { e.later_ms };
    tokio::time::sleep(Duration::from_millis(ms)).await;
    record("done", ctx);
    match (first, e.first.as_str()) {
        (true, "error") => Err(Failure("the first try fails".to_owned())),
        (true, "fail") => {
            if let Some(job) = ctx.job() {
                job.fail_without_retry("the first try gives up");
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Records that the try started, works `ms`, records that it ended.
#[listener(queue = "crash", name = "crash.work", tries = 3, timeout = "1m")]
async fn work(e: &Work, ctx: &Context) {
    record("start", ctx);
    if e.ms > 0 {
        tokio::time::sleep(Duration::from_millis(e.ms)).await;
    }
    record("done", ctx);
}

/// Always fails: its one try lands the job in the failed store.
#[listener(queue = "crash", name = "crash.fails", tries = 1)]
async fn fails(_: &Work, ctx: &Context) -> Result<(), Failure> {
    record("start", ctx);
    record("done", ctx);
    Err(Failure("this job always fails".to_owned()))
}

/// Appends `kind id attempt unix_ms` to `CHILD_DIR/runs-<pid>`, one write
/// per line, straight to the file (a SIGKILL loses no buffered line).
fn record(kind: &str, ctx: &Context) {
    static FILE: OnceLock<Option<Mutex<File>>> = OnceLock::new();
    let file = FILE.get_or_init(|| {
        let dir = std::env::var(CHILD_DIR).ok()?;
        let path = Path::new(&dir).join(format!("runs-{}", std::process::id()));
        Some(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap(),
        ))
    });
    let (Some(file), Some(job)) = (file, ctx.job()) else {
        return;
    };
    let line = format!("{kind} {} {} {}\n", job.id(), job.attempt(), now_ms());
    lock(file).write_all(line.as_bytes()).unwrap();
}

/// Jobs `tag-<n>` for `n` in `range`, on [`QUEUE`], for `listener`, each
/// try taking `ms`.
fn jobs(tag: &str, range: std::ops::Range<usize>, listener: &str, ms: u64) -> Vec<Job> {
    range
        .map(|n| {
            let mut job = Job::from_parts(
                format!("{tag}-{n:06}"),
                QUEUE,
                listener,
                "crash.work",
                format!(r#"{{"ms":{ms}}}"#),
                Envelope::new(),
            );
            job.max_tries = if listener == WORK { 3 } else { 1 };
            job
        })
        .collect()
}

// --- the child processes ---------------------------------------------------------------------

/// `worker` (until the queue is empty), `serve` (until SIGTERM) or
/// `stale` (claims one job by hand, see [`stale_holder`]).
const CHILD_MODE: &str = "EVENTS_TEST_CRASH_MODE";
/// The queue URL, with its prefix.
const CHILD_URL: &str = "EVENTS_TEST_CRASH_URL";
/// Where the child writes its records, report and signals.
const CHILD_DIR: &str = "EVENTS_TEST_CRASH_DIR";
const CHILD_CONCURRENCY: &str = "EVENTS_TEST_CRASH_CONCURRENCY";
const CHILD_LEASE_MS: &str = "EVENTS_TEST_CRASH_LEASE_MS";
/// When set, the child says `ready-<pid>` and waits for a file `go`.
const CHILD_GATE: &str = "EVENTS_TEST_CRASH_GATE";

/// Not a test of its own: the process the tests start (this binary again,
/// with `EVENTS_TEST_CRASH_MODE` set). Without it, it does nothing.
#[test]
fn child_process() {
    let Ok(mode) = std::env::var(CHILD_MODE) else {
        return;
    };
    let url = std::env::var(CHILD_URL).unwrap();
    let dir = PathBuf::from(std::env::var(CHILD_DIR).unwrap());
    let env_ms = |name: &str, default: u64| {
        std::env::var(name).map_or(default, |v| v.parse::<u64>().unwrap())
    };
    let lease = Duration::from_millis(env_ms(CHILD_LEASE_MS, 30_000));
    let concurrency = env_ms(CHILD_CONCURRENCY, 1) as usize;
    if std::env::var(CHILD_GATE).is_ok() {
        std::fs::write(dir.join(format!("ready-{}", std::process::id())), "").unwrap();
        assert!(
            wait_until(Duration::from_secs(60), || dir.join("go").exists()),
            "the test never said go"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let begun = Instant::now();
    runtime.block_on(async {
        let queue = events::queue::connect(&url).await.unwrap();
        if mode == "stale" {
            return stale_holder(&queue, &dir, lease).await;
        }
        let worker = Worker::new(queue)
            .queues([QUEUE])
            .concurrency(concurrency)
            .lease(lease)
            .poll_interval(Duration::from_millis(50))
            .grace(Duration::from_secs(10));
        let report = match mode.as_str() {
            "worker" => worker.run_until_empty().await,
            "serve" => worker.run().await,
            other => panic!("unknown child mode `{other}`"),
        };
        let report = report.unwrap_or_else(|error| {
            panic!(
                "the worker stopped with an error after {:.1} s: {}",
                begun.elapsed().as_secs_f64(),
                events::error::Chain(&error)
            )
        });
        write_report(&dir, &report);
    });
}

/// What a child worker says when it stops.
fn write_report(dir: &Path, report: &WorkReport) {
    let text = format!(
        "{} {} {} {}",
        report.succeeded, report.failed, report.lost, report.retried
    );
    std::fs::write(dir.join(format!("report-{}", std::process::id())), text).unwrap();
}

/// A child's report: succeeded, failed, lost (lease lost, result
/// discarded), retried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Report {
    succeeded: u64,
    failed: u64,
    lost: u64,
    retried: u64,
}

fn read_report(dir: &Path, proc: &Proc) -> Report {
    let path = dir.join(format!("report-{}", proc.pid()));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} (pid {}) left no report; its log ends:\n{}",
            proc.name,
            proc.pid(),
            tail(&proc.log, 40)
        )
    });
    let n: Vec<u64> = text.split(' ').map(|n| n.parse().unwrap()).collect();
    Report {
        succeeded: n[0],
        failed: n[1],
        lost: n[2],
        retried: n[3],
    }
}

/// The stale holder of test 2: claims one job by hand under `lease`, says
/// `claimed <id> <attempt>`, waits for `go` (the test stops this process
/// with SIGSTOP meanwhile, lets the lease lapse and has the job claimed
/// again), then tries every fenced call with its old attempt and writes
/// what each answered to `results`.
async fn stale_holder(queue: &Queue, dir: &Path, lease: Duration) {
    let backend = queue.backend();
    let claimed = backend.claim(&[QUEUE.to_owned()], 1, lease).await.unwrap();
    let [job] = claimed.as_slice() else {
        panic!("claimed {} jobs, not 1", claimed.len());
    };
    std::fs::write(dir.join("claimed"), format!("{} {}", job.id, job.attempt)).unwrap();
    let waiting = Instant::now();
    while !dir.join("go").exists() {
        assert!(
            waiting.elapsed() < Duration::from_secs(60),
            "the test never said go"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (id, attempt) = (job.id.as_str(), job.attempt);
    let extend = backend.extend(id, attempt, Duration::from_secs(5)).await;
    let release = backend
        .release(id, attempt, Duration::ZERO, "stale release")
        .await;
    let fail = backend.fail(id, attempt, "stale fail").await;
    let ack = backend.ack(id, attempt).await;
    let abandon = backend.abandon(id, attempt, Duration::ZERO).await;
    let results = format!(
        "extend={extend:?} release={release:?} fail={fail:?} ack={ack:?} abandon={abandon:?}"
    );
    std::fs::write(dir.join("results"), results).unwrap();
}

/// Starts a child in `mode` on `url`, recording into `dir`.
fn spawn(dir: &Path, name: &str, mode: &str, url: &str, settings: &[(&str, u64)]) -> Proc {
    let mut env = vec![
        (CHILD_MODE, mode.to_owned()),
        (CHILD_URL, url.to_owned()),
        (CHILD_DIR, dir.display().to_string()),
    ];
    env.extend(settings.iter().map(|(k, v)| (*k, v.to_string())));
    Proc::spawn(dir, name, "child_process", &env)
}

// --- what the tests share ----------------------------------------------------------------------

/// One test at a time (see the module's note).
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    lock(&SERIAL)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Tries started by `pid` that have not ended (a start with no done).
fn running_tries(dir: &Path, pid: u32) -> usize {
    let mut open = HashSet::new();
    for r in records(dir).into_iter().filter(|r| r.pid == pid) {
        let key = (r.id, r.attempt);
        match r.kind.as_str() {
            "start" => {
                open.insert(key);
            }
            _ => {
                open.remove(&key);
            }
        }
    }
    open.len()
}

/// Job hashes left in Redis under `prefix` (failed jobs keep theirs).
fn job_keys(server: &str, prefix: &str) -> usize {
    keys_of(server, prefix)
        .iter()
        .filter(|key| key.contains(":job:"))
        .count()
}

/// `ids` in order, for messages.
fn sorted(ids: &HashSet<String>) -> Vec<&String> {
    let mut ids: Vec<&String> = ids.iter().collect();
    ids.sort();
    ids
}

/// One row of the crash matrix, printed for the closing note.
struct Row {
    scenario: &'static str,
    enqueued: usize,
    completed: usize,
    failed: usize,
    lost: usize,
    duplicated: usize,
    took: Duration,
    notes: String,
}

impl Row {
    fn print(&self) {
        println!(
            "crash matrix | {} | enqueued {} | completed {} | failed store {} | lost {} | duplicated {} | {:.1} s | {}",
            self.scenario,
            self.enqueued,
            self.completed,
            self.failed,
            self.lost,
            self.duplicated,
            self.took.as_secs_f64(),
            self.notes
        );
    }
}

/// The worker processes of test 1, replaced as they are killed.
struct Crew<'a> {
    workers: Vec<Proc>,
    dir: &'a Path,
    url: &'a str,
    settings: &'a [(&'a str, u64)],
    /// The pids killed.
    killed: Vec<u32>,
    /// Tries that were running in the killed processes.
    cut_off: usize,
}

impl Crew<'_> {
    fn add(&mut self) {
        let name = format!("worker-{}", self.workers.len() + self.killed.len());
        let worker = spawn(self.dir, &name, "worker", self.url, self.settings);
        self.workers.push(worker);
    }

    /// SIGKILLs the worker in `slot`, which must be running a job, and
    /// starts another in its place.
    fn kill(&mut self, slot: usize) {
        let mut worker = self.workers.remove(slot);
        worker.kill();
        let open = running_tries(self.dir, worker.pid());
        assert!(open > 0, "{} was killed mid-job", worker.name);
        self.cut_off += open;
        self.killed.push(worker.pid());
        self.add();
    }
}

// --- 1. SIGKILL mid-job ----------------------------------------------------------------------------

/// Three worker processes on one queue, 400 short jobs and one that never
/// ends by itself. Twice, a worker is killed with SIGKILL as soon as it
/// runs jobs; then whichever worker runs the never-ending job is, until
/// three of its tries have died with their workers; each killed worker is
/// replaced. Every job ends completed or in the failed store (the
/// never-ending one, and any other whose three tries all died, with the
/// reason in words); none is lost, and no job hash is left behind.
#[test]
fn sigkill_of_worker_processes_mid_job_loses_no_job() {
    const JOBS: usize = 400;
    /// A job that never ends by itself.
    const POISON: &str = "k-poison";
    const SETTINGS: &[(&str, u64)] = &[(CHILD_CONCURRENCY, 3), (CHILD_LEASE_MS, 1000)];
    let _serial = serial();
    let started = Instant::now();
    let server = server_url();
    require_redis(&server);
    let prefix = fresh_prefix("kill");
    let _cleanup = Cleanup {
        server: server.clone(),
        prefix: prefix.clone(),
    };
    let url = with_prefix(&server, &prefix);
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let rt = runtime();
    let queue = rt.block_on(events::queue::connect(&url)).unwrap();
    let mut poison = jobs(POISON, 0..1, WORK, 3_600_000);
    poison[0].id = POISON.to_owned();
    rt.block_on(queue.enqueue_many(poison)).unwrap();
    rt.block_on(queue.enqueue_many(jobs("k", 0..JOBS, WORK, 60)))
        .unwrap();

    let mut crew = Crew {
        workers: Vec::new(),
        dir,
        url: &url,
        settings: SETTINGS,
        killed: Vec::new(),
        cut_off: 0,
    };
    for _ in 0..3 {
        crew.add();
    }
    // Twice, the worker whose turn it is, as soon as it runs a job.
    for turn in 0..2 {
        let pid = crew.workers[turn].pid();
        let mid_job = wait_until(Duration::from_secs(20), || running_tries(dir, pid) > 0);
        assert!(
            mid_job,
            "worker pid {pid} never ran a job; its log ends:\n{}",
            tail(&crew.workers[turn].log, 40)
        );
        crew.kill(turn);
    }
    // Then whichever worker runs the poison job, until its three tries
    // have died with their workers.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let runs = records(dir);
        let poison: Vec<&Record> = runs
            .iter()
            .filter(|r| r.id == POISON && r.kind == "start")
            .collect();
        if poison
            .iter()
            .filter(|r| crew.killed.contains(&r.pid))
            .count()
            >= 3
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the never-ending job did not come back to a worker within 30 s of its holder's death (is it lost?); its tries so far: {poison:?}"
        );
        let holder = poison.iter().max_by_key(|r| r.attempt).map(|r| r.pid);
        match holder.and_then(|pid| crew.workers.iter().position(|w| w.pid() == pid)) {
            Some(slot) => crew.kill(slot),
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    let (mut workers, kills, cut_off) = (crew.workers, crew.killed.len(), crew.cut_off);
    let mut reports = Vec::new();
    for worker in &mut workers {
        worker.exits_ok_within(Duration::from_secs(60));
        reports.push(read_report(dir, worker));
    }

    let failed = rt.block_on(queue.failed()).unwrap();
    let failed_ids: HashSet<String> = failed.iter().map(|f| f.id.clone()).collect();
    for job in &failed {
        assert!(
            job.error.contains("a worker died or stalled"),
            "a job failed for another reason than its workers dying: {job:?}"
        );
    }
    let runs = records(dir);
    let starts = counts(&runs, "start");
    let dones = counts(&runs, "done");
    let all: Vec<String> = jobs("k", 0..JOBS, WORK, 0)
        .into_iter()
        .map(|j| j.id)
        .collect();
    let all: Vec<String> = all.into_iter().chain([POISON.to_owned()]).collect();
    let lost: Vec<&String> = all
        .iter()
        .filter(|id| !dones.contains_key(*id) && !failed_ids.contains(*id))
        .collect();
    let duplicated = dones.values().filter(|&&n| n > 1).count();
    let rerun = starts.values().filter(|&&n| n > 1).count();
    let row = Row {
        scenario: "1. SIGKILL mid-job, 3 worker processes",
        enqueued: all.len(),
        completed: all.len() - failed_ids.len() - lost.len(),
        failed: failed_ids.len(),
        lost: lost.len(),
        duplicated,
        took: started.elapsed(),
        notes: format!(
            "{kills} kills, {cut_off} tries cut off by them, {rerun} jobs started more than once; failed store {:?}; survivors' reports {reports:?}",
            sorted(&failed_ids)
        ),
    };
    row.print();
    assert!(lost.is_empty(), "jobs lost: {lost:?}");
    assert_eq!(
        rt.block_on(queue.size(QUEUE)).unwrap(),
        0,
        "the queue is empty"
    );
    assert_eq!(
        job_keys(&server, &prefix),
        failed_ids.len(),
        "no job hash is left but the failed ones'"
    );
    assert!(
        failed_ids.contains(POISON),
        "the job whose three tries died with their workers is in the failed store"
    );
    assert!(
        reports
            .iter()
            .all(|r| r.failed as usize <= failed_ids.len()),
        "{reports:?}"
    );
}

// --- 2. a stale worker is fenced off -------------------------------------------------------------

/// A process holding a job under attempt 1 is frozen with SIGSTOP past its
/// lease; the job is claimed again (attempt 2); thawed with SIGCONT, the
/// stale process's extend, release, fail, ack and abandon are all refused,
/// and the new holder's lease, attempt and state are untouched by them.
#[test]
fn a_worker_stopped_past_its_lease_cannot_touch_the_job_claimed_again() {
    let _serial = serial();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let redis_dir = dir.join("redis");
    std::fs::create_dir(&redis_dir).unwrap();
    let server = PrivateRedis::start(&redis_dir);
    let prefix = "stale";
    let url = with_prefix(&server.url(), prefix);
    let rt = runtime();
    let queue = rt.block_on(events::queue::connect(&url)).unwrap();
    rt.block_on(queue.enqueue_many(jobs("s", 0..1, WORK, 0)))
        .unwrap();

    let mut stale = spawn(dir, "stale", "stale", &url, &[(CHILD_LEASE_MS, 500)]);
    assert!(
        wait_until(Duration::from_secs(20), || dir.join("claimed").exists()),
        "the stale holder never claimed; its log ends:\n{}",
        tail(&stale.log, 40)
    );
    signal(stale.pid(), "STOP");
    assert!(
        wait_until(Duration::from_secs(5), || is_stopped(stale.pid())),
        "SIGSTOP stopped it"
    );
    let claimed = std::fs::read_to_string(dir.join("claimed")).unwrap();
    assert_eq!(claimed, "s-000000 1");
    // Past the lease: the next claim hands the job out again.
    std::thread::sleep(Duration::from_millis(800));
    let taken = rt
        .block_on(
            queue
                .backend()
                .claim(&[QUEUE.to_owned()], 1, Duration::from_secs(60)),
        )
        .unwrap();
    assert_eq!(
        taken
            .iter()
            .map(|j| (j.id.as_str(), j.attempt))
            .collect::<Vec<_>>(),
        [("s-000000", 2)],
        "the lapsed job is claimed again under attempt 2"
    );
    let mut raw = connect(&server.url());
    let job_key = format!("{{{prefix}:{QUEUE}}}:job:s-000000");
    let leased_key = format!("{{{prefix}:{QUEUE}}}:leased");
    // The job hash's `s`: its state, then the attempt it is held under.
    let state = |raw: &mut redis::Connection| -> (Option<String>, Option<f64>) {
        let s: Option<String> = redis::cmd("HGET")
            .arg(&job_key)
            .arg("s")
            .query(raw)
            .unwrap();
        let deadline: Option<f64> = redis::cmd("ZSCORE")
            .arg(&leased_key)
            .arg("s-000000")
            .query(raw)
            .unwrap();
        (s, deadline)
    };
    let before = state(&mut raw);
    assert_eq!(before.0.as_deref(), Some("r2"), "reserved under attempt 2");

    std::fs::write(dir.join("go"), "").unwrap();
    signal(stale.pid(), "CONT");
    stale.exits_ok_within(Duration::from_secs(30));
    let results = std::fs::read_to_string(dir.join("results")).unwrap();
    assert_eq!(
        results,
        "extend=Ok(false) release=Ok(false) fail=Ok(false) ack=Ok(false) abandon=Ok(false)",
        "every call of the stale holder is refused"
    );
    assert_eq!(
        state(&mut raw),
        before,
        "the new holder's attempt, state and lease deadline are untouched"
    );
    let stats = rt.block_on(queue.stats()).unwrap();
    assert_eq!(
        stats
            .iter()
            .map(|s| (s.pending, s.reserved, s.failed))
            .collect::<Vec<_>>(),
        [(0, 1, 0)],
        "still reserved by the new holder, not back in the queue nor failed"
    );
    let backend = queue.backend();
    assert!(
        rt.block_on(backend.extend("s-000000", 2, Duration::from_secs(60)))
            .unwrap()
    );
    assert!(rt.block_on(backend.ack("s-000000", 2)).unwrap());
    assert_eq!(rt.block_on(queue.size(QUEUE)).unwrap(), 0);
    Row {
        scenario: "2a. stale holder (SIGSTOP past lease) calls extend/release/fail/ack/abandon",
        enqueued: 1,
        completed: 1,
        failed: 0,
        lost: 0,
        duplicated: 0,
        took: started.elapsed(),
        notes: "all 5 stale calls refused; new holder's lease untouched".to_owned(),
    }
    .print();
}

/// The same with real worker processes, once for each call a stale worker
/// makes: A runs the job, is frozen with SIGSTOP past its lease, B takes
/// the job over, and A is thawed while B runs it. Thawed mid-try, A's
/// lease renewal is refused (`extend`); thawed after its try ended, its
/// `ack`, its `release` (the try failed with tries left) or its `fail`
/// (the try gave up) is refused. Each time A counts the job as lost and
/// changes nothing; B acknowledges it, once.
#[test]
fn a_stale_worker_process_is_refused_and_the_new_holder_acks() {
    let _serial = serial();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let redis_dir = dir.path().join("redis");
    std::fs::create_dir(&redis_dir).unwrap();
    let server = PrivateRedis::start(&redis_dir);
    let rt = runtime();
    let mut notes = Vec::new();
    for refused in ["extend", "ack", "release", "fail"] {
        let case_dir = dir.path().join(refused);
        std::fs::create_dir(&case_dir).unwrap();
        let (a, b) = stale_worker_case(&rt, &server, &case_dir, refused);
        notes.push(format!("{refused}: A {a:?}, B {b:?}"));
    }
    Row {
        scenario: "2b. worker A SIGSTOPped past its lease, B takes over, A thawed (x4: extend, ack, release, fail)",
        enqueued: 4,
        completed: 4,
        failed: 0,
        lost: 0,
        duplicated: 0,
        took: started.elapsed(),
        notes: notes.join("; "),
    }
    .print();
}

/// One case of the test above, on a prefix of its own; returns the
/// reports of A and B.
fn stale_worker_case(
    rt: &tokio::runtime::Runtime,
    server: &PrivateRedis,
    dir: &Path,
    refused: &str,
) -> (Report, Report) {
    const SETTINGS: &[(&str, u64)] = &[(CHILD_CONCURRENCY, 1), (CHILD_LEASE_MS, 1000)];
    let prefix = format!("stale-{refused}");
    let url = with_prefix(&server.url(), &prefix);
    let queue = rt.block_on(events::queue::connect(&url)).unwrap();
    // Thawed 1.3 s after it started, A is still in a 5 s try, or past a
    // 600 ms one; B's try takes 1 s, long enough to hold the job while A
    // wakes up.
    let (first_ms, first) = match refused {
        "extend" => (5000, "ok"),
        "ack" => (600, "ok"),
        "release" => (600, "error"),
        _ => (600, "fail"),
    };
    let mut job = Job::from_parts(
        "w-1",
        QUEUE,
        STALE,
        "crash.stale",
        format!(r#"{{"first_ms":{first_ms},"later_ms":1000,"first":"{first}"}}"#),
        Envelope::new(),
    );
    job.max_tries = 3;
    rt.block_on(queue.enqueue(job)).unwrap();
    let started_by = |pid: u32, attempt: u32| {
        move || {
            records(dir)
                .iter()
                .any(|r| r.kind == "start" && r.pid == pid && r.attempt == attempt)
        }
    };

    let mut a = spawn(dir, "worker-a", "worker", &url, SETTINGS);
    assert!(
        wait_until(Duration::from_secs(20), started_by(a.pid(), 1)),
        "{refused}: A never started the job; its log ends:\n{}",
        tail(&a.log, 40)
    );
    signal(a.pid(), "STOP");
    assert!(wait_until(Duration::from_secs(5), || is_stopped(a.pid())));
    let a_started = records(dir)
        .iter()
        .find(|r| r.pid == a.pid())
        .map(|r| r.at)
        .unwrap();
    assert!(
        now_ms() - a_started < first_ms,
        "{refused}: A was stopped mid-try"
    );
    std::thread::sleep(Duration::from_millis(1300));
    let mut b = spawn(dir, "worker-b", "worker", &url, SETTINGS);
    assert!(
        wait_until(Duration::from_secs(20), started_by(b.pid(), 2)),
        "{refused}: B never took the job over; its log ends:\n{}",
        tail(&b.log, 40)
    );
    signal(a.pid(), "CONT");
    a.exits_ok_within(Duration::from_secs(30));
    b.exits_ok_within(Duration::from_secs(30));
    let (ra, rb) = (read_report(dir, &a), read_report(dir, &b));
    let a_finished_its_try = records(dir)
        .iter()
        .any(|r| r.kind == "done" && r.pid == a.pid() && r.attempt == 1);
    let counters: HashMap<String, u64> = redis::cmd("HGETALL")
        .arg(format!("{{{prefix}:{QUEUE}}}:stats"))
        .query(&mut connect(&server.url()))
        .unwrap();
    let counter = |name: &str| counters.get(name).copied().unwrap_or(0);
    assert_eq!(
        a_finished_its_try,
        refused != "extend",
        "{refused}: A {} its try before it noticed",
        if a_finished_its_try {
            "finished"
        } else {
            "did not finish"
        }
    );
    assert_eq!(
        (ra.succeeded, ra.lost, ra.failed, ra.retried),
        (0, 1, 0, 0),
        "{refused}: A lost its lease and discarded its result"
    );
    assert_eq!(
        (rb.succeeded, rb.lost, rb.failed, rb.retried),
        (1, 0, 0, 0),
        "{refused}: B acknowledged the job"
    );
    assert_eq!(
        (counter("succeeded"), counter("retried"), counter("failed")),
        (1, 0, 0),
        "{refused}: one ack took effect, and nothing else: {counters:?}"
    );
    assert!(rt.block_on(queue.failed()).unwrap().is_empty());
    assert_eq!(rt.block_on(queue.size(QUEUE)).unwrap(), 0);
    (ra, rb)
}

// --- 3. eight processes, 20,000 jobs, exactly once ----------------------------------------------

/// Eight worker processes start together on 20,000 jobs; nothing crashes,
/// so each job runs exactly once: one start, one end, one ack.
#[test]
fn eight_worker_processes_run_20_000_jobs_exactly_once() {
    const JOBS: usize = 20_000;
    const PROCESSES: usize = 8;
    let _serial = serial();
    let started = Instant::now();
    let server = server_url();
    require_redis(&server);
    let prefix = fresh_prefix("once");
    let _cleanup = Cleanup {
        server: server.clone(),
        prefix: prefix.clone(),
    };
    let url = with_prefix(&server, &prefix);
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let rt = runtime();
    let queue = rt.block_on(events::queue::connect(&url)).unwrap();
    for chunk in (0..JOBS).step_by(1000) {
        rt.block_on(queue.enqueue_many(jobs("e", chunk..chunk + 1000, WORK, 0)))
            .unwrap();
    }
    assert_eq!(rt.block_on(queue.size(QUEUE)).unwrap(), JOBS);

    let settings = &[(CHILD_CONCURRENCY, 4), (CHILD_GATE, 1)];
    let mut workers: Vec<Proc> = (0..PROCESSES)
        .map(|i| spawn(dir, &format!("worker-{i}"), "worker", &url, settings))
        .collect();
    let ready = |workers: &Vec<Proc>| {
        workers
            .iter()
            .all(|w| dir.join(format!("ready-{}", w.pid())).exists())
    };
    assert!(
        wait_until(Duration::from_secs(30), || ready(&workers)),
        "the workers never got ready"
    );
    let working = Instant::now();
    std::fs::write(dir.join("go"), "").unwrap();
    let mut reports = Vec::new();
    for worker in &mut workers {
        worker.exits_ok_within(Duration::from_secs(90));
        reports.push(read_report(dir, worker));
    }
    let worked = working.elapsed();

    let runs = records(dir);
    let starts = counts(&runs, "start");
    let dones = counts(&runs, "done");
    let all: Vec<String> = jobs("e", 0..JOBS, WORK, 0)
        .into_iter()
        .map(|j| j.id)
        .collect();
    let lost = all.iter().filter(|id| !dones.contains_key(*id)).count();
    let duplicated = starts.values().filter(|&&n| n > 1).count();
    let per_process: Vec<u64> = reports.iter().map(|r| r.succeeded).collect();
    Row {
        scenario: "3. 8 worker processes, no crash",
        enqueued: JOBS,
        completed: dones.len(),
        failed: 0,
        lost,
        duplicated,
        took: started.elapsed(),
        notes: format!(
            "worked in {:.1} s ({:.0} jobs/s); jobs per process {per_process:?}",
            worked.as_secs_f64(),
            JOBS as f64 / worked.as_secs_f64()
        ),
    }
    .print();
    assert_eq!(lost, 0, "every job ran");
    assert_eq!(starts.len(), JOBS, "no other job ran");
    assert!(
        starts.values().chain(dones.values()).all(|&n| n == 1),
        "{duplicated} jobs ran more than once"
    );
    let total = reports.iter().fold(Report::default(), |t, r| Report {
        succeeded: t.succeeded + r.succeeded,
        failed: t.failed + r.failed,
        lost: t.lost + r.lost,
        retried: t.retried + r.retried,
    });
    assert_eq!(
        total,
        Report {
            succeeded: JOBS as u64,
            ..Report::default()
        },
        "one ack per job, nothing failed, retried or lost: {reports:?}"
    );
    assert!(
        per_process.iter().all(|&n| n > 0),
        "every process took part: {per_process:?}"
    );
    assert_eq!(rt.block_on(queue.size(QUEUE)).unwrap(), 0);
    assert!(rt.block_on(queue.failed()).unwrap().is_empty());
    assert_eq!(job_keys(&server, &prefix), 0, "no job hash is left");
}

// --- 4. Redis restarted under load --------------------------------------------------------------

/// How long Redis stays down in the restart test: `EVENTS_TEST_REDIS_OUTAGE_MS`
/// (default 1000), to measure by hand how long an outage workers survive.
fn outage() -> Duration {
    Duration::from_millis(
        std::env::var("EVENTS_TEST_REDIS_OUTAGE_MS").map_or(1000, |v| v.parse().unwrap()),
    )
}

/// Whether the restart test crashes Redis (SIGKILL) rather than stopping
/// it (SIGTERM): `EVENTS_TEST_REDIS_STOP=kill`, to check by hand that a
/// crash of the Redis process loses no acknowledged job either (the AOF is
/// written before Redis answers; `everysec` delays only the `fsync`, so
/// only a crash of the machine could lose up to a second of writes).
fn crash_redis() -> bool {
    std::env::var("EVENTS_TEST_REDIS_STOP").is_ok_and(|how| how == "kill")
}

/// Two worker processes and a producer run while a private Redis (AOF,
/// `appendfsync everysec`) is stopped with SIGTERM and started again. No
/// enqueue that was acknowledged is lost; the same worker processes resume
/// within seconds of Redis coming back and run what was enqueued after.
#[test]
fn redis_restarted_under_load_loses_no_acknowledged_job_and_workers_resume() {
    const SETTINGS: &[(&str, u64)] = &[(CHILD_CONCURRENCY, 4), (CHILD_LEASE_MS, 2000)];
    let _serial = serial();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let redis_dir = dir.join("redis");
    std::fs::create_dir(&redis_dir).unwrap();
    let mut server = PrivateRedis::start(&redis_dir);
    let url = with_prefix(&server.url(), "restart");
    let rt = runtime();
    let queue = rt.block_on(events::queue::connect(&url)).unwrap();
    let mut workers: Vec<Proc> = (0..2)
        .map(|i| spawn(dir, &format!("worker-{i}"), "serve", &url, SETTINGS))
        .collect();

    // The producer: one job at a time, noting which enqueues were
    // acknowledged (Ok) and which were refused, and the slowest.
    let stop = Arc::new(AtomicBool::new(false));
    let producer = rt.spawn({
        let (queue, stop) = (queue.clone(), stop.clone());
        async move {
            let mut acked = Vec::new();
            let mut refused = Vec::new();
            let mut slowest = Duration::ZERO;
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                let job = jobs("r", n..n + 1, WORK, 10).pop().unwrap();
                let id = job.id.clone();
                let sent = Instant::now();
                match queue.enqueue(job).await {
                    Ok(()) => acked.push((id, now_ms())),
                    Err(error) => refused.push((id, events::error::Chain(&error).to_string())),
                }
                slowest = slowest.max(sent.elapsed());
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (acked, refused, slowest)
        }
    });

    std::thread::sleep(Duration::from_millis(1500));
    let down_at = Instant::now();
    if crash_redis() {
        server.crash();
    } else {
        server.stop();
    }
    std::thread::sleep(outage());
    server.start_again();
    let back_ms = now_ms();
    let down_for = down_at.elapsed();
    std::thread::sleep(Duration::from_millis(2000));
    stop.store(true, Ordering::Release);
    let (acked, refused, slowest) = rt.block_on(producer).unwrap();

    // Every acknowledged job runs (at least once).
    let acked_ids: Vec<&String> = acked.iter().map(|(id, _)| id).collect();
    let all_done = wait_until(Duration::from_secs(30), || {
        let dones = counts(&records(dir), "done");
        acked_ids.iter().all(|id| dones.contains_key(*id))
    });
    let runs = records(dir);
    let dones = counts(&runs, "done");
    let failed: HashSet<String> = rt
        .block_on(queue.failed())
        .unwrap()
        .into_iter()
        .map(|f| f.id)
        .collect();
    // Not run yet is not lost: lost is an acknowledged job that Redis no
    // longer holds and that never ran.
    let not_run: Vec<&&String> = acked_ids
        .iter()
        .filter(|id| !dones.contains_key(**id) && !failed.contains(**id))
        .collect();
    let mut raw = connect(&server.url());
    let lost: Vec<&&String> = not_run
        .iter()
        .copied()
        .filter(|id| {
            let key = format!("{{restart:{QUEUE}}}:job:{id}");
            !redis::cmd("EXISTS")
                .arg(&key)
                .query::<bool>(&mut raw)
                .unwrap()
        })
        .collect();
    let duplicated = dones.values().filter(|&&n| n > 1).count();
    let after: Vec<&Record> = runs
        .iter()
        .filter(|r| r.kind == "start" && r.at >= back_ms)
        .collect();
    let resumed_in = after.iter().map(|r| r.at - back_ms).min();
    // The same processes still run: stop them as an operator would.
    let mut reports = Vec::new();
    let mut died = Vec::new();
    for worker in &mut workers {
        if worker.running() {
            signal(worker.pid(), "TERM");
            worker.exits_ok_within(Duration::from_secs(30));
            reports.push(read_report(dir, worker));
        } else {
            died.push(format!(
                "{} (pid {}) stopped before it was told to; its log ends:\n{}",
                worker.name,
                worker.pid(),
                tail(&worker.log, 20)
            ));
        }
    }
    Row {
        scenario: if crash_redis() {
            "4'. Redis crashed (SIGKILL, AOF everysec) under 2 workers + producer"
        } else {
            "4. Redis restarted (SIGTERM, AOF everysec) under 2 workers + producer"
        },
        enqueued: acked.len(),
        completed: acked.len() - not_run.len() - failed.len(),
        failed: failed.len(),
        lost: lost.len(),
        duplicated,
        took: started.elapsed(),
        notes: format!(
            "Redis down {:.1} s; {} enqueues refused while down; slowest enqueue {:.1} s; first job started {:?} ms after Redis was back; {} acknowledged jobs not run (still in Redis: {}); worker reports {reports:?}",
            down_for.as_secs_f64(),
            refused.len(),
            slowest.as_secs_f64(),
            resumed_in,
            not_run.len(),
            not_run.len() - lost.len()
        ),
    }
    .print();
    assert!(lost.is_empty(), "acknowledged enqueues lost: {lost:?}");
    assert!(
        died.is_empty(),
        "the worker processes keep running through the restart: {}",
        died.join("\n")
    );
    assert!(
        all_done,
        "{} acknowledged jobs never ran: {not_run:?}",
        not_run.len()
    );
    for worker in &workers {
        assert!(
            after.iter().any(|r| r.pid == worker.pid()),
            "{} ran jobs after Redis came back",
            worker.name
        );
    }
    let resumed_in = resumed_in.expect("jobs ran after the restart");
    assert!(
        resumed_in < 5000,
        "the workers resumed {resumed_in} ms after Redis came back"
    );
    assert!(
        acked.iter().any(|(_, at)| *at > back_ms),
        "the producer was acknowledged again after the restart"
    );
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(rt.block_on(queue.size(QUEUE)).unwrap(), 0);
}

// --- 7. two applications on one Redis -----------------------------------------------------------

/// Two applications share one Redis and one queue name under different
/// prefixes (one a prefix of the other's name). Each one's worker process
/// runs exactly its own jobs; each sees only its own failed jobs, counts
/// and waiting jobs, and clearing or flushing one leaves the other alone.
#[test]
fn two_applications_with_different_prefixes_never_see_each_others_jobs() {
    const JOBS: usize = 60;
    let _serial = serial();
    let started = Instant::now();
    let server = server_url();
    require_redis(&server);
    let prefix_a = fresh_prefix("apps");
    let prefix_b = format!("{prefix_a}-b");
    let _cleanup = [&prefix_a, &prefix_b].map(|prefix| Cleanup {
        server: server.clone(),
        prefix: prefix.clone(),
    });
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let apps: Vec<(&str, String, Queue, PathBuf)> = [("a", &prefix_a), ("b", &prefix_b)]
        .into_iter()
        .map(|(tag, prefix)| {
            let url = with_prefix(&server, prefix);
            let queue = rt.block_on(events::queue::connect(&url)).unwrap();
            let app_dir = dir.path().join(tag);
            std::fs::create_dir(&app_dir).unwrap();
            rt.block_on(queue.enqueue_many(jobs(tag, 0..JOBS, WORK, 0)))
                .unwrap();
            rt.block_on(queue.enqueue_many(jobs(&format!("{tag}fail"), 0..1, FAILS, 0)))
                .unwrap();
            (tag, url, queue, app_dir)
        })
        .collect();
    for (_, _, queue, _) in &apps {
        assert_eq!(rt.block_on(queue.size(QUEUE)).unwrap(), JOBS + 1);
    }

    let mut workers: Vec<Proc> = apps
        .iter()
        .map(|(tag, url, _, app_dir)| {
            spawn(
                app_dir,
                &format!("worker-{tag}"),
                "worker",
                url,
                &[(CHILD_CONCURRENCY, 2)],
            )
        })
        .collect();
    for worker in &mut workers {
        worker.exits_ok_within(Duration::from_secs(30));
    }
    let mut notes = Vec::new();
    let mut lost = 0;
    for ((tag, _, queue, app_dir), worker) in apps.iter().zip(&workers) {
        let report = read_report(app_dir, worker);
        let starts = counts(&records(app_dir), "start");
        let mut ran: Vec<&String> = starts.keys().collect();
        ran.sort();
        let mut mine: Vec<String> = jobs(tag, 0..JOBS, WORK, 0)
            .into_iter()
            .chain(jobs(&format!("{tag}fail"), 0..1, FAILS, 0))
            .map(|j| j.id)
            .collect();
        mine.sort();
        lost += mine.iter().filter(|id| !starts.contains_key(*id)).count();
        assert_eq!(
            ran,
            mine.iter().collect::<Vec<_>>(),
            "app {tag}'s worker ran its own jobs, and only those"
        );
        assert!(starts.values().all(|&n| n == 1));
        assert_eq!(
            (report.succeeded, report.failed, report.lost),
            (JOBS as u64, 1, 0)
        );
        let failed = rt.block_on(queue.failed()).unwrap();
        assert_eq!(
            failed.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
            [format!("{tag}fail-000000")],
            "app {tag} sees its own failed job only"
        );
        notes.push(format!("app {tag}: {report:?}"));
    }

    // Waiting jobs, counts, clear and flush stay within one application.
    let (a, b) = (&apps[0].2, &apps[1].2);
    rt.block_on(a.enqueue_many(jobs("a-more", 0..5, WORK, 0)))
        .unwrap();
    rt.block_on(b.enqueue_many(jobs("b-more", 0..7, WORK, 0)))
        .unwrap();
    assert_eq!(rt.block_on(a.size(QUEUE)).unwrap(), 5);
    assert_eq!(rt.block_on(b.size(QUEUE)).unwrap(), 7);
    assert_eq!(rt.block_on(a.clear(QUEUE)).unwrap(), 5);
    assert_eq!(rt.block_on(b.size(QUEUE)).unwrap(), 7, "B's jobs stay");
    assert_eq!(rt.block_on(a.flush_failed()).unwrap(), 1);
    assert_eq!(
        rt.block_on(b.failed()).unwrap().len(),
        1,
        "B's failed job stays"
    );
    assert_eq!(rt.block_on(a.retry_all()).unwrap(), 0);
    assert_eq!(rt.block_on(b.retry_all()).unwrap(), 1);
    assert_eq!(rt.block_on(b.size(QUEUE)).unwrap(), 8);
    assert_eq!(rt.block_on(a.size(QUEUE)).unwrap(), 0);
    // A's keys hold none of its jobs any more; B's hold its 8, and no job
    // of one application is stored under the other's prefix.
    let keys_a = keys_of(&server, &prefix_a);
    let keys_b = keys_of(&server, &prefix_b);
    assert!(
        keys_a.iter().all(|k| !keys_b.contains(k)),
        "no key is shared"
    );
    assert_eq!(job_keys(&server, &prefix_a), 0, "{keys_a:?}");
    assert_eq!(job_keys(&server, &prefix_b), 8, "{keys_b:?}");
    assert!(
        !keys_a.iter().any(|k| k.contains(":job:b"))
            && !keys_b.iter().any(|k| k.contains(":job:a")),
        "{keys_a:?} {keys_b:?}"
    );
    Row {
        scenario: "7. two applications, prefixes P and P-b, one queue name",
        enqueued: 2 * (JOBS + 1),
        completed: 2 * JOBS,
        failed: 2,
        lost,
        duplicated: 0,
        took: started.elapsed(),
        notes: notes.join("; "),
    }
    .print();
    assert_eq!(lost, 0);
}
