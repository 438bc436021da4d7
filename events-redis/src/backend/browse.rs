//! Listing jobs ([`Backend::jobs`](events_core::queue::Backend::jobs)) and
//! finding one ([`Backend::job`](events_core::queue::Backend::job)),
//! reading only, in bounded steps.
//!
//! Without a search, the sorted sets answer by score: `ZCOUNT` gives each
//! range's total and `ZRANGE .. BYSCORE .. LIMIT` its first jobs in order,
//! at most [`PAGE`] per command. The ready list is not in time order (a
//! job enqueued as available since a past time, a lapsed lease handed back
//! to the front, a delayed job promoted late), so its jobs' times are read
//! [`PAGE`] at a time, by rank, and only the best `offset + limit` kept.
//! The page's hashes are read last, in one round trip. A search reads every
//! job of the structures the query wants, [`SEARCH_CHUNK`] per script call,
//! and filters them here.
//!
//! A listing is no snapshot: a job that moves while it is read may be
//! missed or counted twice (it is shown once).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use events_core::queue::{JobPage, JobQuery, JobState, JobView, Order, QueueError};
use redis::{Cmd, Value};

use super::{Inner, PAGE};
use crate::codec::{self, Stored};
use crate::keys::QueueKeys;

/// How many jobs, bodies included, one script call of a search reads.
pub(crate) const SEARCH_CHUNK: usize = 200;

/// Where a job was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Structure {
    Ready,
    Delayed,
    Leased,
    Failed,
}

/// A job a listing found, before the page is cut.
struct Found {
    /// [`JobView::at`], in ms.
    at: i64,
    id: String,
    keys: Arc<QueueKeys>,
    state: JobState,
    /// The view's `available_at`, in ms (a lease's end for a claimed job).
    available: i64,
    /// Built already (searches read the hash to match it).
    view: Option<JobView>,
}

/// A range of scores of one sorted set, in one state.
struct Range {
    keys: Arc<QueueKeys>,
    structure: Structure,
    state: JobState,
    min: String,
    max: String,
    fetched: usize,
    done: bool,
    /// The millisecond of the last job fetched (ties at the page's edge).
    last_ms: Option<i64>,
}

/// A scan by rank of one list or sorted set.
struct Scan {
    keys: Arc<QueueKeys>,
    structure: Structure,
    start: usize,
    done: bool,
}

impl Inner {
    /// [`Backend::jobs`](events_core::queue::Backend::jobs).
    pub(super) async fn jobs(self: &Arc<Self>, query: &JobQuery) -> Result<JobPage, QueueError> {
        let (now, queues) = self.now_and_queues(query.queue.as_deref()).await?;
        let keep = query.offset.saturating_add(query.limit);
        let (total, found) = if query.search.is_some() {
            self.search(query, now, &queues, keep).await?
        } else {
            self.list(query, now, &queues, keep).await?
        };
        let page: Vec<Found> = sorted(found, query.order)
            .into_iter()
            .skip(query.offset)
            .take(query.limit)
            .collect();
        let jobs = self.views(page).await?;
        Ok(JobPage::new(total, jobs))
    }

