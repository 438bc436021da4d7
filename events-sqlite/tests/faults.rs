//! What the SQLite queue does when the world misbehaves: another process
//! holding the write lock, rows that cannot be read, many processes opening
//! one new file at once, and a full disk.

use std::error::Error;
use std::path::Path;
use std::time::{Duration, Instant};

use events_core::Envelope;
use events_core::queue::{Job, Queue};
use events_sqlite::SqliteBackend;

const LEASE: Duration = Duration::from_secs(30);

fn job(id: &str) -> Job {
    let mut job = Job::from_parts(
        id,
        "a",
        "tests::listener",
        "test.event",
        "{}",
        Envelope::new(),
    );
    job.max_tries = 3;
    job
}

fn queues() -> Vec<String> {
    vec!["a".to_owned()]
}

/// Every message in an error's chain, outermost first, joined.
fn chain(error: &(dyn Error + 'static)) -> String {
    std::iter::successors(Some(error), |&e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

/// Holds the write lock of the file at `path` (`BEGIN IMMEDIATE`) from
/// another connection on another thread for `hold`; returns once it is
/// held.
fn hold_write_lock(path: &Path, hold: Duration) -> std::thread::JoinHandle<()> {
    let path = path.to_owned();
    let (held, is_held) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch("BEGIN IMMEDIATE").unwrap();
        held.send(()).unwrap();
        std::thread::sleep(hold);
        raw.execute_batch("COMMIT").unwrap();
    });
    is_held.recv().unwrap();
    holder
}

/// While another connection holds the write lock for a second, an enqueue
/// waits for it, and a timer task on the same current-thread runtime keeps
/// ticking (before SQLite ran on its own thread, it stalled for the whole
/// second).
#[test]
fn a_write_lock_held_elsewhere_does_not_stall_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite");
    let queue = SqliteBackend::queue(&path).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ticker = tokio::spawn(async {
            let mut longest = Duration::ZERO;
            let mut last = Instant::now();
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                longest = longest.max(last.elapsed());
                last = Instant::now();
            }
            longest
        });
        // Let the ticker start.
        tokio::task::yield_now().await;
        let holder = hold_write_lock(&path, Duration::from_secs(1));
        let started = Instant::now();
        queue.enqueue(job("job-1")).await.unwrap();
        let waited = started.elapsed();
        holder.join().unwrap();
        let longest = ticker.await.unwrap();
        assert!(
            waited >= Duration::from_millis(800),
            "the enqueue waited for the lock: {waited:?}"
        );
        assert!(
            longest < Duration::from_millis(300),
            "the runtime stalled for {longest:?} while the enqueue waited"
        );
    });
    assert_eq!(
        runtime.block_on(queue.size("a")).unwrap(),
        1,
        "the job was stored once the lock was free"
    );
}

/// Rows that cannot be read as jobs (a payload that is not UTF-8, a
/// negative `max_tries`, a listener name stored as a blob) go to the failed
/// store with the reason; the claim takes the others and does not fail.
#[tokio::test]
async fn rows_that_cannot_be_read_go_to_the_failed_store_and_the_rest_are_claimed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite");
    let queue = SqliteBackend::queue(&path).unwrap();
    for id in [
        "job-1",
        "bad-utf8",
        "job-2",
        "bad-tries",
        "bad-listener",
        "job-3",
    ] {
        queue.enqueue(job(id)).await.unwrap();
    }
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute_batch(
        "UPDATE events_jobs SET payload = CAST(X'7B22223AFF7D' AS TEXT) WHERE id = 'bad-utf8';
         UPDATE events_jobs SET max_tries = -1 WHERE id = 'bad-tries';
         UPDATE events_jobs SET listener = X'6C6973' WHERE id = 'bad-listener';",
    )
    .unwrap();

    let claimed = queue
        .backend()
        .claim(&queues(), 3, LEASE)
        .await
        .expect("one bad row must not fail the claim");
    let ids: Vec<&str> = claimed.iter().map(|job| job.id.as_str()).collect();
    assert_eq!(
        ids,
        ["job-1", "job-2", "job-3"],
        "the readable rows, in order"
    );

    let failed = queue.failed().await.expect("the failed store lists them");
    let mut reasons: Vec<(&str, &str)> = failed
        .iter()
        .map(|job| (job.id.as_str(), job.error.as_str()))
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert_eq!(
        reasons[0],
        (
            "bad-listener",
            "its stored row cannot be read, so it cannot run: column `listener` holds a value of type Blob"
        )
    );
    assert_eq!(reasons[1].0, "bad-tries");
    assert_eq!(
        reasons[1].1,
        "its stored row cannot be read, so it cannot run: column `max_tries` holds -1, out of range"
    );
    assert_eq!(reasons[2].0, "bad-utf8");
    assert!(
        reasons[2].1.starts_with(
            "its stored row cannot be read, so it cannot run: column `payload` is not valid UTF-8: invalid utf-8"
        ),
        "{reasons:?}"
    );
    let utf8 = failed.iter().find(|job| job.id == "bad-utf8").unwrap();
    assert_eq!(
        utf8.payload, "{\"\":\u{FFFD}}",
        "listed with the bad bytes replaced"
    );
    // The raw row moved whole: nothing was lost.
    let stored: Vec<u8> = raw
        .query_row(
            "SELECT CAST(payload AS BLOB) FROM events_failed_jobs WHERE id = 'bad-utf8'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, b"{\"\":\xFF}");
    assert_eq!(
        queue.size("a").await.unwrap(),
        3,
        "the claimed three are left"
    );
    for job in claimed {
        assert!(queue.backend().ack(&job.id, job.attempt).await.unwrap());
    }
    assert_eq!(queue.size("a").await.unwrap(), 0);
}

