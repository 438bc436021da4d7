//! What workers tell their backend about themselves, so a dashboard on any
//! machine sees every worker and what the jobs did: a heartbeat (who runs,
//! where, since when, with what concurrency), per-minute counts and
//! runtimes per queue and listener, and the jobs they finished last.
//!
//! A worker sends an [`ActivityReport`] every few seconds
//! ([`Backend::report`](super::Backend::report)) and a last one as it
//! stops; [`Backend::activity`](super::Backend::activity) reads back what
//! all of them sent. Backends keep minutes for [`MINUTES_KEPT`], the
//! newest [`FINISHED_KEPT`] finished jobs, and forget a worker once it
//! stops or misses three reports.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long backends keep per-minute counts.
pub const MINUTES_KEPT: Duration = Duration::from_secs(2 * 60 * 60);

/// How many finished jobs backends keep, the newest.
pub const FINISHED_KEPT: usize = 1000;

/// How many finished jobs one report carries at most, the newest (at high
/// rates, the finished list is a sample: the minutes count every job).
pub const FINISHED_PER_REPORT: usize = 100;

/// The upper bounds, in milliseconds, of the runtime buckets of
/// [`MinuteStats::runtime`]; a last bucket takes the rest.
pub const RUNTIME_BUCKETS_MS: [u64; 15] = [
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000,
];

/// A worker as its last heartbeat described it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStatus {
    /// Unique per worker run: `host:pid:n`.
    pub id: String,
    /// The machine's host name.
    pub host: String,
    /// The process id.
    pub pid: u32,
    /// The queues it works, in its order.
    pub queues: Vec<String>,
    /// How many jobs it runs at once.
    pub concurrency: usize,
    /// When it started.
    pub started_at: SystemTime,
    /// When it sent this heartbeat.
    pub seen_at: SystemTime,
    /// How often it reports: a worker not seen for three times this is
    /// gone.
    pub every: Duration,
    /// Jobs running when it reported.
    pub running: usize,
    /// Tries finished since it started (succeeded, retried or failed).
    pub processed: u64,
    /// Of those, tries that failed (retried or sent to the failed store).
    pub failed: u64,
}

impl WorkerStatus {
    /// A worker `id` on `host`, process `pid`, started and seen at `at`,
    /// reporting every `every`; set the rest through the fields.
    pub fn new(
        id: impl Into<String>,
        host: impl Into<String>,
        pid: u32,
        at: SystemTime,
        every: Duration,
    ) -> WorkerStatus {
        WorkerStatus {
            id: id.into(),
            host: host.into(),
            pid,
            queues: Vec::new(),
            concurrency: 1,
            started_at: at,
            seen_at: at,
            every,
            running: 0,
            processed: 0,
            failed: 0,
        }
    }

    /// Whether it missed three reports by `now`: a backend leaves it out.
    pub fn is_stale(&self, now: SystemTime) -> bool {
        let limit = super::later(
            self.seen_at,
            self.every.saturating_mul(3).max(Duration::from_secs(1)),
        );
        now > limit
    }
}

/// The jobs of one queue and listener that ended a try in one minute.
/// Backends add up the reports of every worker for the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MinuteStats {
    /// The minute: whole minutes since the Unix epoch.
    pub minute: i64,
    /// The queue.
    pub queue: String,
    /// The listener.
    pub listener: String,
    /// Tries that succeeded.
    pub succeeded: u64,
    /// Tries that failed and will run again.
    pub retried: u64,
    /// Tries that failed for good (to the failed store).
    pub failed: u64,
    /// Milliseconds all its tries ran, in all.
    pub runtime_ms: u64,
    /// How many tries' runtimes fell in each bucket of
    /// [`RUNTIME_BUCKETS_MS`] (the last: above the largest bound).
    pub runtime: [u64; RUNTIME_BUCKETS_MS.len() + 1],
    /// Milliseconds the claimed jobs waited, from available to claimed,
    /// in all.
    pub wait_ms: u64,
    /// The longest of those waits.
    pub wait_max_ms: u64,
    /// How many claims the waits count.
    pub claims: u64,
}

impl MinuteStats {
    /// Zero counts for `queue` and `listener` in `minute`.
    pub fn new(minute: i64, queue: impl Into<String>, listener: impl Into<String>) -> MinuteStats {
        MinuteStats {
            minute,
            queue: queue.into(),
            listener: listener.into(),
            succeeded: 0,
            retried: 0,
            failed: 0,
            runtime_ms: 0,
            runtime: [0; RUNTIME_BUCKETS_MS.len() + 1],
            wait_ms: 0,
            wait_max_ms: 0,
            claims: 0,
        }
    }

