#!/usr/bin/env bash
# Load comparison, in one run and interleaved: jitgate (logged in), a bare pingora
# passthrough (benches/passthrough_proxy.rs, no auth, same settings) and nginx from Debian
# as a plain reverse proxy, all in front of the same upstream (a static nginx answer).
# A fourth target, "headers", is the same passthrough making only jitgate's header edits
# (PASSTHROUGH_HEADERS=1): what pingora's header API costs before any of jitgate's checks.
#
# A shared VM's speed drifts by tens of percent within seconds, so the targets take turns in
# short slices, many rounds, starting each round with a different target; every ratio is
# taken within one round and the median of those is the result.
#
#   bash benches/load.sh                 # 20 rounds of 2 s per target (about 3 minutes)
#   ROUNDS=40 DURATION=3s CONNS=128 bash benches/load.sh
#
# Everything listens on 127.0.0.1 only; the run stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-20}
DURATION=${DURATION:-2s}
CONNS=${CONNS:-64}
WRK_THREADS=${WRK_THREADS:-2}
PROXY_THREADS=${PROXY_THREADS:-2}
UPSTREAM_PORT=18081
NGINX_PORT=18082
PINGORA_PORT=18083
HEADERS_PORT=18084
JITGATE=http://127.0.0.1:8080

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
fi
bash scripts/install-deps.sh --build-only

echo "== building (release)"
cargo build --release --locked --quiet --bin jitgate
cargo bench --locked --quiet --bench passthrough_proxy --no-run 2>/dev/null
passthrough=$(ls -t target/release/deps/passthrough_proxy-* | grep -v '\.d$' | head -1)

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/up.pid" ] && kill "$(cat "$work/up.pid")" 2>/dev/null || true
  [ -f "$work/proxy.pid" ] && kill "$(cat "$work/proxy.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "port $1 never opened" >&2
  return 1
}

nginx_conf() { # $1 name, $2 workers, $3 server block
  cat > "$work/$1.conf" <<CONF
worker_processes $2;
pid $work/$1.pid;
error_log $work/$1-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/$1-body; proxy_temp_path $work/$1-proxy;
  fastcgi_temp_path $work/$1-fcgi; uwsgi_temp_path $work/$1-uwsgi; scgi_temp_path $work/$1-scgi;
  upstream app { server 127.0.0.1:$UPSTREAM_PORT; keepalive 256; }
  $3
}
CONF
}

echo "== starting the upstream, nginx, the pingora passthrough and jitgate"
nginx_conf up 1 "server { listen 127.0.0.1:$UPSTREAM_PORT; location / { return 200 \"hello from the upstream\\n\"; } }"
nginx -c "$work/up.conf" -e "$work/up-error.log"
nginx_conf proxy "$PROXY_THREADS" "server { listen 127.0.0.1:$NGINX_PORT; location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
nginx -c "$work/proxy.conf" -e "$work/proxy-error.log"

PASSTHROUGH_LISTEN=127.0.0.1:$PINGORA_PORT PASSTHROUGH_UPSTREAM=127.0.0.1:$UPSTREAM_PORT \
  PASSTHROUGH_THREADS=$PROXY_THREADS RUST_LOG=error "$passthrough" >"$work/pingora.log" 2>&1 &
pids+=($!)
PASSTHROUGH_LISTEN=127.0.0.1:$HEADERS_PORT PASSTHROUGH_UPSTREAM=127.0.0.1:$UPSTREAM_PORT \
  PASSTHROUGH_THREADS=$PROXY_THREADS PASSTHROUGH_HEADERS=1 RUST_LOG=error "$passthrough" >"$work/headers.log" 2>&1 &
pids+=($!)

# jitgate demo, with its policy pointed at the shared upstream.
mkdir -p "$work/demo/policies"
cat > "$work/demo/policies/demo.yaml" <<POLICY
app: demo
hosts: [127.0.0.1, localhost]
upstream: http://127.0.0.1:$UPSTREAM_PORT
identity:
  headers:
    X-Forwarded-User: preferred_username
    X-Forwarded-Email: email
    X-Forwarded-Groups: groups
