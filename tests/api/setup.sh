#!/usr/bin/env bash
# Installs the official OpenAI Node SDK for the API tests (called by
# .ci/setup), idempotently: npm ci from package-lock.json (the version and
# its integrity pinned there). Offline, with node_modules already present and
# current, it does nothing; without npm or the registry the sdk scenario of
# tests/api/api_test.py exits 77 (skipped) and the other scenarios still run
# (outside CI: with CI set, setup fails instead).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] \
   || [ ! -f node_modules/openai/package.json ]; then
  echo "api setup: npm ci in tests/api"
  # In CI (CI set) the SDK is required: a skipped sdk scenario there would
  # pass without the client it exists for.
  if ! command -v npm >/dev/null 2>&1; then
    echo "api setup: no npm; tests/api scenario sdk will be skipped"
    [ -z "${CI:-}" ] || { echo "api setup: CI is set: the SDK is required" >&2; exit 1; }
  elif ! npm ci --no-audit --no-fund --loglevel=error; then
    echo "api setup: npm ci failed (offline?); tests/api scenario sdk will be skipped"
    [ -z "${CI:-}" ] || { echo "api setup: CI is set: the SDK is required" >&2; exit 1; }
  fi
fi
