//! Looking through what a queue holds, for dashboards and operators: the
//! jobs in each state, found by queue and by text, one job by id.
//!
//! These reads never touch a job: listing a reserved job does not extend or
//! break its lease, and a failed job's row stays as it is.

use std::time::SystemTime;

use crate::envelope::Envelope;

use super::{FailedJob, Job};

/// Where a job is in its life, as [`Backend::jobs`](super::Backend::jobs)
/// lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum JobState {
    /// Waiting and available now: the next claim may take it.
    Ready,
    /// Waiting, not available yet (a `delay`, a retry's backoff, a
    /// `release_after`).
    Delayed,
    /// Claimed by a worker, its lease running.
    Reserved,
    /// In the failed store.
    Failed,
}

impl JobState {
    /// Every state, in the order of a job's life.
    pub const ALL: [JobState; 4] = [
        JobState::Ready,
        JobState::Delayed,
        JobState::Reserved,
        JobState::Failed,
    ];

    /// Its name: `ready`, `delayed`, `reserved` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Ready => "ready",
            JobState::Delayed => "delayed",
            JobState::Reserved => "reserved",
            JobState::Failed => "failed",
        }
    }

    /// The state named `name` (as [`as_str`](Self::as_str) writes it).
    pub fn parse(name: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which way a listing runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Order {
    /// The latest first: the newest failures, the jobs due last.
    #[default]
    Newest,
    /// The earliest first: the jobs next in line, the oldest failures.
    Oldest,
}

/// What [`Backend::jobs`](super::Backend::jobs) lists: every filter given
/// must hold.
///
/// ```
/// use events::queue::{JobQuery, JobState};
///
/// let query = JobQuery::new().state(JobState::Failed).queue("mail").search("acme").limit(20);
/// assert_eq!(query.limit, 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobQuery {
    /// Only jobs in these states (empty: in any state).
    pub states: Vec<JobState>,
    /// Only jobs of this queue.
    pub queue: Option<String>,
    /// Only jobs whose id, listener, event name or payload contains this
    /// text, ASCII letters compared without case.
    pub search: Option<String>,
    /// Only jobs whose [time](JobView::at) is at or after this.
    pub since: Option<SystemTime>,
    /// Which way the listing runs, by [`JobView::at`].
    pub order: Order,
    /// How many to skip, for the next page.
    pub offset: usize,
    /// How many to give at most (0: none, only the total).
    pub limit: usize,
}

impl Default for JobQuery {
    fn default() -> Self {
        JobQuery::new()
    }
}

impl JobQuery {
    /// Every job, newest first, 50 of them.
    pub fn new() -> JobQuery {
        JobQuery {
            states: Vec::new(),
            queue: None,
            search: None,
            since: None,
            order: Order::Newest,
            offset: 0,
            limit: 50,
        }
    }

    /// Only jobs in `state` (call again to add another state).
    pub fn state(mut self, state: JobState) -> Self {
        if !self.states.contains(&state) {
            self.states.push(state);
        }
        self
    }

    /// Only jobs of `queue`.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Only jobs whose id, listener, event or payload contains `text`.
    pub fn search(mut self, text: impl Into<String>) -> Self {
        self.search = Some(text.into());
        self
    }

    /// Only jobs whose time ([`JobView::at`]) is at or after `at`.
    pub fn since(mut self, at: SystemTime) -> Self {
        self.since = Some(at);
        self
    }

    /// The order of the listing.
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// Skips the first `n` matches.
    pub fn offset(mut self, n: usize) -> Self {
        self.offset = n;
        self
    }

    /// Gives at most `n` jobs.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = n;
        self
    }

    /// Whether a job in `state` may match (the state filter alone).
    pub fn wants(&self, state: JobState) -> bool {
        self.states.is_empty() || self.states.contains(&state)
    }

    /// Whether `job` matches every filter. Backends that filter in memory
    /// use it; those that filter in their store must agree with it (the
    /// conformance suite checks).
    pub fn matches(&self, job: &JobView) -> bool {
        self.wants(job.state)
            && self.queue.as_deref().is_none_or(|q| q == job.queue)
            && self.since.is_none_or(|since| job.at() >= since)
            && self.search.as_deref().is_none_or(|text| {
                [&job.id, &job.listener, &job.event, &job.payload]
                    .into_iter()
                    .any(|field| contains_ignoring_ascii_case(field, text))
            })
    }

    /// Sorts `jobs` in this query's order and cuts out its page: what a
    /// backend that filters in memory returns.
    pub fn page(&self, mut jobs: Vec<JobView>) -> JobPage {
        jobs.retain(|job| self.matches(job));
        let total = jobs.len();
        jobs.sort_by(|a, b| {
            let by_time = (a.at(), &a.id).cmp(&(b.at(), &b.id));
            match self.order {
                Order::Oldest => by_time,
                Order::Newest => by_time.reverse(),
            }
        });
        let jobs = jobs
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .collect();
        JobPage::new(total, jobs)
    }
}

