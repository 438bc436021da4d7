//! The SQLite event store beside the queue: one file holding both, one
//! transaction for an append and its jobs (checked by injecting a failure
//! after the events are written, and by killing a process with SIGKILL
//! while it appends), an old queue file gaining the log's tables, and bad
//! input answered in words.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use events_core::queue::{Job, Queue};
use events_core::store::{EventQuery, EventStore, NewEvent, Store, StoreError, TimelineQuery};
use events_core::{Envelope, EventId};
use events_sqlite::{SCHEMA_VERSION, SqliteBackend, SqliteStore};

/// An event about `appointment:{n}`.
fn event(n: u32) -> NewEvent {
    NewEvent::new("appointment.created", format!("{{\"n\":{n}}}"))
        .entity(format!("appointment:{n}").parse().unwrap())
}

/// The jobs one dispatch of `event` enqueues: one per listener.
fn jobs_of(event: &NewEvent, listeners: &[&str]) -> Vec<Job> {
    listeners
        .iter()
        .map(|listener| {
            let mut job = Job::from_parts(
                format!("{}-{listener}", event.id),
                "default",
                *listener,
                &event.name,
                &event.payload,
                Envelope::from_parts(event.id, event.occurred_at, event.metadata.clone()),
            );
            job.max_tries = 3;
            job
        })
        .collect()
}

/// Every message in an error's chain, outermost first.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(Some(error), |&e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

/// The event ids of the log and how many jobs of each event the queue
/// holds, read from the file with a connection of its own.
fn census(path: &Path) -> (BTreeSet<String>, BTreeMap<String, usize>) {
    let raw = rusqlite::Connection::open(path).unwrap();
    let mut events = BTreeSet::new();
    let mut statement = raw.prepare("SELECT id FROM events_log").unwrap();
    let mut rows = statement.query([]).unwrap();
    while let Some(row) = rows.next().unwrap() {
        let bytes: Vec<u8> = row.get(0).unwrap();
        let bits = u128::from_be_bytes(bytes.try_into().unwrap());
        events.insert(EventId::from_u128(bits).to_string());
    }
    let mut jobs = BTreeMap::new();
    let mut statement = raw
        .prepare("SELECT event_id, COUNT(*) FROM events_jobs GROUP BY event_id")
        .unwrap();
    let mut rows = statement.query([]).unwrap();
    while let Some(row) = rows.next().unwrap() {
        jobs.insert(row.get(0).unwrap(), row.get::<_, i64>(1).unwrap() as usize);
    }
    (events, jobs)
}

/// On one file, a store opened on the queue writes an append and its jobs
/// together; the worker's queue sees the jobs, and the log the events.
#[tokio::test]
async fn a_store_on_the_queue_appends_and_enqueues_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.sqlite");
    let backend = SqliteBackend::open(&path).unwrap();
    let store = backend.store();
    let queue = Queue::with_backend("sqlite://app", backend);
    assert!(store.shares_file_with(&queue));
    assert!(!store.shares_file_with(&Queue::memory()));

    let one = event(1);
    let jobs = jobs_of(&one, &["mail", "calendar"]);
    let appended = store
        .append_with_jobs(vec![one.clone()], jobs, &queue)
        .await
        .unwrap();
    assert!(appended[0].stored);
    assert_eq!(queue.size("default").await.unwrap(), 2);
    let stored = store.event(one.id).await.unwrap().unwrap();
    assert_eq!(stored.entity_version, Some(1));

    let (events, jobs) = census(&path);
    assert_eq!(events, BTreeSet::from([one.id.to_string()]));
    assert_eq!(jobs.get(&one.id.to_string()), Some(&2));

    // The same id again: the event is kept once, and its jobs (same ids)
    // once.
    store
        .append_with_jobs(
            vec![one.clone()],
            jobs_of(&one, &["mail", "calendar"]),
            &queue,
        )
        .await
        .unwrap();
    assert_eq!(queue.size("default").await.unwrap(), 2);
    assert_eq!(store.last_position().await.unwrap(), 1);
}

