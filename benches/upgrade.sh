#!/usr/bin/env bash
# Graceful upgrade under load: wrk drives a signed-in `jitgate run` (release build, SQLite
# store, the test IdP, a static nginx upstream), and halfway through the run a second
# `jitgate run --upgrade --pid-file` takes the listening sockets over. The old process drains
# and exits by itself. Prints wrk's totals, socket errors and answers other than 200 (target:
# 0 of each) and checks that the session made before the upgrade still works after it.
#
#   bash benches/upgrade.sh                      # 20 s of wrk, upgrade at 8 s
#   DURATION=30 UPGRADE_AT=10 CONNS=128 UPGRADES=2 bash benches/upgrade.sh
#
# UPGRADES upgrades are made, UPGRADE_AT seconds apart. Everything listens on 127.0.0.1 only;
# the run stops by itself and exits 1 if any request failed.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20}
UPGRADE_AT=${UPGRADE_AT:-8}
UPGRADES=${UPGRADES:-1}
CONNS=${CONNS:-64}
WRK_THREADS=${WRK_THREADS:-2}

work=$(mktemp -d)
# shellcheck source=benches/lib.sh
source benches/lib.sh
trap bench_cleanup EXIT

bench_prepare
echo "== starting the upstream, the test IdP and jitgate"
bench_start_upstream
bench_start_idp 0
bench_write_config "routes:
  - path: /**
    allow: { groups: [engineering] }"
bench_start_jitgate
echo "== signing in as alice"
session=$(bench_sign_in alice alice-pw)

# Counts every answer that is not a 200 from the upstream, and prints one summary line.
cat > "$work/count.lua" <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0 end
function response(status, headers, body)
  if status ~= 200 or headers["X-Seen-User"] ~= "alice" then bad = bad + 1 end
end
function done(summary, latency, requests)
  local not_ok = 0
  for _, t in ipairs(threads) do not_ok = not_ok + t:get("bad") end
  local e = summary.errors
  io.write(string.format("RESULT requests=%d not_200=%d connect=%d read=%d write=%d timeout=%d p99_ms=%.2f max_ms=%.2f\n",
    summary.requests, not_ok, e.connect, e.read, e.write, e.timeout,
    latency:percentile(99) / 1000, latency.max / 1000))
end
LUA

echo "== wrk: ${DURATION}s, $CONNS connections; $UPGRADES upgrade(s), the first at ${UPGRADE_AT}s"
wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 10s -s "$work/count.lua" \
  -H "Cookie: jitgate_session=$session" "$JITGATE/" > "$work/wrk.out" &
wrk_pid=$!
for n in $(seq 1 "$UPGRADES"); do
  sleep "$UPGRADE_AT"
  old=$(cat "$work/jitgate.pid")
  started=$(date +%s.%N)
  bench_start_jitgate --upgrade
  for _ in $(seq 1 200); do [ "$(cat "$work/jitgate.pid")" != "$old" ] && break; sleep 0.05; done
  new=$(cat "$work/jitgate.pid")
  [ "$new" != "$old" ] || { echo "upgrade $n: the new process did not take over" >&2; cat "$work/jitgate.log" >&2; exit 1; }
  took=$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }')
  echo "upgrade $n: pid $old -> $new, new process serving after ${took}s"
done
wait "$wrk_pid"
# The last old process may still be draining: wait for it.
for _ in $(seq 1 300); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$old" 2>/dev/null; then echo "the old process $old did not exit" >&2; exit 1; fi

after=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: jitgate_session=$session" "$JITGATE/after-upgrade")
result=$(grep '^RESULT' "$work/wrk.out")
echo "$result"
echo "session made before the upgrade, afterwards: $after"
eval "$(sed 's/^RESULT //' <<<"$result")"
errors=$((not_200 + connect + read + write + timeout))
echo "requests $requests, failed $errors (non-200 $not_200, connect $connect, read $read, write $write, timeout $timeout), p99 ${p99_ms} ms, max ${max_ms} ms"
[ "$errors" -eq 0 ] && [ "$after" = 200 ] || { echo "FAILED: requests failed across the upgrade" >&2; exit 1; }
echo "ok: no request failed across $UPGRADES upgrade(s)"
