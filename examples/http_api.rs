//! The event log's HTTP API on the appointment story:
//!
//! ```text
//! cargo run --example http_api --features http,webhooks
//! cargo run --example http_api --features http,webhooks -- --port 0
//! ```
//!
//! It stores a few days of appointment events in a memory store (bookings,
//! confirmations, cancellations, invoices naming their appointment as a
//! related entity, two actors), makes a webhook subscription, and serves
//! the API at `http://127.0.0.1:<port>/events` (`--port N`, else `PORT`,
//! else 8080; 0 picks a free one). The token is `EVENTS_HTTP_TOKEN`, or
//! `example-token`. The lines it prints are `curl` commands to try;
//! `/events/openapi.json` describes every route. Webhooks may go to
//! loopback and `http://` here (`EVENTS_WEBHOOKS_ALLOW_PRIVATE` and
//! `EVENTS_WEBHOOKS_REQUIRE_HTTPS` as an example's settings), so
//! `POST /events/test-webhook` can reach a local receiver. Ctrl-C stops it.

#[path = "support/port.rs"]
mod port;

use std::time::{Duration, SystemTime};

use events::http::Api;
use events::store::{Entity, NewEvent, Store};
use events::webhooks::{NewSubscription, Webhooks};

/// Three days of the appointment story, ending now.
fn story() -> Vec<NewEvent> {
    let start = SystemTime::now() - Duration::from_secs(3 * 86_400);
    let mut events = Vec::new();
    for n in 1..=12u64 {
        let at = start + Duration::from_secs(n * 5_400);
        let actor = if n % 3 == 0 { "bob" } else { "alice" };
        let appointment = Entity::new("appointment", n.to_string());
        events.push(
            NewEvent::new(
                "appointment.created",
                format!(r#"{{"appointment_id":{n},"source":"web","customer":{{"tier":"gold"}}}}"#),
            )
            .entity(appointment.clone())
            .occurred_at(at)
            .with("actor_id", actor),
        );
        let later = at + Duration::from_secs(1_800);
        if n % 4 == 0 {
            events.push(
                NewEvent::new(
                    "appointment.cancelled",
                    format!(r#"{{"appointment_id":{n},"reason":"ill"}}"#),
                )
                .entity(appointment)
                .occurred_at(later)
                .with("actor_id", actor),
            );
        } else {
            events.push(
                NewEvent::new(
                    "appointment.confirmed",
                    format!(r#"{{"appointment_id":{n}}}"#),
                )
                .entity(appointment)
                .occurred_at(later)
                .with("actor_id", actor),
            );
            events.push(
                NewEvent::new(
                    "invoice.issued",
                    format!(r#"{{"invoice_id":{},"amount":{}}}"#, 100 + n, 40 + n * 5),
                )
                .version(2)
                .entity(Entity::new("invoice", (100 + n).to_string()))
                .occurred_at(later + Duration::from_secs(60))
                .with("related", format!("appointment:{n}")),
            );
        }
    }
    events
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = port::port()?;
    let token = std::env::var(events::http::TOKEN_VAR)
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "example-token".to_owned());
    let store = Store::memory();
    store.append(story()).await?;
    let webhooks = Webhooks::new(store.clone())
        .allow_private(true)
        .require_https(false);
    webhooks
        .subscribe(
            NewSubscription::new("http://127.0.0.1:9/audit", ["appointment.*"])
                .description("the audit system (nothing listens on port 9)")
                .active(false),
        )
        .await?;
    let api = Api::new(store).token(&token).webhooks(webhooks);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("api: {base}/events");
    let auth = format!("-H 'Authorization: Bearer {token}'");
    for path in [
        "/events?limit=5&order=desc",
        "/events?event_name=appointment.*&actor=bob",
        "/events/timeline?entity_type=appointment&entity_id=1&related=true",
        "/events/stats?bucket=day",
        "/events/schemas",
        "/events/subscriptions",
        "/events/openapi.json",
    ] {
        println!("  curl -s {auth} '{base}{path}'");
    }
    events::http::axum::serve(listener, api.router())
        .with_graceful_shutdown(events::shutdown_signal())
        .await?;
    Ok(())
}