    /// [`Backend::job`](events_core::queue::Backend::job): the queue set
    /// and the server's clock in one round trip, then the job's hash and
    /// lease in every queue in another (the way fenced calls locate a job
    /// they do not hold).
    pub(super) async fn job(self: &Arc<Self>, id: &str) -> Result<Option<JobView>, QueueError> {
        let (now, queues) = self.now_and_queues(None).await?;
        let mut cmds = Vec::with_capacity(queues.len() * 2);
        for queue in &queues {
            let k = self.queue_keys(queue);
            cmds.push(hmget(&format!("{}{id}", k.jobs)));
            let mut score = redis::cmd("ZSCORE");
            score.arg(&k.leased).arg(id);
            cmds.push(score);
        }
        let mut answers = self.run(cmds).await?.into_iter();
        for queue in &queues {
            let k = self.queue_keys(queue);
            let key = format!("{}{id}", k.jobs);
            let fields = answers.next().expect("one answer per command");
            let lease = answers.next().expect("one answer per command");
            let fields = fields.map_err(|e| {
                QueueError::Corrupt(format!("the job hash `{key}` cannot be read: {e}"))
            })?;
            let stored = stored(&key, &fields).map_err(QueueError::Corrupt)?;
            if stored.is_gone() {
                continue;
            }
            let available = stored.available.unwrap_or(0);
            let (state, available) = match stored.state.as_deref().and_then(|s| s.chars().next()) {
                Some('w') => (JobState::Ready, available),
                Some('d') if available > now => (JobState::Delayed, available),
                Some('d') => (JobState::Ready, available),
                Some('r') => {
                    let deadline: Option<f64> = lease
                        .and_then(|v| redis::from_redis_value(v).map_err(Into::into))
                        .map_err(|e| self.error(e))?;
                    match deadline.map(|d| d as i64) {
                        Some(d) if d > now => (JobState::Reserved, d),
                        Some(d) => (JobState::Ready, d),
                        // Acked or handed back as it was read.
                        None => (JobState::Ready, available),
                    }
                }
                Some('f') => (JobState::Failed, stored.failed_at.unwrap_or(available)),
                _ => {
                    return Err(QueueError::Corrupt(format!(
                        "the job hash `{key}` cannot be read: its state `{}` is none we write",
                        stored.state.as_deref().unwrap_or("")
                    )));
                }
            };
            return codec::view(&key, id, queue, state, available, &stored)
                .map(Some)
                .map_err(QueueError::Corrupt);
        }
        Ok(None)
    }

    /// The server's clock (ms) and the queues to look at, in one round
    /// trip: `only`, or every queue of the queue set.
    async fn now_and_queues(
        self: &Arc<Self>,
        only: Option<&str>,
    ) -> Result<(i64, Vec<String>), QueueError> {
        let mut cmds = vec![redis::cmd("TIME")];
        if only.is_none() {
            let mut members = redis::cmd("SMEMBERS");
            members.arg(self.keys.queue_set());
            cmds.push(members);
        }
        let mut answers = self.run(cmds).await?.into_iter();
        let time = answers
            .next()
            .expect("one answer per command")
            .map_err(|e| self.error(e))?;
        let now = server_ms(time).map_err(QueueError::Corrupt)?;
        let queues = match only {
            Some(queue) => vec![queue.to_owned()],
            None => {
                let value = answers
                    .next()
                    .expect("one answer per command")
                    .map_err(|e| self.error(e))?;
                let mut queues: Vec<String> =
                    redis::from_redis_value(value).map_err(|e| self.error(e))?;
                queues.sort_unstable();
                queues
            }
        };
        Ok((now, queues))
    }

