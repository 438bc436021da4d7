//! `sqlite://path` as an event store: [`SqliteStore`], the event log on
//! SQLite, on its own file or on the queue's.
//!
//! It runs on the same machinery as the queue ([`crate::thread`]): a writer
//! thread that groups concurrent writes into one `BEGIN IMMEDIATE`
//! transaction, and a reader thread, so no call blocks the async runtime.
//! Opened on a queue ([`SqliteStore::on_queue`], [`SqliteBackend::store`])
//! it shares that queue's two threads and connections, and
//! [`append_with_jobs`](EventStore::append_with_jobs) writes the events and
//! the dispatch's jobs in one transaction.
//!
//! How each operation is served (tables in [`crate::schema`]):
//!
//! - Positions are `events_log.position`, the table's `INTEGER PRIMARY
//!   KEY`, handed out one above the highest position ever handed out (the
//!   highest row's, or the highest a prune deleted, kept in
//!   `events_log_last`): they grow in commit order (one writer at a time
//!   holds the file's write lock) and a pruned position is never handed
//!   out again. (`AUTOINCREMENT` would do the same at the price of a
//!   write of `sqlite_sequence` in every commit.)
//! - An append looks each event's id up in the unique index
//!   `events_log_id` before inserting it (a skipped row of an
//!   `INSERT .. ON CONFLICT DO NOTHING` would still use up a position), and an entity's next version is its stream's
//!   newest row in `events_log_entity` plus one. An append expecting a
//!   version reads it under the write lock, so of concurrent appenders
//!   (threads or processes) exactly one wins.
//! - History (`events`) walks the table by position, the rowid, from the
//!   cursor on: paging is a range scan of the primary key (by
//!   `events_log_entity` when one entity is asked for, by
//!   `events_log_name` for names without `*`).
//! - Name patterns become `GLOB` with `?` and `[` escaped: `*` matches any
//!   run of characters as [`events_core::matches_pattern`] does, `_` and
//!   `%` are themselves, and case counts (SQLite's `LIKE` ignores case).
//! - A timeline is an index range scan of `events_log_entity` (and of
//!   `events_log_related` for related events), whatever the log's size.
//! - Stats are one `GROUP BY` over bucket and name, read from the index
//!   `events_log_time` alone.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use events_core::queue::{Job, Queue, from_millis, millis};
use events_core::store::{
    Appended, Delivery, DeliveryQuery, DeliveryResult, Entity, EventPage, EventQuery, EventStore,
    NewEvent, Order, Prune, SchemaSeen, StatsQuery, StatsRow, StoreError, StoredEvent,
    Subscription, SubscriptionChange, SubscriptionState, TimelineQuery,
};
use events_core::{EventId, Metadata, keys};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use crate::backend::{Db, Failure, insert_jobs};
use crate::{BACKEND, SqliteBackend, SqliteError, SqliteOptions};

/// The event log on SQLite. Open it on its own file with
/// [`SqliteStore::open`], on a queue's with [`SqliteStore::on_queue`] (or
/// [`SqliteBackend::store`]), or by URL with
/// `events::store::Store::open("sqlite://path")`.
///
/// **Atomic with jobs.** [`append_with_jobs`](EventStore::append_with_jobs)
/// writes the events and the jobs in one transaction when the queue given
/// is a [`SqliteBackend`] on the same database file: opened with
/// [`on_queue`](SqliteStore::on_queue) (one connection for both), or
/// opened apart on the same path (the store's connection then writes the
/// jobs too). A crash (even `SIGKILL`) then never leaves an event without
/// its jobs or jobs without their event. For any other queue (memory,
/// Redis, a SQLite queue on another file) it appends, then enqueues, as
/// the trait's default does.
///
/// ```
/// use events_core::store::{EventStore, NewEvent, TimelineQuery};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let store = events_sqlite::SqliteStore::open(dir.path().join("events.sqlite"))?;
/// let event = NewEvent::new("appointment.created", r#"{"appointment_id":7}"#)
///     .entity("appointment:7".parse()?);
/// store.append(vec![event]).await?;
/// let page = store.timeline(&TimelineQuery::new("appointment:7".parse()?)).await?;
/// assert_eq!(page.events[0].entity_version, Some(1));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    db: Arc<Db>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.db.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating, or adding the log's tables to, when needed) the
    /// database at `path`, on threads of its own. It waits for the file to
    /// open: from async code, prefer `events::store::connect`.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, &SqliteOptions::default())
    }

    /// [`open`](SqliteStore::open) with `options` (the `synchronous`
    /// level).
    pub fn open_with(
        path: impl AsRef<Path>,
        options: &SqliteOptions,
    ) -> Result<SqliteStore, StoreError> {
        let db = Db::open(path.as_ref(), options).map_err(|e| StoreError::backend(BACKEND, e))?;
        Ok(SqliteStore { db: Arc::new(db) })
    }

    /// The event log in the queue's own file, on the queue's threads and
    /// connections: appends and enqueues through it are one transaction.
    pub fn on_queue(backend: &SqliteBackend) -> SqliteStore {
        SqliteStore {
            db: backend.db().clone(),
        }
    }

    /// [`on_queue`](SqliteStore::on_queue) for the backend behind `queue`;
    /// an error in words when it is no SQLite queue.
    pub fn for_queue(queue: &Queue) -> Result<SqliteStore, StoreError> {
        sqlite_backend(queue)
            .map(SqliteStore::on_queue)
            .ok_or_else(|| {
                StoreError::Invalid(format!(
                    "the queue `{}` is not a SQLite queue, so no event store can share its file",
                    queue.url()
                ))
            })
    }

    /// The database file, as given.
    pub fn path(&self) -> &str {
        &self.db.path
    }

    /// Whether [`append_with_jobs`](EventStore::append_with_jobs) on
    /// `queue` is one transaction: `queue` is a SQLite queue on this
    /// store's file.
    pub fn shares_file_with(&self, queue: &Queue) -> bool {
        sqlite_backend(queue).is_some_and(|b| self.db.same_file(b.db()))
    }

    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.db
            .write(f)
            .await
            .map_err(|failure| store_error(&self.db.path, failure))
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.db
            .read(f)
            .await
            .map_err(|failure| store_error(&self.db.path, failure))
    }

    /// Appends on the writer: `expect` is the stream and version an
    /// [`append_expecting`](EventStore::append_expecting) expects, `jobs`
    /// what to enqueue in the same transaction.
    async fn append_rows(
        &self,
        events: Vec<NewEvent>,
        expect: Option<(Entity, u64)>,
        jobs: Vec<Job>,
    ) -> Result<Vec<Appended>, StoreError> {
        let rows: Arc<Vec<Prepared>> = Arc::new(events.into_iter().map(Prepared::new).collect());
        let jobs = Arc::new(jobs);
        let (shared_rows, shared_jobs) = (rows.clone(), jobs.clone());
        let result = self
            .write(move |tx| {
                let appended = insert_events(tx, &shared_rows, expect.as_ref())?;
                if appended.is_ok() && !shared_jobs.is_empty() {
                    insert_jobs(tx, &shared_jobs)?;
                }
                Ok(appended)
            })
            .await?;
        // Freed here, on the caller's thread, not on the writer.
        drop((rows, jobs));
        result
    }
}

