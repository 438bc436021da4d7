//! A full disk: the queue says so in words, and works again once space is
//! freed, without a restart. The disk is a 2 MiB tmpfs mounted for the
//! test, so the test needs root (CI runs as root; elsewhere it fails,
//! saying so, rather than pass without testing anything). The test runs
//! the queue in a process of its own (this test binary started again),
//! and frees the space from outside it, as an operator would.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use events_core::Envelope;
use events_core::queue::{Job, Queue};
use events_sqlite::SqliteBackend;

/// A small tmpfs, unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("`mount` runs");
        assert!(
            status.success(),
            "this test mounts a {size} tmpfs to fill it, which needs root: {status}"
        );
        SmallDisk(at.to_owned())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn big_job(n: usize) -> Job {
    let payload = format!("\"{}\"", "x".repeat(16 * 1024));
    let mut job = Job::from_parts(
        format!("job-{n}"),
        "a",
        "tests::listener",
        "test.event",
        payload,
        Envelope::new(),
    );
    job.max_tries = 3;
    job
}

fn chain(error: &(dyn Error + 'static)) -> String {
    std::iter::successors(Some(error), |&e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

async fn work_all(queue: &Queue) -> usize {
    let jobs = queue
        .backend()
        .claim(&["a".to_owned()], 10_000, Duration::from_secs(60))
        .await
        .expect("claims work once space is freed");
    for job in &jobs {
        assert!(queue.backend().ack(&job.id, job.attempt).await.unwrap());
    }
    jobs.len()
}

const CHILD_DIR: &str = "EVENTS_SQLITE_TEST_DISK";

/// The parent: mounts the small disk, fills part of it, starts the queue
/// process, reads its report of the full disk, frees the space, and lets
/// it go on; the process must then work through several disks' worth of
/// jobs without being restarted.
#[test]
fn a_full_disk_is_reported_in_words_and_the_queue_works_again_once_space_is_freed() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        return runtime.block_on(queue_process(Path::new(&dir)));
    }
    use std::io::{BufRead, Write};
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&dir.path().join("small"), "2m");
    let filler = disk.0.join("filler");
    std::fs::write(&filler, vec![0u8; 1280 * 1024]).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_full_disk_is_reported_in_words_and_the_queue_works_again_once_space_is_freed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, &disk.0)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let full = lines
        .by_ref()
        .map(Result::unwrap)
        // The harness may print its "test .. ... " before it on one line.
        .find(|line| line.contains("FULL after "))
        .expect("the queue process reports the full disk");
    assert!(full.contains("database or disk is full"), "{full}");
    // Free the space, and tell the process.
    std::fs::remove_file(&filler).unwrap();
    writeln!(child.stdin.take().unwrap(), "freed").unwrap();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {}", rest.join("\n"));
    assert!(
        rest.iter().any(|line| line.contains("WORKED through ")),
        "{}",
        rest.join("\n")
    );
}

/// The queue process: enqueues until the disk is full and says so, waits
/// for the space to be freed, then keeps working.
async fn queue_process(dir: &Path) {
    let queue = SqliteBackend::queue(dir.join("queue.sqlite")).unwrap();
    let mut n = 0;
    let error = loop {
        match queue.enqueue(big_job(n)).await {
            Ok(()) => n += 1,
            Err(error) => break error,
        }
        assert!(n < 1_000, "a 2 MiB disk never filled");
    };
    let stored = n;
    assert!(stored > 10, "{stored} jobs fitted");
    say(&format!("FULL after {stored} jobs: {}", chain(&error)));
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "freed");

    // The queue works again, and keeps working as jobs come and go,
    // without being opened again.
    assert_eq!(work_all(&queue).await, stored, "every stored job is there");
    for round in 0..4 {
        for _ in 0..stored {
            queue.enqueue(big_job(n)).await.unwrap_or_else(|error| {
                panic!(
                    "round {round}: the disk filled again after {n} jobs: {}",
                    chain(&error)
                )
            });
            n += 1;
        }
        assert_eq!(work_all(&queue).await, stored);
    }
    say(&format!("WORKED through {n} jobs"));
}

/// A line to the parent, on stdout, flushed at once (the test harness may
/// hold stdout otherwise).
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}
