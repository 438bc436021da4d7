//! The appointment story's event log, end to end, on one SQLite file: the
//! events are stored as they are dispatched (with their jobs, in one
//! transaction), an appointment's timeline is read back, a projection is
//! rebuilt by replay, and a webhook subscription gets each event signed
//! (Standard Webhooks) at a receiver this example starts itself, which
//! checks every signature.
//!
//! ```sh
//! cargo run --example audit --features webhooks
//! ```

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use events::prelude::*;
use events::store::{Entity, TimelineQuery};
use events::webhooks::{NewSubscription, Webhooks};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[event(
    name = "appointment.created",
    store,
    entity = "appointment:{appointment_id}"
)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppointmentCreated {
    pub appointment_id: u64,
    pub patient: String,
    pub starts_at: String,
}

#[event(
    name = "appointment.rescheduled",
    store,
    entity = "appointment:{appointment_id}"
)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppointmentRescheduled {
    pub appointment_id: u64,
    pub starts_at: String,
}

#[event(
    name = "appointment.cancelled",
    store,
    entity = "appointment:{appointment_id}"
)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppointmentCancelled {
    pub appointment_id: u64,
    pub reason: String,
}

/// The projection: each appointment's current start time, or `cancelled`.
static SCHEDULE: Mutex<BTreeMap<u64, String>> = Mutex::new(BTreeMap::new());

#[listener(name = "audit::schedule::created")]
fn schedule_created(e: &AppointmentCreated) {
    SCHEDULE
        .lock()
        .unwrap()
        .insert(e.appointment_id, e.starts_at.clone());
}

#[listener(name = "audit::schedule::rescheduled")]
fn schedule_rescheduled(e: &AppointmentRescheduled) {
    SCHEDULE
        .lock()
        .unwrap()
        .insert(e.appointment_id, e.starts_at.clone());
}

#[listener(name = "audit::schedule::cancelled")]
fn schedule_cancelled(e: &AppointmentCancelled) {
    SCHEDULE
        .lock()
        .unwrap()
        .insert(e.appointment_id, "cancelled".into());
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile_dir()?;
    let url = format!("sqlite://{}/audit.db", dir.display());
    let queue = events::queue::connect(&url).await?;
    let store = events::store::connect(&url).await?;

    // A receiver on a free local port, checking each delivery's signature.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver = format!("http://{}/hooks", listener.local_addr()?);
    let webhooks = Webhooks::new(store.clone())
        .allow_private(true)
        .require_https(false);
    let subscription = webhooks
        .subscribe(NewSubscription::new(&receiver, ["appointment.*"]))
        .await?;
    println!("webhook subscription {} -> {receiver}", subscription.id);
    let secret = subscription.secret.clone();
    let received = tokio::spawn(receive(listener, secret, 4));

    let dispatcher = events::Dispatcher::builder()
        .queue(queue.clone())
        .store(store.clone())
        .on_append(webhooks.clone())
        .build()?;
    dispatcher
        .dispatch(AppointmentCreated {
            appointment_id: 123,
            patient: "Ada".into(),
            starts_at: "2026-12-07T09:00".into(),
        })
        .with("actor_id", "reception-1")
        .await?;
    dispatcher
        .dispatch(AppointmentCreated {
            appointment_id: 124,
            patient: "Grace".into(),
            starts_at: "2026-12-07T10:00".into(),
        })
        .await?;
    dispatcher
        .dispatch(AppointmentRescheduled {
            appointment_id: 123,
            starts_at: "2026-12-08T14:30".into(),
        })
        .with("actor_id", "ada")
        .await?;
    dispatcher
        .dispatch(AppointmentCancelled {
            appointment_id: 124,
            reason: "patient called".into(),
        })
        .await?;

    println!("\ntimeline of appointment:123");
    let timeline = store
        .timeline(&TimelineQuery::new(Entity::new("appointment", "123")))
        .await?;
    for e in &timeline.events {
        println!(
            "  #{} v{} {:<24} by {:<12} {}",
            e.position,
            e.entity_version.unwrap_or(0),
            e.name,
            e.actor().unwrap_or("-"),
            e.payload
        );
    }

    println!("\nreplaying into the schedule projection");
    let mut replay = store.replay();
    for name in [
        "audit::schedule::created",
        "audit::schedule::rescheduled",
        "audit::schedule::cancelled",
    ] {
        replay = replay.listener(name);
    }
    let report = replay.run().await?;
    for run in &report.listeners {
        println!("  {}: {} event(s)", run.listener, run.events);
    }
    for (id, at) in SCHEDULE.lock().unwrap().iter() {
        println!("  appointment {id}: {at}");
    }

    println!("\ndelivering webhooks");
    events::Worker::new(queue.clone())
        .queues([events::webhooks::QUEUE])
        .state(webhooks.clone())
        .run_until_empty()
        .await?;
    let verified = tokio::time::timeout(Duration::from_secs(10), received).await???;
    for line in &verified {
        println!("  {line}");
    }
    let log = webhooks
        .deliveries(&events::store::DeliveryQuery::new())
        .await?;
    let ok = log.iter().filter(|d| d.succeeded).count();
    println!("delivery log: {} attempt(s), {ok} succeeded", log.len());
    if ok != 4 {
        return Err(format!("expected 4 successful deliveries, the log has {ok}").into());
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// A directory of its own under the system's temporary one.
fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("events-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Answers `count` deliveries with 204, each after checking its signature;
/// returns a line per delivery.
async fn receive(
    listener: tokio::net::TcpListener,
    secret: String,
    count: usize,
) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    while lines.len() < count {
        let (mut socket, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut buffer = Vec::new();
        let (head, body) = loop {
            let mut chunk = [0u8; 4096];
            let n = socket.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the connection closed mid-request".into());
            }
            buffer.extend_from_slice(&chunk[..n]);
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
                let length = header(&head, "content-length")
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                while buffer.len() < end + 4 + length {
                    let n = socket.read(&mut chunk).await.map_err(|e| e.to_string())?;
                    if n == 0 {
                        return Err("the body was cut short".into());
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                }
                break (head, buffer[end + 4..end + 4 + length].to_vec());
            }
        };
        let id = header(&head, "webhook-id").unwrap_or_default();
        let timestamp: i64 = header(&head, "webhook-timestamp")
            .and_then(|t| t.parse().ok())
            .unwrap_or_default();
        let signature = header(&head, "webhook-signature").unwrap_or_default();
        let verdict = match events::webhooks::verify(&secret, &id, timestamp, &signature, &body) {
            Ok(()) => "signature ok",
            Err(_) => "BAD SIGNATURE",
        };
        let kind = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["type"].as_str().map(str::to_owned))
            .unwrap_or_default();
        socket
            .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        if verdict != "signature ok" {
            return Err(format!("delivery {id} ({kind}): {verdict}"));
        }
        lines.push(format!("{kind:<24} {id} {verdict}"));
    }
    Ok(lines)
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}
