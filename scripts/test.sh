#!/usr/bin/env bash
# The test command (README "Testing"): installs test dependencies, then runs every check
# CI runs. Needs PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`); override with
# JITGATE_TEST_POSTGRES=postgres://user@host:port/db.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

# A full build needs about 3 GiB under target/; say so up front rather than
# failing later inside the linker.
free_kib=$(df -Pk . | awk 'NR == 2 { print $4 }')
if [ "${free_kib:-0}" -lt $((4 * 1024 * 1024)) ]; then
  echo "warning: only $((free_kib / 1024)) MiB free on this disk; the build needs about 3 GiB" >&2
fi

echo "== format and lints"
cargo fmt --all --check
cargo clippy --locked --all-targets -- -D warnings

echo "== example config and policies"
JITGATE_CLIENT_SECRET=example cargo run --locked --quiet -- check --config jitgate.example.yaml

echo "== tests (unit, store contract on SQLite and PostgreSQL, integration with oidc-provider)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked --all-targets 2>&1 | tee "$log"
passed=$(grep -oE '[0-9]+ passed' "$log" | awk '{ s += $1 } END { print s + 0 }')
failed=$(grep -oE '[0-9]+ failed' "$log" | awk '{ s += $1 } END { print s + 0 }')
echo
echo "tests: $passed passed, $failed failed"
