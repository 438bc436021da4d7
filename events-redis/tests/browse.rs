//! Listing jobs on Redis past one chunk of the structures, and a job whose
//! hash cannot be read, which is listed with the reason instead of failing
//! the listing.
//!
//! Needs a Redis server (see `support`).

mod support;

use std::time::{Duration, SystemTime};

use events_core::Envelope;
use events_core::queue::{Backend, Job, JobQuery, JobState, Order};

fn job(n: u32, at: SystemTime) -> Job {
    let mut job = Job::from_parts(
        format!("job-{n:05}"),
        "bulk",
        "tests::listener",
        "test.event",
        format!(r#"{{"n":{n}}}"#),
        Envelope::new(),
    );
    job.available_at = at;
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_page_past_a_chunk_and_survive_a_bad_job() {
    support::require_redis();
    let (backend, cleanup) = support::fresh();
    let start = SystemTime::now() - Duration::from_secs(10_000);
    // Enqueued newest first: the ready list's order is not time order.
    let jobs: Vec<Job> = (0..2500u32)
        .rev()
        .map(|n| job(n, start + Duration::from_secs(u64::from(n))))
        .collect();
    backend.enqueue_many(jobs).await.unwrap();

    let oldest = backend
        .jobs(&JobQuery::new().order(Order::Oldest).offset(1499).limit(3))
        .await
        .unwrap();
    assert_eq!(oldest.total, 2500);
    let ids: Vec<&str> = oldest.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["job-01499", "job-01500", "job-01501"]);
    let newest = backend.jobs(&JobQuery::new().limit(2)).await.unwrap();
    let ids: Vec<&str> = newest.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["job-02499", "job-02498"]);
    let since = backend
        .jobs(
            &JobQuery::new()
                .since(start + Duration::from_secs(2000))
                .limit(0),
        )
        .await
        .unwrap();
    assert_eq!((since.total, since.jobs.len()), (500, 0));

    // A body that is not a job's JSON.
    let key = format!("{{{}:bulk}}:job:job-00007", cleanup.prefix);
    let client = redis::Client::open(support::server_url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    redis::cmd("HSET")
        .arg(&key)
        .arg("b")
        .arg("not json at all")
        .query::<i64>(&mut conn)
        .unwrap();

    let found = backend
        .jobs(&JobQuery::new().search("\"n\":8}").limit(10))
        .await
        .unwrap();
    assert_eq!(found.total, 1, "{:?}", found.jobs);
    let search = backend
        .jobs(&JobQuery::new().search("AT ALL"))
        .await
        .unwrap();
    let [bad] = search.jobs.as_slice() else {
        panic!("the bad job is found by its raw body: {:?}", search.jobs);
    };
    assert_eq!((bad.id.as_str(), bad.state), ("job-00007", JobState::Ready));
    let reason = bad.error.as_deref().unwrap_or_default();
    assert!(
        reason.contains(&key) && reason.contains("cannot be read"),
        "{reason}"
    );
    let page = backend
        .jobs(&JobQuery::new().order(Order::Oldest).offset(5).limit(4))
        .await
        .unwrap();
    let ids: Vec<&str> = page.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["job-00005", "job-00006", "job-00007", "job-00008"]);
    let error = backend.job("job-00007").await.unwrap_err().to_string();
    assert!(error.contains(&key), "{error}");
    let one = backend.job("job-00008").await.unwrap().unwrap();
    assert_eq!(
        (one.state, one.payload.as_str()),
        (JobState::Ready, r#"{"n":8}"#)
    );
}