impl SqliteBackend {
    /// The event log in this queue's file, sharing its threads and
    /// connections: [`SqliteStore::on_queue`].
    pub fn store(&self) -> SqliteStore {
        SqliteStore::on_queue(self)
    }
}

/// The [`SqliteBackend`] behind `queue`, if it is one.
fn sqlite_backend(queue: &Queue) -> Option<&SqliteBackend> {
    queue
        .backend()
        .as_any()
        .and_then(|any| any.downcast_ref::<SqliteBackend>())
}

fn store_error(path: &str, failure: Failure) -> StoreError {
    let error = match failure {
        Failure::Sqlite(source) => SqliteError::Sqlite {
            path: path.to_owned(),
            source,
        },
        Failure::Stopped => SqliteError::Stopped {
            path: path.to_owned(),
        },
    };
    StoreError::backend(BACKEND, error)
}

/// An event as bound to the insert: encoded on the caller's thread, so
/// the writer (which every write waits for) only binds and steps.
struct Prepared {
    id: [u8; 16],
    name: String,
    version: u32,
    payload: String,
    occurred_at: i64,
    metadata: Option<String>,
    actor: Option<String>,
    entity: Option<Entity>,
    related: Vec<Entity>,
    related_json: Option<String>,
}

impl Prepared {
    fn new(event: NewEvent) -> Prepared {
        let related_json = (!event.related.is_empty()).then(|| {
            let list: Vec<String> = event.related.iter().map(Entity::to_string).collect();
            serde_json::Value::from(list).to_string()
        });
        Prepared {
            id: event.id.as_u128().to_be_bytes(),
            actor: event.metadata.get(keys::ACTOR_ID).map(str::to_owned),
            metadata: (!event.metadata.is_empty()).then(|| event.metadata.to_json()),
            name: event.name,
            version: event.version,
            payload: event.payload,
            occurred_at: millis(event.occurred_at),
            entity: event.entity,
            related: event.related,
            related_json,
        }
    }
}

const INSERT_EVENT: &str =
    "INSERT INTO events_log (id, name, version, payload, occurred_at, metadata, entity_type,
                         entity_id, entity_version, related, actor, position)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

/// The highest position handed out: the highest row's, or the highest a
/// prune deleted.
const LAST_POSITION: &str = "SELECT MAX(COALESCE((SELECT MAX(position) FROM events_log), 0),
                COALESCE((SELECT position FROM events_log_last WHERE id = 1), 0))";

fn last_position(connection: &Connection) -> rusqlite::Result<i64> {
    connection
        .prepare_cached(LAST_POSITION)?
        .query_row([], |row| row.get(0))
}

/// The version of a stream: its newest row's, or what pruning recorded
/// when its newest rows went.
const STREAM_VERSION: &str = "SELECT MAX(
        COALESCE((SELECT entity_version FROM events_log WHERE entity_type = ?1 AND entity_id = ?2
                  ORDER BY position DESC LIMIT 1), 0),
        COALESCE((SELECT version FROM events_stream_tails WHERE entity_type = ?1 AND entity_id = ?2), 0))";

