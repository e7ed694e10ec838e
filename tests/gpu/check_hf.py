#!/usr/bin/env python3
"""check_hf.py - `embedq embed` against Hugging Face transformers' Qwen3Model
on the same checkpoint and the exact same token ids.

    check_hf.py --embedq BIN --model DIR --workdir W \
        [--ours-device cuda] [--hf-dtype bfloat16] [--hf-device cuda] [--ref-device cpu]

The texts (gpucheck.build_texts: real text, 1..8192 tokens) are tokenized by
`embedq tokenize` and those ids are fed to transformers (AutoModel ->
Qwen3Model, attn_implementation="sdpa"), one sequence per forward pass (no
padding, so no mask question), last-token pooling, L2 normalization - the
Qwen3-Embedding recipe. Our vectors come from `embedq embed --device
OURS_DEVICE` on the same texts. Cosine >= --min-cos (0.999) for every vector.

--ref-device cpu adds, for information, both sides against embedq's CPU
backend (fp32 activations): how far transformers' own bf16 run is from an
fp32 computation, next to how far ours is.

Needs torch + transformers (the GPU machine); exit status 0 when all pass.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpucheck as g  # noqa: E402


def load_hf(path, dtype_name, device, attn):
    import torch
    import transformers
    from transformers import AutoModel

    dt = getattr(torch, dtype_name)
    t0 = time.time()
    try:  # transformers >= 4.56 calls it dtype; older ones torch_dtype
        model = AutoModel.from_pretrained(path, dtype=dt, attn_implementation=attn)
    except TypeError:
        model = AutoModel.from_pretrained(path, torch_dtype=dt, attn_implementation=attn)
    model = model.to(device=device, dtype=dt).eval()
    g.log("  transformers %s, torch %s: %s %s %s on %s, loaded in %.1f s"
          % (transformers.__version__, torch.__version__, type(model).__name__, dtype_name, attn,
             device, time.time() - t0))
    return torch, model


def hf_embed(torch, model, ids_list, device):
    out = []
    with torch.inference_mode():
        for ids in ids_list:
            x = torch.tensor([ids], dtype=torch.long, device=device)
            h = model(input_ids=x).last_hidden_state[0, -1].float()
            h = torch.nn.functional.normalize(h, dim=-1)
            out.append(h.cpu().numpy().astype(np.float64))
    return np.stack(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--embedq", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--texts", help="JSONL inputs (default: gpucheck.build_texts into workdir)")
    ap.add_argument("--ours-device", default="cuda")
    ap.add_argument("--hf-dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--hf-device", default="cuda")
    ap.add_argument("--attn", default="sdpa")
    ap.add_argument("--ref-device", default="",
                    help="also compare both with this embedq device's vectors, when a check "
                         "before left them in --workdir (or always with --ref-run)")
    ap.add_argument("--ref-run", action="store_true", help="run --ref-device if not cached")
    ap.add_argument("--min-cos", type=float, default=0.999)
    ap.add_argument("--batch-tokens", type=int, default=16384)
    ap.add_argument("--max-tokens", type=int, default=8192)
    args = ap.parse_args()

    os.makedirs(args.workdir, exist_ok=True)
    texts = args.texts or os.path.join(args.workdir, "texts.jsonl")
    if args.texts or os.path.exists(texts):
        rows = [json.loads(l) for l in open(texts, encoding="utf-8") if l.strip()]
    else:
        rows = g.build_texts(texts)
    name = os.path.basename(os.path.normpath(args.model))
    g.log("== %s: embedq --device %s vs transformers %s (%s, %s)"
          % (name, args.ours_device, args.hf_dtype, args.attn, args.hf_device))

    ids = g.tokenize(args.embedq, args.model, rows, args.max_tokens)
    ours, toks, _ = g.embed(args.embedq, args.model, rows, args.ours_device, args.batch_tokens,
                            args.workdir, args.max_tokens)
    if [len(x) for x in ids] != toks:
        g.log("  embedq tokenize and embedq embed disagree on token counts")
        return 1
    g.log("  " + g.length_summary(toks))
    torch, model = load_hf(args.model, args.hf_dtype, args.hf_device, args.attn)
    t0 = time.time()
    hf = hf_embed(torch, model, ids, args.hf_device)
    g.log("  transformers: %d sequences in %.1f s" % (len(ids), time.time() - t0))
    tag = "bf16" if args.hf_dtype == "bfloat16" else "fp32"
    ok = g.report("%s-vs-hf-%s" % (args.ours_device, tag), name, g.cosines(ours, hf), toks,
                  args.min_cos)
    got = None
    if args.ref_device:
        got = g.embed(args.embedq, args.model, rows, args.ref_device, args.batch_tokens,
                      args.workdir, args.max_tokens, cached_only=not args.ref_run)
        if got is None:
            g.log("INFO   %s vectors of %s not in %s (check_backends.py leaves them): skipped"
                  % (args.ref_device, name, args.workdir))
    if got is not None:
        ref = got[0]
        for who, v in (("hf-%s" % tag, hf), (args.ours_device, ours)):
            c = g.cosines(v, ref)
            g.log("INFO   %-28s %-5s n=%-3d min=%.9f mean=%.9f"
                  % ("%s-vs-%s" % (who, args.ref_device), name, len(c), float(np.min(c)),
                     float(np.mean(c))))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
