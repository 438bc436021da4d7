//! Deliveries: the job one event makes for one subscription, the queued
//! listener that sends it (signing, the endpoint's concurrency limit, the
//! log, the subscription's failure count, the next retry), replays and
//! test sends.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use events_core::Mode;
use events_core::queue::Job;
use events_core::store::{
    Delivery, DeliveryQuery, DeliveryResult, NewEvent, StoredEvent, Subscription,
};
use events_core::{Context, Event as _};
use events_core::{Envelope, EventId, Metadata};
use events_macros::{event, listener};

use crate::client::Sent;
use crate::guard::{self, Target};
use crate::signature::{Secret, unix_seconds};
use crate::{Settings, TestDelivery, WebhookError, Webhooks, random_hex};

/// The queue delivery jobs wait on: give a worker of it the
/// [`Webhooks`] (`Worker::new(q).queues([QUEUE]).state(webhooks)`).
pub const QUEUE: &str = "webhooks";

/// The name of the listener that delivers (the jobs' routing key).
pub const LISTENER: &str = "events.webhooks.deliver";

/// One delivery of one stored event to one subscription: the job's
/// payload. Its body is built once, when the job is made, so every attempt
/// sends the same bytes.
#[event(name = "events.webhooks.delivery", crate = ::events_core)]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WebhookDelivery {
    /// The subscription.
    pub subscription_id: String,
    /// The `webhook-id`: the same on every attempt and replay.
    pub webhook_id: String,
    /// The event's id.
    pub event_id: String,
    /// The event's name.
    pub event_name: String,
    /// The body: `{"type", "timestamp", "data"}`.
    pub body: String,
}

/// Delivers one webhook: see [`Webhooks`] for the rules. It needs the
/// worker to hold a [`Webhooks`] (`Worker::new(q).state(webhooks)`);
/// without one the job fails at once, saying so. (It reads the state from
/// the context rather than taking `State<Webhooks>`, so a program that
/// links this crate does not need a `Webhooks` in every dispatcher.)
#[listener(
    queue = "webhooks",
    name = "events.webhooks.deliver",
    tries = 4,
    backoff = ["10s", "1m"],
    timeout = "5m",
    crate = ::events_core
)]
async fn deliver(delivery: &WebhookDelivery, ctx: &Context) -> Result<(), WebhookError> {
    let Some(webhooks) = ctx.state::<Webhooks>() else {
        if let Some(job) = ctx.job() {
            job.fail_without_retry(
                "no `Webhooks` was given to this worker: add it with `Worker::new(queue).state(webhooks)`",
            );
        }
        return Ok(());
    };
    webhooks.run(delivery, ctx).await
}

/// The parts of an event a delivery needs.
pub(crate) struct Source<'a> {
    id: EventId,
    name: &'a str,
    payload: &'a str,
    occurred_at: SystemTime,
    metadata: &'a Metadata,
}

