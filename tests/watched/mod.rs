//! A memory queue whose calls a test watches and steers, shared by the
//! tests that need one (all or nothing enqueue, `ack_and_claim`, outages,
//! unknown listeners) instead of a copy of the same delegations each.
//!
//! Every call is logged as a line before it runs (`enqueue_many 2`,
//! `enqueue <id>`, `claim`, `ack <id> <attempt>`, `ack_and_claim <id>
//! <attempt>`, `extend ..`, `release ..`, `abandon <id> <attempt> <delay>`,
//! `fail ..`, `stats`, `report` or `report leaving` (a worker's
//! heartbeat), `activity`, ..), and each job a claim returns as `claimed <id>
//! <attempt>`. A refusal hook sees each line first and may answer the call
//! with an error instead. `wait` is the trait's default (it sleeps the
//! whole interval), so a worker is woken only by what it does itself.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use events::queue::{
    Activity, ActivityReport, Backend, FailedJob, Job, MemoryBackend, QueueError, QueueStats,
};

type Refusal = Box<dyn Fn(&str) -> Option<QueueError> + Send + Sync>;

/// A [`MemoryBackend`] that logs and can refuse its calls.
pub struct Watched {
    inner: MemoryBackend,
    log: Arc<Mutex<Vec<String>>>,
    refuse: Refusal,
    slow_stats: Duration,
}

impl Default for Watched {
    fn default() -> Self {
        Watched {
            inner: MemoryBackend::default(),
            log: Arc::default(),
            refuse: Box::new(|_| None),
            slow_stats: Duration::ZERO,
        }
    }
}

impl Watched {
    /// A queue that logs and refuses nothing.
    pub fn new() -> Watched {
        Watched::default()
    }

    /// Answers a call with `refuse`'s error when it gives one (it sees the
    /// call's log line).
    pub fn refusing(
        mut self,
        refuse: impl Fn(&str) -> Option<QueueError> + Send + Sync + 'static,
    ) -> Watched {
        self.refuse = Box::new(refuse);
        self
    }

    /// `stats` takes `delay` more after it read the counts.
    pub fn slow_stats(mut self, delay: Duration) -> Watched {
        self.slow_stats = delay;
        self
    }

    /// The log, shared: it goes on filling after the queue is handed over.
    pub fn log(&self) -> Arc<Mutex<Vec<String>>> {
        self.log.clone()
    }

    fn call(&self, line: String) -> Result<(), QueueError> {
        let refused = (self.refuse)(&line);
        self.log.lock().unwrap().push(line);
        refused.map_or(Ok(()), Err)
    }

    fn claimed(&self, jobs: &[Job]) {
        let mut log = self.log.lock().unwrap();
        for job in jobs {
            log.push(format!("claimed {} {}", job.id, job.attempt));
        }
    }
}

/// An error as a backend would give it, `backend` failing with `why`.
pub fn refused(backend: &'static str, why: &str) -> QueueError {
    QueueError::backend(backend, std::io::Error::other(why.to_owned()))
}

#[async_trait]
impl Backend for Watched {
    async fn enqueue_many(&self, jobs: Vec<Job>) -> Result<(), QueueError> {
        self.call(format!("enqueue_many {}", jobs.len()))?;
        self.inner.enqueue_many(jobs).await
    }
    async fn enqueue(&self, job: Job) -> Result<(), QueueError> {
        self.call(format!("enqueue {}", job.id))?;
        self.inner.enqueue(job).await
    }
    async fn claim(
        &self,
        queues: &[String],
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Job>, QueueError> {
        self.call("claim".to_owned())?;
        let jobs = self.inner.claim(queues, limit, lease).await?;
        self.claimed(&jobs);
        Ok(jobs)
    }
    async fn ack_and_claim(
        &self,
        id: &str,
        attempt: u32,
        queues: &[String],
        limit: usize,
        lease: Duration,
    ) -> (Result<bool, QueueError>, Result<Vec<Job>, QueueError>) {
        if let Err(error) = self.call(format!("ack_and_claim {id} {attempt}")) {
            return (Err(error), Ok(Vec::new()));
        }
        let (acked, claimed) = self
            .inner
            .ack_and_claim(id, attempt, queues, limit, lease)
            .await;
        if let Ok(jobs) = &claimed {
            self.claimed(jobs);
        }
        (acked, claimed)
    }
    async fn extend(&self, id: &str, attempt: u32, lease: Duration) -> Result<bool, QueueError> {
        self.call(format!("extend {id} {attempt}"))?;
        self.inner.extend(id, attempt, lease).await
    }
    async fn ack(&self, id: &str, attempt: u32) -> Result<bool, QueueError> {
        self.call(format!("ack {id} {attempt}"))?;
        self.inner.ack(id, attempt).await
    }
    async fn release(
        &self,
        id: &str,
        attempt: u32,
        delay: Duration,
        error: &str,
    ) -> Result<bool, QueueError> {
        self.call(format!("release {id} {attempt}"))?;
        self.inner.release(id, attempt, delay, error).await
    }
    async fn abandon(&self, id: &str, attempt: u32, delay: Duration) -> Result<bool, QueueError> {
        self.call(format!("abandon {id} {attempt} {delay:?}"))?;
        self.inner.abandon(id, attempt, delay).await
    }
    async fn fail(&self, id: &str, attempt: u32, error: &str) -> Result<bool, QueueError> {
        self.call(format!("fail {id} {attempt}"))?;
        self.inner.fail(id, attempt, error).await
    }
    async fn failed(&self) -> Result<Vec<FailedJob>, QueueError> {
        self.call("failed".to_owned())?;
        self.inner.failed().await
    }
    async fn retry(&self, id: &str) -> Result<Option<String>, QueueError> {
        self.call(format!("retry {id}"))?;
        self.inner.retry(id).await
    }
    async fn retry_all(&self) -> Result<usize, QueueError> {
        self.call("retry_all".to_owned())?;
        self.inner.retry_all().await
    }
    async fn forget(&self, id: &str) -> Result<bool, QueueError> {
        self.call(format!("forget {id}"))?;
        self.inner.forget(id).await
    }
    async fn flush_failed(&self) -> Result<usize, QueueError> {
        self.call("flush_failed".to_owned())?;
        self.inner.flush_failed().await
    }
    async fn stats(&self) -> Result<Vec<QueueStats>, QueueError> {
        self.call("stats".to_owned())?;
        let stats = self.inner.stats().await;
        if !self.slow_stats.is_zero() {
            tokio::time::sleep(self.slow_stats).await;
        }
        stats
    }
    async fn clear(&self, queue: &str) -> Result<usize, QueueError> {
        self.call(format!("clear {queue}"))?;
        self.inner.clear(queue).await
    }
    async fn report(&self, report: &ActivityReport) -> Result<(), QueueError> {
        let line = if report.leaving {
            "report leaving"
        } else {
            "report"
        };
        self.call(line.to_owned())?;
        self.inner.report(report).await
    }
    async fn activity(&self, since: std::time::SystemTime) -> Result<Activity, QueueError> {
        self.call("activity".to_owned())?;
        self.inner.activity(since).await
    }
}
