//! [`EventStore`] on PostgreSQL: each operation takes a pooled connection,
//! runs within the operation timeout, and gives the connection back only
//! when it is open and outside a transaction.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use async_trait::async_trait;
use events_core::queue::{from_millis, millis};
use events_core::store::{
    Appended, Delivery, DeliveryQuery, DeliveryResult, Entity, EventPage, EventQuery, EventStore,
    NewEvent, Order, Prune, SchemaSeen, StatsQuery, StatsRow, StoreError, StoredEvent,
    Subscription, SubscriptionChange, SubscriptionState, TimelineQuery,
};
use events_core::{EventId, Metadata, keys};
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};

use crate::PostgresStore;
use crate::pool::Conn;
use crate::schema::EVENT_COLUMNS;

/// Runs `$body` (an expression using `$conn: &mut Conn`) on a pooled
/// connection within the operation timeout.
macro_rules! on_conn {
    ($self:ident, $operation:expr, |$conn:ident| $body:expr) => {{
        let operation: &'static str = $operation;
        $self
            .pool
            .timed(operation, async {
                let mut lease = $self.pool.get().await?;
                let result = {
                    let $conn: &mut Conn = &mut lease;
                    $body.await
                };
                lease.finish(result)
            })
            .await
    }};
}

/// A query's text and its typed parameters, sent in one round trip.
#[derive(Default)]
struct Sql {
    text: String,
    params: Vec<(Box<dyn ToSql + Sync + Send>, Type)>,
}

impl Sql {
    fn new(text: &str) -> Sql {
        Sql {
            text: text.to_owned(),
            params: Vec::new(),
        }
    }

    /// Adds a parameter; its placeholder.
    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static, ty: Type) -> String {
        self.params.push((Box::new(value), ty));
        format!("${}", self.params.len())
    }

    fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// `AND (name = $1 OR name LIKE $2 ..)` for names and `*` patterns.
    fn names(&mut self, patterns: &[String]) {
        if patterns.is_empty() {
            return;
        }
        let mut parts = Vec::with_capacity(patterns.len());
        for pattern in patterns {
            if pattern.contains('*') {
                let like = self.bind(like_pattern(pattern), Type::TEXT);
                parts.push(format!("name LIKE {like}"));
            } else {
                let exact = self.bind(pattern.clone(), Type::TEXT);
                parts.push(format!("name = {exact}"));
            }
        }
        self.push(&format!(" AND ({})", parts.join(" OR ")));
    }

    async fn query(&self, conn: &Conn, operation: &'static str) -> Result<Vec<Row>, StoreError> {
        let params: Vec<(&(dyn ToSql + Sync), Type)> = self
            .params
            .iter()
            .map(|(value, ty)| (&**value as &(dyn ToSql + Sync), ty.clone()))
            .collect();
        conn.client
            .query_typed(&self.text, &params)
            .await
            .map_err(conn.fail(operation))
    }
}

/// A name pattern (`*` any run of characters, everything else itself) as
/// a `LIKE` pattern with `\` escaping.
fn like_pattern(pattern: &str) -> String {
    let mut like = String::with_capacity(pattern.len() + 4);
    for c in pattern.chars() {
        match c {
            '*' => like.push('%'),
            '%' | '_' | '\\' => {
                like.push('\\');
                like.push(c);
            }
            c => like.push(c),
        }
    }
    like
}

/// A position or count as PostgreSQL's BIGINT (positions never get near
/// the top; a cursor past it reads as the top).
fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {error}"))
}

fn column<'r, T: tokio_postgres::types::FromSql<'r>>(
    row: &'r Row,
    index: usize,
) -> Result<T, StoreError> {
    row.try_get(index)
        .map_err(|e| corrupt(&format!("column {index} of a stored row"), e))
}

fn unsigned(n: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("{what} {n} is negative")))
}

