//! The HTTP API under `/apps/{id}`, signed as Pusher signs it: publish
//! events (one, or a batch), and ask which channels are occupied and who
//! is in a presence channel. So a PHP or Node service publishes through
//! this server with Pusher's own libraries.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::hub::{AppHub, Delivery};
use crate::protocol::{
    ChannelKind, MAX_EVENT_CHANNELS as MAX_CHANNELS, validate_channel, validate_targets,
};
use crate::sign::{SignatureError, now_seconds, verify_api_request};
use crate::{BroadcastError, Inner};

/// The most events in one batch (Pusher's 10).
const MAX_BATCH: usize = 10;
/// The longest event name (Pusher's 200).
const MAX_EVENT_NAME: usize = 200;

pub(crate) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        .route("/apps/{id}/events", post(events))
        .route("/apps/{id}/batch_events", post(batch_events))
        .route("/apps/{id}/channels", get(channels))
        .route("/apps/{id}/channels/{name}", get(channel))
        .route("/apps/{id}/channels/{name}/users", get(users))
}

/// An error answer: the status and `{"error": ".."}`.
fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// The query's parameters, decoded.
fn params(uri: &axum::http::Uri) -> Vec<(String, String)> {
    uri.query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default()
}

/// A verified request's app and query parameters.
type Verified = (Arc<AppHub>, Vec<(String, String)>);

/// The app `id` when the request is signed with its key and secret.
fn verified(
    inner: &Inner,
    id: &str,
    method: &Method,
    uri: &axum::http::Uri,
    body: &[u8],
) -> Result<Verified, Response> {
    let Some(app) = inner.hub.by_id(id) else {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            format!("no app has the id `{id}` on this server"),
        ));
    };
    let params = params(uri);
    let now = now_seconds();
    let verify = |path: &str| {
        verify_api_request(
            app.app.key(),
            app.app.secret(),
            method.as_str(),
            path,
            &params,
            body,
            now,
        )
    };
    // Signed over the path as requested, or (when the router is nested
    // under a prefix) as it starts at `/apps/`: either proves the secret.
    let checked = match verify(uri.path()) {
        Err(SignatureError::BadSignature) => match uri.path().find("/apps/") {
            Some(at) if at > 0 => verify(&uri.path()[at..]),
            _ => Err(SignatureError::BadSignature),
        },
        other => other,
    };
    checked.map_err(|e| refuse(StatusCode::UNAUTHORIZED, e.to_string()))?;
    Ok((app.clone(), params))
}

/// An event to publish, as Pusher's libraries send it.
#[derive(Debug, Deserialize)]
struct EventBody {
    name: String,
    /// JSON text (a string), or any JSON, sent as its text.
    data: Value,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    socket_id: Option<String>,
}

/// A checked event, ready to deliver.
fn delivery(inner: &Inner, app: &AppHub, body: EventBody) -> Result<Delivery, Response> {
    let bad = |message: String| refuse(StatusCode::BAD_REQUEST, message);
    if body.name.is_empty() || body.name.len() > MAX_EVENT_NAME {
        return Err(bad(format!(
            "the event name must be 1 to {MAX_EVENT_NAME} characters"
        )));
    }
    let channels = match (body.channels, body.channel) {
        (Some(channels), None) => channels,
        (None, Some(channel)) => vec![channel],
        _ => {
            return Err(bad(
                "give the event `channels` (a list) or `channel` (one), not both".into(),
            ));
        }
    };
    if channels.is_empty() || channels.len() > MAX_CHANNELS {
        return Err(bad(format!(
            "an event goes to 1 to {MAX_CHANNELS} channels, not {}",
            channels.len()
        )));
    }
    validate_targets(&channels, body.socket_id.as_deref()).map_err(|e| bad(e.to_string()))?;
    let data = match body.data {
        Value::String(text) => text,
        other => other.to_string(),
    };
    let limit = inner.options.max_message_size;
    if data.len() > limit {
        return Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the event's data is {} bytes, over the limit of {limit}",
                data.len()
            ),
        ));
    }
    Ok(Delivery::Event {
        app: app.app.id().to_owned(),
        channels,
        event: body.name,
        data,
        except: body.socket_id,
        user_id: None,
    })
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            format!("the body is not the JSON this endpoint takes: {e}"),
        )
    })
}

fn unavailable(error: &BroadcastError) -> Response {
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        events_core::error::Chain(error).to_string(),
    )
}

