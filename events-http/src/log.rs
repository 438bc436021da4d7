//! The event log's routes: history, one entity's timeline, statistics and
//! the schemas seen.

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use events_core::store::{
    Bucket, Entity, EventPage, EventQuery, Order, SchemaSeen, StatsQuery, StoredEvent,
    TimelineQuery,
};
use events_core::{EventId, Metadata};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::error::{ApiError, Query};
use crate::{Answer, Shared, time};

/// The page size when none is asked for.
pub(crate) const DEFAULT_LIMIT: usize = 100;
/// The largest page.
pub(crate) const MAX_LIMIT: usize = 1000;

/// `GET /events`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryParams {
    /// Names or patterns, separated by commas.
    #[serde(alias = "name")]
    event_name: Option<String>,
    entity_type: Option<String>,
    entity_id: Option<String>,
    actor: Option<String>,
    from: Option<String>,
    to: Option<String>,
    after: Option<String>,
    before: Option<String>,
    limit: Option<String>,
    order: Option<String>,
}

pub(crate) async fn history(
    State(shared): State<Shared>,
    Query(params): Query<HistoryParams>,
) -> Result<Response, ApiError> {
    let mut query = EventQuery::new().limit(limit(params.limit.as_deref())?);
    for name in names(params.event_name.as_deref())? {
        query = query.name(name);
    }
    match (non_empty(&params.entity_type), non_empty(&params.entity_id)) {
        (Some(kind), Some(id)) => query = query.entity(Entity::new(kind, id)),
        (Some(kind), None) => query = query.entity_type(kind),
        (None, Some(_)) => {
            return Err(ApiError::bad_request(
                "`entity_id` needs `entity_type` beside it (an id is unique within its type)",
            ));
        }
        (None, None) => {}
    }
    if let Some(actor) = non_empty(&params.actor) {
        query = query.actor(actor);
    }
    let (since, until) = range(params.from.as_deref(), params.to.as_deref())?;
    query.since = since;
    query.until = until;
    query.after = cursor("after", params.after.as_deref())?;
    query.before = cursor("before", params.before.as_deref())?;
    query = query.order(order(params.order.as_deref())?);
    query.validate()?;
    let page = shared.store.events(&query).await?;
    Ok(axum::Json(PageOut::of(&page, query.order)).into_response())
}

/// `GET /events/timeline`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TimelineParams {
    entity_type: Option<String>,
    entity_id: Option<String>,
    related: Option<String>,
    after: Option<String>,
    limit: Option<String>,
    order: Option<String>,
}

pub(crate) async fn timeline(
    State(shared): State<Shared>,
    Query(params): Query<TimelineParams>,
) -> Result<Response, ApiError> {
    let (Some(kind), Some(id)) = (non_empty(&params.entity_type), non_empty(&params.entity_id))
    else {
        return Err(ApiError::bad_request(
            "a timeline needs `entity_type` and `entity_id` (`/events/timeline?entity_type=appointment&entity_id=123`)",
        ));
    };
    let entity = Entity::new(kind, id);
    let related = match params.related.as_deref().map(str::trim) {
        None | Some("false" | "0") => false,
        Some("true" | "1") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`related` is `true` or `false`, not `{other}`"
            )));
        }
    };
    let order = order(params.order.as_deref())?;
    let mut query = TimelineQuery::new(entity.clone())
        .related(related)
        .order(order)
        .limit(limit(params.limit.as_deref())?);
    query.after = cursor("after", params.after.as_deref())?;
    let version = shared.store.stream_version(&entity).await?;
    let page = shared.store.timeline(&query).await?;
    let page = PageOut::of(&page, order);
    Ok(axum::Json(TimelineOut {
        entity: EntityOut::of(&entity),
        related,
        version,
        events: page.events,
        order: page.order,
        next: page.next,
    })
    .into_response())
}

/// `GET /events/stats`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatsParams {
    bucket: Option<String>,
    #[serde(alias = "name")]
    event_name: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