/// An event row, read in [`EVENT_COLUMNS`] order.
fn decode(row: &Row) -> Result<StoredEvent, StoreError> {
    let position = unsigned(column::<i64>(row, 0)?, "a position")?;
    let id_text: String = column(row, 1)?;
    let id: EventId = id_text
        .parse()
        .map_err(|e| corrupt(&format!("event id `{id_text}` at position {position}"), e))?;
    let name: String = column(row, 2)?;
    let version = u32::try_from(column::<i32>(row, 3)?)
        .map_err(|e| corrupt(&format!("the version at position {position}"), e))?;
    let payload: String = column(row, 4)?;
    let occurred_at = from_millis(column::<i64>(row, 5)?);
    let metadata: Metadata = serde_json::from_str(&column::<String>(row, 6)?)
        .map_err(|e| corrupt(&format!("the metadata at position {position}"), e))?;
    let entity = match (
        column::<Option<String>>(row, 7)?,
        column::<Option<String>>(row, 8)?,
    ) {
        (Some(kind), Some(id)) => Some(Entity::new(kind, id)),
        _ => None,
    };
    let entity_version = column::<Option<i64>>(row, 9)?
        .map(|v| unsigned(v, "an entity version"))
        .transpose()?;
    let related: Vec<Entity> = serde_json::from_str(&column::<String>(row, 10)?)
        .map_err(|e| corrupt(&format!("the related entities at position {position}"), e))?;
    let mut event = NewEvent::new(name, payload)
        .id(id)
        .version(version)
        .occurred_at(occurred_at)
        .metadata(metadata);
    if let Some(entity) = entity {
        event = event.entity(entity);
    }
    event.related = related;
    Ok(StoredEvent::from_parts(position, event, entity_version))
}

fn decode_all(rows: &[Row]) -> Result<Vec<StoredEvent>, StoreError> {
    rows.iter().map(decode).collect()
}

/// One append: lock the head row, learn which ids are stored and where
/// the streams are, then insert, move the streams and the head, commit.
/// Two round trips, each a pipeline of statements.
async fn append_on(
    conn: &mut Conn,
    events: Vec<NewEvent>,
    expecting: Option<(&Entity, u64)>,
) -> Result<Vec<Appended>, StoreError> {
    const OP: &str = "appending events";
    let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    let mut streams_asked: HashSet<&Entity> =
        events.iter().filter_map(|e| e.entity.as_ref()).collect();
    if let Some((entity, _)) = expecting {
        streams_asked.insert(entity);
    }
    let (kinds, entity_ids): (Vec<&str>, Vec<&str>) = streams_asked
        .iter()
        .map(|e| (e.kind.as_str(), e.id.as_str()))
        .unzip();

    conn.in_transaction = true;
    let first = {
        let (client, st) = (&conn.client, &conn.statements);
        let known_params: [&(dyn ToSql + Sync); 1] = [&ids];
        let stream_params: [&(dyn ToSql + Sync); 2] = [&kinds, &entity_ids];
        tokio::try_join!(
            biased;
            client.batch_execute("BEGIN"),
            client.query_one(&st.lock_head, &[]),
            client.query(&st.known_ids, &known_params),
            client.query(&st.stream_versions, &stream_params),
        )
    };
    let (_, head, known, streams) = match first {
        Ok(rows) => rows,
        Err(e) => {
            let error = conn.fail(OP)(e);
            conn.rollback().await;
            return Err(error);
        }
    };
    let plan = plan(&events, &ids, &head, &known, &streams, expecting);
    let plan = match plan {
        Ok(plan) => plan,
        Err(error) => {
            conn.rollback().await;
            return Err(error);
        }
    };
    if plan.head == plan.start {
        // Every id was stored already: nothing to write.
        conn.rollback().await;
        return Ok(plan.appended);
    }
    let second = {
        let (client, st) = (&conn.client, &conn.statements);
        let r = &plan.rows;
        let event_params: [&(dyn ToSql + Sync); 12] = [
            &r.positions,
            &r.ids,
            &r.names,
            &r.versions,
            &r.payloads,
            &r.occurred,
            &r.metadata,
            &r.actors,
            &r.kinds,
            &r.entity_ids,
            &r.entity_versions,
            &r.related,
        ];
        let link_params: [&(dyn ToSql + Sync); 3] = [&plan.links.0, &plan.links.1, &plan.links.2];
        let stream_params: [&(dyn ToSql + Sync); 3] =
            [&plan.streams.0, &plan.streams.1, &plan.streams.2];
        let head_params: [&(dyn ToSql + Sync); 1] = [&plan.head];
        tokio::try_join!(
            biased;
            client.execute(&st.insert_events, &event_params),
            client.execute(&st.insert_related, &link_params),
            client.execute(&st.upsert_streams, &stream_params),
            client.execute(&st.set_head, &head_params),
            client.batch_execute("COMMIT"),
        )
    };
    match second {
        Ok(_) => {
            conn.in_transaction = false;
            Ok(plan.appended)
        }
        Err(e) => {
            let error = conn.fail(OP)(e);
            conn.rollback().await;
            Err(error)
        }
    }
}

