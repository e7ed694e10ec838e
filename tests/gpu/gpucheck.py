"""gpucheck.py - shared pieces of the GPU machine's correctness checks
(check_backends.py, check_hf.py): the input texts, running `embedq embed` /
`embedq tokenize`, cosines and the one-line results that run.sh collects.

Standard library + numpy (the GPU machine's python3 has both; here
/usr/bin/python3 has Debian's python3-numpy). No torch here.
"""

import hashlib
import json
import os
import random
import subprocess
import sys
import time

import numpy as np

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def log(*a):
    print(*a, flush=True)


def build_texts(path, seed=7, n_corpus=14, n_chunks=12, long_tokens=(1100, 2100, 4300, 8192)):
    """Writes the correctness inputs (JSONL {"id", "text", "instruction"?}) to
    path and returns them. Real text from the repo's corpora, lengths from 1
    token (the empty text: only <|endoftext|>) to 8192 (a text of ~9,000+
    tokens, truncated to 8192 by --max-tokens 8192):
      - a few fixed short edge cases (empty, one letter, whitespace, emoji);
      - lines of the tokenizer corpus (many scripts, symbols, code) and
        chunks of the benchmark mix (English technical prose), at random;
      - two queries with an instruction (the query template);
      - long texts made by concatenating mix chunks (paragraph joins) up to
        about long_tokens tokens each (estimated at 4 chars/token; the last
        one overshoots so that it is truncated)."""
    rng = random.Random(seed)
    corpus = [json.loads(l)["text"] for l in open(os.path.join(REPO, "tests/tokenizer/corpus.jsonl"),
                                                    encoding="utf-8")]
    chunks = [json.loads(l)["text"] for l in open(os.path.join(REPO, "tests/bench/mix_chunks.jsonl"),
                                                    encoding="utf-8")]
    rows = [{"text": ""}, {"text": "a"}, {"text": "   \n\t "}, {"text": "Hello, world! 👋🏽"},
            {"text": "<think>not special for 4b/8b</think> <|im_start|>"}]
    # Corpus lines: some short, some of the few long ones.
    longc = [t for t in corpus if len(t) > 1500]
    rows += [{"text": t} for t in rng.sample(corpus, n_corpus - 2) + rng.sample(longc, 2)]
    rows += [{"text": t} for t in rng.sample(chunks, n_chunks)]
    rows += [{"text": "how do I undo a git rebase?",
              "instruction": "Given a web search query, retrieve relevant passages that answer the query"},
             {"text": "什么是机器学习？", "instruction": "Retrieve passages in Chinese"}]
    pool = chunks[:]
    rng.shuffle(pool)
    for k, target in enumerate(long_tokens):
        want = target * 4.0 * (1.15 if k == len(long_tokens) - 1 else 1.0)
        parts, n = [], 0
        while n < want and pool:
            c = pool.pop()
            parts.append(c)
            n += len(c)
        rows.append({"text": "\n\n".join(parts)})
    for i, r in enumerate(rows):
        r["id"] = i
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return rows


def _jsonl_in(rows):
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def run_embedq(binary, args, rows, what):
    t0 = time.time()
    p = subprocess.run([binary] + args, input=_jsonl_in(rows), capture_output=True, text=True)
    dt = time.time() - t0
    if p.stderr.strip():
        sys.stderr.write(p.stderr[-4000:])
    out = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    if p.returncode != 0 or len(out) != len(rows):
        raise RuntimeError("%s: exit status %d, %d of %d lines; stderr: %s"
                           % (what, p.returncode, len(out), len(rows), p.stderr[-2000:]))
    return out, dt


def tokenize(binary, model, rows, max_tokens=8192):
    out, _ = run_embedq(binary, ["tokenize", "--model", model, "--max-tokens", str(max_tokens)],
                        rows, "embedq tokenize")
    bad = [o for o in out if "error" in o]
    if bad:
        raise RuntimeError("embedq tokenize: %s" % bad[:3])
    return [o["ids"] for o in out]


def embed(binary, model, rows, device, batch_tokens, workdir, max_tokens=8192, threads=0,
          cached_only=False):
    """Runs `embedq embed` and returns (vectors [n, hidden] float64, tokens,
    truncated flags). The output is cached in workdir, keyed by the model
    directory, device, batch budget and inputs, so the checks that need the
    same vectors (e.g. the CPU run of 0.6b) pay for them once. cached_only:
    return None instead of running when there is no cached output."""
    key = hashlib.sha1(json.dumps([os.path.abspath(model), device, batch_tokens, max_tokens,
                                   rows], ensure_ascii=False).encode()).hexdigest()[:12]
    cache = os.path.join(workdir, "vec_%s_%s_%d_%s.jsonl"
                         % (os.path.basename(os.path.normpath(model)), device, batch_tokens, key))
    if cached_only and not os.path.exists(cache):
        return None
    if os.path.exists(cache):
        out = [json.loads(l) for l in open(cache)]
        dt = 0.0
        log("  (embedq embed --device %s --batch-tokens %d: cached %s)" % (device, batch_tokens, cache))
    else:
        args = ["embed", "--model", model, "--device", device, "--batch-tokens", str(batch_tokens),
                "--max-tokens", str(max_tokens)]
        if threads:
            args += ["--threads", str(threads)]
        out, dt = run_embedq(binary, args, rows, "embedq embed --device %s" % device)
        bad = [o for o in out if "error" in o]
        if bad:
            raise RuntimeError("embedq embed --device %s: %s" % (device, bad[:3]))
        with open(cache, "w") as f:
            for o in out:
                f.write(json.dumps(o) + "\n")
        log("  embedq embed --device %s --batch-tokens %d: %d texts, %d tokens in %.1f s"
            % (device, batch_tokens, len(out), sum(o["tokens"] for o in out), dt))
    for r, o in zip(rows, out):
        if o["id"] != r["id"]:
            raise RuntimeError("embedq embed: output out of order (%r vs %r)" % (o["id"], r["id"]))
    vecs = np.array([o["embedding"] for o in out], dtype=np.float64)
    return vecs, [o["tokens"] for o in out], [o["truncated"] for o in out]


def cosines(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    num = np.sum(a * b, axis=1)
    den = np.sqrt(np.sum(a * a, axis=1) * np.sum(b * b, axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        c = num / den
    return np.where(np.isfinite(c), c, -2.0)  # NaN/inf never pass


def report(name, model, cos, tokens, threshold, detail=None):
    """Prints the worst vectors and one RESULT line; returns True on pass."""
    cos = np.asarray(cos)
    order = np.argsort(cos)
    for i in order[:3]:
        log("  worst: #%d (%d tokens) cosine %.9f" % (i, tokens[i], cos[i]))
    fails = int(np.sum(cos < threshold))
    ok = fails == 0 and len(cos) > 0
    log("RESULT %-28s %-5s n=%-3d min=%.9f mean=%.9f threshold=%g %s%s"
        % (name, model, len(cos), float(np.min(cos)), float(np.mean(cos)), threshold,
           "PASS" if ok else "FAIL (%d below)" % fails, (" " + detail) if detail else ""))
    return ok


def length_summary(tokens):
    t = sorted(tokens)
    return "lengths %d..%d (median %d, %d texts, %d tokens, %d over 4096)" % (
        t[0], t[-1], t[len(t) // 2], len(t), sum(t), sum(1 for x in t if x > 4096))
