//! A job's body as stored in its hash (field `b`): the parts that never
//! change, as JSON, readable with `redis-cli HGET`; a job's hash as
//! listings show it; and what workers report (heartbeats and finished
//! tries as JSON, a minute's counts as hash fields).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use events_core::queue::activity::{Finish, FinishedJob, MinuteStats, WorkerStatus};
use events_core::queue::{FailedJob, Job, JobState, JobView, from_millis, millis};
use events_core::{Envelope, EventId, Metadata};
use redis::Value;
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct BodyRef<'a> {
    listener: &'a str,
    event: &'a str,
    payload: &'a str,
    max_tries: u32,
    first_enqueued_at: i64,
    event_id: &'a EventId,
    occurred_at: i64,
    #[serde(skip_serializing_if = "Metadata::is_empty")]
    metadata: &'a Metadata,
}

#[derive(Deserialize)]
struct Body {
    listener: String,
    event: String,
    payload: String,
    max_tries: u32,
    first_enqueued_at: i64,
    event_id: EventId,
    occurred_at: i64,
    #[serde(default)]
    metadata: Metadata,
}

/// The body of `job`.
pub(crate) fn body(job: &Job) -> String {
    serde_json::to_string(&BodyRef {
        listener: &job.listener,
        event: &job.event,
        payload: &job.payload,
        max_tries: job.max_tries,
        first_enqueued_at: millis(job.first_enqueued_at),
        event_id: &job.envelope.id,
        occurred_at: millis(job.envelope.occurred_at),
        metadata: &job.envelope.metadata,
    })
    .expect("a job body is plain strings and numbers")
}

fn parse(body: &str) -> Result<Body, String> {
    serde_json::from_str(body).map_err(|error| format!("its body is not a job's JSON: {error}"))
}

impl Body {
    fn envelope(&mut self) -> Envelope {
        Envelope::from_parts(
            self.event_id,
            from_millis(self.occurred_at),
            std::mem::take(&mut self.metadata),
        )
    }

    /// Job `id` of `queue` with what its body holds (its envelope, tries
    /// allowed, first enqueued); the caller sets what the hash holds.
    fn into_job(mut self, id: impl Into<String>, queue: &str) -> Job {
        let envelope = self.envelope();
        let mut job = Job::from_parts(id, queue, self.listener, self.event, self.payload, envelope);
        job.max_tries = self.max_tries;
        job.first_enqueued_at = from_millis(self.first_enqueued_at);
        job
    }

    /// Failed job `id` of `queue` that failed with `error`, with what its
    /// body holds; the caller sets the attempts and the time.
    fn into_failed(mut self, id: impl Into<String>, queue: &str, error: String) -> FailedJob {
        let envelope = self.envelope();
        let mut job = FailedJob::from_parts(
            id,
            queue,
            self.listener,
            self.event,
            self.payload,
            error,
            envelope,
        );
        job.max_tries = self.max_tries;
        job.first_enqueued_at = from_millis(self.first_enqueued_at);
        job
    }
}

/// One claimed job as the claim script returns it.
pub(crate) struct Row {
    pub queue: usize,
    pub id: String,
    pub body: Vec<u8>,
    pub attempt: u32,
    pub error: Option<String>,
    pub available_at: i64,
}

impl Row {
    pub(crate) fn from_values(values: &[Value]) -> Result<Row, String> {
        let [queue, id, body, attempt, error, available_at] = values else {
            return Err(format!("{} values instead of 6", values.len()));
        };
        let number = |value: &Value, what: &str| -> Result<i64, String> {
            redis::from_redis_value_ref::<i64>(value).map_err(|e| format!("its {what}: {e}"))
        };
        Ok(Row {
            queue: usize::try_from(number(queue, "queue index")?).map_err(|e| e.to_string())?,
            id: redis::from_redis_value_ref(id).map_err(|e| format!("its id: {e}"))?,
            body: redis::from_redis_value_ref(body).map_err(|e| format!("its body: {e}"))?,
            attempt: u32::try_from(number(attempt, "attempt")?).map_err(|e| e.to_string())?,
            error: redis::from_redis_value_ref(error).map_err(|e| format!("its error: {e}"))?,
            available_at: number(available_at, "available_at").unwrap_or(0),
        })
    }
}

/// The claimed job of `row` on `queue`, or why it cannot be read.
pub(crate) fn job(queue: &str, row: &Row) -> Result<Job, String> {
    let text = std::str::from_utf8(&row.body).map_err(|e| format!("its body is not UTF-8: {e}"))?;
    let mut job = parse(text)?.into_job(row.id.clone(), queue);
    job.attempt = row.attempt;
    job.available_at = from_millis(row.available_at);
    job.last_error = row.error.clone();
    Ok(job)
}

