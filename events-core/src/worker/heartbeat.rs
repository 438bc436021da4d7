//! What a worker tells its backend about itself: a heartbeat on start,
//! every [`Worker::report_every`](super::Worker::report_every) and as it
//! stops (`leaving`), with the per-minute counts and the finished tries
//! gathered since the last report (see
//! [`queue::activity`](crate::queue::activity)).
//!
//! The slots count into a [`Tally`] (one lock per claim and per finished
//! try, no allocation once a key is known); the [`Reporter`] runs on its
//! own task, so a slow or unreachable backend never holds up a job. A report
//! that fails keeps its counts for the next one.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use crate::context::lock;
use crate::error::Chain;
use crate::queue::activity::{
    ActivityReport, FINISHED_PER_REPORT, Finish, FinishedJob, MinuteStats, WorkerStatus,
    merge_minutes, minute_of,
};
use crate::queue::{Job, Queue};

use super::Shared;

/// How long a stopping worker waits for its last report.
const LAST_REPORT_WAIT: Duration = Duration::from_secs(5);

/// A map keyed by queue or listener name, hashed with FNV-1a: the keys are
/// short and few, and SipHash's resistance to chosen keys buys nothing for
/// names from the program's own registry.
type ByName<V> = HashMap<String, V, BuildHasherDefault<Fnv>>;

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The entry of `key` in `map`, made when missing: the lookup borrows
/// `key`, so a known key costs no allocation.
fn entry<'m, V: Default>(map: &'m mut ByName<V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

/// What the slots counted since the last report.
#[derive(Default)]
pub(super) struct Tally(Mutex<Counts>);

#[derive(Default)]
struct Counts {
    /// By queue, then listener: the minutes counted (one, or two across
    /// the turn of a minute).
    minutes: ByName<ByName<Vec<MinuteStats>>>,
    /// The newest finished tries, oldest first, at most
    /// [`FINISHED_PER_REPORT`].
    finished: VecDeque<FinishedJob>,
}

impl Counts {
    fn minute(&mut self, minute: i64, job: &Job) -> &mut MinuteStats {
        let minutes = entry(entry(&mut self.minutes, &job.queue), &job.listener);
        match minutes.iter().position(|m| m.minute == minute) {
            Some(at) => &mut minutes[at],
            None => {
                minutes.push(MinuteStats::new(minute, &job.queue, &job.listener));
                let last = minutes.len() - 1;
                &mut minutes[last]
            }
        }
    }
}

impl Tally {
    /// Counts the claim of `job` at `at`: how long it waited since it was
    /// available.
    pub(super) fn claimed(&self, job: &Job, at: SystemTime) {
        let waited = at.duration_since(job.available_at).unwrap_or_default();
        lock(&self.0).minute(minute_of(at), job).add_wait(waited);
    }

    /// Counts a try of `job` that ended now with `outcome` after `took`.
    pub(super) fn finished(&self, job: &Job, outcome: Finish, took: Duration) {
        let now = SystemTime::now();
        let mut counts = lock(&self.0);
        let stats = counts.minute(minute_of(now), job);
        match outcome {
            Finish::Succeeded => stats.succeeded += 1,
            Finish::Retried => stats.retried += 1,
            Finish::Failed => stats.failed += 1,
        }
        stats.add_runtime(took);
        // A full list reuses its oldest entry's strings: no allocation per
        // try once it is full.
        let reused = if counts.finished.len() >= FINISHED_PER_REPORT {
            counts.finished.pop_front()
        } else {
            None
        };
        let mut entry = reused.unwrap_or_else(|| FinishedJob::new(String::new(), outcome, now));
        entry.id.clone_from(&job.id);
        entry.queue.clone_from(&job.queue);
        entry.listener.clone_from(&job.listener);
        entry.event.clone_from(&job.event);
        entry.attempt = job.attempt;
        entry.outcome = outcome;
        entry.took = took;
        entry.finished_at = now;
        counts.finished.push_back(entry);
    }

    /// Takes what was counted: the minutes, and the finished tries oldest
    /// first (their `worker` left empty).
    fn take(&self) -> (Vec<MinuteStats>, Vec<FinishedJob>) {
        let mut counts = lock(&self.0);
        let minutes = std::mem::take(&mut counts.minutes)
            .into_values()
            .flat_map(|listeners| listeners.into_values().flatten())
            .collect();
        let finished = counts.finished.drain(..).collect();
        (minutes, finished)
    }
}

/// This machine's name: `/proc/sys/kernel/hostname`, else `HOSTNAME`,
/// else `localhost`. Read once.
pub(super) fn host_name() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .or_else(|| {
                std::env::var("HOSTNAME")
                    .ok()
                    .map(|name| name.trim().to_owned())
                    .filter(|name| !name.is_empty())
            })
            .unwrap_or_else(|| "localhost".to_owned())
    })
}

/// A new worker id, `host:pid:n`, `n` counting the workers this process
/// started.
pub(super) fn worker_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{}:{}:{n}", host_name(), std::process::id())
}

/// Sends a worker's reports, on its own task, until told it leaves.
pub(super) struct Reporter {
    task: Option<tokio::task::JoinHandle<()>>,
    leave: Arc<Leave>,
}

#[derive(Default)]
struct Leave {
    now: AtomicBool,
    signal: Notify,
}

impl Reporter {
    /// Starts reporting `status` to `queue` every `status.every`, with the
    /// counts of `shared`: the first report at once.
    pub(super) fn start(queue: Queue, status: WorkerStatus, shared: Arc<Shared>) -> Reporter {
        let leave = Arc::new(Leave::default());
        let task = tokio::spawn(report(queue, status, shared, leave.clone()));
        Reporter {
            task: Some(task),
            leave,
        }
    }

