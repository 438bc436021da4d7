//! `memory://`: jobs in this process's memory, for tests and single-process
//! programs. Per-queue FIFO lists, a heap of delayed jobs and an ordered map
//! of lease deadlines, so a claim costs O(log n) however many jobs wait. A
//! lease's entry leaves the map with its job (ack, release, fail, abandon),
//! so memory stays flat however long the leases are.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};

use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::Notify;

use super::activity::{self, FinishedJob, MinuteStats, WorkerStatus};
use super::{
    Activity, ActivityReport, Backend, FailedJob, Job, JobPage, JobQuery, JobState, JobView,
    QueueError, QueueStats, fnv1a, later,
};

/// The in-memory backend.
#[derive(Default)]
pub struct MemoryBackend {
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Default)]
struct State {
    /// Ready jobs per queue, oldest first.
    ready: HashMap<String, VecDeque<Job>>,
    /// Jobs not available yet, by (available_at, sequence).
    delayed: BinaryHeap<Reverse<Timed<Job>>>,
    /// Claimed jobs by id, with the key of their lease in `leases`.
    reserved: HashMap<String, (Job, LeaseKey)>,
    /// Leases by deadline (then claim order): the id of each claimed job.
    /// Exactly one entry per job in `reserved`.
    leases: BTreeMap<LeaseKey, String>,
    failed: Vec<FailedJob>,
    /// How many jobs held anywhere above (waiting, delayed, claimed, failed)
    /// have an id of each FNV-1a hash: what makes `enqueue_many` idempotent
    /// by id. Hashes, not the ids: no string to copy and a small table (a
    /// set of the ids themselves cost a third of the memory queue's
    /// throughput); a hit is confirmed against the jobs, which only a
    /// duplicate, or a rare collision, pays for.
    ids: HashMap<u64, u32, BuildHasherDefault<Prehashed>>,
    sequence: u64,
    /// What workers reported: see [`activity`].
    activity: Reports,
}

/// The reports of workers, as [`Backend::report`] keeps them.
#[derive(Default)]
struct Reports {
    workers: BTreeMap<String, WorkerStatus>,
    minutes: BTreeMap<(i64, String, String), MinuteStats>,
    /// Newest last, at most [`activity::FINISHED_KEPT`].
    finished: VecDeque<FinishedJob>,
}

/// The hasher of a map whose keys are hashes already (FNV-1a of job ids):
/// it hands the key through.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys reach it; fold anything else in anyway.
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

/// A lease's deadline and a sequence number that makes it unique.
type LeaseKey = (SystemTime, u64);

/// A heap entry ordered by time, then insertion order.
struct Timed<T> {
    at: SystemTime,
    sequence: u64,
    item: T,
}

impl<T> PartialEq for Timed<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.sequence) == (other.at, other.sequence)
    }
}
impl<T> Eq for Timed<T> {}
impl<T> PartialOrd for Timed<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Timed<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.sequence).cmp(&(other.at, other.sequence))
    }
}

impl State {
    fn timed<T>(&mut self, at: SystemTime, item: T) -> Reverse<Timed<T>> {
        self.sequence += 1;
        Reverse(Timed {
            at,
            sequence: self.sequence,
            item,
        })
    }

    /// Stores a new job under its id, unless one with that id is held.
    fn add(&mut self, job: Job, now: SystemTime) {
        let hash = fnv1a(job.id.as_bytes());
        if self.ids.contains_key(&hash) && self.holds(&job.id) {
            return;
        }
        *self.ids.entry(hash).or_insert(0) += 1;
        self.put(job, now);
    }

    /// Forgets the id of a job no longer held.
    fn drop_id(&mut self, id: &str) {
        let hash = fnv1a(id.as_bytes());
        if let Some(count) = self.ids.get_mut(&hash) {
            *count -= 1;
            if *count == 0 {
                self.ids.remove(&hash);
            }
        }
    }

    /// Whether a job with this id is held anywhere: a scan, for the rare
    /// hash hit.
    fn holds(&self, id: &str) -> bool {
        self.reserved.contains_key(id)
            || self.ready.values().flatten().any(|job| job.id == id)
            || self
                .delayed
                .iter()
                .any(|Reverse(timed)| timed.item.id == id)
            || self.failed.iter().any(|job| job.id == id)
    }

