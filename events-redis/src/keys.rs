//! Key names. Every key of one queue shares the hash tag `{prefix:queue}`,
//! so a queue lives in one slot of a Redis Cluster:
//!
//! | key | type | what |
//! |---|---|---|
//! | `{prefix:queue}:ready` | list | ids ready to claim, oldest first |
//! | `{prefix:queue}:delayed` | sorted set | ids waiting, scored by when they are due (ms) |
//! | `{prefix:queue}:leased` | sorted set | ids claimed, scored by lease deadline (ms) |
//! | `{prefix:queue}:failed` | sorted set | the failed store, scored by failure time (µs) |
//! | `{prefix:queue}:stats` | hash | counters: enqueued, succeeded, retried, failed, ... |
//! | `{prefix:queue}:job:<id>` | hash | one job (see [`crate::scripts`]) |
//! | `prefix:queues` | set | the queue names, for `stats` and the failed store |
//!
//! What workers report ([`Backend::report`]) lives outside every queue's
//! tag, under the tag `{prefix}` of its own (one slot, so one script reads
//! or writes it all; a queue's tag `{prefix:queue}` always holds a `:`, so
//! the two never meet):
//!
//! | key | type | what |
//! |---|---|---|
//! | `{prefix}:workers` | set | the ids of workers that reported |
//! | `{prefix}:worker:<id>` | string | a worker's last heartbeat (JSON), expiring after three missed reports |
//! | `{prefix}:minute:<m>` | hash | the counts of minute `m` (minutes since the epoch), every worker's added up; expires once older than the minutes kept |
//! | `{prefix}:finished` | list | the latest finished tries (JSON), newest first, capped |
//!
//! A minute hash's fields are `<counter>:<queue length>:<queue>:<listener>`
//! (see [`crate::codec`]).
//!
//! Wake-ups are published on the channel `prefix:wake`.
//!
//! [`Backend::report`]: events_core::queue::Backend::report

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use events_core::queue::{Job, QueueError};

/// The key names of one queue.
#[derive(Debug)]
pub(crate) struct QueueKeys {
    pub queue: String,
    pub ready: String,
    pub delayed: String,
    pub leased: String,
    pub failed: String,
    pub stats: String,
    /// The prefix of its job hashes' keys: the id follows.
    pub jobs: String,
}

/// The key names of what workers report, under the tag `{prefix}`.
#[derive(Debug)]
pub(crate) struct ActivityKeys {
    /// The set of worker ids.
    pub workers: String,
    /// The prefix of a worker's heartbeat key: the id follows.
    pub worker: String,
    /// The prefix of a minute's hash: the minute follows.
    pub minute: String,
    /// The list of finished tries.
    pub finished: String,
}

/// The key names under one prefix, each queue's built once.
pub(crate) struct Keys {
    prefix: String,
    queue_set: String,
    wake: String,
    activity: ActivityKeys,
    queues: Mutex<HashMap<String, Arc<QueueKeys>>>,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
            queue_set: format!("{prefix}:queues"),
            wake: format!("{prefix}:wake"),
            activity: ActivityKeys {
                workers: format!("{{{prefix}}}:workers"),
                worker: format!("{{{prefix}}}:worker:"),
                minute: format!("{{{prefix}}}:minute:"),
                finished: format!("{{{prefix}}}:finished"),
            },
            queues: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn queue_set(&self) -> &str {
        &self.queue_set
    }

    pub(crate) fn wake_channel(&self) -> &str {
        &self.wake
    }

    pub(crate) fn activity(&self) -> &ActivityKeys {
        &self.activity
    }

    pub(crate) fn queue(&self, queue: &str) -> Arc<QueueKeys> {
        let mut queues = self
            .queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(keys) = queues.get(queue) {
            return keys.clone();
        }
        let tag = format!("{{{}:{queue}}}", self.prefix);
        let keys = Arc::new(QueueKeys {
            queue: queue.to_owned(),
            ready: format!("{tag}:ready"),
            delayed: format!("{tag}:delayed"),
            leased: format!("{tag}:leased"),
            failed: format!("{tag}:failed"),
            stats: format!("{tag}:stats"),
            jobs: format!("{tag}:job:"),
        });
        queues.insert(queue.to_owned(), keys.clone());
        keys
    }
}

/// A prefix is letters, digits, `-`, `_` and `.`: a `:` would let one
/// application's keys run into another's (`app` and `app:x`), and braces
/// would break the hash tag.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Err("the prefix is empty".to_owned());
    }
    match prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        Some(c) => Err(format!(
            "the prefix `{prefix}` holds `{c}`: use letters, digits, `-`, `_` and `.`"
        )),
        None => Ok(()),
    }
}

/// Braces in a queue name would end its hash tag early, and with it the
/// guarantee that its keys are apart from every other queue's.
pub(crate) fn check_queue(job: &Job) -> Result<(), QueueError> {
    if job.queue.contains(['{', '}']) {
        return Err(QueueError::InvalidJob {
            id: job.id.clone(),
            listener: job.listener.clone(),
            reason: "its queue name holds `{` or `}`, which the Redis queue's key names reserve",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_one_queue_share_a_hash_tag() {
        let keys = Keys::new("app");
        let q = keys.queue("mail");
        for key in [
            &q.ready, &q.delayed, &q.leased, &q.failed, &q.stats, &q.jobs,
        ] {
            assert!(key.starts_with("{app:mail}:"), "{key}");
        }
        assert_eq!(keys.queue_set(), "app:queues");
        let a = keys.activity();
        for key in [&a.workers, &a.worker, &a.minute, &a.finished] {
            assert!(key.starts_with("{app}:"), "{key}");
        }
    }

    #[test]
    fn prefixes_that_could_run_into_each_other_are_refused() {
        assert!(check_prefix("app-1.prod_x").is_ok());
        assert!(check_prefix("app:x").unwrap_err().contains("holds `:`"));
        assert!(check_prefix("a{b").is_err());
        assert!(check_prefix("").is_err());
    }
}