impl<'a> Source<'a> {
    pub(crate) fn of_stored(event: &'a StoredEvent) -> Source<'a> {
        Source {
            id: event.id,
            name: &event.name,
            payload: &event.payload,
            occurred_at: event.occurred_at,
            metadata: &event.metadata,
        }
    }

    pub(crate) fn of_new(event: &'a NewEvent) -> Source<'a> {
        Source {
            id: event.id,
            name: &event.name,
            payload: &event.payload,
            occurred_at: event.occurred_at,
            metadata: &event.metadata,
        }
    }
}

/// `msg_<event id>_<subscription id>`: stable across attempts and replays.
fn webhook_id(event: EventId, subscription: &str) -> String {
    format!("msg_{event}_{subscription}")
}

/// The body: `{"type": name, "timestamp": RFC 3339, "data": payload}`.
pub(crate) fn body(
    name: &str,
    occurred_at: SystemTime,
    payload: &str,
) -> Result<String, WebhookError> {
    serde_json::from_str::<serde::de::IgnoredAny>(payload)
        .map_err(|e| WebhookError::Invalid(format!("the payload of `{name}` is not JSON ({e})")))?;
    let timestamp = events_core::time::rfc3339_millis(occurred_at);
    let quoted = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
    Ok(format!(
        r#"{{"type":{},"timestamp":{},"data":{}}}"#,
        quoted(name),
        quoted(&timestamp),
        payload.trim()
    ))
}

/// Adds to `jobs` one job per subscription in `subscriptions` that
/// `event` matches.
pub(crate) fn jobs_of(
    settings: &Settings,
    subscriptions: &[Subscription],
    event: Source<'_>,
    jobs: &mut Vec<Job>,
) -> Result<(), WebhookError> {
    let named: Vec<&Subscription> = subscriptions
        .iter()
        .filter(|s| {
            s.event_names
                .iter()
                .any(|p| events_core::matches_pattern(p, event.name))
        })
        .collect();
    if named.is_empty() {
        return Ok(());
    }
    // The payload is parsed only when a filter needs it.
    let value = if named.iter().any(|s| !s.filters.is_empty()) {
        Some(
            serde_json::from_str::<serde_json::Value>(event.payload).map_err(|e| {
                WebhookError::Invalid(format!("the payload of `{}` is not JSON ({e})", event.name))
            })?,
        )
    } else {
        None
    };
    let body = body(event.name, event.occurred_at, event.payload)?;
    let options = match events_core::registry().listener(LISTENER).map(|l| l.mode()) {
        Some(Mode::Queued(options)) => options,
        _ => {
            return Err(WebhookError::Invalid(format!(
                "the queued listener `{LISTENER}` is not registered: is events-webhooks linked?"
            )));
        }
    };
    let envelope = Envelope::from_parts(event.id, event.occurred_at, event.metadata.clone());
    for sub in named {
        if let Some(value) = &value
            && !sub.matches(event.name, value)
        {
            continue;
        }
        let delivery = WebhookDelivery {
            subscription_id: sub.id.clone(),
            webhook_id: webhook_id(event.id, &sub.id),
            event_id: event.id.to_string(),
            event_name: event.name.to_owned(),
            body: body.clone(),
        };
        let payload = serde_json::to_string(&delivery)
            .map_err(|e| WebhookError::Invalid(format!("a delivery could not be written: {e}")))?;
        let mut job = Job::new(
            LISTENER,
            WebhookDelivery::NAME,
            payload,
            &options,
            &envelope,
        );
        job.id.clone_from(&delivery.webhook_id);
        job.max_tries = u32::try_from(settings.schedule.len())
            .unwrap_or(u32::MAX - 1)
            .saturating_add(1);
        jobs.push(job);
    }
    Ok(())
}

/// How an answer counts.
fn classify(sent: &Sent) -> DeliveryResult {
    match sent.status {
        Some(status) if (200..300).contains(&status) => DeliveryResult::Succeeded,
        Some(410) => DeliveryResult::Gone("the endpoint answered HTTP 410 Gone".to_owned()),
        Some(status) => DeliveryResult::Failed(format!("the endpoint answered HTTP {status}")),
        None => DeliveryResult::Failed(
            sent.error
                .clone()
                .unwrap_or_else(|| "no response".to_owned()),
        ),
    }
}

/// A random fraction in [0, 1).
fn unit_random() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// `delay` moved by up to ±`fraction` of itself.
pub(crate) fn jittered(delay: Duration, fraction: f64) -> Duration {
    let factor = 1.0 + fraction * (2.0 * unit_random() - 1.0);
    delay.mul_f64(factor.max(0.0))
}

/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

impl Webhooks {
    /// One attempt of a queued delivery.
    pub(crate) async fn run(
        &self,
        delivery: &WebhookDelivery,
        ctx: &Context,
    ) -> Result<(), WebhookError> {
        let Some(job) = ctx.job() else {
            return Err(WebhookError::Invalid(
                "a webhook delivery runs only as a queued job".into(),
            ));
        };
        let Some(sub) = self.current_subscription(&delivery.subscription_id).await? else {
            tracing::debug!(webhook = %delivery.webhook_id, "the subscription is gone: delivery dropped");
            return Ok(());
        };
        if !sub.active {
            tracing::debug!(webhook = %delivery.webhook_id, "the subscription is off: delivery dropped");
            return Ok(());
        }
        let target = match guard::parse_url(&sub.url, self.settings.require_https) {
            Ok(target) => target,
            Err(e) => {
                let sent = Sent {
                    error: Some(e.to_string()),
                    ..Sent::default()
                };
                self.settle(&sub, delivery, job.attempt(), &sent, false)
                    .await?;
                job.fail_without_retry(e.to_string());
                return Ok(());
            }
        };
        let limit = self.limit(&target.endpoint());
        let permit =
            match tokio::time::timeout(Duration::from_millis(100), limit.acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => {
                    // The endpoint is busy: back to the queue, this try not
                    // counted, so the worker delivers elsewhere meanwhile.
                    job.release_after(jittered(self.settings.busy_delay, 0.5));
                    return Ok(());
                }
            };
        let sent = self
            .send(&sub, &target, &delivery.webhook_id, &delivery.body)
            .await;
        drop(permit);
        let result = self
            .settle(&sub, delivery, job.attempt(), &sent, false)
            .await?;
        match result {
            (DeliveryResult::Succeeded, _) => {}
            (DeliveryResult::Gone(why), _) => job.fail_without_retry(why),
            (DeliveryResult::Failed(why), still_active) => {
                if !still_active {
                    job.fail_without_retry(format!("{why}; the subscription is now off"));
                } else {
                    let attempt = job.attempt().max(1) as usize;
                    let scheduled = self.settings.schedule.get(attempt - 1).copied();
                    let asked = match sent.status {
                        Some(429 | 503) => sent.retry_after.map(|d| d.min(MAX_RETRY_AFTER)),
                        _ => None,
                    };
                    match (asked, scheduled) {
                        (Some(after), _) => job.retry_after(after, why),
                        (None, Some(step)) => {
                            job.retry_after(jittered(step, self.settings.jitter), why)
                        }
                        (None, None) => job.fail_without_retry(format!(
                            "{why}; no retry left after {attempt} attempts"
                        )),
                    }
                }
            }
            (other, _) => {
                tracing::warn!(?other, "an unknown delivery result");
            }
        }
        Ok(())
    }

    /// Signs and posts one body.
    pub(crate) async fn send(
        &self,
        sub: &Subscription,
        target: &Target,
        webhook_id: &str,
        body: &str,
    ) -> Sent {
        let secret = match Secret::parse(&sub.secret) {
            Ok(secret) => secret,
            Err(e) => {
                return Sent {
                    error: Some(format!("the subscription's secret is unusable: {e}")),
                    ..Sent::default()
                };
            }
        };
        let timestamp = unix_seconds(SystemTime::now());
        let signature = secret.sign(webhook_id, timestamp, body.as_bytes());
        let headers = [
            ("webhook-id", webhook_id.to_owned()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ];
        self.client()
            .post(
                target,
                &headers,
                Bytes::copy_from_slice(body.as_bytes()),
                self.settings.timeout,
            )
            .await
    }

    /// Logs one attempt and, unless it is a replay, counts it toward the
    /// subscription. Returns how it counted and whether the subscription
    /// is still on.
    async fn settle(
        &self,
        sub: &Subscription,
        delivery: &WebhookDelivery,
        attempt: u32,
        sent: &Sent,
        replay: bool,
    ) -> Result<(DeliveryResult, bool), WebhookError> {
        let result = classify(sent);
        let entry = log_entry(sub, delivery, attempt, sent, &result, replay)?;
        if let Err(e) = self.store.log_delivery(&entry).await {
            tracing::warn!(webhook = %delivery.webhook_id, error = %events_core::error::Chain(&e), "a delivery attempt could not be logged");
        }
        if replay {
            return Ok((result, sub.active));
        }
        let state = self
            .store
            .note_delivery(&sub.id, &result, self.settings.disable_after)
            .await?;
        let active = state.as_ref().is_some_and(|s| s.active);
        if let Some(state) = state
            && state.disabled_now
        {
            tracing::warn!(
                subscription = %sub.id,
                reason = state.disabled_reason.as_deref().unwrap_or(""),
                "webhook subscription turned off"
            );
            self.invalidate();
        }
        Ok((result, active))
    }
}

/// The log entry of one attempt.
fn log_entry(
    sub: &Subscription,
    delivery: &WebhookDelivery,
    attempt: u32,
    sent: &Sent,
    result: &DeliveryResult,
    replay: bool,
) -> Result<Delivery, WebhookError> {
    let event_id = delivery
        .event_id
        .parse::<EventId>()
        .map_err(|e| WebhookError::Invalid(format!("a delivery names a bad event id: {e}")))?;
    let error = match result {
        DeliveryResult::Succeeded => None,
        DeliveryResult::Failed(why) | DeliveryResult::Gone(why) => Some(why.clone()),
        _ => sent.error.clone(),
    };
    let mut entry = Delivery::new(
        format!("{}_{}", delivery.webhook_id, random_hex(6)?),
        delivery.webhook_id.clone(),
        sub.id.clone(),
        event_id,
        delivery.event_name.clone(),
        sub.url.clone(),
        attempt,
    );
    entry.status = sent.status;
    entry.latency_ms = sent.latency.as_millis().min(u128::from(u64::MAX)) as u64;
    entry.response.clone_from(&sent.response);
    entry.error = error;
    entry.succeeded = matches!(result, DeliveryResult::Succeeded);
    entry.replay = replay;
    Ok(entry)
}

/// [`Webhooks::test`].
pub(crate) async fn test(
    webhooks: &Webhooks,
    url: &str,
    event_name: Option<&str>,
) -> Result<TestDelivery, WebhookError> {
    let target = webhooks.check_url(url).await?;
    let existing = webhooks
        .subscriptions()
        .await?
        .into_iter()
        .find(|s| s.url == url.trim());
    let (subscription_id, one_off, secret) = match existing {
        Some(sub) => (Some(sub.id), None, sub.secret),
        None => {
            let secret = Secret::generate().map_err(|e| WebhookError::Random(e.to_string()))?;
            (None, Some(secret.clone()), secret)
        }
    };
    let event_name = event_name.unwrap_or("webhook.test").to_owned();
    let body = body(
        &event_name,
        SystemTime::now(),
        r#"{"message":"a test delivery from events-webhooks"}"#,
    )?;
    let webhook_id = format!("msg_test_{}", random_hex(12)?);
    let sub = Subscription::new(
        subscription_id.clone().unwrap_or_default(),
        url.trim(),
        vec![event_name.clone()],
        secret,
    );
    let limit = webhooks.limit(&target.endpoint());
    let _permit = limit
        .acquire_owned()
        .await
        .map_err(|e| WebhookError::Http(e.to_string()))?;
    let sent = webhooks.send(&sub, &target, &webhook_id, &body).await;
    if sent.refused {
        return Err(WebhookError::Forbidden(sent.error.unwrap_or_default()));
    }
    let succeeded = matches!(classify(&sent), DeliveryResult::Succeeded);
    Ok(TestDelivery {
        url: url.trim().to_owned(),
        webhook_id,
        event_name,
        subscription_id,
        secret: one_off,
        status: sent.status,
        response: sent.response,
        latency_ms: sent.latency.as_millis().min(u128::from(u64::MAX)) as u64,
        error: sent.error,
        succeeded,
    })
}

/// The `(event id, subscription id)` a delivery id names:
/// `msg_<event>_<subscription>_<nonce>`.
fn parse_delivery_id(id: &str) -> Option<(EventId, String)> {
    let rest = id.strip_prefix("msg_")?;
    let (event, rest) = rest.split_once('_')?;
    let (subscription, _nonce) = rest.rsplit_once('_')?;
    Some((event.parse().ok()?, subscription.to_owned()))
}

/// Finds a log entry by id.
async fn find_delivery(webhooks: &Webhooks, id: &str) -> Result<Option<Delivery>, WebhookError> {
    let query = match parse_delivery_id(id) {
        Some((event, subscription)) => DeliveryQuery::new()
            .event(event)
            .subscription(subscription)
            .limit(usize::MAX),
        None => return Ok(None),
    };
    Ok(webhooks
        .deliveries(&query)
        .await?
        .into_iter()
        .find(|d| d.id == id))
}

/// [`Webhooks::replay`].
pub(crate) async fn replay(
    webhooks: &Webhooks,
    delivery_id: &str,
) -> Result<Delivery, WebhookError> {
    let Some(logged) = find_delivery(webhooks, delivery_id).await? else {
        return Err(WebhookError::NotFound(format!(
            "no delivery `{delivery_id}` in the log"
        )));
    };
    replay_logged(webhooks, &logged).await
}

async fn replay_logged(webhooks: &Webhooks, logged: &Delivery) -> Result<Delivery, WebhookError> {
    let Some(sub) = webhooks.store.subscription(&logged.subscription_id).await? else {
        return Err(WebhookError::NotFound(format!(
            "the subscription `{}` of delivery `{}` is gone",
            logged.subscription_id, logged.id
        )));
    };
    let Some(event) = webhooks.store.event(logged.event_id).await? else {
        return Err(WebhookError::NotFound(format!(
            "the event `{}` of delivery `{}` is no longer in the log",
            logged.event_id, logged.id
        )));
    };
    let target = guard::parse_url(&sub.url, webhooks.settings.require_https)?;
    let delivery = WebhookDelivery {
        subscription_id: sub.id.clone(),
        webhook_id: logged.webhook_id.clone(),
        event_id: event.id.to_string(),
        event_name: event.name.clone(),
        body: body(&event.name, event.occurred_at, &event.payload)?,
    };
    let limit = webhooks.limit(&target.endpoint());
    let permit = limit
        .acquire_owned()
        .await
        .map_err(|e| WebhookError::Http(e.to_string()))?;
    let sent = webhooks
        .send(&sub, &target, &delivery.webhook_id, &delivery.body)
        .await;
    drop(permit);
    let result = classify(&sent);
    let entry = log_entry(&sub, &delivery, logged.attempt, &sent, &result, true)?;
    webhooks.store.log_delivery(&entry).await?;
    Ok(entry)
}

/// [`Webhooks::replay_failed_since`].
pub(crate) async fn replay_failed_since(
    webhooks: &Webhooks,
    since: SystemTime,
) -> Result<usize, WebhookError> {
    let log = webhooks
        .deliveries(&DeliveryQuery::new().since(since).limit(usize::MAX))
        .await?;
    // Newest first: a webhook whose newest entry succeeded is done.
    let mut seen = HashSet::new();
    let mut failed = Vec::new();
    for entry in log {
        if seen.insert(entry.webhook_id.clone()) && !entry.succeeded {
            failed.push(entry);
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    let mut sent = 0;
    let mut first_error = None;
    for entry in failed {
        let webhooks = webhooks.clone();
        tasks.spawn(async move { replay_logged(&webhooks, &entry).await });
        // At most 16 at once; each endpoint's own limit applies too.
        while tasks.len() >= 16 {
            collect(tasks.join_next().await, &mut sent, &mut first_error);
        }
    }
    while let Some(done) = tasks.join_next().await {
        collect(Some(done), &mut sent, &mut first_error);
    }
    match first_error {
        Some(error) if sent == 0 => Err(error),
        _ => Ok(sent),
    }
}

fn collect(
    done: Option<Result<Result<Delivery, WebhookError>, tokio::task::JoinError>>,
    sent: &mut usize,
    first_error: &mut Option<WebhookError>,
) {
    match done {
        Some(Ok(Ok(_))) => *sent += 1,
        // A subscription or event gone since: skipped.
        Some(Ok(Err(WebhookError::NotFound(why)))) => {
            tracing::debug!(%why, "a failed delivery was not replayed");
        }
        Some(Ok(Err(e))) => {
            tracing::warn!(error = %events_core::error::Chain(&e), "a failed delivery could not be replayed");
            first_error.get_or_insert(e);
        }
        Some(Err(e)) => {
            first_error.get_or_insert(WebhookError::Http(format!("a replay panicked: {e}")));
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_type_timestamp_data() {
        let at = events_core::queue::from_millis(1_700_000_000_123);
        let text = body("appointment.created", at, r#" {"id": 7} "#).unwrap();
        assert_eq!(
            text,
            r#"{"type":"appointment.created","timestamp":"2023-11-14T22:13:20.123Z","data":{"id": 7}}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["data"]["id"], 7);
        assert!(body("x", at, "{not json").is_err());
    }

    #[test]
    fn a_stored_time_past_the_year_9999_still_makes_a_body() {
        let at = events_core::queue::from_millis(253_402_300_800_000);
        let text = body("x", at, "{}").unwrap();
        assert!(
            text.contains(r#""timestamp":"10000-01-01T00:00:00.000Z""#),
            "{text}"
        );
    }

    #[test]
    fn delivery_ids_name_their_event_and_subscription() {
        let event = EventId::new();
        let id = format!("{}_{}", webhook_id(event, "sub_ab12"), "0011aa");
        assert_eq!(parse_delivery_id(&id), Some((event, "sub_ab12".to_owned())));
        assert_eq!(parse_delivery_id("dlv_1"), None);
    }

    #[test]
    fn answers_count_as_the_rule_says() {
        let status = |s: u16| Sent {
            status: Some(s),
            ..Sent::default()
        };
        assert_eq!(classify(&status(200)), DeliveryResult::Succeeded);
        assert_eq!(classify(&status(204)), DeliveryResult::Succeeded);
        assert!(matches!(classify(&status(301)), DeliveryResult::Failed(_)));
        assert!(matches!(classify(&status(500)), DeliveryResult::Failed(_)));
        assert!(matches!(classify(&status(410)), DeliveryResult::Gone(_)));
        let timeout = Sent {
            error: Some("no response within 30s".into()),
            ..Sent::default()
        };
        assert_eq!(
            classify(&timeout),
            DeliveryResult::Failed("no response within 30s".into())
        );
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(60), 0.1);
            assert!(
                d >= Duration::from_secs(54) && d <= Duration::from_secs(66),
                "{d:?}"
            );
        }
        assert_eq!(
            jittered(Duration::from_secs(5), 0.0),
            Duration::from_secs(5)
        );
    }
}
