//! Outgoing webhooks for the `events` crate: subscriptions to stored
//! events, Standard Webhooks 1.0 signatures, deliveries as jobs on the
//! framework's own queue (so SQLite or Redis makes them durable), retries
//! on a schedule with jitter, subscriptions turned off on HTTP 410 or after
//! 10 consecutive failed attempts, a delivery log, manual replays, and a
//! test endpoint — never to loopback, private or metadata addresses unless
//! allowed.
//!
//! ```no_run
//! use events::webhooks::{NewSubscription, Webhooks};
//!
//! # async fn run(queue: events::Queue, stored: Vec<events::store::StoredEvent>) -> Result<(), Box<dyn std::error::Error>> {
//! let store = events::store::connect("sqlite://events.db").await?;
//! let webhooks = Webhooks::new(store).config(&events::Config::from_env()?)?;
//! let sub = webhooks
//!     .subscribe(NewSubscription::new("https://hooks.example.com/in", ["appointment.*"]))
//!     .await?;
//! println!("give the receiver its secret: {}", sub.secret);
//!
//! // Each stored event matching an active subscription becomes one job on
//! // the `webhooks` queue; a worker of that queue, given the `Webhooks`,
//! // delivers them.
//! webhooks.enqueue_for(&stored, &queue).await?;
//! events::Worker::new(queue)
//!     .queues([events::webhooks::QUEUE])
//!     .state(webhooks.clone())
//!     .run_until_empty()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # What a delivery is
//!
//! A `POST` of `{"type": name, "timestamp": occurred-at (RFC 3339), "data":
//! payload}` with `content-type: application/json` and the headers
//! `webhook-id` (the same on every attempt and replay of one event to one
//! subscription), `webhook-timestamp` (seconds, of this attempt) and
//! `webhook-signature` (`v1,<base64 HMAC-SHA256>` of
//! `id.timestamp.body` under the secret's bytes).
//!
//! # Retries and disabling
//!
//! A 2xx is success. Anything else — 3xx included, a timeout (30 s), a
//! refused connection — fails the attempt: it is retried after 1 min, 5
//! min, then 15 min (or the schedule given with [`Webhooks::retry_schedule`]
//! / `EVENTS_WEBHOOKS_RETRY`), each ±10 % jitter; a 429 or 503 with
//! `Retry-After` waits that long instead. After the last retry the job goes
//! to the queue's failed store. HTTP 410 turns the subscription off at
//! once; 10 consecutive failed attempts turn it off with the reason; a
//! success resets the count. Manual replays do not count.
//!
//! # Safety
//!
//! Before connecting, the host is resolved here and every address checked;
//! the connection is made to a checked address, so DNS rebinding cannot
//! reach a private one. Loopback, RFC 1918, shared (100.64/10), link-local
//! (169.254/16, the metadata address), unique-local and link-local IPv6,
//! IPv4-mapped forms of those, unspecified, multicast and reserved
//! addresses are refused unless [`Webhooks::allow_private`]
//! (`EVENTS_WEBHOOKS_ALLOW_PRIVATE=true`). `https` is required unless
//! [`Webhooks::require_https`]`(false)`
//! (`EVENTS_WEBHOOKS_REQUIRE_HTTPS=false`).

#![warn(missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use events_core::config::{ConfigError, Invalid, Setting, Var};
use events_core::queue::{Job, Queue, QueueError};
use events_core::store::{NewEvent, Store, StoreError, StoredEvent};

mod client;
mod deliver;
mod guard;
mod signature;

pub use deliver::{LISTENER, QUEUE, WebhookDelivery};
pub use events_core::store::{Delivery, DeliveryQuery, Subscription, SubscriptionChange};
pub use guard::forbidden_reason;
pub use signature::{SECRET_PREFIX, Secret, SignatureError, TOLERANCE, sign, verify};