/// Rows to insert, column by column.
#[derive(Default)]
struct Rows {
    positions: Vec<i64>,
    ids: Vec<String>,
    names: Vec<String>,
    versions: Vec<i32>,
    payloads: Vec<String>,
    occurred: Vec<i64>,
    metadata: Vec<String>,
    actors: Vec<Option<String>>,
    kinds: Vec<Option<String>>,
    entity_ids: Vec<Option<String>>,
    entity_versions: Vec<Option<i64>>,
    related: Vec<String>,
}

struct Plan {
    start: i64,
    head: i64,
    appended: Vec<Appended>,
    rows: Rows,
    links: (Vec<String>, Vec<String>, Vec<i64>),
    streams: (Vec<String>, Vec<String>, Vec<i64>),
}

/// Positions and stream versions for the new events, under the head lock.
fn plan(
    events: &[NewEvent],
    ids: &[String],
    head: &Row,
    known: &[Row],
    streams: &[Row],
    expecting: Option<(&Entity, u64)>,
) -> Result<Plan, StoreError> {
    let start: i64 = column(head, 0)?;
    let mut positions: HashMap<String, i64> = HashMap::with_capacity(known.len());
    for row in known {
        positions.insert(column(row, 0)?, column(row, 1)?);
    }
    let mut versions: HashMap<Entity, i64> = HashMap::with_capacity(streams.len());
    for row in streams {
        versions.insert(
            Entity::new(column::<String>(row, 0)?, column::<String>(row, 1)?),
            column(row, 2)?,
        );
    }
    if let Some((entity, expected)) = expecting {
        let actual = unsigned(
            versions.get(entity).copied().unwrap_or(0),
            "a stream version",
        )?;
        if actual != expected {
            return Err(StoreError::Conflict {
                entity: entity.clone(),
                expected,
                actual,
            });
        }
    }
    let mut head = start;
    let mut appended = Vec::with_capacity(events.len());
    let mut rows = Rows::default();
    let mut links = (Vec::new(), Vec::new(), Vec::new());
    let mut touched: HashSet<Entity> = HashSet::new();
    for (event, id) in events.iter().zip(ids) {
        if let Some(&position) = positions.get(id) {
            appended.push(Appended::new(unsigned(position, "a position")?, false));
            continue;
        }
        head += 1;
        positions.insert(id.clone(), head);
        appended.push(Appended::new(unsigned(head, "a position")?, true));
        let entity_version = match &event.entity {
            Some(entity) => {
                let version = versions.entry(entity.clone()).or_insert(0);
                if !touched.contains(entity) {
                    touched.insert(entity.clone());
                }
                *version += 1;
                Some(*version)
            }
            None => None,
        };
        let metadata = serde_json::to_string(&event.metadata).map_err(|e| {
            StoreError::Invalid(format!("event `{id}` has metadata that is not JSON: {e}"))
        })?;
        let related = serde_json::to_string(&event.related).map_err(|e| {
            StoreError::Invalid(format!(
                "event `{id}` has related entities that are not JSON: {e}"
            ))
        })?;
        for other in &event.related {
            links.0.push(other.kind.clone());
            links.1.push(other.id.clone());
            links.2.push(head);
        }
        rows.positions.push(head);
        rows.ids.push(id.clone());
        rows.names.push(event.name.clone());
        rows.versions
            .push(i32::try_from(event.version).map_err(|_| {
                StoreError::Invalid(format!(
                    "event `{id}` has version {}, above what the store keeps",
                    event.version
                ))
            })?);
        rows.payloads.push(event.payload.clone());
        rows.occurred.push(millis(event.occurred_at));
        rows.metadata.push(metadata);
        rows.actors
            .push(event.metadata.get(keys::ACTOR_ID).map(str::to_owned));
        rows.kinds
            .push(event.entity.as_ref().map(|e| e.kind.clone()));
        rows.entity_ids
            .push(event.entity.as_ref().map(|e| e.id.clone()));
        rows.entity_versions.push(entity_version);
        rows.related.push(related);
    }
    let mut stream_rows = (Vec::new(), Vec::new(), Vec::new());
    for entity in touched {
        let version = versions.get(&entity).copied().unwrap_or(0);
        stream_rows.0.push(entity.kind);
        stream_rows.1.push(entity.id);
        stream_rows.2.push(version);
    }
    Ok(Plan {
        start,
        head,
        appended,
        rows,
        links,
        streams: stream_rows,
    })
}

fn validate_all(events: &[NewEvent]) -> Result<(), StoreError> {
    events.iter().try_for_each(NewEvent::validate)
}

const SUBSCRIPTION_COLUMNS: &str = "id, url, event_names, filters, active, secret, description, \
     created_at, consecutive_failures, disabled_reason";

