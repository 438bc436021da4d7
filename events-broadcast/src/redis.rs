//! Fan-out between server processes through Redis (feature `redis`):
//! every delivery is published once on `{prefix}:broadcast` and each node
//! delivers it to its own sockets; presence members live in Redis hashes,
//! changed by Lua scripts, so every node sees the same members and a user
//! is announced once however many nodes their tabs are on.
//!
//! Keys, per app and presence channel (`{p}` the prefix):
//! `{p}:presence:{app}:{channel}:sockets` (`node:socket` → user id),
//! `..:users` (user id → how many sockets), `..:info` (user id → their
//! info as JSON). Each node counts its sockets per channel in
//! `{p}:node:{id}:subs` (`app:channel` → sockets), which the HTTP API sums
//! over the live nodes. Each node beats in `{p}:nodes` (a sorted set scored by
//! the deadline of its next beat, on Redis's clock) and counts its sockets per
//! presence channel under `{p}:node:{id}:presence` (a hash that empties as
//! they leave). A node that
//! dies without closing its sockets misses its deadline; the next live
//! node's sweep takes its sockets off every presence channel and announces
//! the users who left. A node that finds itself swept while alive (it was
//! cut off for longer than its deadline) closes its presence sockets with
//! 4200, so their clients reconnect and join again.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use tokio::sync::watch;

use crate::hub::{Delivery, Hub};
use crate::protocol::Member;
use crate::{BroadcastError, BuildError};

/// The key prefix when the URL names none.
pub const DEFAULT_PREFIX: &str = "events";

/// Adds a socket to a presence channel: `{first, version, info hash}`.
/// Versions are Redis's clock in microseconds: scripts run one at a time,
/// so a member list and the changes after it are ordered by them.
const JOIN: &str = r"
local t = redis.call('TIME')
local version = tonumber(t[1]) * 1000000 + tonumber(t[2])
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return {0, version, redis.call('HGETALL', KEYS[3])}
end
redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local n = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
if n == 1 then
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
end
return {n == 1 and 1 or 0, version, redis.call('HGETALL', KEYS[3])}
";

/// Takes a socket off a presence channel: `{user id, version}` when it
/// was their last socket there, else nil.
const LEAVE: &str = r"
local user = redis.call('HGET', KEYS[1], ARGV[1])
if not user then
  return false
end
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HINCRBY', KEYS[4], ARGV[2], -1) <= 0 then
  redis.call('HDEL', KEYS[4], ARGV[2])
end
local n = redis.call('HINCRBY', KEYS[2], user, -1)
if n <= 0 then
  redis.call('HDEL', KEYS[2], user)
  redis.call('HDEL', KEYS[3], user)
  local t = redis.call('TIME')
  return {user, tonumber(t[1]) * 1000000 + tonumber(t[2])}
end
return false
";

/// A node's beat: its deadline is now (Redis's clock) plus ARGV[2] ms.
/// Returns 1 when the node was not in the set (its first beat, or it was
/// swept).
const BEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
";

/// Takes the sockets of every node past its deadline off the presence
/// channels it listed. Returns the version (Redis's clock in µs), then
/// `entry, user id` pairs (flat) of the users who left, `entry` being
/// `app:channel`.
const SWEEP: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix = ARGV[1]
local left = {tostring(tonumber(t[1]) * 1000000 + tonumber(t[2]))}
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  local index = prefix .. ':node:' .. node .. ':presence'
  local mine = node .. ':'
  for _, entry in ipairs(redis.call('HKEYS', index)) do
    local base = prefix .. ':presence:' .. entry
    local sockets, users, info = base .. ':sockets', base .. ':users', base .. ':info'
    local all = redis.call('HGETALL', sockets)
    for i = 1, #all, 2 do
      local field, user = all[i], all[i + 1]
      if string.sub(field, 1, #mine) == mine then
        redis.call('HDEL', sockets, field)
        if redis.call('HINCRBY', users, user, -1) <= 0 then
          redis.call('HDEL', users, user)
          redis.call('HDEL', info, user)
          table.insert(left, entry)
          table.insert(left, user)
        end
      end
    end
  end
  redis.call('DEL', index)
  redis.call('DEL', prefix .. ':node:' .. node .. ':subs')
  redis.call('ZREM', KEYS[1], node)
end
return left
";

/// Counts a socket on or off a channel in this node's hash: ARGV[1] the
/// field, ARGV[2] +1 or -1.
const COUNT: &str = r"
if redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2]) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
";

