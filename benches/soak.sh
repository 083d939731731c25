#!/usr/bin/env bash
# Soak: a signed-in `jitgate run` (release build, SQLite store, the test IdP, a static nginx
# upstream) driven for DURATION seconds at about LOAD (default 80%) of the maximum it reached
# on this machine a moment before, with a mix of traffic:
#   ordinary   GET /page/N   as alice                        80%  expect 200, X-Forwarded-User
#   elevated   GET /admin/N  as alice, with an active grant  17%  expect 200, the grant's header
#   denied     GET /secret/N as alice (a route she may not use) 3% expect 403
#   sign-ins   every SIGNIN_EVERY s a full OIDC sign-in of the next of NUSERS users, who asks
#              for a 2-minute auto-approved grant and uses an elevated and a denied route
# and samples jitgate's resident memory (RSS) every 10 s.
#
# How the rate is held: Debian has wrk but not wrk2, so each wrk connection waits a delay
# before its next request (wrk's lua `delay()`, with fractional milliseconds spread by
# random rounding). Rate = connections / (delay + latency); after every one-minute slice
# the delay is corrected from the rate just measured, so the load stays near the target
# whatever the latency. It never goes below half the first delay: when other work slows
# the machine down the target is out of reach, and chasing it would saturate jitgate.
# Fewer connections alone would not do: on 2 cores a handful of connections already
# saturate jitgate. The three kinds run as three wrk processes (one thread each) so each
# can check its own expected answer; the maximum is measured with the very same three wrk
# processes and no delay.
#
# Prints per minute: requests/s, p99 latency per kind, unexpected answers; then RSS at the
# start, after the warm-up (first minute) and at the end, and the totals. Exits 1 if any
# answer was unexpected or RSS grew 5% or more after the warm-up.
#
#   bash benches/soak.sh                         # 10 minutes
#   DURATION=180 bash benches/soak.sh            # 3 minutes
#   LOAD=0.5 MEASURE=20 bash benches/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-600}
SLICE=${SLICE:-60}
LOAD=${LOAD:-0.8}
MEASURE=${MEASURE:-15}
SIGNIN_EVERY=${SIGNIN_EVERY:-3}
NUSERS=${NUSERS:-50}
# Connections per kind, so requests: 80% ordinary, 17% elevated, 3% denied. Every denial is
# an audit event written to the store, as in production; a tenth of all traffic denied
# turns the soak into a test of audit writes (see the README).
CONNS_ORDINARY=${CONNS_ORDINARY:-48}
CONNS_ELEVATED=${CONNS_ELEVATED:-10}
CONNS_DENIED=${CONNS_DENIED:-2}
CONNS=$((CONNS_ORDINARY + CONNS_ELEVATED + CONNS_DENIED))

work=$(mktemp -d)
# shellcheck source=benches/lib.sh
source benches/lib.sh
trap 'kill "${signin_pid:-}" "${sampler_pid:-}" 2>/dev/null || true; bench_cleanup' EXIT

bench_prepare
echo "== starting the upstream, the test IdP ($NUSERS users + alice) and jitgate"
bench_start_upstream
bench_start_idp "$NUSERS"
bench_write_config "grants:
  bench-admin:
    max_duration: 2h
    purpose_required: true
    requesters: { groups: [engineering] }
    approval:
      auto: { groups: [engineering] }
    headers: { X-Forwarded-Roles: admin }