/// `EVENTS_WEBHOOKS_ALLOW_PRIVATE`: `true` lets webhooks go to loopback
/// and private addresses.
pub const ALLOW_PRIVATE: &str = "EVENTS_WEBHOOKS_ALLOW_PRIVATE";
/// `EVENTS_WEBHOOKS_RETRY`: the delays between attempts, replacing the
/// default `1m,5m,15m`.
pub const RETRY: &str = "EVENTS_WEBHOOKS_RETRY";
/// `EVENTS_WEBHOOKS_REQUIRE_HTTPS`: `false` lets webhooks go to `http://`
/// URLs.
pub const REQUIRE_HTTPS: &str = "EVENTS_WEBHOOKS_REQUIRE_HTTPS";

inventory::submit! {
    Var::new(ALLOW_PRIVATE, "`true` lets webhooks go to loopback, private, link-local and other internal addresses (tests, internal networks).")
        .with_default("false")
}
inventory::submit! {
    Var::new(RETRY, "The delays between a webhook's attempts, a comma list of durations such as `1m,5m,15m,1h` (one attempt more than delays); it replaces the default schedule.")
        .with_default("1m,5m,15m")
}
inventory::submit! {
    Var::new(REQUIRE_HTTPS, "`false` lets webhooks go to `http://` URLs, not only `https://`.")
        .with_default("true")
}

/// The default delays between attempts: 1 min, 5 min, 15 min.
pub const DEFAULT_SCHEDULE: [Duration; 3] = [
    Duration::from_secs(60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(15 * 60),
];

/// Consecutive failed attempts that turn a subscription off.
pub const DISABLE_AFTER: u32 = 10;

/// Why a webhook operation failed. [`status`](WebhookError::status) tells
/// the HTTP status an API should answer with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The input is wrong (a malformed URL, no event names, a bad secret),
    /// in words: a 400.
    #[error("{0}")]
    Invalid(String),
    /// The URL leads to an address webhooks are not sent to (loopback,
    /// private, link-local, ..), in words: a 403.
    #[error("{0}")]
    Forbidden(String),
    /// What was asked for is not there (a subscription, a delivery), in
    /// words: a 404.
    #[error("{0}")]
    NotFound(String),
    /// The event store failed; `source()` is its error.
    #[error("the event store failed")]
    Store(#[source] StoreError),
    /// The queue failed; `source()` is its error.
    #[error("the queue failed")]
    Queue(#[source] QueueError),
    /// The endpoint could not be reached or did not answer, in words
    /// (only from [`Webhooks::test`]; deliveries log it instead): a 502.
    #[error("{0}")]
    Http(String),
    /// The system's random source failed.
    #[error("no random bytes could be drawn: {0}")]
    Random(String),
}

impl WebhookError {
    /// The HTTP status an API answers this error with: 400, 403, 404, 502,
    /// or 500 for the store, the queue and the random source.
    pub fn status(&self) -> u16 {
        match self {
            WebhookError::Invalid(_) => 400,
            WebhookError::Forbidden(_) => 403,
            WebhookError::NotFound(_) => 404,
            WebhookError::Http(_) => 502,
            WebhookError::Store(StoreError::Invalid(_)) => 400,
            WebhookError::Store(_) | WebhookError::Queue(_) | WebhookError::Random(_) => 500,
        }
    }

    /// Whether the caller's input is to blame (a 4xx).
    pub fn is_client_error(&self) -> bool {
        (400..500).contains(&self.status())
    }
}

impl From<StoreError> for WebhookError {
    fn from(error: StoreError) -> Self {
        WebhookError::Store(error)
    }
}

impl From<SignatureError> for WebhookError {
    fn from(error: SignatureError) -> Self {
        WebhookError::Invalid(error.to_string())
    }
}

/// A subscription to make: what `POST /events/subscriptions` takes.
///
/// ```
/// let new: events::webhooks::NewSubscription = serde_json::from_str(
///     r#"{"webhook_url": "https://hooks.example.com/in", "event_names": ["appointment.*"], "active": true}"#,
/// )?;
/// assert_eq!(new.event_names, ["appointment.*"]);
/// assert!(serde_json::from_str::<events::webhooks::NewSubscription>(
///     r#"{"webhook_url": "https://x.example", "event_names": ["*"], "colour": "red"}"#,
/// ).is_err());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct NewSubscription {
    /// Where deliveries go.
    pub webhook_url: String,
    /// Event names or patterns (`*`, `appointment.*`): at least one.
    pub event_names: Vec<String>,
    /// Payload fields (top-level names or dotted paths) that must equal
    /// these values.
    #[serde(default)]
    pub filters: BTreeMap<String, serde_json::Value>,
    /// Whether deliveries go out (default `true`).
    #[serde(default = "yes")]
    pub active: bool,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
}

fn yes() -> bool {
    true
}

impl NewSubscription {
    /// An active subscription of `webhook_url` to `event_names`.
    pub fn new<I, S>(webhook_url: impl Into<String>, event_names: I) -> NewSubscription
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        NewSubscription {
            webhook_url: webhook_url.into(),
            event_names: event_names.into_iter().map(Into::into).collect(),
            filters: BTreeMap::new(),
            active: true,
            description: None,
        }
    }

    /// Adds a filter: the payload's `path` must equal `value`.
    pub fn filter(mut self, path: impl Into<String>, value: serde_json::Value) -> Self {
        self.filters.insert(path.into(), value);
        self
    }

    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// Made inactive (or active).
    pub fn active(mut self, active: bool) -> Self {
        self.active = active;
        self
    }
}

