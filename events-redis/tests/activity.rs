//! Workers' reports on Redis: what two machines report adds up, a worker
//! whose reports stop vanishes by itself, and two applications (prefixes)
//! never see each other's.
//!
//! Needs a Redis server (see `support`).

mod support;

use std::time::{Duration, SystemTime};

use events_core::queue::activity::{Finish, FinishedJob, MinuteStats, WorkerStatus, minute_of};
use events_core::queue::{ActivityReport, Backend};
use events_redis::{RedisBackend, RedisOptions};

fn report(worker: &WorkerStatus, minute: i64, succeeded: u64, wait_ms: u64) -> ActivityReport {
    let mut stats = MinuteStats::new(minute, "mail", "app::send");
    stats.succeeded = succeeded;
    for _ in 0..succeeded {
        stats.add_runtime(Duration::from_millis(12));
        stats.add_wait(Duration::from_millis(wait_ms));
    }
    let mut report = ActivityReport::new(worker.clone());
    report.minutes.push(stats);
    let mut done = FinishedJob::new(
        format!("{}-job", worker.id),
        Finish::Succeeded,
        SystemTime::now(),
    );
    done.queue = "mail".into();
    done.worker = worker.id.clone();
    report.finished.push(done);
    report
}

/// A second backend on the same prefix: another machine, its own
/// connection.
fn same_prefix(prefix: &str) -> RedisBackend {
    RedisBackend::open_with(
        &support::server_url(),
        RedisOptions::new().prefix(prefix).expect("a valid prefix"),
    )
    .unwrap()
}

fn exists(key: &str) -> bool {
    let client = redis::Client::open(support::server_url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    redis::cmd("EXISTS")
        .arg(key)
        .query::<i64>(&mut conn)
        .unwrap()
        == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_machines_reports_add_up_and_a_silent_worker_expires() {
    support::require_redis();
    let (one, cleanup) = support::fresh();
    let two = same_prefix(&cleanup.prefix);
    let now = SystemTime::now();
    let minute = minute_of(now);
    let steady = WorkerStatus::new("host-a:1:0", "host-a", 1, now, Duration::from_secs(10));
    // Reports every 300 ms: gone about a second after its last.
    let brief = WorkerStatus::new("host-b:2:0", "host-b", 2, now, Duration::from_millis(300));

    one.report(&report(&steady, minute, 3, 10)).await.unwrap();
    two.report(&report(&brief, minute, 2, 40)).await.unwrap();
    two.report(&report(&brief, minute, 1, 5)).await.unwrap();

    let since = now - Duration::from_secs(60);
    for backend in [&one, &two] {
        let activity = backend.activity(since).await.unwrap();
        let ids: Vec<&str> = activity.workers.iter().map(|w| w.id.as_str()).collect();
        assert_eq!(ids, ["host-a:1:0", "host-b:2:0"]);
        let [stats] = activity.minutes.as_slice() else {
            panic!("one minute, queue and listener: {:?}", activity.minutes);
        };
        assert_eq!(
            (
                stats.succeeded,
                stats.claims,
                stats.runtime_ms,
                stats.wait_max_ms
            ),
            (6, 6, 6 * 12, 40),
            "both machines' counts, added up"
        );
        assert_eq!(stats.wait_ms, 3 * 10 + 2 * 40 + 5);
        assert_eq!(activity.finished.len(), 3);
    }

    let key = format!("{{{}}}:worker:host-b:2:0", cleanup.prefix);
    assert!(exists(&key));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(!exists(&key), "the silent worker's key expired by itself");
    let activity = one.activity(since).await.unwrap();
    let ids: Vec<&str> = activity.workers.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, ["host-a:1:0"]);
    assert_eq!(activity.minutes[0].succeeded, 6, "its counts stay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_on_one_redis_never_see_each_others_reports() {
    support::require_redis();
    let (shop, _shop) = support::fresh();
    let (blog, _blog) = support::fresh();
    let now = SystemTime::now();
    let worker = WorkerStatus::new("host:1:0", "host", 1, now, Duration::from_secs(5));
    shop.report(&report(&worker, minute_of(now), 4, 1))
        .await
        .unwrap();

    let seen = blog.activity(now - Duration::from_secs(60)).await.unwrap();
    assert!(
        seen.workers.is_empty() && seen.minutes.is_empty() && seen.finished.is_empty(),
        "{seen:?}"
    );
    let own = shop.activity(now - Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        (own.workers.len(), own.minutes.len(), own.finished.len()),
        (1, 1, 1)
    );
}
