//! The appointment-booking story: events, listeners declared with attributes,
//! and nothing registered by hand. Run it with `cargo run --example booking`.
//!
//! It prints what is registered, then every listener as it runs, in order.
//! Queued listeners (the calendar sync, the cancellation notice) run in this
//! process on the Tokio runtime until a durable queue is configured.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use events::prelude::*;
use events::{DispatchError, Mode};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------- the events

#[event(name = "customer.created")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CustomerCreated {
    pub customer_id: u64,
    pub name: String,
}

#[event(name = "appointment.created")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppointmentCreated {
    pub appointment_id: u64,
    pub customer_id: u64,
    pub email: String,
    pub price_cents: u64,
    pub source: String,
}

#[event(name = "appointment.rescheduled")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppointmentRescheduled {
    pub appointment_id: u64,
    pub from: String,
    pub to: String,
}

#[event(name = "appointment.cancelled")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppointmentCancelled {
    pub appointment_id: u64,
    pub reason: String,
}

// ------------------------------------------------------------- the listeners

/// Prints one line of the story, numbered in the order things happened.
fn say(who: &str, what: impl std::fmt::Display) {
    static STEP: AtomicUsize = AtomicUsize::new(0);
    let step = STEP.fetch_add(1, Ordering::SeqCst) + 1;
    println!("    {step:>2}. {who:<28} {what}");
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("`{0}` is not an email address")]
    BadAddress(String),
}

#[derive(Debug, thiserror::Error)]
#[error("calendar service answered 503")]
pub struct CalendarError;

/// Replayed imports were confirmed when first booked: stop here.
#[listener(priority = 100)]
fn skip_replayed_imports(e: &AppointmentCreated) -> Flow {
    if e.source == "import-replay" {
        say(
            "skip_replayed_imports",
            "replayed import: the rest is skipped (Flow::Stop)",
        );
        Flow::Stop
    } else {
        Flow::Continue
    }
}

#[listener(priority = 10)]
async fn send_confirmation(e: &AppointmentCreated) -> Result<(), MailError> {
    if !e.email.contains('@') {
        return Err(MailError::BadAddress(e.email.clone()));
    }
    say(
        "send_confirmation",
        format!("mailed {} about #{}", e.email, e.appointment_id),
    );
    Ok(())
}

static BOOKINGS_PER_CUSTOMER: Mutex<Vec<(u64, u32)>> = Mutex::new(Vec::new());

#[listener]
fn update_customer_stats(e: &AppointmentCreated) {
    let mut stats = BOOKINGS_PER_CUSTOMER.lock().unwrap();
    let count = match stats.iter_mut().find(|(id, _)| *id == e.customer_id) {
        Some((_, n)) => {
            *n += 1;
            *n
        }
        None => {
            stats.push((e.customer_id, 1));
            1
        }
    };
    say(
        "update_customer_stats",
        format!("customer {} has {count} booking(s)", e.customer_id),
    );
}

fn is_high_value(e: &AppointmentCreated) -> bool {
    e.price_cents >= 10_000
}

#[listener(when = is_high_value)]
fn notify_high_value(e: &AppointmentCreated) {
    say(
        "notify_high_value",
        format!(
            "sales team told: #{} is worth ${}",
            e.appointment_id,
            e.price_cents / 100
        ),
    );
}

static CALENDAR_CALLS: AtomicUsize = AtomicUsize::new(0);
static QUEUED_DONE: AtomicUsize = AtomicUsize::new(0);

