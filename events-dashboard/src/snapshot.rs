//! The figures of the Overview, Queues and Listeners screens, from the
//! backend's counts and what its workers reported.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use events_core::Mode;
use events_core::queue::activity::{
    MinuteStats, RUNTIME_BUCKETS_MS, merge_minutes, minute_of, runtime_quantile,
};
use events_core::queue::{Activity, JobQuery, JobState, Order, QueueError, QueueStats, millis};
use serde_json::{Value, json};

use crate::Shared;

const HOUR: Duration = Duration::from_secs(3600);
const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

/// What one look at the backend gives: its counts and its activity.
pub(crate) struct Look {
    pub(crate) now: SystemTime,
    pub(crate) stats: Vec<QueueStats>,
    /// `None`: the backend keeps no activity.
    pub(crate) activity: Option<Activity>,
}

impl Look {
    pub(crate) async fn take(shared: &Shared) -> Result<Look, QueueError> {
        let now = SystemTime::now();
        let stats = shared.queue.stats().await?;
        let activity = match shared.queue.activity(now - HOUR).await {
            Ok(activity) => Some(activity),
            Err(QueueError::Unsupported { .. }) => None,
            Err(error) => return Err(error),
        };
        Ok(Look {
            now,
            stats,
            activity,
        })
    }

    fn minutes(&self) -> &[MinuteStats] {
        self.activity.as_ref().map_or(&[], |a| &a.minutes)
    }

    /// Minutes of the last hour, by queue, added up over listeners.
    fn per_queue(&self) -> BTreeMap<&str, Vec<&MinuteStats>> {
        let mut by_queue: BTreeMap<&str, Vec<&MinuteStats>> = BTreeMap::new();
        let from = minute_of(self.now - HOUR);
        for m in self.minutes().iter().filter(|m| m.minute > from) {
            by_queue.entry(m.queue.as_str()).or_default().push(m);
        }
        by_queue
    }
}

/// Adds up minutes, whatever their key.
fn total<'a>(minutes: impl IntoIterator<Item = &'a MinuteStats>) -> MinuteStats {
    let mut sum = MinuteStats::new(0, "", "");
    for m in minutes {
        sum.merge(m);
    }
    sum
}

fn average(sum: u64, count: u64) -> Option<f64> {
    (count > 0).then(|| sum as f64 / count as f64)
}

/// Tries per minute over the current minute and the one before it.
fn rate_per_minute(minutes: &[MinuteStats], now: SystemTime) -> f64 {
    let current = minute_of(now);
    let tries: u64 = minutes
        .iter()
        .filter(|m| m.minute >= current - 1)
        .map(MinuteStats::tries)
        .sum();
    let into_current = (millis(now).rem_euclid(60_000)) as f64 / 60_000.0;
    tries as f64 / (1.0 + into_current)
}

/// The Overview screen.
pub(crate) async fn overview(shared: &Shared, look: &Look) -> Result<Value, QueueError> {
    let failed_week = shared
        .queue
        .jobs(
            &JobQuery::new()
                .state(JobState::Failed)
                .since(look.now - WEEK)
                .limit(0),
        )
        .await?
        .total;
    let mut longest: Option<(String, f64)> = None;
    for stats in look.stats.iter().filter(|s| s.pending > s.delayed) {
        let oldest = shared
            .queue
            .jobs(
                &JobQuery::new()
                    .state(JobState::Ready)
                    .queue(stats.queue.clone())
                    .order(Order::Oldest)
                    .limit(1),
            )
            .await?;
        if let Some(job) = oldest.jobs.first() {
            let waited = look
                .now
                .duration_since(job.available_at)
                .unwrap_or_default()
                .as_secs_f64();
            if longest.as_ref().is_none_or(|(_, w)| waited > *w) {
                longest = Some((stats.queue.clone(), waited));
            }
        }
    }
    let per_queue = look.per_queue();
    let busiest = per_queue
        .iter()
        .map(|(queue, minutes)| (*queue, total(minutes.iter().copied()).tries()))
        .filter(|(_, tries)| *tries > 0)
        .max_by_key(|(_, tries)| *tries);
    let hour = total(per_queue.values().flatten().copied());
    let workers: Vec<Value> = look
        .activity
        .iter()
        .flat_map(|a| &a.workers)
        .map(|w| {
            json!({
                "id": w.id,
                "host": w.host,
                "pid": w.pid,
                "queues": w.queues,
                "concurrency": w.concurrency,
                "started_at": millis(w.started_at),
                "seen_at": millis(w.seen_at),
                "running": w.running,
                "processed": w.processed,
                "failed": w.failed,
            })
        })
        .collect();
    Ok(json!({
        "now": millis(look.now),
        "queue_url": events_core::cli::redact_password(shared.queue.url()),
        "activity_kept": look.activity.is_some(),
        "status": if workers.is_empty() { "inactive" } else { "running" },
        "jobs_per_minute": (rate_per_minute(look.minutes(), look.now) * 10.0).round() / 10.0,
        "jobs_last_hour": hour.tries(),
        "failed_last_hour": hour.failed,
        "failed_last_7_days": failed_week,
        "longest_wait": longest.map(|(queue, seconds)| json!({ "queue": queue, "seconds": seconds.round() })),
        "busiest_queue": busiest.map(|(queue, tries)| json!({ "queue": queue, "jobs_last_hour": tries })),
        "totals": {
            "ready": look.stats.iter().map(|s| s.pending - s.delayed).sum::<usize>(),
            "delayed": look.stats.iter().map(|s| s.delayed).sum::<usize>(),
            "reserved": look.stats.iter().map(|s| s.reserved).sum::<usize>(),
            "failed": look.stats.iter().map(|s| s.failed).sum::<usize>(),
        },
        "workers": workers,
    }))
}

