//! Webhook subscriptions, their delivery log and the test delivery, through
//! the application's [`Webhooks`](events_webhooks::Webhooks) (feature
//! `webhooks`). Without one, these routes answer 501 saying what to give.

use axum::http::StatusCode;

use crate::error::ApiError;
use crate::{Answer, Shared};

#[cfg(feature = "webhooks")]
pub(crate) use with::{create, list, logs, remove, test, update};

/// What the routes answer without webhooks.
#[cfg_attr(feature = "webhooks", allow(dead_code))]
fn missing() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        if cfg!(feature = "webhooks") {
            "webhooks are not set up on this API: give it a Webhooks (Api::webhooks)"
        } else {
            "this build has no webhooks: turn on the `webhooks` feature of `events` (or `events-http`) and give the Api a Webhooks"
        },
    )
}

#[cfg(not(feature = "webhooks"))]
mod without {
    use axum::extract::State;

    use super::*;

    pub(crate) async fn list(State(_): State<Shared>) -> Answer {
        Err(missing())
    }
    pub(crate) async fn create(State(_): State<Shared>) -> Answer {
        Err(missing())
    }
    pub(crate) async fn update(State(_): State<Shared>) -> Answer {
        Err(missing())
    }
    pub(crate) async fn remove(State(_): State<Shared>) -> Answer {
        Err(missing())
    }
    pub(crate) async fn logs(State(_): State<Shared>) -> Answer {
        Err(missing())
    }
    pub(crate) async fn test(State(_): State<Shared>) -> Answer {
        Err(missing())
    }
}

#[cfg(not(feature = "webhooks"))]
pub(crate) use without::{create, list, logs, remove, test, update};

#[cfg(feature = "webhooks")]
mod with {
    use std::collections::BTreeMap;

    use axum::response::{IntoResponse, Response};
    use events_core::EventId;
    use events_core::store::{Delivery, DeliveryQuery, Subscription, SubscriptionChange};
    use events_webhooks::{NewSubscription, TestDelivery, WebhookError, Webhooks};
    use serde::Deserialize;
    use serde_json::{Value, json};

    use super::*;
    use crate::error::{Json, Path, Query};
    use crate::log::{limit, time_param};
    use crate::time;

    impl From<WebhookError> for ApiError {
        fn from(error: WebhookError) -> ApiError {
            match error {
                WebhookError::Store(store) => ApiError::from(store),
                WebhookError::Queue(_) => {
                    let message = events_core::error::Chain(&error).to_string();
                    tracing::warn!(error = %message, "the queue failed a request of the events HTTP API");
                    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
                }
                other => {
                    let status = StatusCode::from_u16(other.status())
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    ApiError::new(status, events_core::error::Chain(&other).to_string())
                }
            }
        }
    }

    /// The API's `Webhooks`, or a 501 before anything else is read.
    pub(crate) struct Hooks(Webhooks);

    impl axum::extract::FromRequestParts<Shared> for Hooks {
        type Rejection = ApiError;

        async fn from_request_parts(
            _: &mut axum::http::request::Parts,
            shared: &Shared,
        ) -> Result<Hooks, ApiError> {
            shared.webhooks.clone().map(Hooks).ok_or_else(missing)
        }
    }

    /// A subscription as the API shows it: its secret only when asked
    /// (at creation).
    fn subscription_json(subscription: &Subscription, with_secret: bool) -> Value {
        let mut value = json!({
            "id": subscription.id,
            "webhook_url": subscription.url,
            "event_names": subscription.event_names,
            "filters": subscription.filters,
            "active": subscription.active,
            "description": subscription.description,
            "created_at": time::format(subscription.created_at),
            "consecutive_failures": subscription.consecutive_failures,
            "disabled_reason": subscription.disabled_reason,
        });
        if with_secret {
            value["secret"] = Value::String(subscription.secret.clone());
        }
        value
    }

    /// `GET /events/subscriptions`: takes no parameter.
    pub(crate) async fn list(
        Hooks(webhooks): Hooks,
        Query(crate::log::NoParams {}): Query<crate::log::NoParams>,
    ) -> Answer {
        let subscriptions = webhooks.subscriptions().await?;
        Ok(axum::Json(json!({
            "subscriptions": subscriptions.iter().map(|s| subscription_json(s, false)).collect::<Vec<_>>(),
        })))
    }

