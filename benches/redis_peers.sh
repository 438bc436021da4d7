#!/usr/bin/env bash
# The peers of the Redis queue, measured on one private Redis in one run
# (issue 11, "Performance"): BullMQ (benches/bullmq/bench.mjs) and the
# ceiling, `redis-benchmark` LPUSH/RPOP unpipelined and with `-P 16`.
#
# Usage:  benches/redis_peers.sh [-- COMMAND ARGS...]
#   JOBS=20000       jobs per BullMQ case
#   REDIS_PORT=6390  first port to try for the private server (the next free
#                    one is taken)
# A COMMAND after `--` runs against the same server between BullMQ and
# redis-benchmark, with REDIS_URL, EVENTS_QUEUE_URL and EVENTS_BENCH_REDIS_URL
# set to it; e.g. the Rust side of the comparison:
#   benches/redis_peers.sh -- cargo bench --bench queue_throughput
#
# The server is private (its own port, a temporary directory, no RDB, no AOF:
# `--save "" --appendonly no`, so no disk work in the figures) and is shut
# down at exit, whatever happens. The shared Redis on 6379 is not touched.
# Needs redis-server, redis-cli, redis-benchmark, and Node >= 18 with npm.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
bench_dir="$here/bullmq"
jobs="${JOBS:-20000}"
first_port="${REDIS_PORT:-6390}"

extra=()
if [[ $# -gt 0 ]]; then
  if [[ "$1" != "--" ]]; then
    echo "usage: $0 [-- COMMAND ARGS...]" >&2
    exit 2
  fi
  shift
  extra=("$@")
fi

for tool in redis-server redis-cli redis-benchmark node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "redis_peers: '$tool' is not installed; this benchmark needs redis-server, redis-cli, redis-benchmark and Node >= 18 with npm" >&2
    exit 1
  fi
done

tmp="$(mktemp -d "${TMPDIR:-/tmp}/redis_peers.XXXXXX")"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_in_use() {
  # Something answers on the port (Redis or not).
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

port="$first_port"
while port_in_use "$port"; do
  port=$((port + 1))
  if [[ $port -gt $((first_port + 100)) ]]; then
    echo "redis_peers: no free port in $first_port..$((first_port + 100))" >&2
    exit 1
  fi
done

redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp" \
  --save "" --appendonly no --daemonize no \
  --logfile "$tmp/redis.log" &
server_pid=$!

for _ in $(seq 1 100); do
  if [[ "$(redis-cli -p "$port" ping 2>/dev/null || true)" == "PONG" ]]; then
    break
  fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "redis_peers: redis-server on port $port exited at start; its log:" >&2
    cat "$tmp/redis.log" >&2 || true
    exit 1
  fi
  sleep 0.1
done
if [[ "$(redis-cli -p "$port" ping 2>/dev/null || true)" != "PONG" ]]; then
  echo "redis_peers: redis-server on port $port did not answer PING within 10 s" >&2
  exit 1
fi

url="redis://127.0.0.1:$port/0"
echo "# private redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on port $port ($tmp), --save \"\" --appendonly no"
echo "# machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%M:%SZ)"

if [[ ! -d "$bench_dir/node_modules" ]]; then
  echo "# npm ci in $bench_dir"
  (cd "$bench_dir" && npm ci --no-audit --no-fund >&2)
fi

echo "== BullMQ"
REDIS_URL="$url" JOBS="$jobs" node "$bench_dir/bench.mjs"

if [[ ${#extra[@]} -gt 0 ]]; then
  echo "== ${extra[*]}"
  REDIS_URL="$url" EVENTS_QUEUE_URL="$url" EVENTS_BENCH_REDIS_URL="$url" "${extra[@]}"
fi

echo "== redis-benchmark (the ceiling)"
for pipeline in 1 16; do
  # CSV lines: "LPUSH","75018.76",... -> redis-benchmark lpush pipeline=1 requests_per_s=75019
  redis-benchmark -p "$port" -t lpush,rpop -n 200000 -P "$pipeline" --csv |
    awk -F'","' -v p="$pipeline" 'NR > 1 {
      gsub(/"/, "", $1); gsub(/"/, "", $2);
      printf "redis-benchmark %s pipeline=%s requests_per_s=%.0f\n", tolower($1), p, $2
    }'
done
