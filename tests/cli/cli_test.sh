#!/usr/bin/env bash
# Command-line contracts of `embedq`: --help everywhere, bad flags named,
# JSONL error lines in place, exit codes, input order, float formatting.
# usage: cli_test.sh EMBEDQ_BIN PYTHON WORKDIR
set -uo pipefail
bin=$1 py=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
fails=0 passes=0
ok()   { passes=$((passes+1)); }
fail() { echo "FAIL: $*"; fails=$((fails+1)); }
expect_rc() { # expect_rc RC DESC CMD...
  local want=$1 desc=$2; shift 2
  "$@" >"$work/out" 2>"$work/err"; local rc=$?
  [ "$rc" -eq "$want" ] && ok || fail "$desc: exit $rc, want $want; stderr: $(head -c 300 "$work/err")"
}
expect_err() { # expect_err PATTERN DESC
  grep -q -- "$1" "$work/err" && ok || fail "$2: stderr lacks '$1': $(head -c 300 "$work/err")"
}

for c in embed tokenize gen-model; do
  expect_rc 0 "$c --help" "$bin" "$c" --help
  grep -q "usage: embedq $c" "$work/out" && ok || fail "$c --help prints usage"
  expect_rc 2 "$c bad flag" "$bin" "$c" --no-such-flag
  expect_err "unknown flag '--no-such-flag'" "$c names the bad flag"
done
expect_rc 2 "unknown command" "$bin" frobnicate
expect_rc 2 "embed missing --model" "$bin" embed
expect_err "flag --model is required" "embed names missing --model"
expect_rc 2 "embed bad --batch-tokens" "$bin" embed --model x --batch-tokens abc
expect_err "flag --batch-tokens: expected an integer" "embed names --batch-tokens"
expect_rc 2 "flag without value" "$bin" embed --model
expect_err "flag --model needs a value" "names flag missing its value"
expect_rc 1 "gen-model bad preset" "$bin" gen-model --preset 3b --out "$work/x"
expect_err "3b" "gen-model names the bad preset"

m="$work/tiny"
expect_rc 0 "gen-model tiny" "$bin" gen-model --preset tiny --out "$m" --seed 7
expect_rc 1 "embed missing model dir" "$bin" embed --model "$work/nope" </dev/null
expect_err "nope" "embed names the missing model dir"
expect_rc 2 "embed --dimensions beyond hidden" "$bin" embed --model "$m" --dimensions 100000 </dev/null
expect_err "flag --dimensions" "names --dimensions"

# Mixed good and bad lines: output in input order, errors in place, exit 1.
printf '%s\n' \
  '{"id": "a", "text": "first"}' \
  'not json' \
  '{"id": 2, "text": 5}' \
  '{"id": 3, "text": "third", "dimensions": 32}' \
  '{"id": 4, "text": "x", "dimensions": 31}' \
  '{"id": 5, "text": "nul \u0000 inside"}' \
  $'{"id": 6, "text": "bad utf8 \xff"}' \
  '{"id": 7}' \
  '{"id": {"k": [1, 2]}, "text": "last", "instruction": "Find it"}' > "$work/in.jsonl"
"$bin" embed --model "$m" --batch-tokens 4 <"$work/in.jsonl" >"$work/out" 2>"$work/err"
rc=$?
[ "$rc" -eq 1 ] && ok || fail "embed with bad lines exits 1 (got $rc)"
"$py" - "$work/out" <<'PY' && ok || fail "embed output contract"
import json, sys, re
raw = open(sys.argv[1]).read()
rows = [json.loads(l) for l in raw.splitlines()]
assert len(rows) == 9, len(rows)
assert [r.get("id") for r in rows[:1]] == ["a"]
assert rows[1] == {"line": 2, "error": rows[1]["error"]} and "JSON" in rows[1]["error"], rows[1]
assert rows[2]["line"] == 3 and "text" in rows[2]["error"], rows[2]
assert rows[3]["id"] == 3 and len(rows[3]["embedding"]) == 32, rows[3].keys()
assert rows[4]["line"] == 5 and "dimensions" in rows[4]["error"], rows[4]
# U+0000 is embedded, as the worker does (PDF text holds NUL): issue 15 item 8
assert rows[5]["id"] == 5 and len(rows[5]["embedding"]) == 96 and rows[5]["tokens"] >= 4, rows[5]
assert rows[6]["line"] == 7 and "UTF-8" in rows[6]["error"], rows[6]
assert rows[7]["line"] == 8 and "text" in rows[7]["error"], rows[7]
assert rows[8]["id"] == {"k": [1, 2]} and len(rows[8]["embedding"]) == 96, rows[8]
for r in (rows[0], rows[3], rows[5], rows[8]):
    v = r["embedding"]
    assert abs(sum(x * x for x in v) - 1) < 1e-4
    assert r["tokens"] >= 2 and r["truncated"] is False