    /// `POST /events/subscriptions`: 201 with the subscription and its
    /// secret, the one time it is shown.
    pub(crate) async fn create(
        Hooks(webhooks): Hooks,
        Json(new): Json<NewSubscription>,
    ) -> Result<Response, ApiError> {
        let subscription = webhooks.subscribe(new).await?;
        tracing::info!(subscription = %subscription.id, url = %subscription.url, "the events HTTP API made a webhook subscription");
        Ok((
            StatusCode::CREATED,
            axum::Json(subscription_json(&subscription, true)),
        )
            .into_response())
    }

    /// What `PUT /events/subscriptions/{id}` takes: each field given
    /// replaces the stored one.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct Change {
        webhook_url: Option<String>,
        event_names: Option<Vec<String>>,
        filters: Option<BTreeMap<String, Value>>,
        active: Option<bool>,
        description: Option<String>,
    }

    pub(crate) async fn update(
        Hooks(webhooks): Hooks,
        Path(id): Path<String>,
        Json(change): Json<Change>,
    ) -> Answer {
        let mut wanted = SubscriptionChange::new();
        wanted.url = change.webhook_url;
        wanted.event_names = change.event_names;
        wanted.filters = change.filters;
        wanted.active = change.active;
        wanted.description = change.description;
        match webhooks.update(&id, &wanted).await? {
            Some(subscription) => Ok(axum::Json(subscription_json(&subscription, false))),
            None => Err(no_subscription(&id)),
        }
    }

    pub(crate) async fn remove(Hooks(webhooks): Hooks, Path(id): Path<String>) -> Answer {
        if webhooks.unsubscribe(&id).await? {
            tracing::info!(subscription = %id, "the events HTTP API deleted a webhook subscription");
            Ok(axum::Json(json!({ "deleted": id })))
        } else {
            Err(no_subscription(&id))
        }
    }

    fn no_subscription(id: &str) -> ApiError {
        ApiError::not_found(format!("no subscription has id `{id}`"))
    }

    /// `GET /events/webhook-logs`.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct LogParams {
        #[serde(alias = "subscription")]
        subscription_id: Option<String>,
        event_id: Option<String>,
        failed: Option<String>,
        since: Option<String>,
        limit: Option<String>,
    }

    pub(crate) async fn logs(Hooks(webhooks): Hooks, Query(params): Query<LogParams>) -> Answer {
        let mut query = DeliveryQuery::new().limit(limit(params.limit.as_deref())?);
        if let Some(id) = params.subscription_id.as_deref().map(str::trim)
            && !id.is_empty()
        {
            query = query.subscription(id);
        }
        if let Some(id) = params.event_id.as_deref().map(str::trim) {
            let id: EventId = id.parse().map_err(|e: events_core::ParseEventIdError| {
                ApiError::bad_request(format!("`event_id`: {e}"))
            })?;
            query = query.event(id);
        }
        match params.failed.as_deref().map(str::trim) {
            None => {}
            Some("true" | "1") => query = query.succeeded(false),
            Some("false" | "0") => query = query.succeeded(true),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "`failed` is `true` (only failed attempts) or `false` (only successful ones), not `{other}`"
                )));
            }
        }
        if let Some(since) = time_param("since", params.since.as_deref())? {
            query = query.since(since);
        }
        let deliveries = webhooks.deliveries(&query).await?;
        Ok(axum::Json(json!({
            "deliveries": deliveries.iter().map(delivery_json).collect::<Vec<_>>(),
        })))
    }

    fn delivery_json(delivery: &Delivery) -> Value {
        json!({
            "id": delivery.id,
            "webhook_id": delivery.webhook_id,
            "subscription_id": delivery.subscription_id,
            "event_id": delivery.event_id.to_string(),
            "event_name": delivery.event_name,
            "url": delivery.url,
            "attempt": delivery.attempt,
            "at": time::format(delivery.at),
            "status": delivery.status,
            "latency_ms": delivery.latency_ms,
            "response": delivery.response,
            "error": delivery.error,
            "succeeded": delivery.succeeded,
            "replay": delivery.replay,
        })
    }

    /// What `POST /events/test-webhook` takes.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct TestRequest {
        webhook_url: String,
        event_name: Option<String>,
    }

    pub(crate) async fn test(Hooks(webhooks): Hooks, Json(request): Json<TestRequest>) -> Answer {
        let sent: TestDelivery = webhooks
            .test(&request.webhook_url, request.event_name.as_deref())
            .await?;
        Ok(axum::Json(json!({
            "url": sent.url,
            "webhook_id": sent.webhook_id,
            "event_name": sent.event_name,
            "subscription_id": sent.subscription_id,
            "secret": sent.secret,
            "status": sent.status,
            "response": sent.response,
            "latency_ms": sent.latency_ms,
            "error": sent.error,
            "succeeded": sent.succeeded,
        })))
    }
}
