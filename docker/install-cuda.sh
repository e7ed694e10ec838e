#!/usr/bin/env bash
# Installs the CUDA build tools embedq needs from NVIDIA's apt repository for
# Debian 12 (the image's build stage; CI and developers use the toolkit
# already at /usr/local/cuda, so CI does not run this script).
#
#   bash docker/install-cuda.sh VERSION      e.g. 13.0
#
# Installs nvcc, the CUDA runtime (embedq links it statically) and cuBLAS
# (embedq dlopens libcublasLt on first use), under /usr/local/cuda-VERSION with the
# /usr/local/cuda link.
set -euo pipefail
ver=${1:?usage: install-cuda.sh VERSION (e.g. 13.0)}
dash=${ver/./-}
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends ca-certificates curl
keyring=cuda-keyring_1.1-1_all.deb
curl -fsSLo "/tmp/$keyring" "https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/$keyring"
dpkg -i "/tmp/$keyring"
rm -f "/tmp/$keyring"
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  "cuda-nvcc-$dash" "cuda-cudart-dev-$dash" "libcublas-dev-$dash" "cuda-toolkit-$dash-config-common"
[ -x "/usr/local/cuda-$ver/bin/nvcc" ] || { echo "install-cuda: no nvcc in /usr/local/cuda-$ver" >&2; exit 1; }
[ -e /usr/local/cuda ] || ln -s "cuda-$ver" /usr/local/cuda
rm -rf /var/lib/apt/lists/*
