//! What workers report ([`Backend::report`](events_core::queue::Backend::report))
//! and reading it back ([`Backend::activity`](events_core::queue::Backend::activity)):
//! one script call each, on the keys under the tag `{prefix}` (see
//! [`crate::keys`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use events_core::queue::activity::{self, FINISHED_KEPT, MINUTES_KEPT, minute_of};
use events_core::queue::{Activity, ActivityReport, QueueError};
use redis::Value;

use super::Inner;
use super::browse::server_time;
use crate::codec;

fn kept_ms() -> u64 {
    u64::try_from(MINUTES_KEPT.as_millis()).unwrap_or(u64::MAX)
}

impl Inner {
    /// Keeps `report` in one round trip (the report script): the
    /// heartbeat with a time to live of three reports, the finished tries
    /// on the capped list, the minutes added into their hashes.
    pub(super) async fn report(
        self: &Arc<Self>,
        report: &ActivityReport,
    ) -> Result<(), QueueError> {
        let a = self.keys.activity();
        let worker = &report.worker;
        let mut minutes: BTreeMap<i64, Vec<&activity::MinuteStats>> = BTreeMap::new();
        for stats in &report.minutes {
            minutes.entry(stats.minute).or_default().push(stats);
        }
        let worker_key = format!("{}{}", a.worker, worker.id);
        let minute_keys: Vec<String> = minutes.keys().map(|m| format!("{}{m}", a.minute)).collect();
        let mut keys: Vec<&str> = vec![&a.workers, &worker_key, &a.finished];
        keys.extend(minute_keys.iter().map(String::as_str));
        let ttl = worker.every.saturating_mul(3).max(Duration::from_secs(1));
        let mut cmd = Inner::evalsha(&self.scripts.report, &keys);
        cmd.arg(if report.leaving { "1" } else { "0" })
            .arg(&worker.id)
            .arg(codec::heartbeat(worker))
            .arg(events_core::queue::millis(worker.seen_at))
            .arg(super::ms(ttl))
            .arg(&a.worker)
            .arg(FINISHED_KEPT)
            .arg(kept_ms())
            .arg(report.finished.len());
        for finished in &report.finished {
            cmd.arg(codec::finished(finished));
        }
        for (minute, stats) in &minutes {
            let mut sums: BTreeMap<String, u64> = BTreeMap::new();
            let mut maxes: BTreeMap<String, u64> = BTreeMap::new();
            for s in stats {
                let (add, max) = codec::minute_fields(s);
                for (field, n) in add {
                    *sums.entry(field).or_default() += n;
                }
                for (field, n) in max {
                    let slot = maxes.entry(field).or_default();
                    *slot = (*slot).max(n);
                }
            }
            cmd.arg(minute).arg(sums.len());
            for (field, n) in &sums {
                cmd.arg(field).arg(n);
            }
            cmd.arg(maxes.len());
            for (field, n) in &maxes {
                cmd.arg(field).arg(n);
            }
        }
        self.run_one(cmd).await.map(drop)
    }

    /// What the workers reported, in one round trip (the activity script):
    /// live workers by id, minutes from `since` on (oldest first, then by
    /// queue and listener), finished tries newest first. A heartbeat or a
    /// finished try that cannot be read is left out, with a warning.
    pub(super) async fn activity(
        self: &Arc<Self>,
        since: SystemTime,
    ) -> Result<Activity, QueueError> {
        let a = self.keys.activity();
        let mut cmd = Inner::evalsha(&self.scripts.activity, &[&a.workers, &a.finished]);
        cmd.arg(&a.worker)
            .arg(&a.minute)
            .arg(minute_of(since))
            .arg(kept_ms());
        let value = self.run_one(cmd).await?;
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            QueueError::Corrupt(format!("the workers' activity: {what}: {e}"))
        };
        let parts: Vec<Value> =
            redis::from_redis_value(value).map_err(|e| corrupt("answer", &e))?;
        let [now, workers, minutes, finished] = <[Value; 4]>::try_from(parts)
            .map_err(|p| corrupt("answer", &format!("{} parts, not 4", p.len())))?;
        let now: i64 = redis::from_redis_value(now).map_err(|e| corrupt("time", &e))?;
        let now = server_time(now);

        let heartbeats: Vec<String> =
            redis::from_redis_value(workers).map_err(|e| corrupt("heartbeats", &e))?;
        let mut workers: Vec<_> = heartbeats
            .iter()
            .filter_map(|json| match codec::worker(json) {
                Ok(worker) => Some(worker),
                Err(reason) => {
                    tracing::warn!(%reason, "a worker's heartbeat cannot be read; left out");
                    None
                }
            })
            .filter(|worker| !worker.is_stale(now))
            .collect();
        workers.sort_by(|a, b| a.id.cmp(&b.id));

        let minutes: Vec<Value> =
            redis::from_redis_value(minutes).map_err(|e| corrupt("minutes", &e))?;
        let mut merged = BTreeMap::new();
        for pair in minutes.chunks(2) {
            let [minute, fields] = pair else {
                return Err(corrupt("minutes", &"an odd number of values"));
            };
            let minute: i64 =
                redis::from_redis_value_ref(minute).map_err(|e| corrupt("a minute", &e))?;
            let fields: Vec<String> = redis::from_redis_value_ref(fields)
                .map_err(|e| corrupt("a minute's counts", &e))?;
            let pairs: Vec<(String, String)> = fields
                .chunks(2)
                .filter_map(|p| match p {
                    [f, v] => Some((f.clone(), v.clone())),
                    _ => None,
                })
                .collect();
            let unread = codec::add_minute(minute, &pairs, &mut merged);
            if !unread.is_empty() {
                tracing::warn!(key = %format!("{}{minute}", a.minute), fields = ?unread, "fields of a minute's counts cannot be read; left out");
            }
        }

        let finished: Vec<String> =
            redis::from_redis_value(finished).map_err(|e| corrupt("finished tries", &e))?;
        let finished = finished
            .iter()
            .filter_map(|json| match codec::finished_job(json) {
                Ok(job) => Some(job),
                Err(reason) => {
                    tracing::warn!(%reason, "a finished try cannot be read; left out");
                    None
                }
            })
            .collect();
        Ok(Activity::new(
            workers,
            merged.into_values().collect(),
            finished,
        ))
    }
}