    /// Sends the last report (`leaving`), with what was counted until now,
    /// and waits for it a few seconds at most.
    pub(super) async fn stop(mut self) {
        self.leave.now.store(true, Ordering::Release);
        self.leave.signal.notify_one();
        let Some(task) = self.task.take() else {
            return;
        };
        let abort = task.abort_handle();
        if tokio::time::timeout(LAST_REPORT_WAIT, task).await.is_err() {
            abort.abort();
            tracing::warn!(
                "the worker's last report did not reach the queue in {LAST_REPORT_WAIT:?}; the dashboard forgets this worker once it misses three reports"
            );
        }
    }
}

impl Drop for Reporter {
    /// A worker whose `work` future is dropped stops reporting: it goes
    /// stale.
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// What failed reports left to send, merged into the next one.
#[derive(Default)]
struct Unsent {
    minutes: Vec<MinuteStats>,
    finished: Vec<FinishedJob>,
}

impl Unsent {
    fn add(&mut self, minutes: Vec<MinuteStats>, finished: Vec<FinishedJob>) {
        if self.minutes.is_empty() {
            self.minutes = minutes;
        } else if !minutes.is_empty() {
            self.minutes = merge_minutes(self.minutes.iter().chain(&minutes));
        }
        self.finished.extend(finished);
        let excess = self.finished.len().saturating_sub(FINISHED_PER_REPORT);
        self.finished.drain(..excess);
    }
}

/// The reporter's task: report, wait `every` (or until told to leave),
/// repeat; the last report says `leaving`.
async fn report(queue: Queue, mut status: WorkerStatus, shared: Arc<Shared>, leave: Arc<Leave>) {
    let mut unsent = Unsent::default();
    let mut failing = false;
    loop {
        let leaving = leave.now.load(Ordering::Acquire);
        let (minutes, finished) = shared.tally.take();
        unsent.add(minutes, finished);
        status.seen_at = SystemTime::now();
        status.running = shared.running.load(Ordering::Relaxed);
        {
            let done = lock(&shared.report);
            status.processed = done.succeeded + done.retried + done.failed;
            status.failed = done.retried + done.failed;
        }
        let mut report = ActivityReport::new(status.clone());
        report.minutes = std::mem::take(&mut unsent.minutes);
        report.finished = std::mem::take(&mut unsent.finished);
        for job in &mut report.finished {
            job.worker.clone_from(&status.id);
        }
        report.leaving = leaving;
        match queue.backend().report(&report).await {
            Ok(()) => {
                if failing {
                    tracing::info!(worker = %status.id, "the worker's reports reach the queue again");
                    failing = false;
                }
            }
            Err(error) => {
                if leaving {
                    tracing::warn!(worker = %status.id, error = %Chain(&error), "could not send the worker's last report; the dashboard forgets this worker once it misses three reports");
                } else if !failing {
                    tracing::warn!(worker = %status.id, error = %Chain(&error), "could not report the worker's activity; its counts are kept for the next report");
                    failing = true;
                }
                unsent.minutes = report.minutes;
                unsent.finished = report.finished;
            }
        }
        if leaving {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(status.every) => {}
            () = leave.signal.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, listener: &str) -> Job {
        let mut job = Job::from_parts(id, "q", listener, "e", "{}", crate::envelope::Envelope::new());
        job.attempt = 1;
        job
    }

    #[test]
    fn a_tally_counts_per_listener_and_keeps_the_newest_finished() {
        let tally = Tally::default();
        let a = job("a", "one");
        tally.claimed(&a, a.available_at + Duration::from_millis(40));
        tally.finished(&a, Finish::Retried, Duration::from_millis(3));
        tally.finished(&a, Finish::Succeeded, Duration::from_millis(3));
        for n in 0..FINISHED_PER_REPORT + 5 {
            tally.finished(&job(&n.to_string(), "two"), Finish::Failed, Duration::ZERO);
        }
        let (mut minutes, finished) = tally.take();
        minutes.sort_by(|x, y| x.listener.cmp(&y.listener));
        let tries: u64 = minutes.iter().map(MinuteStats::tries).sum();
        assert_eq!(tries, 2 + FINISHED_PER_REPORT as u64 + 5);
        let one = minutes.iter().find(|m| m.listener == "one").unwrap();
        assert_eq!((one.succeeded, one.retried, one.claims), (1, 1, 1));
        assert_eq!(one.wait_ms, 40);
        assert_eq!(finished.len(), FINISHED_PER_REPORT);
        assert_eq!(finished[0].id, "5");
        assert_eq!(finished.last().unwrap().id, (FINISHED_PER_REPORT + 4).to_string());
        assert!(tally.take().0.is_empty(), "taken once");
    }

    #[test]
    fn unsent_counts_merge_into_the_next_report() {
        let mut unsent = Unsent::default();
        let mut a = MinuteStats::new(1, "q", "l");
        a.succeeded = 2;
        unsent.add(vec![a.clone()], vec![]);
        unsent.add(vec![a], vec![]);
        assert_eq!(unsent.minutes.len(), 1);
        assert_eq!(unsent.minutes[0].succeeded, 4);
    }

    #[test]
    fn worker_ids_differ_within_a_process() {
        let (a, b) = (worker_id(), worker_id());
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("{}:{}:", host_name(), std::process::id())));
    }
}
