#!/usr/bin/env python3
"""check_vs_transformers.py - the numpy reference against transformers' Qwen3Model.

STATUS: NOT RUN YET. It needs torch + transformers (>= 4.51, which has
Qwen3), which this project's machines do not have (Debian packages and npm
only); run it on a GPU machine where they are installed. Until it has been
run, "tests/reference/qwen3_ref.py computes what transformers computes" is
unconfirmed (docs/engine.md says so).

What it does: loads a checkpoint (a random one from `embedq gen-model`, or a
real Qwen3-Embedding download) with transformers' Qwen3Model, embeds token
sequences with it exactly as the Qwen3-Embedding model card does (last
hidden state at the last token, no padding, then Matryoshka truncation and
L2 normalization), embeds the same ids with qwen3_ref.Qwen3Ref (float64),
and prints the min/mean cosine. Optionally also compares `embedq embed`
(--embedq BIN) for the same texts against transformers.

    embedq gen-model --preset tiny --out /tmp/tiny --seed 7
    python3 tests/reference/check_vs_transformers.py --model /tmp/tiny
    python3 tests/reference/check_vs_transformers.py --model /tmp/tiny \
        --device cuda --dtype bfloat16 --embedq build/embedq

Thresholds: cosine >= 0.9999 with --dtype float32 (both sides are fp32 or
better), >= 0.99 with bfloat16 (transformers rounds activations to bf16).
Exit status 0 when every vector passes.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qwen3_ref  # noqa: E402  (numpy only, independent of the C engine)

ENDOFTEXT = 151643


def transformers_embed(model, torch, ids, dims, device):
    """Last-token pooling on one unpadded sequence, then truncate + normalize."""
    with torch.no_grad():
        x = torch.tensor([ids], dtype=torch.long, device=device)
        h = model(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state[0, -1]
    v = h.float().cpu().numpy().astype(np.float64)[:dims]
    return v / np.linalg.norm(v)


def cos(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def main():
    ap = argparse.ArgumentParser(description="numpy reference vs transformers Qwen3Model")
    ap.add_argument("--model", required=True, help="checkpoint directory")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--lengths", default="1,2,17,64,65,300,1024,2048",
                    help="comma-separated sequence lengths (random ids)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--embedq", help="also compare `embedq embed` on texts (path to the binary)")
    args = ap.parse_args()

    import torch
    from transformers import Qwen3Model

    dtype = getattr(torch, args.dtype)
    model = Qwen3Model.from_pretrained(args.model, torch_dtype=dtype,
                                       attn_implementation="eager").to(args.device).eval()
    cfg = json.load(open(os.path.join(args.model, "config.json")))
    hidden, vocab = cfg["hidden_size"], cfg["vocab_size"]
    ref = qwen3_ref.Qwen3Ref(args.model)
    threshold = 0.9999 if args.dtype == "float32" else 0.99

    rng = np.random.default_rng(args.seed)
    dims_cycle = [None, 32, hidden // 2, hidden]
    cosines, failed = [], 0
    for i, n in enumerate(int(s) for s in args.lengths.split(",")):
        ids = [int(t) for t in rng.integers(0, min(vocab, ENDOFTEXT), n - 1)] + [ENDOFTEXT]
        dims = dims_cycle[i % len(dims_cycle)] or hidden
        a = transformers_embed(model, torch, ids, dims, args.device)
        b = ref.embed(ids, dims)
        c = cos(a, b)
        cosines.append(c)
        ok = c >= threshold
        failed += not ok
        print("%-4s len %5d dims %4d: cosine(transformers, numpy reference) = %.9f"
              % ("ok" if ok else "FAIL", n, dims, c))
    print("numpy reference vs transformers (%s, %s): min cosine %.9f, mean %.9f"
          % (args.dtype, args.device, min(cosines), float(np.mean(cosines))))

    if args.embedq:
        texts = ["", "hello", "the quick brown fox " * 50, "我们今天学习机器翻译模型。" * 20]
        inp = "".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n"
                      for i, t in enumerate(texts))
        run = lambda *a: [json.loads(l) for l in subprocess.run(
            [args.embedq, *a, "--model", args.model], input=inp, capture_output=True,
            text=True, check=True).stdout.splitlines()]
        toks, embs = run("tokenize"), run("embed")
        cs = []
        for t, e in zip(toks, embs):
            c = cos(e["embedding"], transformers_embed(model, torch, t["ids"], hidden, args.device))
            cs.append(c)
            failed += c < threshold
        print("embedq embed vs transformers: min cosine %.9f, mean %.9f"
              % (min(cs), float(np.mean(cs))))

    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