    /// A listing without a search: the totals and the first `keep` jobs
    /// of each sorted set's ranges, the ready lists read for their times.
    async fn list(
        self: &Arc<Self>,
        query: &JobQuery,
        now: i64,
        queues: &[String],
        keep: usize,
    ) -> Result<(usize, Vec<Found>), QueueError> {
        let since = query.since.and_then(ceil_millis);
        let mut ranges = Vec::new();
        let mut lists = Vec::new();
        for queue in queues {
            let k = self.queue_keys(queue);
            let lo = since.unwrap_or(i64::MIN);
            for (structure, lapsed, running) in [
                (Structure::Delayed, JobState::Ready, JobState::Delayed),
                (Structure::Leased, JobState::Ready, JobState::Reserved),
            ] {
                if query.wants(lapsed) && lo <= now {
                    ranges.push(Range::new(&k, structure, lapsed, lo, now));
                }
                if query.wants(running) {
                    ranges.push(Range::new(
                        &k,
                        structure,
                        running,
                        lo.max(now + 1),
                        i64::MAX,
                    ));
                }
            }
            if query.wants(JobState::Failed) {
                let lo = since.map_or(i64::MIN, |ms| ms.saturating_mul(1000));
                ranges.push(Range::new(
                    &k,
                    Structure::Failed,
                    JobState::Failed,
                    lo,
                    i64::MAX,
                ));
            }
            if query.wants(JobState::Ready) {
                lists.push(Scan {
                    keys: k.clone(),
                    structure: Structure::Ready,
                    start: 0,
                    done: false,
                });
            }
        }
        let mut total = 0;
        let mut found = Vec::new();
        let mut first = true;
        loop {
            let mut cmds = Vec::new();
            if first {
                for range in &ranges {
                    let mut count = redis::cmd("ZCOUNT");
                    count.arg(range.key()).arg(&range.min).arg(&range.max);
                    cmds.push(count);
                }
            }
            let fetching: Vec<usize> = (0..ranges.len())
                .filter(|&i| !ranges[i].done && ranges[i].fetched < keep)
                .collect();
            for &i in &fetching {
                let n = PAGE.min(keep - ranges[i].fetched);
                cmds.push(ranges[i].fetch(query.order, n));
            }
            let counting = keep == 0 && since.is_none();
            let scanning: Vec<usize> = (0..lists.len()).filter(|&i| !lists[i].done).collect();
            for &i in &scanning {
                let scan = &lists[i];
                if counting {
                    let mut len = redis::cmd("LLEN");
                    len.arg(&scan.keys.ready);
                    cmds.push(len);
                } else {
                    cmds.push(self.browse(scan, PAGE, false));
                }
            }
            if cmds.is_empty() {
                break;
            }
            let mut answers = self.run(cmds).await?.into_iter();
            let mut next = || {
                answers
                    .next()
                    .expect("one answer per command")
                    .map_err(|e| self.error(e))
            };
            if first {
                for _ in &ranges {
                    let n: usize = redis::from_redis_value(next()?).map_err(|e| self.error(e))?;
                    total += n;
                }
                first = false;
            }
            for &i in &fetching {
                let range = &mut ranges[i];
                let asked = PAGE.min(keep - range.fetched);
                let pairs = scored(next()?).map_err(QueueError::Corrupt)?;
                range.fetched += pairs.len();
                range.done = pairs.len() < asked;
                for (id, score) in pairs {
                    found.push(range.found(id, score));
                    range.last_ms = Some(range.ms(score));
                }
            }
            for &i in &scanning {
                let scan = &mut lists[i];
                if counting {
                    let n: usize = redis::from_redis_value(next()?).map_err(|e| self.error(e))?;
                    total += n;
                    scan.done = true;
                    continue;
                }
                let rows = browsed(next()?).map_err(QueueError::Corrupt)?;
                scan.start += rows.len();
                scan.done = rows.len() < PAGE;
                for row in rows {
                    if row.gone {
                        continue;
                    }
                    // A hash that cannot be read shows at the epoch.
                    let at = row.stored.available.unwrap_or(0);
                    if since.is_some_and(|since| at < since) {
                        continue;
                    }
                    total += 1;
                    found.push(Found {
                        at,
                        id: row.id,
                        keys: scan.keys.clone(),
                        state: JobState::Ready,
                        available: at,
                        view: None,
                    });
                }
            }
            found = trimmed(found, query.order, keep);
        }
        // The failed store is scored in µs and listed by ms then id: jobs
        // that failed in the millisecond of the last one fetched may come
        // before it by id.
        let mut cmds = Vec::new();
        let mut edges = Vec::new();
        for range in &ranges {
            if let (Structure::Failed, Some(ms), false) =
                (range.structure, range.last_ms, range.done)
            {
                let mut edge = redis::cmd("ZRANGE");
                let lo = (ms * 1000).max(range.min.parse().unwrap_or(i64::MIN));
                edge.arg(range.key())
                    .arg(lo)
                    .arg(ms * 1000 + 999)
                    .arg("BYSCORE")
                    .arg("WITHSCORES");
                cmds.push(edge);
                edges.push(range);
            }
        }
        if !cmds.is_empty() {
            for (range, answer) in edges.into_iter().zip(self.run(cmds).await?) {
                let pairs =
                    scored(answer.map_err(|e| self.error(e))?).map_err(QueueError::Corrupt)?;
                for (id, score) in pairs {
                    found.push(range.found(id, score));
                }
            }
        }
        Ok((total, found))
    }

