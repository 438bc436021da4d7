//! Workers end to end, and the reliability scenarios: retries, the failed
//! store, bad input, graceful shutdown, a worker killed with SIGKILL, and two
//! workers sharing one SQLite file. Each test has its own queue.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use events::prelude::*;
use events::queue::{Job, Queue, SqliteBackend};
use events::{Dispatcher, Worker};
use serde::{Deserialize, Serialize};

mod watched;
mod worker_suite;

fn dispatcher(queue: &Queue) -> Dispatcher {
    Dispatcher::builder().queue(queue.clone()).build().unwrap()
}

// --- the worker suite (tests/worker_suite), on memory:// ------------------------------

#[tokio::test]
async fn a_flaky_listener_succeeds_on_its_third_try() {
    worker_suite::a_flaky_listener_succeeds_on_its_third_try(Queue::memory()).await;
}

#[tokio::test]
async fn a_listener_out_of_tries_lands_in_the_failed_store_and_its_hook_runs() {
    worker_suite::a_listener_out_of_tries_lands_in_the_failed_store_and_its_hook_runs(
        Queue::memory(),
    )
    .await;
}

#[tokio::test]
async fn poison_payloads_panics_and_hangs_become_failed_jobs_and_unknown_listeners_wait() {
    worker_suite::poison_payloads_panics_and_hangs_become_failed_jobs_and_unknown_listeners_wait(
        Queue::memory(),
    )
    .await;
}