/// What [`Webhooks::test`] sent and what came back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct TestDelivery {
    /// The URL posted to.
    pub url: String,
    /// The `webhook-id` sent.
    pub webhook_id: String,
    /// The event name of the sample.
    pub event_name: String,
    /// The subscription whose secret signed it, when one has this URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    /// The one-off secret that signed it, when no subscription has this
    /// URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The HTTP status, when a response came.
    pub status: Option<u16>,
    /// The first KiB of the response body.
    pub response: Option<String>,
    /// Milliseconds from sending to the end of the excerpt.
    pub latency_ms: u64,
    /// Why it failed, in words.
    pub error: Option<String>,
    /// Whether the endpoint answered 2xx.
    pub succeeded: bool,
}

/// The settings of a [`Webhooks`].
#[derive(Debug, Clone)]
struct Settings {
    allow_private: bool,
    require_https: bool,
    schedule: Vec<Duration>,
    jitter: f64,
    timeout: Duration,
    endpoint_concurrency: usize,
    disable_after: u32,
    cache_for: Duration,
    busy_delay: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allow_private: false,
            require_https: true,
            schedule: DEFAULT_SCHEDULE.to_vec(),
            jitter: 0.1,
            timeout: Duration::from_secs(30),
            endpoint_concurrency: 8,
            disable_after: DISABLE_AFTER,
            cache_for: Duration::from_secs(1),
            busy_delay: Duration::from_secs(1),
        }
    }
}

/// Subscriptions as last read, and when.
type Cached = Option<(Instant, Arc<Vec<Subscription>>)>;

/// What clones share.
#[derive(Default)]
struct Shared {
    cache: Mutex<Cached>,
    limits: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

/// Outgoing webhooks over an event store: subscriptions, the jobs that
/// deliver stored events, the delivery log, replays and tests. Cheap to
/// clone; give a clone to the worker of the [`QUEUE`] queue
/// (`Worker::new(q).state(webhooks)`).
#[derive(Clone)]
pub struct Webhooks {
    store: Store,
    settings: Arc<Settings>,
    client: Arc<OnceLock<client::Client>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("store", &self.store)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    /// Webhooks over `store`, with the defaults: https only, no private
    /// addresses, retries after 1 min, 5 min and 15 min, 30 s per request,
    /// 8 requests at once per endpoint.
    pub fn new(store: Store) -> Webhooks {
        Webhooks {
            store,
            settings: Arc::default(),
            client: Arc::default(),
            shared: Arc::default(),
        }
    }