/// A store opened apart on the queue's path (as `EVENTS_STORE_URL` and
/// `EVENTS_QUEUE_URL` naming one file do) is one database too: its own
/// connection writes the jobs in the same transaction, and a worker on the
/// queue handle runs them.
#[tokio::test]
async fn a_store_opened_apart_on_the_queues_file_is_atomic_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.sqlite");
    let queue = SqliteBackend::queue(&path).unwrap();
    let url = format!("sqlite://{}", path.display());
    let store = Store::open(&url).unwrap();
    assert_eq!(store.url(), url);
    let apart = SqliteStore::open(&path).unwrap();
    assert!(apart.shares_file_with(&queue));

    // A trigger makes SQLite refuse any job: the failure comes after the
    // events were written, inside the transaction.
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute_batch(
        "CREATE TRIGGER refuse_jobs BEFORE INSERT ON events_jobs
         BEGIN SELECT RAISE(ABORT, 'injected: no jobs today'); END;",
    )
    .unwrap();
    let one = event(1);
    let error = store
        .append_with_jobs(vec![one.clone()], jobs_of(&one, &["mail"]), &queue)
        .await
        .unwrap_err();
    assert!(
        chain(&error).contains("injected: no jobs today"),
        "{}",
        chain(&error)
    );
    assert!(matches!(error, StoreError::Backend { .. }), "{error:?}");
    assert!(store.event(one.id).await.unwrap().is_none());
    assert_eq!(store.last_position().await.unwrap(), 0);
    let (events, jobs) = census(&path);
    assert!(events.is_empty() && jobs.is_empty(), "{events:?} {jobs:?}");

    raw.execute_batch("DROP TRIGGER refuse_jobs").unwrap();
    store
        .append_with_jobs(vec![one.clone()], jobs_of(&one, &["mail"]), &queue)
        .await
        .unwrap();
    let (events, jobs) = census(&path);
    assert_eq!(events.len(), 1);
    assert_eq!(jobs.get(&one.id.to_string()), Some(&1));
    let claimed = queue
        .backend()
        .claim(&["default".to_owned()], 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].envelope.id, one.id);
}

/// For a queue elsewhere (memory here), the events are stored, then the
/// jobs enqueued: two writes, as the trait's default does.
#[tokio::test]
async fn a_queue_elsewhere_gets_its_jobs_after_the_append() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.sqlite")).unwrap();
    let queue = Queue::memory();
    let one = event(1);
    store
        .append_with_jobs(vec![one.clone()], jobs_of(&one, &["mail", "sms"]), &queue)
        .await
        .unwrap();
    assert_eq!(queue.size("default").await.unwrap(), 2);
    assert!(store.event(one.id).await.unwrap().is_some());
    let error = SqliteStore::for_queue(&queue).unwrap_err();
    assert!(
        error.to_string().contains("is not a SQLite queue"),
        "{error}"
    );
}

/// A job the queue would refuse refuses the whole append, before anything
/// is written, in words.
#[tokio::test]
async fn an_invalid_job_refuses_the_append() {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::open(&dir.path().join("app.sqlite")).unwrap();
    let store = backend.store();
    let queue = Queue::with_backend("sqlite://app", backend);
    let one = event(1);
    let mut jobs = jobs_of(&one, &["mail"]);
    jobs[0].max_tries = 0;
    let error = store
        .append_with_jobs(vec![one.clone()], jobs, &queue)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Invalid(_)), "{error:?}");
    assert!(error.to_string().contains("nothing was stored"), "{error}");
    assert!(store.event(one.id).await.unwrap().is_none());
}

/// The queue's tables and the log's live in one file: each side works
/// while the other is busy, and a worker drains the queue while the log
/// keeps its events.
#[tokio::test]
async fn queue_and_log_tables_coexist_in_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.sqlite");
    let backend = SqliteBackend::open(&path).unwrap();
    let store = backend.store();
    let queue = Queue::with_backend("sqlite://app", backend);
    for n in 0..50 {
        let e = event(n);
        let jobs = jobs_of(&e, &["a"]);
        store.append_with_jobs(vec![e], jobs, &queue).await.unwrap();
        queue
            .enqueue(jobs_of(&event(1000 + n), &["plain"]).remove(0))
            .await
            .unwrap();
    }
    assert_eq!(queue.size("default").await.unwrap(), 100);
    let mut done = 0;
    loop {
        let claimed = queue
            .backend()
            .claim(&["default".to_owned()], 16, Duration::from_secs(30))
            .await
            .unwrap();
        if claimed.is_empty() {
            break;
        }
        for job in claimed {
            assert!(queue.backend().ack(&job.id, job.attempt).await.unwrap());
            done += 1;
        }
    }
    assert_eq!(done, 100);
    assert_eq!(queue.size("default").await.unwrap(), 0);
    let page = store.events(&EventQuery::new().limit(1000)).await.unwrap();
    assert_eq!(page.events.len(), 50);
    let raw = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = raw
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

