//! What a worker tells its backend about itself: a heartbeat on start,
//! every [`Worker::report_every`](super::Worker::report_every) and as it
//! stops (`leaving`), with the per-minute counts and the finished tries
//! gathered since the last report (see
//! [`queue::activity`](crate::queue::activity)).
//!
//! The slots count into a [`Tally`] (one lock per claim and per finished
//! try, no allocation once a key is known, no lookup at a try's end); the [`Reporter`] runs on its
//! own task, so a slow or unreachable backend never holds up a job. A report
//! that fails keeps its counts for the next one.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use crate::context::lock;
use crate::error::Chain;
use crate::queue::activity::{
    ActivityReport, FINISHED_PER_REPORT, Finish, FinishedJob, MinuteStats, WorkerStatus,
    merge_minutes,
};
use crate::queue::{Job, Queue, millis};

use super::Shared;

/// How long a stopping worker waits for its last report.
const LAST_REPORT_WAIT: Duration = Duration::from_secs(5);

/// A map keyed by a listener's address, hashed with one multiplication.
type ByListener<V> = HashMap<usize, V, BuildHasherDefault<AddressHash>>;

/// Hashes a `usize` (an address) with one multiplication (Fibonacci
/// hashing): the keys are few, and chosen by the program, not by a peer.
#[derive(Default)]
struct AddressHash(u64);

impl std::hash::Hasher for AddressHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// What the slots counted since the last report.
///
/// A claim finds (or makes) its job's entry once, by the listener's
/// address and the queue, and hands the slot a [`Ticket`] to it; the try's
/// end counts through the ticket without looking anything up, unless a
/// report took the counts in between or the minute turned.
#[derive(Default)]
pub(super) struct Tally(Mutex<Counts>);

#[derive(Default)]
struct Counts {
    /// One per minute, queue and listener counted since the last report.
    entries: Vec<MinuteStats>,
    /// The indices in `entries` of each listener's (one per queue and
    /// minute: one, or two across the turn of a minute).
    index: ByListener<Vec<usize>>,
    /// Which report the indices are good for: each `take` starts anew.
    generation: u64,
    /// The newest finished tries, oldest first, at most
    /// [`FINISHED_PER_REPORT`].
    finished: VecDeque<FinishedJob>,
}

/// Where the claim of a job was counted, for its try's end.
pub(super) struct Ticket {
    generation: u64,
    index: usize,
    /// The address of the job's listener's definition.
    listener: usize,
    /// When the job was claimed, in milliseconds since the Unix epoch.
    claimed_ms: i64,
}

impl Counts {
    /// The entry of `job` (run by the listener at `listener`) in `minute`.
    fn entry(&mut self, listener: usize, minute: i64, job: &Job) -> usize {
        let indices = self.index.entry(listener).or_default();
        let entries = &mut self.entries;
        if let Some(&at) = indices
            .iter()
            .find(|&&at| entries[at].minute == minute && entries[at].queue == job.queue)
        {
            return at;
        }
        entries.push(MinuteStats::new(minute, &job.queue, &job.listener));
        indices.push(entries.len() - 1);
        entries.len() - 1
    }

    /// The entry `ticket` points at if it is still `job`'s in `minute`,
    /// else `job`'s looked up again (rare: a report took the counts since
    /// the claim, or the minute turned).
    fn entry_for(&mut self, ticket: &Ticket, minute: i64, job: &Job) -> usize {
        if ticket.generation == self.generation
            && let Some(stats) = self.entries.get(ticket.index)
            && stats.minute == minute
        {
            return ticket.index;
        }
        self.entry(ticket.listener, minute, job)
    }
}

impl Tally {
    /// Counts the claim of `job` at `at`, whose listener lives at
    /// `listener` (its definition's address): how long it waited since it
    /// was available.
    pub(super) fn claimed(&self, job: &Job, listener: usize, at: SystemTime) -> Ticket {
        let claimed_ms = millis(at);
        let waited = u64::try_from(claimed_ms - millis(job.available_at)).unwrap_or(0);
        let mut counts = lock(&self.0);
        let index = counts.entry(listener, claimed_ms.div_euclid(60_000), job);
        counts.entries[index].add_wait(Duration::from_millis(waited));
        Ticket {
            generation: counts.generation,
            index,
            listener,
            claimed_ms,
        }
    }

    /// Counts a try of `job`, claimed as `ticket` says, that ended with
    /// `outcome` after running `took`; returns the entry of the finished
    /// list to fill, and one it evicted, to drop outside the lock.
    fn count(
        counts: &mut Counts,
        job: &Job,
        ticket: &Ticket,
        outcome: Finish,
        took: Duration,
    ) -> FinishedJob {
        let took_ms = i64::try_from(took.as_millis()).unwrap_or(i64::MAX);
        let ended_ms = ticket.claimed_ms.saturating_add(took_ms);
        let index = counts.entry_for(ticket, ended_ms.div_euclid(60_000), job);
        let stats = &mut counts.entries[index];
        match outcome {
            Finish::Succeeded => stats.succeeded += 1,
            Finish::Retried => stats.retried += 1,
            Finish::Failed => stats.failed += 1,
        }
        stats.add_runtime(took);
        let ended = UNIX_EPOCH + Duration::from_millis(u64::try_from(ended_ms).unwrap_or(0));
        // A full list gives its oldest entry, to reuse.
        let reused = if counts.finished.len() >= FINISHED_PER_REPORT {
            counts.finished.pop_front()
        } else {
            None
        };
        let mut entry = reused.unwrap_or_else(|| FinishedJob::new(String::new(), outcome, ended));
        entry.attempt = job.attempt;
        entry.outcome = outcome;
        entry.took = took;
        entry.finished_at = ended;
        entry
    }

