#!/usr/bin/env bash
# scripts_test.sh EMBEDQ PYTHON WORKDIR - the GPU machine's scripts, run
# where they can run without a GPU, so they do not rot between GPU sessions:
#   - every tests/gpu/*.py parses (those importing torch cannot run here);
#   - check_backends.py --quick on a generated tiny checkpoint, the CUDA
#     backend's plan on the CPU twins (--a twin) against the CPU backend;
#   - compare_bench.py on two `embedq bench --json` files (ours vs ours);
#   - run.sh knows its phases (bash -n, unknown phase -> 2).
set -u
B=$1 PY=$2 W=$3
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$W" && mkdir -p "$W"
fail=0
export OMP_WAIT_POLICY=PASSIVE
"$PY" -c 'import ast, sys
for f in sys.argv[1:]:
    ast.parse(open(f, encoding="utf-8").read(), f)' "$here"/*.py || fail=1
bash -n "$here/run.sh" || fail=1
OUT=$W/out EQ_WORK=$W/work bash "$here/run.sh" no-such-phase > /dev/null 2>&1; [ $? -eq 2 ] || { echo "FAIL: run.sh unknown phase"; fail=1; }
"$B" gen-model --preset tiny --out "$W/tiny" --seed 5 || exit 1
"$PY" "$here/check_backends.py" --embedq "$B" --model "$W/tiny" --workdir "$W/check" \
  --a twin --b cpu-fp32 --quick --threads 2 || fail=1
"$B" bench --model "$W/tiny" --device cpu --seq-len 32 --iters 2 --warmup 1 --batch-tokens 1024 \
  --json "$W/a.jsonl" > /dev/null 2>&1 || fail=1
"$PY" "$here/compare_bench.py" --ours "$W/a.jsonl" --theirs "$W/a.jsonl" > "$W/cmp.txt" || fail=1
cat "$W/cmp.txt"
grep -q '^tiny .*len32 .* 1\.00x' "$W/cmp.txt" || { echo "FAIL: compare_bench output"; fail=1; }
[ $fail -eq 0 ] && echo "gpu scripts: all ok"
exit $fail