    fn settings(&mut self) -> &mut Settings {
        // A new client too: it depends on the settings.
        self.client = Arc::default();
        Arc::make_mut(&mut self.settings)
    }

    /// Reads `EVENTS_WEBHOOKS_ALLOW_PRIVATE`, `EVENTS_WEBHOOKS_REQUIRE_HTTPS`
    /// and `EVENTS_WEBHOOKS_RETRY` from `config` where set; a value that
    /// does not parse is an error naming it.
    pub fn config(mut self, config: &events_core::Config) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        if let Some(setting) = config.get(ALLOW_PRIVATE) {
            match parse_bool(setting) {
                Some(yes) => self.settings().allow_private = yes,
                None => problems.push(Invalid::new(ALLOW_PRIVATE, setting, "true or false")),
            }
        }
        if let Some(setting) = config.get(REQUIRE_HTTPS) {
            match parse_bool(setting) {
                Some(yes) => self.settings().require_https = yes,
                None => problems.push(Invalid::new(REQUIRE_HTTPS, setting, "true or false")),
            }
        }
        if let Some(setting) = config.get(RETRY) {
            match parse_schedule(setting.value()) {
                Some(steps) => self.settings().schedule = steps,
                None => problems.push(Invalid::new(
                    RETRY,
                    setting,
                    "a comma list of durations such as `1m,5m,15m` (or `none` for no retry)",
                )),
            }
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(ConfigError::new(problems))
        }
    }

    /// Lets webhooks go to loopback, private and other internal addresses
    /// (tests, internal networks).
    pub fn allow_private(mut self, yes: bool) -> Self {
        self.settings().allow_private = yes;
        self
    }

    /// Whether URLs must be `https` (default `true`).
    pub fn require_https(mut self, yes: bool) -> Self {
        self.settings().require_https = yes;
        self
    }

    /// The delays between attempts (one attempt more than delays),
    /// replacing 1 min, 5 min, 15 min. Empty: no retry.
    pub fn retry_schedule(mut self, steps: Vec<Duration>) -> Self {
        self.settings().schedule = steps;
        self
    }

