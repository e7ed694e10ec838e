#!/usr/bin/env bash
# bench_smoke.sh EMBEDQ PYTHON MIX WORKDIR - `embedq bench` on a tiny
# generated checkpoint, CPU device: the table, the JSON records, --gen-dir
# reuse, the temporary checkpoint's removal, plain-text mixes, bad flags.
# Figures are not checked (no timing is asserted), only that they exist.
set -u
B=$1 PY=$2 MIX=$3 W=$4
rm -rf "$W" && mkdir -p "$W/tmp"
fail=0
no() { echo "FAIL: $*"; fail=1; }
export OMP_WAIT_POLICY=PASSIVE
head -n 12 "$MIX" > "$W/mix.jsonl"
common=(--device cpu --batch-tokens 2048 --warmup 1 --iters 2)

# 1. Fixed lengths + a JSONL mix, checkpoint generated into --gen-dir.
"$B" bench --preset tiny --gen-dir "$W/tiny" --seq-len 16,100 --mix "$W/mix.jsonl" \
  --json "$W/b.jsonl" "${common[@]}" > "$W/out1" 2> "$W/err1" || no "run 1 exit status $?"
grep -q 'n/a on cpu' "$W/out1" || no "no 'n/a on cpu' GEMM line"
grep -q '^len16 ' "$W/out1" && grep -q '^len100 ' "$W/out1" && grep -q '^mix ' "$W/out1" ||
  no "table rows missing"
grep -q 'generating a tiny checkpoint' "$W/err1" || no "run 1 did not generate"
"$PY" - "$W/b.jsonl" <<'PYEOF' || fail=1
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
names = [r["workload"] for r in rows]
assert names == ["len16", "len100", "mix"], names
for r in rows:
    for k in ("tokens_per_s", "seqs_per_s", "batch_ms_median", "batch_ms_p99", "flops_per_token",
              "model_tflops", "tokens_per_batch", "weight_bytes"):
        assert r[k] > 0, (r["workload"], k, r[k])
    assert r["backend"] == "cpu" and r["gemm_tflops"] is None and r["mfu"] is None, r
    assert r["model"] == "tiny" and r["iters"] == 2 and r["batch_tokens"] == 2048, r
assert rows[0]["seqs_per_batch"] == 2048 // 16 and rows[0]["tokens_per_batch"] == 2048
assert rows[1]["seqs_per_batch"] == 20 and rows[1]["tokens_per_batch"] == 2000
# FLOPs of tiny (hidden 96, 2 layers, 4/2 heads x 32, ffn 160) at length 16:
lin = 2 * (96 * 128 + 2 * 96 * 64 + 128 * 96 + 3 * 96 * 160)
want = 2 * lin + 4 * 2 * 4 * 32 * (16 * 17 / 2) / 16
assert abs(rows[0]["flops_per_token"] - want) < 1e-6 * want, (rows[0]["flops_per_token"], want)
print("json ok:", names)
PYEOF

# 2. The same --gen-dir is reused; a plain-text mix is split into paragraphs.
printf 'first paragraph\nstill the first\n\nsecond one\n\n\nthird\n' > "$W/mix.txt"
"$B" bench --preset tiny --gen-dir "$W/tiny" --mix "$W/mix.txt" --json "$W/t.jsonl" \
  "${common[@]}" > "$W/out2" 2> "$W/err2" || no "run 2 exit status $?"
grep -q 'reusing the tiny checkpoint' "$W/err2" || no "run 2 did not reuse --gen-dir"
grep -q ': 3 texts' "$W/err2" || no "plain-text mix: expected 3 texts"
"$PY" -c 'import json,sys; r=json.loads(open(sys.argv[1]).readline()); assert r["seqs_per_batch"]==3, r' \
  "$W/t.jsonl" || no "plain-text mix record"

# 3. Without --gen-dir the checkpoint goes to a temporary directory, removed at exit.
TMPDIR=$W/tmp "$B" bench --preset tiny --seq-len 8 "${common[@]}" > /dev/null 2>&1 ||
  no "run 3 exit status"
[ -z "$(ls -A "$W/tmp")" ] || no "temporary checkpoint left in $W/tmp: $(ls "$W/tmp")"

# 4. Bad flags name themselves and exit 2; --help exits 0.
check_bad() {
  local want=$1; shift
  "$B" bench "$@" > /dev/null 2> "$W/err" && { no "accepted: $*"; return; }
  [ $? -eq 2 ] || no "exit status for $* is not 2"
  grep -q -- "$want" "$W/err" || no "message for $* lacks '$want': $(cat "$W/err")"
}
check_bad "'--bogus'" --preset tiny --bogus
check_bad "--seq-len" --preset tiny --seq-len 0
check_bad "--seq-len" --preset tiny --seq-len 12,x
check_bad "--device" --preset tiny --device gpu
check_bad "--iters" --preset tiny --iters -1
check_bad "--preset" --preset 13b
check_bad "--model" --seq-len 8
check_bad "not both" --model "$W/tiny" --preset tiny
check_bad "--mix" --preset tiny --mix "$W/nonexistent"
"$B" bench --help | grep -q -- '--gen-dir' || no "--help lacks --gen-dir"

[ $fail -eq 0 ] && echo "bench smoke: all ok"
exit $fail
