//! What the event log keeps for outgoing webhooks: subscriptions and the
//! delivery log. Signing, sending and retrying live in `events-webhooks`;
//! stores only keep the records.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::envelope::EventId;

/// A webhook subscription: where matching stored events are delivered.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Subscription {
    /// Its id.
    pub id: String,
    /// The endpoint's URL.
    pub url: String,
    /// Event names or patterns it takes (`*`, `appointment.*`).
    pub event_names: Vec<String>,
    /// Payload fields that must equal these values (top-level field name,
    /// or a dotted path such as `customer.tier`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub filters: BTreeMap<String, serde_json::Value>,
    /// Whether deliveries go out.
    pub active: bool,
    /// The signing secret, `whsec_` and base64.
    pub secret: String,
    /// What it is for, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When it was made, to the millisecond.
    #[serde(with = "crate::envelope::epoch_millis")]
    pub created_at: SystemTime,
    /// Failed deliveries since the last success.
    pub consecutive_failures: u32,
    /// Why it was turned off, when deliveries turned it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
}

impl Subscription {
    /// An active subscription of `url` to `event_names`, with its id and
    /// secret, made now.
    pub fn new(
        id: impl Into<String>,
        url: impl Into<String>,
        event_names: Vec<String>,
        secret: impl Into<String>,
    ) -> Subscription {
        Subscription {
            id: id.into(),
            url: url.into(),
            event_names,
            filters: BTreeMap::new(),
            active: true,
            secret: secret.into(),
            description: None,
            created_at: crate::queue::from_millis(crate::queue::millis(SystemTime::now())),
            consecutive_failures: 0,
            disabled_reason: None,
        }
    }

    /// Whether an event of this name and payload is for this subscription
    /// (active or not): a name pattern matches and every filter holds.
    pub fn matches(&self, name: &str, payload: &serde_json::Value) -> bool {
        self.event_names
            .iter()
            .any(|p| crate::pattern::matches(p, name))
            && self
                .filters
                .iter()
                .all(|(path, want)| field(payload, path) == Some(want))
    }
}

/// The value at a dotted path of a JSON object.
fn field<'v>(value: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

/// A change to a subscription: each field given replaces the stored one.
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SubscriptionChange {
    /// A new URL.
    #[serde(default, alias = "webhook_url")]
    pub url: Option<String>,
    /// New names or patterns.
    #[serde(default)]
    pub event_names: Option<Vec<String>>,
    /// New filters.
    #[serde(default)]
    pub filters: Option<BTreeMap<String, serde_json::Value>>,
    /// On or off; on again resets the failure count and reason.
    #[serde(default)]
    pub active: Option<bool>,
    /// A new description.
    #[serde(default)]
    pub description: Option<String>,
    /// A new secret.
    #[serde(default)]
    pub secret: Option<String>,
}

impl SubscriptionChange {
    /// No change.
    pub fn new() -> SubscriptionChange {
        SubscriptionChange::default()
    }

    /// Turns it on or off.
    pub fn active(mut self, active: bool) -> Self {
        self.active = Some(active);
        self
    }

    /// Changes the URL.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Changes the names or patterns.
    pub fn event_names(mut self, names: Vec<String>) -> Self {
        self.event_names = Some(names);
        self
    }

    /// Applies the change to `subscription`: the one rule every store
    /// follows.
    pub fn apply(&self, subscription: &mut Subscription) {
        if let Some(url) = &self.url {
            subscription.url.clone_from(url);
        }
        if let Some(names) = &self.event_names {
            subscription.event_names.clone_from(names);
        }
        if let Some(filters) = &self.filters {
            subscription.filters.clone_from(filters);
        }
        if let Some(description) = &self.description {
            subscription.description = Some(description.clone());
        }
        if let Some(secret) = &self.secret {
            subscription.secret.clone_from(secret);
        }
        if let Some(active) = self.active {
            if active && !subscription.active {
                subscription.consecutive_failures = 0;
                subscription.disabled_reason = None;
            }
            subscription.active = active;
        }
    }
}

/// How one delivery attempt ended, as it counts toward its subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryResult {
    /// A 2xx: the failure count goes back to 0.
    Succeeded,
    /// Anything else: one more consecutive failure, with why.
    Failed(String),
    /// The endpoint said it is gone (HTTP 410): off at once.
    Gone(String),
}

impl DeliveryResult {
    /// Applies the result to `subscription`: the one rule every store
    /// follows. Returns whether this result turned it off.
    pub fn apply(&self, subscription: &mut Subscription, disable_after: u32) -> bool {
        match self {
            DeliveryResult::Succeeded => {
                subscription.consecutive_failures = 0;
                false
            }
            DeliveryResult::Failed(why) => {
                subscription.consecutive_failures =
                    subscription.consecutive_failures.saturating_add(1);
                if subscription.active && subscription.consecutive_failures >= disable_after.max(1)
                {
                    subscription.active = false;
                    subscription.disabled_reason = Some(format!(
                        "{} consecutive deliveries failed; the last: {why}",
                        subscription.consecutive_failures
                    ));
                    true
                } else {
                    false
                }
            }
            DeliveryResult::Gone(why) => {
                subscription.consecutive_failures =
                    subscription.consecutive_failures.saturating_add(1);
                let was = subscription.active;
                subscription.active = false;
                subscription.disabled_reason = Some(why.clone());
                was
            }
        }
    }
}

