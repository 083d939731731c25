# Shared by benches/upgrade.sh and benches/soak.sh (sourced, not run): a real `jitgate run`
# (release build) in front of a static nginx upstream, the test IdP from tests/idp
# (oidc-provider) with as many users as asked for, and sign-in with curl.
#
# The caller sets `work` (a scratch directory, removed by `bench_cleanup` unless KEEP_WORK is
# set) and may set
# JITGATE_PORT, ADMIN_PORT, UPSTREAM_PORT, PROXY_THREADS before calling these functions.
# Everything listens on 127.0.0.1 only.

JITGATE_PORT=${JITGATE_PORT:-18090}
ADMIN_PORT=${ADMIN_PORT:-18091}
UPSTREAM_PORT=${UPSTREAM_PORT:-18092}
PROXY_THREADS=${PROXY_THREADS:-2}
JITGATE=http://127.0.0.1:$JITGATE_PORT
bench_pids=()

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# wrk, nginx, cmake, node and the test IdP's npm packages; then the release binary.
bench_prepare() {
  if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
  fi
  bash scripts/install-deps.sh --build-only
  if [ ! -d tests/idp/node_modules/oidc-provider ]; then
    npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error
  fi
  echo "== building (release)"
  cargo build --release --locked --quiet --bin jitgate
}

bench_cleanup() {
  for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -f "$work/jitgate.pid" ]; then kill "$(cat "$work/jitgate.pid")" 2>/dev/null || true; fi
  if [ -f "$work/up.pid" ]; then kill "$(cat "$work/up.pid")" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  if [ -n "${KEEP_WORK:-}" ]; then echo "logs and data kept in $work"; else rm -rf "$work"; fi
}

wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "port $1 never opened" >&2
  return 1
}

# A static upstream that tells which identity and grant headers reached it.
bench_start_upstream() {
  mkdir -p "$work/nginx"
  cat > "$work/up.conf" <<CONF
worker_processes 1;
pid $work/up.pid;
error_log $work/up-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fcgi; uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$UPSTREAM_PORT;
    location / {
      add_header X-Seen-User \$http_x_forwarded_user;
      add_header X-Seen-Role \$http_x_forwarded_roles;
      return 200 "hello from the upstream\\n";
    }
  }
}
CONF
  nginx -c "$work/up.conf" -e "$work/up-error.log"
  wait_port "$UPSTREAM_PORT"
}

# Starts the test IdP with users alice (engineering) and user1..user$1 (engineering);
# sets IDP_ISSUER.
bench_start_idp() {
  local users='{"sub":"u-alice","login":"alice","password":"alice-pw","preferred_username":"alice","email":"alice@example.test","groups":["engineering"]}'
  for i in $(seq 1 "${1:-0}"); do
    users+=",{\"sub\":\"u-$i\",\"login\":\"user$i\",\"password\":\"pw$i\",\"preferred_username\":\"user$i\",\"email\":\"user$i@example.test\",\"groups\":[\"engineering\"]}"
  done
  local config="{\"port\":0,\"clients\":[{\"client_id\":\"jitgate-bench\",\"client_secret\":\"bench-secret-0123456789\",\"redirect_uris\":[\"$JITGATE/.jitgate/callback\"],\"post_logout_redirect_uris\":[\"$JITGATE/.jitgate/logged-out\"]}],\"users\":[$users]}"
  IDP_CONFIG=$config node tests/idp/server.mjs >"$work/idp.out" 2>"$work/idp.err" &
  bench_pids+=($!)
  for _ in $(seq 1 300); do
    IDP_ISSUER=$(awk '/^IDP_READY / { print $2 }' "$work/idp.out")
    [ -n "$IDP_ISSUER" ] && return 0
    sleep 0.1
  done
  echo "the test IdP did not start:" >&2
  cat "$work/idp.err" >&2
  return 1
}

# Writes $work/jitgate.yaml and $work/policies/bench.yaml ($1: extra policy text).
bench_write_config() {
  mkdir -p "$work/policies" "$work/data"
  printf '%s' bench-secret-0123456789 > "$work/client-secret"
  cat > "$work/jitgate.yaml" <<YAML
listen:
  http: 127.0.0.1:$JITGATE_PORT
  admin: 127.0.0.1:$ADMIN_PORT
  upgrade_socket: $work/upgrade.sock
  drain_timeout: 5s
public_base_url: $JITGATE
idp:
  issuer: $IDP_ISSUER
  client_id: jitgate-bench
  client_secret_file: client-secret
  scopes: [openid, profile, email, groups]
store:
  url: sqlite://$work/data/jitgate.db
policies: policies
YAML
  cat > "$work/policies/bench.yaml" <<POLICY
app: bench
hosts: [127.0.0.1, localhost]
upstream: http://127.0.0.1:$UPSTREAM_PORT
identity:
  headers:
    X-Forwarded-User: preferred_username
    X-Forwarded-Email: email
    X-Forwarded-Groups: groups
$1
POLICY
}

# Starts `jitgate run` (extra arguments are passed on) and waits for its listener.
bench_start_jitgate() {
  RUST_LOG=${RUST_LOG:-warn} target/release/jitgate run --config "$work/jitgate.yaml" \
    --threads "$PROXY_THREADS" --pid-file "$work/jitgate.pid" "$@" >>"$work/jitgate.log" 2>&1 &
  wait_port "$JITGATE_PORT"
  for _ in $(seq 1 100); do [ -s "$work/jitgate.pid" ] && return 0; sleep 0.1; done
  echo "jitgate wrote no pid file" >&2
  return 1
}

# Signs in as $1 (password $2) with curl; prints the session cookie's value.
bench_sign_in() {
  local jar
  jar=$(mktemp -p "$work")
  # jitgate -> IdP authorize -> the IdP's login form (its URL is where -L stops).
  local form
  form=$(curl -s -L -c "$jar" -b "$jar" -o /dev/null -w '%{url_effective}' "$JITGATE/")
  case "$form" in */interaction/*) ;; *) echo "no login form (ended at $form)" >&2; rm -f "$jar"; return 1 ;; esac
  # The form posts to <form>/login; the redirects end back at jitgate with a session.
  local status
  status=$(curl -s -L -c "$jar" -b "$jar" -o /dev/null -w '%{http_code}' \
    --data-urlencode "login=$1" --data-urlencode "password=$2" "$form/login")
  local session
  session=$(awk '$6 == "jitgate_session" { print $7 }' "$jar" | tail -1)
  rm -f "$jar"
  if [ "$status" != 200 ] || [ -z "$session" ]; then
    echo "sign-in as $1 failed (status $status)" >&2
    return 1
  fi
  printf '%s' "$session"
}

# Asks for a grant of type $2 with session $1; prints the HTTP status.
bench_ask_grant() {
  curl -s -o /dev/null -w '%{http_code}' -H "Cookie: jitgate_session=$1" \
    -H 'Content-Type: application/json' \
    --data "{\"type\": \"$2\", \"purpose\": \"soak test\", \"duration\": \"${3:-30m}\"}" \
    "$JITGATE/.jitgate/api/grants"
}

# Resident memory of a process in KiB.
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