fn stream_version(tx: &Connection, entity: &Entity) -> rusqlite::Result<u64> {
    tx.prepare_cached(STREAM_VERSION)?
        .query_row(params![entity.kind, entity.id], |row| row.get::<_, i64>(0))
        .map(|v| u64::try_from(v).unwrap_or(0))
}

/// Inserts `rows` in order (see the module's docs); a conflict with the
/// version `expect`ed comes back as the inner `Err`, with nothing written.
fn insert_events(
    tx: &Connection,
    rows: &[Prepared],
    expect: Option<&(Entity, u64)>,
) -> rusqlite::Result<Result<Vec<Appended>, StoreError>> {
    if let Some((entity, expected)) = expect {
        let actual = stream_version(tx, entity)?;
        if actual != *expected {
            return Ok(Err(StoreError::Conflict {
                entity: entity.clone(),
                expected: *expected,
                actual,
            }));
        }
    }
    let mut versions: HashMap<&Entity, u64> = HashMap::new();
    let mut appended = Vec::with_capacity(rows.len());
    let mut next = last_position(tx)?.saturating_add(1);
    let mut insert = tx.prepare_cached(INSERT_EVENT)?;
    let mut lookup = tx.prepare_cached("SELECT position FROM events_log WHERE id = ?1")?;
    for row in rows {
        let version = match &row.entity {
            Some(entity) => Some(match versions.get(entity) {
                Some(v) => *v + 1,
                None => stream_version(tx, entity)? + 1,
            }),
            None => None,
        };
        // Looked up first, so a skipped event uses up no position.
        let kept: Option<i64> = lookup
            .query_row(params![&row.id[..]], |r| r.get(0))
            .optional()?;
        if let Some(position) = kept {
            // Its id is stored already (or came earlier in this batch).
            appended.push(Appended::new(position as u64, false));
            continue;
        }
        insert.raw_bind_parameter(1, &row.id[..])?;
        insert.raw_bind_parameter(2, &row.name)?;
        insert.raw_bind_parameter(3, row.version)?;
        insert.raw_bind_parameter(4, &row.payload)?;
        insert.raw_bind_parameter(5, row.occurred_at)?;
        insert.raw_bind_parameter(6, &row.metadata)?;
        insert.raw_bind_parameter(7, row.entity.as_ref().map(|e| &e.kind))?;
        insert.raw_bind_parameter(8, row.entity.as_ref().map(|e| &e.id))?;
        insert.raw_bind_parameter(9, version.map(|v| v as i64))?;
        insert.raw_bind_parameter(10, &row.related_json)?;
        insert.raw_bind_parameter(11, &row.actor)?;
        insert.raw_bind_parameter(12, next)?;
        insert.raw_execute()?;
        let position = next;
        next += 1;
        if let (Some(entity), Some(version)) = (&row.entity, version) {
            versions.insert(entity, version);
        }
        if !row.related.is_empty() {
            let mut related = tx.prepare_cached(
                "INSERT INTO events_log_related (entity_type, entity_id, position) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
            )?;
            for entity in &row.related {
                related.execute(params![entity.kind, entity.id, position])?;
            }
        }
        appended.push(Appended::new(position as u64, true));
    }
    Ok(Ok(appended))
}

/// The columns [`event_from_row`] reads, in order.
const EVENT_COLUMNS: &str = "position, id, name, version, payload, occurred_at, metadata, entity_type, entity_id, entity_version, related";

/// The same columns, qualified by the table.
const LOG_COLUMNS: &str = "events_log.position, events_log.id, events_log.name, events_log.version, events_log.payload, events_log.occurred_at, events_log.metadata, events_log.entity_type, events_log.entity_id, events_log.entity_version, events_log.related";