/// Whether `haystack` contains `needle`, ASCII letters compared without
/// case (other characters exactly).
pub fn contains_ignoring_ascii_case(haystack: &str, needle: &str) -> bool {
    let (haystack, needle) = (haystack.as_bytes(), needle.as_bytes());
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|window| window.eq_ignore_ascii_case(needle))
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobPage {
    /// How many jobs match in all, on every page (of those searched, when
    /// [`searched`](Self::searched) says a search stopped short).
    pub total: usize,
    /// This page's jobs.
    pub jobs: Vec<JobView>,
    /// `Some(n)` when a [search](JobQuery::search) looked through only the
    /// `n` newest jobs of each of the backend's stores (waiting and claimed
    /// jobs by when they were stored, failed ones by when they failed): the
    /// page and [`total`](Self::total) cover only those, and a job found
    /// nowhere may still be among the older ones. A backend whose search
    /// reads every job at a price it cannot bound says so here rather than
    /// answering late. `None` (what [`JobPage::new`] gives): every job was
    /// looked through.
    pub searched: Option<usize>,
}

impl JobPage {
    /// A page of `jobs` out of `total` matches, every job looked through.
    pub fn new(total: usize, jobs: Vec<JobView>) -> JobPage {
        JobPage {
            total,
            jobs,
            searched: None,
        }
    }

    /// The same page, saying its search looked through only the `n` newest
    /// jobs of each store ([`searched`](Self::searched)).
    pub fn searched_only(mut self, n: usize) -> JobPage {
        self.searched = Some(n);
        self
    }
}

/// A job as a listing shows it, in any state: waiting, claimed or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobView {
    /// Where it is.
    pub state: JobState,
    /// Its id.
    pub id: String,
    /// Its queue.
    pub queue: String,
    /// The listener's name.
    pub listener: String,
    /// The event's name.
    pub event: String,
    /// The event as JSON.
    pub payload: String,
    /// Tries started (for a reserved job, the current one's number).
    pub attempt: u32,
    /// Tries allowed.
    pub max_tries: u32,
    /// When it is or was available (for a reserved job: when its lease
    /// ends).
    pub available_at: SystemTime,
    /// When it was first enqueued.
    pub first_enqueued_at: SystemTime,
    /// What its last failed try said (for a failed job: why it failed).
    pub error: Option<String>,
    /// When it went to the failed store.
    pub failed_at: Option<SystemTime>,
    /// The dispatch's envelope.
    pub envelope: Envelope,
}

impl JobView {
    /// A waiting or claimed job in `state`. For a reserved job,
    /// `available_at` should be its lease's end; set it after.
    pub fn waiting(job: Job, state: JobState) -> JobView {
        JobView {
            state,
            id: job.id,
            queue: job.queue,
            listener: job.listener,
            event: job.event,
            payload: job.payload,
            attempt: job.attempt,
            max_tries: job.max_tries,
            available_at: job.available_at,
            first_enqueued_at: job.first_enqueued_at,
            error: job.last_error,
            failed_at: None,
            envelope: job.envelope,
        }
    }

    /// A job of the failed store.
    pub fn failed(job: FailedJob) -> JobView {
        JobView {
            state: JobState::Failed,
            id: job.id,
            queue: job.queue,
            listener: job.listener,
            event: job.event,
            payload: job.payload,
            attempt: job.attempts,
            max_tries: job.max_tries,
            available_at: job.failed_at,
            first_enqueued_at: job.first_enqueued_at,
            error: Some(job.error),
            failed_at: Some(job.failed_at),
            envelope: job.envelope,
        }
    }

    /// The time a listing sorts by: when it failed, for a failed job;
    /// otherwise [`available_at`](Self::available_at).
    pub fn at(&self) -> SystemTime {
        self.failed_at.unwrap_or(self.available_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn view(id: &str, state: JobState, secs: u64) -> JobView {
        let mut job = Job::from_parts(
            id,
            "mail",
            "app::send",
            "user.signed_up",
            r#"{"email":"Ada@Example.com"}"#,
            Envelope::new(),
        );
        job.available_at = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        JobView::waiting(job, state)
    }

    #[test]
    fn a_query_filters_sorts_and_pages() {
        let jobs = vec![
            view("a", JobState::Ready, 1),
            view("b", JobState::Delayed, 3),
            view("c", JobState::Ready, 2),
        ];
        let page = JobQuery::new().state(JobState::Ready).page(jobs.clone());
        assert_eq!(page.total, 2);
        assert_eq!(
            page.jobs.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
            ["c", "a"]
        );
        let page = JobQuery::new()
            .order(Order::Oldest)
            .offset(1)
            .limit(1)
            .page(jobs.clone());
        assert_eq!((page.total, page.jobs[0].id.as_str()), (3, "c"));
        assert_eq!(
            JobQuery::new()
                .search("ada@EXAMPLE")
                .page(jobs.clone())
                .total,
            3
        );
        assert_eq!(JobQuery::new().search("nobody").page(jobs.clone()).total, 0);
        assert_eq!(JobQuery::new().queue("other").page(jobs).total, 0);
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for state in JobState::ALL {
            assert_eq!(JobState::parse(state.as_str()), Some(state));
        }
        assert_eq!(JobState::parse("done"), None);
    }

    #[test]
    fn text_is_found_without_ascii_case() {
        assert!(contains_ignoring_ascii_case("Hello World", "o w"));
        assert!(contains_ignoring_ascii_case("x", ""));
        assert!(!contains_ignoring_ascii_case("ab", "abc"));
        assert!(contains_ignoring_ascii_case("Grüße", "grü"));
    }
}