    /// A listing with a search: every job of the structures the query
    /// wants, read with its body a chunk per script call, matched here.
    async fn search(
        self: &Arc<Self>,
        query: &JobQuery,
        now: i64,
        queues: &[String],
        keep: usize,
    ) -> Result<(usize, Vec<Found>), QueueError> {
        let mut scans = Vec::new();
        for queue in queues {
            let k = self.queue_keys(queue);
            let ready = query.wants(JobState::Ready);
            for (structure, wanted) in [
                (Structure::Ready, ready),
                (Structure::Delayed, ready || query.wants(JobState::Delayed)),
                (Structure::Leased, ready || query.wants(JobState::Reserved)),
                (Structure::Failed, query.wants(JobState::Failed)),
            ] {
                if wanted {
                    scans.push(Scan {
                        keys: k.clone(),
                        structure,
                        start: 0,
                        done: false,
                    });
                }
            }
        }
        let mut total = 0;
        let mut found = Vec::new();
        loop {
            let open: Vec<usize> = (0..scans.len()).filter(|&i| !scans[i].done).collect();
            if open.is_empty() {
                break;
            }
            let cmds: Vec<Cmd> = open
                .iter()
                .map(|&i| self.browse(&scans[i], SEARCH_CHUNK, true))
                .collect();
            for (&i, answer) in open.iter().zip(self.run(cmds).await?) {
                let scan = &mut scans[i];
                let rows =
                    browsed(answer.map_err(|e| self.error(e))?).map_err(QueueError::Corrupt)?;
                scan.start += rows.len();
                scan.done = rows.len() < SEARCH_CHUNK;
                for row in rows {
                    if row.gone {
                        continue;
                    }
                    let (state, available) = row.place(scan.structure, now);
                    if !query.wants(state) {
                        continue;
                    }
                    let view =
                        view_or_placeholder(&scan.keys, &row.id, state, available, &row.stored);
                    if !query.matches(&view) {
                        continue;
                    }
                    total += 1;
                    found.push(Found {
                        at: available,
                        id: row.id,
                        keys: scan.keys.clone(),
                        state,
                        available,
                        view: Some(view),
                    });
                }
            }
            found = trimmed(found, query.order, keep);
        }
        Ok((total, found))
    }

    /// The views of a page, reading in one round trip the hashes a
    /// listing has not read yet. A job gone since it was listed is left
    /// out; one whose hash cannot be read is shown with the reason.
    async fn views(self: &Arc<Self>, page: Vec<Found>) -> Result<Vec<JobView>, QueueError> {
        let unread: Vec<&Found> = page.iter().filter(|f| f.view.is_none()).collect();
        let mut read = Vec::new();
        if !unread.is_empty() {
            let cmds = unread
                .iter()
                .map(|f| hmget(&format!("{}{}", f.keys.jobs, f.id)))
                .collect();
            read = self.run(cmds).await?;
        }
        let mut read = read.into_iter();
        let mut views = Vec::with_capacity(page.len());
        for found in page {
            if let Some(view) = found.view {
                views.push(view);
                continue;
            }
            let key = format!("{}{}", found.keys.jobs, found.id);
            let answer = read.next().expect("one answer per command");
            let stored = match answer
                .map_err(|e| format!("the job hash `{key}` cannot be read: {e}"))
                .and_then(|fields| stored(&key, &fields))
            {
                Ok(stored) if stored.is_gone() => continue,
                Ok(stored) => stored,
                Err(reason) => {
                    tracing::warn!(job = %found.id, %reason, "a listed job cannot be read");
                    views.push(codec::unreadable(
                        &found.id,
                        &found.keys.queue,
                        found.state,
                        found.available,
                        &Stored::default(),
                        reason,
                    ));
                    continue;
                }
            };
            views.push(view_or_placeholder(
                &found.keys,
                &found.id,
                found.state,
                found.available,
                &stored,
            ));
        }
        Ok(views)
    }

    /// One chunk of a scan by rank (the browse script).
    fn browse(&self, scan: &Scan, count: usize, bodies: bool) -> Cmd {
        let k = &scan.keys;
        let (key, kind) = match scan.structure {
            Structure::Ready => (&k.ready, "l"),
            Structure::Delayed => (&k.delayed, "z"),
            Structure::Leased => (&k.leased, "z"),
            Structure::Failed => (&k.failed, "z"),
        };
        let mut cmd = Inner::evalsha(&self.scripts.browse, &[key]);
        cmd.arg(&k.jobs)
            .arg(kind)
            .arg(scan.start)
            .arg(count)
            .arg(if bodies { "1" } else { "0" });
        cmd
    }
}

