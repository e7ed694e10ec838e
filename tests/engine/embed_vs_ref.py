#!/usr/bin/python3
"""embed_vs_ref.py - `embedq embed` against the independent numpy reference.

1. `embedq gen-model --preset tiny` writes a random checkpoint (real vocab and
   tokenizer, hidden 96, 2 layers, 4 heads / 2 kv heads, head_dim 32).
2. Inputs of 1..2048 tokens (an empty text is just <|endoftext|>; repeated
   words of several scripts; one text longer than --max-tokens, truncated to
   2048), with and without "instruction" and "dimensions" (32..96).
3. `embedq tokenize` gives each input's ids; tests/reference/qwen3_ref.py
   embeds those ids in float64, one sequence at a time.
4. Checks, for every vector of `embedq embed` run three ways (one big packed
   batch, --batch-tokens 1024, --batch-tokens 1 = every sequence alone):
     - cosine to the reference >= 0.9999 (--min-cosine; ctest asks 0.999999
       of the fp32 CPU backend, which catches e.g. a wrong rms_norm_eps that
       0.9999 lets through);
     - length == dimensions, unit norm, "tokens" == len(ids), "truncated"
       exactly on the inputs longer than --max-tokens, ids echoed in input order;
     - packed vs alone: cosine >= 0.99999.
   Prints min/mean cosines.

Usage: embed_vs_ref.py --embedq BIN --reference qwen3_ref.py --tokenizer-json PATH
                       --workdir DIR [--quick] [--seed N]
--quick (sanitizer builds): fewer inputs, --max-tokens 512.
"""

import argparse
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import time

import numpy as np

MAX_TOKENS = 2048  # --max-tokens; 512 with --quick

WORDS = {
    "en": "the quick brown fox jumps over the lazy dog",
    "de": "über große Straßen fährt ein Fußgänger",
    "zh": "我们 今天 学习 机器 翻译 模型",
    "code": "def f(x): return x**2 + 1",
    "emoji": "ok 👍 done 🚀",
}


def text_of(kind, n_words, seed):
    """n_words words of WORDS[kind] in a seeded random order (not periodic, so
    two long inputs do not end in the same context)."""
    words = WORDS[kind].split()
    rnd = random.Random(seed)
    return " ".join(rnd.choice(words) for _ in range(n_words))


def make_inputs(quick):
    """(id, text, instruction or None, dimensions or None) with token counts
    from 1 up to MAX_TOKENS (the last one truncated)."""
    inputs = [("empty", "", None, None), ("one-word", "hello", None, 32)]
    n_words = [1, 3, 10, 30, 62, 63, 64, 65, 100, 150, 300]
    if not quick:
        n_words += [500, 700, 1000, 1500, 2000]
    kinds = list(WORDS)
    dims_cycle = [None, 32, 50, 64, 96, None, 77]
    for i, n in enumerate(n_words):
        kind = kinds[i % len(kinds)]
        instr = "Given a web search query, retrieve relevant passages" if i % 3 == 1 else None
        inputs.append(("%s-%d" % (kind, n), text_of(kind, n, i), instr, dims_cycle[i % len(dims_cycle)]))
    # A text well past --max-tokens: truncated to MAX_TOKENS - 1 content tokens + <|endoftext|>.
    long_words = 700 if quick else 3000
    inputs.append(("overlong", text_of("en", long_words, 999), None, None))
    inputs.append(("instruction-only", "", "Represent this", 48))
    return inputs