/// The sockets on every channel of an app (ARGV[2], as `app:`) over the
/// live nodes: flat `channel, count` pairs. With ARGV[3], that channel
/// only.
const OCCUPIED: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix, app, only = ARGV[1], ARGV[2], ARGV[3]
local totals, order = {}, {}
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  local subs = prefix .. ':node:' .. node .. ':subs'
  local all
  if only then
    all = {app .. only, redis.call('HGET', subs, app .. only)}
  else
    all = redis.call('HGETALL', subs)
  end
  for i = 1, #all, 2 do
    local field, n = all[i], tonumber(all[i + 1])
    if n and string.sub(field, 1, #app) == app then
      local channel = string.sub(field, #app + 1)
      if not totals[channel] then
        totals[channel] = 0
        table.insert(order, channel)
      end
      totals[channel] = totals[channel] + n
    end
  end
end
local out = {}
for _, channel in ipairs(order) do
  table.insert(out, channel)
  table.insert(out, totals[channel])
end
return out
";

/// The Redis a [`Broadcaster`](crate::Broadcaster) fans out through:
/// give it to [`Builder::redis`](crate::Builder::redis).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let fanout = events_broadcast::RedisFanout::connect("redis://127.0.0.1:6379/0?prefix=shop").await?;
/// let broadcaster = events_broadcast::Broadcaster::builder()
///     .app(events_broadcast::App::new("1", "key", "secret"))
///     .redis(fanout)
///     .build()?;
/// # let _ = broadcaster; Ok(()) }
/// ```
pub struct RedisFanout {
    client: redis::Client,
    conn: redis::aio::ConnectionManager,
    prefix: String,
    node: String,
    ready: watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    heartbeat: Duration,
    join: redis::Script,
    leave: redis::Script,
    count: redis::Script,
    occupied: redis::Script,
}

impl std::fmt::Debug for RedisFanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFanout")
            .field("prefix", &self.prefix)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisFanout {
    fn drop(&mut self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }
}

/// Splits `?prefix=` off the URL: the rest is redis-rs's.
fn parse(url: &str) -> Result<(String, String), BuildError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut prefix = DEFAULT_PREFIX.to_owned();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("prefix", value)) => prefix = value.to_owned(),
            _ => {
                return Err(BuildError::Redis(format!(
                    "unknown option `{pair}` in the URL: the one option is `prefix=name`"
                )));
            }
        }
    }
    let valid = !prefix.is_empty()
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !valid {
        return Err(BuildError::Redis(format!(
            "the prefix `{prefix}` may hold only letters, digits, `-`, `_` and `.`"
        )));
    }
    Ok((base.to_owned(), prefix))
}

impl RedisFanout {
    /// Connects to the Redis at `url`, `redis://[user:password@]host[:port][/db]`
    /// with `?prefix=name` (letters, digits, `-`, `_`, `.`; default
    /// `events`) to keep applications sharing one Redis apart.
    pub async fn connect(url: &str) -> Result<RedisFanout, BuildError> {
        let Opened {
            client,
            conn,
            prefix,
            ..
        } = open(url).await?;
        Ok(RedisFanout {
            client,
            conn,
            prefix,
            node: crate::socket::new_socket_id(),
            ready: watch::Sender::new(false),
            tasks: Mutex::new(Vec::new()),
            heartbeat: Duration::from_secs(5),
            join: redis::Script::new(JOIN),
            leave: redis::Script::new(LEAVE),
            count: redis::Script::new(COUNT),
            occupied: redis::Script::new(OCCUPIED),
        })
    }

