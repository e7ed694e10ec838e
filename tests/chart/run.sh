#!/bin/sh
# ctest entry point: runs one case of chart_test.mjs, or exits 77 (skipped)
# when node, the npm packages or helm are missing (tests/chart/setup.sh
# installs the last two).
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v node >/dev/null 2>&1; then
  echo "SKIP: node not found (Debian: nodejs)"; exit 77
fi
for m in yaml kubernetes-models @kubernetes-models/keda @kubernetes-models/prometheus-operator; do
  if [ ! -f "$here/node_modules/$m/package.json" ]; then
    echo "SKIP: tests/chart/node_modules/$m missing (run tests/chart/setup.sh)"; exit 77
  fi
done
if [ ! -x "${HELM:-$here/.bin/helm}" ]; then
  echo "SKIP: no helm at ${HELM:-$here/.bin/helm} (run tests/chart/setup.sh)"; exit 77
fi
exec node "$here/chart_test.mjs" "$@"