/// A subscription's state after [`note_delivery`](super::EventStore::note_delivery).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriptionState {
    /// Whether it is still on.
    pub active: bool,
    /// Failed deliveries since the last success.
    pub consecutive_failures: u32,
    /// Whether this delivery turned it off.
    pub disabled_now: bool,
    /// Why it is off.
    pub disabled_reason: Option<String>,
}

impl SubscriptionState {
    /// The state of `subscription`.
    pub fn of(subscription: &Subscription, disabled_now: bool) -> SubscriptionState {
        SubscriptionState {
            active: subscription.active,
            consecutive_failures: subscription.consecutive_failures,
            disabled_now,
            disabled_reason: subscription.disabled_reason.clone(),
        }
    }
}

/// One delivery attempt, as the delivery log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Delivery {
    /// The attempt's own id.
    pub id: String,
    /// The `webhook-id` header: the same on every attempt and replay of one
    /// event to one subscription.
    pub webhook_id: String,
    /// The subscription.
    pub subscription_id: String,
    /// The event delivered.
    pub event_id: EventId,
    /// Its name.
    pub event_name: String,
    /// The URL posted to.
    pub url: String,
    /// 1 for the first try.
    pub attempt: u32,
    /// When it was sent, to the millisecond.
    #[serde(with = "crate::envelope::epoch_millis")]
    pub at: SystemTime,
    /// The HTTP status, when one came back.
    pub status: Option<u16>,
    /// Milliseconds from sending to the end of the response.
    pub latency_ms: u64,
    /// The start of the response body.
    pub response: Option<String>,
    /// Why it failed, in words (`None` on success).
    pub error: Option<String>,
    /// Whether the endpoint answered 2xx.
    pub succeeded: bool,
    /// Whether it was a manual replay (replays do not count toward
    /// disabling).
    pub replay: bool,
}

/// Which delivery log entries to read, newest first.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct DeliveryQuery {
    /// Of this subscription.
    pub subscription_id: Option<String>,
    /// Of this event.
    pub event_id: Option<EventId>,
    /// Only failed (`Some(false)`) or only succeeded (`Some(true)`).
    pub succeeded: Option<bool>,
    /// Sent at or after.
    pub since: Option<SystemTime>,
    /// At most this many (default 100).
    pub limit: usize,
}

impl DeliveryQuery {
    /// The newest 100 entries.
    pub fn new() -> DeliveryQuery {
        DeliveryQuery {
            limit: 100,
            ..DeliveryQuery::default()
        }
    }

    /// Of one subscription.
    pub fn subscription(mut self, id: impl Into<String>) -> Self {
        self.subscription_id = Some(id.into());
        self
    }

    /// Of one event.
    pub fn event(mut self, id: EventId) -> Self {
        self.event_id = Some(id);
        self
    }

    /// Only failures (`false`) or only successes (`true`).
    pub fn succeeded(mut self, succeeded: bool) -> Self {
        self.succeeded = Some(succeeded);
        self
    }

    /// Sent at or after `at`.
    pub fn since(mut self, at: SystemTime) -> Self {
        self.since = Some(at);
        self
    }

    /// At most `limit`.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Whether `delivery` passes the filters (the limit aside).
    pub fn admits(&self, delivery: &Delivery) -> bool {
        self.subscription_id
            .as_ref()
            .is_none_or(|id| &delivery.subscription_id == id)
            && self.event_id.is_none_or(|id| delivery.event_id == id)
            && self.succeeded.is_none_or(|s| delivery.succeeded == s)
            && self.since.is_none_or(|t| delivery.at >= t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_matches_by_pattern_and_filters() {
        let mut sub = Subscription::new("s", "https://x", vec!["appointment.*".into()], "whsec_x");
        let payload = serde_json::json!({"status": "paid", "customer": {"tier": "gold"}});
        assert!(sub.matches("appointment.created", &payload));
        assert!(!sub.matches("order.created", &payload));
        sub.filters
            .insert("customer.tier".into(), serde_json::json!("gold"));
        assert!(sub.matches("appointment.created", &payload));
        sub.filters
            .insert("status".into(), serde_json::json!("due"));
        assert!(!sub.matches("appointment.created", &payload));
    }

    #[test]
    fn ten_failures_disable_and_a_success_resets() {
        let mut sub = Subscription::new("s", "https://x", vec!["*".into()], "whsec_x");
        for _ in 0..9 {
            assert!(!DeliveryResult::Failed("500".into()).apply(&mut sub, 10));
        }
        assert!(!DeliveryResult::Succeeded.apply(&mut sub, 10));
        assert_eq!(sub.consecutive_failures, 0);
        for n in 1..=10 {
            let off = DeliveryResult::Failed("HTTP 500".into()).apply(&mut sub, 10);
            assert_eq!(off, n == 10);
        }
        assert!(!sub.active);
        assert!(
            sub.disabled_reason
                .as_deref()
                .unwrap()
                .contains("10 consecutive")
        );
        SubscriptionChange::new().active(true).apply(&mut sub);
        assert!(sub.active && sub.consecutive_failures == 0 && sub.disabled_reason.is_none());
        assert!(DeliveryResult::Gone("HTTP 410".into()).apply(&mut sub, 10));
        assert!(!sub.active);
    }
}