    /// How often this node beats and sweeps (default 5 s, at least 100 ms);
    /// a node silent for three beats counts as dead, and its presence
    /// members are taken off by the others.
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.max(Duration::from_millis(100));
        self
    }

    /// Its key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn channel(&self) -> String {
        broadcast_channel(&self.prefix)
    }

    fn keys(&self, app: &str, channel: &str) -> [String; 3] {
        let base = format!("{}:presence:{app}:{channel}", self.prefix);
        [
            format!("{base}:sockets"),
            format!("{base}:users"),
            format!("{base}:info"),
        ]
    }

    /// Starts listening, delivering what comes to `hub`'s sockets, for as
    /// long as it lives, connecting again whenever the connection drops.
    /// Needs a Tokio runtime.
    pub(crate) fn start(&self, hub: Arc<Hub>) -> Result<(), BuildError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            BuildError::Redis(
                "a broadcaster fanning out through Redis is built inside a Tokio runtime".into(),
            )
        })?;
        let listener = handle.spawn(listen(
            self.client.clone(),
            self.channel(),
            self.ready.clone(),
            hub.clone(),
        ));
        let beats = handle.spawn(beat(Beat {
            conn: self.conn.clone(),
            prefix: self.prefix.clone(),
            node: self.node.clone(),
            every: self.heartbeat,
            hub,
        }));
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        tasks.push(listener);
        tasks.push(beats);
        Ok(())
    }

    fn redis_error(e: impl std::error::Error + Send + Sync + 'static) -> BroadcastError {
        BroadcastError::Redis(Box::new(e))
    }

    pub(crate) async fn publish(&self, delivery: &Delivery) -> Result<(), BroadcastError> {
        // This node's own sockets get it back through the subscription:
        // wait until it is there.
        let mut ready = self.ready.subscribe();
        let subscribed = tokio::time::timeout(Duration::from_secs(5), ready.wait_for(|r| *r))
            .await
            .is_ok_and(|waited| waited.is_ok());
        if !subscribed {
            return Err(BroadcastError::Redis(
                "this node is not subscribed to Redis (for 5 s): the message would miss its own sockets"
                    .into(),
            ));
        }
        send(&self.conn, &self.channel(), delivery).await
    }

    /// This node's socket counts per channel, `app:channel` → sockets.
    fn node_subs(&self) -> String {
        format!("{}:node:{}:subs", self.prefix, self.node)
    }

    /// Counts this node's socket on (`+1`) or off (`-1`) `channel`.
    pub(crate) async fn count(
        &self,
        app: &str,
        channel: &str,
        by: i64,
    ) -> Result<(), BroadcastError> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .count
            .key(self.node_subs())
            .arg(format!("{app}:{channel}"))
            .arg(by)
            .invoke_async(&mut conn)
            .await
            .map_err(Self::redis_error)?;
        Ok(())
    }

    /// The sockets on each of the app's channels (or on `only`), over
    /// every live node.
    pub(crate) async fn occupied(
        &self,
        app: &str,
        only: Option<&str>,
    ) -> Result<std::collections::BTreeMap<String, usize>, BroadcastError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.occupied.key(format!("{}:nodes", self.prefix));
        invocation.arg(&self.prefix).arg(format!("{app}:"));
        if let Some(channel) = only {
            invocation.arg(channel);
        }
        let pairs: Vec<(String, i64)> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(Self::redis_error)?;
        Ok(pairs
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(channel, n)| (channel, usize::try_from(n).unwrap_or(0)))
            .collect())
    }

    /// This node's socket counts per presence channel.
    fn node_index(&self) -> String {
        format!("{}:node:{}:presence", self.prefix, self.node)
    }

    fn socket_key(&self, socket_id: &str) -> String {
        format!("{}:{socket_id}", self.node)
    }

    pub(crate) async fn presence_join(
        &self,
        app: &str,
        channel: &str,
        socket_id: &str,
        member: &Member,
    ) -> Result<(bool, Vec<Member>, u64), BroadcastError> {
        let [sockets, users, info] = self.keys(app, channel);
        let info_json = serde_json::to_string(&member.user_info).map_err(BroadcastError::Data)?;
        let mut conn = self.conn.clone();
        let (first, version, hash): (i64, u64, Vec<(String, String)>) = self
            .join
            .key(sockets)
            .key(users)
            .key(info)
            .key(self.node_index())
            .arg(self.socket_key(socket_id))
            .arg(&member.user_id)
            .arg(info_json)
            .arg(format!("{app}:{channel}"))
            .invoke_async(&mut conn)
            .await
            .map_err(Self::redis_error)?;
        Ok((first == 1, members(hash), version))
    }

    pub(crate) async fn presence_leave(
        &self,
        app: &str,
        channel: &str,
        socket_id: &str,
    ) -> Result<Option<(String, u64)>, BroadcastError> {
        let [sockets, users, info] = self.keys(app, channel);
        let mut conn = self.conn.clone();
        self.leave
            .key(sockets)
            .key(users)
            .key(info)
            .key(self.node_index())
            .arg(self.socket_key(socket_id))
            .arg(format!("{app}:{channel}"))
            .invoke_async(&mut conn)
            .await
            .map_err(Self::redis_error)
    }

    pub(crate) async fn presence_members(
        &self,
        app: &str,
        channel: &str,
    ) -> Result<Vec<Member>, BroadcastError> {
        let [_, _, info] = self.keys(app, channel);
        let mut conn = self.conn.clone();
        let hash: Vec<(String, String)> = conn.hgetall(info).await.map_err(Self::redis_error)?;
        Ok(members(hash))
    }
}