    /// Counts a try of `job`, claimed as `ticket` says, that ended with
    /// `outcome` after running `took`.
    pub(super) fn finished(&self, job: &Job, ticket: &Ticket, outcome: Finish, took: Duration) {
        let mut counts = lock(&self.0);
        let mut entry = Tally::count(&mut counts, job, ticket, outcome, took);
        // Reusing the oldest entry's strings: no allocation once the list
        // is full.
        entry.id.clone_from(&job.id);
        entry.queue.clone_from(&job.queue);
        entry.listener.clone_from(&job.listener);
        entry.event.clone_from(&job.event);
        counts.finished.push_back(entry);
    }

    /// [`finished`](Self::finished) for a job the worker is done with:
    /// its strings move into the finished list, nothing is copied.
    pub(super) fn finished_owned(
        &self,
        job: Job,
        ticket: &Ticket,
        outcome: Finish,
        took: Duration,
    ) {
        let mut counts = lock(&self.0);
        let mut entry = Tally::count(&mut counts, &job, ticket, outcome, took);
        let Job {
            id,
            queue,
            listener,
            event,
            ..
        } = job;
        let old = (
            std::mem::replace(&mut entry.id, id),
            std::mem::replace(&mut entry.queue, queue),
            std::mem::replace(&mut entry.listener, listener),
            std::mem::replace(&mut entry.event, event),
        );
        counts.finished.push_back(entry);
        drop(counts);
        drop(old);
    }

    /// Takes what was counted: the minutes, and the finished tries oldest
    /// first (their `worker` left empty).
    fn take(&self) -> (Vec<MinuteStats>, Vec<FinishedJob>) {
        let mut counts = lock(&self.0);
        counts.generation += 1;
        counts.index.clear();
        let entries = std::mem::take(&mut counts.entries);
        let finished = counts.finished.drain(..).collect();
        (entries, finished)
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
        let mut job = Job::from_parts(
            id,
            "q",
            listener,
            "e",
            "{}",
            crate::envelope::Envelope::new(),
        );
        job.attempt = 1;
        job
    }

    #[test]
    fn a_tally_counts_per_listener_and_keeps_the_newest_finished() {
        let tally = Tally::default();
        let a = job("a", "one");
        let ticket = tally.claimed(&a, 1, a.available_at + Duration::from_millis(40));
        tally.finished(&a, &ticket, Finish::Retried, Duration::from_millis(3));
        tally.finished(&a, &ticket, Finish::Succeeded, Duration::from_millis(3));
        for n in 0..FINISHED_PER_REPORT + 5 {
            let b = job(&n.to_string(), "two");
            let ticket = tally.claimed(&b, 2, b.available_at);
            tally.finished(&b, &ticket, Finish::Failed, Duration::ZERO);
        }
        let (mut minutes, finished) = tally.take();
        minutes.sort_by(|x, y| x.listener.cmp(&y.listener));
        let tries: u64 = minutes.iter().map(MinuteStats::tries).sum();
        assert_eq!(tries, 2 + FINISHED_PER_REPORT as u64 + 5);
        let one = minutes.iter().find(|m| m.listener == "one").unwrap();
        assert_eq!((one.succeeded, one.retried, one.claims), (1, 1, 1));
        let two = minutes.iter().find(|m| m.listener == "two").unwrap();
        assert_eq!(
            (two.failed, two.claims),
            (
                FINISHED_PER_REPORT as u64 + 5,
                FINISHED_PER_REPORT as u64 + 5
            )
        );
        assert_eq!(one.wait_ms, 40);
        assert_eq!(finished.len(), FINISHED_PER_REPORT);
        assert_eq!(finished[0].id, "5");
        assert_eq!(
            finished.last().unwrap().id,
            (FINISHED_PER_REPORT + 4).to_string()
        );
        assert!(tally.take().0.is_empty(), "taken once");
    }

    #[test]
    fn a_try_claimed_before_a_report_counts_in_the_next() {
        let tally = Tally::default();
        let a = job("a", "one");
        let ticket = tally.claimed(&a, 1, a.available_at);
        let (minutes, _) = tally.take();
        assert_eq!((minutes[0].claims, minutes[0].tries()), (1, 0));
        tally.finished(&a, &ticket, Finish::Succeeded, Duration::from_millis(1));
        // A claim after the report counts into the same entry.
        let again = tally.claimed(&a, 1, a.available_at);
        tally.finished(&a, &again, Finish::Succeeded, Duration::from_millis(1));
        let (minutes, finished) = tally.take();
        assert_eq!(tally.take().0.len(), 0);
        assert_eq!(minutes.len(), 1, "{minutes:?}");
        assert_eq!((minutes[0].claims, minutes[0].succeeded), (1, 2));
        assert_eq!(finished.len(), 2);
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
