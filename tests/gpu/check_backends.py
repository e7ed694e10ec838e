#!/usr/bin/env python3
"""check_backends.py - whole model, one embedq backend against another, and
packed batches against single sequences, through `embedq embed`.

    check_backends.py --embedq BIN --model DIR --workdir W [--a cuda] [--b cpu]

1. Backend A, packed vs single: --batch-tokens 65536 (every text in one or
   two packed batches) against --batch-tokens 1 (one sequence per batch):
   cosine >= --min-cos-packed (0.9999) for every vector.
2. Backend A vs backend B (default: cuda vs cpu) on the same texts with the
   real tokenizer (gpucheck.build_texts: 1..8192 tokens, real text), both
   with --batch-tokens 16384: cosine >= --min-cos (0.999) for every vector.
   (Second, because the CPU run is the slow one: if a time limit stops it,
   check 1 has already reported.)
Prints the worst vectors and one "RESULT ..." line per check; exit status 0
when all pass. Runs anywhere `embedq` runs: on a machine without a GPU use
--a twin (the CUDA plan on the CPU twins) or --a cpu.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpucheck as g  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--embedq", required=True)
    ap.add_argument("--model", required=True, help="checkpoint directory (gen-model)")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--texts", help="JSONL inputs (default: gpucheck.build_texts into workdir)")
    ap.add_argument("--a", default="cuda", help="backend under test (default cuda)")
    ap.add_argument("--b", default="cpu-fp32",
                    help="reference backend (default cpu-fp32, the fp32 reference); '' skips check 2")
    ap.add_argument("--min-cos", type=float, default=0.999)
    ap.add_argument("--min-cos-packed", type=float, default=0.9999)
    ap.add_argument("--batch-tokens", type=int, default=16384)
    ap.add_argument("--packed-tokens", type=int, default=65536)
    ap.add_argument("--max-tokens", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for cpu/twin runs")
    ap.add_argument("--no-packed", action="store_true", help="skip check 1")
    ap.add_argument("--quick", action="store_true",
                    help="shorter long texts (~600 and ~1500 tokens instead of up to 8192)")
    args = ap.parse_args()

    os.makedirs(args.workdir, exist_ok=True)
    texts = args.texts or os.path.join(args.workdir, "texts.jsonl")
    if args.texts:
        import json
        rows = [json.loads(l) for l in open(texts, encoding="utf-8") if l.strip()]
    else:
        rows = g.build_texts(texts, long_tokens=(600, 1500)) if args.quick else g.build_texts(texts)
    name = os.path.basename(os.path.normpath(args.model))
    ok = True

    if not args.no_packed:
        g.log("== %s: %s packed (--batch-tokens %d) vs single (--batch-tokens 1)"
              % (name, args.a, args.packed_tokens))
        vp, tp, _ = g.embed(args.embedq, args.model, rows, args.a, args.packed_tokens, args.workdir,
                            args.max_tokens, args.threads)
        vs, ts, _ = g.embed(args.embedq, args.model, rows, args.a, 1, args.workdir,
                            args.max_tokens, args.threads)
        ok &= g.report("%s-packed-vs-single" % args.a, name, g.cosines(vp, vs), tp,
                       args.min_cos_packed)

    if args.b:
        g.log("== %s: %s vs %s (--batch-tokens %d)" % (name, args.a, args.b, args.batch_tokens))
        va, ta, tra = g.embed(args.embedq, args.model, rows, args.a, args.batch_tokens, args.workdir,
                              args.max_tokens, args.threads)
        vb, tb, _ = g.embed(args.embedq, args.model, rows, args.b, args.batch_tokens, args.workdir,
                            args.max_tokens, args.threads)
        g.log("  " + g.length_summary(ta) + ", %d truncated" % sum(tra))
        if ta != tb:
            g.log("  token counts differ between the backends' runs")
            ok = False
        ok &= g.report("%s-vs-%s" % (args.a, args.b), name, g.cosines(va, vb), ta, args.min_cos)

    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