/// The Queues screen: every queue that holds jobs or ran some in the last
/// hour.
pub(crate) fn queues(look: &Look) -> Value {
    let per_queue = look.per_queue();
    let mut names: Vec<&str> = look.stats.iter().map(|s| s.queue.as_str()).collect();
    names.extend(per_queue.keys().copied());
    names.sort_unstable();
    names.dedup();
    let current = minute_of(look.now);
    let rows: Vec<Value> = names
        .into_iter()
        .map(|name| {
            let stats = look
                .stats
                .iter()
                .find(|s| s.queue == name)
                .cloned()
                .unwrap_or_else(|| QueueStats::new(name));
            let minutes = per_queue.get(name).map(Vec::as_slice).unwrap_or(&[]);
            let hour = total(minutes.iter().copied());
            let series: Vec<Value> = (current - 59..=current)
                .map(|minute| {
                    let m = total(minutes.iter().copied().filter(|m| m.minute == minute));
                    json!({
                        "minute": minute * 60_000,
                        "jobs": m.tries(),
                        "failed": m.failed + m.retried,
                        "runtime_avg_ms": average(m.runtime_ms, m.tries()),
                    })
                })
                .collect();
            let ready = stats.pending - stats.delayed;
            // Seconds to run what is ready at the last hour's pace.
            let per_second = hour.tries() as f64 / HOUR.as_secs_f64();
            let wait_estimate =
                (ready > 0 && per_second > 0.0).then(|| (ready as f64 / per_second).round());
            json!({
                "queue": name,
                "ready": ready,
                "delayed": stats.delayed,
                "reserved": stats.reserved,
                "failed": stats.failed,
                "last_hour": {
                    "jobs": hour.tries(),
                    "succeeded": hour.succeeded,
                    "retried": hour.retried,
                    "failed": hour.failed,
                    "runtime_avg_ms": average(hour.runtime_ms, hour.tries()),
                    "wait_avg_ms": average(hour.wait_ms, hour.claims),
                    "wait_max_ms": hour.wait_max_ms,
                },
                "per_minute": series,
                "wait_estimate_seconds": wait_estimate,
            })
        })
        .collect();
    Value::Array(rows)
}

/// The Listeners screen: every registered listener, and any other the
/// workers reported, with the last hour's runs.
pub(crate) fn listeners(shared: &Shared, look: &Look) -> Value {
    let mut minutes: Vec<MinuteStats> = look.minutes().to_vec();
    minutes.extend(shared.sync_runs.since(look.now - HOUR));
    let from = minute_of(look.now - HOUR);
    let mut by_listener: BTreeMap<String, MinuteStats> = BTreeMap::new();
    for m in merge_minutes(minutes.iter().filter(|m| m.minute > from)) {
        by_listener
            .entry(m.listener.clone())
            .or_insert_with(|| MinuteStats::new(0, "", m.listener.clone()))
            .merge(&m);
    }
    let registry = events_core::registry();
    let mut names: Vec<String> = registry
        .listeners()
        .iter()
        .map(|l| l.name().to_owned())
        .collect();
    names.extend(by_listener.keys().cloned());
    names.sort();
    names.dedup();
    let rows: Vec<Value> = names
        .iter()
        .map(|name| {
            let info = registry.listener(name);
            let runs = by_listener
                .get(name)
                .cloned()
                .unwrap_or_else(|| MinuteStats::new(0, "", name.clone()));
            let (mode, queue) = match info.map(|l| l.mode()) {
                Some(Mode::Queued(options)) => ("queued", Some(options.queue().to_owned())),
                Some(_) => ("sync", None),
                None => ("unknown", None),
            };
            json!({
                "listener": name,
                "event": info.map(|l| l.pattern().unwrap_or(l.event())),
                "mode": mode,
                "queue": queue,
                "registered": info.is_some(),
                "runs": runs.tries(),
                "succeeded": runs.succeeded,
                "retried": runs.retried,
                "failed": runs.failed,
                "failures": runs.retried + runs.failed,
                "runtime_avg_ms": average(runs.runtime_ms, runs.tries()),
                "p50_ms": runtime_quantile(&runs.runtime, 0.5),
                "p95_ms": runtime_quantile(&runs.runtime, 0.95),
            })
        })
        .collect();
    json!({ "buckets_ms": RUNTIME_BUCKETS_MS, "listeners": rows })
}