pub(crate) async fn stats(
    State(shared): State<Shared>,
    Query(params): Query<StatsParams>,
) -> Answer {
    let bucket = match params.bucket.as_deref().map(str::trim) {
        None => Bucket::Hour,
        Some(text) => text
            .parse::<Bucket>()
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
    };
    let mut query = StatsQuery::new(bucket);
    for name in names(params.event_name.as_deref())? {
        query = query.name(name);
    }
    let (since, until) = range(params.from.as_deref(), params.to.as_deref())?;
    query.since = since;
    query.until = until;
    let rows = shared.store.stats(&query).await?;
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for row in &rows {
        *totals.entry(row.name.as_str()).or_default() += row.count;
    }
    Ok(axum::Json(json!({
        "bucket": bucket_name(bucket),
        "from": since.map(time::format),
        "to": until.map(time::format),
        "buckets": rows.iter().map(|row| json!({
            "start": time::format(row.start),
            "name": row.name,
            "count": row.count,
        })).collect::<Vec<_>>(),
        "totals": totals,
    })))
}

/// `GET /events/schemas`: no parameter.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoParams {}

pub(crate) async fn schemas(
    State(shared): State<Shared>,
    Query(NoParams {}): Query<NoParams>,
) -> Answer {
    let seen = shared.store.schemas().await?;
    let schemas: Vec<Value> = seen.iter().map(|s| schema_json(&shared, s)).collect();
    Ok(axum::Json(json!({ "schemas": schemas })))
}

fn schema_json(shared: &Shared, seen: &SchemaSeen) -> Value {
    let schema = match &shared.schema_for {
        Some(hook) => hook(&seen.name, seen.version),
        // The registry knows the current version's type only.
        None if seen.version == events_core::store::current_version(&seen.name) => {
            events_core::store::json_schema(&seen.name)
        }
        None => None,
    };
    json!({
        "name": seen.name,
        "version": seen.version,
        "count": seen.count,
        "last_seen": time::format(seen.last_seen),
        "fields": seen.fields(),
        "schema": schema,
    })
}

/// An event as the API shows it: the payload as JSON (copied through as
/// stored, not parsed into a tree), times in RFC 3339.
#[derive(Serialize)]
pub(crate) struct EventOut<'a> {
    position: u64,
    id: EventId,
    name: &'a str,
    version: u32,
    payload: Payload<'a>,
    occurred_at: String,
    metadata: &'a Metadata,
    entity: Option<EntityOut<'a>>,
    entity_version: Option<u64>,
    related: Vec<EntityOut<'a>>,
}