def run(cmd, stdin_text):
    t0 = time.time()
    p = subprocess.run(cmd, input=stdin_text, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        raise SystemExit("FAIL: %s exited %d" % (" ".join(cmd), p.returncode))
    return [json.loads(l) for l in p.stdout.splitlines() if l.strip()], time.time() - t0


def load_reference(path):
    spec = importlib.util.spec_from_file_location("qwen3_ref", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def cos(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--embedq", required=True)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--tokenizer-json", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--min-cosine", type=float, default=0.9999,
                    help="required cosine to the reference (0.9999; the CPU backend's test "
                         "asks 0.999999: fp32 vs float64 agree to ~1e-12 on tiny)")
    args = ap.parse_args()
    global MAX_TOKENS
    if args.quick:
        MAX_TOKENS = 512

    failures = []

    def check(ok, msg):
        if not ok:
            failures.append(msg)
            print("FAIL: " + msg)

    model = os.path.join(args.workdir, "tiny")
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    subprocess.run([args.embedq, "gen-model", "--preset", "tiny", "--out", model,
                    "--seed", str(args.seed), "--tokenizer", args.tokenizer_json], check=True)
    hidden = json.load(open(os.path.join(model, "config.json")))["hidden_size"]

    inputs = make_inputs(args.quick)
    lines = []
    for id_, text, instr, dims in inputs:
        rec = {"id": id_, "text": text}
        if instr is not None:
            rec["instruction"] = instr
        if dims is not None:
            rec["dimensions"] = dims
        lines.append(json.dumps(rec, ensure_ascii=False))
    jsonl = "\n".join(lines) + "\n"

    toks, _ = run([args.embedq, "tokenize", "--model", model, "--max-tokens", str(MAX_TOKENS)], jsonl)
    check(len(toks) == len(inputs), "tokenize: %d lines for %d inputs" % (len(toks), len(inputs)))
    ids = [t["ids"] for t in toks]
    full_toks, _ = run([args.embedq, "tokenize", "--model", model, "--max-tokens", str(1 << 20)], jsonl)
    overlong = [len(t["ids"]) > MAX_TOKENS for t in full_toks]
    check(overlong[-2] and sum(overlong) >= 1, "the overlong input was not longer than %d" % MAX_TOKENS)
    lens = [len(x) for x in ids]
    print("inputs: %d, tokens per input %d..%d, %d in all" % (len(ids), min(lens), max(lens), sum(lens)))
    check(lens[0] == 1, "empty text: %d tokens, expected 1 (<|endoftext|>)" % lens[0])
    check(max(lens) == MAX_TOKENS, "longest input has %d tokens, expected %d" % (max(lens), MAX_TOKENS))

    # The independent reference, float64, one sequence at a time.
    ref_mod = load_reference(args.reference)
    t0 = time.time()
    ref = ref_mod.Qwen3Ref(model)
    refs = [ref.embed(x, d) for x, (_, _, _, d) in zip(ids, inputs)]
    print("numpy reference: %.1f s" % (time.time() - t0))

    total = sum(lens)
    runs = {}
    for name, budget in [("packed", total), ("budget-1024", 1024), ("alone", 1)]:
        # --device cpu-fp32: the fp32 reference path, whatever the CPU has
        # (the bf16 path is checked against it by engine.cpu_bf16).
        out, secs = run([args.embedq, "embed", "--model", model, "--device", "cpu-fp32",
                         "--max-tokens", str(MAX_TOKENS), "--batch-tokens", str(budget)], jsonl)
        print("embedq embed --batch-tokens %d: %.2f s" % (budget, secs))
        runs[name] = out
        check(len(out) == len(inputs), "%s: %d lines for %d inputs" % (name, len(out), len(inputs)))
        cosines = []
        for (id_, _, _, dims), o, x, r, over in zip(inputs, out, ids, refs, overlong):
            if "error" in o:
                check(False, "%s %s: error %s" % (name, id_, o["error"]))
                continue
            e = o["embedding"]
            want_dims = dims or hidden
            check(o["id"] == id_, "%s: id %r, expected %r (input order)" % (name, o["id"], id_))
            check(len(e) == want_dims, "%s %s: %d values, expected %d" % (name, id_, len(e), want_dims))
            check(abs(np.linalg.norm(e) - 1) < 1e-5, "%s %s: norm %.7f" % (name, id_, np.linalg.norm(e)))
            check(o["tokens"] == len(x), "%s %s: tokens %d, tokenize gave %d" % (name, id_, o["tokens"], len(x)))
            check(o["truncated"] == over, "%s %s: truncated %s" % (name, id_, o["truncated"]))
            if len(e) == len(r):
                c = cos(e, r)
                cosines.append(c)
                check(c >= args.min_cosine, "%s %s (%d tokens, dims %d): cosine to reference %.9f"
                      % (name, id_, len(x), want_dims, c))
        if cosines:
            print("%-12s vs numpy reference: min cosine %.10f (1 - min %.1e), mean %.10f (%d vectors)"
                  % (name, min(cosines), 1 - min(cosines), float(np.mean(cosines)), len(cosines)))

    for name in ("packed", "budget-1024"):
        cs = []
        for (id_, _, _, _), a, b in zip(inputs, runs[name], runs["alone"]):
            if "embedding" in a and "embedding" in b and len(a["embedding"]) == len(b["embedding"]):
                c = cos(a["embedding"], b["embedding"])
                cs.append(c)
                check(c >= 0.99999, "%s vs alone %s: cosine %.9f" % (name, id_, c))
        if cs:
            print("%-12s vs alone:           min cosine %.10f (1 - min %.1e), mean %.10f"
                  % (name, min(cs), 1 - min(cs), float(np.mean(cs))))

    # Distinct inputs give distinct vectors (catches pooling the same row).
    full = [np.asarray(o["embedding"][:32]) for o in runs["packed"] if "embedding" in o]
    for i in range(len(full)):
        for j in range(i):
            check(cos(full[i], full[j]) < 0.9999, "inputs %s and %s have the same vector"
                  % (inputs[i][0], inputs[j][0]))

    if failures:
        print("embed_vs_ref: %d failure(s)" % len(failures))
        return 1
    print("embed_vs_ref: all checks passed%s" % (" (quick)" if args.quick else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
