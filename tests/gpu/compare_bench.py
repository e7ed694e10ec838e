#!/usr/bin/env python3
"""compare_bench.py - ours/theirs per workload from `embedq bench --json` and
bench_hf.py --json, and the issue's targets.

    compare_bench.py --ours ours.jsonl --theirs hf.jsonl [--preset 4b]

Both files: one JSON object per line with "workload", "tokens_per_s" and
"model" (a file may hold several models; rows pair on (model, workload)).
Prints a table and one "TARGET ... PASS|FAIL" line per target that applies:
  0.6b: len512 >= 400,000 tokens/s and >= 2.0x transformers
  4b:   len512 >= 75,000 tokens/s and >= 1.5x; len8192 >= 70% of len512
  8b:   len512 >= 38,000 tokens/s and >= 1.5x
Exit status 0 (figures are reported, not asserted), 2 on unreadable input.
Standard library only.
"""

import argparse
import json
import sys

TARGETS = {"0.6b": (400000, 2.0), "4b": (75000, 1.5), "8b": (38000, 1.5)}


def read(path):
    rows = {}
    if not path:
        return rows
    for line in open(path, encoding="utf-8"):
        if line.strip():
            o = json.loads(line)
            rows[(o.get("model"), o["workload"])] = o
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ours", required=True)
    ap.add_argument("--theirs", default="")
    args = ap.parse_args()
    try:
        ours, theirs = read(args.ours), read(args.theirs)
    except (OSError, ValueError, KeyError) as e:
        print("compare_bench: %s" % e, file=sys.stderr)
        return 2
    print("%-6s %-9s %14s %14s %8s %8s %7s  %s" % ("model", "workload", "ours tok/s",
                                                  "hf tok/s", "ours/hf", "hf bs", "MFU",
                                                  "device"))
    for (model, wl), o in ours.items():
        t = theirs.get((model, wl))
        ratio = o["tokens_per_s"] / t["tokens_per_s"] if t else None
        print("%-6s %-9s %14.0f %14s %8s %8s %7s  %s"
              % (model, wl, o["tokens_per_s"], "%.0f" % t["tokens_per_s"] if t else "-",
                 "%.2fx" % ratio if ratio else "-", t.get("best_batch_size", "-") if t else "-",
                 "%.1f%%" % (100 * o["mfu"]) if o.get("mfu") else "n/a",
                 o.get("device_name", "")))
    for model, (floor, factor) in TARGETS.items():
        o, t = ours.get((model, "len512")), theirs.get((model, "len512"))
        if not o:
            continue
        tps = o["tokens_per_s"]
        print("TARGET %-5s len512 %.0f tokens/s >= %d: %s"
              % (model, tps, floor, "PASS" if tps >= floor else "FAIL"))
        if t:
            r = tps / t["tokens_per_s"]
            print("TARGET %-5s len512 %.2fx transformers >= %.1fx: %s"
                  % (model, r, factor, "PASS" if r >= factor else "FAIL"))
        else:
            print("TARGET %-5s len512 vs transformers: no transformers figure" % model)
        long_ = ours.get((model, "len8192"))
        if model == "4b" and long_:
            r = long_["tokens_per_s"] / tps
            print("TARGET %-5s len8192 %.0f tokens/s = %.0f%% of len512 >= 70%%: %s"
                  % (model, long_["tokens_per_s"], 100 * r, "PASS" if r >= 0.7 else "FAIL"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
