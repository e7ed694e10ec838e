#!/usr/bin/env bash
# The README's first command (.ci/demo) on this build: every input accounted
# for, the worker drained (exit 0), and nothing but the summary printed (no
# librdkafka log lines, no Python traceback).
# usage: demo_test.sh EMBEDQ_BIN WORKDIR
set -uo pipefail
bin=$1 work=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
if ! "$bin" mock-kafka --help >/dev/null 2>&1 || ! "$bin" worker --help >/dev/null 2>&1; then
  echo "SKIP: this embedq has no worker / mock-kafka (built without the broker libraries)"; exit 77
fi
if ! /usr/bin/python3 -c "import confluent_kafka" 2>/dev/null; then
  echo "SKIP: python3-confluent-kafka missing (run .ci/setup)"; exit 77
fi
rm -rf "$work" && mkdir -p "$work"
EMBEDQ_BIN=$bin EMBEDQ_DEMO_MODEL=$work/model bash "$root/.ci/demo" >"$work/out" 2>&1
rc=$?
cat "$work/out"
fails=0
[ "$rc" -eq 0 ] || { echo "FAIL: .ci/demo exit $rc"; fails=1; }
grep -q "'vectors': 300 outputs; 'dead': 2 dead letters" "$work/out" ||
  { echo "FAIL: not 300 outputs + 2 dead letters"; fails=1; }
grep -q "worker exit status after SIGTERM: 0" "$work/out" || { echo "FAIL: worker exit"; fails=1; }
if grep -E '^%[0-9]\||Traceback|rdkafka#' "$work/out"; then
  echo "FAIL: noise in the demo's output (above)"; fails=1
fi
[ "$fails" -eq 0 ] && echo "demo: ok"
exit "$fails"
