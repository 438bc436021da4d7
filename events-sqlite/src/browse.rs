//! Listing the jobs a file holds, for dashboards: [`Backend::jobs`] and
//! [`Backend::job`] on the reader thread.
//!
//! A job's listed time ([`JobView::at`]) is `ready_at` for every row of
//! `events_jobs`: a waiting job's `available_at`, a claimed one's lease end.
//! So a state is a range of `ready_at` at the time of the read: ready is
//! `ready_at <= now` (a due job, or a claimed one whose lease lapsed),
//! delayed `reserved = 0 AND ready_at > now`, reserved `reserved = 1 AND
//! ready_at > now`. Failed jobs sort by `failed_at`.
//!
//! Without a search, every filter is an index range: `events_jobs_due`
//! (`queue, ready_at, reserved`, the claim's index) and
//! `events_failed_jobs_at` (`queue, failed_at`). A listing over every
//! queue is run queue by queue (each an ordered index range, cut at
//! `offset + limit`) and merged here: one ordered range over all queues
//! would need a `ready_at` index that every enqueue and claim would pay
//! for. Counts read the same index entries and no row; an unfiltered count
//! is SQLite's count of a whole index.
//!
//! A search must read rows (no index finds a substring): it reads the
//! newest [`SEARCHED_ROWS`] rows of each table at most (by `seq`: jobs by
//! when they were stored, failed jobs by when they failed), in one pass
//! that counts the matches and keeps the keys of the page, and says so in
//! [`JobPage::searched`] when a table held more. It matches with `LIKE`,
//! which ignores the case of ASCII letters only, as [`JobQuery::search`]
//! asks; `%`, `_` and `\` in the text are escaped.
//!
//! [`Backend::jobs`]: events_core::queue::Backend::jobs
//! [`Backend::job`]: events_core::queue::Backend::job

use std::time::{SystemTime, UNIX_EPOCH};

use events_core::queue::{Job, JobPage, JobQuery, JobState, JobView, Order, from_millis, millis};
use rusqlite::types::ToSql;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::backend::{
    FAILED_COLUMNS, JOB_COLUMNS, failed_from_row, job_from_row_at, lossy_count, lossy_int,
    lossy_text, unreadable,
};
use crate::schema::{envelope, legacy_envelope};

/// The columns of a listed job row: [`JOB_COLUMNS`], then `reserved` and
/// `ready_at`.
fn listed_columns() -> String {
    format!("{JOB_COLUMNS}, reserved, ready_at")
}

/// Named values for a statement's parameters.
type Values<'a> = Vec<(&'static str, Box<dyn ToSql + 'a>)>;

/// Where a listing runs: the jobs table or the failed store.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Table {
    Jobs,
    Failed,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Jobs => "events_jobs",
            Table::Failed => "events_failed_jobs",
        }
    }
}

/// What one statement of a listing filters by, besides its table's state
/// condition.
struct Filters<'q> {
    queue: Option<&'q str>,
    since: Option<i64>,
    pattern: Option<String>,
    /// With a search: only rows with a `seq` above this (the newest
    /// [`SEARCHED_ROWS`]).
    floor: Option<i64>,
    now: i64,
}

impl Filters<'_> {
    /// The `AND ..` terms for `table` (the state's excluded) and the values
    /// they name.
    fn terms(&self, table: Table) -> (String, Values<'_>) {
        let mut sql = String::new();
        let mut values: Values<'_> = Vec::new();
        // A search reads its rows in `seq` order, newest first: a `+`
        // keeps SQLite from reading them through an index instead.
        let plus = if self.pattern.is_some() { "+" } else { "" };
        if let Some(queue) = self.queue {
            sql.push_str(&format!(" AND {plus}queue = :queue"));
            values.push((":queue", Box::new(queue)));
        }
        if let Some(since) = self.since {
            sql.push_str(&match table {
                Table::Jobs => format!(" AND {plus}ready_at >= :since"),
                Table::Failed => format!(" AND {plus}failed_at >= :since"),
            });
            values.push((":since", Box::new(since)));
        }
        if let Some(floor) = self.floor {
            sql.push_str(" AND seq > :floor");
            values.push((":floor", Box::new(floor)));
        }
        if let Some(pattern) = &self.pattern {
            sql.push_str(
                " AND (id LIKE :pattern ESCAPE '\\' OR listener LIKE :pattern ESCAPE '\\'
                       OR event LIKE :pattern ESCAPE '\\' OR payload LIKE :pattern ESCAPE '\\')",
            );
            values.push((":pattern", Box::new(pattern.as_str())));
        }
        (sql, values)
    }
}