    /// Tries that ended in this minute, however they ended.
    pub fn tries(&self) -> u64 {
        self.succeeded + self.retried + self.failed
    }

    /// Counts one try that ran for `took`.
    pub fn add_runtime(&mut self, took: Duration) {
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        self.runtime_ms = self.runtime_ms.saturating_add(ms);
        let bucket = RUNTIME_BUCKETS_MS
            .iter()
            .position(|&bound| ms <= bound)
            .unwrap_or(RUNTIME_BUCKETS_MS.len());
        self.runtime[bucket] += 1;
    }

    /// Counts one claim of a job that waited `waited`.
    pub fn add_wait(&mut self, waited: Duration) {
        let ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
        self.wait_ms = self.wait_ms.saturating_add(ms);
        self.wait_max_ms = self.wait_max_ms.max(ms);
        self.claims += 1;
    }

    /// Adds `other`'s counts (same key or not: the caller decides).
    pub fn merge(&mut self, other: &MinuteStats) {
        self.succeeded += other.succeeded;
        self.retried += other.retried;
        self.failed += other.failed;
        self.runtime_ms = self.runtime_ms.saturating_add(other.runtime_ms);
        for (mine, theirs) in self.runtime.iter_mut().zip(other.runtime) {
            *mine += theirs;
        }
        self.wait_ms = self.wait_ms.saturating_add(other.wait_ms);
        self.wait_max_ms = self.wait_max_ms.max(other.wait_max_ms);
        self.claims += other.claims;
    }

    /// The start of its minute.
    pub fn start(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(u64::try_from(self.minute).unwrap_or(0) * 60)
    }
}

/// The minute `at` falls in: whole minutes since the Unix epoch.
pub fn minute_of(at: SystemTime) -> i64 {
    super::millis(at).div_euclid(60_000)
}

/// The `q`-quantile (0.5 for the median) of the runtimes counted in
/// `buckets` (laid out as [`MinuteStats::runtime`]), in milliseconds,
/// interpolated inside its bucket as Prometheus's `histogram_quantile`
/// does; `None` with nothing counted. A quantile in the last bucket is
/// its lower bound.
pub fn runtime_quantile(buckets: &[u64; RUNTIME_BUCKETS_MS.len() + 1], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut below = 0u64;
    for (i, &count) in buckets.iter().enumerate() {
        if count > 0 && (below + count) as f64 >= rank {
            let lower = if i == 0 {
                0.0
            } else {
                RUNTIME_BUCKETS_MS[i - 1] as f64
            };
            let Some(&upper) = RUNTIME_BUCKETS_MS.get(i) else {
                return Some(lower);
            };
            let inside = (rank - below as f64) / count as f64;
            return Some(lower + (upper as f64 - lower) * inside.clamp(0.0, 1.0));
        }
        below += count;
    }
    Some(RUNTIME_BUCKETS_MS[RUNTIME_BUCKETS_MS.len() - 1] as f64)
}

/// How a finished try ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Finish {
    /// It succeeded; the job is done.
    Succeeded,
    /// It failed; the job runs again later.
    Retried,
    /// It failed for good; the job is in the failed store.
    Failed,
}

impl Finish {
    /// `succeeded`, `retried` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::Succeeded => "succeeded",
            Finish::Retried => "retried",
            Finish::Failed => "failed",
        }
    }

    /// The outcome named `name`.
    pub fn parse(name: &str) -> Option<Finish> {
        [Finish::Succeeded, Finish::Retried, Finish::Failed]
            .into_iter()
            .find(|f| f.as_str() == name)
    }
}

/// One try a worker finished.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FinishedJob {
    /// The job's id.
    pub id: String,
    /// Its queue.
    pub queue: String,
    /// Its listener.
    pub listener: String,
    /// Its event's name.
    pub event: String,
    /// The try's number.
    pub attempt: u32,
    /// How it ended.
    pub outcome: Finish,
    /// How long it ran.
    pub took: Duration,
    /// When it ended.
    pub finished_at: SystemTime,
    /// The worker that ran it ([`WorkerStatus::id`]).
    pub worker: String,
}