#[tokio::test]
async fn queues_are_worked_in_priority_order() {
    worker_suite::queues_are_worked_in_priority_order(Queue::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_hands_back_jobs_that_outlive_the_grace_period() {
    worker_suite::shutdown_hands_back_jobs_that_outlive_the_grace_period(Queue::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_keeps_its_lease_past_its_length() {
    // Handles on one memory queue: two workers sharing its jobs.
    let queue = Queue::memory();
    worker_suite::a_running_job_keeps_its_lease_past_its_length(|| queue.clone()).await;
}

// --- jobs stored by hand --------------------------------------------------------

fn raw_job(listener: &str, payload: &str) -> Job {
    let now = SystemTime::now();
    let mut job = Job::from_parts(
        format!("raw-{listener}-{}", payload.len()),
        "risky",
        listener,
        "risky",
        payload,
        events::Envelope::new(),
    );
    job.available_at = now;
    job.first_enqueued_at = now;
    job
}

// --- graceful shutdown -------------------------------------------------------------

static SLOW_DONE: AtomicUsize = AtomicUsize::new(0);

#[event(name = "slow")]
#[derive(Serialize, Deserialize)]
pub struct Slow {
    pub millis: u64,
}

#[listener(queue = "slow", timeout = "1h")]
async fn slow(e: &Slow) {
    tokio::time::sleep(Duration::from_millis(e.millis)).await;
    SLOW_DONE.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_running_jobs_finish_and_leaves_the_rest_queued() {
    let queue = Queue::memory();
    let d = dispatcher(&queue);
    for _ in 0..5 {
        d.dispatch(Slow { millis: 200 }).await.unwrap();
    }
    let before = SLOW_DONE.load(Ordering::SeqCst);
    let report = Worker::new(queue.clone())
        .queues(["slow"])
        .concurrency(2)
        .grace(Duration::from_secs(5))
        .run_until(tokio::time::sleep(Duration::from_millis(50)))
        .await
        .unwrap();
    assert_eq!(
        report.succeeded, 2,
        "the two running jobs finished: {report:?}"
    );
    assert_eq!(SLOW_DONE.load(Ordering::SeqCst) - before, 2);
    assert_eq!(
        queue.size("slow").await.unwrap(),
        3,
        "the unclaimed three wait, none lost"
    );
}

// --- SIGKILL ------------------------------------------------------------------------

#[event(name = "crash.test")]
#[derive(Serialize, Deserialize)]
pub struct CrashTest {
    pub dir: String,
    pub linger_ms: Option<u64>,
}

/// The first run announces itself and then waits (an hour, or `linger_ms`),
/// so the parent can signal its process mid-job; any later run finishes at
/// once. A try killed with SIGKILL counts as one of its three (so a job that
/// kills every worker cannot loop forever).
#[listener(queue = "crash", tries = 3, timeout = "1h")]
async fn survives_a_crash(e: &CrashTest) {
    let dir = Path::new(&e.dir);
    let started = dir.join("started");
    if !started.exists() {
        std::fs::write(&started, std::process::id().to_string()).unwrap();
        tokio::time::sleep(Duration::from_millis(e.linger_ms.unwrap_or(3_600_000))).await;
    }
    std::fs::write(dir.join("done"), std::process::id().to_string()).unwrap();
}

const CHILD_DB: &str = "EVENTS_TEST_CHILD_DB";
const CHILD_MODE: &str = "EVENTS_TEST_CHILD_MODE";
/// The queue the child works (default `crash`).
const CHILD_QUEUE: &str = "EVENTS_TEST_CHILD_QUEUE";
/// The child's concurrency (default 1).
const CHILD_CONCURRENCY: &str = "EVENTS_TEST_CHILD_CONCURRENCY";

/// Not a test of its own: the worker process that the SIGKILL and SIGTERM
/// tests start (this binary again, with `CHILD_DB` set). Without it, it does
/// nothing.
#[tokio::test]
async fn child_worker_process() {
    let Ok(db) = std::env::var(CHILD_DB) else {
        return;
    };
    let queue = SqliteBackend::queue(&db).unwrap();
    let worked = std::env::var(CHILD_QUEUE).unwrap_or_else(|_| "crash".to_owned());
    let concurrency = std::env::var(CHILD_CONCURRENCY).map_or(1, |n| n.parse().unwrap());
    let worker = Worker::new(queue)
        .queues([worked])
        .concurrency(concurrency)
        .poll_interval(Duration::from_millis(50))
        .lease(Duration::from_millis(600))
        .grace(Duration::from_secs(20));
    let report = if std::env::var(CHILD_MODE).as_deref() == Ok("signals") {
        // Until SIGTERM, as `my-app work` runs in production.
        worker.run().await.unwrap()
    } else {
        worker.run_until_empty().await.unwrap()
    };
    let dir = Path::new(&db).parent().unwrap();
    std::fs::write(dir.join("report"), format!("{report:?}")).unwrap();
}

/// Starts this test binary again as a worker process on `db` (see
/// `child_worker_process`).
fn spawn_child_worker(db: &Path, mode: &str) -> std::process::Child {
    spawn_child(db, mode, &[])
}

/// [`spawn_child_worker`] with more of the child's settings.
fn spawn_child(db: &Path, mode: &str, env: &[(&str, &str)]) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_worker_process",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD_DB, db)
        .env(CHILD_MODE, mode)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits up to `limit` for `child` to exit; kills it (and fails the test)
/// if it does not.
fn exits_within(child: &mut std::process::Child, limit: Duration, what: &str) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "{what}: the worker exited with {status:?}"
            );
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    panic!("{what}: the worker did not exit within {limit:?}");
}

fn sigterm(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_for(path: &Path, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_was_killed_runs_again_once_its_lease_lapses() {
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir.path().join("queue.sqlite");
    let queue = SqliteBackend::queue(&db).unwrap();
    dispatcher(&queue)
        .dispatch(CrashTest {
            dir: dir.path().display().to_string(),
            linger_ms: None,
        })
        .await
        .unwrap();

    let mut child = spawn_child_worker(&db, "until-empty");
    let started = wait_for(&dir.path().join("started"), Duration::from_secs(60));
    child.kill().unwrap(); // SIGKILL: no destructor, no shutdown, no ack.
    child.wait().unwrap();
    assert!(started, "the child worker never started the job");
    let child_pid = std::fs::read_to_string(dir.path().join("started")).unwrap();
    assert_eq!(
        queue.size("crash").await.unwrap(),
        1,
        "the killed worker's job is still there"
    );

    let started = Instant::now();
    let report = Worker::new(queue.clone())
        .queues(["crash"])
        .lease(Duration::from_millis(600))
        .poll_interval(Duration::from_millis(50))
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!((report.succeeded, report.failed), (1, 0), "{report:?}");
    assert!(dir.path().join("done").exists());
    let finisher = std::fs::read_to_string(dir.path().join("done")).unwrap();
    assert_ne!(finisher, child_pid, "a different process finished it");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(queue.size("crash").await.unwrap(), 0);
    assert!(queue.failed().await.unwrap().is_empty());
}

// --- many workers, one file -----------------------------------------------------------

static SEEN: Mutex<Option<HashMap<u32, u32>>> = Mutex::new(None);

#[event(name = "numbered")]
#[derive(Serialize, Deserialize)]
pub struct Numbered {
    pub n: u32,
}

#[listener(queue = "bulk")]
fn count_numbered(e: &Numbered) {
    *SEEN
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .entry(e.n)
        .or_default() += 1;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_one_sqlite_file_process_10_000_jobs_once_each() {
    const JOBS: u32 = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("queue.sqlite");
    let producer = SqliteBackend::queue(&db).unwrap();
    let d = dispatcher(&producer);
    for n in 0..JOBS {
        d.dispatch(Numbered { n }).await.unwrap();
    }
    // Two handles, two connections: the same file contention two processes see.
    let workers = [
        SqliteBackend::queue(&db).unwrap(),
        SqliteBackend::queue(&db).unwrap(),
    ]
    .map(|q| {
        tokio::spawn(
            Worker::new(q)
                .queues(["bulk"])
                .concurrency(4)
                .poll_interval(Duration::from_millis(20))
                .run_until_empty(),
        )
    });
    let mut total = 0;
    for worker in workers {
        let report = worker.await.unwrap().unwrap();
        assert_eq!((report.failed, report.lost), (0, 0), "{report:?}");
        assert!(report.succeeded > 0, "both workers took part: {report:?}");
        total += report.succeeded;
    }
    assert_eq!(total, u64::from(JOBS));
    let seen = SEEN.lock().unwrap().take().unwrap();
    assert_eq!(seen.len(), JOBS as usize, "every job ran");
    assert!(seen.values().all(|&times| times == 1), "no job ran twice");
    assert_eq!(producer.size("bulk").await.unwrap(), 0);
}

#[tokio::test]
async fn a_crash_on_the_last_try_lands_in_the_failed_store_in_words() {
    let queue = Queue::memory();
    dispatcher(&queue)
        .dispatch(worker_suite::Risky {
            mode: "fine".into(),
        })
        .await
        .unwrap();
    // A worker claims the only try and dies: its lease lapses.
    let claimed = queue
        .backend()
        .claim(&["risky".to_owned()], 1, Duration::from_millis(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let report = Worker::new(queue.clone())
        .queues(["risky"])
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!((report.succeeded, report.failed), (0, 1));
    assert_eq!(
        queue.failed().await.unwrap()[0].error,
        "tried 2 times, more than its 1 allowed: a worker died or stalled while running it and its lease lapsed"
    );
}

#[event(name = "blocking")]
#[derive(Serialize, Deserialize)]
pub struct Blocking;

/// A plain `fn` that blocks: its timeout must still fire.
#[listener(queue = "blocking", timeout = "100ms")]
fn blocks(_: &Blocking) {
    std::thread::sleep(Duration::from_millis(400));
}

#[tokio::test]
async fn a_blocking_plain_fn_listener_still_times_out() {
    let queue = Queue::memory();
    dispatcher(&queue).dispatch(Blocking).await.unwrap();
    let started = Instant::now();
    let report = Worker::new(queue.clone())
        .queues(["blocking"])
        .run_until_empty()
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(350),
        "the worker waited {:?}",
        started.elapsed()
    );
    assert_eq!(report.failed, 1);
    assert_eq!(
        queue.failed().await.unwrap()[0].error,
        "listener `worker::blocks` timed out after 100ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_running_job_finish_then_the_worker_exits() {
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir.path().join("queue.sqlite");
    let queue = SqliteBackend::queue(&db).unwrap();
    let d = dispatcher(&queue);
    d.dispatch(CrashTest {
        dir: dir.path().display().to_string(),
        linger_ms: Some(500),
    })
    .await
    .unwrap();

    let mut child = spawn_child_worker(&db, "signals");
    assert!(
        wait_for(&dir.path().join("started"), Duration::from_secs(60)),
        "the job never started"
    );
    // Another job arrives while the first runs; after SIGTERM it must not start.
    d.dispatch(CrashTest {
        dir: dir.path().display().to_string(),
        linger_ms: Some(0),
    })
    .await
    .unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "the worker exited with {exit:?}");

    let report = std::fs::read_to_string(dir.path().join("report")).unwrap();
    assert!(report.starts_with("WorkReport { succeeded: 1,"), "{report}");
    assert!(dir.path().join("done").exists(), "the running job finished");
    assert_eq!(
        queue.size("crash").await.unwrap(),
        1,
        "the unstarted job waits, none lost"
    );
    assert!(queue.failed().await.unwrap().is_empty());
}

static BATCHED_RUNS: Mutex<Vec<u64>> = Mutex::new(Vec::new());

#[event(name = "batched")]
#[derive(Serialize, Deserialize)]
pub struct Batched {
    pub id: u64,
    pub millis: u64,
}

#[listener(queue = "batched", timeout = "1h")]
async fn batched(e: &Batched) {
    tokio::time::sleep(Duration::from_millis(e.millis)).await;
    BATCHED_RUNS.lock().unwrap().push(e.id);
}

/// Quick jobs grow a slot's batch; the slow jobs claimed in that batch then
/// wait longer than their lease. They must still run exactly once, on their
/// one try. (Found in review: another slot took the lapsed ones, and they ran
/// twice or landed in the failed store.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_jobs_claimed_in_a_big_batch_keep_their_leases() {
    let queue = Queue::memory();
    let d = dispatcher(&queue);
    for id in 0..15 {
        d.dispatch(Batched { id, millis: 0 }).await.unwrap();
    }
    for id in 100..116 {
        d.dispatch(Batched { id, millis: 90 }).await.unwrap();
    }
    let report = Worker::new(queue.clone())
        .queues(["batched"])
        .concurrency(2)
        .lease(Duration::from_millis(300))
        .poll_interval(Duration::from_millis(10))
        .run_until_empty()
        .await
        .unwrap();
    let mut runs = BATCHED_RUNS.lock().unwrap().clone();
    runs.sort();
    let twice: Vec<u64> = runs
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    assert!(twice.is_empty(), "ran twice: {twice:?}; {report:?}");
    assert_eq!(runs.len(), 31, "{report:?}");
    assert_eq!((report.succeeded, report.failed), (31, 0), "{report:?}");
    assert!(queue.failed().await.unwrap().is_empty());
}

#[tokio::test]
async fn jobs_of_a_listener_this_program_lacks_wait_untried_and_the_worker_stops() {
    let watched = watched::Watched::new();
    let calls = watched.log();
    let queue = Queue::with_backend("memory://", watched);
    let mut old = raw_job("app::removed_listener", "{}");
    old.queue = "old-queue".into();
    queue.enqueue(old).await.unwrap();
    // Its listener is known, but it waits on the queue of a listener that
    // is not: it runs.
    let mut moved = raw_job("worker::forever", "null");
    moved.queue = "old-queue".into();
    moved.event = "forever".into();
    queue.enqueue(moved).await.unwrap();

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
    let calls = calls.lock().unwrap().clone();
    let old_id = "raw-app::removed_listener-2";
    assert!(
        calls.contains(&format!("claimed {old_id} 1")),
        "claimed once: {calls:?}"
    );
    assert!(
        calls.contains(&format!("abandon {old_id} 1 60s")),
        "handed back untried (abandon takes the try back), out of the way for a minute: {calls:?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("fail ") || c.starts_with("release ")),
        "never failed nor retried: {calls:?}"
    );
}

#[event(name = "forever")]
#[derive(Serialize, Deserialize)]
pub struct Forever;

#[listener(queue = "forever")]
fn forever(_: &Forever) {}

#[tokio::test]
async fn a_lease_of_duration_max_means_never_and_does_not_panic() {
    let queue = Queue::memory();
    dispatcher(&queue).dispatch(Forever).await.unwrap();
    let report = Worker::new(queue.clone())
        .queues(["forever"])
        .lease(Duration::MAX)
        .grace(Duration::MAX)
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!(report.succeeded, 1);
}

// --- a plain fn stuck past its timeout (issue 10, bug 1) --------------------------

#[event(name = "hang")]
#[derive(Serialize, Deserialize)]
pub struct Hang;

/// The repro: a plain `fn` that never returns in time. A thread
/// cannot be cancelled: the worker must leave it behind and still exit.
#[listener(queue = "hang", tries = 1, timeout = "2s")]
fn hang(_: &Hang) {
    std::thread::sleep(Duration::from_secs(3600));
}

/// `work --stop-when-empty`: the job times out, fails, the queue is empty:
/// the worker returns, and its process exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_run_until_empty_exits_though_a_plain_fn_listener_hangs_past_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir.path().join("queue.sqlite");
    let queue = SqliteBackend::queue(&db).unwrap();
    dispatcher(&queue).dispatch(Hang).await.unwrap();
    let mut child = spawn_child(&db, "until-empty", &[(CHILD_QUEUE, "hang")]);
    exits_within(&mut child, Duration::from_secs(30), "until empty");
    let report = std::fs::read_to_string(dir.path().join("report")).unwrap();
    assert!(report.contains("failed: 1,"), "{report}");
    assert!(
        report.contains("abandoned: 1"),
        "it says it left the thread behind: {report}"
    );
    assert_eq!(
        queue.failed().await.unwrap()[0].error,
        "listener `worker::hang` timed out after 2s"
    );
}

/// `work` until SIGTERM, sent once the job has failed: the worker stops
/// and its process exits at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_exits_on_sigterm_though_a_plain_fn_listener_hangs_past_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir.path().join("queue.sqlite");
    let queue = SqliteBackend::queue(&db).unwrap();
    dispatcher(&queue).dispatch(Hang).await.unwrap();
    let mut child = spawn_child(&db, "signals", &[(CHILD_QUEUE, "hang")]);
    let started = Instant::now();
    while queue.failed().await.unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the job never timed out"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sigterm(&child);
    let took = exits_within(&mut child, Duration::from_secs(10), "SIGTERM");
    assert!(took < Duration::from_secs(5), "took {took:?} to exit");
    let report = std::fs::read_to_string(dir.path().join("report")).unwrap();
    assert!(report.contains("abandoned: 1"), "{report}");
    let failed = queue.failed().await.unwrap();
    assert!(
        failed
            .iter()
            .all(|f| f.error == "listener `worker::hang` timed out after 2s"),
        "{failed:?}"
    );
}

// --- a worker killed with jobs claimed (issue 10, bug 11) ---------------------------

#[event(name = "charged")]
#[derive(Serialize, Deserialize)]
pub struct Charged {
    pub dir: String,
    pub n: u32,
    pub slow: bool,
}

/// In the child worker process, a slow job marks that it started and then
/// runs for an hour (the parent kills the child meanwhile); anywhere else,
/// and for quick jobs, it finishes at once.
#[listener(queue = "charged", tries = 1, timeout = "1h")]
async fn charged(e: &Charged) {
    if e.slow && std::env::var(CHILD_DB).is_ok() {
        std::fs::write(Path::new(&e.dir).join(format!("started-{}", e.n)), "").unwrap();
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_charges_a_try_only_to_the_jobs_it_was_running() {
    const CONCURRENCY: usize = 2;
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir.path().join("queue.sqlite");
    let queue = SqliteBackend::queue(&db).unwrap();
    let d = dispatcher(&queue);
    let at = dir.path().display().to_string();
    // Quick jobs first (they used to grow a slot's claims to batches of
    // 16), then slow ones.
    for (n, slow) in (0..100)
        .map(|n| (n, false))
        .chain((100..140).map(|n| (n, true)))
    {
        d.dispatch(Charged {
            dir: at.clone(),
            n,
            slow,
        })
        .await
        .unwrap();
    }

    let concurrency = CONCURRENCY.to_string();
    let mut child = spawn_child(
        &db,
        "until-empty",
        &[(CHILD_QUEUE, "charged"), (CHILD_CONCURRENCY, &concurrency)],
    );
    let started = |dir: &Path| -> Vec<u32> {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.strip_prefix("started-").map(|n| n.parse().unwrap())
            })
            .collect()
    };
    let since = Instant::now();
    while started(dir.path()).len() < CONCURRENCY {
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "the slow jobs never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap(); // SIGKILL: whatever it claimed stays claimed.
    child.wait().unwrap();
    let ran = started(dir.path());
    assert_eq!(ran.len(), CONCURRENCY, "only the running jobs started");

    let report = Worker::new(queue.clone())
        .queues(["charged"])
        .concurrency(4)
        .lease(Duration::from_millis(600))
        .poll_interval(Duration::from_millis(50))
        .run_until_empty()
        .await
        .unwrap();
    let failed = queue.failed().await.unwrap();
    let charged: Vec<u32> = failed
        .iter()
        .map(|f| {
            serde_json::from_str::<serde_json::Value>(&f.payload).unwrap()["n"]
                .as_u64()
                .unwrap() as u32
        })
        .collect();
    assert!(
        charged.iter().all(|n| ran.contains(n)),
        "jobs that never started were charged a try: failed {charged:?}, started {ran:?}; {report:?}"
    );
    assert!(failed.len() <= CONCURRENCY, "{failed:?}");
    assert_eq!(queue.size("charged").await.unwrap(), 0);
}

// --- SIGTERM under a backlog of quick jobs (issue 10, bug 10) ------------------------

const BACKLOG_DIR: &str = "EVENTS_TEST_BACKLOG_DIR";
const BACKLOG: usize = 200_000;

#[event(name = "quick")]
#[derive(Serialize, Deserialize)]
pub struct Quick;

static QUICK_RUNS: AtomicUsize = AtomicUsize::new(0);

/// About 20 µs of work, without a single await that could yield.
#[listener(queue = "quick")]
async fn quick(_: &Quick) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_micros(20) {
        std::hint::spin_loop();
    }
    if QUICK_RUNS.fetch_add(1, Ordering::Relaxed) == 1000
        && let Ok(dir) = std::env::var(BACKLOG_DIR)
    {
        std::fs::write(Path::new(&dir).join("started"), "").unwrap();
    }
}

/// Not a test of its own: the worker process of the backlog test. A memory
/// queue full of quick jobs, more slots than runtime threads, `run()` until
/// SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_backlog_worker() {
    let Ok(dir) = std::env::var(BACKLOG_DIR) else {
        return;
    };
    let queue = Queue::memory();
    let now = SystemTime::now();
    let jobs: Vec<Job> = (0..BACKLOG)
        .map(|n| {
            let mut job = Job::from_parts(
                format!("quick-{n}"),
                "quick",
                "worker::quick",
                "quick",
                "null",
                events::Envelope::new(),
            );
            job.available_at = now;
            job
        })
        .collect();
    queue.enqueue_many(jobs).await.unwrap();
    let report = Worker::new(queue.clone())
        .queues(["quick"])
        .concurrency(8)
        .run()
        .await
        .unwrap();
    let left = queue.size("quick").await.unwrap();
    std::fs::write(
        Path::new(&dir).join("report"),
        format!("{} {left}", report.succeeded),
    )
    .unwrap();
}

#[test]
fn sigterm_stops_a_worker_under_a_backlog_of_quick_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_backlog_worker",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(BACKLOG_DIR, dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_for(&dir.path().join("started"), Duration::from_secs(60)),
        "the worker never got going"
    );
    sigterm(&child);
    let took = exits_within(&mut child, Duration::from_secs(60), "SIGTERM");
    let report = std::fs::read_to_string(dir.path().join("report")).unwrap();
    let (done, left) = report.split_once(' ').unwrap();
    let (done, left): (usize, usize) = (done.parse().unwrap(), left.parse().unwrap());
    assert_eq!(done + left, BACKLOG, "none lost: {report}");
    assert!(
        left > BACKLOG / 2,
        "the worker ran {done} jobs, {left} left, and took {took:?} to stop after SIGTERM"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

// --- queue order -----------------------------------------------------------------------

#[event(name = "turn")]
#[derive(Serialize, Deserialize)]
pub struct Turn;

static TURNS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

#[listener(queue = "default")]
fn on_default(_: &Turn) {
    TURNS.lock().unwrap().push("default");
}

#[listener(queue = "mail")]
fn on_mail(_: &Turn) {
    TURNS.lock().unwrap().push("mail");
}

#[tokio::test]
async fn a_default_worker_gives_every_queue_a_turn() {
    let queue = Queue::memory();
    let d = dispatcher(&queue);
    for _ in 0..20 {
        // Each dispatch enqueues one job on `default` and one on `mail`.
        d.dispatch(Turn).await.unwrap();
    }
    let report = Worker::new(queue.clone())
        .max_jobs(10)
        .run_until_empty()
        .await
        .unwrap();
    assert_eq!(report.succeeded, 10);
    let turns = TURNS.lock().unwrap().clone();
    let mail = turns.iter().filter(|q| **q == "mail").count();
    assert!(
        (4..=6).contains(&mail),
        "`default` sorts before `mail` and must not starve it: {turns:?}"
    );
    assert_eq!(turns.len(), 10);
}

#[event(name = "drowsy")]
#[derive(Serialize, Deserialize)]
pub struct Drowsy;

#[listener(queue = "drowsy", timeout = "1h")]
fn drowsy(_: &Drowsy) {
    std::thread::sleep(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_a_plain_fn_that_outlives_the_grace_period_behind_and_says_so() {
    let queue = Queue::memory();
    dispatcher(&queue).dispatch(Drowsy).await.unwrap();
    let started = Instant::now();
    let report = Worker::new(queue.clone())
        .queues(["drowsy"])
        .grace(Duration::from_millis(100))
        .run_until(tokio::time::sleep(Duration::from_millis(100)))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the worker waited {:?}",
        started.elapsed()
    );
    assert_eq!(
        (report.released_at_shutdown, report.abandoned),
        (1, 1),
        "{report:?}"
    );
    assert_eq!(queue.size("drowsy").await.unwrap(), 1, "handed back");
}