impl Range {
    fn new(
        keys: &Arc<QueueKeys>,
        structure: Structure,
        state: JobState,
        lo: i64,
        hi: i64,
    ) -> Range {
        let bound = |n: i64| match n {
            i64::MIN => "-inf".to_owned(),
            i64::MAX => "+inf".to_owned(),
            n => n.to_string(),
        };
        Range {
            keys: keys.clone(),
            structure,
            state,
            min: bound(lo),
            max: bound(hi),
            fetched: 0,
            done: lo > hi,
            last_ms: None,
        }
    }

    fn key(&self) -> &str {
        match self.structure {
            Structure::Delayed => &self.keys.delayed,
            Structure::Leased => &self.keys.leased,
            Structure::Failed | Structure::Ready => &self.keys.failed,
        }
    }

    /// The next `n` jobs of the range in `order`, with their scores.
    fn fetch(&self, order: Order, n: usize) -> Cmd {
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(self.key());
        match order {
            Order::Newest => cmd.arg(&self.max).arg(&self.min).arg("BYSCORE").arg("REV"),
            _ => cmd.arg(&self.min).arg(&self.max).arg("BYSCORE"),
        };
        cmd.arg("LIMIT").arg(self.fetched).arg(n).arg("WITHSCORES");
        cmd
    }

    /// The millisecond a score stands for.
    fn ms(&self, score: i64) -> i64 {
        match self.structure {
            Structure::Failed => score.div_euclid(1000),
            _ => score,
        }
    }

    fn found(&self, id: String, score: i64) -> Found {
        let at = self.ms(score);
        Found {
            at,
            id,
            keys: self.keys.clone(),
            state: self.state,
            available: at,
            view: None,
        }
    }
}

/// One job the browse script read.
struct Browsed {
    id: String,
    score: Option<i64>,
    /// Its fields; for a key that cannot be read as a hash, none but
    /// `error`, saying what Redis said.
    stored: Stored,
    /// Its hash is gone (deleted since it was listed, or by hand).
    gone: bool,
}

impl Browsed {
    /// Its state and `available_at` (ms) at `now`, from where it was found.
    fn place(&self, structure: Structure, now: i64) -> (JobState, i64) {
        let score = self.score.unwrap_or(0);
        match structure {
            Structure::Ready => (JobState::Ready, self.stored.available.unwrap_or(0)),
            Structure::Delayed if score > now => (JobState::Delayed, score),
            Structure::Leased if score > now => (JobState::Reserved, score),
            Structure::Delayed | Structure::Leased => (JobState::Ready, score),
            Structure::Failed => (
                JobState::Failed,
                self.stored.failed_at.unwrap_or(score.div_euclid(1000)),
            ),
        }
    }
}

/// The rows of the browse script's answer (8 values a job).
fn browsed(value: Value) -> Result<Vec<Browsed>, String> {
    let values: Vec<Value> =
        redis::from_redis_value(value).map_err(|e| format!("a listing's answer: {e}"))?;
    let mut rows = Vec::with_capacity(values.len() / 8);
    for row in values.chunks(8) {
        let [id, score, fields @ .., error] = row else {
            return Err(format!(
                "a listing's answer has {} values, not 8",
                row.len()
            ));
        };
        let id: String =
            redis::from_redis_value_ref(id).map_err(|e| format!("a listed job's id: {e}"))?;
        let score: Option<f64> = redis::from_redis_value_ref(score)
            .map_err(|e| format!("the score of listed job `{id}`: {e}"))?;
        let error: Option<String> = redis::from_redis_value_ref(error)
            .unwrap_or_else(|_| Some("Redis refused to read it".to_owned()));
        let read = match error {
            Some(error) => Err(error),
            None => Stored::from_values(fields),
        };
        let (stored, gone) = match read {
            Ok(stored) => {
                let gone = stored.is_gone();
                (stored, gone)
            }
            Err(error) => (
                Stored {
                    error: Some(error),
                    ..Stored::default()
                },
                false,
            ),
        };
        rows.push(Browsed {
            id,
            score: score.map(|s| s as i64),
            stored,
            gone,
        });
    }
    Ok(rows)
}

