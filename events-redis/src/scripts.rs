//! The Lua scripts: every change of a job's state is one of them, so it is
//! atomic on the server, fenced by the attempt number, and timed by the
//! server's own clock (`TIME`), never a client's.
//!
//! Keys of one queue share the hash tag `{prefix:queue}` (see
//! [`crate::keys`]); a job's hash is `{prefix:queue}:job:<id>`, named from
//! the prefix each script gets in `ARGV`. Its fields:
//!
//! | field | what |
//! |---|---|
//! | `b` | the body: listener, event, payload, tries, envelope (JSON, written once) |
//! | `s` | the state and the tries started: `w0` ready, `d2` delayed after two tries, `r3` reserved for the third (the attempt is the fencing token), `f3` failed |
//! | `v` | when it is or was available, ms since the epoch |
//! | `x` | the last error, once a try failed |
//! | `t` | when it failed, ms (failed jobs only) |
//!
//! Scripts that take several queues (a claim in priority order, one
//! dispatch's jobs on several queues) name keys of several hash tags: they
//! run on a single Redis server, not across a cluster's slots.

/// One script: its source and its SHA1, for `EVALSHA` and `SCRIPT LOAD`.
pub(crate) struct Lua {
    /// The source, with the shared helpers in front.
    pub code: String,
    /// Its SHA1 in hex.
    pub sha: String,
}

impl Lua {
    fn new(body: &str) -> Lua {
        let code = format!("{NOW}{body}");
        let sha = redis::Script::new(&code).get_hash().to_owned();
        Lua { code, sha }
    }
}