/// One stored event read back; what is wrong with it, in words, when it
/// cannot be.
fn event_from_row(row: &Row<'_>) -> Result<StoredEvent, String> {
    let column = |index: usize| EVENT_COLUMNS.split(", ").nth(index).unwrap_or("?");
    let bad =
        |index: usize, what: &dyn std::fmt::Display| format!("column `{}` {what}", column(index));
    let get = |index: usize| row.get_ref(index).map_err(|e| bad(index, &e));
    let text = |index: usize| -> Result<&str, String> {
        match get(index)? {
            ValueRef::Text(bytes) => std::str::from_utf8(bytes)
                .map_err(|e| bad(index, &format_args!("is not UTF-8: {e}"))),
            other => Err(bad(
                index,
                &format_args!("holds {:?}, not text", other.data_type()),
            )),
        }
    };
    let opt_text = |index: usize| -> Result<Option<&str>, String> {
        match get(index)? {
            ValueRef::Null => Ok(None),
            _ => text(index).map(Some),
        }
    };
    let int = |index: usize| -> Result<i64, String> {
        match get(index)? {
            ValueRef::Integer(n) => Ok(n),
            other => Err(bad(
                index,
                &format_args!("holds {:?}, not an integer", other.data_type()),
            )),
        }
    };
    let position = int(0)?;
    let id = match get(1)? {
        ValueRef::Blob(bytes) if bytes.len() == 16 => {
            let mut bits = [0u8; 16];
            bits.copy_from_slice(bytes);
            EventId::from_u128(u128::from_be_bytes(bits))
        }
        other => {
            return Err(bad(
                1,
                &format_args!("holds {:?}, not 16 bytes", other.data_type()),
            ));
        }
    };
    let version = u32::try_from(int(3)?).map_err(|e| bad(3, &e))?;
    let mut event = NewEvent::new(text(2)?, text(4)?)
        .id(id)
        .version(version)
        .occurred_at(from_millis(int(5)?));
    if let Some(json) = opt_text(6)? {
        event.metadata =
            Metadata::from_json(json).map_err(|e| bad(6, &format_args!("is not metadata: {e}")))?;
    }
    event.entity = match (opt_text(7)?, opt_text(8)?) {
        (Some(kind), Some(id)) => Some(Entity::new(kind, id)),
        _ => None,
    };
    let entity_version = match get(9)? {
        ValueRef::Null => None,
        _ => Some(u64::try_from(int(9)?).map_err(|e| bad(9, &e))?),
    };
    if let Some(json) = opt_text(10)? {
        let list: Vec<String> =
            serde_json::from_str(json).map_err(|e| bad(10, &format_args!("is not a list: {e}")))?;
        event.related = list
            .iter()
            .map(|one| one.parse())
            .collect::<Result<_, _>>()
            .map_err(|e| bad(10, &e))?;
    }
    Ok(StoredEvent::from_parts(
        position as u64,
        event,
        entity_version,
    ))
}

/// Runs `sql` (selecting [`EVENT_COLUMNS`]) with `values`; a row that
/// cannot be read is [`StoreError::Corrupt`], naming its position.
fn select_events(
    connection: &Connection,
    sql: &str,
    values: &[Value],
) -> rusqlite::Result<Result<Vec<StoredEvent>, StoreError>> {
    let mut statement = connection.prepare_cached(sql)?;
    let mut rows = statement.query(params_from_iter(values))?;
    let mut events = Vec::new();
    while let Some(row) = rows.next()? {
        match event_from_row(row) {
            Ok(event) => events.push(event),
            Err(problem) => {
                let position = row.get::<_, i64>(0).unwrap_or(-1);
                return Ok(Err(StoreError::Corrupt(format!(
                    "the event at position {position} cannot be read: {problem}"
                ))));
            }
        }
    }
    Ok(Ok(events))
}

/// A name pattern as a `GLOB` pattern: `*` stays the wildcard, `?` and `[`
/// (GLOB's other wildcards) match themselves.
fn glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    for c in pattern.chars() {
        match c {
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            c => out.push(c),
        }
    }
    out
}

/// Adds the SQL of a list of names or patterns (empty: none), `column`
/// matching any of them.
fn names_filter(
    column: &str,
    names: &[String],
    clauses: &mut Vec<String>,
    values: &mut Vec<Value>,
) {
    if names.is_empty() || names.iter().any(|n| n == "*") {
        return;
    }
    let mut any = Vec::with_capacity(names.len());
    for name in names {
        if name.contains('*') {
            any.push(format!("{column} GLOB ?"));
            values.push(Value::Text(glob(name)));
        } else {
            any.push(format!("{column} = ?"));
            values.push(Value::Text(name.clone()));
        }
    }
    clauses.push(format!("({})", any.join(" OR ")));
}

fn limit(n: usize) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn position(p: u64) -> Value {
    Value::Integer(i64::try_from(p).unwrap_or(i64::MAX))
}

/// The `SELECT` of a history query, and its values.
///
/// A page is read in position order from its cursor on, so its cost is
/// the rows it passes over, never a sort of every match: by the entity
/// index when an entity is asked for, by the name index for one exact
/// name, else along the table itself. Every other term is written
/// `+column`, which keeps SQLite from choosing its index instead (an
/// index on time or on a name range would have it sort every match to
/// find the first page).
fn events_sql(query: &EventQuery) -> (String, Vec<Value>) {
    let mut clauses = Vec::new();
    let mut values = Vec::new();
    let one_name =
        query.entity.is_none() && query.names.len() == 1 && !query.names[0].contains('*');
    let name = if one_name { "name" } else { "+name" };
    names_filter(name, &query.names, &mut clauses, &mut values);
    if let Some(entity) = &query.entity {
        clauses.push("entity_type = ? AND entity_id = ?".to_owned());
        values.push(Value::Text(entity.kind.clone()));
        values.push(Value::Text(entity.id.clone()));
    }
    if let Some(kind) = &query.entity_type {
        clauses.push("+entity_type = ?".to_owned());
        values.push(Value::Text(kind.clone()));
    }
    if let Some(actor) = &query.actor {
        clauses.push("+actor = ?".to_owned());
        values.push(Value::Text(actor.clone()));
    }
    if let Some(since) = query.since {
        clauses.push("+occurred_at >= ?".to_owned());
        values.push(Value::Integer(millis(since)));
    }
    if let Some(until) = query.until {
        clauses.push("+occurred_at < ?".to_owned());
        values.push(Value::Integer(millis(until)));
    }
    if let Some(after) = query.after {
        clauses.push("position > ?".to_owned());
        values.push(position(after));
    }
    if let Some(before) = query.before {
        clauses.push("position < ?".to_owned());
        values.push(position(before));
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    values.push(limit(query.limit));
    (
        format!(
            "SELECT {EVENT_COLUMNS} FROM events_log {filter} ORDER BY position {} LIMIT ?",
            direction(query.order)
        ),
        values,
    )
}

fn direction(order: Order) -> &'static str {
    match order {
        Order::Asc => "ASC",
        Order::Desc => "DESC",
    }
}

