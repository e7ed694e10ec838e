#!/usr/bin/env bash
# The foundation's checks that need the GPU machine (it has PyTorch,
# transformers and HF `tokenizers`; no broker libraries, no network), in one
# device call. Now a thin wrapper over tests/gpu/run.sh, which builds embedq
# there against the carried Debian sysroot and generates the checkpoint
# there (see docs/gpu-checks.md).
#
#   here:    bash tests/gpu/confirm_foundation.sh --prepare   # writes .gpu/, .gpu-carry/ (~7 MB)
#   device:  run "bash tests/gpu/confirm_foundation.sh" with carry [".gpu-carry"]
#
# 1. HF tokenizers (Python, the reference of record) on the whole tokenizer
#    corpus vs the checked-in goldens + exceptions (check_hf_tokenizers.py).
# 2. The numpy reference vs transformers' Qwen3Model on the same generated
#    tiny checkpoint: float32 on the CPU, then bf16 on the GPU
#    (check_vs_transformers.py), min and mean cosine.
# Results go to $OUT/correct.log and $OUT/summary.txt (and stdout).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
if [ "${1:-}" = "--prepare" ]; then
  exec bash tests/gpu/run.sh prepare
fi
exec bash tests/gpu/run.sh foundation
