//! A job's body as stored in its hash (field `b`): the parts that never
//! change, as JSON, readable with `redis-cli HGET`.

use std::time::SystemTime;

use events_core::queue::{FailedJob, Job, from_millis, millis};
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
    let body = parse(text)?;
    let envelope =
        Envelope::from_parts(body.event_id, from_millis(body.occurred_at), body.metadata);
    let mut job = Job::from_parts(
        row.id.clone(),
        queue,
        body.listener,
        body.event,
        body.payload,
        envelope,
    );
    job.attempt = row.attempt;
    job.max_tries = body.max_tries;
    job.available_at = from_millis(row.available_at);
    job.first_enqueued_at = from_millis(body.first_enqueued_at);
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
        Some(Ok(body)) => {
            let envelope =
                Envelope::from_parts(body.event_id, from_millis(body.occurred_at), body.metadata);
            let mut job = FailedJob::from_parts(
                id,
                queue,
                body.listener,
                body.event,
                body.payload,
                error,
                envelope,
            );
            job.max_tries = body.max_tries;
            job.first_enqueued_at = from_millis(body.first_enqueued_at);
            job
        }
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
