#!/usr/bin/python3
"""qwen3_ref.py - an independent numpy reference of the Qwen3-Embedding forward pass.

Independent of the C engine: it shares no code with it, reads config.json and
the safetensors files itself, and computes each sequence on its own (no packing)
in float64, straight from the formulas in shared/QWEN3.md (transformers'
Qwen3Model):

    per layer:  h   = x + o_proj(Attn(RMSNorm_in(x)))
                out = h + down(silu(gate(y)) * up(y)),  y = RMSNorm_post(h)
    final norm, last-token pooling, Matryoshka (keep the first `dimensions`
    values) THEN L2-normalize.

Weights are stored bf16 (or f16/f32) and are exact in float64; all activations
are float64, so this reference is *more* precise than transformers in bf16 or
the engine in fp32. Agreement is measured as cosine similarity.

Needs only numpy (Debian's /usr/bin/python3 has numpy 1.24).

Command line:
    /usr/bin/python3 qwen3_ref.py --model DIR < in.jsonl > out.jsonl
reads one {"ids": [...], "dimensions": N?} per line and prints one
{"embedding": [...]} per line (dimensions values, unit norm). Or, from Python:
    model = Qwen3Ref("DIR");  vec = model.embed(ids, dimensions=None)
"""

import argparse
import json
import os
import struct
import sys

import numpy as np

# --------------------------------------------------------------------------
# checkpoint reading
# --------------------------------------------------------------------------

_DTYPES = {"BF16": None, "F16": np.float16, "F32": np.float32, "F64": np.float64}


def read_safetensors(path):
    """Returns {name: float64 ndarray} for every BF16/F16/F32/F64 tensor in path.

    Layout: u64 little-endian header length N, N bytes of JSON, then the data;
    data_offsets are relative to the start of the data section.
    """
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode("utf-8"))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info["dtype"]
        if dt not in _DTYPES:
            continue  # not a weight the forward pass reads
        b, e = info["data_offsets"]
        raw = data[b:e]
        shape = tuple(info["shape"])
        if dt == "BF16":
            # bf16 is the top half of a float32: widen by shifting 16 bits.
            u16 = np.frombuffer(raw, dtype="<u2")
            arr = (u16.astype(np.uint32) << 16).view("<f4")
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(_DTYPES[dt]).newbyteorder("<"))
        out[name] = arr.astype(np.float64).reshape(shape)
    return out


def load_checkpoint(model_dir):
    """Returns (config dict, {name without 'model.' prefix: float64 array})."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    tensors = {}
    for fn in files:
        for name, arr in read_safetensors(os.path.join(model_dir, fn)).items():
            if name.startswith("model."):
                name = name[len("model."):]
            if name.startswith("lm_head."):
                continue
            tensors[name] = arr
    return cfg, tensors


# --------------------------------------------------------------------------
# the ops, each on float64 arrays
# --------------------------------------------------------------------------


def rms_norm(x, weight, eps):
    """x (..., d) -> x / sqrt(mean(x^2) + eps) * weight (plain weight, not 1 + w)."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def rope_cos_sin(n, head_dim, theta):
    """cos, sin (n, head_dim) for positions 0..n-1, as transformers builds them:
    inv_freq_i = theta^(-2i/head_dim), freqs = pos * inv_freq, emb = [freqs, freqs]."""
    inv_freq = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    freqs = np.outer(np.arange(n, dtype=np.float64), inv_freq)  # (n, head_dim/2)
    emb = np.concatenate([freqs, freqs], axis=-1)  # (n, head_dim)
    return np.cos(emb), np.sin(emb)


def rotate_half(x):
    """[x1, x2] -> [-x2, x1] on the last axis (NeoX-style RoPE)."""
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def apply_rope(x, cos, sin):
    """x (n, heads, head_dim); cos/sin (n, head_dim)."""
    return x * cos[:, None, :] + rotate_half(x) * sin[:, None, :]


def softmax(s):
    s = s - np.max(s, axis=-1, keepdims=True)
    e = np.exp(s)
    return e / np.sum(e, axis=-1, keepdims=True)


def causal_gqa_attention(q, k, v):
    """q (n, H, hd), k/v (n, KV, hd) -> (n, H*hd). Query head h reads kv head
    h // (H // KV); row i attends to keys 0..i; scale 1/sqrt(hd)."""
    n, n_heads, hd = q.shape
    group = n_heads // k.shape[1]
    mask = np.triu(np.ones((n, n), dtype=bool), k=1)  # True above the diagonal
    out = np.empty((n, n_heads, hd))
    for h in range(n_heads):
        kv = h // group
        scores = (q[:, h, :] @ k[:, kv, :].T) / np.sqrt(hd)
        scores[mask] = -np.inf
        out[:, h, :] = softmax(scores) @ v[:, kv, :]
    return out.reshape(n, n_heads * hd)


def silu(x):
    return x / (1.0 + np.exp(-x))


# --------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------


class Qwen3Ref:
    def __init__(self, model_dir):
        cfg, self.w = load_checkpoint(model_dir)
        self.hidden = cfg["hidden_size"]
        self.n_layers = cfg["num_hidden_layers"]
        self.n_heads = cfg["num_attention_heads"]
        self.n_kv = cfg.get("num_key_value_heads", self.n_heads)
        self.head_dim = cfg.get("head_dim") or self.hidden // self.n_heads
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.theta = cfg.get("rope_theta", 1000000.0)

    def layer(self, l, x, cos, sin):
        """One decoder layer on x (n, hidden)."""
        w = lambda name: self.w["layers.%d.%s" % (l, name)]
        n = x.shape[0]
        hd = self.head_dim

        y = rms_norm(x, w("input_layernorm.weight"), self.eps)
        q = (y @ w("self_attn.q_proj.weight").T).reshape(n, self.n_heads, hd)
        k = (y @ w("self_attn.k_proj.weight").T).reshape(n, self.n_kv, hd)
        v = (y @ w("self_attn.v_proj.weight").T).reshape(n, self.n_kv, hd)
        q = apply_rope(rms_norm(q, w("self_attn.q_norm.weight"), self.eps), cos, sin)
        k = apply_rope(rms_norm(k, w("self_attn.k_norm.weight"), self.eps), cos, sin)
        h = x + causal_gqa_attention(q, k, v) @ w("self_attn.o_proj.weight").T

        y = rms_norm(h, w("post_attention_layernorm.weight"), self.eps)
        mlp = silu(y @ w("mlp.gate_proj.weight").T) * (y @ w("mlp.up_proj.weight").T)
        return h + mlp @ w("mlp.down_proj.weight").T

    def last_hidden_state(self, ids):
        """ids (n,) -> final-normed hidden states (n, hidden)."""
        ids = np.asarray(ids, dtype=np.int64)
        x = self.w["embed_tokens.weight"][ids]
        cos, sin = rope_cos_sin(len(ids), self.head_dim, self.theta)
        for l in range(self.n_layers):
            x = self.layer(l, x, cos, sin)
        return rms_norm(x, self.w["norm.weight"], self.eps)

    def embed(self, ids, dimensions=None):
        """Last-token pooling, keep the first `dimensions` values, L2-normalize."""
        if len(ids) == 0:
            raise ValueError("empty sequence")
        d = dimensions or self.hidden
        vec = self.last_hidden_state(ids)[-1][:d]
        return vec / np.linalg.norm(vec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="checkpoint directory")
    args = ap.parse_args()
    model = Qwen3Ref(args.model)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        vec = model.embed(req["ids"], req.get("dimensions"))
        print(json.dumps({"embedding": [float(v) for v in vec]}), flush=True)


if __name__ == "__main__":
    main()
