//! What the server's settings say about losing jobs.

use std::fmt;

use events_core::queue::QueueError;
use redis::aio::ConnectionManager;

/// A server setting under which jobs could be lost, or that the backend
/// could not check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Finding {
    /// `maxmemory-policy` is not `noeviction`: when memory runs out, Redis
    /// deletes keys, jobs among them.
    Evicts {
        /// The policy set.
        policy: String,
    },
    /// Neither AOF (`appendonly`) nor RDB snapshots (`save`) are on: a
    /// restart loses every job.
    NoPersistence,
    /// `CONFIG GET` was refused (a managed Redis, an ACL), so neither could
    /// be checked.
    CannotCheck {
        /// What the server said.
        reason: String,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Evicts { policy } => write!(
                f,
                "Redis evicts keys when its memory is full (maxmemory-policy {policy}): queued jobs can vanish; set `maxmemory-policy noeviction`"
            ),
            Finding::NoPersistence => f.write_str(
                "Redis keeps nothing on disk (appendonly no, no save points): a restart loses every queued job; set `appendonly yes`",
            ),
            Finding::CannotCheck { reason } => write!(
                f,
                "could not check Redis's eviction and persistence settings (CONFIG GET was refused: {reason}); make sure `maxmemory-policy` is `noeviction` and `appendonly` is `yes`"
            ),
        }
    }
}

pub(crate) async fn check(
    mut conn: ConnectionManager,
    server: &str,
) -> Result<Vec<Finding>, QueueError> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for name in ["maxmemory-policy", "appendonly", "save"] {
        pipe.cmd("CONFIG").arg("GET").arg(name);
    }
    let answers: Vec<redis::RedisResult<Vec<String>>> = pipe
        .query_async(&mut conn)
        .await
        .map_err(|error| crate::error::classify(server, error))?;
    let mut values = Vec::new();
    for answer in answers {
        match answer {
            Ok(pair) => values.push(pair.get(1).cloned().unwrap_or_default()),
            Err(error) if crate::error::is_transient(&error) => {
                return Err(crate::error::classify(server, error));
            }
            Err(error) => {
                return Ok(vec![Finding::CannotCheck {
                    reason: error.to_string(),
                }]);
            }
        }
    }
    let [policy, appendonly, save] = <[String; 3]>::try_from(values).expect("three answers");
    let mut findings = Vec::new();
    if !policy.is_empty() && policy != "noeviction" {
        findings.push(Finding::Evicts { policy });
    }
    if appendonly != "yes" && save.trim().is_empty() {
        findings.push(Finding::NoPersistence);
    }
    Ok(findings)
}