/// `POST /apps/{id}/events`.
async fn events(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Response {
    let (app, _) = match verified(&inner, &id, &Method::POST, &uri, &body) {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let delivery = match json_body(&body).and_then(|event| delivery(&inner, &app, event)) {
        Ok(delivery) => delivery,
        Err(response) => return response,
    };
    match inner.send(delivery).await {
        Ok(()) => axum::Json(json!({})).into_response(),
        Err(e) => unavailable(&e),
    }
}

#[derive(Debug, Deserialize)]
struct Batch {
    batch: Vec<EventBody>,
}

/// `POST /apps/{id}/batch_events`: up to 10 events, all checked before
/// any is sent.
async fn batch_events(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Response {
    let (app, _) = match verified(&inner, &id, &Method::POST, &uri, &body) {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let batch: Batch = match json_body(&body) {
        Ok(batch) => batch,
        Err(response) => return response,
    };
    if batch.batch.len() > MAX_BATCH {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "a batch holds at most {MAX_BATCH} events, not {}",
                batch.batch.len()
            ),
        );
    }
    let mut deliveries = Vec::with_capacity(batch.batch.len());
    for event in batch.batch {
        match delivery(&inner, &app, event) {
            Ok(delivery) => deliveries.push(delivery),
            Err(response) => return response,
        }
    }
    for delivery in deliveries {
        if let Err(e) = inner.send(delivery).await {
            return unavailable(&e);
        }
    }
    axum::Json(json!({})).into_response()
}

/// The `info` attributes asked for (`user_count,subscription_count`).
fn info(params: &[(String, String)]) -> Vec<String> {
    params
        .iter()
        .filter(|(k, _)| k == "info")
        .flat_map(|(_, v)| v.split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `GET /apps/{id}/channels?filter_by_prefix=..&info=user_count`.
async fn channels(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let (app, params) = match verified(&inner, &id, &Method::GET, &uri, b"") {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let prefix = params
        .iter()
        .find(|(k, _)| k == "filter_by_prefix")
        .map_or("", |(_, v)| v.as_str());
    let info = info(&params);
    let user_count = info.iter().any(|i| i == "user_count");
    if user_count && !prefix.starts_with("presence-") {
        return refuse(
            StatusCode::BAD_REQUEST,
            "info=user_count needs filter_by_prefix=presence- (only presence channels have users)",
        );
    }
    let occupied = match inner.occupied(&app, None).await {
        Ok(occupied) => occupied,
        Err(e) => return unavailable(&e),
    };
    let mut out = serde_json::Map::new();
    for (name, _) in occupied {
        if !name.starts_with(prefix) {
            continue;
        }
        let mut attributes = serde_json::Map::new();
        if user_count {
            match inner.presence_members(&app, &name).await {
                Ok(members) => {
                    attributes.insert("user_count".into(), json!(members.len()));
                }
                Err(e) => return unavailable(&e),
            }
        }
        out.insert(name, Value::Object(attributes));
    }
    axum::Json(json!({ "channels": out })).into_response()
}

/// `GET /apps/{id}/channels/{name}?info=user_count,subscription_count`.
async fn channel(
    State(inner): State<Arc<Inner>>,
    Path((id, name)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let (app, params) = match verified(&inner, &id, &Method::GET, &uri, b"") {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    if let Err(e) = validate_channel(&name) {
        return refuse(StatusCode::BAD_REQUEST, e.to_string());
    }
    let info = info(&params);
    let presence = ChannelKind::of(&name) == ChannelKind::Presence;
    let subscriptions = match inner.occupied(&app, Some(&name)).await {
        Ok(occupied) => occupied.get(&name).copied().unwrap_or(0),
        Err(e) => return unavailable(&e),
    };
    let mut out = serde_json::Map::new();
    let mut occupied = subscriptions > 0;
    if presence {
        match inner.presence_members(&app, &name).await {
            Ok(members) => {
                occupied |= !members.is_empty();
                if info.iter().any(|i| i == "user_count") {
                    out.insert("user_count".into(), json!(members.len()));
                }
            }
            Err(e) => return unavailable(&e),
        }
    } else if info.iter().any(|i| i == "user_count") {
        return refuse(
            StatusCode::BAD_REQUEST,
            "info=user_count is for presence channels only",
        );
    }
    if info.iter().any(|i| i == "subscription_count") {
        out.insert("subscription_count".into(), json!(subscriptions));
    }
    out.insert("occupied".into(), json!(occupied));
    axum::Json(Value::Object(out)).into_response()
}

/// `GET /apps/{id}/channels/{name}/users`: a presence channel's members.
async fn users(
    State(inner): State<Arc<Inner>>,
    Path((id, name)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let (app, _) = match verified(&inner, &id, &Method::GET, &uri, b"") {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    if ChannelKind::of(&name) != ChannelKind::Presence || validate_channel(&name).is_err() {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("`{name}` is not a presence channel: only those have users"),
        );
    }
    match inner.presence_members(&app, &name).await {
        Ok(members) => {
            let users: Vec<Value> = members.iter().map(|m| json!({ "id": m.user_id })).collect();
            axum::Json(json!({ "users": users })).into_response()
        }
        Err(e) => unavailable(&e),
    }
}
