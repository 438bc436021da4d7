//! A full disk: the queue says so in words, and works again once space is
//! freed, without a restart. The disk is a 2 MiB tmpfs mounted for the
//! test, so the test needs root (CI runs as root; elsewhere it fails,
//! saying so, rather than pass without testing anything).

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

#[tokio::test]
async fn a_full_disk_is_reported_in_words_and_the_queue_works_again_once_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&dir.path().join("small"), "2m");
    let filler = disk.0.join("filler");
    std::fs::write(&filler, vec![0u8; 1280 * 1024]).unwrap();
    let queue = SqliteBackend::queue(disk.0.join("queue.sqlite")).unwrap();

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
    let text = chain(&error);
    assert!(text.contains("database or disk is full"), "{text}");

    // Free the space: the queue works again, and keeps working as jobs
    // come and go, without being opened again.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(work_all(&queue).await, stored, "every stored job is there");
    for round in 0..4 {
        for _ in 0..stored {
            queue.enqueue(big_job(n)).await.unwrap_or_else(|error| {
                panic!(
                    "round {round}: the disk filled again after {} jobs: {}",
                    n,
                    chain(&error)
                )
            });
            n += 1;
        }
        assert_eq!(work_all(&queue).await, stored);
    }
    drop(queue);
}