/// Queued: runs after dispatch returns, retried with backoff. The calendar
/// service fails the first call, so the story shows a retry.
#[listener(queue = "calendar", tries = 3, backoff = ["100ms", "200ms"], timeout = "5s")]
async fn sync_to_calendar(e: &AppointmentCreated) -> Result<(), CalendarError> {
    let call = CALENDAR_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if call == 1 {
        say(
            "sync_to_calendar [queued]",
            format!(
                "#{}: calendar answered 503; the job will retry in 100ms",
                e.appointment_id
            ),
        );
        return Err(CalendarError);
    }
    say(
        "sync_to_calendar [queued]",
        format!("#{} added to the calendar", e.appointment_id),
    );
    QUEUED_DONE.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[listener]
fn welcome_customer(e: &CustomerCreated) {
    say("welcome_customer", format!("welcome, {}", e.name));
}

/// Hears every `appointment.*` event, whatever its type.
#[listener(pattern = "appointment.*", priority = -10)]
async fn audit(e: &AnyEvent) -> Result<(), std::io::Error> {
    let payload = e
        .payload_json()
        .unwrap_or_else(|| "<not serializable>".into());
    say("audit (appointment.*)", format!("{} {payload}", e.name()));
    Ok(())
}

#[derive(Default)]
pub struct AppointmentSubscriber;

#[subscriber]
impl AppointmentSubscriber {
    #[listen]
    fn on_rescheduled(&self, e: &AppointmentRescheduled) {
        say(
            "Subscriber::on_rescheduled",
            format!("#{} moved {} -> {}", e.appointment_id, e.from, e.to),
        );
    }

    #[listen(queue = "notifications", tries = 2)]
    async fn on_cancelled(&self, e: &AppointmentCancelled) -> Result<(), MailError> {
        say(
            "Subscriber::on_cancelled [queued]",
            format!(
                "cancellation notice for #{} ({})",
                e.appointment_id, e.reason
            ),
        );
        QUEUED_DONE.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

// ------------------------------------------------------------------ the story

fn describe(done: &events::Dispatched) -> String {
    let mut text = format!("ran {}, queued {}", done.ran(), done.queued());
    if done.skipped() > 0 {
        text.push_str(&format!(", skipped {} (when = ..)", done.skipped()));
    }
    if let Some(by) = done.halted_by() {
        text.push_str(&format!(", halted by {by}"));
    }
    text
}

fn print_registry() {
    println!("Registered at link time (no registration list anywhere):");
    for l in events::registry().listeners() {
        let mode = match l.mode() {
            Mode::Sync => "sync".to_owned(),
            Mode::Queued(o) => format!("queued on `{}`, tries {}", o.queue(), o.tries()),
        };
        println!(
            "  {:<24} -> {:<48} priority {:>4}  {mode}",
            l.event(),
            l.name(),
            l.priority()
        );
    }
    println!();
}

async fn step<E: Event>(title: &str, event: E) -> Result<events::Dispatched, DispatchError> {
    println!("{title}");
    let result = event.dispatch().await;
    match &result {
        Ok(done) => println!("    => {}\n", describe(done)),
        Err(error) => {
            let cause = std::error::Error::source(error)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            println!("    => dispatch failed: {error}{cause}\n");
        }
    }
    result
}

// One thread: queued jobs run when `main` waits for them, so the story
// prints in a stable order.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Start-up validation: duplicate listener or event names fail here.
    let dispatcher = events::Dispatcher::builder().build()?;
    if events::install(dispatcher).is_err() {
        unreachable!("installed once, at start-up");
    }
    print_registry();

    step(
        "1. A customer signs up",
        CustomerCreated {
            customer_id: 1,
            name: "Ada".into(),
        },
    )
    .await?;

    step(
        "2. Ada books a $120 appointment on the web",
        AppointmentCreated {
            appointment_id: 7,
            customer_id: 1,
            email: "ada@example.com".into(),
            price_cents: 12_000,
            source: "web".into(),
        },
    )
    .await?;

    step(
        "3. Ada books a $40 one (below the high-value threshold)",
        AppointmentCreated {
            appointment_id: 8,
            customer_id: 1,
            email: "ada@example.com".into(),
            price_cents: 4_000,
            source: "phone".into(),
        },
    )
    .await?;

    step(
        "4. An import is replayed",
        AppointmentCreated {
            appointment_id: 7,
            customer_id: 1,
            email: "ada@example.com".into(),
            price_cents: 12_000,
            source: "import-replay".into(),
        },
    )
    .await?;

    let failed = step(
        "5. A booking with a broken email address",
        AppointmentCreated {
            appointment_id: 9,
            customer_id: 2,
            email: "not-an-address".into(),
            price_cents: 1_000,
            source: "web".into(),
        },
    )
    .await;
    assert!(
        failed.is_err(),
        "the broken address is reported to the caller"
    );

    step(
        "6. Appointment #7 is rescheduled",
        AppointmentRescheduled {
            appointment_id: 7,
            from: "Mon 10:00".into(),
            to: "Tue 14:00".into(),
        },
    )
    .await?;

    step(
        "7. Appointment #8 is cancelled",
        AppointmentCancelled {
            appointment_id: 8,
            reason: "customer request".into(),
        },
    )
    .await?;

    // Queued jobs: the calendar sync for #7 and #8, the cancellation notice.
    println!("8. Queued jobs finish in the background");
    let expected = 3;
    for _ in 0..300 {
        if QUEUED_DONE.load(Ordering::SeqCst) >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let finished = QUEUED_DONE.load(Ordering::SeqCst);
    println!("    => {finished} of {expected} queued jobs done\n");
    if finished < expected {
        return Err(format!("only {finished} of {expected} queued jobs finished").into());
    }
    println!("Done: every listener above was found by its attribute alone.");
    Ok(())
}
