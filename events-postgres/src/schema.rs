//! The tables, made on first use, and the statements every connection
//! prepares.
//!
//! | table | what it holds |
//! | --- | --- |
//! | `events_log` | one row per event: position, id, name, version, payload (TEXT, as given), occurred-at (ms), metadata (JSONB), actor, entity, entity version, related entities (JSONB) |
//! | `events_log_related` | one row per (related entity, event): the timeline's index of related events |
//! | `events_log_streams` | the version of each entity's stream |
//! | `events_log_head` | one row: the last position given out; appends lock it, so positions follow commit order |
//! | `events_log_checkpoints` | a position per projector |
//! | `events_log_subscriptions` | webhook subscriptions |
//! | `events_log_deliveries` | the webhook delivery log |
//! | `events_log_schema` | one row: the version of this layout |

use events_core::store::StoreError;
use tokio_postgres::{Client, Statement};

use crate::error::PostgresError;
use crate::pool::failure;

/// The layout this build writes.
pub(crate) const VERSION: i32 = 1;

/// Taken (per transaction) while making the tables, so two processes
/// starting at once do not race on `CREATE TABLE IF NOT EXISTS`.
const SCHEMA_LOCK: i64 = 0x6576_656e_7473_0001;

const DDL: &str = r#"
CREATE TABLE IF NOT EXISTS events_log_schema (
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events_log (
    position BIGINT PRIMARY KEY,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    payload TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    metadata JSONB NOT NULL,
    actor_id TEXT,
    entity_type TEXT,
    entity_id TEXT,
    entity_version BIGINT,
    related JSONB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_log_id ON events_log (id);
CREATE UNIQUE INDEX IF NOT EXISTS events_log_stream
    ON events_log (entity_type, entity_id, entity_version) WHERE entity_type IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_log_timeline
    ON events_log (entity_type, entity_id, position) WHERE entity_type IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_log_name ON events_log (name, position);
CREATE INDEX IF NOT EXISTS events_log_actor ON events_log (actor_id, position) WHERE actor_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_log_occurred ON events_log (occurred_at);
CREATE TABLE IF NOT EXISTS events_log_related (
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (entity_type, entity_id, position)
);
CREATE TABLE IF NOT EXISTS events_log_streams (
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (entity_type, entity_id)
);
CREATE TABLE IF NOT EXISTS events_log_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    position BIGINT NOT NULL
);
INSERT INTO events_log_head (id, position) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS events_log_checkpoints (
    projector TEXT PRIMARY KEY,
    position BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS events_log_subscriptions (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    event_names TEXT NOT NULL,
    filters TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    secret TEXT NOT NULL,
    description TEXT,
    created_at BIGINT NOT NULL,
    consecutive_failures INTEGER NOT NULL,
    disabled_reason TEXT
);
CREATE TABLE IF NOT EXISTS events_log_deliveries (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_name TEXT NOT NULL,
    url TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at BIGINT NOT NULL,
    status INTEGER,
    latency_ms BIGINT NOT NULL,
    response TEXT,
    error TEXT,
    succeeded BOOLEAN NOT NULL,
    replay BOOLEAN NOT NULL
);
CREATE INDEX IF NOT EXISTS events_log_deliveries_at ON events_log_deliveries (at, seq);
CREATE INDEX IF NOT EXISTS events_log_deliveries_subscription
    ON events_log_deliveries (subscription_id, at, seq);
CREATE INDEX IF NOT EXISTS events_log_deliveries_event ON events_log_deliveries (event_id);
"#;

/// Makes the tables when they are missing and checks their version.
pub(crate) async fn ensure(client: &Client, target: &str) -> Result<(), StoreError> {
    let fail = |e| failure(target, "making the event store's tables", e);
    let script = format!(
        "BEGIN; SELECT pg_advisory_xact_lock({SCHEMA_LOCK}); {DDL}
         INSERT INTO events_log_schema (version)
             SELECT {VERSION} WHERE NOT EXISTS (SELECT 1 FROM events_log_schema);
         COMMIT;"
    );
    if let Err(e) = client.batch_execute(&script).await {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(fail(e));
    }
    let row = client
        .query_one("SELECT max(version) FROM events_log_schema", &[])
        .await
        .map_err(fail)?;
    let found: Option<i32> = row.get(0);
    match found {
        Some(found) if found > VERSION => Err(PostgresError::NewerSchema {
            target: target.to_owned(),
            found,
            known: VERSION,
        }
        .into()),
        _ => Ok(()),
    }
}

/// The columns of an event, in the order [`crate::store`] reads them.
pub(crate) const EVENT_COLUMNS: &str = "position, id, name, version, payload, occurred_at, \
     metadata::text, entity_type, entity_id, entity_version, related::text";

/// Statements prepared once per connection.
pub(crate) struct Statements {
    pub(crate) lock_head: Statement,
    pub(crate) known_ids: Statement,
    pub(crate) stream_versions: Statement,
    pub(crate) insert_events: Statement,
    pub(crate) insert_related: Statement,
    pub(crate) upsert_streams: Statement,
    pub(crate) set_head: Statement,
}

impl Statements {
    pub(crate) async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        let (
            lock_head,
            known_ids,
            stream_versions,
            insert_events,
            insert_related,
            upsert_streams,
            set_head,
        ) = tokio::try_join!(
            biased;
            client.prepare("SELECT position FROM events_log_head WHERE id = 1 FOR UPDATE"),
            client.prepare("SELECT id, position FROM events_log WHERE id = ANY($1::text[])"),
            client.prepare(
                "SELECT s.entity_type, s.entity_id, s.version FROM events_log_streams s \
                 JOIN UNNEST($1::text[], $2::text[]) AS u(t, i) \
                 ON s.entity_type = u.t AND s.entity_id = u.i"
            ),
            client.prepare(
                "INSERT INTO events_log (position, id, name, version, payload, occurred_at, \
                 metadata, actor_id, entity_type, entity_id, entity_version, related) \
                 SELECT p, i, n, v, pl, at, md::jsonb, ac, et, ei, ev, rel::jsonb FROM UNNEST(\
                 $1::int8[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::int8[], \
                 $7::text[], $8::text[], $9::text[], $10::text[], $11::int8[], $12::text[]) \
                 AS u(p, i, n, v, pl, at, md, ac, et, ei, ev, rel)"
            ),
            client.prepare(
                "INSERT INTO events_log_related (entity_type, entity_id, position) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[]) ON CONFLICT DO NOTHING"
            ),
            client.prepare(
                "INSERT INTO events_log_streams (entity_type, entity_id, version) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[]) \
                 ON CONFLICT (entity_type, entity_id) DO UPDATE SET version = EXCLUDED.version"
            ),
            client.prepare("UPDATE events_log_head SET position = $1 WHERE id = 1"),
        )?;
        Ok(Statements {
            lock_head,
            known_ids,
            stream_versions,
            insert_events,
            insert_related,
            upsert_streams,
            set_head,
        })
    }
}