routes:
  - path: /admin/**
    allow: { groups: [wiki-admins] }
  - path: /**
    allow: { groups: [engineering] }
POLICY
RUST_LOG=error target/release/jitgate demo --dir "$work/demo" >"$work/jitgate.log" 2>&1 &
pids+=($!)
for p in $UPSTREAM_PORT $NGINX_PORT $PINGORA_PORT $HEADERS_PORT 8080 8081; do wait_port "$p"; done

echo "== signing in to jitgate as the demo user alice"
jar="$work/cookies"
login=$(curl -s -c "$jar" -b "$jar" -o /dev/null -w '%{redirect_url}' "$JITGATE/")
authorize=$(curl -s -c "$jar" -b "$jar" -o /dev/null -w '%{redirect_url}' "$login")
form=$(curl -s -c "$jar" -b "$jar" "$authorize")
fields=$(printf '%s' "$form" | grep -o 'name="[a-z_]*" value="[^"]*"' | sed -E 's/name="([a-z_]*)" value="([^"]*)"/\1=\2/' | sed 's/&amp;/\&/g' | paste -sd'&')
callback=$(curl -s -c "$jar" -b "$jar" -o /dev/null -w '%{redirect_url}' --data "$fields&user=0" http://127.0.0.1:8081/authorize)
curl -s -c "$jar" -b "$jar" -o /dev/null "$callback"
session=$(awk '$6 == "jitgate_session" { print $7 }' "$jar")
[ -n "$session" ] || { echo "login failed" >&2; cat "$work/jitgate.log" >&2; exit 1; }
answer=$(curl -s -H "Cookie: jitgate_session=$session" "$JITGATE/")
[ "$answer" = "hello from the upstream" ] || { echo "jitgate did not forward: $answer" >&2; exit 1; }

declare -A url=( [nginx]="http://127.0.0.1:$NGINX_PORT/" [pingora]="http://127.0.0.1:$PINGORA_PORT/" [headers]="http://127.0.0.1:$HEADERS_PORT/" [jitgate]="$JITGATE/" )
run() { # $1 target
  # Every target gets the very same request, session cookie included: the plain proxies
  # forward it untouched, jitgate checks it, strips it and adds the identity headers.
  local extra=(-H "Cookie: jitgate_session=$session")
  local out
  out=$(wrk -t"$WRK_THREADS" -c"$CONNS" -d"$DURATION" "${extra[@]}" "${url[$1]}")
  if grep -q "Non-2xx" <<<"$out"; then echo "$1 answered errors:" >&2; echo "$out" >&2; exit 1; fi
  awk '/Requests\/sec/ { printf "%d", $2 }' <<<"$out"
}

echo "== $ROUNDS rounds, $DURATION each, $CONNS connections, wrk threads $WRK_THREADS, proxy threads $PROXY_THREADS"
targets=(nginx pingora headers jitgate)
results="$work/results"
: > "$results"
for round in $(seq 1 "$ROUNDS"); do
  line="round $round:"
  for i in 0 1 2 3; do
    # Each round starts with another target, so none is always first or last.
    target=${targets[$(( (i + round) % 4 ))]}
    rate=$(run "$target")
    [ -n "$rate" ] || exit 1
    echo "$round $target $rate" >> "$results"
    line+=" $target $rate/s"
  done
  echo "$line"
done

echo
awk '
  function median(list, n,   sorted, i, j, t) {
    for (i = 1; i <= n; i++) sorted[i] = list[i]
    for (i = 2; i <= n; i++) for (j = i; j > 1 && sorted[j-1] > sorted[j]; j--) {
      t = sorted[j]; sorted[j] = sorted[j-1]; sorted[j-1] = t }
    return n % 2 ? sorted[(n+1)/2] : (sorted[n/2] + sorted[n/2+1]) / 2
  }
  function quartiles(list, n,   sorted, i, j, t) {
    for (i = 1; i <= n; i++) sorted[i] = list[i]
    for (i = 2; i <= n; i++) for (j = i; j > 1 && sorted[j-1] > sorted[j]; j--) {
      t = sorted[j]; sorted[j] = sorted[j-1]; sorted[j-1] = t }
    return sprintf("%.2f-%.2f", sorted[int(n/4)+1], sorted[int(3*n/4)+ (n%4 ? 1 : 0)])
  }
  { rate[$1, $2] = $3; total[$2] += $3; rounds = $1 > rounds ? $1 : rounds }
  END {
    for (r = 1; r <= rounds; r++) {
      n[r] = rate[r, "nginx"]; p[r] = rate[r, "pingora"]; h[r] = rate[r, "headers"]; j[r] = rate[r, "jitgate"]
      jp[r] = j[r] / p[r]; jn[r] = j[r] / n[r]; pn[r] = p[r] / n[r]; hp[r] = h[r] / p[r]; jh[r] = j[r] / h[r]
    }
    printf "median requests/s: nginx %d, pingora passthrough %d, pingora + jitgate'"'"'s header edits %d, jitgate (logged in) %d\n",
      median(n, rounds), median(p, rounds), median(h, rounds), median(j, rounds)
    printf "ratios within each round, median (middle half):\n"
    printf "  jitgate / pingora passthrough: %.3f (%s)  target >= 0.90; ratio of totals %.3f\n",
      median(jp, rounds), quartiles(jp, rounds), total["jitgate"] / total["pingora"]
    printf "  jitgate / nginx:               %.3f (%s)\n", median(jn, rounds), quartiles(jn, rounds)
    printf "  pingora / nginx:               %.3f (%s)\n", median(pn, rounds), quartiles(pn, rounds)
    printf "  header edits only / pingora:   %.3f (%s)  pingora header API alone\n", median(hp, rounds), quartiles(hp, rounds)
    printf "  jitgate / header edits only:   %.3f (%s)  jitgate own checks\n", median(jh, rounds), quartiles(jh, rounds)
  }' "$results"
