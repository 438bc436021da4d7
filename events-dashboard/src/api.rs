//! The JSON API the page reads, under `/api`. Bad input gets a 400 with
//! its reason in words; a backend that fails, a 503 with its causes.

use std::collections::HashMap;
use std::time::SystemTime;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use events_core::error::Chain;
use events_core::queue::activity::FinishedJob;
use events_core::queue::{
    JobQuery, JobState, JobView, QueueError, contains_ignoring_ascii_case, millis,
};
use serde_json::{Value, json};

use crate::Shared;
use crate::snapshot::{self, Look};

/// The largest page a listing gives.
const MAX_LIMIT: usize = 500;
/// The longest search text.
const MAX_SEARCH: usize = 200;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/overview", get(overview))
        .route("/api/queues", get(queues))
        .route("/api/listeners", get(listeners))
        .route("/api/registry", get(registry))
        .route("/api/jobs", get(jobs))
        .route("/api/jobs/{id}", get(job))
        .route("/api/jobs/{id}/retry", post(retry))
        .route("/api/jobs/{id}/forget", post(forget))
        .route("/api/failed/retry", post(retry_all))
        .route("/api/failed/forget", post(forget_all))
}

/// An answer that is not a 200.
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn bad(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(error: QueueError) -> ApiError {
        let status = match error {
            QueueError::Unsupported { .. } => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError {
            status,
            message: Chain(&error).to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        crate::auth::refuse(self.status, &self.message)
    }
}

type Answer = Result<Json<Value>, ApiError>;

async fn overview(State(shared): State<Shared>) -> Answer {
    let look = Look::take(&shared).await?;
    Ok(Json(snapshot::overview(&shared, &look).await?))
}

async fn queues(State(shared): State<Shared>) -> Answer {
    let look = Look::take(&shared).await?;
    Ok(Json(snapshot::queues(&look)))
}

async fn listeners(State(shared): State<Shared>) -> Answer {
    let look = Look::take(&shared).await?;
    Ok(Json(snapshot::listeners(&shared, &look)))
}

async fn registry(State(shared): State<Shared>) -> Answer {
    let mut value = events_core::cli::registry_json(&shared.defaults);
    value["mermaid"] = Value::String(events_core::cli::mermaid());
    Ok(Json(value))
}

/// What a listing may be asked for.
const STATES: &str =
    "all, ready, delayed, reserved, failed, pending (ready and delayed) or recent (finished tries)";

async fn jobs(
    State(shared): State<Shared>,
    Query(params): Query<HashMap<String, String>>,
) -> Answer {
    for key in params.keys() {
        if !["state", "queue", "q", "limit", "offset"].contains(&key.as_str()) {
            return Err(ApiError::bad(format!(
                "unknown parameter `{key}`: a listing takes state, queue, q, limit and offset"
            )));
        }
    }
    let number = |key: &str, default: usize, max: usize| -> Result<usize, ApiError> {
        match params.get(key).map(String::as_str) {
            None | Some("") => Ok(default),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if n <= max => Ok(n),
                Ok(_) => Err(ApiError::bad(format!(
                    "`{key}` is at most {max}, not {text}"
                ))),
                Err(_) => Err(ApiError::bad(format!(
                    "`{key}` must be a whole number, not `{text}`"
                ))),
            },
        }
    };
    let limit = number("limit", 50, MAX_LIMIT)?;
    let offset = number("offset", 0, 10_000_000)?;
    let search = params.get("q").map(|q| q.trim()).filter(|q| !q.is_empty());
    if let Some(q) = search
        && q.len() > MAX_SEARCH
    {
        return Err(ApiError::bad(format!(
            "the search text is at most {MAX_SEARCH} bytes, not {}",
            q.len()
        )));
    }
    let queue = params.get("queue").filter(|q| !q.is_empty());
    let state = params.get("state").map_or("all", String::as_str);
    if state == "recent" {
        return recent(&shared, queue.map(String::as_str), search, offset, limit).await;
    }
    let mut query = JobQuery::new().offset(offset).limit(limit);
    query = match state {
        "all" | "" => query,
        "pending" => query.state(JobState::Ready).state(JobState::Delayed),
        other => match JobState::parse(other) {
            Some(state) => query.state(state),
            None => {
                return Err(ApiError::bad(format!(
                    "unknown state `{other}`: ask for {STATES}"
                )));
            }
        },
    };
    if let Some(queue) = queue {
        query = query.queue(queue.clone());
    }
    if let Some(text) = search {
        query = query.search(text);
    }
    let page = shared.queue.jobs(&query).await?;
    Ok(Json(json!({
        "state": state,
        "total": page.total,
        "offset": offset,
        "limit": limit,
        "jobs": page.jobs.iter().map(job_json).collect::<Vec<_>>(),
    })))
}

/// The tries the workers finished last, newest first.
async fn recent(
    shared: &Shared,
    queue: Option<&str>,
    search: Option<&str>,
    offset: usize,
    limit: usize,
) -> Answer {
    let activity = shared.queue.activity(SystemTime::now()).await?;
    let matching: Vec<&FinishedJob> = activity
        .finished
        .iter()
        .filter(|f| queue.is_none_or(|q| f.queue == q))
        .filter(|f| {
            search.is_none_or(|text| {
                [&f.id, &f.listener, &f.event, &f.worker]
                    .into_iter()
                    .any(|field| contains_ignoring_ascii_case(field, text))
            })
        })
        .collect();
    Ok(Json(json!({
        "state": "recent",
        "total": matching.len(),
        "offset": offset,
        "limit": limit,
        "jobs": matching.iter().skip(offset).take(limit).map(|f| json!({
            "state": "finished",
            "id": f.id,
            "queue": f.queue,
            "listener": f.listener,
            "event": f.event,
            "attempt": f.attempt,
            "outcome": f.outcome.as_str(),
            "took_ms": f.took.as_secs_f64() * 1000.0,
            "finished_at": millis(f.finished_at),
            "worker": f.worker,
        })).collect::<Vec<_>>(),
    })))
}

/// A job as the page shows it: the payload as JSON where it is JSON.
fn job_json(job: &JobView) -> Value {
    let payload = serde_json::from_str::<Value>(&job.payload)
        .unwrap_or_else(|_| Value::String(job.payload.clone()));
    json!({
        "state": job.state.as_str(),
        "id": job.id,
        "queue": job.queue,
        "listener": job.listener,
        "event": job.event,
        "payload": payload,
        "attempt": job.attempt,
        "max_tries": job.max_tries,
        "available_at": millis(job.available_at),
        "first_enqueued_at": millis(job.first_enqueued_at),
        "error": job.error,
        "failed_at": job.failed_at.map(millis),
        "event_id": job.envelope.id.to_string(),
        "occurred_at": millis(job.envelope.occurred_at),
        "metadata": job.envelope.metadata.iter().collect::<HashMap<_, _>>(),
    })
}

async fn job(State(shared): State<Shared>, Path(id): Path<String>) -> Answer {
    match shared.queue.job(&id).await? {
        Some(job) => Ok(Json(job_json(&job))),
        None => Err(ApiError::not_found(format!(
            "no job has id `{id}` (done jobs are not kept; see the recent list)"
        ))),
    }
}

async fn retry(State(shared): State<Shared>, Path(id): Path<String>) -> Answer {
    match shared.queue.retry(&id).await? {
        Some(new_id) => {
            tracing::info!(job = %id, new_id = %new_id, "the dashboard put a failed job back on its queue");
            Ok(Json(json!({ "retried": id, "id": new_id })))
        }
        None => Err(ApiError::not_found(format!("no failed job has id `{id}`"))),
    }
}

async fn forget(State(shared): State<Shared>, Path(id): Path<String>) -> Answer {
    if shared.queue.forget(&id).await? {
        tracing::info!(job = %id, "the dashboard forgot a failed job");
        Ok(Json(json!({ "forgotten": id })))
    } else {
        Err(ApiError::not_found(format!("no failed job has id `{id}`")))
    }
}

async fn retry_all(State(shared): State<Shared>) -> Answer {
    let retried = shared.queue.retry_all().await?;
    tracing::info!(
        jobs = retried,
        "the dashboard put every failed job back on its queue"
    );
    Ok(Json(json!({ "retried": retried })))
}

async fn forget_all(State(shared): State<Shared>) -> Answer {
    let forgotten = shared.queue.flush_failed().await?;
    tracing::info!(jobs = forgotten, "the dashboard forgot every failed job");
    Ok(Json(json!({ "forgotten": forgotten })))
}