/// A failed job as the failed-store script lists it: `(order, job)`.
pub(crate) fn failed(queue: &str, values: &[Value]) -> Result<(i64, FailedJob), String> {
    let [id, order, body, attempts, error, failed_at] = values else {
        return Err(format!(
            "a failed job came back as {} values, not 6",
            values.len()
        ));
    };
    let id: String = redis::from_redis_value_ref(id).map_err(|e| e.to_string())?;
    let bad = |what: &str, e: &dyn std::fmt::Display| format!("failed job `{id}`: its {what}: {e}");
    let order: f64 = redis::from_redis_value_ref(order).map_err(|e| bad("order", &e))?;
    // Bytes, not a `String`: a body that is not UTF-8 is in the failed store
    // for that very reason, and must not make the whole listing fail.
    let text: Option<Vec<u8>> = redis::from_redis_value_ref(body).map_err(|e| bad("body", &e))?;
    let text = text.map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    let attempts: Option<u32> =
        redis::from_redis_value_ref(attempts).map_err(|e| bad("attempts", &e))?;
    let error: Option<String> = redis::from_redis_value_ref(error).map_err(|e| bad("error", &e))?;
    let failed_at: Option<i64> =
        redis::from_redis_value_ref(failed_at).map_err(|e| bad("time", &e))?;
    let error = error.unwrap_or_default();
    let mut job = match text.as_deref().map(parse) {
        Some(Ok(body)) => body.into_failed(id, queue, error),
        // Kept in the failed store for its reason; shown with what is known.
        Some(Err(_)) | None => {
            let mut job = FailedJob::from_parts(
                id,
                queue,
                "",
                "",
                text.unwrap_or_default(),
                error,
                Envelope::new(),
            );
            job.first_enqueued_at = SystemTime::UNIX_EPOCH;
            job
        }
    };
    job.attempts = attempts.unwrap_or(0);
    job.failed_at = failed_at.map_or_else(SystemTime::now, from_millis);
    Ok((order as i64, job))
}

/// A job's hash as listings read it: fields `b`, `s`, `v`, `x`, `t`.
#[derive(Default)]
pub(crate) struct Stored {
    pub body: Option<Vec<u8>>,
    pub state: Option<String>,
    pub available: Option<i64>,
    pub error: Option<String>,
    pub failed_at: Option<i64>,
}

impl Stored {
    /// From the five values of `HMGET key b s v x t`, or why not.
    pub(crate) fn from_values(values: &[Value]) -> Result<Stored, String> {
        let [body, state, available, error, failed_at] = values else {
            return Err(format!("{} fields instead of 5", values.len()));
        };
        let text = |value: &Value, what: &str| -> Result<Option<String>, String> {
            redis::from_redis_value_ref::<Option<Vec<u8>>>(value)
                .map(|bytes| bytes.map(|b| String::from_utf8_lossy(&b).into_owned()))
                .map_err(|e| format!("its {what}: {e}"))
        };
        let number = |value: &Value, what: &str| -> Result<Option<i64>, String> {
            text(value, what)?
                .map(|text| {
                    text.parse::<i64>()
                        .map_err(|e| format!("its {what} `{text}`: {e}"))
                })
                .transpose()
        };
        Ok(Stored {
            body: redis::from_redis_value_ref(body).map_err(|e| format!("its body: {e}"))?,
            state: text(state, "state")?,
            available: number(available, "time")?,
            error: text(error, "error")?,
            failed_at: number(failed_at, "failure time")?,
        })
    }

    /// Whether the hash is gone (every field missing).
    pub(crate) fn is_gone(&self) -> bool {
        self.body.is_none() && self.state.is_none() && self.available.is_none()
    }