impl FinishedJob {
    /// A try of job `id` that ended with `outcome`; set the rest through
    /// the fields.
    pub fn new(id: impl Into<String>, outcome: Finish, finished_at: SystemTime) -> FinishedJob {
        FinishedJob {
            id: id.into(),
            queue: String::new(),
            listener: String::new(),
            event: String::new(),
            attempt: 0,
            outcome,
            took: Duration::ZERO,
            finished_at,
            worker: String::new(),
        }
    }
}

/// What one worker sends its backend every few seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActivityReport {
    /// The heartbeat.
    pub worker: WorkerStatus,
    /// Counts since its last report, per minute, queue and listener.
    pub minutes: Vec<MinuteStats>,
    /// Tries finished since its last report, the newest
    /// [`FINISHED_PER_REPORT`] at most, oldest first.
    pub finished: Vec<FinishedJob>,
    /// Whether the worker stops: the backend forgets it.
    pub leaving: bool,
}

impl ActivityReport {
    /// A heartbeat with nothing else to tell.
    pub fn new(worker: WorkerStatus) -> ActivityReport {
        ActivityReport {
            worker,
            minutes: Vec::new(),
            finished: Vec::new(),
            leaving: false,
        }
    }
}

/// What every worker reported, as [`Backend::activity`](super::Backend::activity)
/// gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Activity {
    /// Workers alive (not stopped, not stale), by id.
    pub workers: Vec<WorkerStatus>,
    /// Per-minute counts since the time asked, one per minute, queue and
    /// listener (every worker's added up), oldest minute first.
    pub minutes: Vec<MinuteStats>,
    /// Finished tries, newest first.
    pub finished: Vec<FinishedJob>,
}

impl Activity {
    /// Activity with these parts.
    pub fn new(
        workers: Vec<WorkerStatus>,
        minutes: Vec<MinuteStats>,
        finished: Vec<FinishedJob>,
    ) -> Activity {
        Activity {
            workers,
            minutes,
            finished,
        }
    }
}

/// Adds `stats` into `into`, one entry per minute, queue and listener, and
/// returns them sorted (minute, queue, listener): how a backend that keeps
/// reports in memory merges them.
pub fn merge_minutes<'a>(stats: impl IntoIterator<Item = &'a MinuteStats>) -> Vec<MinuteStats> {
    let mut merged: BTreeMap<(i64, &str, &str), MinuteStats> = BTreeMap::new();
    for s in stats {
        merged
            .entry((s.minute, s.queue.as_str(), s.listener.as_str()))
            .and_modify(|m| m.merge(s))
            .or_insert_with(|| s.clone());
    }
    merged.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        let mut stats = MinuteStats::new(0, "q", "l");
        assert_eq!(runtime_quantile(&stats.runtime, 0.5), None);
        for ms in [3, 4, 4, 4] {
            stats.add_runtime(Duration::from_millis(ms));
        }
        // All four in (2, 5]: the median is halfway through it.
        assert_eq!(runtime_quantile(&stats.runtime, 0.5), Some(3.5));
        stats.add_runtime(Duration::from_secs(600));
        assert_eq!(runtime_quantile(&stats.runtime, 1.0), Some(60_000.0));
        assert_eq!(stats.runtime_ms, 15 + 600_000);
    }

    #[test]
    fn minutes_merge_by_key() {
        let mut a = MinuteStats::new(5, "q", "l");
        a.succeeded = 2;
        a.add_wait(Duration::from_millis(30));
        let mut b = MinuteStats::new(5, "q", "l");
        b.failed = 1;
        b.add_wait(Duration::from_millis(70));
        let c = MinuteStats::new(4, "q", "l");
        let merged = merge_minutes([&a, &b, &c]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].minute, 4);
        let m = &merged[1];
        assert_eq!(
            (m.succeeded, m.failed, m.claims, m.wait_ms, m.wait_max_ms),
            (2, 1, 2, 100, 70)
        );
        assert_eq!(m.tries(), 3);
    }

    #[test]
    fn a_worker_is_stale_after_three_missed_reports() {
        let at = UNIX_EPOCH + Duration::from_secs(1000);
        let w = WorkerStatus::new("h:1:0", "h", 1, at, Duration::from_secs(5));
        assert!(!w.is_stale(at + Duration::from_secs(15)));
        assert!(w.is_stale(at + Duration::from_secs(16)));
        assert_eq!(minute_of(at), 16);
    }
}