/// The `SELECT` of a timeline, and its values: an index range scan of the
/// entity's own events, and with `related` of the related ones, each cut
/// at the page's size before they are merged.
fn timeline_sql(query: &TimelineQuery) -> (String, Vec<Value>) {
    let dir = direction(query.order);
    let cursor = match (query.order, query.after) {
        (_, None) => "",
        (Order::Asc, Some(_)) => "AND position > ?3",
        (Order::Desc, Some(_)) => "AND position < ?3",
    };
    let values = vec![
        Value::Text(query.entity.kind.clone()),
        Value::Text(query.entity.id.clone()),
        position(query.after.unwrap_or(0)),
        limit(query.limit),
    ];
    let own = format!(
        "SELECT position FROM events_log WHERE entity_type = ?1 AND entity_id = ?2 {cursor}
         ORDER BY position {dir} LIMIT ?4"
    );
    let sql = if query.related {
        let related = format!(
            "SELECT position FROM events_log_related WHERE entity_type = ?1 AND entity_id = ?2 {cursor}
             ORDER BY position {dir} LIMIT ?4"
        );
        format!(
            "SELECT {LOG_COLUMNS} FROM events_log
             WHERE position IN (SELECT position FROM ({own}) UNION SELECT position FROM ({related}))
             ORDER BY position {dir} LIMIT ?4"
        )
    } else {
        format!(
            "SELECT {EVENT_COLUMNS} FROM events_log WHERE entity_type = ?1 AND entity_id = ?2 {cursor}
             ORDER BY position {dir} LIMIT ?4"
        )
    };
    (sql, values)
}

const SUBSCRIPTION_COLUMNS: &str = "id, url, event_names, filters, active, secret, description, created_at, consecutive_failures, disabled_reason";

fn subscription_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Subscription, String>> {
    let id: String = row.get(0)?;
    let names: String = row.get(2)?;
    let filters: Option<String> = row.get(3)?;
    let decoded = (|| {
        let names: Vec<String> =
            serde_json::from_str(&names).map_err(|e| format!("its event names: {e}"))?;
        let filters = match filters {
            Some(json) => serde_json::from_str(&json).map_err(|e| format!("its filters: {e}"))?,
            None => Default::default(),
        };
        Ok::<_, String>((names, filters))
    })();
    let (names, filters) = match decoded {
        Ok(both) => both,
        Err(problem) => {
            return Ok(Err(format!(
                "subscription `{id}` cannot be read: {problem}"
            )));
        }
    };
    let mut subscription = Subscription::new(
        id,
        row.get::<_, String>(1)?,
        names,
        row.get::<_, String>(5)?,
    );
    subscription.filters = filters;
    subscription.active = row.get(4)?;
    subscription.description = row.get(6)?;
    subscription.created_at = from_millis(row.get(7)?);
    subscription.consecutive_failures =
        u32::try_from(row.get::<_, i64>(8)?.max(0)).unwrap_or(u32::MAX);
    subscription.disabled_reason = row.get(9)?;
    Ok(Ok(subscription))
}

/// The subscription `id`, read in the transaction `tx`.
fn find_subscription(
    tx: &Connection,
    id: &str,
) -> rusqlite::Result<Option<Result<Subscription, String>>> {
    tx.prepare_cached(&format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM events_subscriptions WHERE id = ?1"
    ))?
    .query_row(params![id], subscription_from_row)
    .optional()
}

/// Writes back every field of `subscription` but its id and creation.
fn save_subscription(tx: &Connection, subscription: &Subscription) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE events_subscriptions SET url = ?2, event_names = ?3, filters = ?4, active = ?5, secret = ?6,
                description = ?7, consecutive_failures = ?8, disabled_reason = ?9
         WHERE id = ?1",
    )?
    .execute(params![
        subscription.id,
        subscription.url,
        names_json(&subscription.event_names),
        filters_json(subscription),
        subscription.active,
        subscription.secret,
        subscription.description,
        subscription.consecutive_failures,
        subscription.disabled_reason,
    ])?;
    Ok(())
}

fn names_json(names: &[String]) -> String {
    serde_json::Value::from(names.to_vec()).to_string()
}

fn filters_json(subscription: &Subscription) -> Option<String> {
    (!subscription.filters.is_empty()).then(|| {
        serde_json::Value::Object(subscription.filters.clone().into_iter().collect()).to_string()
    })
}

const DELIVERY_COLUMNS: &str = "id, webhook_id, subscription_id, event_id, event_name, url, attempt, at, status, latency_ms, response, error, succeeded, replay";