/// Members from the info hash, in user id order.
fn members(hash: Vec<(String, String)>) -> Vec<Member> {
    let mut members: Vec<Member> = hash
        .into_iter()
        .map(|(user_id, info)| Member {
            user_id,
            user_info: serde_json::from_str::<Option<serde_json::Value>>(&info)
                .ok()
                .flatten(),
        })
        .collect();
    members.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    members
}

/// The pub/sub channel every node of `prefix` listens on.
fn broadcast_channel(prefix: &str) -> String {
    format!("{prefix}:broadcast")
}

/// A connection to the Redis of a `redis://..?prefix=` URL.
struct Opened {
    client: redis::Client,
    conn: redis::aio::ConnectionManager,
    prefix: String,
    /// The URL without its password, for messages.
    redacted: String,
}

/// Connects to the Redis `url` names, under its prefix.
async fn open(url: &str) -> Result<Opened, BuildError> {
    let (base, prefix) = parse(url)?;
    let redacted = redact(&base);
    let client = redis::Client::open(base.as_str())
        .map_err(|e| BuildError::Redis(format!("{redacted}: {e}")))?;
    let conn = redis::aio::ConnectionManager::new(client.clone())
        .await
        .map_err(|e| BuildError::Redis(format!("cannot connect to {redacted}: {e}")))?;
    Ok(Opened {
        client,
        conn,
        prefix,
        redacted,
    })
}

/// Publishes `delivery` on `channel`, for every node to deliver.
async fn send(
    conn: &redis::aio::ConnectionManager,
    channel: &str,
    delivery: &Delivery,
) -> Result<(), BroadcastError> {
    let payload = serde_json::to_string(delivery).map_err(BroadcastError::Data)?;
    let mut conn = conn.clone();
    let _: i64 = conn
        .publish(channel, payload)
        .await
        .map_err(RedisFanout::redis_error)?;
    Ok(())
}

/// A publisher into the servers' Redis from a process that serves no
/// sockets: it publishes where the nodes listen, and listens to nothing.
pub(crate) struct RedisPublisher {
    conn: redis::aio::ConnectionManager,
    channel: String,
    app: String,
    /// Where, in words (no password).
    said: String,
}

impl RedisPublisher {
    pub(crate) async fn connect(url: &str, app: String) -> Result<RedisPublisher, BuildError> {
        let Opened {
            conn,
            prefix,
            redacted,
            ..
        } = open(url).await?;
        Ok(RedisPublisher {
            conn,
            channel: broadcast_channel(&prefix),
            said: format!("Redis at {redacted}, prefix {prefix} (app {app})"),
            app,
        })
    }

    pub(crate) fn describe(&self) -> String {
        self.said.clone()
    }

    pub(crate) async fn publish(
        &self,
        broadcast: &events_core::broadcast::Broadcast,
        data: String,
    ) -> Result<(), BroadcastError> {
        let delivery = Delivery::Event {
            app: self.app.clone(),
            channels: broadcast
                .channels
                .iter()
                .map(|c| c.as_ref().to_owned())
                .collect(),
            event: broadcast.name.clone(),
            data,
            except: broadcast.except.clone(),
            user_id: None,
        };
        send(&self.conn, &self.channel, &delivery).await
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => format!("{}***{}", &url[..scheme + 3], &url[at..]),
            }
        }
        _ => url.to_owned(),
    }
}

/// What the beating task needs.
struct Beat {
    conn: redis::aio::ConnectionManager,
    prefix: String,
    node: String,
    every: Duration,
    hub: Arc<Hub>,
}

