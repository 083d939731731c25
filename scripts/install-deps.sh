#!/usr/bin/env bash
# Installs what building and testing jitgate needs on a fresh Debian machine (idempotent):
# cmake (pingora's zlib-ng build), Debian's chromium (the portal's browser test), and the
# npm packages of the test IdP and of the browser test, from their lockfiles, and the SCIM
# compliance checker (scim2-tester) in tests/scim/.venv, from tests/scim/requirements.txt.
# Benchmarks need more (wrk, nginx): see benches/load.sh, which installs its own.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v node >/dev/null || missing+=(nodejs npm)
if [ "${1:-}" != "--build-only" ] && [ ! -x /usr/bin/chromium ]; then missing+=(chromium); fi
# Debian splits venv (and its ensurepip) out of python3; slim images lack python3 itself.
if [ "${1:-}" != "--build-only" ] && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  missing+=(python3 python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "${1:-}" != "--build-only" ]; then
  # Reinstall the test IdP only when its lockfile changed.
  stamp=tests/idp/node_modules/.jitgate-lock
  if ! cmp -s tests/idp/package-lock.json "$stamp" 2>/dev/null; then
    npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error
    cp tests/idp/package-lock.json "$stamp"
  fi
  stamp=tests/browser/node_modules/.jitgate-lock
  if ! cmp -s tests/browser/package-lock.json "$stamp" 2>/dev/null; then
    npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
    cp tests/browser/package-lock.json "$stamp"
  fi
  # Reinstall the SCIM checker only when its pinned requirements changed.
  stamp=tests/scim/.venv/.jitgate-requirements
  if ! cmp -s tests/scim/requirements.txt "$stamp" 2>/dev/null; then
    python3 -m venv --clear tests/scim/.venv
    tests/scim/.venv/bin/pip install --quiet --disable-pip-version-check \
      --requirement tests/scim/requirements.txt
    cp tests/scim/requirements.txt "$stamp"
  fi
fi