/// One delivery log entry read back, through its serde form (the type has
/// no constructor outside `events-core`).
fn delivery_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Delivery, String>> {
    let id: String = row.get(0)?;
    let json = serde_json::json!({
        "id": id,
        "webhook_id": row.get::<_, String>(1)?,
        "subscription_id": row.get::<_, String>(2)?,
        "event_id": row.get::<_, String>(3)?,
        "event_name": row.get::<_, String>(4)?,
        "url": row.get::<_, String>(5)?,
        "attempt": row.get::<_, i64>(6)?,
        "at": row.get::<_, i64>(7)?.max(0),
        "status": row.get::<_, Option<i64>>(8)?,
        "latency_ms": row.get::<_, i64>(9)?.max(0),
        "response": row.get::<_, Option<String>>(10)?,
        "error": row.get::<_, Option<String>>(11)?,
        "succeeded": row.get::<_, bool>(12)?,
        "replay": row.get::<_, bool>(13)?,
    });
    Ok(serde_json::from_value(json)
        .map_err(|e| format!("delivery log entry `{id}` cannot be read: {e}")))
}

/// Collects rows read leniently: the first that cannot be read is
/// [`StoreError::Corrupt`].
fn collect<T>(
    rows: impl Iterator<Item = rusqlite::Result<Result<T, String>>>,
) -> rusqlite::Result<Result<Vec<T>, StoreError>> {
    let mut out = Vec::new();
    for row in rows {
        match row? {
            Ok(one) => out.push(one),
            Err(problem) => return Ok(Err(StoreError::Corrupt(problem))),
        }
    }
    Ok(Ok(out))
}