/// Many processes opening one new file at the same moment all succeed:
/// switching a new file to WAL takes its lock without waiting for it, and
/// is retried. (Threads of one process do not race so: SQLite shares one
/// lock per file among them. So this test starts itself again as the
/// opening processes.)
#[test]
fn many_processes_opening_one_new_file_at_once_all_succeed() {
    if let Ok(path) = std::env::var(OPENER_PATH) {
        return open_as_child(&path);
    }
    let dir = tempfile::tempdir().unwrap();
    let openers = 6;
    let mut failures = Vec::new();
    for round in 0..30 {
        let path = dir.path().join(format!("fresh-{round}.sqlite"));
        // Start together: each waits for this moment before opening.
        let at = std::time::SystemTime::now() + Duration::from_millis(150);
        let at = at
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros();
        let children: Vec<_> = (0..openers)
            .map(|_| {
                std::process::Command::new(std::env::current_exe().unwrap())
                    .args([
                        "--exact",
                        "many_processes_opening_one_new_file_at_once_all_succeed",
                        "--nocapture",
                        "--test-threads=1",
                    ])
                    .env(OPENER_PATH, &path)
                    .env(OPENER_AT, at.to_string())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let output = child.wait_with_output().unwrap();
            if !output.status.success() {
                failures.push(format!(
                    "round {round}: {}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const OPENER_PATH: &str = "EVENTS_SQLITE_TEST_OPEN";
const OPENER_AT: &str = "EVENTS_SQLITE_TEST_OPEN_AT";

/// The child of the test above: waits for the agreed moment, opens.
fn open_as_child(path: &str) {
    let at: u128 = std::env::var(OPENER_AT).unwrap().parse().unwrap();
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros();
        if now >= at {
            break;
        }
        std::thread::sleep(Duration::from_micros(((at - now) as u64).min(1000)));
    }
    if let Err(error) = SqliteBackend::queue(path) {
        println!("OPEN FAILED: {}", chain(&error));
        std::process::exit(1);
    }
}

/// Opening a file whose schema is current takes no write lock: it opens at
/// once while another process is in a write transaction, and reads work.
#[test]
fn opening_a_current_file_does_not_wait_for_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite");
    drop(SqliteBackend::queue(&path).unwrap());
    let holder = hold_write_lock(&path, Duration::from_secs(3));
    let started = Instant::now();
    let queue = SqliteBackend::queue(&path).expect("opens while another writes");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    assert!(runtime.block_on(queue.failed()).unwrap().is_empty());
    assert!(runtime.block_on(queue.stats()).unwrap().is_empty());
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "opening and reading waited {took:?} for another process's write lock"
    );
    holder.join().unwrap();
}

/// Writes sent at the same time share transactions, but each gets its own
/// result: the one SQLite refuses fails alone, the others are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite");
    let queue = SqliteBackend::queue(&path).unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute_batch(
        "CREATE TRIGGER poison BEFORE INSERT ON events_jobs WHEN NEW.id = 'job-13'
         BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;",
    )
    .unwrap();
    // Hold the lock so the enqueues pile up and are grouped when it frees.
    let holder = hold_write_lock(&path, Duration::from_millis(300));
    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let queue = queue.clone();
            tokio::spawn(async move { queue.enqueue(job(&format!("job-{n}"))).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    holder.join().unwrap();
    for (n, result) in results.iter().enumerate() {
        match result {
            Err(error) if n == 13 => {
                assert!(chain(error).contains(": poisoned row"), "{}", chain(error))
            }
            Ok(()) if n != 13 => {}
            other => panic!("job-{n}: {other:?}"),
        }
    }
    assert_eq!(queue.size("a").await.unwrap(), 39);
}

/// Queue URLs choose `synchronous`; an unknown level or option is refused
/// in words.
#[test]
fn the_url_chooses_synchronous_and_refuses_unknown_levels() {
    let dir = tempfile::tempdir().unwrap();
    for level in ["full", "normal", "off", "FULL"] {
        let url = format!(
            "sqlite://{}?synchronous={level}",
            dir.path().join(format!("{level}.sqlite")).display()
        );
        let queue = Queue::open(&url).unwrap();
        assert_eq!(queue.url(), url);
    }
    let path = dir.path().join("bad.sqlite");
    let url = format!("sqlite://{}?synchronous=fast", path.display());
    assert_eq!(
        Queue::open(&url).unwrap_err().to_string(),
        format!(
            "bad queue URL `{url}`: `synchronous=fast` is not a level SQLite knows here: use `full`, `normal` (the default) or `off`"
        )
    );
    assert!(!path.exists(), "nothing was created");
    let url = format!("sqlite://{}?journal=delete", path.display());
    assert_eq!(
        Queue::open(&url).unwrap_err().to_string(),
        format!(
            "bad queue URL `{url}`: unknown option `journal=delete`: the one option is `synchronous=full|normal|off`"
        )
    );
}

/// Dropping a queue handle closes its file before the drop returns (its
/// threads finish and close their connections): right after, another
/// connection is alone on the file, which leaving WAL mode requires.
#[tokio::test]
async fn a_dropped_queue_has_closed_its_file() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..10 {
        let path = dir.path().join(format!("queue-{round}.sqlite"));
        let queue = SqliteBackend::queue(&path).unwrap();
        queue.enqueue(job("job-1")).await.unwrap();
        assert_eq!(queue.size("a").await.unwrap(), 1);
        drop(queue);
        let raw = rusqlite::Connection::open(&path).unwrap();
        let mode: String = raw
            .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
            .unwrap_or_else(|error| panic!("round {round}: the file is still open: {error}"));
        assert_eq!(mode, "delete", "round {round}: the file is still open");
    }
}
