#!/usr/bin/env python3
"""embedq's CPU backend against llama.cpp on the same checkpoint (issue 14).

Runs, alternately and in the same run, on a generated Qwen3-Embedding 0.6b
checkpoint (`embedq gen-model --preset 0.6b`) with 2 threads:

  embedq fp32          `embedq bench --device cpu-fp32` (the fp32 reference)
  embedq bf16          `embedq bench --device cpu-bf16` (oneDNN bf16 GEMMs)
  llama.cpp shipped    `llama-embedding` on a bf16 GGUF of the checkpoint
  llama.cpp layers     the same with the vocabulary cut to 8,192 rows, so that
                       llama.cpp's vocabulary projection (151,669 x 1,024 per
                       token) does not dominate: its layers only

at 8 x 256, 1 x 512 and 1 x 2048 tokens, median of --repeats (3) runs of
each, and prints tokens/s, the ratios, GFLOP/s against this CPU's fp32 and
bf16 peak, and each process's peak RSS (wait4's ru_maxrss).

llama.cpp is not built here: give an ALREADY BUILT llama.cpp (b6775, commit
7adc79c03234de9a20661fd6dbf2d02c32ca7acb, built per its own README as a CPU
build) with --llama-bin (its build/bin, holding llama-embedding) and
--gguf-py (its gguf-py directory). Without them the llama.cpp rows are
skipped, with a message, and embedq fp32 vs bf16 is still measured.

The GGUF files are written here with gguf-py and numpy (llama.cpp's own
converter needs torch and transformers): the checkpoint's tensors under
llama.cpp's names for the qwen3 architecture, bf16 as stored, pooling
"last", the tokenizer.json vocabulary and merges ("gpt2" model, "qwen2"
pre-tokenizer). llama-embedding gets prompts of "the" + " the" * (len-2),
which its tokenizer makes len - 1 tokens, plus the appended end-of-text:
len tokens each (checked against the token count it reports).

Peak rates (say how): peak = cores x clock x flop/cycle/core, with
flop/cycle/core = 64 for fp32 (two 512-bit FMA pipes x 16 lanes x 2) and
128 for bf16 (vdpbf16ps on the same two pipes: 32 bf16 products summed
into 16 fp32 lanes, x 2); pass --fp32-flops-per-cycle and
--bf16-flops-per-cycle for other cores. The clock is --clock-ghz, default
the "cpu MHz" of /proc/cpuinfo (which a VM may report as its base clock:
then the rates above it are boost).

usage: cpu_vs_llama.py --embedq BIN --model DIR [--llama-bin DIR --gguf-py DIR]
                       [--workdir DIR] [--threads 2] [--repeats 3] [--clock-ghz G]
"""
import argparse
import json
import os
import re
import statistics
import struct
import subprocess
import sys
import time

WORKLOADS = [(8, 256), (1, 512), (1, 2048)]
LAYERS_ONLY_ROWS = 8192


def run_measured(cmd, env=None, stdout=subprocess.DEVNULL):
    """Runs cmd; returns (returncode, stderr text, peak RSS bytes, seconds)."""
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, env=env, text=True)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, err, ru.ru_maxrss * 1024, time.time() - t0


# ---- GGUF from the checkpoint ------------------------------------------------