    /// Puts a job (new, released or abandoned) where its `available_at`
    /// says: a delayed heap or the back of its queue.
    fn put(&mut self, job: Job, now: SystemTime) {
        if job.available_at > now {
            let entry = self.timed(job.available_at, job);
            self.delayed.push(entry);
        } else {
            self.ready
                .entry(job.queue.clone())
                .or_default()
                .push_back(job);
        }
    }

    /// Moves due delayed jobs to their queues and lapsed leases back to the
    /// front of theirs.
    fn promote(&mut self, now: SystemTime) {
        while self.delayed.peek().is_some_and(|Reverse(t)| t.at <= now) {
            if let Some(Reverse(timed)) = self.delayed.pop() {
                let job = timed.item;
                self.ready
                    .entry(job.queue.clone())
                    .or_default()
                    .push_back(job);
            }
        }
        while let Some(entry) = self.leases.first_entry()
            && entry.key().0 <= now
        {
            let id = entry.remove();
            if let Some((job, _)) = self.reserved.remove(&id) {
                self.ready
                    .entry(job.queue.clone())
                    .or_default()
                    .push_front(job);
            }
        }
    }

    /// A new lease entry for `id` until `deadline`.
    fn lease(&mut self, id: String, deadline: SystemTime) -> LeaseKey {
        self.sequence += 1;
        let key = (deadline, self.sequence);
        self.leases.insert(key, id);
        key
    }

    /// Removes the job reserved under `attempt`, if it still is.
    fn take_reserved(&mut self, id: &str, attempt: u32) -> Option<Job> {
        match self.reserved.get(id) {
            Some((job, _)) if job.attempt == attempt => {
                let (job, key) = self.reserved.remove(id)?;
                self.leases.remove(&key);
                Some(job)
            }
            _ => None,
        }
    }

    /// Every job held, as listings show it at `now`: a delayed job that is
    /// due is ready, and so is a claimed one whose lease lapsed.
    fn views(&self, query: &JobQuery, now: SystemTime) -> Vec<JobView> {
        let mut views = Vec::new();
        let mut add = |view: JobView| {
            if query.matches(&view) {
                views.push(view);
            }
        };
        if query.wants(JobState::Ready) {
            for job in self.ready.values().flatten() {
                add(JobView::waiting(job.clone(), JobState::Ready));
            }
        }
        for Reverse(timed) in &self.delayed {
            let state = if timed.at > now {
                JobState::Delayed
            } else {
                JobState::Ready
            };
            if query.wants(state) {
                add(JobView::waiting(timed.item.clone(), state));
            }
        }
        for (job, (deadline, _)) in self.reserved.values() {
            let state = if *deadline > now {
                JobState::Reserved
            } else {
                JobState::Ready
            };
            if query.wants(state) {
                let mut view = JobView::waiting(job.clone(), state);
                view.available_at = *deadline;
                add(view);
            }
        }
        if query.wants(JobState::Failed) {
            for failed in &self.failed {
                add(JobView::failed(failed.clone()));
            }
        }
        views
    }