impl<'a> EventOut<'a> {
    pub(crate) fn of(event: &'a StoredEvent) -> EventOut<'a> {
        EventOut {
            position: event.position,
            id: event.id,
            name: &event.name,
            version: event.version,
            payload: Payload::of(&event.payload),
            occurred_at: time::format(event.occurred_at),
            metadata: &event.metadata,
            entity: event.entity.as_ref().map(EntityOut::of),
            entity_version: event.entity_version,
            related: event.related.iter().map(EntityOut::of).collect(),
        }
    }
}

/// A stored payload: JSON, written as it is; text that is not JSON (a
/// store's corrupt row) as a string.
#[derive(Serialize)]
#[serde(untagged)]
enum Payload<'a> {
    Json(&'a RawValue),
    Text(&'a str),
}

impl<'a> Payload<'a> {
    fn of(text: &'a str) -> Payload<'a> {
        match serde_json::from_str::<&RawValue>(text) {
            Ok(raw) => Payload::Json(raw),
            Err(_) => Payload::Text(text),
        }
    }
}

/// An entity as `{"type", "id"}`.
#[derive(Serialize)]
struct EntityOut<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
}

impl<'a> EntityOut<'a> {
    fn of(entity: &'a Entity) -> EntityOut<'a> {
        EntityOut {
            kind: &entity.kind,
            id: &entity.id,
        }
    }
}

/// A page: its events, its order and the cursor of the next one.
#[derive(Serialize)]
struct PageOut<'a> {
    events: Vec<EventOut<'a>>,
    order: &'static str,
    next: Option<u64>,
}

impl<'a> PageOut<'a> {
    fn of(page: &'a EventPage, order: Order) -> PageOut<'a> {
        PageOut {
            events: page.events.iter().map(EventOut::of).collect(),
            order: order_name(order),
            next: page.next,
        }
    }
}

/// One entity's timeline.
#[derive(Serialize)]
struct TimelineOut<'a> {
    entity: EntityOut<'a>,
    related: bool,
    version: u64,
    events: Vec<EventOut<'a>>,
    order: &'static str,
    next: Option<u64>,
}

fn non_empty(text: &Option<String>) -> Option<&str> {
    text.as_deref().map(str::trim).filter(|t| !t.is_empty())
}

/// Names or patterns separated by commas.
fn names(text: Option<&str>) -> Result<Vec<String>, ApiError> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let names: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(long) = names.iter().find(|n| n.len() > 200) {
        return Err(ApiError::bad_request(format!(
            "an event name or pattern is at most 200 bytes, not {}",
            long.len()
        )));
    }
    if names.len() > 50 {
        return Err(ApiError::bad_request(format!(
            "at most 50 event names or patterns, not {}",
            names.len()
        )));
    }
    Ok(names)
}

/// `limit`: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when not given.
pub(crate) fn limit(text: Option<&str>) -> Result<usize, ApiError> {
    match text.map(str::trim) {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "`limit` is a whole number from 1 to {MAX_LIMIT}, not `{text}`"
            ))),
        },
    }
}

/// A position cursor: the `next` of an earlier page.
fn cursor(key: &str, text: Option<&str>) -> Result<Option<u64>, ApiError> {
    match text.map(str::trim) {
        None => Ok(None),
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|&p| i64::try_from(p).is_ok())
            .map(Some)
            .ok_or_else(|| {
            ApiError::bad_request(format!(
                "`{key}` is a position (the `next` of an earlier page, a whole number below 2^63), not `{text}`"
            ))
        }),
    }
}

fn order(text: Option<&str>) -> Result<Order, ApiError> {
    match text.map(str::trim) {
        None => Ok(Order::Asc),
        Some(t) if t.eq_ignore_ascii_case("asc") => Ok(Order::Asc),
        Some(t) if t.eq_ignore_ascii_case("desc") => Ok(Order::Desc),
        Some(other) => Err(ApiError::bad_request(format!(
            "`order` is `asc` (oldest first) or `desc` (newest first), not `{other}`"
        ))),
    }
}

fn order_name(order: Order) -> &'static str {
    match order {
        Order::Asc => "asc",
        Order::Desc => "desc",
    }
}

fn bucket_name(bucket: Bucket) -> &'static str {
    match bucket {
        Bucket::Minute => "minute",
        Bucket::Hour => "hour",
        Bucket::Day => "day",
    }
}

/// One time parameter.
pub(crate) fn time_param(key: &str, text: Option<&str>) -> Result<Option<SystemTime>, ApiError> {
    match text.map(str::trim) {
        None => Ok(None),
        Some(text) => time::parse(text)
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("`{key}`: {e}"))),
    }
}

/// `from` and `to`; a range that ends before it starts is refused.
fn range(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(Option<SystemTime>, Option<SystemTime>), ApiError> {
    let since = time_param("from", from)?;
    let until = time_param("to", to)?;
    if let (Some(since), Some(until)) = (since, until)
        && until < since
    {
        return Err(ApiError::bad_request(format!(
            "the time range ends before it starts: `to` ({}) is earlier than `from` ({})",
            time::format(until),
            time::format(since)
        )));
    }
    Ok((since, until))
}