# floats are always written as floats (never a bare integer)
for m in re.finditer(r'"embedding": \[([^\]]*)\]', raw):
    for tok in m.group(1).split(", "):
        assert re.search(r"[.eE]", tok), tok
PY

# Truncation: --max-tokens caps the ids, the last one is <|endoftext|>.
echo '{"text": "one two three four five six seven eight nine ten"}' |
  "$bin" tokenize --model "$m" --max-tokens 4 >"$work/out" 2>"$work/err"
"$py" -c 'import json,sys; r=json.load(open(sys.argv[1])); assert len(r["ids"])==4 and r["ids"][-1]==151643, r' "$work/out" && ok || fail "tokenize --max-tokens"
echo '{"text": "one two three four five six seven eight nine ten"}' |
  "$bin" embed --model "$m" --max-tokens 4 >"$work/out" 2>"$work/err"
"$py" -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["tokens"]==4 and r["truncated"] is True, r' "$work/out" && ok || fail "embed truncation flag"

# U+0000 (issue 15 item 8): tokenized to id 188 as Hugging Face tokenizers
# does, in the text and in the instruction; a NUL in a string id is echoed
# whole; the vector differs from the same text without the NUL. The ids
# 2893 ("page"), 188 (NUL), 16 ("1") are what HF tokenizers 0.23 (its Node
# binding, tests/oracle) gives for "page\u00001"; <|endoftext|> is ours.
printf '%s\n' '{"text": "page\u00001"}' '{"text": "x", "instruction": "a\u0000b"}' |
  "$bin" tokenize --model "$m" >"$work/out" 2>"$work/err"
"$py" - "$work/out" <<'PY' && ok || fail "tokenize keeps U+0000 (id 188)"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert rows[0]["ids"] == [2893, 188, 16, 151643], rows[0]
assert 188 in rows[1]["ids"], rows[1]
PY
printf '%s\n' '{"id": "n\u0000x", "text": "page\u00001"}' '{"id": "n", "text": "page1"}' |
  "$bin" embed --model "$m" >"$work/out" 2>"$work/err"
"$py" - "$work/out" <<'PY' && ok || fail "embed keeps U+0000 in text and id"
import json, sys
a, b = [json.loads(l) for l in open(sys.argv[1])]
assert a["id"] == "n\x00x" and a["tokens"] == 4 and b["tokens"] == 3, (a.get("id"), a.get("tokens"), b.get("tokens"))
assert sum(x * y for x, y in zip(a["embedding"], b["embedding"])) < 0.9999
PY

# An instruction whose query template takes more than half of --max-tokens
# fails its line (issue 15 item 4: it used to truncate the text away, so
# different texts came out as one vector); a short one leaves the text its
# share.
"$py" - "$work/li.jsonl" <<'PY'
import json, sys
instr = " ".join(["retrieve the passages about zebras"] * 40)
with open(sys.argv[1], "w") as f:
    for t in ("six words about a zebra here", "a different text entirely"):
        f.write(json.dumps({"text": t, "instruction": instr}) + "\n")
    f.write(json.dumps({"text": "a zebra " * 100, "instruction": "find it"}) + "\n")
PY
for sub in embed tokenize; do
  "$bin" $sub --model "$m" --max-tokens 64 <"$work/li.jsonl" >"$work/out" 2>"$work/err"
  rc=$?
  "$py" - "$work/out" "$rc" <<'PY' && ok || fail "$sub: an over-long instruction fails its line"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert sys.argv[2] == "1" and len(rows) == 3, (sys.argv[2], rows)
for k in (0, 1):
    assert rows[k]["line"] == k + 1 and "instruction too long" in rows[k]["error"] \
        and "half of the 64-token limit" in rows[k]["error"], rows[k]
r = rows[2]
n = r["tokens"] if "tokens" in r else len(r["ids"])
assert n == 64 and "error" not in r, r
PY
done

echo "cli: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
