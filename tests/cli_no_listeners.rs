//! `work` in a program that registers no queued listener, as an operator
//! binary does when it never links the library that defines them: it warns
//! loudly and leaves every job waiting.
#![cfg(feature = "cli")]

use events::queue::{Job, Queue};

#[tokio::test]
async fn work_without_queued_listeners_warns_and_leaves_every_job_waiting() {
    let queue = Queue::memory();
    let mut job = Job::from_parts(
        "job-1",
        "default",
        "my_app::send_receipt",
        "order.placed",
        "{}",
        events::Envelope::new(),
    );
    job.available_at = std::time::SystemTime::now();
    queue.enqueue(job).await.unwrap();

    let mut out = Vec::new();
    let args = ["app", "work", "--stop-when-empty", "--quiet"];
    events::cli::run_to(args, Some(queue.clone()), &mut out)
        .await
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "warning: this program registers no queued listener, so it can run no job: does its binary link the library that defines the listeners? A library that `main` never names is not linked, and its `#[listener]`s are not registered: add `use my_app as _;` to the binary. `work` leaves every job waiting, untouched.",
        "{out}"
    );
    assert!(
        lines[1].starts_with("warning: jobs for listener `my_app::send_receipt` left waiting"),
        "{out}"
    );
    assert!(
        out.ends_with("; 1 job(s) left waiting for a listener this program does not have\n"),
        "{out}"
    );
    assert_eq!(queue.size("default").await.unwrap(), 1, "the job waits");
    assert!(queue.failed().await.unwrap().is_empty(), "nothing failed");
}
