//! Sync listeners' runs, timed in the dispatching process for the
//! Listeners screen (queued ones are timed by the workers).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use events_core::observe::{Interest, ListenerOutcome, ListenerRun, Observer};
use events_core::queue::activity::{MinuteStats, minute_of};

/// An [`Observer`] that counts and times the sync listener runs of the
/// dispatcher it is given to, per minute, for the last hour
/// ([`Dashboard::sync_runs`](crate::Dashboard::sync_runs)).
#[derive(Clone, Default)]
pub struct SyncRuns {
    minutes: Arc<Mutex<BTreeMap<(i64, &'static str), MinuteStats>>>,
}

impl std::fmt::Debug for SyncRuns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncRuns").finish_non_exhaustive()
    }
}

/// How long runs are kept.
const KEPT_MINUTES: i64 = 60;

impl SyncRuns {
    /// The minutes counted from `since` on, per listener (queue `""`).
    pub(crate) fn since(&self, since: SystemTime) -> Vec<MinuteStats> {
        let from = minute_of(since);
        let minutes = self.minutes.lock().unwrap_or_else(|e| e.into_inner());
        minutes
            .range((from, "")..)
            .map(|(_, stats)| stats.clone())
            .collect()
    }

    fn record(&self, listener: &'static str, took: Duration, failed: bool) {
        let minute = minute_of(SystemTime::now());
        let mut minutes = self.minutes.lock().unwrap_or_else(|e| e.into_inner());
        let stats = minutes
            .entry((minute, listener))
            .or_insert_with(|| MinuteStats::new(minute, "", listener));
        if failed {
            stats.failed += 1;
        } else {
            stats.succeeded += 1;
        }
        stats.add_runtime(took);
        if minutes
            .first_key_value()
            .is_some_and(|((first, _), _)| *first < minute - KEPT_MINUTES)
        {
            minutes.retain(|(m, _), _| *m >= minute - KEPT_MINUTES);
        }
    }
}

impl Observer for SyncRuns {
    fn interest(&self) -> Interest {
        Interest::LISTENER_RUNS | Interest::TIMING
    }

    fn listener_ran(&self, run: &ListenerRun<'_>) {
        let failed = matches!(run.outcome, ListenerOutcome::Failed(_));
        // Timing was asked for: the run is timed.
        self.record(run.listener, run.took.unwrap_or_default(), failed);
    }
}
