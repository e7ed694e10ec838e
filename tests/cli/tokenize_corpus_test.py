#!/usr/bin/env python3
"""`embedq tokenize` (the CLI, end to end) on the whole tokenizer corpus:
every line's ids must equal the goldens (transformers.js, with the
documented HF exceptions of tests/tokenizer/exceptions.jsonl) in the
document, query and 4B/8B modes. Lines whose text holds U+0000 are
tokenized like the others (NUL is id 188, as in Hugging Face `tokenizers`
and in the worker), and their count is checked so the test cannot pass
without them.

usage: tokenize_corpus_test.py EMBEDQ_BIN TOKENIZER_JSON TESTS_TOKENIZER_DIR WORKDIR
"""
import gzip
import json
import os
import shutil
import subprocess
import sys

binary, tok_json, data, work = sys.argv[1:5]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)

corpus = [json.loads(l) for l in open(os.path.join(data, "corpus.jsonl"), encoding="utf-8")]
with gzip.open(os.path.join(data, "goldens.jsonl.gz"), "rt", encoding="utf-8") as f:
    header = json.loads(f.readline())
    goldens = [json.loads(l) for l in f]
assert len(goldens) == len(corpus) == header["entries"]
exceptions = {}
for l in open(os.path.join(data, "exceptions.jsonl"), encoding="utf-8"):
    e = json.loads(l)
    exceptions[(e["i"], e["mode"])] = e["expected"]
instr = header["instructions"]


def model_dir(name, vocab_rows):
    """A tokenizer-only model directory: config.json + tokenizer.json."""
    d = os.path.join(work, name)
    os.makedirs(d)
    shutil.copy(tok_json, os.path.join(d, "tokenizer.json"))
    cfg = {"hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
           "num_key_value_heads": 1, "head_dim": 32, "intermediate_size": 64,
           "vocab_size": vocab_rows, "max_position_embeddings": 1 << 20}
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    return d


def run(model, mode):
    lines = []
    for i, c in enumerate(corpus):
        o = {"text": c["text"]}
        if mode == "q":
            o["instruction"] = instr[i % len(instr)]
        lines.append(json.dumps(o, ensure_ascii=False))
    p = subprocess.run([binary, "tokenize", "--model", model, "--max-tokens", str(1 << 20)],
                       input="\n".join(lines) + "\n", capture_output=True, text=True)
    out = [json.loads(l) for l in p.stdout.splitlines()]
    assert len(out) == len(corpus), (mode, len(out), p.stderr[-500:])
    return p.returncode, out


dirs = {"d": model_dir("m06b", 151669), "q": None, "b": model_dir("m4b", 151665)}
dirs["q"] = dirs["d"]
bad = 0
checked = 0
for mode in ("d", "q", "b"):
    rc, out = run(dirs[mode], mode)
    nul_lines = 0
    for i, (c, g, o) in enumerate(zip(corpus, goldens, out)):
        if "\x00" in c["text"]:
            nul_lines += 1
        want = exceptions.get((i, mode))
        if want is None:
            want = g.get(mode, g["d"] if mode == "b" else None)
        checked += 1
        if o.get("ids") != want:
            bad += 1
            if bad <= 10:
                print(f"mode {mode} entry {i}: got {o} want {want}")
    if rc != 0:
        print(f"mode {mode}: exit status {rc}")
        bad += 1
    if nul_lines < 12:
        print(f"mode {mode}: only {nul_lines} corpus texts hold U+0000 (want >= 12)")
        bad += 1
print(f"embedq tokenize on the corpus: {checked} lines compared ({nul_lines} per mode hold U+0000), "
      f"{bad} mismatches")
sys.exit(1 if bad else 0)