fn decode_subscription(row: &Row) -> Result<Subscription, StoreError> {
    let id: String = column(row, 0)?;
    let names: Vec<String> = serde_json::from_str(&column::<String>(row, 2)?)
        .map_err(|e| corrupt(&format!("the event names of subscription `{id}`"), e))?;
    let mut subscription = Subscription::new(
        id.clone(),
        column::<String>(row, 1)?,
        names,
        column::<String>(row, 5)?,
    );
    subscription.filters = serde_json::from_str(&column::<String>(row, 3)?)
        .map_err(|e| corrupt(&format!("the filters of subscription `{id}`"), e))?;
    subscription.active = column(row, 4)?;
    subscription.description = column(row, 6)?;
    subscription.created_at = from_millis(column(row, 7)?);
    subscription.consecutive_failures = u32::try_from(column::<i32>(row, 8)?)
        .map_err(|e| corrupt(&format!("the failure count of subscription `{id}`"), e))?;
    subscription.disabled_reason = column(row, 9)?;
    Ok(subscription)
}

/// Writes every changeable field of `subscription` back.
async fn write_subscription(
    conn: &Conn,
    subscription: &Subscription,
    operation: &'static str,
) -> Result<(), StoreError> {
    let names = serde_json::to_string(&subscription.event_names)
        .map_err(|e| StoreError::Invalid(format!("event names: {e}")))?;
    let filters = serde_json::to_string(&subscription.filters)
        .map_err(|e| StoreError::Invalid(format!("filters: {e}")))?;
    let failures = i32::try_from(subscription.consecutive_failures).unwrap_or(i32::MAX);
    conn.client
        .execute(
            "UPDATE events_log_subscriptions SET url = $2, event_names = $3, filters = $4, \
             active = $5, secret = $6, description = $7, consecutive_failures = $8, \
             disabled_reason = $9 WHERE id = $1",
            &[
                &subscription.id,
                &subscription.url,
                &names,
                &filters,
                &subscription.active,
                &subscription.secret,
                &subscription.description,
                &failures,
                &subscription.disabled_reason,
            ],
        )
        .await
        .map_err(conn.fail(operation))?;
    Ok(())
}

/// Reads a subscription under a row lock, changes it with `change` (the
/// one rule in events-core), writes it back, commits.
async fn change_subscription<T>(
    conn: &mut Conn,
    id: &str,
    operation: &'static str,
    change: impl FnOnce(&mut Subscription) -> T,
) -> Result<Option<(Subscription, T)>, StoreError> {
    conn.begin(operation).await?;
    let result = async {
        let rows = conn
            .client
            .query(
                &format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM events_log_subscriptions WHERE id = $1 FOR UPDATE"
                ),
                &[&id],
            )
            .await
            .map_err(conn.fail(operation))?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let mut subscription = decode_subscription(row)?;
        let out = change(&mut subscription);
        write_subscription(conn, &subscription, operation).await?;
        Ok(Some((subscription, out)))
    }
    .await;
    match result {
        Ok(found) => {
            conn.commit(operation).await?;
            Ok(found)
        }
        Err(error) => {
            conn.rollback().await;
            Err(error)
        }
    }
}