/// Beats every `every`, and sweeps the nodes past their deadline,
/// announcing the presence members they leave behind.
async fn beat(beat: Beat) {
    let Beat {
        mut conn,
        prefix,
        node,
        every,
        hub,
    } = beat;
    let nodes = format!("{prefix}:nodes");
    let channel = broadcast_channel(&prefix);
    let beat_script = redis::Script::new(BEAT);
    let sweep_script = redis::Script::new(SWEEP);
    let deadline_ms = u64::try_from((every * 3).as_millis()).unwrap_or(u64::MAX);
    let mut beaten = false;
    loop {
        let added: Result<i64, _> = beat_script
            .key(&nodes)
            .arg(&node)
            .arg(deadline_ms)
            .invoke_async(&mut conn)
            .await;
        match added {
            Ok(1) if beaten => {
                tracing::warn!(%node, "this node was taken for dead (no beat for three beats): its presence sockets reconnect to join again");
                hub.kick_presence(crate::protocol::codes::RECONNECT);
                // The sweep dropped its counts: write them again.
                let subs = format!("{prefix}:node:{node}:subs");
                let counts: Vec<(String, usize)> = hub
                    .apps()
                    .flat_map(|app| {
                        app.occupied()
                            .into_iter()
                            .filter(|(channel, _)| !channel.starts_with("presence-"))
                            .map(|(channel, n)| (format!("{}:{channel}", app.app.id()), n))
                            .collect::<Vec<_>>()
                    })
                    .collect();
                if !counts.is_empty() {
                    let written: Result<(), _> = conn.hset_multiple(&subs, &counts).await;
                    if let Err(e) = written {
                        tracing::warn!(%node, error = %e, "cannot count this node's sockets again");
                    }
                }
            }
            Ok(_) => beaten = true,
            Err(e) => tracing::warn!(%node, error = %e, "cannot beat in Redis"),
        }
        let left: Result<Vec<String>, _> = sweep_script
            .key(&nodes)
            .arg(&prefix)
            .invoke_async(&mut conn)
            .await;
        match left {
            Ok(left) => {
                let version: u64 = left.first().and_then(|v| v.parse().ok()).unwrap_or(0);
                for pair in left.get(1..).unwrap_or_default().chunks(2) {
                    let [entry, user_id] = pair else { continue };
                    let Some((app, presence)) = entry.rsplit_once(':') else {
                        continue;
                    };
                    let removed = Delivery::MemberRemoved {
                        app: app.to_owned(),
                        channel: presence.to_owned(),
                        user_id: user_id.clone(),
                        version,
                    };
                    let Ok(payload) = serde_json::to_string(&removed) else {
                        continue;
                    };
                    let published: Result<i64, _> = conn.publish(&channel, payload).await;
                    if let Err(e) = published {
                        tracing::warn!(error = %e, "cannot announce a member of a dead node gone");
                    }
                }
            }
            Err(e) => tracing::warn!(%node, error = %e, "cannot sweep dead nodes in Redis"),
        }
        tokio::time::sleep(every).await;
    }
}

/// Listens on the broadcast channel, delivering to this node's sockets.
async fn listen(client: redis::Client, channel: String, ready: watch::Sender<bool>, hub: Arc<Hub>) {
    let mut backoff = Duration::from_millis(100);
    let mut warned = false;
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    if warned {
                        tracing::info!(%channel, "the broadcast subscription is back");
                        warned = false;
                    }
                    backoff = Duration::from_millis(100);
                    ready.send_replace(true);
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        let payload: Vec<u8> = message.get_payload_bytes().to_vec();
                        match serde_json::from_slice::<Delivery>(&payload) {
                            Ok(delivery) => hub.deliver(&delivery),
                            Err(e) => {
                                tracing::warn!(%channel, error = %e, "a broadcast message from Redis that is not ours; skipped");
                            }
                        }
                        tokio::task::yield_now().await;
                    }
                    ready.send_replace(false);
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(%channel, error = %e, "cannot subscribe for broadcasts; trying again");
                        warned = true;
                    }
                }
            },
            Err(e) => {
                if !warned {
                    tracing::warn!(%channel, error = %e, "cannot connect to Redis for broadcasts; trying again");
                    warned = true;
                }
            }
        }
        ready.send_replace(false);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_their_prefix() {
        assert_eq!(
            parse("redis://h:1/0?prefix=shop").expect("parses"),
            ("redis://h:1/0".to_owned(), "shop".to_owned())
        );
        assert_eq!(
            parse("redis://h").expect("parses").1,
            DEFAULT_PREFIX.to_owned()
        );
        assert!(parse("redis://h?prefix=a:b").is_err());
        assert!(parse("redis://h?db=2").is_err());
        assert_eq!(redact("redis://u:pw@h:1"), "redis://u:***@h:1");
    }
}