/// A queue file of the previous release (schema 3, no log tables) keeps
/// its jobs and its schema version, and gains the log's tables when a
/// store opens it.
#[tokio::test]
async fn an_old_queue_file_gains_the_log_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    {
        let queue = SqliteBackend::queue(&path).unwrap();
        queue
            .enqueue(jobs_of(&event(1), &["kept"]).remove(0))
            .await
            .unwrap();
    }
    // What the previous release left: the same file without the log.
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute_batch(
        "DROP TABLE events_log; DROP TABLE events_log_related; DROP TABLE events_stream_tails;
         DROP TABLE events_checkpoints; DROP TABLE events_subscriptions; DROP TABLE events_deliveries;
         DROP TABLE events_log_last;",
    )
    .unwrap();
    let tables = |raw: &rusqlite::Connection| -> BTreeSet<String> {
        let mut statement = raw
            .prepare("SELECT name FROM sqlite_master WHERE name LIKE 'events\\_log%' ESCAPE '\\'")
            .unwrap();
        statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert!(tables(&raw).is_empty());

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        tables(&raw),
        BTreeSet::from(
            [
                "events_log",
                "events_log_entity",
                "events_log_id",
                "events_log_last",
                "events_log_name",
                "events_log_related",
                "events_log_time"
            ]
            .map(String::from)
        )
    );
    let version: i64 = raw
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 3);
    store.append(vec![event(7)]).await.unwrap();
    let queue = SqliteBackend::queue(&path).unwrap();
    assert_eq!(queue.size("default").await.unwrap(), 1);
    assert_eq!(store.last_position().await.unwrap(), 1);
}

/// Pruning every event, the newest included, forgets neither the last
/// position nor a stream's version: the next append takes the next
/// position and the next version, as on a log never pruned.
#[tokio::test]
async fn pruning_the_newest_events_reuses_no_position_and_no_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.sqlite")).unwrap();
    let long_ago = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    let old: Vec<NewEvent> = (0..3).map(|_| event(5).occurred_at(long_ago)).collect();
    store.append(old).await.unwrap();
    let entity = "appointment:5".parse().unwrap();
    assert_eq!(store.stream_version(&entity).await.unwrap(), 3);
    let gone = store
        .prune(&events_core::store::Prune::older_than(Duration::from_secs(
            3600,
        )))
        .await
        .unwrap();
    assert_eq!(gone, 3);
    assert!(
        store
            .events(&EventQuery::new())
            .await
            .unwrap()
            .events
            .is_empty()
    );
    assert_eq!(store.last_position().await.unwrap(), 3);
    assert_eq!(store.stream_version(&entity).await.unwrap(), 3);
    let next = store.append(vec![event(5)]).await.unwrap();
    assert_eq!(next[0].position, 4);
    let stored = store
        .timeline(&TimelineQuery::new(entity.clone()))
        .await
        .unwrap();
    assert_eq!(stored.events[0].entity_version, Some(4));
    let error = store
        .append_expecting(&entity, 3, vec![event(5)])
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::Conflict { actual: 4, .. }),
        "{error:?}"
    );
}