routes:
  - path: /admin/**
    allow: { groups: [engineering] }
    elevate: bench-admin
  - path: /secret/**
    allow: { groups: [auditors] }
  - path: /**
    allow: { groups: [engineering] }"
bench_start_jitgate
pid=$(cat "$work/jitgate.pid")
rss_start=$(rss_kib "$pid")

echo "== signing in as alice and asking for a grant"
session=$(bench_sign_in alice alice-pw)
granted=$(bench_ask_grant "$session" bench-admin 2h)
[ "$granted" = 201 ] || { echo "the grant was refused ($granted)" >&2; cat "$work/jitgate.log" >&2; exit 1; }

# One wrk per kind; its expectations come from the environment.
cat > "$work/mix.lua" <<'LUA'
local kind = os.getenv("KIND")
local prefix = os.getenv("PATH_PREFIX")
local expect_status = tonumber(os.getenv("EXPECT_STATUS"))
local expect_name = os.getenv("EXPECT_HEADER")
local expect_value = os.getenv("EXPECT_VALUE")
local delay_ms = tonumber(os.getenv("DELAY_MS"))
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  bad = 0
  n = 0
  math.randomseed(os.time() + os.clock() * 1000000)
end
function request()
  n = n + 1
  return wrk.format("GET", prefix .. n)
end
function delay()
  local whole = math.floor(delay_ms)
  if math.random() < delay_ms - whole then return whole + 1 end
  return whole
end
function response(status, headers, body)
  if status ~= expect_status or (expect_name ~= "" and headers[expect_name] ~= expect_value) then
    bad = bad + 1
  end
end
function done(summary, latency, requests)
  local unexpected = 0
  for _, t in ipairs(threads) do unexpected = unexpected + t:get("bad") end
  local e = summary.errors
  io.write(string.format("RESULT kind=%s requests=%d unexpected=%d socket_errors=%d p99_ms=%.2f\n",
    kind, summary.requests, unexpected, e.connect + e.read + e.write + e.timeout,
    latency:percentile(99) / 1000))
end
LUA

# Runs the three kinds for $1 seconds with a delay of $2 ms; writes $work/slice.out.
run_slice() {
  local pids=()
  : > "$work/slice.out"
  run_kind() { # kind conns prefix status header value
    KIND=$1 PATH_PREFIX=$3 EXPECT_STATUS=$4 EXPECT_HEADER=$5 EXPECT_VALUE=$6 DELAY_MS=$delay \
      wrk -t1 -c"$2" -d"${seconds}s" --timeout 5s -s "$work/mix.lua" \
      -H "Cookie: jitgate_session=$session" "$JITGATE/" 2>&1 | grep '^RESULT' >> "$work/slice.out"
  }
  local seconds=$1 delay=$2
  run_kind ordinary "$CONNS_ORDINARY" /page/ 200 X-Seen-User alice & pids+=($!)
  run_kind elevated "$CONNS_ELEVATED" /admin/ 200 X-Seen-Role admin & pids+=($!)
  run_kind denied "$CONNS_DENIED" /secret/ 403 "" "" & pids+=($!)
  wait "${pids[@]}"
  [ "$(grep -c '^RESULT' "$work/slice.out")" = 3 ] || { echo "a wrk run failed" >&2; exit 1; }
}
field() { # kind name -> value from the last slice
  grep "kind=$1 " "$work/slice.out" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'
}
slice_total() { # name -> sum over kinds
  grep '^RESULT' "$work/slice.out" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { s += $2 } END { print s + 0 }'
}

echo "== measuring the maximum: ${MEASURE}s, no delay, $CONNS connections"
run_slice "$MEASURE" 0
max_rate=$(awk -v r="$(slice_total requests)" -v s="$MEASURE" 'BEGIN { printf "%d", r / s }')
[ "$(slice_total unexpected)" = 0 ] && [ "$(slice_total socket_errors)" = 0 ] || {
  echo "unexpected answers while measuring:" >&2; cat "$work/slice.out" >&2; exit 1; }
target=$(awk -v m="$max_rate" -v l="$LOAD" 'BEGIN { printf "%d", m * l }')
delay=$(awk -v c="$CONNS" -v t="$target" 'BEGIN { printf "%.3f", c * 1000 / t }')
first_delay=$delay
echo "maximum $max_rate requests/s; target $target requests/s ($LOAD), starting delay ${delay} ms per request and connection"

# RSS every 10 s, into $work/rss (seconds since start, KiB).
soak_start=$(date +%s)
( while kill -0 "$pid" 2>/dev/null; do
    echo "$(( $(date +%s) - soak_start )) $(rss_kib "$pid")" >> "$work/rss"
    sleep 10
  done ) &
sampler_pid=$!

# New sign-ins all along: user1..userN in turn, each asks for a 2-minute grant.
( i=0
  while true; do
    i=$(( i % NUSERS + 1 ))
    if s=$(bench_sign_in "user$i" "pw$i" 2>>"$work/signin.err"); then
      g=$(bench_ask_grant "$s" bench-admin 2m)
      e=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: jitgate_session=$s" "$JITGATE/admin/x")
      d=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: jitgate_session=$s" "$JITGATE/secret/x")
      if [ "$g" = 201 ] && [ "$e" = 200 ] && [ "$d" = 403 ]; then echo ok >> "$work/signins"
      else echo "user$i: grant $g, elevated $e, denied $d" >> "$work/signins"; fi
    else
      echo "user$i: sign-in failed" >> "$work/signins"
    fi
    sleep "$SIGNIN_EVERY"
  done ) &
signin_pid=$!

echo "== soak: ${DURATION}s in ${SLICE}s slices"
printf '%-7s %9s %9s %12s %12s %12s %11s\n' minute "req/s" delay_ms p99_ordinary p99_elevated p99_denied unexpected
slices=$(( (DURATION + SLICE - 1) / SLICE ))
total_requests=0
total_unexpected=0
for m in $(seq 1 "$slices"); do
  run_slice "$SLICE" "$delay"
  requests=$(slice_total requests)
  unexpected=$(( $(slice_total unexpected) + $(slice_total socket_errors) ))
  total_requests=$((total_requests + requests))
  total_unexpected=$((total_unexpected + unexpected))
  rate=$(awk -v r="$requests" -v s="$SLICE" 'BEGIN { printf "%d", r / s }')
  printf '%-7s %9s %9s %12s %12s %12s %11s\n' "$m" "$rate" "$delay" \
    "$(field ordinary p99_ms)" "$(field elevated p99_ms)" "$(field denied p99_ms)" "$unexpected"
  # rate = C / (delay + latency): keep the latency just seen, move the delay most of the way
  # to the one that gives the target.
  # Never below half the first delay: when other work slows the machine down, the target
  # cannot be reached, and chasing it would only turn the soak into a saturation run.
  delay=$(awk -v d="$delay" -v c="$CONNS" -v t="$target" -v r="$rate" -v f="$first_delay" \
    'BEGIN { n = d + 0.7 * (c * 1000 / t - c * 1000 / (r > 0 ? r : 1)); printf "%.3f", (n > f / 2 ? n : f / 2) }')
done
kill "$signin_pid" "$sampler_pid" 2>/dev/null || true
wait "$signin_pid" "$sampler_pid" 2>/dev/null || true
echo "$(( $(date +%s) - soak_start )) $(rss_kib "$pid")" >> "$work/rss"

signins_ok=$(grep -c '^ok$' "$work/signins" 2>/dev/null || true)
signins_bad=$(grep -vc '^ok$' "$work/signins" 2>/dev/null || true)
warm=$(awk -v s="$SLICE" '$1 >= s { print $2; exit }' "$work/rss")
end=$(tail -1 "$work/rss" | awk '{ print $2 }')
growth=$(awk -v a="${warm:-0}" -v b="$end" 'BEGIN { if (a > 0) printf "%.1f", (b - a) * 100 / a; else print "n/a" }')
echo
echo "RSS samples (s KiB): $(awk '{ printf "%s:%s ", $1, $2 }' "$work/rss")"
echo "RSS: at start ${rss_start} KiB, after warm-up (${SLICE}s) ${warm} KiB, at the end ${end} KiB: growth ${growth}% after warm-up"
echo "requests: $total_requests, unexpected answers: $total_unexpected; sign-ins: $signins_ok ok, $signins_bad failed"
[ "$signins_bad" = 0 ] || { echo "failed sign-ins:" >&2; grep -v '^ok$' "$work/signins" | head >&2; }
if [ "$total_unexpected" -ne 0 ] || [ "$signins_bad" != 0 ] || \
   awk -v g="$growth" 'BEGIN { exit !(g + 0 >= 5) }'; then
  echo "FAILED: unexpected answers or RSS growth of 5% or more" >&2
  exit 1
fi
echo "ok"
