#!/usr/bin/env bash
# Installs the official OpenAI Node SDK for the API tests (called by
# .ci/setup), idempotently: npm ci from package-lock.json (the version and
# its integrity pinned there). Offline, with node_modules already present and
# current, it does nothing; without npm or the registry the sdk scenario of
# tests/api/api_test.py exits 77 (skipped) and the other scenarios still run.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] \
   || [ ! -f node_modules/openai/package.json ]; then
  echo "api setup: npm ci in tests/api"
  if ! command -v npm >/dev/null 2>&1; then
    echo "api setup: no npm; tests/api scenario sdk will be skipped"
  elif ! npm ci --no-audit --no-fund --loglevel=error; then
    echo "api setup: npm ci failed (offline?); tests/api scenario sdk will be skipped"
  fi
fi