    /// How far each delay may stray, as a fraction (default 0.1: ±10 %),
    /// so many failed deliveries do not all come back at once.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.settings().jitter = fraction.clamp(0.0, 1.0);
        self
    }

    /// The time one request may take, connecting and reading the start of
    /// the response included (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings().timeout = timeout;
        self
    }

    /// How many requests go to one endpoint (scheme, host and port) at once
    /// from this process (default 8). A delivery finding its endpoint busy
    /// goes back to the queue for a second, so a slow endpoint keeps no
    /// worker from delivering to the others.
    pub fn endpoint_concurrency(mut self, limit: usize) -> Self {
        self.settings().endpoint_concurrency = limit.max(1);
        self
    }

    /// Consecutive failed attempts that turn a subscription off (default
    /// 10).
    pub fn disable_after(mut self, failures: u32) -> Self {
        self.settings().disable_after = failures.max(1);
        self
    }

    /// How long the subscriptions read for matching events are reused
    /// (default 1 s; this handle's own changes are seen at once).
    pub fn cache_for(mut self, ttl: Duration) -> Self {
        self.settings().cache_for = ttl;
        self
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The delays between attempts.
    pub fn schedule(&self) -> &[Duration] {
        &self.settings.schedule
    }

    fn client(&self) -> &client::Client {
        self.client
            .get_or_init(|| client::Client::new(self.settings.allow_private))
    }

    /// Makes a subscription: checks the URL (scheme, the https rule, every
    /// address its host resolves to), the names and filters; generates its
    /// id (`sub_..`) and secret (`whsec_` and base64 of 32 random bytes).
    pub async fn subscribe(&self, new: NewSubscription) -> Result<Subscription, WebhookError> {
        self.check_url(&new.webhook_url).await?;
        check_names(&new.event_names)?;
        check_filters(&new.filters)?;
        let id = format!("sub_{}", random_hex(12)?);
        let secret = Secret::generate().map_err(|e| WebhookError::Random(e.to_string()))?;
        let mut subscription =
            Subscription::new(id, new.webhook_url.trim(), new.event_names, secret);
        subscription.filters = new.filters;
        subscription.active = new.active;
        subscription.description = new.description;
        self.store.create_subscription(&subscription).await?;
        self.invalidate();
        Ok(subscription)
    }

    /// Changes a subscription (a new URL is checked as in
    /// [`subscribe`](Self::subscribe)); `None` when there is none with this
    /// id. Turning it active again resets its failure count.
    pub async fn update(
        &self,
        id: &str,
        change: &SubscriptionChange,
    ) -> Result<Option<Subscription>, WebhookError> {
        if let Some(url) = &change.url {
            self.check_url(url).await?;
        }
        if let Some(names) = &change.event_names {
            check_names(names)?;
        }
        if let Some(filters) = &change.filters {
            check_filters(filters)?;
        }
        if let Some(secret) = &change.secret {
            Secret::parse(secret)?;
        }
        let updated = self.store.update_subscription(id, change).await?;
        self.invalidate();
        Ok(updated)
    }

    /// Deletes a subscription (its log stays; its queued deliveries are
    /// dropped when they run); whether it was there.
    pub async fn unsubscribe(&self, id: &str) -> Result<bool, WebhookError> {
        let gone = self.store.delete_subscription(id).await?;
        self.invalidate();
        Ok(gone)
    }

    /// Every subscription, oldest first.
    pub async fn subscriptions(&self) -> Result<Vec<Subscription>, WebhookError> {
        Ok(self.store.subscriptions().await?)
    }

    /// One subscription.
    pub async fn subscription(&self, id: &str) -> Result<Option<Subscription>, WebhookError> {
        Ok(self.store.subscription(id).await?)
    }

    /// The delivery log, newest first.
    pub async fn deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, WebhookError> {
        Ok(self.store.deliveries(query).await?)
    }

    /// The delivery jobs for `events` as stored: one per event and active
    /// subscription it matches, for the [`QUEUE`] queue. A job's id is its
    /// `webhook-id`, so enqueueing the same event twice delivers it once.
    pub async fn jobs_for(&self, events: &[StoredEvent]) -> Result<Vec<Job>, WebhookError> {
        let subscriptions = self.active_subscriptions().await?;
        let mut jobs = Vec::new();
        for event in events {
            deliver::jobs_of(
                &self.settings,
                &subscriptions,
                deliver::Source::of_stored(event),
                &mut jobs,
            )?;
        }
        Ok(jobs)
    }

    /// The delivery jobs for `events` before they are appended (for
    /// [`EventStore::append_with_jobs`](events_core::store::EventStore::append_with_jobs),
    /// so the events and their deliveries are stored in one write).
    pub async fn jobs_for_new(&self, events: &[NewEvent]) -> Result<Vec<Job>, WebhookError> {
        let subscriptions = self.active_subscriptions().await?;
        let mut jobs = Vec::new();
        for event in events {
            deliver::jobs_of(
                &self.settings,
                &subscriptions,
                deliver::Source::of_new(event),
                &mut jobs,
            )?;
        }
        Ok(jobs)
    }

    /// Enqueues the delivery jobs of `events` (stored by the caller) on
    /// `queue`, all or nothing; how many.
    pub async fn enqueue_for(
        &self,
        events: &[StoredEvent],
        queue: &Queue,
    ) -> Result<usize, WebhookError> {
        let jobs = self.jobs_for(events).await?;
        let count = jobs.len();
        if count > 0 {
            queue
                .enqueue_many(jobs)
                .await
                .map_err(WebhookError::Queue)?;
        }
        Ok(count)
    }

    /// Sends a signed sample event to `url` now (checked as subscriptions
    /// are) and tells what came back. It is signed with the secret of the
    /// subscription with this URL, if any, else with a one-off secret
    /// returned in the answer. Not logged.
    pub async fn test(
        &self,
        url: &str,
        event_name: Option<&str>,
    ) -> Result<TestDelivery, WebhookError> {
        deliver::test(self, url, event_name).await
    }

    /// Sends one logged delivery's event again now, to its subscription's
    /// current URL, with the same `webhook-id`, signed afresh; logged as a
    /// replay, which does not count toward disabling. The new log entry.
    pub async fn replay(&self, delivery_id: &str) -> Result<Delivery, WebhookError> {
        deliver::replay(self, delivery_id).await
    }

    /// Replays every delivery that failed since `since` and has not
    /// succeeded since (once per `webhook-id`), to subscriptions that still
    /// exist; how many were sent.
    pub async fn replay_failed_since(&self, since: SystemTime) -> Result<usize, WebhookError> {
        deliver::replay_failed_since(self, since).await
    }

    /// Checks a URL as a subscription's: syntax, the https rule, and every
    /// address it resolves to.
    async fn check_url(&self, url: &str) -> Result<guard::Target, WebhookError> {
        let target = guard::parse_url(url, self.settings.require_https)?;
        guard::resolve(&target, self.settings.allow_private).await?;
        Ok(target)
    }

    /// The active subscriptions, from the cache when fresh.
    async fn active_subscriptions(&self) -> Result<Arc<Vec<Subscription>>, WebhookError> {
        let ttl = self.settings.cache_for;
        if let Some((at, subs)) = &*lock(&self.shared.cache)
            && at.elapsed() < ttl
        {
            return Ok(subs.clone());
        }
        let subs: Arc<Vec<Subscription>> = Arc::new(
            self.store
                .subscriptions()
                .await?
                .into_iter()
                .filter(|s| s.active)
                .collect(),
        );
        *lock(&self.shared.cache) = Some((Instant::now(), subs.clone()));
        Ok(subs)
    }

    /// One subscription, from the cache of active ones when fresh (an
    /// inactive or deleted one is not there, and reads the store).
    async fn current_subscription(&self, id: &str) -> Result<Option<Subscription>, WebhookError> {
        let active = self.active_subscriptions().await?;
        if let Some(sub) = active.iter().find(|s| s.id == id) {
            return Ok(Some(sub.clone()));
        }
        Ok(self.store.subscription(id).await?)
    }

    fn invalidate(&self) {
        *lock(&self.shared.cache) = None;
    }

    /// The concurrency limit of one endpoint.
    fn limit(&self, endpoint: &str) -> Arc<tokio::sync::Semaphore> {
        lock(&self.shared.limits)
            .entry(endpoint.to_owned())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Semaphore::new(
                    self.settings.endpoint_concurrency,
                ))
            })
            .clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn check_names(names: &[String]) -> Result<(), WebhookError> {
    if names.is_empty() {
        return Err(WebhookError::Invalid(
            "`event_names` is empty: name at least one event or pattern, such as `*` or `appointment.*`".into(),
        ));
    }
    if let Some(blank) = names.iter().find(|n| n.trim().is_empty()) {
        return Err(WebhookError::Invalid(format!(
            "`event_names` holds an empty name (`{blank}`)"
        )));
    }
    Ok(())
}