fn decode_delivery(row: &Row) -> Result<Delivery, StoreError> {
    // `Delivery` is built through its serde form, the one way to make one
    // outside events-core.
    let value = serde_json::json!({
        "id": column::<String>(row, 0)?,
        "webhook_id": column::<String>(row, 1)?,
        "subscription_id": column::<String>(row, 2)?,
        "event_id": column::<String>(row, 3)?,
        "event_name": column::<String>(row, 4)?,
        "url": column::<String>(row, 5)?,
        "attempt": column::<i32>(row, 6)?,
        "at": column::<i64>(row, 7)?,
        "status": column::<Option<i32>>(row, 8)?,
        "latency_ms": column::<i64>(row, 9)?,
        "response": column::<Option<String>>(row, 10)?,
        "error": column::<Option<String>>(row, 11)?,
        "succeeded": column::<bool>(row, 12)?,
        "replay": column::<bool>(row, 13)?,
    });
    serde_json::from_value(value).map_err(|e| corrupt("a delivery log entry", e))
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Appended>, StoreError> {
        validate_all(&events)?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        on_conn!(self, "appending events", |conn| append_on(
            conn, events, None
        ))
    }

    async fn append_expecting(
        &self,
        entity: &Entity,
        expected: u64,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Appended>, StoreError> {
        validate_all(&events)?;
        if let Some(other) = events.iter().find(|e| e.entity.as_ref() != Some(entity)) {
            return Err(StoreError::Invalid(format!(
                "event `{}` ({}) is not about `{entity}`: an append expecting a version of one stream takes only that stream's events",
                other.id, other.name
            )));
        }
        on_conn!(self, "appending events", |conn| append_on(
            conn,
            events,
            Some((entity, expected))
        ))
    }

    async fn events(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        query.validate()?;
        let mut sql = Sql::new(&format!(
            "SELECT {EVENT_COLUMNS} FROM events_log WHERE TRUE"
        ));
        sql.names(&query.names);
        if let Some(entity) = &query.entity {
            let kind = sql.bind(entity.kind.clone(), Type::TEXT);
            let id = sql.bind(entity.id.clone(), Type::TEXT);
            sql.push(&format!(" AND entity_type = {kind} AND entity_id = {id}"));
        }
        if let Some(kind) = &query.entity_type {
            let kind = sql.bind(kind.clone(), Type::TEXT);
            sql.push(&format!(" AND entity_type = {kind}"));
        }
        if let Some(actor) = &query.actor {
            let actor = sql.bind(actor.clone(), Type::TEXT);
            sql.push(&format!(" AND actor_id = {actor}"));
        }
        if let Some(since) = query.since {
            let since = sql.bind(millis(since), Type::INT8);
            sql.push(&format!(" AND occurred_at >= {since}"));
        }
        if let Some(until) = query.until {
            let until = sql.bind(millis(until), Type::INT8);
            sql.push(&format!(" AND occurred_at < {until}"));
        }
        if let Some(after) = query.after {
            let after = sql.bind(big(after), Type::INT8);
            sql.push(&format!(" AND position > {after}"));
        }
        if let Some(before) = query.before {
            let before = sql.bind(big(before), Type::INT8);
            sql.push(&format!(" AND position < {before}"));
        }
        let limit = sql.bind(big(query.limit as u64), Type::INT8);
        sql.push(&format!(
            " ORDER BY position {} LIMIT {limit}",
            match query.order {
                Order::Asc => "ASC",
                Order::Desc => "DESC",
            }
        ));
        let rows = on_conn!(self, "reading events", |conn| sql
            .query(conn, "reading events"))?;
        Ok(EventPage::of(decode_all(&rows)?, query))
    }

    async fn event(&self, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
        let mut sql = Sql::new(&format!(
            "SELECT {EVENT_COLUMNS} FROM events_log WHERE id = "
        ));
        let id = sql.bind(id.to_string(), Type::TEXT);
        sql.push(&id);
        let rows = on_conn!(self, "reading an event", |conn| sql
            .query(conn, "reading an event"))?;
        rows.first().map(decode).transpose()
    }

    async fn timeline(&self, query: &TimelineQuery) -> Result<EventPage, StoreError> {
        if query.limit == 0 {
            return Err(StoreError::Invalid("`limit` must be at least 1".into()));
        }
        let (cmp, order, cursor) = match query.order {
            Order::Asc => (">", "ASC", big(query.after.unwrap_or(0))),
            Order::Desc => ("<", "DESC", query.after.map_or(i64::MAX, big)),
        };
        let mut sql = Sql::default();
        let kind = sql.bind(query.entity.kind.clone(), Type::TEXT);
        let id = sql.bind(query.entity.id.clone(), Type::TEXT);
        let cursor = sql.bind(cursor, Type::INT8);
        let limit = sql.bind(big(query.limit as u64), Type::INT8);
        let own = format!(
            "SELECT position FROM events_log WHERE entity_type = {kind} AND entity_id = {id} \
             AND position {cmp} {cursor} ORDER BY position {order} LIMIT {limit}"
        );
        sql.text = if query.related {
            format!(
                "SELECT {EVENT_COLUMNS} FROM events_log WHERE position IN (\
                 SELECT position FROM ({own}) AS own UNION \
                 SELECT position FROM (SELECT position FROM events_log_related \
                 WHERE entity_type = {kind} AND entity_id = {id} AND position {cmp} {cursor} \
                 ORDER BY position {order} LIMIT {limit}) AS related) \
                 ORDER BY position {order} LIMIT {limit}"
            )
        } else {
            format!(
                "SELECT {EVENT_COLUMNS} FROM events_log WHERE entity_type = {kind} \
                 AND entity_id = {id} AND position {cmp} {cursor} \
                 ORDER BY position {order} LIMIT {limit}"
            )
        };
        let rows = on_conn!(self, "reading a timeline", |conn| sql
            .query(conn, "reading a timeline"))?;
        let events = decode_all(&rows)?;
        let next = (events.len() >= query.limit)
            .then(|| events.last().map(|e| e.position))
            .flatten();
        let mut page = EventPage::default();
        page.events = events;
        page.next = next;
        Ok(page)
    }

    async fn stream_version(&self, entity: &Entity) -> Result<u64, StoreError> {
        let mut sql = Sql::default();
        let kind = sql.bind(entity.kind.clone(), Type::TEXT);
        let id = sql.bind(entity.id.clone(), Type::TEXT);
        sql.text = format!(
            "SELECT version FROM events_log_streams WHERE entity_type = {kind} AND entity_id = {id}"
        );
        let rows = on_conn!(self, "reading a stream's version", |conn| sql
            .query(conn, "reading a stream's version"))?;
        match rows.first() {
            Some(row) => unsigned(column(row, 0)?, "a stream version"),
            None => Ok(0),
        }
    }

    async fn last_position(&self) -> Result<u64, StoreError> {
        let sql = Sql::new("SELECT position FROM events_log_head WHERE id = 1");
        let rows = on_conn!(self, "reading the last position", |conn| sql
            .query(conn, "reading the last position"))?;
        match rows.first() {
            Some(row) => unsigned(column(row, 0)?, "the last position"),
            None => Ok(0),
        }
    }

    async fn stats(&self, query: &StatsQuery) -> Result<Vec<StatsRow>, StoreError> {
        let mut sql = Sql::default();
        let width = sql.bind(query.bucket.millis(), Type::INT8);
        sql.text = format!(
            "SELECT name, occurred_at - (((occurred_at % {width}) + {width}) % {width}) AS start, \
             count(*) FROM events_log WHERE TRUE"
        );
        sql.names(&query.names);
        if let Some(since) = query.since {
            let since = sql.bind(millis(since), Type::INT8);
            sql.push(&format!(" AND occurred_at >= {since}"));
        }
        if let Some(until) = query.until {
            let until = sql.bind(millis(until), Type::INT8);
            sql.push(&format!(" AND occurred_at < {until}"));
        }
        sql.push(" GROUP BY 2, 1 ORDER BY start, name COLLATE \"C\"");
        let rows = on_conn!(self, "counting events", |conn| sql
            .query(conn, "counting events"))?;
        rows.iter()
            .map(|row| {
                Ok(StatsRow::new(
                    column::<String>(row, 0)?,
                    from_millis(column(row, 1)?),
                    unsigned(column(row, 2)?, "a count")?,
                ))
            })
            .collect()
    }

    async fn schemas(&self) -> Result<Vec<SchemaSeen>, StoreError> {
        let sql = Sql::new(
            "SELECT g.name, g.version, g.n, e.occurred_at, e.payload FROM (\
             SELECT name, version, count(*) AS n, max(position) AS last FROM events_log \
             GROUP BY name, version) AS g JOIN events_log e ON e.position = g.last \
             ORDER BY g.name COLLATE \"C\", g.version",
        );
        let rows = on_conn!(self, "listing event schemas", |conn| sql
            .query(conn, "listing event schemas"))?;
        rows.iter()
            .map(|row| {
                Ok(SchemaSeen::new(
                    column::<String>(row, 0)?,
                    u32::try_from(column::<i32>(row, 1)?).map_err(|e| corrupt("a version", e))?,
                    unsigned(column(row, 2)?, "a count")?,
                    from_millis(column(row, 3)?),
                    column::<String>(row, 4)?,
                ))
            })
            .collect()
    }

    async fn prune(&self, prune: &Prune) -> Result<u64, StoreError> {
        let mut sql = Sql::default();
        let before = sql.bind(millis(prune.before), Type::INT8);
        sql.text = format!("WITH gone AS (DELETE FROM events_log WHERE occurred_at < {before}");
        sql.names(&prune.names);
        sql.push(
            " RETURNING position), links AS (DELETE FROM events_log_related r USING gone \
             WHERE r.position = gone.position) SELECT count(*) FROM gone",
        );
        let rows = on_conn!(self, "pruning events", |conn| sql
            .query(conn, "pruning events"))?;
        match rows.first() {
            Some(row) => unsigned(column(row, 0)?, "a count"),
            None => Ok(0),
        }
    }

    async fn checkpoint(&self, projector: &str) -> Result<Option<u64>, StoreError> {
        let mut sql = Sql::new("SELECT position FROM events_log_checkpoints WHERE projector = ");
        let p = sql.bind(projector.to_owned(), Type::TEXT);
        sql.push(&p);
        let rows = on_conn!(self, "reading a checkpoint", |conn| sql
            .query(conn, "reading a checkpoint"))?;
        rows.first()
            .map(|row| unsigned(column(row, 0)?, "a checkpoint"))
            .transpose()
    }

    async fn save_checkpoint(&self, projector: &str, position: u64) -> Result<(), StoreError> {
        let position = i64::try_from(position).map_err(|_| {
            StoreError::Invalid(format!(
                "checkpoint {position} of `{projector}` is past any position the store gives out"
            ))
        })?;
        let mut sql = Sql::default();
        let p = sql.bind(projector.to_owned(), Type::TEXT);
        let at = sql.bind(position, Type::INT8);
        let now = sql.bind(millis(SystemTime::now()), Type::INT8);
        sql.text = format!(
            "INSERT INTO events_log_checkpoints (projector, position, updated_at) \
             VALUES ({p}, {at}, {now}) ON CONFLICT (projector) DO UPDATE \
             SET position = EXCLUDED.position, updated_at = EXCLUDED.updated_at"
        );
        on_conn!(self, "saving a checkpoint", |conn| sql
            .query(conn, "saving a checkpoint"))?;
        Ok(())
    }

    async fn clear_checkpoint(&self, projector: &str) -> Result<bool, StoreError> {
        let mut sql = Sql::new("DELETE FROM events_log_checkpoints WHERE projector = ");
        let p = sql.bind(projector.to_owned(), Type::TEXT);
        sql.push(&p);
        sql.push(" RETURNING projector");
        let rows = on_conn!(self, "clearing a checkpoint", |conn| sql
            .query(conn, "clearing a checkpoint"))?;
        Ok(!rows.is_empty())
    }

    async fn create_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let names = serde_json::to_string(&subscription.event_names)
            .map_err(|e| StoreError::Invalid(format!("event names: {e}")))?;
        let filters = serde_json::to_string(&subscription.filters)
            .map_err(|e| StoreError::Invalid(format!("filters: {e}")))?;
        let mut sql = Sql::default();
        let values = [
            sql.bind(subscription.id.clone(), Type::TEXT),
            sql.bind(subscription.url.clone(), Type::TEXT),
            sql.bind(names, Type::TEXT),
            sql.bind(filters, Type::TEXT),
            sql.bind(subscription.active, Type::BOOL),
            sql.bind(subscription.secret.clone(), Type::TEXT),
            sql.bind(subscription.description.clone(), Type::TEXT),
            sql.bind(millis(subscription.created_at), Type::INT8),
            sql.bind(
                i32::try_from(subscription.consecutive_failures).unwrap_or(i32::MAX),
                Type::INT4,
            ),
            sql.bind(subscription.disabled_reason.clone(), Type::TEXT),
        ];
        sql.text = format!(
            "INSERT INTO events_log_subscriptions ({SUBSCRIPTION_COLUMNS}) VALUES ({}) \
             ON CONFLICT (id) DO NOTHING RETURNING id",
            values.join(", ")
        );
        let rows = on_conn!(self, "creating a subscription", |conn| sql
            .query(conn, "creating a subscription"))?;
        if rows.is_empty() {
            return Err(StoreError::Invalid(format!(
                "a subscription with id `{}` exists already",
                subscription.id
            )));
        }
        Ok(())
    }

    async fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        let sql = Sql::new(&format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM events_log_subscriptions ORDER BY seq"
        ));
        let rows = on_conn!(self, "listing subscriptions", |conn| sql
            .query(conn, "listing subscriptions"))?;
        rows.iter().map(decode_subscription).collect()
    }

    async fn subscription(&self, id: &str) -> Result<Option<Subscription>, StoreError> {
        let mut sql = Sql::new(&format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM events_log_subscriptions WHERE id = "
        ));
        let p = sql.bind(id.to_owned(), Type::TEXT);
        sql.push(&p);
        let rows = on_conn!(self, "reading a subscription", |conn| sql
            .query(conn, "reading a subscription"))?;
        rows.first().map(decode_subscription).transpose()
    }

    async fn update_subscription(
        &self,
        id: &str,
        change: &SubscriptionChange,
    ) -> Result<Option<Subscription>, StoreError> {
        let changed = on_conn!(self, "changing a subscription", |conn| change_subscription(
            conn,
            id,
            "changing a subscription",
            |s| change.apply(s)
        ))?;
        Ok(changed.map(|(subscription, ())| subscription))
    }

    async fn delete_subscription(&self, id: &str) -> Result<bool, StoreError> {
        let mut sql = Sql::new("DELETE FROM events_log_subscriptions WHERE id = ");
        let p = sql.bind(id.to_owned(), Type::TEXT);
        sql.push(&p);
        sql.push(" RETURNING id");
        let rows = on_conn!(self, "deleting a subscription", |conn| sql
            .query(conn, "deleting a subscription"))?;
        Ok(!rows.is_empty())
    }

    async fn note_delivery(
        &self,
        id: &str,
        result: &DeliveryResult,
        disable_after: u32,
    ) -> Result<Option<SubscriptionState>, StoreError> {
        let noted = on_conn!(self, "counting a delivery", |conn| change_subscription(
            conn,
            id,
            "counting a delivery",
            |s| result.apply(s, disable_after)
        ))?;
        Ok(noted.map(|(subscription, now)| SubscriptionState::of(&subscription, now)))
    }

    async fn log_delivery(&self, delivery: &Delivery) -> Result<(), StoreError> {
        let mut sql = Sql::default();
        let values = [
            sql.bind(delivery.id.clone(), Type::TEXT),
            sql.bind(delivery.webhook_id.clone(), Type::TEXT),
            sql.bind(delivery.subscription_id.clone(), Type::TEXT),
            sql.bind(delivery.event_id.to_string(), Type::TEXT),
            sql.bind(delivery.event_name.clone(), Type::TEXT),
            sql.bind(delivery.url.clone(), Type::TEXT),
            sql.bind(
                i32::try_from(delivery.attempt).unwrap_or(i32::MAX),
                Type::INT4,
            ),
            sql.bind(millis(delivery.at), Type::INT8),
            sql.bind(delivery.status.map(i32::from), Type::INT4),
            sql.bind(big(delivery.latency_ms), Type::INT8),
            sql.bind(delivery.response.clone(), Type::TEXT),
            sql.bind(delivery.error.clone(), Type::TEXT),
            sql.bind(delivery.succeeded, Type::BOOL),
            sql.bind(delivery.replay, Type::BOOL),
        ];
        sql.text = format!(
            "INSERT INTO events_log_deliveries ({DELIVERY_COLUMNS}) VALUES ({})",
            values.join(", ")
        );
        on_conn!(self, "logging a delivery", |conn| sql
            .query(conn, "logging a delivery"))?;
        Ok(())
    }

    async fn deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        let mut sql = Sql::new(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM events_log_deliveries WHERE TRUE"
        ));
        if let Some(id) = &query.subscription_id {
            let id = sql.bind(id.clone(), Type::TEXT);
            sql.push(&format!(" AND subscription_id = {id}"));
        }
        if let Some(id) = query.event_id {
            let id = sql.bind(id.to_string(), Type::TEXT);
            sql.push(&format!(" AND event_id = {id}"));
        }
        if let Some(succeeded) = query.succeeded {
            let succeeded = sql.bind(succeeded, Type::BOOL);
            sql.push(&format!(" AND succeeded = {succeeded}"));
        }
        if let Some(since) = query.since {
            let since = sql.bind(millis(since), Type::INT8);
            sql.push(&format!(" AND at >= {since}"));
        }
        let limit = sql.bind(big(query.limit as u64), Type::INT8);
        sql.push(&format!(" ORDER BY at DESC, seq DESC LIMIT {limit}"));
        let rows = on_conn!(self, "reading the delivery log", |conn| sql
            .query(conn, "reading the delivery log"))?;
        rows.iter().map(decode_delivery).collect()
    }

    async fn prune_deliveries(&self, before: SystemTime) -> Result<u64, StoreError> {
        let mut sql = Sql::new("WITH gone AS (DELETE FROM events_log_deliveries WHERE at < ");
        let at = sql.bind(millis(before), Type::INT8);
        sql.push(&at);
        sql.push(" RETURNING 1) SELECT count(*) FROM gone");
        let rows = on_conn!(self, "pruning the delivery log", |conn| sql
            .query(conn, "pruning the delivery log"))?;
        match rows.first() {
            Some(row) => unsigned(column(row, 0)?, "a count"),
            None => Ok(0),
        }
    }
}

const DELIVERY_COLUMNS: &str = "id, webhook_id, subscription_id, event_id, event_name, url, \
     attempt, at, status, latency_ms, response, error, succeeded, replay";

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn patterns_become_like_patterns_with_sql_wildcards_escaped() {
        assert_eq!(like_pattern("appointment.*"), "appointment.%");
        assert_eq!(like_pattern("user_logged*"), "user\\_logged%");
        assert_eq!(like_pattern("100%*"), "100\\%%");
        assert_eq!(like_pattern("a\\b"), "a\\\\b");
    }
}