fn validate_all(events: &[NewEvent]) -> Result<(), StoreError> {
    events.iter().try_for_each(NewEvent::validate)
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Appended>, StoreError> {
        validate_all(&events)?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.append_rows(events, None, Vec::new()).await
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
        self.append_rows(events, Some((entity.clone(), expected)), Vec::new())
            .await
    }

    /// One transaction for both when `queue` is a SQLite queue on this
    /// store's file (see [`SqliteStore`]); else the events, then the jobs.
    async fn append_with_jobs(
        &self,
        events: Vec<NewEvent>,
        jobs: Vec<Job>,
        queue: &Queue,
    ) -> Result<Vec<Appended>, StoreError> {
        validate_all(&events)?;
        let Some(backend) = sqlite_backend(queue).filter(|b| self.db.same_file(b.db())) else {
            let appended = self.append(events).await?;
            if !jobs.is_empty() {
                queue
                    .backend()
                    .enqueue_many(jobs)
                    .await
                    .map_err(StoreError::Enqueue)?;
            }
            return Ok(appended);
        };
        if let Err(error) = jobs.iter().try_for_each(Job::validate) {
            return Err(StoreError::Invalid(format!(
                "a job of this dispatch cannot be enqueued, so nothing was stored: {error}"
            )));
        }
        let enqueued = !jobs.is_empty();
        let appended = self.append_rows(events, None, jobs).await?;
        if enqueued {
            backend.wake();
        }
        Ok(appended)
    }

    async fn events(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        query.validate()?;
        let (sql, values) = events_sql(query);
        let events = self
            .read(move |connection| select_events(connection, &sql, &values))
            .await??;
        Ok(EventPage::of(events, query))
    }

    async fn event(&self, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events_log WHERE id = ?");
        let values = vec![Value::Blob(id.as_u128().to_be_bytes().to_vec())];
        let events = self
            .read(move |connection| select_events(connection, &sql, &values))
            .await??;
        Ok(events.into_iter().next())
    }

    async fn timeline(&self, query: &TimelineQuery) -> Result<EventPage, StoreError> {
        if query.limit == 0 {
            return Err(StoreError::Invalid("`limit` must be at least 1".into()));
        }
        let (sql, values) = timeline_sql(query);
        let events = self
            .read(move |connection| select_events(connection, &sql, &values))
            .await??;
        let mut page = EventPage::default();
        page.next = (events.len() >= query.limit)
            .then(|| events.last().map(|e| e.position))
            .flatten();
        page.events = events;
        Ok(page)
    }

    async fn stream_version(&self, entity: &Entity) -> Result<u64, StoreError> {
        let entity = entity.clone();
        self.read(move |connection| stream_version(connection, &entity))
            .await
    }

    async fn last_position(&self) -> Result<u64, StoreError> {
        self.read(|connection| last_position(connection).map(|p| u64::try_from(p).unwrap_or(0)))
            .await
    }

    async fn stats(&self, query: &StatsQuery) -> Result<Vec<StatsRow>, StoreError> {
        if let (Some(since), Some(until)) = (query.since, query.until)
            && until < since
        {
            return Err(StoreError::Invalid(
                "the time range ends before it starts (`until` is earlier than `since`)".into(),
            ));
        }
        let mut clauses = Vec::new();
        let mut values = vec![Value::Integer(query.bucket.millis())];
        names_filter("name", &query.names, &mut clauses, &mut values);
        if let Some(since) = query.since {
            clauses.push("occurred_at >= ?".to_owned());
            values.push(Value::Integer(millis(since)));
        }
        if let Some(until) = query.until {
            clauses.push("occurred_at < ?".to_owned());
            values.push(Value::Integer(millis(until)));
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        // `?1` is the width; the bucket of a time before 1970 starts below
        // it too (a Euclidean remainder).
        let sql = format!(
            "SELECT occurred_at - (((occurred_at % ?1) + ?1) % ?1) AS bucket, name, COUNT(*)
             FROM events_log INDEXED BY events_log_time {filter}
             GROUP BY bucket, name ORDER BY bucket, name"
        );
        self.read(move |connection| {
            connection
                .prepare_cached(&sql)?
                .query_map(params_from_iter(&values), |row| {
                    Ok(StatsRow::new(
                        row.get::<_, String>(1)?,
                        from_millis(row.get(0)?),
                        row.get::<_, i64>(2)? as u64,
                    ))
                })?
                .collect()
        })
        .await
    }

    async fn schemas(&self) -> Result<Vec<SchemaSeen>, StoreError> {
        // With one MAX(), SQLite takes the bare columns from the row
        // holding the maximum: the newest of each name and version.
        self.read(|connection| {
            connection
                .prepare_cached(
                    "SELECT name, version, COUNT(*), MAX(position), occurred_at, payload
                     FROM events_log NOT INDEXED GROUP BY name, version ORDER BY name, version",
                )?
                .query_map([], |row| {
                    Ok(SchemaSeen::new(
                        row.get::<_, String>(0)?,
                        u32::try_from(row.get::<_, i64>(1)?).unwrap_or(u32::MAX),
                        row.get::<_, i64>(2)? as u64,
                        from_millis(row.get(4)?),
                        row.get::<_, String>(5)?,
                    ))
                })?
                .collect()
        })
        .await
    }

    async fn prune(&self, prune: &Prune) -> Result<u64, StoreError> {
        let mut clauses = vec!["occurred_at < ?".to_owned()];
        let mut values = vec![Value::Integer(millis(prune.before))];
        names_filter("name", &prune.names, &mut clauses, &mut values);
        let filter = clauses.join(" AND ");
        self.write(move |tx| {
            let values = params_from_iter(&values);
            // Streams keep their versions: what a stream's newest pruned
            // event had is kept beside them.
            tx.prepare_cached(&format!(
                "INSERT INTO events_stream_tails (entity_type, entity_id, version)
                 SELECT * FROM (SELECT entity_type, entity_id, MAX(entity_version) FROM events_log
                                WHERE {filter} AND entity_type IS NOT NULL
                                GROUP BY entity_type, entity_id) WHERE true
                 ON CONFLICT DO UPDATE SET version = MAX(version, excluded.version)"
            ))?
            .execute(values.clone())?;
            // Positions are never handed out twice: the highest stays
            // known should this prune delete its row.
            tx.prepare_cached(
                "INSERT INTO events_log_last (id, position)
                 SELECT 1, p FROM (SELECT MAX(position) AS p FROM events_log) WHERE p IS NOT NULL
                 ON CONFLICT (id) DO UPDATE SET position = MAX(position, excluded.position)",
            )?
            .execute([])?;
            tx.prepare_cached(&format!(
                "DELETE FROM events_log_related WHERE position IN (SELECT position FROM events_log WHERE {filter})"
            ))?
            .execute(values.clone())?;
            let gone = tx
                .prepare_cached(&format!("DELETE FROM events_log WHERE {filter}"))?
                .execute(values)?;
            Ok(gone as u64)
        })
        .await
    }

    async fn checkpoint(&self, projector: &str) -> Result<Option<u64>, StoreError> {
        let projector = projector.to_owned();
        self.read(move |connection| {
            connection
                .prepare_cached("SELECT position FROM events_checkpoints WHERE projector = ?1")?
                .query_row(params![projector], |row| row.get::<_, i64>(0))
                .optional()
                .map(|p| p.map(|p| u64::try_from(p).unwrap_or(0)))
        })
        .await
    }

    async fn save_checkpoint(&self, projector: &str, position: u64) -> Result<(), StoreError> {
        let projector = projector.to_owned();
        let position = i64::try_from(position).map_err(|_| {
            StoreError::Invalid(format!("position {position} is beyond what SQLite stores"))
        })?;
        self.write(move |tx| {
            tx.prepare_cached(
                "INSERT INTO events_checkpoints (projector, position, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (projector) DO UPDATE SET position = excluded.position,
                                                       updated_at = excluded.updated_at",
            )?
            .execute(params![projector, position, millis(SystemTime::now())])?;
            Ok(())
        })
        .await
    }

    async fn clear_checkpoint(&self, projector: &str) -> Result<bool, StoreError> {
        let projector = projector.to_owned();
        self.write(move |tx| {
            tx.prepare_cached("DELETE FROM events_checkpoints WHERE projector = ?1")?
                .execute(params![projector])
                .map(|n| n == 1)
        })
        .await
    }

    async fn create_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let s = subscription.clone();
        self.write(move |tx| {
            let inserted = tx
                .prepare_cached(&format!(
                    "INSERT INTO events_subscriptions ({SUBSCRIPTION_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                     ON CONFLICT (id) DO NOTHING"
                ))?
                .execute(params![
                    s.id,
                    s.url,
                    names_json(&s.event_names),
                    filters_json(&s),
                    s.active,
                    s.secret,
                    s.description,
                    millis(s.created_at),
                    s.consecutive_failures,
                    s.disabled_reason,
                ])?;
            Ok((inserted == 0).then(|| {
                StoreError::Invalid(format!("a subscription with id `{}` exists already", s.id))
            }))
        })
        .await?
        .map_or(Ok(()), Err)
    }

    async fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {SUBSCRIPTION_COLUMNS} FROM events_subscriptions ORDER BY seq"
            ))?;
            collect(statement.query_map([], subscription_from_row)?)
        })
        .await?
    }

    async fn subscription(&self, id: &str) -> Result<Option<Subscription>, StoreError> {
        let id = id.to_owned();
        self.read(move |connection| find_subscription(connection, &id))
            .await?
            .transpose()
            .map_err(StoreError::Corrupt)
    }

    async fn update_subscription(
        &self,
        id: &str,
        change: &SubscriptionChange,
    ) -> Result<Option<Subscription>, StoreError> {
        let (id, change) = (id.to_owned(), change.clone());
        self.write(move |tx| {
            let Some(found) = find_subscription(tx, &id)? else {
                return Ok(Ok(None));
            };
            let mut subscription = match found {
                Ok(s) => s,
                Err(problem) => return Ok(Err(StoreError::Corrupt(problem))),
            };
            change.apply(&mut subscription);
            save_subscription(tx, &subscription)?;
            Ok(Ok(Some(subscription)))
        })
        .await?
    }

    async fn delete_subscription(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            tx.prepare_cached("DELETE FROM events_subscriptions WHERE id = ?1")?
                .execute(params![id])
                .map(|n| n == 1)
        })
        .await
    }

    async fn note_delivery(
        &self,
        id: &str,
        result: &DeliveryResult,
        disable_after: u32,
    ) -> Result<Option<SubscriptionState>, StoreError> {
        let (id, result) = (id.to_owned(), result.clone());
        self.write(move |tx| {
            let Some(found) = find_subscription(tx, &id)? else {
                return Ok(Ok(None));
            };
            let mut subscription = match found {
                Ok(s) => s,
                Err(problem) => return Ok(Err(StoreError::Corrupt(problem))),
            };
            let now = result.apply(&mut subscription, disable_after);
            save_subscription(tx, &subscription)?;
            Ok(Ok(Some(SubscriptionState::of(&subscription, now))))
        })
        .await?
    }

    async fn log_delivery(&self, delivery: &Delivery) -> Result<(), StoreError> {
        let d = delivery.clone();
        self.write(move |tx| {
            tx.prepare_cached(&format!(
                "INSERT INTO events_deliveries ({DELIVERY_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
            ))?
            .execute(params![
                d.id,
                d.webhook_id,
                d.subscription_id,
                d.event_id.to_string(),
                d.event_name,
                d.url,
                d.attempt,
                millis(d.at),
                d.status,
                i64::try_from(d.latency_ms).unwrap_or(i64::MAX),
                d.response,
                d.error,
                d.succeeded,
                d.replay,
            ])?;
            Ok(())
        })
        .await
    }

    async fn deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        let mut clauses = Vec::new();
        let mut values = Vec::new();
        if let Some(id) = &query.subscription_id {
            clauses.push("subscription_id = ?");
            values.push(Value::Text(id.clone()));
        }
        if let Some(id) = query.event_id {
            clauses.push("event_id = ?");
            values.push(Value::Text(id.to_string()));
        }
        if let Some(succeeded) = query.succeeded {
            clauses.push("succeeded = ?");
            values.push(Value::Integer(i64::from(succeeded)));
        }
        if let Some(since) = query.since {
            clauses.push("at >= ?");
            values.push(Value::Integer(millis(since)));
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        values.push(limit(query.limit));
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM events_deliveries {filter} ORDER BY at DESC, seq DESC LIMIT ?"
        );
        self.read(move |connection| {
            let mut statement = connection.prepare_cached(&sql)?;
            collect(statement.query_map(params_from_iter(&values), delivery_from_row)?)
        })
        .await?
    }

    async fn prune_deliveries(&self, before: SystemTime) -> Result<u64, StoreError> {
        let before = millis(before);
        self.write(move |tx| {
            tx.prepare_cached("DELETE FROM events_deliveries WHERE at < ?1")?
                .execute(params![before])
                .map(|n| n as u64)
        })
        .await
    }
}

/// Opens `sqlite://path` as an event store: what the `sqlite` store scheme
/// registers.
pub(crate) fn open_url(url: &str) -> Result<events_core::store::Store, StoreError> {
    let (path, options) = crate::parse_url(url).map_err(|reason| StoreError::BadUrl {
        url: url.to_owned(),
        reason,
    })?;
    let store = SqliteStore::open_with(Path::new(path), &options)?;
    Ok(events_core::store::Store::with_store(url, store))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_keep_only_the_star_as_a_wildcard() {
        assert_eq!(glob("order.*"), "order.*");
        assert_eq!(glob("a?b[c]"), "a[?]b[[]c]");
    }
}
