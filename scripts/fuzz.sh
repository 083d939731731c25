#!/usr/bin/env bash
# The long run of the property tests (README "Testing"): every `properties` test of the
# library, with PROPTEST_CASES cases each (default 10000; `cargo test` runs a few hundred).
#   bash scripts/fuzz.sh            # 10000 cases per property
#   PROPTEST_CASES=100000 bash scripts/fuzz.sh
# A failing case is saved under proptest-regressions/ and runs first from then on.
set -euo pipefail
cd "$(dirname "$0")/.."

cases=${PROPTEST_CASES:-10000}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

cargo test --locked --lib --no-run --quiet
start=$(date +%s)
status=0
PROPTEST_CASES=$cases cargo test --locked --lib --quiet -- properties:: --test-threads 2 \
  2>&1 | tee "$log" || status=$?
seconds=$(($(date +%s) - start))

properties=$(grep -oE '[0-9]+ passed' "$log" | awk '{ s += $1 } END { print s + 0 }')
failed=$(grep -oE '[0-9]+ failed' "$log" | awk '{ s += $1 } END { print s + 0 }')
# The `properties` modules also hold a few plain tests (the seeds load): count only proptests.
plain=$(grep -cE '^ *fn the_seeds?_load' src/*/properties.rs | awk -F: '{ s += $2 } END { print s + 0 }')
properties=$((properties - plain))
echo
echo "fuzz: $properties properties passed, $failed failed, $cases cases each" \
  "($((properties * cases)) cases) in ${seconds} s"
exit "$status"