def read_safetensors(model_dir):
    """{name: (dtype, shape, numpy array over the file)} of every shard."""
    import numpy as np
    idx = os.path.join(model_dir, "model.safetensors.index.json")
    files = sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx) \
        else ["model.safetensors"]
    out = {}
    for f in files:
        path = os.path.join(model_dir, f)
        with open(path, "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            header = json.loads(fh.read(n))
        base = 8 + n
        mm = np.memmap(path, dtype=np.uint8, mode="r")
        for name, t in header.items():
            if name == "__metadata__":
                continue
            a, b = t["data_offsets"]
            np_dt = {"BF16": np.uint16, "F16": np.float16, "F32": np.float32}[t["dtype"]]
            arr = mm[base + a:base + b].view(np_dt).reshape(t["shape"])
            out[name[len("model."):] if name.startswith("model.") else name] = (t["dtype"], arr)
    return out


def write_gguf(path, model_dir, gguf_py, rows=None):
    """The checkpoint as a llama.cpp qwen3 GGUF; rows: cut the vocabulary."""
    sys.path.insert(0, gguf_py)
    import gguf
    import numpy as np
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    tok = json.load(open(os.path.join(model_dir, "tokenizer.json")))
    t = read_safetensors(model_dir)
    emb_dt, emb = t["embed_tokens.weight"]
    n_vocab = emb.shape[0] if rows is None else rows

    id_to_tok = {i: s for s, i in tok["model"]["vocab"].items()}
    special = set()
    for a in tok.get("added_tokens", []):
        id_to_tok[a["id"]] = a["content"]
        special.add(a["id"])
    tokens = [id_to_tok.get(i, "[PAD%d]" % i) for i in range(n_vocab)]
    types = [gguf.TokenType.CONTROL if (i in special or i not in id_to_tok)
             else gguf.TokenType.NORMAL for i in range(n_vocab)]
    known = set(tokens)
    merges = []
    for m in tok["model"]["merges"]:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if rows is None or (a in known and b in known and a + b in known):
            merges.append(a + " " + b)
    eos = tok["model"]["vocab"].get("<|endoftext|>")
    if eos is None:
        eos = next(a["id"] for a in tok["added_tokens"] if a["content"] == "<|endoftext|>")
    if eos >= n_vocab:
        eos = 0  # layers-only: a stand-in end token inside the cut vocabulary

    w = gguf.GGUFWriter(path, "qwen3")
    w.add_name("embedq-generated")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    hd = cfg.get("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_rope_freq_base(float(cfg.get("rope_theta", 1000000.0)))
    w.add_layer_norm_rms_eps(float(cfg["rms_norm_eps"]))
    w.add_pooling_type(gguf.PoolingType.LAST)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_eos_token_id(eos)
    w.add_pad_token_id(eos)
    w.add_add_bos_token(False)
    w.add_add_eos_token(True)

    def put(name, dt, arr):
        arr = np.ascontiguousarray(arr)
        if dt == "BF16" and arr.ndim == 1:  # norms: llama.cpp's ops want them f32
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
            dt = "F32"
        if dt == "BF16":
            w.add_tensor(name, arr, raw_shape=arr.shape, raw_dtype=gguf.GGMLQuantizationType.BF16)
        else:
            w.add_tensor(name, arr.astype(np.float32))

    put("token_embd.weight", emb_dt, emb[:n_vocab])
    put("output_norm.weight", *t["norm.weight"])
    names = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q",
             "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm",
             "self_attn.k_norm": "attn_k_norm", "post_attention_layernorm": "ffn_norm",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for layer in range(cfg["num_hidden_layers"]):
        for hf, gg in names.items():
            dt, arr = t["layers.%d.%s.weight" % (layer, hf)]
            put("blk.%d.%s.weight" % (layer, gg), dt, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---- runners -----------------------------------------------------------------

def run_embedq(a, device, n_seqs, seq_len, env):
    js = os.path.join(a.workdir, "embedq.jsonl")
    if os.path.exists(js):
        os.unlink(js)
    rc, err, rss, _ = run_measured(
        [a.embedq, "bench", "--model", a.model, "--device", device, "--threads", str(a.threads),
         "--seq-len", str(seq_len), "--batch-tokens", str(n_seqs * seq_len),
         "--warmup", "1", "--iters", "1", "--gemm-n", "0", "--json", js], env=env)
    if rc != 0:
        sys.exit("embedq bench %s failed (%d): %s" % (device, rc, err[-2000:]))
    r = json.loads(open(js).read().splitlines()[-1])
    return r["tokens_per_s"], rss, r


def run_llama(a, gguf_path, n_seqs, seq_len, env):
    words = seq_len - 1  # + the appended end-of-text token
    prompt = "the" + " the" * (words - 1)
    pfile = os.path.join(a.workdir, "prompts-%d.txt" % seq_len)
    with open(pfile, "w") as f:
        f.write("\n".join([prompt] * n_seqs))
    total = n_seqs * seq_len
    cmd = [os.path.join(a.llama_bin, "llama-embedding"), "-m", gguf_path, "-f", pfile,
           "-t", str(a.threads), "-tb", str(a.threads), "-c", str(total), "-b", str(total),
           "-ub", str(total), "--pooling", "last", "--embd-normalize", "2",
           "-np", str(n_seqs)]  # its warm-up decode runs before the timed part
    rc, err, rss, _ = run_measured(cmd, env=env)
    m = re.search(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens", err)
    if rc != 0 or not m:
        sys.exit("llama-embedding failed (%d): %s" % (rc, err[-3000:]))
    ms, toks = float(m.group(1)), int(m.group(2))
    if toks != total:
        sys.exit("llama-embedding evaluated %d tokens, expected %d (tokenizer?)" % (toks, total))
    return toks / (ms / 1000.0), rss


def clock_ghz():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1]) / 1000.0
    except OSError:
        pass
    return 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--embedq", required=True)
    ap.add_argument("--model", required=True, help="a bf16 checkpoint (embedq gen-model --preset 0.6b)")
    ap.add_argument("--llama-bin", help="llama.cpp's build/bin (already built; this script never builds it)")
    ap.add_argument("--gguf-py", help="llama.cpp's gguf-py directory")
    ap.add_argument("--workdir", default="/tmp/embedq-cpu-vs-llama")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clock-ghz", type=float, default=0.0, help="default: /proc/cpuinfo cpu MHz")
    ap.add_argument("--fp32-flops-per-cycle", type=float, default=64.0)
    ap.add_argument("--bf16-flops-per-cycle", type=float, default=128.0)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))

    engines = [("embedq fp32", "cpu-fp32"), ("embedq bf16", "cpu-bf16")]
    llama = bool(a.llama_bin and a.gguf_py)
    if not llama:
        print("SKIP llama.cpp: no --llama-bin/--gguf-py given (an already built llama.cpp "
              "b6775); measuring embedq fp32 vs bf16 only")
    elif not os.access(os.path.join(a.llama_bin, "llama-embedding"), os.X_OK):
        sys.exit("--llama-bin %s: no llama-embedding there" % a.llama_bin)
    else:
        ggufs = {}
        for label, rows in (("llama.cpp shipped", None), ("llama.cpp layers", LAYERS_ONLY_ROWS)):
            p = os.path.join(a.workdir, "model-%s.gguf" % ("full" if rows is None else "layers"))
            if not os.path.exists(p):
                t0 = time.time()
                write_gguf(p, a.model, a.gguf_py, rows)
                print("wrote %s in %.0f s" % (p, time.time() - t0))
            ggufs[label] = p
        engines += [(label, p) for label, p in ggufs.items()]

    ghz = a.clock_ghz or clock_ghz()
    cores = a.threads
    peak32 = cores * ghz * a.fp32_flops_per_cycle
    peak16 = cores * ghz * a.bf16_flops_per_cycle
    print("peak: %d cores x %.2f GHz x %g (fp32) / %g (bf16) flop/cycle = %.0f / %.0f GFLOP/s"
          % (cores, ghz, a.fp32_flops_per_cycle, a.bf16_flops_per_cycle, peak32, peak16))

    results = {}
    flops = {}  # (n_seqs, seq_len) -> embedq's FLOPs per token (layers, attention)
    for n_seqs, seq_len in WORKLOADS:
        for rep in range(a.repeats):  # alternate: every engine once per round
            for label, what in engines:
                if label.startswith("embedq"):
                    tps, rss, r = run_embedq(a, what, n_seqs, seq_len, env)
                    flops[(n_seqs, seq_len)] = r["flops_per_token"]
                else:
                    tps, rss = run_llama(a, what, n_seqs, seq_len, env)
                results.setdefault((n_seqs, seq_len, label), []).append((tps, rss))
                print("  %d x %d  %-18s round %d: %8.1f tok/s  RSS %6.0f MiB"
                      % (n_seqs, seq_len, label, rep + 1, tps, rss / 2**20), flush=True)

    print()
    print("GFLOP/s = tok/s x embedq's FLOPs per token at that length (the same model's layers and "
          "attention; llama.cpp's vocabulary projection as shipped is not counted): %s" %
          ", ".join("%dx%d %.3g" % (k[0], k[1], v) for k, v in flops.items()))
    hdr = "%-9s %-18s %9s %9s %8s %8s %9s" % ("batch", "engine", "tok/s", "GFLOP/s", "%fp32pk",
                                               "%bf16pk", "RSS MiB")
    print(hdr)
    rows_out = []
    for n_seqs, seq_len in WORKLOADS:
        med = {}
        for label, _ in engines:
            vals = results[(n_seqs, seq_len, label)]
            tps = statistics.median(v[0] for v in vals)
            rss = max(v[1] for v in vals)
            med[label] = tps
            gf = tps * flops[(n_seqs, seq_len)] / 1e9
            print("%-9s %-18s %9.1f %9.1f %7.0f%% %7.0f%% %9.0f" % (
                "%dx%d" % (n_seqs, seq_len), label, tps, gf, 100 * gf / peak32 if peak32 else 0,
                100 * gf / peak16 if peak16 else 0, rss / 2**20))
            rows_out.append({"n_seqs": n_seqs, "seq_len": seq_len, "engine": label,
                             "tokens_per_s": tps, "gflops": gf, "peak_rss": rss})
        ratios = ["bf16/fp32 %.2fx" % (med["embedq bf16"] / med["embedq fp32"])]
        if llama:
            ratios.append("bf16 / llama.cpp layers %.2fx" % (med["embedq bf16"] / med["llama.cpp layers"]))
            ratios.append("bf16 / llama.cpp shipped %.2fx" % (med["embedq bf16"] / med["llama.cpp shipped"]))
        print("%-9s ratios: %s" % ("", "; ".join(ratios)))
    with open(os.path.join(a.workdir, "results.json"), "w") as f:
        json.dump({"clock_ghz": ghz, "peak_fp32_gflops": peak32, "peak_bf16_gflops": peak16,
                   "rows": rows_out}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
