#!/usr/bin/env bash
# The foundation's checks that need the GPU machine (it has PyTorch,
# transformers and HF `tokenizers`; no broker libraries, no network), in one
# device call. STATUS: NOT YET RUN - no GPU machine was lent to the
# foundation issue; docs/engine.md and docs/tokenizer.md say what is
# unconfirmed until it is.
#
#   here:    bash tests/gpu/confirm_foundation.sh --prepare   # writes .gpu/ (ignored, ~45 MB)
#   device:  run "bash tests/gpu/confirm_foundation.sh" with carry [".gpu"]
#
# 1. HF tokenizers (Python, the reference of record) on the whole tokenizer
#    corpus vs the checked-in goldens + exceptions (check_hf_tokenizers.py).
# 2. The numpy reference vs transformers' Qwen3Model on the same generated
#    tiny checkpoint: float32 on the CPU, then bf16 on the GPU
#    (check_vs_transformers.py), min and mean cosine.
# Results go to $OUT/foundation_gpu.txt (and stdout).
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ "${1:-}" = "--prepare" ]; then
  rm -rf .gpu && mkdir -p .gpu
  build/embedq gen-model --preset tiny --out .gpu/tiny --seed 11
  du -sh .gpu
  exit 0
fi
[ -f .gpu/tiny/config.json ] || { echo "run --prepare here first and carry .gpu" >&2; exit 2; }
out="${OUT:-/tmp}/foundation_gpu.txt"
{
  echo "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null)"
  python3 -c 'import tokenizers, transformers, torch; print("tokenizers", tokenizers.__version__, "transformers", transformers.__version__, "torch", torch.__version__)'
  echo "== 1. HF tokenizers vs goldens"
  python3 tests/tokenizer/check_hf_tokenizers.py --tokenizer .gpu/tiny/tokenizer.json; echo "rc=$?"
  echo "== 2a. numpy reference vs transformers Qwen3Model, float32, CPU"
  python3 tests/reference/check_vs_transformers.py --model .gpu/tiny --device cpu --dtype float32; echo "rc=$?"
  echo "== 2b. numpy reference vs transformers Qwen3Model, bf16, CUDA"
  python3 tests/reference/check_vs_transformers.py --model .gpu/tiny --device cuda --dtype bfloat16; echo "rc=$?"
} 2>&1 | tee "$out"
