//! The appointment-booking story: events, listeners declared with attributes,
//! and nothing registered by hand. Run it with `cargo run --example booking`.
//!
//! It prints what is registered, then every listener as it runs, in order.
//! Queued jobs go to a SQLite file (no server); a worker then runs them: a
//! flaky calendar sync succeeds on its third try, a CRM push ends in the
//! failed store. Afterwards the operator commands work on the same file:
//!
//! ```text
//! cargo run --example booking -- failed
//! cargo run --example booking -- retry all
//! cargo run --example booking -- list
//! cargo run --example booking -- graph
//! ```

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use events::prelude::*;
use events::queue::Queue;
use events::{Context, DispatchError, Mode, State, Worker};
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

/// The calendar client this program gives its workers.
const CALENDAR: Calendar = Calendar {
    name: "the calendar",
};

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

/// The calendar service's client: application state, given to the worker
/// with `Worker::new(q).state(..)`, taken by the listener as `State<Calendar>`.
#[derive(Clone)]
pub struct Calendar {
    pub name: &'static str,
}

/// Queued: runs in a worker, retried with backoff. The calendar service times
/// out twice for appointment #7, so its job succeeds on the third try. Its
/// context tells the try and who booked (the dispatch's metadata).
#[listener(queue = "calendar", tries = 3, backoff = ["100ms", "200ms"], timeout = "5s")]
async fn sync_to_calendar(
    e: &AppointmentCreated,
    ctx: Context,
    State(calendar): State<Calendar>,
) -> Result<(), CalendarError> {
    let attempt = ctx.job().map_or(1, |job| job.attempt());
    if e.appointment_id == 7 && attempt < 3 {
        say(
            "sync_to_calendar [queued]",
            format!(
                "#{} try {attempt}: {} answered 503, retrying",
                e.appointment_id, calendar.name
            ),
        );
        return Err(CalendarError);
    }
    let actor = ctx.metadata().get(events::keys::ACTOR_ID).unwrap_or("-");
    say(
        "sync_to_calendar [queued]",
        format!(
            "#{} try {attempt}: added to {} (booked by {actor})",
            e.appointment_id, calendar.name
        ),
    );
    Ok(())
}

#[derive(Debug, thiserror::Error)]
#[error("CRM rejected the API key")]
pub struct CrmError;

/// Queued, and doomed: the CRM rejects every call, so after its two tries the
/// job lands in the failed store (see `-- failed`, `-- retry all`).
#[listener(queue = "crm", tries = 2, backoff = "50ms")]
async fn push_to_crm(e: &CustomerCreated) -> Result<(), CrmError> {
    say(
        "push_to_crm [queued]",
        format!("customer {}: CRM said no", e.customer_id),
    );
    Err(CrmError)
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

/// The queue: `EVENTS_QUEUE_URL`, else a SQLite file in the temp directory,
/// kept between runs so the operator commands can look at it.
fn queue_url() -> String {
    std::env::var("EVENTS_QUEUE_URL").unwrap_or_else(|_| {
        let path = std::env::temp_dir().join("events-booking.sqlite");
        format!("sqlite://{}", path.display())
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
    let url = queue_url();
    if std::env::args_os().len() > 1 {
        // `cargo run --example booking -- failed` and friends: errors print
        // in words, with the exit status a shell expects.
        let queue = events::queue::connect(&url).await?;
        return Ok(events::cli::Commands::new()
            .queue(queue)
            .state(CALENDAR)
            .run()
            .await);
    }

    // A fresh story each run: start from an empty queue file.
    if let Some(path) = url.strip_prefix("sqlite://") {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    }
    let queue = events::queue::connect(&url).await?;
    println!("Queue: {url}\n");

    // Start-up validation: duplicate listener or event names fail here.
    // Every dispatch's metadata says who acted (a request would tell).
    let dispatcher = events::Dispatcher::builder()
        .queue(queue.clone())
        .metadata(|_event, m| m.insert_default(events::keys::ACTOR_ID, "front-desk"))
        .build()?;
    if events::install(dispatcher).is_err() {
        unreachable!("installed once, at start-up");
    }
    print_registry();
    story().await?;
    work(queue).await?;
    Ok(std::process::ExitCode::SUCCESS)
}

async fn story() -> Result<(), Box<dyn std::error::Error>> {
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
    Ok(())
}

async fn work(queue: Queue) -> Result<(), Box<dyn std::error::Error>> {
    println!("8. A worker runs the queued jobs (retries wait out their backoff)");
    for s in queue.stats().await? {
        println!("    queue `{}`: {} waiting", s.queue, s.pending);
    }
    let report = Worker::new(queue.clone())
        .state(CALENDAR)
        .run_until_empty()
        .await?;
    println!(
        "    => {} succeeded, {} retried, {} failed\n",
        report.succeeded, report.retried, report.failed
    );

    println!("9. The failed store");
    let failed = queue.failed().await?;
    for job in &failed {
        println!(
            "    {} {} after {} tries: {}",
            job.id, job.listener, job.attempts, job.error
        );
    }
    println!();

    // The story's promises, checked: a newcomer sees it work, CI sees it break.
    let expected = (3, 3, 1);
    let got = (report.succeeded, report.retried, report.failed);
    if got != expected {
        return Err(
            format!("expected (succeeded, retried, failed) = {expected:?}, got {got:?}").into(),
        );
    }
    println!("Every listener above was found by its attribute alone. Now try:");
    for command in ["failed", "retry all", "list", "graph"] {
        println!("    cargo run --example booking -- {command}");
    }
    Ok(())
}