/// The view of a job, or, when its hash cannot be read, a placeholder
/// with the reason (and a warning): one bad job never fails a listing.
fn view_or_placeholder(
    keys: &QueueKeys,
    id: &str,
    state: JobState,
    available: i64,
    stored: &Stored,
) -> JobView {
    let key = format!("{}{id}", keys.jobs);
    codec::view(&key, id, &keys.queue, state, available, stored).unwrap_or_else(|reason| {
        let reason = match &stored.error {
            Some(error) if stored.body.is_none() && stored.state.is_none() => {
                format!("the job hash `{key}` cannot be read: {error}")
            }
            _ => reason,
        };
        tracing::warn!(job = %id, %reason, "a listed job cannot be read");
        codec::unreadable(id, &keys.queue, state, available, stored, reason)
    })
}

/// `HMGET key b s v x t`.
fn hmget(key: &str) -> Cmd {
    let mut cmd = redis::cmd("HMGET");
    cmd.arg(key).arg(&["b", "s", "v", "x", "t"][..]);
    cmd
}

/// The fields of `HMGET key b s v x t`, or why they cannot be read.
fn stored(key: &str, value: &Value) -> Result<Stored, String> {
    let values: Vec<Value> = redis::from_redis_value_ref(value)
        .map_err(|e| format!("the job hash `{key}` cannot be read: {e}"))?;
    Stored::from_values(&values).map_err(|e| format!("the job hash `{key}` cannot be read: {e}"))
}

/// `member, score` pairs of a `ZRANGE .. WITHSCORES` (flat, or pairs in
/// RESP3).
fn scored(value: Value) -> Result<Vec<(String, i64)>, String> {
    let values: Vec<Value> =
        redis::from_redis_value(value).map_err(|e| format!("a sorted set's answer: {e}"))?;
    let pair = |member: &Value, score: &Value| -> Result<(String, i64), String> {
        let member: String = redis::from_redis_value_ref(member).map_err(|e| e.to_string())?;
        let score: f64 = redis::from_redis_value_ref(score)
            .map_err(|e| format!("the score of `{member}`: {e}"))?;
        Ok((member, score as i64))
    };
    if values.iter().all(|v| matches!(v, Value::Array(_))) {
        return values
            .iter()
            .map(|v| match v {
                Value::Array(p) if p.len() == 2 => pair(&p[0], &p[1]),
                _ => Err("a sorted set's pair is not two values".to_owned()),
            })
            .collect();
    }
    values
        .chunks(2)
        .map(|p| match p {
            [member, score] => pair(member, score),
            _ => Err("a sorted set's answer has an odd number of values".to_owned()),
        })
        .collect()
}

/// `found` in the order of the listing (by time then id), each job once.
fn sorted(mut found: Vec<Found>, order: Order) -> Vec<Found> {
    found.sort_by(|a, b| {
        let by_time = (a.at, &a.id).cmp(&(b.at, &b.id));
        match order {
            Order::Oldest => by_time,
            _ => by_time.reverse(),
        }
    });
    let mut seen = HashSet::new();
    found.retain(|f| seen.insert(f.id.clone()));
    found
}

/// The best `keep` of `found` once it holds many more: what a listing
/// needs to hold while it reads.
fn trimmed(found: Vec<Found>, order: Order, keep: usize) -> Vec<Found> {
    if found.len() <= keep.saturating_mul(2).saturating_add(PAGE) {
        return found;
    }
    let mut found = sorted(found, order);
    found.truncate(keep);
    found
}

/// `TIME`'s answer in ms.
fn server_ms(value: Value) -> Result<i64, String> {
    let parts: Vec<i64> =
        redis::from_redis_value(value).map_err(|e| format!("the server's TIME: {e}"))?;
    match parts.as_slice() {
        [secs, micros] => Ok(secs * 1000 + micros / 1000),
        _ => Err(format!(
            "the server's TIME has {} parts, not 2",
            parts.len()
        )),
    }
}

/// The first whole millisecond at or after `at`: a job whose ms time is at
/// or after it is at or after `at`. `None` before the epoch (every job is
/// after it).
fn ceil_millis(at: SystemTime) -> Option<i64> {
    let since = at.duration_since(UNIX_EPOCH).ok()?;
    let ms = i64::try_from(since.as_millis()).unwrap_or(i64::MAX);
    let partial = since.subsec_nanos() % 1_000_000 != 0;
    Some(if partial { ms.saturating_add(1) } else { ms })
}

/// The server's clock as a time: [`server_ms`] for activity.
pub(super) fn server_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}
