#!/usr/bin/python3
"""embed_emu.py - `embedq embed --device emu` against `--device cpu`.

The emu device is the CUDA backend's plan (engine/gpu_backend.c, its CUDA
build) on the kernel emulator: the kernels' own source on the CPU, a host
CUDA runtime, and a reference GEMM that reads the plan's cuBLASLt
descriptors (kernels/emu, docs/kernels.md). On a gen-model tiny checkpoint
(real tokenizer) and inputs of 1..1100 tokens (--max-tokens 1100; the
longest are truncated there), with and without instructions and
dimensions, it checks through the CLI:
  - every emu vector against the CPU backend's: cosine >= 0.9999 (issue 10);
  - packed == single: one packed batch (--batch-tokens large) and one
    sequence per batch (--batch-tokens 1) give the same vectors, bit for bit
    (every op of the plan is row-local and sums in a fixed order on the
    emulator);
  - each line's id, token count, truncation flag and length agree with the
    CPU run's.
Prints min/mean cosines and the wall time of each run.

Usage: embed_emu.py --embedq BIN --tokenizer-json PATH --workdir DIR
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time

import numpy as np

MAX_TOKENS = 1100

WORDS = {
    "en": "the quick brown fox jumps over the lazy dog",
    "de": "über große Straßen fährt ein Fußgänger",
    "zh": "我们 今天 学习 机器 翻译 模型",
    "code": "def f(x): return x**2 + 1",
    "emoji": "ok 👍 done 🚀",
}


def text_of(kind, n_words, seed):
    words = WORDS[kind].split()
    rnd = random.Random(seed)
    return " ".join(rnd.choice(words) for _ in range(n_words))


def make_inputs():
    """(id, text, instruction or None, dimensions or None): 1 token (empty
    text) up to MAX_TOKENS (the overlong inputs, truncated)."""
    inputs = [("empty", "", None, None), ("one-word", "hello", None, 32)]
    kinds = list(WORDS)
    dims_cycle = [None, 32, 50, 64, 96, None, 77]
    for i, n in enumerate([3, 10, 30, 62, 63, 64, 65, 100, 150, 300, 450]):
        kind = kinds[i % len(kinds)]
        instr = "Given a web search query, retrieve relevant passages" if i % 3 == 1 else None
        inputs.append(("%s-%d" % (kind, n), text_of(kind, n, i), instr,
                       dims_cycle[i % len(dims_cycle)]))
    inputs.append(("overlong", text_of("en", 1500, 999), None, None))
    return inputs


def run(cmd, stdin_text):
    t0 = time.time()
    p = subprocess.run(cmd, input=stdin_text, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("embed_emu: %s failed (%d):\n%s" % (" ".join(cmd), p.returncode, p.stderr[-3000:]))
    return [json.loads(l) for l in p.stdout.splitlines() if l.strip()], time.time() - t0


def cos(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--embedq", required=True)
    ap.add_argument("--tokenizer-json", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--min-cosine", type=float, default=0.9999)
    args = ap.parse_args()

    failures = []

    def check(ok, msg):
        if not ok:
            failures.append(msg)
            print("FAIL: " + msg)

    model = os.path.join(args.workdir, "tiny")
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    subprocess.run([args.embedq, "gen-model", "--preset", "tiny", "--out", model, "--seed", "11",
                    "--tokenizer", args.tokenizer_json], check=True, stdout=subprocess.DEVNULL)

    inputs = make_inputs()
    lines = []
    for id_, text, instr, dims in inputs:
        rec = {"id": id_, "text": text}
        if instr is not None:
            rec["instruction"] = instr
        if dims is not None:
            rec["dimensions"] = dims
        lines.append(json.dumps(rec, ensure_ascii=False))
    jsonl = "\n".join(lines) + "\n"

    base = [args.embedq, "embed", "--model", model, "--max-tokens", str(MAX_TOKENS)]
    cpu, t_cpu = run(base + ["--device", "cpu", "--batch-tokens", "16384"], jsonl)
    lens = [o.get("tokens", 0) for o in cpu]
    total = sum(lens)
    print("inputs: %d, tokens per input %d..%d, %d in all; cpu: %.1f s"
          % (len(inputs), min(lens), max(lens), total, t_cpu))
    check(min(lens) == 1 and max(lens) == MAX_TOKENS,
          "token counts %d..%d, expected 1..%d" % (min(lens), max(lens), MAX_TOKENS))

    packed, t_packed = run(base + ["--device", "emu", "--batch-tokens", str(total)], jsonl)
    single, t_single = run(base + ["--device", "emu", "--batch-tokens", "1"], jsonl)
    print("emu packed (--batch-tokens %d): %.1f s; emu single (--batch-tokens 1): %.1f s"
          % (total, t_packed, t_single))

    cosines = []
    exact = 0
    for (id_, _, _, dims), c, p, s in zip(inputs, cpu, packed, single):
        for name, o in (("cpu", c), ("emu packed", p), ("emu single", s)):
            check("embedding" in o, "%s %s: %s" % (name, id_, o.get("error", "no embedding")))
        if not all("embedding" in o for o in (c, p, s)):
            continue
        for name, o in (("emu packed", p), ("emu single", s)):
            check(o["id"] == id_ and o["tokens"] == c["tokens"]
                  and o["truncated"] == c["truncated"]
                  and len(o["embedding"]) == len(c["embedding"]),
                  "%s %s: id/tokens/truncated/length differ from the cpu run's" % (name, id_))
        x = cos(p["embedding"], c["embedding"])
        cosines.append(x)
        check(x >= args.min_cosine, "%s (%d tokens, dims %s): emu vs cpu cosine %.9f < %g"
              % (id_, c["tokens"], dims, x, args.min_cosine))
        same = p["embedding"] == s["embedding"]
        exact += same
        check(same, "%s (%d tokens): emu packed != emu single (cosine %.9f)"
              % (id_, c["tokens"], cos(p["embedding"], s["embedding"])))
    if cosines:
        print("emu vs cpu: min cosine %.9f, mean %.9f (%d vectors); packed == single: %d of %d"
              % (min(cosines), float(np.mean(cosines)), len(cosines), exact, len(cosines)))
    check(len(cosines) == len(inputs), "%d of %d inputs compared" % (len(cosines), len(inputs)))

    if failures:
        print("embed_emu: %d failure(s)" % len(failures))
        return 1
    print("embed_emu: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