/// The states of `events_jobs` a query wants, as a condition on its row
/// (`None`: every row); `:now` is the time of the read.
fn state_condition(ready: bool, delayed: bool, reserved: bool) -> Option<&'static str> {
    match (ready, delayed, reserved) {
        (true, true, true) => None,
        (true, false, false) => Some("ready_at <= :now"),
        (false, true, false) => Some("reserved = 0 AND ready_at > :now"),
        (false, false, true) => Some("reserved = 1 AND ready_at > :now"),
        (true, true, false) => Some("(ready_at <= :now OR reserved = 0)"),
        (true, false, true) => Some("(ready_at <= :now OR reserved = 1)"),
        (false, true, true) => Some("ready_at > :now"),
        (false, false, false) => Some("0"),
    }
}

/// Runs `sql` with the named `values` (only those it names) and `:now`.
fn count(
    connection: &Connection,
    sql: &str,
    values: &[(&'static str, Box<dyn ToSql + '_>)],
    now: i64,
) -> rusqlite::Result<usize> {
    let mut statement = connection.prepare_cached(sql)?;
    bind(&mut statement, values, now)?;
    let mut rows = statement.raw_query();
    let n: i64 = match rows.next()? {
        Some(row) => row.get(0)?,
        None => 0,
    };
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Binds the `values` the statement names, and `:now` when it names it.
fn bind(
    statement: &mut rusqlite::CachedStatement<'_>,
    values: &[(&'static str, Box<dyn ToSql + '_>)],
    now: i64,
) -> rusqlite::Result<()> {
    statement.clear_bindings();
    if let Some(index) = statement.parameter_index(":now")? {
        statement.raw_bind_parameter(index, now)?;
    }
    for (name, value) in values {
        if let Some(index) = statement.parameter_index(name)? {
            statement.raw_bind_parameter(index, value)?;
        }
    }
    Ok(())
}

/// How many rows of `events_jobs` in the states asked match `filters`
/// (which search nothing), from `events_jobs_due` alone: the state is its
/// `ready_at` and `reserved`.
fn count_jobs(
    connection: &Connection,
    filters: &Filters<'_>,
    (ready, delayed, reserved): (bool, bool, bool),
) -> rusqlite::Result<usize> {
    let (terms, values) = filters.terms(Table::Jobs);
    let now = filters.now;
    let range = |condition: &str| {
        count(
            connection,
            &format!("SELECT COUNT(*) FROM events_jobs WHERE {condition}{terms}"),
            &values,
            now,
        )
    };
    match state_condition(ready, delayed, reserved) {
        Some(condition) => range(condition),
        None => range("1"),
    }
}

/// The first `n` rows of `table` in the states asked that match
/// `filters`, in `order` by their listed time then id.
fn page_of(
    connection: &Connection,
    table: Table,
    filters: &Filters<'_>,
    states: (bool, bool, bool),
    order: Order,
    n: usize,
) -> rusqlite::Result<Vec<JobView>> {
    let (terms, values) = filters.terms(table);
    let way = match order {
        Order::Oldest => "ASC",
        _ => "DESC",
    };
    let sql = match table {
        Table::Jobs => {
            let condition = state_condition(states.0, states.1, states.2).unwrap_or("1");
            format!(
                "SELECT {} FROM events_jobs WHERE {condition}{terms}
                 ORDER BY ready_at {way}, id {way} LIMIT :n",
                listed_columns()
            )
        }
        Table::Failed => format!(
            "SELECT {FAILED_COLUMNS} FROM events_failed_jobs WHERE 1{terms}
             ORDER BY failed_at {way}, id {way} LIMIT :n"
        ),
    };
    let mut statement = connection.prepare_cached(&sql)?;
    bind(&mut statement, &values, filters.now)?;
    if let Some(index) = statement.parameter_index(":n")? {
        statement.raw_bind_parameter(index, i64::try_from(n).unwrap_or(i64::MAX))?;
    }
    let mut rows = statement.raw_query();
    let mut views = Vec::new();
    while let Some(row) = rows.next()? {
        views.push(match table {
            Table::Jobs => view_from_row(row, filters.now)?,
            Table::Failed => JobView::failed(failed_from_row(row)?),
        });
    }
    Ok(views)
}

/// A listed row of `events_jobs` (in [`listed_columns`] order) as it
/// stands at `now`. A row that cannot be read as a job is listed as far as
/// it can be read, its `error` saying why it cannot run (the next claim
/// that reaches it moves it to the failed store with these words): one bad
/// row never fails a listing.
fn view_from_row(row: &Row<'_>, now: i64) -> rusqlite::Result<JobView> {
    let reserved = lossy_int(row, 13)? != 0;
    let ready_at = lossy_int(row, 14)?;
    let job = match job_from_row_at(row, 0) {
        Ok(job) => job,
        Err(error) => lenient_job(row, unreadable(&error))?,
    };
    let state = match (ready_at <= now, reserved) {
        (true, _) => JobState::Ready,
        (false, false) => JobState::Delayed,
        (false, true) => JobState::Reserved,
    };
    let mut view = JobView::waiting(job, state);
    // The time it is listed and sorted by: when a waiting job is due (its
    // `available_at`), when a claimed one's lease ends.
    view.available_at = from_millis(ready_at);
    Ok(view)
}

/// A job row read leniently (text made valid, numbers that are not read
/// as 0), with `reason` as its error.
fn lenient_job(row: &Row<'_>, reason: String) -> rusqlite::Result<Job> {
    let id = lossy_text(row, 0)?;
    let first_enqueued_at = lossy_int(row, 8)?;
    let envelope = envelope(row, 10, &id, first_enqueued_at)
        .unwrap_or_else(|_| legacy_envelope(&id, first_enqueued_at));
    let mut job = Job::from_parts(
        id,
        lossy_text(row, 1)?,
        lossy_text(row, 2)?,
        lossy_text(row, 3)?,
        lossy_text(row, 4)?,
        envelope,
    );
    job.attempt = lossy_count(row, 5)?;
    job.max_tries = lossy_count(row, 6)?.max(1);
    job.available_at = from_millis(lossy_int(row, 7)?);
    job.first_enqueued_at = from_millis(first_enqueued_at);
    job.last_error = Some(reason);
    Ok(job)
}

/// How many of the newest rows of each table (waiting and claimed jobs;
/// failed jobs) a search looks through at most; a page that stopped there
/// says so in [`JobPage::searched`]. A search matches every row it reads
/// (no index finds a substring), about 0.5 µs a row on the machine of
/// BENCHMARKS.md ("Issue 14: dashboard queries on SQLite"): both tables
/// in about 25 ms, where all of 1,000,000 jobs took 0.5 s or more.
pub const SEARCHED_ROWS: usize = 25_000;

/// The `seq` above which the newest [`SEARCHED_ROWS`] rows of `table` lie,
/// or `None` when it holds no more than that.
fn search_floor(connection: &Connection, table: Table) -> rusqlite::Result<Option<i64>> {
    connection
        .prepare_cached(&format!(
            "SELECT seq FROM {} ORDER BY seq DESC LIMIT 1 OFFSET ?1",
            table.name()
        ))?
        .query_row(params![SEARCHED_ROWS as i64], |row| row.get(0))
        .optional()
}

/// The rows of `table` in the states asked that match `filters` (which
/// search), as (time, id, seq): all of them, for the total, in one pass
/// reading three columns a match.
fn search_keys(
    connection: &Connection,
    table: Table,
    filters: &Filters<'_>,
    states: (bool, bool, bool),
) -> rusqlite::Result<Vec<(i64, String, i64)>> {
    let (terms, values) = filters.terms(table);
    let sql = match table {
        Table::Jobs => {
            let condition = state_condition(states.0, states.1, states.2)
                .unwrap_or("1")
                .replace("ready_at", "+ready_at");
            format!("SELECT ready_at, id, seq FROM events_jobs WHERE {condition}{terms}")
        }
        Table::Failed => {
            format!("SELECT failed_at, id, seq FROM events_failed_jobs WHERE 1{terms}")
        }
    };
    let mut statement = connection.prepare_cached(&sql)?;
    bind(&mut statement, &values, filters.now)?;
    let mut rows = statement.raw_query();
    let mut keys = Vec::new();
    while let Some(row) = rows.next()? {
        keys.push((lossy_int(row, 0)?, lossy_text(row, 1)?, lossy_int(row, 2)?));
    }
    Ok(keys)
}

/// The row `seq` of `table` as listed at `now`.
fn view_by_seq(
    connection: &Connection,
    table: Table,
    seq: i64,
    now: i64,
) -> rusqlite::Result<Option<JobView>> {
    match table {
        Table::Jobs => connection
            .prepare_cached(&format!(
                "SELECT {} FROM events_jobs WHERE seq = ?1",
                listed_columns()
            ))?
            .query_row(params![seq], |row| view_from_row(row, now))
            .optional(),
        Table::Failed => connection
            .prepare_cached(&format!(
                "SELECT {FAILED_COLUMNS} FROM events_failed_jobs WHERE seq = ?1"
            ))?
            .query_row(params![seq], |row| {
                failed_from_row(row).map(JobView::failed)
            })
            .optional(),
    }
}

/// The queues `table` holds, in order, each found with one index lookup
/// (a loose scan of its `queue`-first index).
fn queues_of(connection: &Connection, table: Table) -> rusqlite::Result<Vec<String>> {
    let name = table.name();
    let mut first = connection.prepare_cached(&format!("SELECT MIN(queue) FROM {name}"))?;
    let mut next =
        connection.prepare_cached(&format!("SELECT MIN(queue) FROM {name} WHERE queue > ?1"))?;
    let mut queues = Vec::new();
    let mut at: Option<String> = first.query_row([], |row| row.get(0))?;
    while let Some(queue) = at {
        at = next.query_row(params![queue], |row| row.get(0))?;
        queues.push(queue);
    }
    Ok(queues)
}

/// `text` as a `LIKE` pattern matching it anywhere, its `%`, `_` and `\`
/// escaped (with `ESCAPE '\'`).
pub(crate) fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Milliseconds since the epoch, rounded up: a stored time (whole
/// milliseconds) is at or after `at` exactly when it is at or after this.
fn millis_up(at: SystemTime) -> i64 {
    let ms = millis(at);
    let exact = at
        .duration_since(UNIX_EPOCH)
        .is_ok_and(|d| d.subsec_nanos() % 1_000_000 == 0);
    if exact { ms } else { ms.saturating_add(1) }
}

/// The page `query` asks for, read in one read transaction (its total and
/// its jobs agree), at `now`.
pub(crate) fn jobs(
    connection: &Connection,
    query: &JobQuery,
    now: SystemTime,
) -> rusqlite::Result<JobPage> {
    connection.execute_batch("BEGIN")?;
    let result = jobs_in_snapshot(connection, query, millis(now));
    let _ = connection.execute_batch(if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
    result
}

fn jobs_in_snapshot(
    connection: &Connection,
    query: &JobQuery,
    now: i64,
) -> rusqlite::Result<JobPage> {
    let states = (
        query.wants(JobState::Ready),
        query.wants(JobState::Delayed),
        query.wants(JobState::Reserved),
    );
    let every_job_state = states.0 && states.1 && states.2;
    let any_job = states.0 || states.1 || states.2;
    let failed = query.wants(JobState::Failed);
    let wanted = query.offset.saturating_add(query.limit);
    let since = query.since.map(millis_up);
    let mut total = 0;
    let mut cut = false;
    let mut views = Vec::new();
    for (table, wants) in [(Table::Jobs, any_job), (Table::Failed, failed)] {
        if !wants {
            continue;
        }
        if let Some(text) = query.search.as_deref() {
            let floor = search_floor(connection, table)?;
            cut |= floor.is_some();
            let filters = Filters {
                queue: query.queue.as_deref(),
                since,
                pattern: Some(like_pattern(text)),
                floor,
                now,
            };
            let mut keys = search_keys(connection, table, &filters, states)?;
            total += keys.len();
            keys.sort_by(|a, b| {
                let by_time = (a.0, &a.1).cmp(&(b.0, &b.1));
                match query.order {
                    Order::Oldest => by_time,
                    _ => by_time.reverse(),
                }
            });
            for (_, _, seq) in keys.into_iter().take(wanted) {
                views.extend(view_by_seq(connection, table, seq, now)?);
            }
            continue;
        }
        // Every row of the table, of every queue: SQLite counts the pages
        // of its smallest index rather than the rows of a range.
        let counted =
            query.queue.is_none() && since.is_none() && (table == Table::Failed || every_job_state);
        if counted {
            total += count(
                connection,
                &format!("SELECT COUNT(*) FROM {}", table.name()),
                &[],
                now,
            )?;
        }
        let queues: Vec<Option<String>> = match &query.queue {
            Some(queue) => vec![Some(queue.clone())],
            None => queues_of(connection, table)?
                .into_iter()
                .map(Some)
                .collect(),
        };
        for queue in &queues {
            let filters = Filters {
                queue: queue.as_deref(),
                since,
                pattern: None,
                floor: None,
                now,
            };
            if !counted {
                total += match table {
                    Table::Jobs => count_jobs(connection, &filters, states)?,
                    Table::Failed => {
                        let (terms, values) = filters.terms(Table::Failed);
                        count(
                            connection,
                            &format!("SELECT COUNT(*) FROM events_failed_jobs WHERE 1{terms}"),
                            &values,
                            now,
                        )?
                    }
                };
            }
            if wanted > 0 {
                views.extend(page_of(
                    connection,
                    table,
                    &filters,
                    states,
                    query.order,
                    wanted,
                )?);
            }
        }
    }
    views.sort_by(|a, b| {
        let by_time = (a.at(), &a.id).cmp(&(b.at(), &b.id));
        match query.order {
            Order::Oldest => by_time,
            _ => by_time.reverse(),
        }
    });
    let jobs = views
        .into_iter()
        .skip(query.offset)
        .take(query.limit)
        .collect();
    let page = JobPage::new(total, jobs);
    Ok(if cut {
        page.searched_only(SEARCHED_ROWS)
    } else {
        page
    })
}

/// The job `id` in either table, by the unique index on `id` of each.
pub(crate) fn job(
    connection: &Connection,
    id: &str,
    now: SystemTime,
) -> rusqlite::Result<Option<JobView>> {
    let now = millis(now);
    connection.execute_batch("BEGIN")?;
    let result = (|| {
        let waiting = connection
            .prepare_cached(&format!(
                "SELECT {} FROM events_jobs WHERE id = ?1",
                listed_columns()
            ))?
            .query_row(params![id], |row| view_from_row(row, now))
            .optional()?;
        if waiting.is_some() {
            return Ok(waiting);
        }
        connection
            .prepare_cached(&format!(
                "SELECT {FAILED_COLUMNS} FROM events_failed_jobs WHERE id = ?1"
            ))?
            .query_row(params![id], |row| failed_from_row(row).map(JobView::failed))
            .optional()
    })();
    let _ = connection.execute_batch(if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
        assert_eq!(like_pattern(""), "%%");
    }

    #[test]
    fn times_round_up_to_the_millisecond() {
        let at = UNIX_EPOCH + std::time::Duration::from_micros(1_500);
        assert_eq!(millis_up(at), 2);
        assert_eq!(
            millis_up(UNIX_EPOCH + std::time::Duration::from_millis(7)),
            7
        );
    }
}