fn check_filters(filters: &BTreeMap<String, serde_json::Value>) -> Result<(), WebhookError> {
    match filters
        .keys()
        .find(|k| k.trim().is_empty() || k.split('.').any(str::is_empty))
    {
        Some(bad) => Err(WebhookError::Invalid(format!(
            "the filter `{bad}` names no field: write a field name or a dotted path such as `customer.tier`"
        ))),
        None => Ok(()),
    }
}

fn parse_bool(setting: &Setting) -> Option<bool> {
    match setting.value().trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `1m,5m,15m` (or `none`/empty for no retry).
fn parse_schedule(text: &str) -> Option<Vec<Duration>> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("none") {
        return Some(Vec::new());
    }
    text.split(',')
        .map(|step| {
            let step = step.trim();
            match step.parse::<u64>() {
                Ok(seconds) => Some(Duration::from_secs(seconds)),
                Err(_) => humantime::parse_duration(step).ok(),
            }
        })
        .collect()
}

/// `bytes` random bytes in hex.
fn random_hex(bytes: usize) -> Result<String, WebhookError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| WebhookError::Random(e.to_string()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// A dispatcher given the `Webhooks` with
/// [`DispatcherBuilder::on_append`](events_core::DispatcherBuilder::on_append)
/// enqueues each stored event's deliveries in the same write as the event
/// (one transaction where the store and the queue share a SQLite file).
///
/// ```no_run
/// # async fn run(queue: events::Queue, store: events::store::Store) -> Result<(), Box<dyn std::error::Error>> {
/// let webhooks = events::webhooks::Webhooks::new(store.clone());
/// let dispatcher = events::Dispatcher::builder()
///     .queue(queue)
///     .store(store)
///     .on_append(webhooks.clone())
///     .build()?;
/// # Ok(()) }
/// ```
#[async_trait::async_trait]
impl events_core::store::AppendHook for Webhooks {
    async fn jobs(&self, events: &[NewEvent]) -> Result<Vec<Job>, StoreError> {
        self.jobs_for_new(events)
            .await
            .map_err(|error| match error {
                WebhookError::Store(error) => error,
                other => StoreError::Invalid(format!(
                    "the webhook deliveries of the stored events could not be made: {other}"
                )),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_from_durations_or_seconds() {
        assert_eq!(
            parse_schedule("1m, 5m,15m"),
            Some(DEFAULT_SCHEDULE.to_vec())
        );
        assert_eq!(
            parse_schedule("200ms,2,1h"),
            Some(vec![
                Duration::from_millis(200),
                Duration::from_secs(2),
                Duration::from_secs(3600)
            ])
        );
        assert_eq!(parse_schedule("none"), Some(vec![]));
        assert_eq!(parse_schedule("1m,soon"), None);
    }

    #[test]
    fn config_reads_the_three_variables_and_names_a_bad_one() {
        let config = events_core::Config::from_vars([
            (ALLOW_PRIVATE, "true"),
            (REQUIRE_HTTPS, "false"),
            (RETRY, "1s,2s"),
        ])
        .unwrap();
        let webhooks = Webhooks::new(Store::memory()).config(&config).unwrap();
        assert!(webhooks.settings.allow_private);
        assert!(!webhooks.settings.require_https);
        assert_eq!(
            webhooks.schedule(),
            [Duration::from_secs(1), Duration::from_secs(2)]
        );
        let defaults = Webhooks::new(Store::memory())
            .config(&events_core::Config::from_vars(Vec::<(&str, &str)>::new()).unwrap())
            .unwrap();
        assert!(!defaults.settings.allow_private && defaults.settings.require_https);
        assert_eq!(defaults.schedule(), DEFAULT_SCHEDULE);
        let bad = events_core::Config::from_vars([(RETRY, "1m,later")]).unwrap();
        let error = Webhooks::new(Store::memory()).config(&bad).unwrap_err();
        assert!(error.to_string().contains(RETRY), "{error}");
    }

    #[test]
    fn errors_tell_their_status() {
        assert_eq!(WebhookError::Invalid("x".into()).status(), 400);
        assert_eq!(WebhookError::Forbidden("x".into()).status(), 403);
        assert_eq!(WebhookError::NotFound("x".into()).status(), 404);
        assert_eq!(WebhookError::Http("x".into()).status(), 502);
        assert!(WebhookError::Invalid("x".into()).is_client_error());
        assert!(!WebhookError::Store(StoreError::Corrupt("x".into())).is_client_error());
    }
}