/// Bad URLs, events, entities, queries and rows: each is refused in
/// words, and nothing is stored.
#[tokio::test]
async fn bad_input_is_refused_in_words() {
    for (url, says) in [
        ("sqlite://", "expected `sqlite://path`"),
        ("sqlite://x.sqlite?cache=big", "unknown option `cache=big`"),
        (
            "sqlite://x.sqlite?synchronous=sometimes",
            "synchronous=sometimes",
        ),
    ] {
        let error = Store::open(url).unwrap_err();
        assert!(matches!(error, StoreError::BadUrl { .. }), "{error:?}");
        assert!(error.to_string().contains(says), "{url}: {error}");
    }
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/events.sqlite");
    let error = SqliteStore::open(&missing).unwrap_err();
    assert!(
        chain(&error).contains("no/such/dir/events.sqlite"),
        "{}",
        chain(&error)
    );

    let path = dir.path().join("events.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    let error = store
        .append(vec![event(1), NewEvent::new("", "{}")])
        .await
        .unwrap_err();
    assert!(error.to_string().contains("its name is empty"), "{error}");
    let entity = "appointment:1".parse().unwrap();
    let error = store
        .append_expecting(&entity, 0, vec![event(2)])
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("is not about `appointment:1`"),
        "{error}"
    );
    let error = store.events(&EventQuery::new().limit(0)).await.unwrap_err();
    assert!(
        error.to_string().contains("`limit` must be at least 1"),
        "{error}"
    );
    let error = store
        .timeline(&TimelineQuery::new(entity.clone()).limit(0))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Invalid(_)), "{error:?}");
    assert_eq!(store.last_position().await.unwrap(), 0);

    // A row another program spoiled: reading it says which and why; the
    // rows beside it still read one at a time.
    store.append(vec![event(1), event(2)]).await.unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute(
        "UPDATE events_log SET metadata = 'not json' WHERE position = 2",
        [],
    )
    .unwrap();
    let error = store.events(&EventQuery::new()).await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");
    assert!(
        error.to_string().contains("position 2") && error.to_string().contains("`metadata`"),
        "{error}"
    );
    let first = store.events(&EventQuery::new().before(2)).await.unwrap();
    assert_eq!(first.events.len(), 1);
}

const CHILD_PATH: &str = "EVENTS_SQLITE_TEST_STORE_CHILD";

/// The child of the test below: appends with jobs on a store sharing the
/// queue's file as fast as it can, from four tasks, and says when it has
/// written a first batch; it never stops on its own.
fn append_until_killed(path: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let backend = SqliteBackend::open(Path::new(path)).unwrap();
        let store = backend.store();
        let queue = Queue::with_backend("sqlite://child", backend);
        let mut tasks = Vec::new();
        for task in 0..4u32 {
            let (store, queue) = (store.clone(), queue.clone());
            tasks.push(tokio::spawn(async move {
                for round in 0u32.. {
                    // A dispatch of one to eight events, each with three jobs.
                    let events: Vec<NewEvent> = (0..1 + (round + task) % 8)
                        .map(|n| event(task * 1000 + n))
                        .collect();
                    let jobs = events
                        .iter()
                        .flat_map(|e| jobs_of(e, &["mail", "calendar", "audit"]))
                        .collect();
                    store.append_with_jobs(events, jobs, &queue).await.unwrap();
                    if round == 20 && task == 0 {
                        println!("appending");
                    }
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
}

/// Processes killed with SIGKILL while appending with jobs, again and
/// again on one file: every event in the log has all three of its jobs,
/// and every job's event is in the log.
#[test]
fn a_killed_appender_never_leaves_an_event_without_its_jobs() {
    if let Ok(path) = std::env::var(CHILD_PATH) {
        return append_until_killed(&path);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.sqlite");
    for round in 0..6u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_killed_appender_never_leaves_an_event_without_its_jobs",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_PATH, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("appending") => break,
                Some(Ok(_)) => continue,
                other => panic!("the appender ended before appending: {other:?}"),
            }
        }
        // Kill at a different moment each round.
        std::thread::sleep(Duration::from_millis(20 + 37 * round));
        child.kill().unwrap(); // SIGKILL: no destructor, no commit to finish.
        child.wait().unwrap();

        let (events, jobs) = census(&path);
        assert!(!events.is_empty(), "round {round}: nothing was appended");
        let without: Vec<_> = events
            .iter()
            .filter(|id| jobs.get(*id) != Some(&3))
            .collect();
        assert!(
            without.is_empty(),
            "round {round}: {} events lack some of their jobs: {:?}",
            without.len(),
            without.iter().take(5).collect::<Vec<_>>()
        );
        let orphans: Vec<_> = jobs.keys().filter(|id| !events.contains(*id)).collect();
        assert!(
            orphans.is_empty(),
            "round {round}: jobs of {} events not in the log",
            orphans.len()
        );
        eprintln!(
            "round {round}: {} events, each with its 3 jobs",
            events.len()
        );
    }
    // The file still opens and appends after six kills.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(&path).unwrap();
        let before = store.last_position().await.unwrap();
        store.append(vec![event(1)]).await.unwrap();
        assert!(store.last_position().await.unwrap() > before);
    });
}