/// Shared by every script: the server's clock, and the state field.
const NOW: &str = r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
-- RPUSH/LPUSH/ZREM/ZADD in chunks: Lua's unpack has a stack limit.
local function chunked(command, key, items)
  for i = 1, #items, 1000 do
    redis.call(command, key, unpack(items, i, math.min(i + 999, #items)))
  end
end
-- The state field `s`: a letter, then the attempt (the fencing token).
local function attempt_of(s)
  return tonumber(string.sub(s, 2)) or 0
end
";

/// Stores jobs on one or more queues, skipping ids already stored, and
/// publishes a wake-up when a ready list was empty or a delayed job is due
/// before every other.
///
/// KEYS: per queue `ready`, `delayed`, `stats`. ARGV: the wake channel, the
/// number of queues; per queue its job key prefix, its job count, then per
/// job `id`, `body`, `delay_ms` (negative for a job available since that
/// long: it is ready, and its `v` says since when). Returns how many were
/// stored.
const ENQUEUE: &str = r"
local now = now_ms()
local at_arg = 3
local stored = 0
local wake = false
for g = 0, tonumber(ARGV[2]) - 1 do
  local ready, delayed, stats = KEYS[g * 3 + 1], KEYS[g * 3 + 2], KEYS[g * 3 + 3]
  local prefix, n = ARGV[at_arg], tonumber(ARGV[at_arg + 1])
  at_arg = at_arg + 2
  local first = nil
  local pushed = {}
  local count = 0
  for i = 1, n do
    local id, body, delay = ARGV[at_arg], ARGV[at_arg + 1], tonumber(ARGV[at_arg + 2])
    at_arg = at_arg + 3
    local key = prefix .. id
    if redis.call('EXISTS', key) == 0 then
      if delay <= 0 then
        -- A time in the past is kept (relative to the server's clock): the
        -- listings order and filter by it.
        redis.call('HSET', key, 'b', body, 's', 'w0', 'v', now + delay)
        pushed[#pushed + 1] = id
      else
        local at = now + delay
        if first == nil then
          local head = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
          first = head[2] and tonumber(head[2]) or -1
        end
        redis.call('HSET', key, 'b', body, 's', 'd0', 'v', at)
        redis.call('ZADD', delayed, at, id)
        if first < 0 or at < first then
          wake = true
          first = at
        end
      end
      count = count + 1
    end
  end
  if #pushed > 0 then
    -- The list's length after the first push tells whether it was empty.
    local head = math.min(1000, #pushed)
    if redis.call('RPUSH', ready, unpack(pushed, 1, head)) == head then wake = true end
    for i = 1001, #pushed, 1000 do
      redis.call('RPUSH', ready, unpack(pushed, i, math.min(i + 999, #pushed)))
    end
  end
  if count > 0 then redis.call('HINCRBY', stats, 'enqueued', count) end
  stored = stored + count
end
if wake then redis.call('PUBLISH', ARGV[1], '1') end
return stored
";

/// Claims up to `limit` jobs from queues in priority order. On each queue
/// it first hands lapsed leases back (at most `reclaim_cap`, to the front:
/// they are older than what waits) and promotes due delayed jobs (at most
/// `promote_cap`, to the back), then pops what it can.
///
/// KEYS: per queue `ready`, `delayed`, `leased`, `failed`, `stats`. ARGV:
/// `limit`, `lease_ms`, `promote_cap`, `reclaim_cap`, then per queue its
/// job key prefix. Returns `{next, q, id, body, attempt, error, available,
/// ...}`: `next` is how long until the earliest delayed job is due or
/// lease lapses (ms from now, -1 for none), then six values per claimed
/// job, `q` being the queue's index (from 0) in KEYS.
const CLAIM: &str = r"
local now = now_ms()
local limit, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local promote_cap, reclaim_cap = tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {-1}
local taken = 0
local next_at = -1
local function sooner(at)
  if at >= 0 and (next_at < 0 or at < next_at) then next_at = at end
end
-- The score of a sorted set's first member, -1 when it is empty.
local function head(key)
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if first[2] then return tonumber(first[2]) end
  return -1
end
for q = 0, #KEYS / 5 - 1 do
  local ready, delayed, leased = KEYS[q * 5 + 1], KEYS[q * 5 + 2], KEYS[q * 5 + 3]
  local failed, stats = KEYS[q * 5 + 4], KEYS[q * 5 + 5]
  local prefix = ARGV[5 + q]
  local lease_head = head(leased)
  if lease_head >= 0 and lease_head <= now then
    local lapsed = redis.call('ZRANGE', leased, '-inf', now, 'BYSCORE', 'LIMIT', 0, reclaim_cap)
    chunked('ZREM', leased, lapsed)
    local front = {}
    for i = #lapsed, 1, -1 do
      local key = prefix .. lapsed[i]
      local s = redis.call('HGET', key, 's')
      if s then
        redis.call('HSET', key, 's', 'w' .. attempt_of(s))
        front[#front + 1] = lapsed[i]
      end
    end
    chunked('LPUSH', ready, front)
    redis.call('HINCRBY', stats, 'lapsed', #lapsed)
    lease_head = head(leased)
  end
  local delayed_head = head(delayed)
  if delayed_head >= 0 and delayed_head <= now then
    local due = redis.call('ZRANGE', delayed, '-inf', now, 'BYSCORE', 'LIMIT', 0, promote_cap)
    chunked('ZREM', delayed, due)
    local ready_now = {}
    for i = 1, #due do
      local key = prefix .. due[i]
      local s = redis.call('HGET', key, 's')
      if s then
        redis.call('HSET', key, 's', 'w' .. attempt_of(s))
        ready_now[#ready_now + 1] = due[i]
      end
    end
    chunked('RPUSH', ready, ready_now)
    delayed_head = head(delayed)
  end
  if taken < limit then
    local ids = redis.call('LPOP', ready, limit - taken)
    if ids then
      local leases = {}
      for i = 1, #ids do
        local id = ids[i]
        local key = prefix .. id
        local h = redis.call('HMGET', key, 'b', 'x', 'v', 's')
        if h[1] and h[4] then
          local attempt = attempt_of(h[4]) + 1
          redis.call('HSET', key, 's', 'r' .. attempt)
          leases[#leases + 1] = now + lease
          leases[#leases + 1] = id
          out[#out + 1] = q
          out[#out + 1] = id
          out[#out + 1] = h[1]
          out[#out + 1] = attempt
          out[#out + 1] = h[2]
          out[#out + 1] = h[3]
          taken = taken + 1
        elseif h[4] then
          -- A hash without its body cannot run: to the failed store.
          local us = now_us()
          redis.call('HSET', key, 's', 'f' .. attempt_of(h[4]), 'x', 'the job is stored without its body (field `b`)', 't', math.floor(us / 1000))
          redis.call('ZADD', failed, us, id)
        end
        -- An id whose hash is gone (deleted by hand) is dropped.
      end
      if #leases > 0 then
        chunked('ZADD', leased, leases)
        if lease_head < 0 or now + lease < lease_head then lease_head = now + lease end
      end
    end
  end
  sooner(delayed_head)
  sooner(lease_head)
end
if next_at >= 0 then out[1] = math.max(next_at - now, 0) end
return out
";

/// Removes jobs done under their attempt.
///
/// KEYS: per queue `leased`, `stats`. ARGV: the number of queues; per
/// queue its job key prefix, its job count, then `id`, `attempt` pairs.
/// Returns 1 or 0 per job, in order.
const ACK: &str = r"
local out = {}
local at_arg = 2
for g = 0, tonumber(ARGV[1]) - 1 do
  local leased, stats = KEYS[g * 2 + 1], KEYS[g * 2 + 2]
  local prefix, n = ARGV[at_arg], tonumber(ARGV[at_arg + 1])
  at_arg = at_arg + 2
  local done = {}
  for i = 1, n do
    local id, attempt = ARGV[at_arg], ARGV[at_arg + 1]
    at_arg = at_arg + 2
    local key = prefix .. id
    if redis.call('HGET', key, 's') == 'r' .. attempt then
      redis.call('DEL', key)
      done[#done + 1] = id
      out[#out + 1] = 1
    else
      out[#out + 1] = 0
    end
  end
  if #done > 0 then
    chunked('ZREM', leased, done)
    redis.call('HINCRBY', stats, 'succeeded', #done)
  end
end
return out
";

/// Extends leases still held under their attempt.
///
/// KEYS: per queue `leased`. ARGV: the number of queues; per queue its job
/// key prefix, its job count, then `id`, `attempt`, `lease_ms` triples.
/// Returns 1 or 0 per job, in order.
const EXTEND: &str = r"
local now = now_ms()
local out = {}
local at_arg = 2
for g = 1, tonumber(ARGV[1]) do
  local prefix, n = ARGV[at_arg], tonumber(ARGV[at_arg + 1])
  at_arg = at_arg + 2
  for i = 1, n do
    local id, attempt, lease = ARGV[at_arg], ARGV[at_arg + 1], tonumber(ARGV[at_arg + 2])
    at_arg = at_arg + 3
    if redis.call('HGET', prefix .. id, 's') == 'r' .. attempt then
      redis.call('ZADD', KEYS[g], now + lease, id)
      out[#out + 1] = 1
    else
      out[#out + 1] = 0
    end
  end
end
return out
";

/// Puts a job back after a failed try (`mode` `release`: the error is kept
/// and the try counts) or untried (`mode` `abandon`: its attempt goes back
/// down, and with no delay it goes to the front, keeping its place).
///
/// KEYS: `ready`, `delayed`, `leased`, `stats`. ARGV: wake channel,
/// prefix, id, attempt, delay_ms, mode, error. Returns 1 or 0.
const PUT_BACK: &str = r"
local key = ARGV[2] .. ARGV[3]
if redis.call('HGET', key, 's') ~= 'r' .. ARGV[4] then return 0 end
local now = now_ms()
local delay = tonumber(ARGV[5])
local id = ARGV[3]
local attempt = tonumber(ARGV[4])
redis.call('ZREM', KEYS[3], id)
if ARGV[6] == 'abandon' then
  attempt = attempt - 1
  redis.call('HINCRBY', KEYS[4], 'abandoned', 1)
else
  redis.call('HSET', key, 'x', ARGV[7])
  redis.call('HINCRBY', KEYS[4], 'retried', 1)
end
if delay <= 0 then
  local was_empty = redis.call('LLEN', KEYS[1]) == 0
  if ARGV[6] == 'abandon' then
    redis.call('HSET', key, 's', 'w' .. attempt)
    redis.call('LPUSH', KEYS[1], id)
  else
    redis.call('HSET', key, 's', 'w' .. attempt, 'v', now)
    redis.call('RPUSH', KEYS[1], id)
  end
  if was_empty then redis.call('PUBLISH', ARGV[1], '1') end
else
  redis.call('HSET', key, 's', 'd' .. attempt, 'v', now + delay)
  redis.call('ZADD', KEYS[2], now + delay, id)
end
return 1
";

/// Moves a job held under `attempt` to the failed store.
///
/// KEYS: `leased`, `failed`, `stats`. ARGV: prefix, id, attempt, error.
/// Returns 1 or 0.
const FAIL: &str = r"
local key = ARGV[1] .. ARGV[2]
if redis.call('HGET', key, 's') ~= 'r' .. ARGV[3] then return 0 end
redis.call('ZREM', KEYS[1], ARGV[2])
-- One reading of the clock: `t` is the order's millisecond, so listings
-- that page the failed store by its score agree with `t`.
local us = now_us()
redis.call('HSET', key, 's', 'f' .. ARGV[3], 'x', ARGV[4], 't', math.floor(us / 1000))
redis.call('ZADD', KEYS[2], us, ARGV[2])
redis.call('HINCRBY', KEYS[3], 'failed', 1)
return 1
";

/// Lists a queue's failed store, oldest failure first, a page at a time.
///
/// KEYS: `failed`. ARGV: prefix, offset, count. Returns `{id, order,
/// body, attempts, error, failed_at, ...}`: `order` is the failure's time
/// in microseconds, as a string.
const FAILED: &str = r"
local ids = redis.call('ZRANGE', KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[2]) + tonumber(ARGV[3]) - 1, 'WITHSCORES')
local out = {}
for i = 1, #ids, 2 do
  local h = redis.call('HMGET', ARGV[1] .. ids[i], 'b', 's', 'x', 't')
  out[#out + 1] = ids[i]
  out[#out + 1] = ids[i + 1]
  out[#out + 1] = h[1]
  out[#out + 1] = h[2] and attempt_of(h[2]) or false
  out[#out + 1] = h[3]
  out[#out + 1] = h[4]
end
return out
";

/// Moves a failed job back to its queue under a new id, its tries reset
/// and its last error kept.
///
/// KEYS: `ready`, `failed`, `stats`. ARGV: wake channel, prefix, old id,
/// new id. Returns 1 or 0 (no failed job has the old id).
const RETRY: &str = r"
local old, new = ARGV[2] .. ARGV[3], ARGV[2] .. ARGV[4]
local s = redis.call('HGET', old, 's')
if not s or string.sub(s, 1, 1) ~= 'f' or redis.call('EXISTS', new) == 1 then return 0 end
redis.call('RENAME', old, new)
redis.call('HDEL', new, 't')
redis.call('HSET', new, 's', 'w0', 'v', now_ms())
redis.call('ZREM', KEYS[2], ARGV[3])
local was_empty = redis.call('LLEN', KEYS[1]) == 0
redis.call('RPUSH', KEYS[1], ARGV[4])
if was_empty then redis.call('PUBLISH', ARGV[1], '1') end
redis.call('HINCRBY', KEYS[3], 'retried_from_failed', 1)
return 1
";

/// Deletes one failed job.
///
/// KEYS: `failed`. ARGV: prefix, id. Returns 1 or 0.
const FORGET: &str = r"
local key = ARGV[1] .. ARGV[2]
local s = redis.call('HGET', key, 's')
if not s or string.sub(s, 1, 1) ~= 'f' then return 0 end
redis.call('DEL', key)
redis.call('ZREM', KEYS[1], ARGV[2])
return 1
";

/// Deletes up to `cap` failed jobs, oldest first.
///
/// KEYS: `failed`. ARGV: prefix, cap. Returns how many.
const FLUSH_FAILED: &str = r"
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
for i = 1, #ids do redis.call('DEL', ARGV[1] .. ids[i]) end
chunked('ZREM', KEYS[1], ids)
return #ids
";

/// Deletes up to `cap` waiting jobs, ready ones first, then delayed ones.
///
/// KEYS: `ready`, `delayed`. ARGV: prefix, cap. Returns how many.
const CLEAR: &str = r"
local cap = tonumber(ARGV[2])
local ids = redis.call('LPOP', KEYS[1], cap) or {}
if #ids < cap then
  local later = redis.call('ZRANGE', KEYS[2], 0, cap - #ids - 1)
  chunked('ZREM', KEYS[2], later)
  for i = 1, #later do ids[#ids + 1] = later[i] end
end
for i = 1, #ids do redis.call('DEL', ARGV[1] .. ids[i]) end
return #ids
";

/// One queue's counts.
///
/// KEYS: `ready`, `delayed`, `leased`, `failed`. Returns `{ready, due,
/// delayed, reserved, failed}`: `due` delayed jobs are ready, not yet
/// promoted.
const STATS: &str = r"
local now = now_ms()
return {
  redis.call('LLEN', KEYS[1]),
  redis.call('ZCOUNT', KEYS[2], '-inf', now),
  redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf'),
  redis.call('ZCARD', KEYS[3]),
  redis.call('ZCARD', KEYS[4]),
}
";

/// Reads a chunk of a ready list or a sorted set by rank, with each job's
/// hash: what listings scan. Reads only; at most `count` jobs per call, so
/// no call holds Redis long.
///
/// KEYS: the list or sorted set. ARGV: job key prefix, `l` (list) or `z`
/// (sorted set), start rank, count, `1` to include bodies. Returns 8
/// values per job: `id, score, b, s, v, x, t, err` (`score` only for a
/// sorted set, `b` only with bodies; `err` is what Redis said when the
/// job's key cannot be read as a hash).
const BROWSE: &str = r"
local start, count = tonumber(ARGV[3]), tonumber(ARGV[4])
local items
if ARGV[2] == 'l' then
  items = redis.call('LRANGE', KEYS[1], start, start + count - 1)
else
  items = redis.call('ZRANGE', KEYS[1], start, start + count - 1, 'WITHSCORES')
end
local step = ARGV[2] == 'l' and 1 or 2
local out = {}
for i = 1, #items, step do
  local id = items[i]
  local h
  if ARGV[5] == '1' then
    h = redis.pcall('HMGET', ARGV[1] .. id, 'b', 's', 'v', 'x', 't')
  else
    h = redis.pcall('HMGET', ARGV[1] .. id, 's', 's', 'v', 'x', 't')
  end
  out[#out + 1] = id
  out[#out + 1] = step == 2 and items[i + 1] or false
  if h.err then
    for _ = 1, 5 do out[#out + 1] = false end
    out[#out + 1] = h.err
  else
    out[#out + 1] = ARGV[5] == '1' and h[1] or false
    for f = 2, 5 do out[#out + 1] = h[f] end
    out[#out + 1] = false
  end
end
return out
";

/// Keeps one worker's report: its heartbeat (a key that expires after
/// three missed reports, its id in the workers set), its finished tries
/// (pushed on the capped finished list) and its per-minute counts (added
/// to the minute's hash, which expires once the minute is older than the
/// minutes kept). Also forgets a few ids of the workers set whose key
/// expired.
///
/// KEYS: workers set, this worker's key, finished list, then one minute
/// hash per minute reported. ARGV: `1` if leaving, worker id, heartbeat
/// JSON, seen at (ms), time to live (ms), worker key prefix, finished
/// kept, minutes kept (ms), finished count, the finished JSONs; then per
/// minute hash: the minute, the count of `field, increment` pairs, the
/// pairs, the count of `field, value` pairs kept as a maximum, the pairs.
const REPORT: &str = r"
local now = now_ms()
local index, worker, finished = KEYS[1], KEYS[2], KEYS[3]
local id, seen, ttl = ARGV[2], tonumber(ARGV[4]), tonumber(ARGV[5])
if ARGV[1] == '1' or seen + ttl < now then
  redis.call('DEL', worker)
  redis.call('SREM', index, id)
else
  redis.call('SET', worker, ARGV[3], 'PX', ttl)
  redis.call('SADD', index, id)
end
local some = redis.call('SRANDMEMBER', index, 10)
for i = 1, #some do
  if redis.call('EXISTS', ARGV[6] .. some[i]) == 0 then redis.call('SREM', index, some[i]) end
end
local kept, minutes_kept = tonumber(ARGV[7]), tonumber(ARGV[8])
local n = tonumber(ARGV[9])
local at = 10
for i = 1, n do
  redis.call('LPUSH', finished, ARGV[at])
  at = at + 1
end
if n > 0 then redis.call('LTRIM', finished, 0, kept - 1) end
for k = 4, #KEYS do
  local key = KEYS[k]
  local expires = (tonumber(ARGV[at]) + 1) * 60000 + minutes_kept
  local keep = expires > now
  local sums = tonumber(ARGV[at + 1])
  at = at + 2
  for i = 1, sums do
    if keep then redis.call('HINCRBY', key, ARGV[at], ARGV[at + 1]) end
    at = at + 2
  end
  local maxes = tonumber(ARGV[at])
  at = at + 1
  for i = 1, maxes do
    if keep then
      local current = tonumber(redis.call('HGET', key, ARGV[at])) or 0
      if tonumber(ARGV[at + 1]) > current then redis.call('HSET', key, ARGV[at], ARGV[at + 1]) end
    end
    at = at + 2
  end
  if keep then redis.call('PEXPIREAT', key, expires) end
end
return 1
";

/// Reads what the workers reported: the heartbeats whose key has not
/// expired, the minute hashes from `since` to now (never before the
/// minutes kept, so at most their number plus a few), the finished list.
///
/// KEYS: workers set, finished list. ARGV: worker key prefix, minute key
/// prefix, the first minute asked, minutes kept (ms). Returns `{now_ms,
/// {heartbeat, ...}, {minute, {field, value, ...}, ...}, {finished, ...}}`.
const ACTIVITY: &str = r"
local now = now_ms()
local ids = redis.call('SMEMBERS', KEYS[1])
local workers = {}
for i = 1, #ids do
  local w = redis.call('GET', ARGV[1] .. ids[i])
  if w then workers[#workers + 1] = w end
end
local from = math.max(tonumber(ARGV[3]), math.floor((now - tonumber(ARGV[4])) / 60000))
local to = math.floor(now / 60000) + 2
local minutes = {}
for m = from, to do
  local h = redis.call('HGETALL', ARGV[2] .. string.format('%d', m))
  if #h > 0 then
    minutes[#minutes + 1] = m
    minutes[#minutes + 1] = h
  end
end
return {now, workers, minutes, redis.call('LRANGE', KEYS[2], 0, -1)}
";

/// The scripts, each compiled (hashed) once.
pub(crate) struct Scripts {
    pub enqueue: Lua,
    pub claim: Lua,
    pub ack: Lua,
    pub extend: Lua,
    pub put_back: Lua,
    pub fail: Lua,
    pub failed: Lua,
    pub retry: Lua,
    pub forget: Lua,
    pub flush_failed: Lua,
    pub clear: Lua,
    pub stats: Lua,
    pub browse: Lua,
    pub report: Lua,
    pub activity: Lua,
}

impl Scripts {
    pub(crate) fn new() -> Scripts {
        let script = Lua::new;
        Scripts {
            enqueue: script(ENQUEUE),
            claim: script(CLAIM),
            ack: script(ACK),
            extend: script(EXTEND),
            put_back: script(PUT_BACK),
            fail: script(FAIL),
            failed: script(FAILED),
            retry: script(RETRY),
            forget: script(FORGET),
            flush_failed: script(FLUSH_FAILED),
            clear: script(CLEAR),
            stats: script(STATS),
            browse: script(BROWSE),
            report: script(REPORT),
            activity: script(ACTIVITY),
        }
    }

    /// Every script, to load them all after `NOSCRIPT` (a restarted server
    /// forgets its script cache).
    pub(crate) fn all(&self) -> [&Lua; 15] {
        [
            &self.enqueue,
            &self.claim,
            &self.ack,
            &self.extend,
            &self.put_back,
            &self.fail,
            &self.failed,
            &self.retry,
            &self.forget,
            &self.flush_failed,
            &self.clear,
            &self.stats,
            &self.browse,
            &self.report,
            &self.activity,
        ]
    }
}
