#!/usr/bin/env bash
# Runs `jitgate demo` on a fresh machine: installs the build tools it needs, then builds and
# starts jitgate with a development issuer, a demo app and a demo policy on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --build-only
exec cargo run --release --locked -- demo "$@"
