#!/usr/bin/env python3
"""bench_hf.py - the baseline for `embedq bench`: Hugging Face transformers
(AutoModel -> Qwen3Model, bf16, attn_implementation="sdpa", on CUDA) on the
same checkpoint directory and the same workloads, at its best batch size.

    bench_hf.py --model DIR [--seq-len 128,512,2048,8192] [--mix FILE --embedq BIN]
                [--json OUT.jsonl] [--max-batch-tokens 65536]

Embedding as the Qwen3-Embedding model card does it: a batch of sequences,
left-padded (pad id <|endoftext|>, attention mask 0 on pads), last hidden
state at the last position (a real token for every row, thanks to the left
padding), L2-normalized, copied to the host. The timed region of a batch:
input ids to the GPU, forward, pooling, normalization, vectors to the host
(what one eq_embed call does); wall clock after warm-up.

Workloads (names as `embedq bench` writes them, so compare_bench.py can pair
them):
  lenN  batches of bs sequences of N random ids from the base vocabulary
        (0..151642), the last one <|endoftext|>; no padding.
  mix   the texts of FILE tokenized by `embedq tokenize` (the exact ids ours
        embeds), sorted by length (as sentence-transformers does, to waste
        little on padding), cut into batches of <= bs sequences and <=
        --max-batch-tokens padded tokens, visited in a seeded random order;
        tokens/s counts real tokens only.
Batch sizes swept: powers of two from 1 to --max-bs, keeping those with
bs*N (or the padded size) <= --max-batch-tokens and bs*N >= --min-batch-tokens
(bs = 1 always allowed); ascending, stopping at an out-of-memory error or
once a size is clearly past the best (< 0.97x twice). Each size: --warmup
batches, then timed batches until --min-time seconds and >= --min-iters.
Prints one line per size, the best per workload, and (with --json) one JSON
object per workload: {"engine": "transformers", "workload", "tokens_per_s",
"best_batch_size", "sweep": [...], ...}.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time

ENDOFTEXT = 151643
BASE_VOCAB = 151643


def log(*a):
    print(*a, flush=True)


def load(path, dtype_name, attn):
    import torch
    import transformers
    from transformers import AutoModel

    dt = getattr(torch, dtype_name)
    t0 = time.time()
    try:  # transformers >= 4.56: dtype; older: torch_dtype
        model = AutoModel.from_pretrained(path, dtype=dt, attn_implementation=attn,
                                          device_map="cuda")
    except TypeError:
        model = AutoModel.from_pretrained(path, torch_dtype=dt, attn_implementation=attn,
                                          device_map="cuda")
    model = model.to(device="cuda", dtype=dt).eval()
    info = {"transformers": transformers.__version__, "torch": torch.__version__,
            "dtype": dtype_name, "attn": attn, "model_class": type(model).__name__,
            "device_name": torch.cuda.get_device_name(0)}
    log("transformers %s, torch %s, %s %s %s on %s; loaded in %.1f s"
        % (info["transformers"], info["torch"], info["model_class"], dtype_name, attn,
           info["device_name"], time.time() - t0))
    return torch, model, info


def make_batch(torch, seqs):
    """Left-padded input ids and mask on the host (pinned)."""
    n = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), n), ENDOFTEXT, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, n - len(s):] = torch.tensor(s, dtype=torch.long)
        mask[i, n - len(s):] = 1
    return ids.pin_memory(), mask.pin_memory(), sum(len(s) for s in seqs)


def run_batch(torch, model, batch):
    ids, mask, _ = batch
    with torch.inference_mode():
        x = ids.to("cuda", non_blocking=True)
        m = mask.to("cuda", non_blocking=True)
        h = model(input_ids=x, attention_mask=m).last_hidden_state[:, -1].float()
        v = torch.nn.functional.normalize(h, dim=-1).cpu()  # synchronizes
    return v


def time_batches(torch, model, batches, warmup, min_time, min_iters):
    for i in range(warmup):
        run_batch(torch, model, batches[i % len(batches)])
    torch.cuda.synchronize()
    tokens, seqs, elapsed, times, i = 0, 0, 0.0, [], 0
    while i < min_iters or elapsed < min_time:
        b = batches[(warmup + i) % len(batches)]
        t0 = time.perf_counter()
        run_batch(torch, model, b)
        dt = time.perf_counter() - t0
        times.append(dt)
        elapsed += dt
        tokens += b[2]
        seqs += b[0].shape[0]
        i += 1
        if i >= len(batches) * 4 and elapsed >= min_time * 0.5:
            break
    times.sort()
    return {"tokens_per_s": tokens / elapsed, "seqs_per_s": seqs / elapsed, "iters": i,
            "tokens": tokens, "batch_ms_median": 1e3 * times[len(times) // 2]}


def mix_batches(torch, seqs, bs, max_tokens, seed):
    order = sorted(seqs, key=len, reverse=True)
    out, cur = [], []
    for s in order:  # descending: the first sequence of a batch is its longest
        if cur and (len(cur) == bs or (len(cur) + 1) * len(cur[0]) > max_tokens):
            out.append(cur)
            cur = []
        cur.append(s)
    if cur:
        out.append(cur)
    random.Random(seed).shuffle(out)
    return [make_batch(torch, b) for b in out]


def fixed_batches(torch, n, bs, vocab, seed, count=3):
    rng = random.Random(seed * 1000003 + n * 31 + bs)
    out = []
    for _ in range(count):
        seqs = [[rng.randrange(vocab) for _ in range(n - 1)] + [ENDOFTEXT] for _ in range(bs)]
        out.append(make_batch(torch, seqs))
    return out


def sweep(torch, model, name, sizes, build, args):
    results, best, worse = [], None, 0
    t_start = time.time()
    for bs in sizes:
        if time.time() - t_start > args.workload_time and best is not None:
            log("  %-8s stop: past --workload-time %.0f s" % (name, args.workload_time))
            break
        try:
            batches = build(bs)
            r = time_batches(torch, model, batches, args.warmup, args.min_time, args.min_iters)
        except torch.cuda.OutOfMemoryError:
            log("  %-8s bs %4d: out of memory" % (name, bs))
            results.append({"batch_size": bs, "oom": True})
            torch.cuda.empty_cache()
            break
        r["batch_size"] = bs
        results.append(r)
        log("  %-8s bs %4d: %12.0f tokens/s  %9.1f seqs/s  median %8.2f ms  (%d batches)"
            % (name, bs, r["tokens_per_s"], r["seqs_per_s"], r["batch_ms_median"], r["iters"]))
        if best is None or r["tokens_per_s"] > best["tokens_per_s"]:
            best, worse = r, 0
        elif r["tokens_per_s"] < 0.97 * best["tokens_per_s"]:
            worse += 1
            if worse >= 2:
                break
        del batches
    return best, results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="checkpoint directory")
    ap.add_argument("--seq-len", default="128,512,2048,8192", help="'' for none")
    ap.add_argument("--mix", help="texts (JSONL with \"text\") to tokenize with --embedq")
    ap.add_argument("--embedq", help="embedq binary (tokenizes the mix)")
    ap.add_argument("--json", help="write one JSON object per workload here")
    ap.add_argument("--label", help="model label in the JSON (default: the directory name)")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--attn", default="sdpa")
    ap.add_argument("--max-bs", type=int, default=256)
    ap.add_argument("--max-batch-tokens", type=int, default=65536)
    ap.add_argument("--min-batch-tokens", type=int, default=2048)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds timed per batch size")
    ap.add_argument("--min-iters", type=int, default=3)
    ap.add_argument("--workload-time", type=float, default=30.0,
                    help="no new batch size after this many seconds in one workload")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    lengths = [int(x) for x in args.seq_len.split(",") if x.strip()]
    mix_seqs = None
    if args.mix:
        if not args.embedq:
            ap.error("--mix needs --embedq (the mix is tokenized by `embedq tokenize`)")
        p = subprocess.run([args.embedq, "tokenize", "--model", args.model, "--max-tokens", "8192"],
                           stdin=open(args.mix, "rb"), capture_output=True, check=True)
        mix_seqs = [json.loads(l)["ids"] for l in p.stdout.splitlines() if l.strip()]
        log("mix %s: %d texts, %d tokens" % (args.mix, len(mix_seqs), sum(map(len, mix_seqs))))

    cfg = json.load(open(os.path.join(args.model, "config.json")))
    vocab = min(cfg["vocab_size"], BASE_VOCAB)
    torch, model, info = load(args.model, args.dtype, args.attn)
    label = args.label or os.path.basename(os.path.normpath(args.model))
    jf = open(args.json, "w") if args.json else None

    sizes_all = [1 << k for k in range(0, 20) if (1 << k) <= args.max_bs]
    work = [("len%d" % n, n) for n in lengths] + ([("mix", 0)] if mix_seqs else [])
    for name, n in work:
        if n:
            sizes = [bs for bs in sizes_all if bs * n <= args.max_batch_tokens
                     and (bs == 1 or bs * n >= args.min_batch_tokens)]
            if sizes and sizes[0] == 1 and n < args.min_batch_tokens and len(sizes) > 1:
                sizes = sizes[1:]
            build = lambda bs, n=n: fixed_batches(torch, n, bs, vocab, args.seed)
        else:
            sizes = [bs for bs in sizes_all if bs >= 4]
            build = lambda bs: mix_batches(torch, mix_seqs, bs, args.max_batch_tokens, args.seed)
        best, results = sweep(torch, model, name, sizes, build, args)
        if best is None:
            log("RESULT hf %-8s %-5s no batch size ran" % (name, label))
            continue
        log("RESULT hf %-8s %-5s best %12.0f tokens/s at batch size %d"
            % (name, label, best["tokens_per_s"], best["batch_size"]))
        if jf:
            rec = {"engine": "transformers", "workload": name, "seq_len": n, "model": label,
                   "tokens_per_s": best["tokens_per_s"], "seqs_per_s": best["seqs_per_s"],
                   "best_batch_size": best["batch_size"],
                   "batch_ms_median": best["batch_ms_median"],
                   "max_batch_tokens": args.max_batch_tokens, "sweep": results}
            rec.update(info)
            jf.write(json.dumps(rec) + "\n")
            jf.flush()
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