    /// The tries started, from the state field (`r3`: 3).
    pub(crate) fn attempt(&self) -> u32 {
        self.state
            .as_deref()
            .and_then(|s| s.get(1..))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

/// The view of job `id` of `queue`, stored under `key`, in `state`,
/// available at `available` ms (for a claimed job: when its lease ends),
/// or why its hash cannot be read, in words naming the key.
pub(crate) fn view(
    key: &str,
    id: &str,
    queue: &str,
    state: JobState,
    available: i64,
    stored: &Stored,
) -> Result<JobView, String> {
    let bad = |reason: String| format!("the job hash `{key}` cannot be read: {reason}");
    let bytes = stored
        .body
        .as_deref()
        .ok_or_else(|| bad("it has no body (field `b`)".to_owned()))?;
    let text =
        std::str::from_utf8(bytes).map_err(|e| bad(format!("its body is not UTF-8: {e}")))?;
    let body = parse(text).map_err(bad)?;
    if state == JobState::Failed {
        let mut job = body.into_failed(id, queue, stored.error.clone().unwrap_or_default());
        job.attempts = stored.attempt();
        job.failed_at = from_millis(stored.failed_at.unwrap_or(available));
        return Ok(JobView::failed(job));
    }
    let mut job = body.into_job(id, queue);
    job.attempt = stored.attempt();
    job.available_at = from_millis(available);
    job.last_error = stored.error.clone();
    Ok(JobView::waiting(job, state))
}

/// A job whose hash cannot be read, shown with what is known: its raw
/// body as the payload and `reason` as its error, so a listing still
/// shows it (and a search still finds it) without failing.
pub(crate) fn unreadable(
    id: &str,
    queue: &str,
    state: JobState,
    available: i64,
    stored: &Stored,
    reason: String,
) -> JobView {
    let raw = stored
        .body
        .as_deref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    let mut job = Job::from_parts(id, queue, "", "", raw, Envelope::new());
    job.attempt = stored.attempt();
    job.available_at = from_millis(available);
    job.first_enqueued_at = SystemTime::UNIX_EPOCH;
    job.last_error = Some(reason);
    let mut view = JobView::waiting(job, state);
    if state == JobState::Failed {
        let at = from_millis(stored.failed_at.unwrap_or(available));
        view.failed_at = Some(at);
        view.available_at = at;
    }
    view
}

/// Nanoseconds since the epoch (0 before it): heartbeats come back exactly
/// as sent.
fn nanos(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn from_nanos(ns: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(ns)
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A worker's heartbeat as stored in its key.
#[derive(Serialize, Deserialize)]
struct Heartbeat {
    id: String,
    host: String,
    pid: u32,
    queues: Vec<String>,
    concurrency: usize,
    started_at: u64,
    seen_at: u64,
    every: u64,
    running: usize,
    processed: u64,
    failed: u64,
}

/// The JSON of `worker`'s heartbeat.
pub(crate) fn heartbeat(worker: &WorkerStatus) -> String {
    serde_json::to_string(&Heartbeat {
        id: worker.id.clone(),
        host: worker.host.clone(),
        pid: worker.pid,
        queues: worker.queues.clone(),
        concurrency: worker.concurrency,
        started_at: nanos(worker.started_at),
        seen_at: nanos(worker.seen_at),
        every: duration_nanos(worker.every),
        running: worker.running,
        processed: worker.processed,
        failed: worker.failed,
    })
    .expect("a heartbeat is plain strings and numbers")
}

/// The worker a heartbeat's JSON describes, or why it cannot be read.
pub(crate) fn worker(json: &str) -> Result<WorkerStatus, String> {
    let h: Heartbeat =
        serde_json::from_str(json).map_err(|e| format!("a heartbeat is not JSON we wrote: {e}"))?;
    let mut worker = WorkerStatus::new(
        h.id,
        h.host,
        h.pid,
        from_nanos(h.seen_at),
        Duration::from_nanos(h.every),
    );
    worker.queues = h.queues;
    worker.concurrency = h.concurrency;
    worker.started_at = from_nanos(h.started_at);
    worker.running = h.running;
    worker.processed = h.processed;
    worker.failed = h.failed;
    Ok(worker)
}

/// A finished try as stored in the finished list.
#[derive(Serialize, Deserialize)]
struct Finished {
    id: String,
    queue: String,
    listener: String,
    event: String,
    attempt: u32,
    outcome: String,
    took: u64,
    finished_at: u64,
    worker: String,
}

/// The JSON of a finished try.
pub(crate) fn finished(job: &FinishedJob) -> String {
    serde_json::to_string(&Finished {
        id: job.id.clone(),
        queue: job.queue.clone(),
        listener: job.listener.clone(),
        event: job.event.clone(),
        attempt: job.attempt,
        outcome: job.outcome.as_str().to_owned(),
        took: duration_nanos(job.took),
        finished_at: nanos(job.finished_at),
        worker: job.worker.clone(),
    })
    .expect("a finished try is plain strings and numbers")
}

/// The finished try a JSON describes, or why it cannot be read.
pub(crate) fn finished_job(json: &str) -> Result<FinishedJob, String> {
    let f: Finished = serde_json::from_str(json)
        .map_err(|e| format!("a finished try is not JSON we wrote: {e}"))?;
    let outcome = Finish::parse(&f.outcome)
        .ok_or_else(|| format!("a finished try's outcome `{}` is unknown", f.outcome))?;
    let mut job = FinishedJob::new(f.id, outcome, from_nanos(f.finished_at));
    job.queue = f.queue;
    job.listener = f.listener;
    job.event = f.event;
    job.attempt = f.attempt;
    job.took = Duration::from_nanos(f.took);
    job.worker = f.worker;
    Ok(job)
}

/// The field of counter `name` of `queue` and `listener` in a minute's
/// hash: `<name>:<queue length>:<queue>:<listener>` (the length keeps a
/// `:` in a queue name from running into the listener).
fn minute_field(name: &str, queue: &str, listener: &str) -> String {
    format!("{name}:{}:{queue}:{listener}", queue.len())
}

/// The counter, queue and listener a minute hash's field names.
fn parse_minute_field(field: &str) -> Option<(&str, &str, &str)> {
    let (name, rest) = field.split_once(':')?;
    let (len, rest) = rest.split_once(':')?;
    let len: usize = len.parse().ok()?;
    let queue = rest.get(..len)?;
    let listener = rest.get(len..)?.strip_prefix(':')?;
    Some((name, queue, listener))
}

/// Fields of a minute's hash with their values.
pub(crate) type Fields = Vec<(String, u64)>;

/// The fields one minute's counts add (`HINCRBY`) and those kept as a
/// maximum.
pub(crate) fn minute_fields(stats: &MinuteStats) -> (Fields, Fields) {
    let (q, l) = (stats.queue.as_str(), stats.listener.as_str());
    let mut sums = vec![
        (minute_field("s", q, l), stats.succeeded),
        (minute_field("r", q, l), stats.retried),
        (minute_field("f", q, l), stats.failed),
        (minute_field("ms", q, l), stats.runtime_ms),
        (minute_field("w", q, l), stats.wait_ms),
        (minute_field("c", q, l), stats.claims),
    ];
    for (i, &count) in stats.runtime.iter().enumerate() {
        if count > 0 {
            sums.push((minute_field(&format!("b{i}"), q, l), count));
        }
    }
    let maxes = vec![(minute_field("wm", q, l), stats.wait_max_ms)];
    (sums, maxes)
}

/// Adds a minute hash's `field, value` pairs into `into`, by queue and
/// listener; fields that are not ours are left out (and said).
pub(crate) fn add_minute(
    minute: i64,
    pairs: &[(String, String)],
    into: &mut BTreeMap<(i64, String, String), MinuteStats>,
) -> Vec<String> {
    let mut unread = Vec::new();
    for (field, value) in pairs {
        let parsed = parse_minute_field(field).zip(value.parse::<u64>().ok());
        let Some(((name, queue, listener), value)) = parsed else {
            unread.push(field.clone());
            continue;
        };
        let stats = into
            .entry((minute, queue.to_owned(), listener.to_owned()))
            .or_insert_with(|| MinuteStats::new(minute, queue, listener));
        match name {
            "s" => stats.succeeded = value,
            "r" => stats.retried = value,
            "f" => stats.failed = value,
            "ms" => stats.runtime_ms = value,
            "w" => stats.wait_ms = value,
            "wm" => stats.wait_max_ms = value,
            "c" => stats.claims = value,
            bucket => match bucket
                .strip_prefix('b')
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| stats.runtime.get_mut(i))
            {
                Some(slot) => *slot = value,
                None => unread.push(field.clone()),
            },
        }
    }
    unread
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minute_fields_keep_queue_and_listener_apart() {
        let mut stats = MinuteStats::new(7, "a:b", "x::y");
        stats.succeeded = 2;
        stats.add_runtime(Duration::from_millis(3));
        stats.add_wait(Duration::from_millis(40));
        let (sums, maxes) = minute_fields(&stats);
        let pairs: Vec<(String, String)> = sums
            .into_iter()
            .chain(maxes)
            .map(|(f, v)| (f, v.to_string()))
            .collect();
        let mut into = BTreeMap::new();
        assert!(add_minute(7, &pairs, &mut into).is_empty());
        assert_eq!(into.into_values().collect::<Vec<_>>(), [stats]);
        assert_eq!(parse_minute_field("s:9:short"), None);
    }

    #[test]
    fn heartbeats_and_finished_tries_come_back_as_sent() {
        let at = SystemTime::now();
        let mut w = WorkerStatus::new("h:1:0", "h", 1, at, Duration::from_millis(1500));
        w.queues = vec!["a".into()];
        assert_eq!(worker(&heartbeat(&w)).unwrap(), w);
        let mut f = FinishedJob::new("j", Finish::Retried, at);
        f.took = Duration::from_micros(1234);
        assert_eq!(finished_job(&finished(&f)).unwrap(), f);
    }
}