    /// The next time something becomes available.
    fn next_due(&self) -> Option<SystemTime> {
        let delayed = self.delayed.peek().map(|Reverse(t)| t.at);
        let lease = self.leases.first_key_value().map(|((at, _), _)| *at);
        match (delayed, lease) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl MemoryBackend {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is updated in whole steps under the lock; a panic cannot
        // leave it half-changed.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    async fn enqueue_many(&self, jobs: Vec<Job>) -> Result<(), QueueError> {
        // Checked before the first is stored: the batch goes in whole or not
        // at all, under one lock.
        jobs.iter().try_for_each(Job::validate)?;
        let now = SystemTime::now();
        let mut state = self.lock();
        for job in jobs {
            state.add(job, now);
        }
        drop(state);
        self.wake.notify_one();
        Ok(())
    }

    async fn claim(
        &self,
        queues: &[String],
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Job>, QueueError> {
        let now = SystemTime::now();
        let deadline = later(now, lease);
        let mut state = self.lock();
        state.promote(now);
        let mut claimed = Vec::new();
        for queue in queues {
            while claimed.len() < limit {
                let Some(mut job) = state.ready.get_mut(queue).and_then(VecDeque::pop_front) else {
                    break;
                };
                job.attempt += 1;
                let key = state.lease(job.id.clone(), deadline);
                state.reserved.insert(job.id.clone(), (job.clone(), key));
                claimed.push(job);
            }
        }
        Ok(claimed)
    }

    async fn extend(&self, id: &str, attempt: u32, lease: Duration) -> Result<bool, QueueError> {
        let deadline = later(SystemTime::now(), lease);
        let mut state = self.lock();
        let old = match state.reserved.get(id) {
            Some((job, key)) if job.attempt == attempt => *key,
            _ => return Ok(false),
        };
        let Some(id) = state.leases.remove(&old) else {
            return Ok(false);
        };
        let key = state.lease(id.clone(), deadline);
        if let Some((_, lease)) = state.reserved.get_mut(&id) {
            *lease = key;
        }
        Ok(true)
    }

    async fn ack(&self, id: &str, attempt: u32) -> Result<bool, QueueError> {
        let mut state = self.lock();
        let done = state.take_reserved(id, attempt).is_some();
        if done {
            state.drop_id(id);
        }
        Ok(done)
    }

    async fn release(
        &self,
        id: &str,
        attempt: u32,
        delay: Duration,
        error: &str,
    ) -> Result<bool, QueueError> {
        let now = SystemTime::now();
        let mut state = self.lock();
        let Some(mut job) = state.take_reserved(id, attempt) else {
            return Ok(false);
        };
        job.available_at = later(now, delay);
        job.last_error = Some(error.to_owned());
        state.put(job, now);
        drop(state);
        self.wake.notify_one();
        Ok(true)
    }

    async fn abandon(&self, id: &str, attempt: u32, delay: Duration) -> Result<bool, QueueError> {
        let now = SystemTime::now();
        let mut state = self.lock();
        let Some(mut job) = state.take_reserved(id, attempt) else {
            return Ok(false);
        };
        job.attempt = job.attempt.saturating_sub(1);
        if delay.is_zero() {
            // It was the oldest when claimed: it goes first again.
            state
                .ready
                .entry(job.queue.clone())
                .or_default()
                .push_front(job);
        } else {
            job.available_at = later(now, delay);
            state.put(job, now);
        }
        drop(state);
        self.wake.notify_one();
        Ok(true)
    }

    async fn fail(&self, id: &str, attempt: u32, error: &str) -> Result<bool, QueueError> {
        let mut state = self.lock();
        let Some(job) = state.take_reserved(id, attempt) else {
            return Ok(false);
        };
        state
            .failed
            .push(FailedJob::from_job(job, error, SystemTime::now()));
        Ok(true)
    }

    async fn failed(&self) -> Result<Vec<FailedJob>, QueueError> {
        Ok(self.lock().failed.clone())
    }

    async fn retry(&self, id: &str) -> Result<Option<String>, QueueError> {
        let now = SystemTime::now();
        let mut state = self.lock();
        let Some(index) = state.failed.iter().position(|f| f.id == id) else {
            return Ok(None);
        };
        let failed = state.failed.remove(index);
        state.drop_id(&failed.id);
        let job = failed.into_job(now);
        let new_id = job.id.clone();
        state.add(job, now);
        drop(state);
        self.wake.notify_one();
        Ok(Some(new_id))
    }

    async fn retry_all(&self) -> Result<usize, QueueError> {
        let now = SystemTime::now();
        let mut state = self.lock();
        let failed = std::mem::take(&mut state.failed);
        let count = failed.len();
        for job in failed {
            state.drop_id(&job.id);
            state.add(job.into_job(now), now);
        }
        drop(state);
        self.wake.notify_one();
        Ok(count)
    }

    async fn forget(&self, id: &str) -> Result<bool, QueueError> {
        let mut state = self.lock();
        let Some(index) = state.failed.iter().position(|f| f.id == id) else {
            return Ok(false);
        };
        let forgotten = state.failed.remove(index);
        state.drop_id(&forgotten.id);
        Ok(true)
    }

    async fn flush_failed(&self) -> Result<usize, QueueError> {
        let mut state = self.lock();
        let failed = std::mem::take(&mut state.failed);
        for job in &failed {
            state.drop_id(&job.id);
        }
        Ok(failed.len())
    }

    async fn stats(&self) -> Result<Vec<QueueStats>, QueueError> {
        let state = self.lock();
        let mut stats: BTreeMap<String, QueueStats> = BTreeMap::new();
        // Not a hot path: one key allocation per job counted is fine.
        let mut count = |queue: &str, bump: fn(&mut QueueStats)| {
            bump(
                stats
                    .entry(queue.to_owned())
                    .or_insert_with(|| QueueStats::new(queue)),
            );
        };
        for jobs in state.ready.values() {
            for job in jobs {
                count(&job.queue, |s| s.pending += 1);
            }
        }
        let now = SystemTime::now();
        for Reverse(timed) in &state.delayed {
            if timed.at > now {
                count(&timed.item.queue, |s| {
                    s.pending += 1;
                    s.delayed += 1;
                });
            } else {
                count(&timed.item.queue, |s| s.pending += 1);
            }
        }
        for (job, _) in state.reserved.values() {
            count(&job.queue, |s| s.reserved += 1);
        }
        for failed in &state.failed {
            count(&failed.queue, |s| s.failed += 1);
        }
        Ok(stats.into_values().collect())
    }

    async fn clear(&self, queue: &str) -> Result<usize, QueueError> {
        let mut state = self.lock();
        let mut cleared: Vec<Job> = state.ready.remove(queue).map(Vec::from).unwrap_or_default();
        let delayed = std::mem::take(&mut state.delayed);
        let (gone, kept): (Vec<_>, Vec<_>) = delayed
            .into_iter()
            .partition(|Reverse(timed)| timed.item.queue == queue);
        state.delayed = kept.into_iter().collect();
        cleared.extend(gone.into_iter().map(|Reverse(timed)| timed.item));
        for job in &cleared {
            state.drop_id(&job.id);
        }
        Ok(cleared.len())
    }

    async fn jobs(&self, query: &JobQuery) -> Result<JobPage, QueueError> {
        let views = self.lock().views(query, SystemTime::now());
        Ok(query.page(views))
    }

    async fn job(&self, id: &str) -> Result<Option<JobView>, QueueError> {
        let query = JobQuery::new();
        let state = self.lock();
        Ok(state
            .views(&query, SystemTime::now())
            .into_iter()
            .find(|view| view.id == id))
    }

    async fn report(&self, report: &ActivityReport) -> Result<(), QueueError> {
        let now = SystemTime::now();
        let mut state = self.lock();
        let reports = &mut state.activity;
        if report.leaving {
            reports.workers.remove(&report.worker.id);
        } else {
            reports
                .workers
                .insert(report.worker.id.clone(), report.worker.clone());
        }
        for stats in &report.minutes {
            reports
                .minutes
                .entry((stats.minute, stats.queue.clone(), stats.listener.clone()))
                .and_modify(|m| m.merge(stats))
                .or_insert_with(|| stats.clone());
        }
        reports.finished.extend(report.finished.iter().cloned());
        let excess = reports
            .finished
            .len()
            .saturating_sub(activity::FINISHED_KEPT);
        reports.finished.drain(..excess);
        let oldest = activity::minute_of(now.checked_sub(activity::MINUTES_KEPT).unwrap_or(now));
        reports
            .minutes
            .retain(|(minute, _, _), _| *minute >= oldest);
        reports.workers.retain(|_, worker| !worker.is_stale(now));
        Ok(())
    }

    async fn activity(&self, since: SystemTime) -> Result<Activity, QueueError> {
        let now = SystemTime::now();
        let state = self.lock();
        let reports = &state.activity;
        let from = activity::minute_of(since);
        Ok(Activity::new(
            reports
                .workers
                .values()
                .filter(|w| !w.is_stale(now))
                .cloned()
                .collect(),
            reports
                .minutes
                .range((from, String::new(), String::new())..)
                .map(|(_, stats)| stats.clone())
                .collect(),
            reports.finished.iter().rev().cloned().collect(),
        ))
    }

    async fn wait(&self, max: Duration) {
        let wait = {
            let state = self.lock();
            let now = SystemTime::now();
            match state.next_due() {
                Some(due) => due.duration_since(now).unwrap_or_default().min(max),
                None => max,
            }
        };
        if wait.is_zero() {
            return;
        }
        let _ = tokio::time::timeout(wait, self.wake.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Envelope;

    fn job(id: &str) -> Job {
        Job::from_parts(id, "q", "l", "e", "{}", Envelope::new())
    }

    /// Every way a claimed job leaves its lease also drops the lease's
    /// entry: a million claims hold no memory until their deadlines pass.
    #[tokio::test]
    async fn settled_claims_leave_no_lease_behind() {
        let backend = MemoryBackend::default();
        let queues = ["q".to_owned()];
        let lease = Duration::from_secs(3600);
        for n in 0..400 {
            backend.enqueue(job(&format!("job-{n}"))).await.unwrap();
        }
        let mut settled = 0;
        while let Some(claimed) = backend.claim(&queues, 1, lease).await.unwrap().pop() {
            let (id, attempt) = (claimed.id.as_str(), claimed.attempt);
            assert!(backend.extend(id, attempt, lease).await.unwrap());
            let done = match (settled % 4, attempt) {
                (0, _) | (_, 2..) => backend.ack(id, attempt).await.unwrap(),
                (1, _) => backend.fail(id, attempt, "no").await.unwrap(),
                (2, _) => backend
                    .release(id, attempt, Duration::ZERO, "again")
                    .await
                    .unwrap(),
                _ => backend.abandon(id, attempt, Duration::ZERO).await.unwrap(),
            };
            assert!(done);
            settled += 1;
            let state = backend.lock();
            assert_eq!(state.leases.len(), state.reserved.len());
        }
        assert!(settled >= 400, "{settled}");
        let state = backend.lock();
        assert!(state.reserved.is_empty());
        assert!(
            state.leases.is_empty(),
            "{} lease entries left",
            state.leases.len()
        );
    }

    /// A lapsed lease hands the job back, first in its queue, and leaves no
    /// entry behind either.
    #[tokio::test]
    async fn a_lapsed_lease_hands_the_job_back() {
        let backend = MemoryBackend::default();
        let queues = ["q".to_owned()];
        backend.enqueue(job("a")).await.unwrap();
        backend.enqueue(job("b")).await.unwrap();
        let first = backend.claim(&queues, 1, Duration::ZERO).await.unwrap();
        assert_eq!(first[0].id, "a");
        let again = backend
            .claim(&queues, 1, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!((again[0].id.as_str(), again[0].attempt), ("a", 2));
        assert!(
            !backend.ack("a", 1).await.unwrap(),
            "the lapsed claim is fenced"
        );
        assert!(backend.ack("a", 2).await.unwrap());
        assert!(backend.lock().leases.is_empty());
    }

    #[test]
    fn a_hash_shared_with_another_id_does_not_drop_a_job() {
        let mut state = State::default();
        let now = SystemTime::now();
        state.add(job("held"), now);
        // Stand in for a different id with the same FNV-1a hash as "new".
        *state.ids.entry(fnv1a(b"new")).or_insert(0) += 1;
        state.add(job("new"), now);
        assert_eq!(state.ready["q"].len(), 2, "a collision is not a duplicate");
        state.add(job("new"), now);
        state.add(job("held"), now);
        assert_eq!(state.ready["q"].len(), 2, "true duplicates are skipped");
        assert_eq!(state.ids[&fnv1a(b"new")], 2);
        state.drop_id("new");
        assert_eq!(state.ids[&fnv1a(b"new")], 1, "the other id keeps its count");
        state.drop_id("held");
        assert!(!state.ids.contains_key(&fnv1a(b"held")));
    }
}
